//! One etcd member's client URL as floatip reaches it: HTTP/1.1 (hyper) to the member's gRPC
//! gateway, over TCP for `http://` or rustls for `https://` (the `[etcd]` CA and client certificate).
//! One connection per member, kept alive between requests and dropped after any failure; every
//! request bounded by a deadline. What is sent and read is in [`super::wire`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;

use super::client::Transport;
use super::wire::{self, Answer, Failure, Request};
use crate::config::EtcdConfig;
use crate::text::duration;
use futures::future::BoxFuture;

/// An answer larger than this is not etcd's (a prefix read of one instance's keys is a few KiB).
const MAX_ANSWER: usize = 4 << 20;

/// One member: where it is, and the connection to it while one is open.
pub(super) struct Endpoint {
    /// The URL as configured ("http://192.0.2.11:2379"), for people.
    url: String,
    host: String,
    port: u16,
    /// The Host header.
    authority: String,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl Endpoint {
    /// Every `[etcd] endpoints` entry. The TLS files are read here: an unreadable one stops the
    /// start with the reason. Nothing connects yet.
    pub fn all(etcd: &EtcdConfig) -> Result<Vec<Box<dyn Transport>>> {
        let tls = if etcd.endpoints.iter().any(|e| e.starts_with("https://")) {
            Some(tls_config(etcd)?)
        } else {
            None
        };
        etcd.endpoints
            .iter()
            .map(|url| Ok(Box::new(Endpoint::new(url, tls.clone())?) as Box<dyn Transport>))
            .collect()
    }

    fn new(url: &str, tls: Option<Arc<ClientConfig>>) -> Result<Endpoint> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("[etcd] endpoint {url} is not a URL"))?;
        let https = uri.scheme_str() == Some("https");
        let host = uri
            .host()
            .with_context(|| format!("[etcd] endpoint {url} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(2379);
        let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        let tls = match (https, tls) {
            (true, Some(config)) => {
                let name = ServerName::try_from(host.clone()).with_context(|| {
                    format!("[etcd] endpoint {url}: {host} is not a name a certificate can be checked against")
                })?;
                Some((config, name))
            }
            (true, None) => {
                anyhow::bail!("[etcd] endpoint {url} is https:// but there is no TLS set-up")
            }
            (false, _) => None,
        };
        Ok(Endpoint {
            url: url.to_string(),
            host,
            port,
            authority,
            tls,
            conn: None,
        })
    }

    /// One request, answered within `timeout` or failed. A failure of the member (or a timeout)
    /// drops the connection: the next request opens a new one.
    async fn request(&mut self, req: &Request, timeout: Duration) -> Result<Answer, Failure> {
        let result = match tokio::time::timeout(timeout, self.exchange(req)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Member(format!(
                "no answer within {}",
                duration(timeout)
            ))),
        };
        if matches!(result, Err(Failure::Member(_))) {
            self.conn = None;
        }
        result
    }

    async fn exchange(&mut self, req: &Request) -> Result<Answer, Failure> {
        let mut conn = match self.conn.take() {
            Some(c) if !c.is_closed() => c,
            _ => self.connect().await?,
        };
        conn.ready()
            .await
            .map_err(|e| member("the connection", &e))?;
        let body = serde_json::to_vec(&req.body()).unwrap_or_default();
        let request = hyper::Request::post(req.path())
            .header(HOST, &self.authority)
            .header(CONTENT_TYPE, "application/json")
            // gRPC metadata through the gateway: a member cut off from the leader says so at once
            // instead of holding the request (etcd's WithRequireLeader).
            .header("grpc-metadata-hasleader", "true")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Failure::Refused(format!("cannot build the request: {e}")))?;
        let answer = conn
            .send_request(request)
            .await
            .map_err(|e| member("the request", &e))?;
        let status = answer.status().as_u16();
        let body = Limited::new(answer.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| Failure::Member(format!("reading the answer: {e}")))?
            .to_bytes();
        self.conn = Some(conn);
        if status == 200 {
            req.answer(&body)
        } else {
            Err(wire::failure(status, &body))
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, Failure> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                Failure::Member(format!("cannot connect: {}", crate::exec::io_text(&e)))
            })?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => handshake(tcp).await,
            Some((config, name)) => {
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| Failure::Member(format!("TLS: {}", crate::exec::io_text(&e))))?;
                handshake(tls).await
            }
        }
    }
}

impl Transport for Endpoint {
    fn url(&self) -> &str {
        &self.url
    }

    fn call<'a>(
        &'a mut self,
        req: &'a Request,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Answer, Failure>> {
        Box::pin(self.request(req, timeout))
    }
}

async fn handshake<S>(io: S) -> Result<SendRequest<Full<Bytes>>, Failure>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| member("the HTTP handshake", &e))?;
    // The connection's driver ends with the connection (closed, failed, or its SendRequest dropped).
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

fn member(what: &str, e: &hyper::Error) -> Failure {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    Failure::Member(format!("{what} failed: {text}"))
}

/// The client TLS set-up of `[etcd]`: its `ca_file` as the only roots, and the client certificate
/// when `cert_file`/`key_file` are set.
fn tls_config(etcd: &EtcdConfig) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    if let Some(ca) = &etcd.ca_file {
        let certs = CertificateDer::pem_file_iter(ca)
            .with_context(|| format!("[etcd] ca_file: cannot read {}", ca.display()))?;
        for cert in certs {
            let cert =
                cert.with_context(|| format!("[etcd] ca_file {}: not valid PEM", ca.display()))?;
            roots.add(cert).with_context(|| {
                format!(
                    "[etcd] ca_file {}: a certificate is not usable",
                    ca.display()
                )
            })?;
        }
    }
    if roots.is_empty() {
        anyhow::bail!("[etcd] has https:// endpoints but ca_file holds no CA certificate");
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS set-up")?
            .with_root_certificates(roots);
    let mut config = match (&etcd.cert_file, &etcd.key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .with_context(|| format!("[etcd] cert_file: cannot read {}", cert.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("[etcd] cert_file {}: not valid PEM", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
                format!(
                    "[etcd] key_file: cannot read a private key from {}",
                    key.display()
                )
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .context("[etcd] cert_file and key_file do not make a client certificate")?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
