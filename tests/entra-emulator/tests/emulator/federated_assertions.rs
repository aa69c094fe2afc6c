//! Client assertions that are an external issuer's tokens (a Kubernetes service-account token),
//! matched to the app's federated identity credentials and verified with the issuer's JWKS.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use axum::{Json, Router, extract::State, routing::get};
use entra_emulator::{
    Config, CredentialKind, FederatedCredential, TOKEN_EXCHANGE_AUDIENCE, sample,
};
use hyper_util::rt::TokioIo;
use reqwest::StatusCode;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::{
    Harness,
    signing::{ISSUER_EC_KEY, ISSUER_RSA_KEY, OTHER_KEY, assertion_form, now, public_jwk, sign},
    token::aad_error,
};

const ISSUER_CA: &str = include_str!("../../testdata/issuer-ca.pem");
const ISSUER_TLS_CERT: &str = include_str!("../../testdata/issuer-tls-cert.pem");
const ISSUER_TLS_KEY: &str = include_str!("../../testdata/issuer-tls-key.pem");
const SUBJECT: &str = "system:serviceaccount:entra-system:entra-operator";

/// A plain-HTTP OIDC issuer serving discovery and a JWKS that tests can change.
struct Issuer {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    jwks_fetches: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct IssuerState {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    jwks_fetches: Arc<AtomicUsize>,
}

impl Issuer {
    async fn start(keys: Vec<Value>) -> Issuer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (issuer, router) = Issuer::new(url, keys);
        tokio::spawn(async move { axum::serve(listener, router).await });
        issuer
    }

    /// The same over HTTPS, with a serving certificate from `testdata/issuer-ca.pem`.
    async fn start_tls(keys: Vec<Value>) -> Issuer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let (issuer, router) = Issuer::new(url, keys);
        let certificates = CertificateDer::pem_slice_iter(ISSUER_TLS_CERT.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(ISSUER_TLS_KEY.as_bytes()).unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, router) = (acceptor.clone(), router.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        router.clone().oneshot(request.map(axum::body::Body::new))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        issuer
    }

    fn new(url: String, keys: Vec<Value>) -> (Issuer, Router) {
        let state = IssuerState {
            url: url.clone(),
            keys: Arc::new(Mutex::new(keys)),
            jwks_fetches: Arc::default(),
        };
        let router = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(|State(state): State<IssuerState>| async move {
                    Json(json!({
                        "issuer": state.url,
                        "jwks_uri": format!("{}/openid/v1/jwks", state.url),
                        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                    }))
                }),
            )
            .route(
                "/openid/v1/jwks",
                get(|State(state): State<IssuerState>| async move {
                    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                    Json(json!({ "keys": *state.keys.lock().unwrap() }))
                }),
            )
            .with_state(state.clone());
        let issuer = Issuer {
            url,
            keys: state.keys,
            jwks_fetches: state.jwks_fetches,
        };
        (issuer, router)
    }

    /// A service-account token as the API server projects it.
    fn token(&self, key_pem: &str, kid: &str, claims_change: impl FnOnce(&mut Value)) -> String {
        let alg = if key_pem == ISSUER_EC_KEY {
            "ES256"
        } else {
            "RS256"
        };
        let now = now();
        let mut claims = json!({
            "iss": self.url,
            "sub": SUBJECT,
            "aud": [TOKEN_EXCHANGE_AUDIENCE],
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "kubernetes.io": {"namespace": "entra-system", "serviceaccount": {"name": "entra-operator"}},
        });
        claims_change(&mut claims);
        sign(key_pem, &json!({"alg": alg, "kid": kid}), &claims)
    }

    fn credential(&self) -> FederatedCredential {
        FederatedCredential {
            issuer: self.url.clone(),
            subject: SUBJECT.to_owned(),
            audiences: vec![TOKEN_EXCHANGE_AUDIENCE.to_owned()],
        }
    }
}

/// The sample tenant, allowing plain-HTTP issuers, with the issuer's credential on the app.
async fn harness(issuer: &Issuer) -> Harness {
    let mut config = Config::sample();
    config.allow_insecure_issuers = true;
    let harness = Harness::start_with(config).await;
    let credential = issuer.credential();
    harness.emulator.update_app(sample::CLIENT_ID, |app| {
        app.federated_credentials = vec![credential];
    });
    harness
}

async fn request(harness: &Harness, assertion: &str) -> reqwest::Response {
    let scope = harness.scope();
    let form = assertion_form(sample::CLIENT_ID, assertion, &scope);
    harness.request_token(sample::TENANT_ID, &form).await
}

fn no_matching_record() -> (StatusCode, String, u64) {
    (StatusCode::BAD_REQUEST, "invalid_request".into(), 70021)
}

#[tokio::test]
async fn service_account_token_gets_a_token_and_keys_are_cached() {
    let issuer = Issuer::start(vec![public_jwk(ISSUER_RSA_KEY, "k1")]).await;
    let harness = harness(&issuer).await;
    for _ in 0..2 {
        let token = issuer.token(ISSUER_RSA_KEY, "k1", |_| {});
        assert_eq!(request(&harness, &token).await.status(), StatusCode::OK);
    }
    assert_eq!(issuer.jwks_fetches.load(Ordering::SeqCst), 1);
    let counters = harness.emulator.counters();
    assert_eq!(counters.token_requests_with(CredentialKind::Federated), 2);
}

