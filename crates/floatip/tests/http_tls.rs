//! HTTPS checks against a real HTTPS server in this test process on 127.0.0.1 (rustls + hyper), with
//! certificates made here by rcgen: signed by a test CA (valid, expired, for another name) and
//! self-signed. Each case asserts the check's verdict and the words of its reason.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TempDir;
use floatip::config::{CheckKind, HttpTls};
use floatip::health;
use http_body_util::Full;
use hyper::body::Bytes;
use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

const TIMEOUT: Duration = Duration::from_secs(5);

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "floatip test CA");
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A leaf certificate for `names`; signed by `ca`, or self-signed without one; `expired` puts its
/// validity in 2020.
fn leaf(names: &[&str], ca: Option<&Ca>, expired: bool) -> (Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, names.first().copied().unwrap_or("x"));
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 12, 31);
    }
    let cert = match ca {
        Some(ca) => params.signed_by(&key, &ca.cert, &ca.key).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    (cert, key)
}

/// The certificate a [`https_server`] presents, switchable while it runs.
#[derive(Debug)]
struct Presented(Mutex<Arc<CertifiedKey>>);

impl Presented {
    fn new(cert: &Certificate, key: &KeyPair) -> Arc<Presented> {
        Arc::new(Presented(Mutex::new(certified(cert, key))))
    }

    fn switch(&self, cert: &Certificate, key: &KeyPair) {
        *self.0.lock().unwrap() = certified(cert, key);
    }
}

impl ResolvesServerCert for Presented {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.lock().unwrap().clone())
    }
}

fn certified(cert: &Certificate, key: &KeyPair) -> Arc<CertifiedKey> {
    let key = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            key.serialize_der(),
        )))
        .unwrap();
    Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(cert.der().to_vec())],
        key,
    ))
}

/// An HTTPS server on 127.0.0.1 presenting `cert`: `GET /health` answers 200 "healthy", anything else
/// 404. Runs until the test's runtime ends.
async fn https_server(cert: &Certificate, key: &KeyPair) -> SocketAddr {
    serve_presented(Presented::new(cert, key)).await
}

