//! The HTTP edge: the `[daemon] http = "127.0.0.1:9797"` listener (old name `metrics`), served by
//! hyper on the daemon's tokio runtime. Read-only: `GET /` the status page ([`page`]),
//! `GET /status.json` the document `floatip status --json` prints, `GET /metrics` Prometheus text
//! ([`metrics`]); nothing here changes the daemon.
//!
//! The daemon loop knows nothing about HTTP. On each request the server asks the loop for the same
//! status `floatip status` shows (a `control::Request::Status` over the control channel) and renders it.
//! So the loop pays nothing between requests, the page and the numbers can never disagree with
//! `floatip status`, and a hung loop shows up as a failing scrape (503), which is exactly what an alert
//! on `up == 0` catches.
//!
//! Bounds: one request per connection (no keep-alive), request heads at most [`MAX_REQUEST_HEAD`]
//! (hyper answers 431 past it, 400 to what is not HTTP) within [`IO_TIMEOUT`], a deadline per
//! connection, a bounded number of connections at once, where slow clients (slowloris) make room for
//! new ones instead of keeping them waiting; errors never reach the daemon.

pub mod metrics;
pub mod page;

#[cfg(test)]
mod grafana_tests;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::control::{status_document, ControlCall, GroupStatus, InstanceStatus};
use crate::control::{Request as ControlRequest, Response as ControlResponse};

/// The largest request head hyper reads (its smallest buffer); a browser sends under 2 KiB.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request head.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for the daemon loop before answering 503.
pub const LOOP_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one connection may last from accept to close, whatever the client does.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(15);
/// Connections open at once; past it, a new one takes the place of the oldest that has not sent its
/// request head yet (see [`Connections::admit`]). Each costs a file descriptor and a few KiB.
pub const MAX_CONNECTIONS: usize = 64;

const TEXT: &str = "text/plain; charset=utf-8";

/// Binds the listener before the daemon reports READY, so a taken port is a startup error with the
/// address in it, not a silent missing endpoint. Works outside a tokio runtime.
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).with_context(|| {
        format!("cannot serve the status page and metrics on {addr} ([daemon] http): is another process using that port?")
    })?;
    listener
        .set_nonblocking(true)
        .context("cannot make the http socket non-blocking")?;
    Ok(listener)
}

/// Serves the page, `/status.json` and `/metrics` on `listener` until the daemon loop drops its
/// receiver of `calls`. Errors on single connections are logged at debug level and never end the server.
///
/// Every connection is accepted at once (a full table never leaves a new client in the kernel's accept
/// queue); at [`MAX_CONNECTIONS`] the new one takes the place of the oldest that has not sent its
/// request head yet ([`Connections::admit`]), so slow clients cannot keep a quick one out.
pub async fn serve(
    listener: std::net::TcpListener,
    calls: mpsc::Sender<ControlCall>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .context("cannot register the http socket with the runtime")?;
    let connections = Connections::new(MAX_CONNECTIONS);
    let mut errors = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let (slot, shed) = connections.admit();
                    let calls = calls.clone();
                    tokio::spawn(serve_connection(stream, peer, calls, slot, shed));
                }
                Err(err) => {
                    errors += 1;
                    if errors.is_power_of_two() {
                        warn!("http: cannot accept a connection: {err} ({errors} so far)");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = calls.closed() => return Ok(()),
        }
    }
}

