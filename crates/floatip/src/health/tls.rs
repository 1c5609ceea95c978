//! TLS for `https://` http checks, with rustls and its ring provider: the client configuration (the
//! built-in web roots, or the CA certificates of `ca_file`, or no verification at all for
//! `insecure_skip_verify`), the name checked (`tls_server_name` or the URL's host), and a failed
//! handshake in words a person acts on (expired, name mismatch, unknown issuer, ...).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::config::HttpTls;
use crate::exec::io_text;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, String> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))
}

/// The client configuration of one check. The web-roots and the skip-verify ones are built once; a
/// `ca_file` one is kept while the file's size and mtime stay the same, so a renewed CA file is picked
/// up on the next attempt without a reload, and an unchanged one is not parsed on every attempt.
pub(super) fn client_config(tls: &HttpTls) -> Result<Arc<ClientConfig>, String> {
    static WEB_ROOTS: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    static SKIP_VERIFY: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    type Stamp = (u64, Option<std::time::SystemTime>);
    static CA_FILES: Mutex<Vec<(PathBuf, Stamp, Arc<ClientConfig>)>> = Mutex::new(Vec::new());
    if tls.insecure_skip_verify {
        if let Some(config) = SKIP_VERIFY.get() {
            return Ok(config.clone());
        }
        let mut config = builder()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth();
        finish(&mut config);
        return Ok(SKIP_VERIFY.get_or_init(|| Arc::new(config)).clone());
    }
    if let Some(path) = &tls.ca_file {
        let stamp: Stamp = std::fs::metadata(path)
            .map(|m| (m.len(), m.modified().ok()))
            .unwrap_or((0, None));
        let mut cache = CA_FILES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, config)) = cache
            .iter()
            .find(|(p, s, _)| p == path && *s == stamp && stamp.1.is_some())
        {
            return Ok(config.clone());
        }
        let config = ca_file_config(path)?;
        cache.retain(|(p, _, _)| p != path);
        cache.push((path.clone(), stamp, config.clone()));
        return Ok(config);
    }
    if let Some(config) = WEB_ROOTS.get() {
        return Ok(config.clone());
    }
    let roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut config = builder()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    finish(&mut config);
    Ok(WEB_ROOTS.get_or_init(|| Arc::new(config)).clone())
}

/// ALPN http/1.1, and no session resumption: every attempt is a full handshake, so every attempt checks
/// the certificate (a resumed session would not notice that it expired or was replaced).
fn finish(config: &mut ClientConfig) {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
}

/// A configuration trusting exactly the CA certificates of the PEM file `path`.
fn ca_file_config(path: &Path) -> Result<Arc<ClientConfig>, String> {
    let mut config = {
        let shown = path.display();
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| match e {
            rustls::pki_types::pem::Error::Io(e) => {
                format!("ca_file {shown}: cannot read it: {}", io_text(&e))
            }
            other => format!("ca_file {shown}: {other}"),
        })?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("ca_file {shown}: not valid PEM: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("ca_file {shown}: a certificate in it is not usable: {e}"))?;
        }
        if roots.is_empty() {
            return Err(format!(
                "ca_file {shown}: holds no CERTIFICATE block (a PEM file of CA certificates is needed)"
            ));
        }
        builder()?
            .with_root_certificates(roots)
            .with_no_client_auth()
    };
    finish(&mut config);
    Ok(Arc::new(config))
}

/// The name sent as SNI and checked against the certificate: `tls_server_name`, else the URL's host
/// (an IP address is checked against the certificate's IP addresses).
pub(super) fn server_name(
    configured: Option<&str>,
    host: &str,
) -> Result<ServerName<'static>, String> {
    let name = configured.unwrap_or(host);
    ServerName::try_from(name.to_string()).map_err(|_| {
        format!("{name:?} is not a DNS name or IP address a certificate can be checked against")
    })
}

/// A failed TLS connection in words: why the certificate was refused, or what the transport did.
pub(super) fn error_text(e: &std::io::Error) -> String {
    let Some(err) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                "the server closed the connection during the handshake (is it serving TLS on this port?)".to_string()
            }
            _ => format!("handshake failed: {}", io_text(e)),
        };
    };
    match err {
        rustls::Error::InvalidCertificate(c) => certificate_text(c),
        rustls::Error::InvalidMessage(_) => format!(
            "handshake failed: the answer is not TLS ({err}; is the port serving plain http?)"
        ),
        rustls::Error::AlertReceived(alert) => {
            format!("handshake failed: the server refused it ({alert:?} alert)")
        }
        other => format!("handshake failed: {other}"),
    }
}

fn certificate_text(c: &CertificateError) -> String {
    const SKIP: &str = "set ca_file to the CA that signed it, or insecure_skip_verify = true to accept any certificate";
    match c {
        CertificateError::Expired => "certificate expired".to_string(),
        CertificateError::ExpiredContext { time, not_after } => format!(
            "certificate expired {} ago (notAfter is {} days before now)",
            ago(*not_after, *time),
            time.as_secs().saturating_sub(not_after.as_secs()) / 86_400
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate not valid yet (its notBefore is in the future: check this host's clock)"
                .to_string()
        }
        CertificateError::NotValidForName => "certificate name mismatch".to_string(),
        CertificateError::NotValidForNameContext { expected, presented } => format!(
            "certificate name mismatch: it is for {}, not {} (set tls_server_name to a name it is for)",
            if presented.is_empty() {
                "no name".to_string()
            } else {
                presented.join(", ")
            },
            expected.to_str()
        ),
        CertificateError::UnknownIssuer => {
            format!("unknown issuer: the certificate is not signed by a trusted CA (self-signed?); {SKIP}")
        }
        CertificateError::BadSignature => "certificate has a bad signature".to_string(),
        CertificateError::Revoked => "certificate revoked".to_string(),
        other => format!("certificate refused: {other:?}"),
    }
}

/// "3 days", "2 h", "40 s": how long before `now` the time `then` was.
fn ago(then: UnixTime, now: UnixTime) -> String {
    let s = now.as_secs().saturating_sub(then.as_secs());
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

/// `insecure_skip_verify = true`: any certificate is accepted (the handshake's signatures are still
/// checked, so the session is with the holder of the presented key; who that is is not).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
