//! The HTTP edge: the `[daemon] metrics = "127.0.0.1:9797"` endpoint (`GET /metrics`, rendered by
//! [`metrics`]).
//!
//! The daemon loop knows nothing about metrics. On each scrape the server asks the loop for the same
//! status `floatip status` shows (a `control::Request::Status` over the control channel) and renders it.
//! So the loop pays nothing between scrapes, the numbers can never disagree with `floatip status`, and
//! a hung loop shows up as a failing scrape (503), which is exactly what an alert on `up == 0` catches.
//!
//! The HTTP side is deliberately tiny: one request per connection (`Connection: close`), requests
//! bounded in size and time, a bounded number of connections at once, errors answered with 400, 404,
//! 405, 431 or 503 and never propagated to the daemon.

pub mod metrics;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::{debug, warn};

use crate::control::{ControlCall, InstanceStatus, Request, Response};
use metrics::{render, CONTENT_TYPE};

/// The largest request head (request line plus headers) read; a scrape sends about 200 bytes.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request, and we to write the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a scrape waits for the daemon loop before answering 503.
pub const LOOP_TIMEOUT: Duration = Duration::from_secs(3);
/// Connections served at once; more wait in the kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 16;

/// Binds the metrics listener before the daemon reports READY, so a taken port is a startup error
/// with the address in it, not a silent missing endpoint. Works outside a tokio runtime.
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| {
        format!("cannot serve metrics on {addr} ([daemon] metrics): is another process using that port?")
    })?;
    listener
        .set_nonblocking(true)
        .context("cannot make the metrics socket non-blocking")?;
    Ok(listener)
}

/// Serves `GET /metrics` on `listener` until the daemon loop drops its receiver of `calls`. Errors on
/// single connections are logged at debug level and never end the server.
pub async fn serve(
    listener: std::net::TcpListener,
    calls: mpsc::Sender<ControlCall>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .context("cannot register the metrics socket with the runtime")?;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut errors = 0u64;
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return Ok(()),
            },
            _ = calls.closed() => return Ok(()),
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let calls = calls.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        if let Err(err) = handle(stream, &calls).await {
                            debug!("metrics: connection from {peer}: {err}");
                        }
                    });
                }
                Err(err) => {
                    errors += 1;
                    if errors.is_power_of_two() {
                        warn!("metrics: cannot accept a connection: {err} ({errors} so far)");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = calls.closed() => return Ok(()),
        }
    }
}

/// What a request head asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Metrics {
        head: bool,
    },
    Index {
        head: bool,
    },
    /// An error answer: status code and reason phrase.
    Error(u16, &'static str),
}

/// Parses a request head (everything up to the blank line) into a route.
pub fn route(head: &[u8]) -> Route {
    let Ok(text) = std::str::from_utf8(head) else {
        return Route::Error(400, "Bad Request");
    };
    let Some(line) = text.split("\r\n").next() else {
        return Route::Error(400, "Bad Request");
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::Error(400, "Bad Request");
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Route::Error(400, "Bad Request");
    }
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Route::Error(405, "Method Not Allowed"),
    };
    let path = target.split('?').next().unwrap_or(target);
    match path {
        "/metrics" => Route::Metrics { head },
        "/" => Route::Index { head },
        _ => Route::Error(404, "Not Found"),
    }
}

/// Reads the request head: up to the blank line, at most [`MAX_REQUEST_HEAD`] bytes.
async fn read_head(stream: &mut tokio::net::TcpStream) -> Result<Vec<u8>, Route> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(Route::Error(400, "Bad Request")),
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return Ok(buf);
        }
        if buf.len() > MAX_REQUEST_HEAD {
            return Err(Route::Error(431, "Request Header Fields Too Large"));
        }
    }
}

