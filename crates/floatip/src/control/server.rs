//! The daemon's side of the control socket: binding it (root-only, 0600, refusing a live daemon,
//! replacing a stale file) and answering each connection by handing its request to the daemon loop.
//! Whoever can talk to the socket can move the VIP.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::events::{serve_stream, EventHub};
use super::protocol::{
    encode_response, parse_request, Request, Response, IO_TIMEOUT, MAX_REQUEST, REQUEST_EXAMPLE,
};

/// One request from a client, handed to the daemon loop, which answers on `reply`.
#[derive(Debug)]
pub struct ControlCall {
    pub request: Request,
    pub reply: oneshot::Sender<Response>,
}

/// Removes the socket file when dropped, if the file is still the one we created.
#[derive(Debug)]
pub struct SocketGuard {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if meta.dev() == self.dev && meta.ino() == self.ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// A bound control socket (mode 0600). Dropping it removes the socket file.
#[derive(Debug)]
pub struct ControlListener {
    listener: std::os::unix::net::UnixListener,
    guard: SocketGuard,
}

impl ControlListener {
    pub fn path(&self) -> &Path {
        &self.guard.path
    }
}

/// Binds the control socket at `path`, so the daemon can do it before it reports READY: creates the
/// parent directory (0755) if missing, refuses if another daemon answers there, replaces a stale
/// socket file, and makes the socket 0600 before it appears at `path` (bound under a temporary name,
/// chmod, then renamed into place). Works outside a tokio runtime.
pub fn bind(path: &Path) -> anyhow::Result<ControlListener> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .with_context(|| format!("cannot create {} for the control socket", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match StdUnixStream::connect(path) {
            Ok(_) => bail!(
                "another floatip is running on {}: stop it first (`systemctl stop floatip`), or give \
                 this one its own socket (--socket or [daemon] socket)",
                path.display()
            ),
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                // Nobody listens: a daemon that was killed left it behind.
                std::fs::remove_file(path).with_context(|| {
                    format!("cannot remove the stale control socket {}", path.display())
                })?;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot tell whether a floatip daemon is running on {}",
                        path.display()
                    )
                })
            }
        },
        Ok(_) => bail!(
            "{} exists and is not a socket; move it away or choose another control socket path \
             (--socket or [daemon] socket)",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    }
    let file_name = path
        .file_name()
        .ok_or_else(|| anyhow!("control socket path {} has no file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let listener = std::os::unix::net::UnixListener::bind(&tmp)
        .with_context(|| format!("cannot create the control socket {}", path.display()))?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e)
            .with_context(|| format!("cannot create the control socket {}", path.display()));
    }
    listener
        .set_nonblocking(true)
        .context("cannot make the control socket non-blocking")?;
    let meta = std::fs::symlink_metadata(path).with_context(|| {
        format!(
            "control socket {} vanished right after binding",
            path.display()
        )
    })?;
    Ok(ControlListener {
        listener,
        guard: SocketGuard {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        },
    })
}

/// Accepts connections concurrently, each on its own task, until `calls` is closed. Must run inside a
/// tokio runtime. The socket file is removed when this returns or is dropped. An `events` request is
/// refused (no event stream here); the daemon uses [`accept_loop_with_events`].
pub async fn accept_loop(
    listener: ControlListener,
    calls: mpsc::Sender<ControlCall>,
) -> anyhow::Result<()> {
    accept_loop_with_events(listener, calls, None).await
}

/// [`accept_loop`], with the daemon's event broadcaster: an `events` request subscribes to it.
pub async fn accept_loop_with_events(
    listener: ControlListener,
    calls: mpsc::Sender<ControlCall>,
    events: Option<Arc<EventHub>>,
) -> anyhow::Result<()> {
    let ControlListener { listener, guard } = listener;
    let listener = tokio::net::UnixListener::from_std(listener)
        .context("cannot register the control socket with the runtime")?;
    let _guard = guard;
    let mut errors = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(handle_connection(stream, calls.clone(), events.clone()));
                }
                Err(err) => {
                    // Out of file descriptors and the like: wait, never exit.
                    errors += 1;
                    if errors.is_power_of_two() {
                        tracing::warn!("control socket: cannot accept a connection: {err} ({errors} so far)");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = calls.closed() => return Ok(()),
        }
    }
}

async fn handle_connection(
    stream: tokio::net::UnixStream,
    calls: mpsc::Sender<ControlCall>,
    events: Option<Arc<EventHub>>,
) {
    let (mut read, mut write) = stream.into_split();
    let mut stream = None;
    let response = match tokio::time::timeout(IO_TIMEOUT, read_request(&mut read)).await {
        Err(_) => Response::Error {
            message: format!("no complete request line within {}s", IO_TIMEOUT.as_secs()),
        },
        Ok(Err(message)) => Response::Error { message },
        Ok(Ok(Request::Events { name })) => match &events {
            None => Response::Error {
                message: "this control socket has no event stream".to_string(),
            },
            // Subscribed before the daemon answers, so nothing between the two is missed.
            Some(hub) => match hub.try_subscribe(name.clone()) {
                Err(message) => Response::Error { message },
                Ok((rx, lag)) => {
                    let response = dispatch(Request::Events { name }, &calls).await;
                    if matches!(response, Response::Done { .. }) {
                        stream = Some((rx, lag, hub.clone()));
                    } else {
                        lag.end();
                        drop(rx);
                    }
                    response
                }
            },
        },
        Ok(Ok(request)) => dispatch(request, &calls).await,
    };
    let mut line = encode_response(&response);
    line.push('\n');
    if let Some((rx, lag, hub)) = stream {
        if tokio::time::timeout(IO_TIMEOUT, write.write_all(line.as_bytes()))
            .await
            .is_ok_and(|r| r.is_ok())
        {
            serve_stream(read, write, rx, lag, hub).await;
        }
        return;
    }
    let _ = tokio::time::timeout(IO_TIMEOUT, async {
        write.write_all(line.as_bytes()).await?;
        write.shutdown().await
    })
    .await;
}

async fn read_request(read: &mut tokio::net::unix::OwnedReadHalf) -> Result<Request, String> {
    use tokio::io::AsyncReadExt;
    let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST as u64 + 1));
    let mut line = Vec::new();
    reader
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("cannot read the request: {e}"))?;
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() > MAX_REQUEST {
        return Err(format!(
            "request line longer than {MAX_REQUEST} bytes; a request is one short JSON object per line"
        ));
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(format!(
            "empty request; send one JSON object per line, like {REQUEST_EXAMPLE}"
        ));
    }
    parse_request(&line)
}

async fn dispatch(request: Request, calls: &mpsc::Sender<ControlCall>) -> Response {
    let (reply, answer) = oneshot::channel();
    if calls.send(ControlCall { request, reply }).await.is_err() {
        return Response::Error {
            message: "the daemon is shutting down; try again once it has restarted".to_string(),
        };
    }
    match answer.await {
        Ok(response) => response,
        Err(_) => Response::Error {
            message: "the daemon dropped the request without answering (is it shutting down?)"
                .to_string(),
        },
    }
}
