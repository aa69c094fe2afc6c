//! Signs client assertions the way clients do (ring, keys from `testdata/`), and builds the
//! token requests that carry them.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::{
    rand::SystemRandom,
    signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
        RsaKeyPair, RsaPublicKeyComponents,
    },
};
use rustls_pki_types::{PrivatePkcs8KeyDer, pem::PemObject};
use serde_json::{Value, json};

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub const CLIENT_KEY: &str = include_str!("../../testdata/client-key.pem");
pub const CLIENT_CERT: &str = include_str!("../../testdata/client-cert.pem");
pub const CLIENT_X5T: &str = include_str!("../../testdata/client-cert.x5t");
pub const CLIENT_X5T_S256: &str = include_str!("../../testdata/client-cert.x5t-s256");
pub const OTHER_KEY: &str = include_str!("../../testdata/other-key.pem");
pub const ISSUER_RSA_KEY: &str = include_str!("../../testdata/issuer-rsa-key.pem");
pub const ISSUER_EC_KEY: &str = include_str!("../../testdata/issuer-ec-key.pem");

fn pkcs8(pem: &str) -> PrivatePkcs8KeyDer<'static> {
    PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).expect("testdata key is PKCS#8 PEM")
}

fn rsa(pem: &str) -> RsaKeyPair {
    RsaKeyPair::from_pkcs8(pkcs8(pem).secret_pkcs8_der()).unwrap()
}

fn ec(pem: &str) -> EcdsaKeyPair {
    EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8(pem).secret_pkcs8_der(),
        &SystemRandom::new(),
    )
    .unwrap()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWT signed with `key_pem` by `header.alg` (PS256, RS256 with an RSA key; ES256).
pub fn sign(key_pem: &str, header: &Value, claims: &Value) -> String {
    let signed_part = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let rng = SystemRandom::new();
    let signature = match header["alg"].as_str().unwrap() {
        "ES256" => ec(key_pem)
            .sign(&rng, signed_part.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec(),
        alg => {
            let key = rsa(key_pem);
            let padding: &dyn ring::signature::RsaEncoding = if alg == "PS256" {
                &RSA_PSS_SHA256
            } else {
                &RSA_PKCS1_SHA256
            };
            let mut signature = vec![0; key.public().modulus_len()];
            key.sign(padding, &rng, signed_part.as_bytes(), &mut signature)
                .unwrap();
            signature
        }
    };
    format!("{signed_part}.{}", b64(signature))
}

/// The public JWK of a testdata key, as an issuer publishes it.
pub fn public_jwk(key_pem: &str, kid: &str) -> Value {
    if key_pem == ISSUER_EC_KEY {
        let point = ec(key_pem).public_key().as_ref().to_vec();
        json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
               "x": b64(&point[1..33]), "y": b64(&point[33..65])})
    } else {
        let key = RsaPublicKeyComponents::<Vec<u8>>::from(rsa(key_pem).public());
        json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
               "n": b64(key.n), "e": b64(key.e)})
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The form of a client-credentials request with a client assertion.
pub fn assertion_form<'a>(
    client_id: &'a str,
    assertion: &'a str,
    scope: &'a str,
) -> [(&'a str, &'a str); 5] {
    [
        ("client_id", client_id),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
        ("scope", scope),
        ("grant_type", "client_credentials"),
    ]
}