#[tokio::test]
async fn es256_tokens_are_verified_too() {
    let issuer = Issuer::start(vec![public_jwk(ISSUER_EC_KEY, "ec")]).await;
    let harness = harness(&issuer).await;
    let token = issuer.token(ISSUER_EC_KEY, "ec", |_| {});
    assert_eq!(request(&harness, &token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn other_subject_has_no_matching_record_70021() {
    let issuer = Issuer::start(vec![public_jwk(ISSUER_RSA_KEY, "k1")]).await;
    let harness = harness(&issuer).await;
    let token = issuer.token(ISSUER_RSA_KEY, "k1", |claims| {
        claims["sub"] = "system:serviceaccount:default:default".into();
    });
    assert_eq!(
        aad_error(request(&harness, &token).await).await,
        no_matching_record()
    );
}

#[tokio::test]
async fn other_audience_has_no_matching_record_70021() {
    let issuer = Issuer::start(vec![public_jwk(ISSUER_RSA_KEY, "k1")]).await;
    let harness = harness(&issuer).await;
    let token = issuer.token(ISSUER_RSA_KEY, "k1", |claims| {
        claims["aud"] = json!(["https://kubernetes.default.svc"]);
    });
    assert_eq!(
        aad_error(request(&harness, &token).await).await,
        no_matching_record()
    );
}

#[tokio::test]
async fn unknown_kid_is_refetched_once_then_7000272() {
    let issuer = Issuer::start(vec![public_jwk(ISSUER_RSA_KEY, "k1")]).await;
    let harness = harness(&issuer).await;
    let first = issuer.token(ISSUER_RSA_KEY, "k1", |_| {});
    assert_eq!(request(&harness, &first).await.status(), StatusCode::OK);

    // The issuer rotates to a new key: the emulator refetches and accepts it.
    issuer
        .keys
        .lock()
        .unwrap()
        .push(public_jwk(ISSUER_EC_KEY, "k2"));
    let rotated = issuer.token(ISSUER_EC_KEY, "k2", |_| {});
    assert_eq!(request(&harness, &rotated).await.status(), StatusCode::OK);
    assert_eq!(issuer.jwks_fetches.load(Ordering::SeqCst), 2);

    let unknown = issuer.token(ISSUER_RSA_KEY, "k3", |_| {});
    assert_eq!(
        aad_error(request(&harness, &unknown).await).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into(), 7000272)
    );
    assert_eq!(issuer.jwks_fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn token_signed_by_another_key_is_700027() {
    let issuer = Issuer::start(vec![public_jwk(ISSUER_RSA_KEY, "k1")]).await;
    let harness = harness(&issuer).await;
    let forged = issuer.token(OTHER_KEY, "k1", |_| {});
    assert_eq!(
        aad_error(request(&harness, &forged).await).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into(), 700027)
    );
}

#[tokio::test]
async fn expired_token_is_700024() {
    let issuer = Issuer::start(vec![public_jwk(ISSUER_RSA_KEY, "k1")]).await;
    let harness = harness(&issuer).await;
    let expired = issuer.token(ISSUER_RSA_KEY, "k1", |claims| {
        claims["nbf"] = (now() - 7200).into();
        claims["exp"] = (now() - 3600).into();
    });
    assert_eq!(
        aad_error(request(&harness, &expired).await).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into(), 700024)
    );
}

#[tokio::test]
async fn credential_registered_at_runtime_is_honoured() {
    let issuer = Issuer::start(vec![public_jwk(ISSUER_RSA_KEY, "k1")]).await;
    let harness = harness(&issuer).await;
    let url = harness.url(&format!("/_emulator/apps/{}", sample::CLIENT_ID));
    let patch = |body: Value| harness.http.patch(&url).json(&body).send();
    assert_eq!(
        patch(json!({"federatedCredentials": []}))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let token = issuer.token(ISSUER_RSA_KEY, "k1", |_| {});
    assert_eq!(
        aad_error(request(&harness, &token).await).await,
        no_matching_record()
    );

    let credential = json!({"issuer": issuer.url, "subject": SUBJECT});
    let view: Value = patch(json!({"federatedCredentials": [credential]}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        view["federatedCredentials"][0]["audiences"],
        json!([TOKEN_EXCHANGE_AUDIENCE])
    );
    assert_eq!(request(&harness, &token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn unreachable_issuer_is_50166() {
    let issuer = Issuer::start(vec![]).await;
    let harness = harness(&issuer).await;
    let gone = FederatedCredential {
        issuer: "http://127.0.0.1:9".to_owned(),
        ..issuer.credential()
    };
    harness.emulator.update_app(sample::CLIENT_ID, |app| {
        app.federated_credentials = vec![gone];
    });
    let token = issuer.token(ISSUER_RSA_KEY, "k1", |claims| {
        claims["iss"] = "http://127.0.0.1:9".into();
    });
    assert_eq!(
        aad_error(request(&harness, &token).await).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into(), 50166)
    );
}

#[tokio::test]
async fn https_issuer_is_trusted_through_its_ca() {
    let issuer = Issuer::start_tls(vec![public_jwk(ISSUER_RSA_KEY, "k1")]).await;
    let token = issuer.token(ISSUER_RSA_KEY, "k1", |_| {});

    // Without its CA, the issuer's certificate does not verify: discovery fails.
    let untrusted = Harness::start().await;
    let credential = issuer.credential();
    untrusted.emulator.update_app(sample::CLIENT_ID, |app| {
        app.federated_credentials = vec![credential];
    });
    assert_eq!(
        aad_error(request(&untrusted, &token).await).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into(), 50166)
    );

    let mut config = Config::sample();
    config.trusted_issuer_cas = vec![ISSUER_CA.to_owned()];
    let trusted = Harness::start_with(config).await;
    let credential = issuer.credential();
    trusted.emulator.update_app(sample::CLIENT_ID, |app| {
        app.federated_credentials = vec![credential];
    });
    assert_eq!(request(&trusted, &token).await.status(), StatusCode::OK);
}
