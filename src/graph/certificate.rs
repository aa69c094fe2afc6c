//! Certificate credentials: an app proves its identity with a JWT signed by a certificate's key
//! (Microsoft's "certificate credentials" client assertion) instead of sending a secret.
//!
//! The certificate and key come from a `kubernetes.io/tls` Secret. Everything a user can get wrong
//! there (no certificate, an unreadable key, a key of another certificate, an EC key, dates) is
//! found when loading, as a [`CertificateProblem`] with its own condition reason. The key never
//! leaves this module: `Debug` shows thumbprints and dates only.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use ring::digest::{SHA1_FOR_LEGACY_USE_ONLY, SHA256, digest};
use ring::rand::SystemRandom;
use ring::signature::{KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaEncoding, RsaKeyPair};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_cert::Certificate;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode, Reader, SliceReader};
use x509_cert::spki::AlgorithmIdentifierRef;

use crate::sensitive::SecretString;

use super::certificate_problem::CertificateProblem;
use super::error::GraphError;

/// How long a client assertion is valid: Microsoft asks for 5 to 10 minutes after `nbf`.
const ASSERTION_LIFETIME: SignedDuration = SignedDuration::from_secs(10 * 60);

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// The signature of the client assertion, and with it the thumbprint its header names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AssertionAlgorithm {
    /// RSASSA-PSS with SHA-256; the header names the certificate by `x5t#S256` (SHA-256
    /// thumbprint). What Microsoft's current documentation shows.
    #[default]
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256; the header names the certificate by `x5t` (SHA-1
    /// thumbprint), as older documentation and libraries do. Entra accepts both.
    Rs256,
}

impl AssertionAlgorithm {
    fn jwt_name(self) -> &'static str {
        match self {
            AssertionAlgorithm::Ps256 => "PS256",
            AssertionAlgorithm::Rs256 => "RS256",
        }
    }

    fn padding(self) -> &'static dyn RsaEncoding {
        match self {
            AssertionAlgorithm::Ps256 => &RSA_PSS_SHA256,
            AssertionAlgorithm::Rs256 => &RSA_PKCS1_SHA256,
        }
    }
}

/// An app's certificate and its RSA key, ready to sign client assertions.
pub struct CertificateCredential {
    key: RsaKeyPair,
    algorithm: AssertionAlgorithm,
    /// The assertion's header, base64url-encoded: the same for every assertion.
    encoded_header: String,
    thumbprint_sha256: String,
    thumbprint_sha1: String,
    not_before: Timestamp,
    not_after: Timestamp,
}

impl CertificateCredential {
    /// From the PEM contents of a `kubernetes.io/tls` Secret: `tls.crt` may hold a chain, whose
    /// first certificate is the app's own; `tls.key` is its RSA key, PKCS#8 or PKCS#1. Fails
    /// unless the certificate is valid at `now`.
    pub fn from_pem(
        cert_pem: &[u8],
        key_pem: &[u8],
        algorithm: AssertionAlgorithm,
        now: Timestamp,
    ) -> Result<Self, CertificateProblem> {
        let leaf = match CertificateDer::pem_slice_iter(cert_pem).next() {
            None => return Err(CertificateProblem::NoCertificate),
            Some(Err(error)) => {
                return Err(CertificateProblem::Malformed(format!(
                    "tls.crt is not valid PEM ({error})"
                )));
            }
            Some(Ok(leaf)) => leaf,
        };
        let certificate = Certificate::from_der(&leaf).map_err(|error| {
            CertificateProblem::Malformed(format!("tls.crt's first certificate: {error}"))
        })?;
        let tbs = certificate.tbs_certificate();
        let spki = tbs.subject_public_key_info();
        if spki.algorithm.oid != RSA_ENCRYPTION {
            return Err(CertificateProblem::UnsupportedKeyType(format!(
                "{} (in tls.crt)",
                key_type_name(spki.algorithm.oid)
            )));
        }
        let key = rsa_key(key_pem)?;
        if spki.subject_public_key.as_bytes() != Some(key.public_key().as_ref()) {
            return Err(CertificateProblem::KeyDoesNotMatch);
        }
        let not_before = timestamp(tbs.validity().not_before)?;
        let not_after = timestamp(tbs.validity().not_after)?;
        if now < not_before {
            return Err(CertificateProblem::NotYetValid { not_before });
        }
        if now > not_after {
            return Err(CertificateProblem::Expired { not_after });
        }
        let sha256 = digest(&SHA256, &leaf);
        let sha1 = digest(&SHA1_FOR_LEGACY_USE_ONLY, &leaf);
        let (thumbprint_field, thumbprint) = match algorithm {
            AssertionAlgorithm::Ps256 => ("x5t#S256", &sha256),
            AssertionAlgorithm::Rs256 => ("x5t", &sha1),
        };
        let header = serde_json::json!({
            "alg": algorithm.jwt_name(),
            "typ": "JWT",
            thumbprint_field: URL_SAFE_NO_PAD.encode(thumbprint),
        });
        Ok(Self {
            key,
            algorithm,
            encoded_header: URL_SAFE_NO_PAD.encode(header.to_string()),
            thumbprint_sha256: hex_upper(sha256.as_ref()),
            thumbprint_sha1: hex_upper(sha1.as_ref()),
            not_before,
            not_after,
        })
    }

