//! The metrics port's TLS certificate: one from files (cert-manager's, mounted from a Secret),
//! read again when they change, or else a self-signed one made at start, as controller-runtime
//! makes when given none. ring signs, as everywhere in the process.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// How often mounted files are read again: a Secret's update reaches the pod's volume within
/// about a minute, and cert-manager renews long before expiry.
const RELOAD_INTERVAL: Duration = Duration::from_secs(60);

pub enum CertificateSource {
    SelfSigned,
    /// PEM files: the certificate (chain) and its private key.
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("generating a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("reading {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("the metrics certificate and key: {0}")]
    Tls(#[from] rustls::Error),
}

/// A TLS server configuration for HTTP/1.1 with the certificate of `source`. With files, also
/// starts the task that reads them again when they change (call within a Tokio runtime).
pub fn server_config(source: &CertificateSource) -> Result<Arc<ServerConfig>, CertificateError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resolver = match source {
        CertificateSource::SelfSigned => Arc::new(CurrentCertificate::new(self_signed(&provider)?)),
        CertificateSource::Files { cert, key } => {
            let (certified, loaded) = from_files(cert, key, &provider)?;
            let current = Arc::new(CurrentCertificate::new(certified));
            tokio::spawn(reload_on_change(
                current.clone(),
                cert.clone(),
                key.clone(),
                provider.clone(),
                loaded,
            ));
            current
        }
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn self_signed(provider: &CryptoProvider) -> Result<CertifiedKey, CertificateError> {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let key = PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
    Ok(CertifiedKey::from_der(
        vec![generated.cert.der().clone()],
        key.into(),
        provider,
    )?)
}

/// The certificate of the files, and a digest of their bytes to notice a change by.
fn from_files(
    cert: &PathBuf,
    key: &PathBuf,
    provider: &CryptoProvider,
) -> Result<(CertifiedKey, ring::digest::Digest), CertificateError> {
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let unreadable = |path: &PathBuf, error: rustls_pki_types::pem::Error| CertificateError::Read {
        path: path.clone(),
        message: error.to_string(),
    };
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| unreadable(cert, error))?;
    if chain.is_empty() {
        return Err(CertificateError::Read {
            path: cert.clone(),
            message: "no certificate in the file".to_owned(),
        });
    }
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| unreadable(key, e))?;
    let certified = CertifiedKey::from_der(chain, private_key, provider)?;
    Ok((certified, content_digest(&cert_pem, &key_pem)))
}

fn read(path: &PathBuf) -> Result<Vec<u8>, CertificateError> {
    std::fs::read(path).map_err(|error| CertificateError::Read {
        path: path.clone(),
        message: error.to_string(),
    })
}

fn content_digest(cert_pem: &[u8], key_pem: &[u8]) -> ring::digest::Digest {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(cert_pem);
    context.update(key_pem);
    context.finish()
}

async fn reload_on_change(
    current: Arc<CurrentCertificate>,
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    mut loaded: ring::digest::Digest,
) {
    let mut ticks = tokio::time::interval(RELOAD_INTERVAL);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match from_files(&cert, &key, &provider) {
            Ok((_, digest)) if digest.as_ref() == loaded.as_ref() => {}
            Ok((certified, digest)) => {
                current.replace(certified);
                loaded = digest;
                tracing::info!(cert = %cert.display(), "loaded the renewed metrics certificate");
            }
            // Mid-update (a new certificate beside the old key): keep serving the old one.
            Err(error) => {
                tracing::warn!(%error, "keeping the metrics certificate; its files do not load")
            }
        }
    }
}

/// The certificate every handshake gets, replaced when its files change.
#[derive(Debug)]
struct CurrentCertificate(RwLock<Arc<CertifiedKey>>);

impl CurrentCertificate {
    fn new(certified: CertifiedKey) -> CurrentCertificate {
        CurrentCertificate(RwLock::new(Arc::new(certified)))
    }

    fn replace(&self, certified: CertifiedKey) {
        *self.0.write().unwrap() = Arc::new(certified);
    }
}

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn pem(label: &str, der: &[u8]) -> String {
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|line| std::str::from_utf8(line).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    /// Writes a new certificate and key for `name`; returns the certificate's DER.
    fn write_certificate(dir: &std::path::Path, name: &str) -> Vec<u8> {
        let generated = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        std::fs::write(
            dir.join("tls.crt"),
            pem("CERTIFICATE", generated.cert.der()),
        )
        .unwrap();
        let key = generated.signing_key.serialize_der();
        std::fs::write(dir.join("tls.key"), pem("PRIVATE KEY", &key)).unwrap();
        generated.cert.der().to_vec()
    }

    fn served(current: &CurrentCertificate) -> Vec<u8> {
        current.0.read().unwrap().cert[0].to_vec()
    }

    #[tokio::test(start_paused = true)]
    async fn renewed_files_are_served_after_the_next_reload_and_broken_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let first = write_certificate(dir.path(), "first.example");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (certified, loaded) = from_files(&cert, &key, &provider).unwrap();
        let current = Arc::new(CurrentCertificate::new(certified));
        tokio::spawn(reload_on_change(
            current.clone(),
            cert.clone(),
            key.clone(),
            provider,
            loaded,
        ));
        assert_eq!(served(&current), first);

        let renewed = write_certificate(dir.path(), "renewed.example");
        tokio::time::sleep(RELOAD_INTERVAL + Duration::from_secs(1)).await;
        assert_eq!(served(&current), renewed);

        // Half-written: a certificate without its key. The last good one stays.
        std::fs::write(&key, "not a key").unwrap();
        tokio::time::sleep(RELOAD_INTERVAL).await;
        assert_eq!(served(&current), renewed);
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_certificate(dir.path(), "one.example");
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(
            dir.path().join("tls.key"),
            pem("PRIVATE KEY", &other.serialize_der()),
        )
        .unwrap();
        let provider = rustls::crypto::ring::default_provider();
        let loaded = from_files(
            &dir.path().join("tls.crt"),
            &dir.path().join("tls.key"),
            &provider,
        );
        assert!(matches!(loaded, Err(CertificateError::Tls(_))));
    }
}
