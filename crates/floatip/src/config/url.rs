//! An http check's `url`, read once: the config refuses what the check could not use, and the check
//! sends its GET to what this reading finds (hyper's `Uri` underneath).

use hyper::Uri;

/// The parts of a URL a GET needs, read by hyper's `Uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    pub https: bool,
    /// Host without brackets (an IP literal or a name to resolve).
    pub host: String,
    pub port: u16,
    /// The Host header value (as written in the URL).
    pub authority: String,
    /// Path and query, at least "/".
    pub path: String,
}

/// Reads an `http://` or `https://` URL; `Err` is the reason it cannot be used, without the URL
/// ("does not start with http:// or https://").
pub fn parse_http_url(url: &str) -> Result<HttpTarget, String> {
    if url.contains(char::is_whitespace) {
        return Err("contains spaces".into());
    }
    // A fragment is never sent; hyper's Uri does not take one.
    let url = url.split('#').next().unwrap_or(url);
    let https = if url.starts_with("https://") {
        true
    } else if url.starts_with("http://") {
        false
    } else {
        return Err("does not start with http:// or https://".into());
    };
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("is not a valid URL ({e})"))?;
    let authority = uri.authority().ok_or("has no host")?.clone();
    if authority.as_str().contains('@') {
        return Err("has user:password@, which is not supported".into());
    }
    let bracketed = authority.host();
    let host = bracketed.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("has no host".into());
    }
    // What follows the host: nothing, or ":PORT".
    let after = authority
        .as_str()
        .rsplit_once(bracketed)
        .map_or("", |(_, a)| a);
    let port = match after.strip_prefix(':') {
        None | Some("") => {
            if https {
                443
            } else {
                80
            }
        }
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => return Err(format!("has a bad port {p:?}")),
        },
    };
    Ok(HttpTarget {
        https,
        host: host.to_string(),
        port,
        authority: authority.as_str().to_string(),
        // `path()` is "/" when the URL has none ("http://x?q" asks for "/?q").
        path: match uri.query() {
            Some(q) => format!("{}?{q}", uri.path()),
            None => uri.path().to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = parse_http_url("http://127.0.0.1:8080/health?x=1").unwrap();
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.path.as_str(),
                u.authority.as_str()
            ),
            ("127.0.0.1", 8080, "/health?x=1", "127.0.0.1:8080")
        );
        let u = parse_http_url("http://[::1]/").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("::1", 80, "/"));
        let u = parse_http_url("http://localhost?q").unwrap();
        assert_eq!((u.host.as_str(), u.path.as_str()), ("localhost", "/?q"));
        let u = parse_http_url("https://nas.home.arpa/ui#top").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path.as_str()),
            (true, "nas.home.arpa", 443, "/ui")
        );
        assert!(parse_http_url("ftp://x/").is_err());
        assert!(parse_http_url("http://:80/").is_err());
        assert!(parse_http_url("http://x:99999/").is_err());
        assert!(parse_http_url("http://u:p@x/").is_err());
    }
}