    /// The SHA-256 thumbprint of the certificate's DER, as uppercase hex without separators
    /// (what `openssl x509 -fingerprint -sha256` prints, less the colons).
    pub fn thumbprint_sha256(&self) -> &str {
        &self.thumbprint_sha256
    }

    /// The SHA-1 thumbprint, as uppercase hex: the "Thumbprint" the Entra portal lists.
    pub fn thumbprint_sha1(&self) -> &str {
        &self.thumbprint_sha1
    }

    pub fn algorithm(&self) -> AssertionAlgorithm {
        self.algorithm
    }

    pub fn not_before(&self) -> Timestamp {
        self.not_before
    }

    pub fn not_after(&self) -> Timestamp {
        self.not_after
    }

    /// A signed client assertion for `token_url` and `client_id`, valid from now for ten
    /// minutes, with a fresh `jti` (Entra may refuse a repeated one).
    pub(crate) fn assertion(
        &self,
        token_url: &str,
        client_id: &str,
    ) -> Result<SecretString, GraphError> {
        self.assertion_at(token_url, client_id, Timestamp::now())
    }

    fn assertion_at(
        &self,
        token_url: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<SecretString, GraphError> {
        // The credential may outlive its certificate: say so rather than let Entra refuse it.
        if now > self.not_after {
            return Err(GraphError::Certificate(CertificateProblem::Expired {
                not_after: self.not_after,
            }));
        }
        let issued_at = now.as_second();
        let claims = serde_json::json!({
            "aud": token_url,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": issued_at,
            "iat": issued_at,
            "exp": issued_at + ASSERTION_LIFETIME.as_secs(),
        });
        let signing_input = format!(
            "{}.{}",
            self.encoded_header,
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                self.algorithm.padding(),
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| GraphError::Config("signing the client assertion failed".into()))?;
        Ok(SecretString::from(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(&signature)
        )))
    }
}

impl fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateCredential")
            .field("thumbprint_sha256", &self.thumbprint_sha256)
            .field("thumbprint_sha1", &self.thumbprint_sha1)
            .field("algorithm", &self.algorithm)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// The RSA key in `key_pem`. Errors never quote the PEM: it is the secret.
fn rsa_key(key_pem: &[u8]) -> Result<RsaKeyPair, CertificateProblem> {
    let key = match PrivateKeyDer::from_pem_slice(key_pem) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => return Err(CertificateProblem::NoPrivateKey),
        Err(_) => {
            return Err(CertificateProblem::Malformed(
                "tls.key is not valid PEM".into(),
            ));
        }
    };
    let parsed = match &key {
        PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
        PrivateKeyDer::Pkcs8(der) => {
            let der = der.secret_pkcs8_der();
            match pkcs8_algorithm(der) {
                Some(oid) if oid != RSA_ENCRYPTION => {
                    return Err(CertificateProblem::UnsupportedKeyType(format!(
                        "{} (in tls.key)",
                        key_type_name(oid)
                    )));
                }
                _ => RsaKeyPair::from_pkcs8(der),
            }
        }
        PrivateKeyDer::Sec1(_) => {
            return Err(CertificateProblem::UnsupportedKeyType(
                "EC (in tls.key)".into(),
            ));
        }
        _ => {
            return Err(CertificateProblem::UnsupportedKeyType(
                "of an unknown kind (in tls.key)".into(),
            ));
        }
    };
    // ring's rejection reasons name a property of the key, never its content.
    parsed.map_err(|rejected| match rejected.to_string().as_str() {
        "TooSmall" => CertificateProblem::UnsupportedKeyType("RSA shorter than 2048 bits".into()),
        "TooLarge" => CertificateProblem::UnsupportedKeyType("RSA longer than 8192 bits".into()),
        reason => {
            CertificateProblem::Malformed(format!("tls.key is not a usable RSA key ({reason})"))
        }
    })
}

