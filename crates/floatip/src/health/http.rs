//! The http check: a minimal HTTP/1.1 GET over plain TCP (http:// only), with a bounded head and body;
//! healthy on the expected status (2xx by default) and, if set, a body containing `expect_body`. The
//! caller applies the check's timeout.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::exec::io_text;

/// The status line and headers may not exceed this.
const HTTP_MAX_HEAD: usize = 16 * 1024;
/// `expect_body` is searched in the first this-many bytes of the body.
const HTTP_MAX_BODY: usize = 64 * 1024;

/// The parts of an `http://` URL a GET needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HttpUrl {
    /// Host as written, without brackets (an IP literal or a name to resolve).
    host: String,
    port: u16,
    /// The Host header value (with brackets and port as needed).
    authority: String,
    /// Path and query, at least "/".
    path: String,
}

fn parse_url(url: &str) -> Result<HttpUrl, String> {
    let rest = match url.strip_prefix("http://") {
        Some(rest) => rest,
        None if url.starts_with("https://") => {
            return Err(format!(
                "{url}: https is not supported (http:// only; check a TLS service with a tcp or exec check)"
            ))
        }
        None => return Err(format!("{url}: the url must start with http://")),
    };
    let rest = rest.split('#').next().unwrap_or("");
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('?') => (&rest[..i], format!("/{}", &rest[i..])),
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    if authority.contains('@') {
        return Err(format!("{url}: user:password@ in the url is not supported"));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("{url}: missing ']' after the IPv6 address"))?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("{url}: unexpected text after ']'")),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url}: no host"));
    }
    let port = match port {
        None | Some("") => 80,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("{url}: bad port {p:?}"))?,
    };
    Ok(HttpUrl {
        host: host.to_string(),
        port,
        authority: authority.to_string(),
        path,
    })
}

/// One GET of `url`. `Err` says why it is not healthy, in words.
pub(super) async fn check(
    url: &str,
    expect_status: Option<u16>,
    expect_body: Option<&str>,
) -> Result<(), String> {
    let target = parse_url(url)?;
    let addrs: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, target.port)],
        Err(_) => tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| format!("GET {url}: resolving {}: {}", target.host, io_text(&e)))?
            .collect(),
    };
    let mut last_error = format!("GET {url}: {} has no address", target.host);
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = format!("GET {url}: connect {addr}: {}", io_text(&e)),
        }
    }
    let mut stream = stream.ok_or(last_error)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: floatip-check\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("GET {url}: sending the request: {}", io_text(&e)))?;
    let response = read_response(&mut stream, expect_body.is_some())
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status_ok = match expect_status {
        Some(want) => response.status == want,
        None => (200..300).contains(&response.status),
    };
    if !status_ok {
        let want = expect_status.map_or("2xx".to_string(), |s| s.to_string());
        return Err(format!(
            "GET {url}: status {} {}, expected {want}",
            response.status, response.reason
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
                response.status
            ));
        }
    }
    Ok(())
}

#[derive(Debug)]
struct HttpResponse {
    status: u16,
    reason: String,
    body: Vec<u8>,
    /// The body was longer than `HTTP_MAX_BODY` and was cut.
    truncated: bool,
}

/// Reads the status line and headers, and the body if `want_body`.
async fn read_response(
    stream: &mut (impl AsyncRead + Unpin),
    want_body: bool,
) -> Result<HttpResponse, String> {
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > HTTP_MAX_HEAD {
            return Err(format!(
                "response headers longer than {} KiB",
                HTTP_MAX_HEAD / 1024
            ));
        }
        if read_more(stream, &mut buf, HTTP_MAX_HEAD + 4).await? == 0 {
            return Err(if buf.is_empty() {
                "connection closed without a response".to_string()
            } else {
                "connection closed in the middle of the response headers".to_string()
            });
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let (version, code, reason) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("").trim(),
    );
    let status = match code.parse::<u16>() {
        Ok(s) if version.starts_with("HTTP/1.") && (100..1000).contains(&s) => s,
        _ => return Err(format!("not an HTTP/1.x status line: {status_line:?}")),
    };
    let mut response = HttpResponse {
        status,
        reason: reason.to_string(),
        body: Vec::new(),
        truncated: false,
    };
    if !want_body {
        return Ok(response);
    }
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let mut body = buf.split_off(head_end);
    // We asked for `Connection: close`: without a length, the body ends when the server closes.
    let want = match (chunked, content_length) {
        (false, Some(len)) => len.min(HTTP_MAX_BODY),
        _ => HTTP_MAX_BODY,
    };
    // Chunked framing takes a few bytes per chunk; read a little more so the decoded body can fill.
    let read_limit = if chunked { want + want / 8 } else { want };
    while body.len() < read_limit {
        if read_more(stream, &mut body, read_limit).await? == 0 {
            break;
        }
    }
    if chunked {
        body = dechunk(&body);
    }
    response.truncated = body.len() > want || content_length.is_some_and(|len| len > want);
    body.truncate(want);
    response.body = body;
    Ok(response)
}

/// Appends at most `limit - buf.len()` bytes; returns how many were read (0 at end of stream).
async fn read_more(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<usize, String> {
    let mut chunk = [0u8; 4096];
    let room = limit.saturating_sub(buf.len()).clamp(1, chunk.len());
    let n = stream
        .read(&mut chunk[..room])
        .await
        .map_err(|e| format!("reading the response: {}", io_text(&e)))?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// Decodes as much of a chunked body as is present (a cut-off last chunk is kept as far as it goes).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(raw, b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            break;
        };
        if size == 0 {
            break;
        }
        raw = &raw[eol + 2..];
        let take = size.min(raw.len());
        out.extend_from_slice(&raw[..take]);
        if take < size || raw.len() < size + 2 {
            break;
        }
        raw = &raw[size + 2..];
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_url("http://127.0.0.1:8080/health?x=1").unwrap();
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.path.as_str(),
                u.authority.as_str()
            ),
            ("127.0.0.1", 8080, "/health?x=1", "127.0.0.1:8080")
        );
        let u = parse_url("http://[::1]/").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("::1", 80, "/"));
        let u = parse_url("http://localhost?q").unwrap();
        assert_eq!((u.host.as_str(), u.path.as_str()), ("localhost", "/?q"));
        assert!(parse_url("https://x/")
            .unwrap_err()
            .contains("https is not supported"));
        assert!(parse_url("ftp://x/").is_err());
        assert!(parse_url("http://:80/").is_err());
        assert!(parse_url("http://x:99999/").is_err());
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk(b"4\r\nwiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n"),
            b"wikipedia"
        );
        assert_eq!(dechunk(b"a\r\nabc"), b"abc");
    }
}
