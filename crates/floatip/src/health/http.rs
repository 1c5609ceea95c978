//! The http check: one GET with hyper's HTTP/1.1 client, over TCP for `http://` and over rustls for
//! `https://` (the built-in web roots or `ca_file`, `tls_server_name`, `insecure_skip_verify`; the TLS
//! setup lives in [`super::tls`]). Healthy on the expected status (2xx by default) and, if set, a body
//! containing `expect_body` (searched in the first 64 KiB). Each phase (resolve, connect, TLS
//! handshake, answer) runs against the check's one deadline, and a failure names the phase, so a TLS
//! check that fails says why: expired, name mismatch, unknown issuer, handshake timeout.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Body as _;
use hyper::body::Bytes;
use hyper::header::{ACCEPT, CONNECTION, HOST, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use super::tls;
use crate::config::{format_duration, parse_http_url, HttpTarget, HttpTls};
use crate::exec::io_text;

/// `expect_body` is searched in the first this-many bytes of the body.
const HTTP_MAX_BODY: usize = 64 * 1024;
/// The status line and headers may not exceed this (hyper's smallest read buffer).
const HTTP_MAX_HEAD: usize = 16 * 1024;

/// One GET of `url`, all of it within `timeout`. `Err` says why it is not healthy, in words.
pub(super) async fn check(
    url: &str,
    expect_status: Option<u16>,
    expect_body: Option<&str>,
    tls_settings: &HttpTls,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let late = || format!("no answer within {}", format_duration(timeout));
    let target = parse_http_url(url).map_err(|e| format!("{url}: the url {e}"))?;
    let addrs: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => timeout_at(
            deadline,
            tokio::net::lookup_host((target.host.as_str(), target.port)),
        )
        .await
        .map_err(|_| format!("GET {url}: resolving {}: {}", target.host, late()))?
        .map_err(|e| format!("GET {url}: resolving {}: {}", target.host, io_text(&e)))?
        .collect(),
    };
    let mut last_error = format!("GET {url}: {} has no address", target.host);
    let mut connected = None;
    for addr in addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                connected = Some((s, addr));
                break;
            }
            Ok(Err(e)) => last_error = format!("GET {url}: connect {addr}: {}", io_text(&e)),
            Err(_) => return Err(format!("GET {url}: connect {addr}: {}", late())),
        }
    }
    let (stream, addr) = connected.ok_or(last_error)?;
    let response = if target.https {
        let config = tls::client_config(tls_settings)?;
        let name = tls::server_name(tls_settings.server_name.as_deref(), &target.host)?;
        let shown = tls_settings.server_name.as_deref().unwrap_or(&target.host);
        let connector = tokio_rustls::TlsConnector::from(config);
        let stream = match timeout_at(deadline, connector.connect(name, stream)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(format!(
                    "GET {url}: TLS with {addr} ({shown}): {}",
                    tls::error_text(&e)
                ))
            }
            Err(_) => {
                return Err(format!(
                "GET {url}: TLS handshake timeout: {addr} did not finish the handshake within {}",
                format_duration(timeout)
            ))
            }
        };
        exchange(stream, &target, expect_body.is_some(), deadline).await
    } else {
        exchange(stream, &target, expect_body.is_some(), deadline).await
    };
    let response = match response {
        Some(Ok(r)) => r,
        Some(Err(e)) => return Err(format!("GET {url}: {e}")),
        None => return Err(format!("GET {url}: {}", late())),
    };
    let status_ok = match expect_status {
        Some(want) => response.status.as_u16() == want,
        None => response.status.is_success(),
    };
    if !status_ok {
        let want = expect_status.map_or("2xx".to_string(), |s| s.to_string());
        return Err(format!(
            "GET {url}: status {} {}, expected {want}",
            response.status.as_u16(),
            response.reason
        ));
    }
    if let Some(needle) = expect_body {
        if !contains(&response.body, needle.as_bytes()) {
            let scope = if response.truncated {
                format!(" (first {} KiB searched)", HTTP_MAX_BODY / 1024)
            } else {
                String::new()
            };
            return Err(format!(
                "GET {url}: status {} but the body does not contain {needle:?}{scope}",
                response.status.as_u16()
            ));
        }
    }
    Ok(())
}

#[derive(Debug)]
struct HttpResponse {
    status: StatusCode,
    /// The reason phrase the server sent, or the standard one.
    reason: String,
    body: Vec<u8>,
    /// The body was longer than `HTTP_MAX_BODY` and was cut.
    truncated: bool,
}

/// Sends the GET on `io` and reads the answer (the body only if `want_body`). `None`: the deadline
/// passed first.
async fn exchange<S>(
    io: S,
    target: &HttpTarget,
    want_body: bool,
    deadline: Instant,
) -> Option<Result<HttpResponse, String>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let attempt = async {
        let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
            .title_case_headers(true)
            .max_buf_size(HTTP_MAX_HEAD)
            .handshake::<_, Empty<Bytes>>(TokioIo::new(io))
            .await
            .map_err(|e| hyper_text(&e))?;
        // The connection task ends with the exchange (or when the check's future is dropped).
        let conn = tokio::spawn(conn);
        let _stop = AbortOnDrop(conn);
        let request = Request::get(target.path.as_str())
            .header(HOST, target.authority.as_str())
            .header(USER_AGENT, "floatip-check")
            .header(ACCEPT, "*/*")
            .header(CONNECTION, "close")
            .body(Empty::new())
            .map_err(|e| format!("building the request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| hyper_text(&e))?;
        let status = response.status();
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
            .or_else(|| status.canonical_reason().map(str::to_string))
            .unwrap_or_default();
        let mut out = HttpResponse {
            status,
            reason,
            body: Vec::new(),
            truncated: false,
        };
        if want_body {
            let mut body = response.into_body();
            while out.body.len() < HTTP_MAX_BODY {
                match body.frame().await {
                    None => break,
                    Some(Err(e)) => {
                        return Err(format!("reading the body: {}", hyper_text(&e)));
                    }
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            out.body.extend_from_slice(data);
                        }
                    }
                }
            }
            if out.body.len() > HTTP_MAX_BODY {
                out.body.truncate(HTTP_MAX_BODY);
                out.truncated = true;
            } else if out.body.len() == HTTP_MAX_BODY {
                out.truncated = !body.is_end_stream();
            }
        }
        Ok(out)
    };
    timeout_at(deadline, attempt).await.ok()
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A hyper error in words, with its cause ("connection closed before message completed").
fn hyper_text(e: &hyper::Error) -> String {
    use std::error::Error as _;
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