/// Asks the loop for the status of every instance.
async fn snapshot(calls: &mpsc::Sender<ControlCall>) -> Result<Vec<InstanceStatus>, String> {
    let (reply, answer) = oneshot::channel();
    let asked = async {
        calls
            .send(ControlCall {
                request: Request::Status { instance: None },
                reply,
            })
            .await
            .map_err(|_| "the daemon is shutting down".to_string())?;
        answer
            .await
            .map_err(|_| "the daemon dropped the request".to_string())
    };
    match tokio::time::timeout(LOOP_TIMEOUT, asked).await {
        Err(_) => Err(format!(
            "the daemon loop did not answer within {}s",
            LOOP_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Err(e),
        Ok(Ok(Response::Status { instances, .. })) => Ok(instances),
        Ok(Ok(other)) => Err(format!("unexpected answer from the daemon loop: {other:?}")),
    }
}

async fn handle(
    mut stream: tokio::net::TcpStream,
    calls: &mpsc::Sender<ControlCall>,
) -> std::io::Result<()> {
    let route = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut stream)).await {
        Err(_) => Route::Error(408, "Request Timeout"),
        Ok(Err(r)) => r,
        Ok(Ok(head)) => route(&head),
    };
    let response = match route {
        Route::Metrics { head } => match snapshot(calls).await {
            Ok(instances) => response(200, "OK", CONTENT_TYPE, &render(&instances), head),
            Err(e) => {
                warn!("metrics: scrape failed: {e}");
                response(
                    503,
                    "Service Unavailable",
                    "text/plain; charset=utf-8",
                    &format!("{e}\n"),
                    false,
                )
            }
        },
        Route::Index { head } => response(
            200,
            "OK",
            "text/plain; charset=utf-8",
            "floatip: metrics are at /metrics\n",
            head,
        ),
        Route::Error(code, reason) => response(
            code,
            reason,
            "text/plain; charset=utf-8",
            &format!("{code} {reason}: this endpoint only serves GET /metrics\n"),
            false,
        ),
    };
    tokio::time::timeout(IO_TIMEOUT, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

fn response(code: u16, reason: &str, content_type: &str, body: &str, head_only: bool) -> String {
    let mut out = String::with_capacity(body.len() + 200);
    let _ = write!(
        out,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if code == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::metrics::tests::status;
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x"),
            Route::Metrics { head: false }
        );
        assert_eq!(
            route(b"GET /metrics?x=1 HTTP/1.0"),
            Route::Metrics { head: false }
        );
        assert_eq!(
            route(b"HEAD /metrics HTTP/1.1"),
            Route::Metrics { head: true }
        );
        assert_eq!(route(b"GET / HTTP/1.1"), Route::Index { head: false });
        assert_eq!(route(b"GET /nope HTTP/1.1"), Route::Error(404, "Not Found"));
        assert_eq!(
            route(b"POST /metrics HTTP/1.1"),
            Route::Error(405, "Method Not Allowed")
        );
        for bad in [
            &b"GET /metrics"[..],
            b"GET  /metrics HTTP/1.1",
            b"GET metrics HTTP/1.1",
            b"GET /metrics SPDY/3",
            b"\xff\xfe",
            b"",
        ] {
            assert_eq!(route(bad), Route::Error(400, "Bad Request"), "{bad:?}");
        }
    }

    /// Serves on a free loopback port; returns its address and the loop's end of the calls.
    fn start() -> (SocketAddr, mpsc::Receiver<ControlCall>) {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel::<ControlCall>(4);
        tokio::spawn(serve(listener, tx));
        (addr, rx)
    }

    /// Sends `req` on a new connection and reads the answer to its end, waiting at most `wait`.
    async fn exchange(addr: SocketAddr, req: &'static [u8], wait: Duration) -> String {
        use std::io::{Read, Write};
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(wait)).unwrap();
            s.write_all(req).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
        .await
        .unwrap()
    }

    /// The server end to end on loopback, with a fake loop answering status requests.
    #[tokio::test]
    async fn serves_scrapes_and_rejects_junk() {
        let (addr, mut rx) = start();
        tokio::spawn(async move {
            while let Some(call) = rx.recv().await {
                let _ = call.reply.send(Response::Status {
                    instances: vec![status("files", "MASTER")],
                    groups: Vec::new(),
                });
            }
        });
        let get = |req: &'static [u8]| exchange(addr, req, Duration::from_secs(10));
        let ok = get(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains(r#"floatip_instance_state{vrrp_instance="files",state="MASTER"} 1"#));
        let nf = get(b"GET /x HTTP/1.1\r\n\r\n").await;
        assert!(nf.starts_with("HTTP/1.1 404"), "{nf}");
        let bad = get(b"hello\r\n\r\n").await;
        assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
        let huge: &'static [u8] = Box::leak(vec![b'a'; MAX_REQUEST_HEAD * 2].into_boxed_slice());
        let big = get(huge).await;
        assert!(big.starts_with("HTTP/1.1 431"), "{big}");
        // Still serving after all that.
        let again = get(b"GET /metrics HTTP/1.0\r\n\r\n").await;
        assert!(again.starts_with("HTTP/1.1 200 OK\r\n"), "{again}");
    }

    #[tokio::test]
    async fn a_loop_that_never_answers_is_a_503() {
        let (addr, mut rx) = start();
        // Holds the calls without answering, like a stuck loop.
        let held = tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Some(call) = rx.recv().await {
                kept.push(call);
            }
        });
        let out = exchange(
            addr,
            b"GET /metrics HTTP/1.1\r\n\r\n",
            Duration::from_secs(20),
        )
        .await;
        assert!(out.starts_with("HTTP/1.1 503"), "{out}");
        held.abort();
    }
}
