//! The CLI's side of the control socket: one request, one answer, and errors that say whether a
//! daemon is there at all.

use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::Path;

use anyhow::{anyhow, bail, Context};

use super::protocol::{encode_request, parse_response, Request, Response, IO_TIMEOUT};

/// Sends one request and waits (at most [`IO_TIMEOUT`] per step) for the answer.
pub fn call(socket: &Path, request: Request) -> anyhow::Result<Response> {
    open(socket, &request).map(|(answer, _)| answer)
}

/// Sends `request` and reads its first answer line (at most [`IO_TIMEOUT`] per step); also returns
/// the connection, read-buffered, for a request that goes on as a stream (`floatip events`).
pub(super) fn open(
    socket: &Path,
    request: &Request,
) -> anyhow::Result<(Response, BufReader<StdUnixStream>)> {
    let stream = StdUnixStream::connect(socket).map_err(|e| connect_error(socket, &e))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut line = encode_request(request);
    line.push('\n');
    (&stream).write_all(line.as_bytes()).with_context(|| {
        format!(
            "cannot send the request to the daemon on {}",
            socket.display()
        )
    })?;
    let mut reader = BufReader::new(stream);
    let mut answer = Vec::new();
    reader.read_until(b'\n', &mut answer).map_err(|e| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            anyhow!(
                "the daemon on {} did not answer within {}s (is it stuck? `journalctl -u floatip`)",
                socket.display(),
                IO_TIMEOUT.as_secs()
            )
        } else {
            anyhow!(
                "cannot read the daemon's answer on {}: {e}",
                socket.display()
            )
        }
    })?;
    if answer.is_empty() {
        bail!(
            "the daemon on {} closed the connection without answering (see `journalctl -u floatip`)",
            socket.display()
        );
    }
    Ok((parse_response(&answer)?, reader))
}

/// Whether an error from [`call`] means that no daemon is there at all.
pub fn is_no_daemon(err: &anyhow::Error) -> bool {
    err.downcast_ref::<NoDaemon>().is_some()
}

/// No daemon listens on the socket (absent, or stale).
#[derive(Debug)]
struct NoDaemon(String);

impl std::fmt::Display for NoDaemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoDaemon {}

fn connect_error(socket: &Path, e: &std::io::Error) -> anyhow::Error {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ECONNREFUSED) | Some(libc::ENOTDIR) => {
            anyhow::Error::new(NoDaemon(format!(
                "no floatip daemon is listening on {} (is `floatip run` started? `systemctl status \
                 floatip`; or pass --socket)",
                socket.display()
            )))
        }
        Some(libc::EACCES) | Some(libc::EPERM) => anyhow!(
            "permission denied on {}: the control socket is root-only; run this as root (sudo floatip ...)",
            socket.display()
        ),
        _ => anyhow!("cannot connect to the floatip daemon on {}: {e}", socket.display()),
    }
}
