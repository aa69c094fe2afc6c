//! What can be wrong with a certificate credential's Secret, each with its own condition reason.
//! Its own file, below both `certificate` (which finds the problems) and `error` (which carries
//! them), so that neither imports the other.

use k8s_openapi::jiff::Timestamp;

/// Why a certificate and key cannot serve as a client credential. Each names what to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertificateProblem {
    #[error("tls.crt holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate,

    #[error(
        "tls.key holds no PEM private key: it must be an unencrypted PKCS#8 (BEGIN PRIVATE KEY) \
         or PKCS#1 (BEGIN RSA PRIVATE KEY) RSA key"
    )]
    NoPrivateKey,

    #[error("the certificate or key cannot be read: {0}")]
    Malformed(String),

    #[error(
        "the certificate expired at {not_after}: upload a renewed certificate to the app \
         registration and put it and its key in the Secret"
    )]
    Expired { not_after: Timestamp },

    #[error(
        "the certificate is not valid before {not_before}: use a certificate valid now, or check \
         the clock"
    )]
    NotYetValid { not_before: Timestamp },

    #[error(
        "tls.key is not the private key of the certificate in tls.crt (with a chain, the first \
         certificate must be the app's own)"
    )]
    KeyDoesNotMatch,

    #[error("the key is {0}: client assertions need an RSA key of 2048 to 8192 bits")]
    UnsupportedKeyType(String),
}

impl CertificateProblem {
    /// The CamelCase reason for a Kubernetes condition or event.
    pub fn reason(&self) -> &'static str {
        match self {
            CertificateProblem::NoCertificate
            | CertificateProblem::NoPrivateKey
            | CertificateProblem::Malformed(_) => "CertificateMalformed",
            CertificateProblem::Expired { .. } => "CertificateExpired",
            CertificateProblem::NotYetValid { .. } => "CertificateNotYetValid",
            CertificateProblem::KeyDoesNotMatch => "CertificateKeyMismatch",
            CertificateProblem::UnsupportedKeyType(_) => "CertificateKeyUnsupported",
        }
    }
}
