//! An app's registered certificate credential: the public half of the key a client signs its
//! assertions with, found by thumbprint as Entra finds it.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::{
    digest::{SHA1_FOR_LEGACY_USE_ONLY, SHA256, digest},
    signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256, UnparsedPublicKey},
};
use rustls_pki_types::{CertificateDer, pem::PemObject};
use x509_parser::{oid_registry::OID_PKCS1_RSAENCRYPTION, prelude::*};

/// A certificate parsed from PEM: what the token endpoint needs of it.
#[derive(Clone, Debug)]
pub struct RegisteredCertificate {
    /// base64url SHA-1 of the DER: the `x5t` of `RS256` assertions.
    pub x5t: String,
    /// base64url SHA-256 of the DER: the `x5t#S256` of `PS256` assertions.
    pub x5t_s256: String,
    /// PKCS#1 `RSAPublicKey`, as ring verifies with it.
    rsa_public_key: Vec<u8>,
    /// Validity in Unix seconds: Entra refuses a key credential outside its dates.
    pub not_before: i64,
    pub not_after: i64,
}

/// The signature algorithms Entra takes for certificate assertions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssertionAlgorithm {
    Ps256,
    Rs256,
}

impl RegisteredCertificate {
    /// One PEM `CERTIFICATE` with an RSA key; the error says what is wrong with it.
    pub fn from_pem(pem: &str) -> Result<RegisteredCertificate, String> {
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|error| format!("not a PEM certificate: {error}"))?;
        let (_, certificate) = X509Certificate::from_der(&der)
            .map_err(|error| format!("not an X.509 certificate: {error}"))?;
        let key = certificate.public_key();
        if key.algorithm.algorithm != OID_PKCS1_RSAENCRYPTION {
            return Err(format!(
                "the key is {}, not RSA (Entra signs assertions with PS256 or RS256)",
                key.algorithm.algorithm
            ));
        }
        let thumbprint = |algorithm| URL_SAFE_NO_PAD.encode(digest(algorithm, &der));
        Ok(RegisteredCertificate {
            x5t: thumbprint(&SHA1_FOR_LEGACY_USE_ONLY),
            x5t_s256: thumbprint(&SHA256),
            rsa_public_key: key.subject_public_key.data.to_vec(),
            not_before: certificate.validity().not_before.timestamp(),
            not_after: certificate.validity().not_after.timestamp(),
        })
    }

    /// Whether the header's thumbprint for `algorithm` names this certificate.
    pub fn is_named_by(&self, algorithm: AssertionAlgorithm, thumbprint: &str) -> bool {
        match algorithm {
            AssertionAlgorithm::Ps256 => self.x5t_s256 == thumbprint,
            AssertionAlgorithm::Rs256 => self.x5t == thumbprint,
        }
    }

    pub fn verifies(
        &self,
        algorithm: AssertionAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        let parameters = match algorithm {
            AssertionAlgorithm::Ps256 => &RSA_PSS_2048_8192_SHA256,
            AssertionAlgorithm::Rs256 => &RSA_PKCS1_2048_8192_SHA256,
        };
        UnparsedPublicKey::new(parameters, &self.rsa_public_key)
            .verify(message, signature)
            .is_ok()
    }

    pub fn is_valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }
}

/// Checks that `pem` holds one or more X.509 certificates (a CA bundle).
pub fn check_certificate_bundle(pem: &str) -> Result<(), String> {
    let mut count = 0;
    for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let der = der.map_err(|error| format!("not PEM: {error}"))?;
        X509Certificate::from_der(&der)
            .map_err(|error| format!("not an X.509 certificate: {error}"))?;
        count += 1;
    }
    if count == 0 {
        return Err("holds no PEM certificate".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = include_str!("../testdata/client-cert.pem");

    #[test]
    fn thumbprints_are_base64url_digests_of_the_der() {
        let certificate = RegisteredCertificate::from_pem(CERT).unwrap();
        assert_eq!(
            certificate.x5t,
            include_str!("../testdata/client-cert.x5t").trim()
        );
        assert_eq!(
            certificate.x5t_s256,
            include_str!("../testdata/client-cert.x5t-s256").trim()
        );
        assert!(certificate.not_before < certificate.not_after);
    }

    #[test]
    fn malformed_or_non_rsa_certificates_are_refused() {
        assert!(RegisteredCertificate::from_pem("not pem").is_err());
        let ec = include_str!("../testdata/ec-cert.pem");
        let error = RegisteredCertificate::from_pem(ec).unwrap_err();
        assert!(error.contains("not RSA"), "{error}");
    }
}