/// The algorithm of a PKCS#8 `PrivateKeyInfo`, to name a non-RSA key rather than call it broken.
fn pkcs8_algorithm(der: &[u8]) -> Option<ObjectIdentifier> {
    let mut reader = SliceReader::new(der).ok()?;
    reader
        .sequence(|body| {
            let _version: u8 = body.decode()?;
            let algorithm: AlgorithmIdentifierRef<'_> = body.decode()?;
            body.drain(body.remaining_len())?;
            Ok::<_, x509_cert::der::Error>(algorithm.oid)
        })
        .ok()
}

fn key_type_name(oid: ObjectIdentifier) -> String {
    match oid.to_string().as_str() {
        "1.2.840.10045.2.1" => "EC".into(),
        "1.3.101.112" => "Ed25519".into(),
        "1.3.101.113" => "Ed448".into(),
        "1.2.840.113549.1.1.10" => "RSA-PSS (restricted to PSS; use a plain RSA key)".into(),
        other => format!("of algorithm {other}"),
    }
}

fn timestamp(time: x509_cert::time::Time) -> Result<Timestamp, CertificateProblem> {
    let seconds = i64::try_from(time.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
    Timestamp::from_second(seconds).map_err(|_| {
        CertificateProblem::Malformed("tls.crt has a validity date out of range".into())
    })
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use crate::sensitive::ExposeSecret;
    use ring::signature::{
        RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256, UnparsedPublicKey,
        VerificationAlgorithm,
    };
    use serde_json::Value;

    use super::*;

    const RSA_CRT: &[u8] = include_bytes!("testdata/rsa.crt");
    const RSA_KEY: &[u8] = include_bytes!("testdata/rsa.key");
    const RSA_PKCS1_KEY: &[u8] = include_bytes!("testdata/rsa-pkcs1.key");
    const CHAIN_CRT: &[u8] = include_bytes!("testdata/chain.crt");
    const OTHER_KEY: &[u8] = include_bytes!("testdata/other.key");
    const EXPIRED_CRT: &[u8] = include_bytes!("testdata/expired.crt");
    const FUTURE_CRT: &[u8] = include_bytes!("testdata/future.crt");
    const EC_CRT: &[u8] = include_bytes!("testdata/ec.crt");
    const EC_KEY: &[u8] = include_bytes!("testdata/ec.key");

    const TOKEN_URL: &str =
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token";
    const CLIENT_ID: &str = "00000000-0000-0000-0000-000000000001";

    fn now() -> Timestamp {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    fn load(cert: &[u8], key: &[u8]) -> Result<CertificateCredential, CertificateProblem> {
        CertificateCredential::from_pem(cert, key, AssertionAlgorithm::default(), now())
    }

    fn leaf_der(cert_pem: &[u8]) -> Vec<u8> {
        CertificateDer::pem_slice_iter(cert_pem)
            .next()
            .unwrap()
            .unwrap()
            .to_vec()
    }

    /// The RSAPublicKey DER of the certificate, as ring's verifiers want it.
    fn public_key(cert_pem: &[u8]) -> Vec<u8> {
        let certificate = Certificate::from_der(&leaf_der(cert_pem)).unwrap();
        let spki = certificate.tbs_certificate().subject_public_key_info();
        spki.subject_public_key.as_bytes().unwrap().to_vec()
    }

    fn decode_json(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    /// Checks the assertion's signature with `verifier` and returns its header and claims.
    fn verified(
        assertion: &SecretString,
        verifier: &'static dyn VerificationAlgorithm,
    ) -> (Value, Value) {
        let parts: Vec<&str> = assertion.expose_secret().split('.').collect();
        assert_eq!(parts.len(), 3);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        UnparsedPublicKey::new(verifier, public_key(RSA_CRT))
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .expect("the signature verifies with the certificate's key");
        (decode_json(parts[0]), decode_json(parts[1]))
    }

    #[test]
    fn ps256_assertion_names_the_sha256_thumbprint_and_verifies() {
        let credential = load(RSA_CRT, RSA_KEY).unwrap();
        let assertion = credential
            .assertion_at(TOKEN_URL, CLIENT_ID, now())
            .unwrap();
        let (header, claims) = verified(&assertion, &RSA_PSS_2048_8192_SHA256);
        let sha256 = digest(&SHA256, &leaf_der(RSA_CRT));
        assert_eq!(
            header,
            serde_json::json!({"alg": "PS256", "typ": "JWT", "x5t#S256": URL_SAFE_NO_PAD.encode(sha256)})
        );
        assert_eq!(credential.thumbprint_sha256(), hex_upper(sha256.as_ref()));
        let issued_at = now().as_second();
        assert_eq!(claims["aud"], TOKEN_URL);
        assert_eq!(claims["iss"], CLIENT_ID);
        assert_eq!(claims["sub"], CLIENT_ID);
        assert_eq!(claims["nbf"], issued_at);
        assert_eq!(claims["iat"], issued_at);
        assert_eq!(claims["exp"], issued_at + 600);
        let jti = claims["jti"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(jti).is_ok(), "{jti}");
    }

    #[test]
    fn rs256_assertion_names_the_sha1_thumbprint_and_verifies() {
        let credential =
            CertificateCredential::from_pem(RSA_CRT, RSA_KEY, AssertionAlgorithm::Rs256, now())
                .unwrap();
        let assertion = credential
            .assertion_at(TOKEN_URL, CLIENT_ID, now())
            .unwrap();
        let (header, _) = verified(&assertion, &RSA_PKCS1_2048_8192_SHA256);
        let sha1 = digest(&SHA1_FOR_LEGACY_USE_ONLY, &leaf_der(RSA_CRT));
        assert_eq!(
            header,
            serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": URL_SAFE_NO_PAD.encode(sha1)})
        );
        assert_eq!(credential.thumbprint_sha1(), hex_upper(sha1.as_ref()));
    }

    #[test]
    fn every_assertion_has_its_own_jti() {
        let credential = load(RSA_CRT, RSA_KEY).unwrap();
        let jti = |assertion: SecretString| {
            let claims = assertion
                .expose_secret()
                .split('.')
                .nth(1)
                .unwrap()
                .to_owned();
            decode_json(&claims)["jti"].clone()
        };
        let first = jti(credential.assertion(TOKEN_URL, CLIENT_ID).unwrap());
        let second = jti(credential.assertion(TOKEN_URL, CLIENT_ID).unwrap());
        assert_ne!(first, second);
    }

    #[test]
    fn pkcs1_keys_and_chains_load_as_the_same_credential() {
        let pkcs8 = load(RSA_CRT, RSA_KEY).unwrap();
        let pkcs1 = load(RSA_CRT, RSA_PKCS1_KEY).unwrap();
        let chain = load(CHAIN_CRT, RSA_KEY).unwrap();
        assert_eq!(pkcs8.thumbprint_sha256(), pkcs1.thumbprint_sha256());
        assert_eq!(pkcs8.thumbprint_sha256(), chain.thumbprint_sha256());
        assert_eq!(pkcs8.not_before(), "2024-01-01T00:00:00Z".parse().unwrap());
        assert_eq!(pkcs8.not_after(), "2098-01-01T00:00:00Z".parse().unwrap());
    }

    #[test]
    fn each_problem_is_named_with_its_reason() {
        let garbled_cert =
            b"-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n";
        let not_der = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let cases: [(&[u8], &[u8], &str); 11] = [
            (b"", RSA_KEY, "CertificateMalformed"),
            (RSA_KEY, RSA_KEY, "CertificateMalformed"),
            (RSA_CRT, RSA_CRT, "CertificateMalformed"),
            (garbled_cert, RSA_KEY, "CertificateMalformed"),
            (not_der, RSA_KEY, "CertificateMalformed"),
            (EXPIRED_CRT, RSA_KEY, "CertificateExpired"),
            (FUTURE_CRT, RSA_KEY, "CertificateNotYetValid"),
            (RSA_CRT, OTHER_KEY, "CertificateKeyMismatch"),
            (EC_CRT, EC_KEY, "CertificateKeyUnsupported"),
            (RSA_CRT, EC_KEY, "CertificateKeyUnsupported"),
            (EC_CRT, RSA_KEY, "CertificateKeyUnsupported"),
        ];
        for (index, (cert, key, reason)) in cases.into_iter().enumerate() {
            let problem = load(cert, key).unwrap_err();
            assert_eq!(problem.reason(), reason, "case {index}: {problem}");
        }
        assert_eq!(
            load(b"", RSA_KEY).unwrap_err(),
            CertificateProblem::NoCertificate
        );
        assert_eq!(
            load(RSA_CRT, RSA_CRT).unwrap_err(),
            CertificateProblem::NoPrivateKey
        );
        assert_eq!(
            load(EXPIRED_CRT, RSA_KEY).unwrap_err(),
            CertificateProblem::Expired {
                not_after: "2021-01-01T00:00:00Z".parse().unwrap()
            }
        );
        assert_eq!(
            load(FUTURE_CRT, RSA_KEY).unwrap_err(),
            CertificateProblem::NotYetValid {
                not_before: "2099-01-01T00:00:00Z".parse().unwrap()
            }
        );
        assert!(
            load(RSA_CRT, EC_KEY)
                .unwrap_err()
                .to_string()
                .contains("EC")
        );
    }

    #[test]
    fn a_certificate_that_expires_after_loading_signs_nothing() {
        let credential = load(RSA_CRT, RSA_KEY).unwrap();
        let later = "2099-01-01T00:00:00Z".parse().unwrap();
        let error = credential
            .assertion_at(TOKEN_URL, CLIENT_ID, later)
            .unwrap_err();
        assert_eq!(error.reason(), "CertificateExpired");
    }

    /// The base64 lines of a PEM block: what would show if key material leaked.
    fn pem_body_lines(pem: &[u8]) -> Vec<String> {
        std::str::from_utf8(pem)
            .unwrap()
            .lines()
            .filter(|line| !line.starts_with("-----") && line.len() > 16)
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn debug_and_errors_show_no_key_material_nor_assertion() {
        let credential = load(RSA_CRT, RSA_KEY).unwrap();
        let assertion = credential.assertion(TOKEN_URL, CLIENT_ID).unwrap();
        let shown_credential = format!("{credential:?}");
        assert!(shown_credential.contains(credential.thumbprint_sha256()));
        // A key with one character changed mid-way, and keys refused for other reasons.
        let mut corrupted = RSA_KEY.to_vec();
        let middle = corrupted.len() / 2;
        corrupted[middle] = if corrupted[middle] == b'A' {
            b'B'
        } else {
            b'A'
        };
        let mut shown = vec![shown_credential, format!("{assertion:?}")];
        for (cert, key) in [
            (RSA_CRT, corrupted.as_slice()),
            (RSA_CRT, OTHER_KEY),
            (RSA_CRT, EC_KEY),
            (EXPIRED_CRT, RSA_KEY),
        ] {
            let problem = load(cert, key).unwrap_err();
            shown.push(problem.to_string());
            shown.push(format!("{problem:?}"));
            shown.push(GraphError::Certificate(problem).to_string());
        }
        let secrets: Vec<String> = [RSA_KEY, OTHER_KEY, EC_KEY, &corrupted]
            .into_iter()
            .flat_map(pem_body_lines)
            .chain([assertion.expose_secret().to_owned()])
            .collect();
        for text in &shown {
            assert!(!text.contains("PRIVATE KEY-----"), "{text}");
            for secret in &secrets {
                assert!(!text.contains(secret.as_str()), "{text}");
            }
        }
    }
}