/// [`https_server`] with the certificate `presented` holds now (rustls' default server session
/// cache on, so a client that offers resumption gets it).
async fn serve_presented(presented: Arc<Presented>) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(presented);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A refused certificate ends the handshake here: nothing to serve.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|req: hyper::Request<_>| async move {
                    let (code, body) = if req.uri().path() == "/health" {
                        (200, "healthy")
                    } else {
                        (404, "no")
                    };
                    let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
                    *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
                    Ok::<_, std::convert::Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

fn https(url: String, tls: HttpTls, body: Option<&str>) -> CheckKind {
    CheckKind::Http {
        url,
        expect_status: None,
        expect_body: body.map(str::to_string),
        tls,
    }
}

fn with_ca(dir: &TempDir, name: &str, pem: &str) -> HttpTls {
    std::fs::write(dir.path(name), pem).unwrap();
    HttpTls {
        ca_file: Some(dir.path(name)),
        ..HttpTls::default()
    }
}

#[tokio::test]
async fn http_tls_valid_certificate_with_ca_file() {
    let dir = TempDir::new("tls-valid");
    let ca = ca();
    let (cert, key) = leaf(&["localhost", "127.0.0.1"], Some(&ca), false);
    let addr = https_server(&cert, &key).await;
    let tls = with_ca(&dir, "ca.pem", &ca.cert.pem());

    let by_ip = format!("https://{addr}/health");
    let ok = health::run_once(&https(by_ip.clone(), tls.clone(), Some("healthy")), TIMEOUT).await;
    assert_eq!(ok, Ok(()));
    let by_name = format!("https://localhost:{}/health", addr.port());
    assert_eq!(
        health::run_once(&https(by_name, tls.clone(), None), TIMEOUT).await,
        Ok(())
    );
    // The TLS part is right, the HTTP part still counts.
    let e = health::run_once(
        &https(format!("https://{addr}/missing"), tls.clone(), None),
        TIMEOUT,
    )
    .await
    .unwrap_err();
    assert!(e.contains("status 404"), "{e}");
    // Without the CA file the web roots do not know the test CA.
    let e = health::run_once(&https(by_ip, HttpTls::default(), None), TIMEOUT)
        .await
        .unwrap_err();
    assert!(e.contains("unknown issuer"), "{e}");
}

#[tokio::test]
async fn http_tls_expired_certificate() {
    let dir = TempDir::new("tls-expired");
    let ca = ca();
    let (cert, key) = leaf(&["127.0.0.1"], Some(&ca), true);
    let addr = https_server(&cert, &key).await;
    let tls = with_ca(&dir, "ca.pem", &ca.cert.pem());
    let e = health::run_once(&https(format!("https://{addr}/health"), tls, None), TIMEOUT)
        .await
        .unwrap_err();
    assert!(e.contains("certificate expired"), "{e}");
    assert!(e.contains(&format!("TLS with {addr}")), "{e}");
    // insecure_skip_verify accepts it all the same.
    let skip = HttpTls {
        insecure_skip_verify: true,
        ..HttpTls::default()
    };
    assert_eq!(
        health::run_once(
            &https(format!("https://{addr}/health"), skip, None),
            TIMEOUT
        )
        .await,
        Ok(())
    );
}

#[tokio::test]
async fn http_tls_wrong_name_and_tls_server_name() {
    let dir = TempDir::new("tls-name");
    let ca = ca();
    let (cert, key) = leaf(&["nas.home.arpa"], Some(&ca), false);
    let addr = https_server(&cert, &key).await;
    let tls = with_ca(&dir, "ca.pem", &ca.cert.pem());
    let url = format!("https://{addr}/health");
    let e = health::run_once(&https(url.clone(), tls.clone(), None), TIMEOUT)
        .await
        .unwrap_err();
    assert!(e.contains("certificate name mismatch"), "{e}");
    assert!(
        e.contains("nas.home.arpa") && e.contains("127.0.0.1"),
        "{e}"
    );
    // The URL names the address; tls_server_name names the certificate.
    let named = HttpTls {
        server_name: Some("nas.home.arpa".into()),
        ..tls.clone()
    };
    assert_eq!(
        health::run_once(&https(url.clone(), named, Some("healthy")), TIMEOUT).await,
        Ok(())
    );
    let other = HttpTls {
        server_name: Some("files.home.arpa".into()),
        ..tls
    };
    let e = health::run_once(&https(url, other, None), TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        e.contains("certificate name mismatch") && e.contains("files.home.arpa"),
        "{e}"
    );
}

#[tokio::test]
async fn http_tls_self_signed_with_and_without_ca_file() {
    let dir = TempDir::new("tls-self");
    let (cert, key) = leaf(&["127.0.0.1"], None, false);
    let addr = https_server(&cert, &key).await;
    let url = format!("https://{addr}/health");

    let e = health::run_once(&https(url.clone(), HttpTls::default(), None), TIMEOUT)
        .await
        .unwrap_err();
    assert!(e.contains("unknown issuer"), "{e}");
    assert!(
        e.contains("ca_file") && e.contains("insecure_skip_verify"),
        "{e}"
    );

    // The certificate itself as the CA file: trusted.
    let tls = with_ca(&dir, "self.pem", &cert.pem());
    assert_eq!(
        health::run_once(&https(url.clone(), tls, Some("healthy")), TIMEOUT).await,
        Ok(())
    );
    // Another CA's file: still unknown.
    let tls = with_ca(&dir, "other.pem", &ca().cert.pem());
    let e = health::run_once(&https(url.clone(), tls, None), TIMEOUT)
        .await
        .unwrap_err();
    assert!(e.contains("unknown issuer"), "{e}");
    // insecure_skip_verify: accepted.
    let skip = HttpTls {
        insecure_skip_verify: true,
        ..HttpTls::default()
    };
    assert_eq!(
        health::run_once(&https(url, skip, None), TIMEOUT).await,
        Ok(())
    );
}

#[tokio::test]
async fn http_tls_handshake_timeout_and_bad_ca_file() {
    let dir = TempDir::new("tls-timeout");
    // Accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let e = health::run_once(
        &https(format!("https://{addr}/"), HttpTls::default(), None),
        Duration::from_millis(400),
    )
    .await
    .unwrap_err();
    assert!(e.contains("TLS handshake timeout"), "{e}");
    assert!(e.contains("400ms"), "{e}");

    let missing = HttpTls {
        ca_file: Some(dir.path("nope.pem")),
        ..HttpTls::default()
    };
    let e = health::run_once(&https(format!("https://{addr}/"), missing, None), TIMEOUT)
        .await
        .unwrap_err();
    assert!(e.contains("nope.pem") && e.contains("cannot read"), "{e}");
    let empty = with_ca(&dir, "empty.pem", "not a certificate\n");
    let e = health::run_once(&https(format!("https://{addr}/"), empty, None), TIMEOUT)
        .await
        .unwrap_err();
    assert!(e.contains("no CERTIFICATE"), "{e}");
}

/// Every attempt is a full handshake: a certificate replaced by an expired one on a server that would
/// resume the earlier session is noticed on the very next attempt.
#[tokio::test]
async fn http_tls_every_attempt_checks_the_certificate_again() {
    let dir = TempDir::new("tls-again");
    let ca = ca();
    let (good, good_key) = leaf(&["127.0.0.1"], Some(&ca), false);
    let (old, old_key) = leaf(&["127.0.0.1"], Some(&ca), true);
    let presented = Presented::new(&good, &good_key);
    let addr = serve_presented(presented.clone()).await;
    let kind = https(
        format!("https://{addr}/health"),
        with_ca(&dir, "ca.pem", &ca.cert.pem()),
        None,
    );
    for _ in 0..3 {
        assert_eq!(health::run_once(&kind, TIMEOUT).await, Ok(()));
    }
    presented.switch(&old, &old_key);
    let e = health::run_once(&kind, TIMEOUT).await.unwrap_err();
    assert!(e.contains("certificate expired"), "{e}");
}