/// One connection: at most one request, its head within [`IO_TIMEOUT`], the whole within
/// [`CONNECTION_TIMEOUT`], and closed early if the table sheds it.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    calls: mpsc::Sender<ControlCall>,
    slot: Slot,
    shed: oneshot::Receiver<()>,
) {
    let head_read = slot.head_read.clone();
    let service = hyper::service::service_fn(move |req| {
        // hyper calls this once the whole request head is in: from now on the connection is a
        // client being answered, not a slow one.
        head_read.store(true, Ordering::Relaxed);
        let calls = calls.clone();
        async move { Ok::<_, Infallible>(answer(&req, &calls).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(IO_TIMEOUT)
        .keep_alive(false)
        .max_buf_size(MAX_REQUEST_HEAD)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        done = tokio::time::timeout(CONNECTION_TIMEOUT, conn) => match done {
            Ok(Ok(())) => {}
            Ok(Err(err)) => debug!("http: connection from {peer}: {err}"),
            Err(_) => debug!("http: connection from {peer}: closed after {}s", CONNECTION_TIMEOUT.as_secs()),
        },
        _ = shed => debug!(
            "http: connection from {peer}: closed to make room ({MAX_CONNECTIONS} connections open, this one the oldest without a complete request)"
        ),
    }
    drop(slot);
}

/// The open connections, oldest first, and who makes room when all [`MAX_CONNECTIONS`] are taken.
#[derive(Clone)]
pub struct Connections(Arc<Mutex<Table>>);

struct Table {
    max: usize,
    next: u64,
    /// By accept order: (has sent its request head, drop to close the connection).
    open: BTreeMap<u64, (Arc<AtomicBool>, oneshot::Sender<()>)>,
}

/// A connection's place in [`Connections`]; dropping it frees the place.
pub struct Slot {
    id: u64,
    table: Arc<Mutex<Table>>,
    /// Set once the request head is read.
    pub head_read: Arc<AtomicBool>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .open
            .remove(&self.id);
    }
}

impl Connections {
    pub fn new(max: usize) -> Connections {
        Connections(Arc::new(Mutex::new(Table {
            max: max.max(1),
            next: 0,
            open: BTreeMap::new(),
        })))
    }

    /// A place for a new connection, and the signal that closes it early (it resolves when the
    /// connection is shed). When all places are taken, the oldest connection that has not sent its
    /// request head is shed (slowloris clients hold only the places nobody else needs); when every
    /// one has, the oldest of all (each is bounded by [`CONNECTION_TIMEOUT`] anyway).
    pub fn admit(&self) -> (Slot, oneshot::Receiver<()>) {
        let mut table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        while table.open.len() >= table.max {
            let victim = table
                .open
                .iter()
                .find(|(_, (head_read, _))| !head_read.load(Ordering::Relaxed))
                .or_else(|| table.open.iter().next())
                .map(|(id, _)| *id);
            match victim {
                // Dropping its sender wakes the connection, which closes.
                Some(id) => drop(table.open.remove(&id)),
                None => break,
            }
        }
        let id = table.next;
        table.next += 1;
        let head_read = Arc::new(AtomicBool::new(false));
        let (tx, rx) = oneshot::channel();
        table.open.insert(id, (head_read.clone(), tx));
        (
            Slot {
                id,
                table: self.0.clone(),
                head_read,
            },
            rx,
        )
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).open.len()
    }
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Page,
    StatusJson,
    Metrics,
    /// A path this listener does not serve.
    NotFound,
    /// Anything but GET and HEAD: this listener changes nothing.
    MethodNotAllowed,
}

/// The route of a method and path (hyper has parsed both; the query is ignored).
pub fn route(method: &Method, path: &str) -> Route {
    if method != Method::GET && method != Method::HEAD {
        return Route::MethodNotAllowed;
    }
    match path {
        "/" | "/index.html" => Route::Page,
        "/status.json" => Route::StatusJson,
        "/metrics" => Route::Metrics,
        _ => Route::NotFound,
    }
}

/// The answer to one request (hyper leaves out the body of a HEAD answer).
async fn answer(
    req: &Request<Incoming>,
    calls: &mpsc::Sender<ControlCall>,
) -> Response<Full<Bytes>> {
    let route = route(req.method(), req.uri().path());
    let (instances, groups) =
        match route {
            Route::NotFound => return reply(
                StatusCode::NOT_FOUND,
                TEXT,
                "404 Not Found: this endpoint serves / (status page), /status.json and /metrics\n"
                    .into(),
            ),
            Route::MethodNotAllowed => {
                let mut r = reply(
                    StatusCode::METHOD_NOT_ALLOWED,
                    TEXT,
                    "405 Method Not Allowed: this endpoint is read-only (GET and HEAD)\n".into(),
                );
                r.headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
                return r;
            }
            _ => match snapshot(calls).await {
                Ok(status) => status,
                Err(e) => {
                    warn!("http: {} failed: {e}", req.uri().path());
                    return reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{e}\n"));
                }
            },
        };
    match route {
        Route::Metrics => reply(
            StatusCode::OK,
            metrics::CONTENT_TYPE,
            metrics::render(&instances),
        ),
        Route::StatusJson => {
            let doc = status_document(&instances, &groups);
            let mut body = serde_json::to_string_pretty(&doc).unwrap_or_default();
            body.push('\n');
            reply(StatusCode::OK, "application/json", body)
        }
        _ => reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            page::render(&instances, &groups, SystemTime::now()),
        ),
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Asks the loop for the status of every instance and group.
async fn snapshot(
    calls: &mpsc::Sender<ControlCall>,
) -> Result<(Vec<InstanceStatus>, Vec<GroupStatus>), String> {
    let (reply, answer) = oneshot::channel();
    let asked = async {
        calls
            .send(ControlCall {
                request: ControlRequest::Status { instance: None },
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
        Ok(Ok(ControlResponse::Status { instances, groups })) => Ok((instances, groups)),
        Ok(Ok(other)) => Err(format!("unexpected answer from the daemon loop: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::metrics::tests::status;
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route(&Method::GET, "/metrics"), Route::Metrics);
        assert_eq!(route(&Method::HEAD, "/metrics"), Route::Metrics);
        assert_eq!(route(&Method::GET, "/"), Route::Page);
        assert_eq!(route(&Method::GET, "/status.json"), Route::StatusJson);
        assert_eq!(route(&Method::GET, "/nope"), Route::NotFound);
        assert_eq!(route(&Method::POST, "/metrics"), Route::MethodNotAllowed);
        assert_eq!(route(&Method::DELETE, "/"), Route::MethodNotAllowed);
    }

    /// At the cap, the oldest connection without a request head makes room; one that is being
    /// answered is shed only when every connection is.
    #[test]
    fn a_full_table_sheds_the_oldest_slow_connection() {
        let table = Connections::new(3);
        let (a, mut a_shed) = table.admit();
        let (b, mut b_shed) = table.admit();
        let (_c, mut c_shed) = table.admit();
        a.head_read.store(true, Ordering::Relaxed);
        let (_d, mut d_shed) = table.admit();
        assert_eq!(table.open(), 3);
        assert_eq!(a_shed.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        assert_eq!(
            b_shed.try_recv(),
            Err(oneshot::error::TryRecvError::Closed),
            "b: the oldest without a request head"
        );
        drop(b);
        let (_e, _) = table.admit();
        assert_eq!(c_shed.try_recv(), Err(oneshot::error::TryRecvError::Closed));
        assert_eq!(d_shed.try_recv(), Err(oneshot::error::TryRecvError::Empty));
        // Only answered connections left: the oldest of them goes.
        let full = Connections::new(1);
        let (f, mut f_shed) = full.admit();
        f.head_read.store(true, Ordering::Relaxed);
        let (_g, _) = full.admit();
        assert_eq!(f_shed.try_recv(), Err(oneshot::error::TryRecvError::Closed));
        drop(f);
        assert_eq!(
            full.open(),
            1,
            "a shed slot's drop frees nothing of the newcomer's"
        );
        drop(a);
        assert_eq!(table.open(), 2);
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
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        })
        .await
        .unwrap()
    }

    /// A fake loop answering status requests with one MASTER instance.
    fn answer_status(mut rx: mpsc::Receiver<ControlCall>) {
        tokio::spawn(async move {
            while let Some(call) = rx.recv().await {
                let _ = call.reply.send(ControlResponse::Status {
                    instances: vec![status("files", "MASTER")],
                    groups: Vec::new(),
                });
            }
        });
    }

    /// The server end to end on loopback, with a fake loop answering status requests.
    #[tokio::test]
    async fn serves_scrapes_and_rejects_junk() {
        let (addr, rx) = start();
        answer_status(rx);
        let get = |req: &'static [u8]| exchange(addr, req, Duration::from_secs(10));
        let ok = get(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains(r#"floatip_instance_state{vrrp_instance="files",state="MASTER"} 1"#));
        let head = get(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(!head.contains("floatip_instance_state"), "{head}");
        let nf = get(b"GET /x HTTP/1.1\r\n\r\n").await;
        assert!(nf.starts_with("HTTP/1.1 404"), "{nf}");
        let post = get(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        assert!(
            post.to_ascii_lowercase().contains("allow: get, head"),
            "{post}"
        );
        let bad = get(b"hello\r\n\r\n").await;
        assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
        let huge: &'static [u8] = Box::leak(vec![b'a'; MAX_REQUEST_HEAD * 2].into_boxed_slice());
        let big = get(huge).await;
        assert!(big.starts_with("HTTP/1.1 431"), "{big}");
        // Still serving after all that, to HTTP/1.0 as well.
        let again = get(b"GET /metrics HTTP/1.0\r\n\r\n").await;
        assert!(again.contains(" 200 OK\r\n"), "{again}");
    }

    /// `/status.json` is the `floatip status --json` document; `/` is the page, which names the instance.
    #[tokio::test]
    async fn serves_the_status_document_and_the_page() {
        let (addr, rx) = start();
        answer_status(rx);
        let json = exchange(
            addr,
            b"GET /status.json HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_secs(10),
        )
        .await;
        let (head, body) = json.split_once("\r\n\r\n").unwrap();
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{head}"
        );
        let doc: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            doc,
            status_document(&[status("files", "MASTER")], &[]),
            "{body}"
        );
        let page = exchange(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_secs(10),
        )
        .await;
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
        assert!(
            page.contains("<!DOCTYPE html>") && page.contains("files"),
            "{page}"
        );
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
