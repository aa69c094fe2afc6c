//! The signing keys of federated token issuers, found as Entra finds them: OIDC discovery
//! (`{issuer}/.well-known/openid-configuration`), then its `jwks_uri`. Keys are cached by `kid`
//! per issuer; an unknown `kid` refetches once, so an issuer's key rotation is picked up.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256,
    RsaPublicKeyComponents, UnparsedPublicKey,
};
use serde::Deserialize;

use crate::jwt::Jwt;

/// Why a federated token's signature could not be accepted.
#[derive(Debug)]
pub enum KeyError {
    /// Discovery or the JWKS could not be fetched or read.
    Unreachable(String),
    /// The issuer publishes no key with the token's `kid`, even after a refetch.
    UnknownKey(String),
    BadSignature(String),
}

pub struct IssuerKeys {
    http: reqwest::Client,
    allow_insecure_issuers: bool,
    /// Issuer -> its published keys.
    cache: Mutex<HashMap<String, Vec<Jwk>>>,
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

/// One published key; fields of other key types are ignored.
#[derive(Clone, Debug, Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl IssuerKeys {
    /// `trusted_cas` (PEM) are trusted on top of the system roots, e.g. a test API server's CA.
    pub fn new(trusted_cas: &[String], allow_insecure_issuers: bool) -> Result<IssuerKeys, String> {
        // reqwest is built without a crypto provider; the operator installs ring, and so do we.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = Vec::new();
        for (index, pem) in trusted_cas.iter().enumerate() {
            let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|error| format!("trustedIssuerCAs[{index}] is not PEM: {error}"))?;
            if certificates.is_empty() {
                return Err(format!("trustedIssuerCAs[{index}] holds no certificate"));
            }
            roots.extend(certificates);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .tls_certs_merge(roots)
            .build()
            .map_err(|error| format!("cannot build the issuer discovery client: {error}"))?;
        Ok(IssuerKeys {
            http,
            allow_insecure_issuers,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn allow_insecure_issuers(&self) -> bool {
        self.allow_insecure_issuers
    }

    /// Verifies the token's signature with the issuer's key named by its `kid`.
    pub async fn verify(&self, issuer: &str, jwt: &Jwt) -> Result<(), KeyError> {
        let kid = jwt.header.kid.clone().unwrap_or_default();
        let key = match self.cached(issuer, &kid) {
            Some(key) => key,
            None => {
                let keys = self.fetch(issuer).await?;
                self.lock_cache().insert(issuer.to_owned(), keys);
                self.cached(issuer, &kid).ok_or(KeyError::UnknownKey(kid))?
            }
        };
        key.verify(&jwt.header.alg, jwt.signed_part.as_bytes(), &jwt.signature)
    }

    fn cached(&self, issuer: &str, kid: &str) -> Option<Jwk> {
        self.lock_cache()
            .get(issuer)?
            .iter()
            .find(|key| key.kid.as_deref().unwrap_or_default() == kid)
            .cloned()
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Jwk>>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn fetch(&self, issuer: &str) -> Result<Vec<Jwk>, KeyError> {
        if !issuer.starts_with("https://") && !self.allow_insecure_issuers {
            return Err(KeyError::Unreachable(format!(
                "issuer '{issuer}' is not https"
            )));
        }
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let discovery: Discovery = self.get_json(&discovery_url).await?;
        let jwks: JwkSet = self.get_json(&discovery.jwks_uri).await?;
        Ok(jwks.keys)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, KeyError> {
        let unreachable =
            |error: reqwest::Error| KeyError::Unreachable(format!("GET {url}: {error}"));
        self.http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(unreachable)?
            .json()
            .await
            .map_err(unreachable)
    }
}

impl Jwk {
    /// RS256 and PS256 with RSA keys (Kubernetes signs RS256), ES256 with P-256 keys.
    fn verify(&self, alg: &str, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        let field = |value: &Option<String>, name: &str| {
            value
                .as_deref()
                .and_then(|text| URL_SAFE_NO_PAD.decode(text).ok())
                .ok_or_else(|| KeyError::BadSignature(format!("the JWK has no valid '{name}'")))
        };
        let verified = match (alg, self.kty.as_str()) {
            ("RS256" | "PS256", "RSA") => {
                let parameters = if alg == "RS256" {
                    &RSA_PKCS1_2048_8192_SHA256
                } else {
                    &RSA_PSS_2048_8192_SHA256
                };
                let key = RsaPublicKeyComponents {
                    n: field(&self.n, "n")?,
                    e: field(&self.e, "e")?,
                };
                key.verify(parameters, message, signature)
            }
            ("ES256", "EC") if self.crv.as_deref() == Some("P-256") => {
                let mut point = vec![0x04];
                point.extend(field(&self.x, "x")?);
                point.extend(field(&self.y, "y")?);
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).verify(message, signature)
            }
            (alg, kty) => {
                return Err(KeyError::BadSignature(format!(
                    "algorithm '{alg}' with a '{kty}' key is not supported"
                )));
            }
        };
        verified.map_err(|_| KeyError::BadSignature("the signature does not verify".into()))
    }
}
