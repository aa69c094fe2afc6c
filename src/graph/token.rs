//! App-only access tokens by client credentials, cached per (authority, tenant, app, scope,
//! credential) until a margin before expiry.
//!
//! Concurrent callers for the same key wait on one per-key lock, so a burst of reconciles costs
//! one token request. The credential enters the key by its identity, never its value: a secret
//! as a keyed hash (random keys per process), a certificate by its thumbprint, a federated token
//! by its source's name. So a rotated secret or certificate gets a fresh token, and a federated
//! source is asked for an assertion only when a token must be fetched.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use crate::sensitive::{ExposeSecret, SecretString};

use super::config::GraphClientConfig;
use super::credentials::{AppCredentials, ClientCredential};
use super::error::{Diagnostics, GraphError, TokenErrorBody, TransientFailure, TransientKind};
use super::http::{RawResponse, send_once};
use super::retry::{Failure, with_retries};

const OPERATION: &str = "get token";

/// A cached access token.
pub(crate) struct AccessToken {
    value: SecretString,
    /// Tells tokens apart, so a 401 drops only the token that failed and not a newer one.
    generation: u64,
    fetched_at: Instant,
    refresh_at: Instant,
}

impl AccessToken {
    pub fn value(&self) -> &SecretString {
        &self.value
    }

    pub fn fetched_at(&self) -> Instant {
        self.fetched_at
    }

    fn is_fresh(&self, now: Instant) -> bool {
        now < self.refresh_at
    }
}

/// Identifies one app's token. `Debug` shows the credential only by its fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TokenKey {
    authority: String,
    tenant: String,
    client_id: String,
    scope: String,
    credential_fingerprint: CredentialFingerprint,
}

/// A credential's identity: what changes when it is rotated, and never its value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum CredentialFingerprint {
    /// A keyed hash of the secret.
    Secret(u128),
    /// The certificate's SHA-256 thumbprint.
    Certificate(String),
    /// The source's [`FederatedTokenSource::identity`](super::federated::FederatedTokenSource).
    Federated(String),
}

type TokenSlot = Arc<tokio::sync::Mutex<Option<Arc<AccessToken>>>>;

/// Tokens of every app the client has served.
pub(crate) struct TokenCache {
    slots: Mutex<HashMap<TokenKey, TokenSlot>>,
    fingerprint_keys: (RandomState, RandomState),
    next_generation: AtomicU64,
}

impl TokenCache {
    pub fn new() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            fingerprint_keys: (RandomState::new(), RandomState::new()),
            next_generation: AtomicU64::new(1),
        }
    }

    /// The number of apps with a cache slot, for `Debug`.
    pub fn len(&self) -> usize {
        self.slots.lock().expect("token cache lock").len()
    }

    /// A token for `app`: the cached one while fresh, otherwise one fetched now (once, however
    /// many callers ask at the same time).
    pub async fn token(
        &self,
        http: &reqwest::Client,
        config: &GraphClientConfig,
        app: &AppCredentials,
    ) -> Result<Arc<AccessToken>, GraphError> {
        let slot = self.slot(app);
        let mut cached = slot.lock().await;
        if let Some(token) = cached
            .as_ref()
            .filter(|token| token.is_fresh(Instant::now()))
        {
            return Ok(Arc::clone(token));
        }
        *cached = None;
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let token = Arc::new(request_token(http, config, app, generation).await?);
        *cached = Some(Arc::clone(&token));
        Ok(token)
    }

    /// Drops `token` from the cache (a newer one is left alone) so the next call fetches anew.
    pub async fn invalidate(&self, app: &AppCredentials, token: &AccessToken) {
        let slot = self.slot(app);
        let mut cached = slot.lock().await;
        if cached
            .as_ref()
            .is_some_and(|current| current.generation == token.generation)
        {
            *cached = None;
        }
    }

    fn slot(&self, app: &AppCredentials) -> TokenSlot {
        let key = self.key(app);
        let mut slots = self.slots.lock().expect("token cache lock");
        if let Some(slot) = slots.get(&key) {
            return Arc::clone(slot);
        }
        // A new key often means a rotated secret: forget idle slots whose token is gone or stale.
        let now = Instant::now();
        slots.retain(|_, slot| match slot.try_lock() {
            Ok(cached) => cached.as_ref().is_some_and(|token| token.is_fresh(now)),
            Err(_) => true,
        });
        Arc::clone(slots.entry(key).or_default())
    }

    fn key(&self, app: &AppCredentials) -> TokenKey {
        let credential_fingerprint = match app.credential() {
            ClientCredential::Secret(secret) => {
                let high = self.fingerprint_keys.0.hash_one(secret.expose_secret());
                let low = self.fingerprint_keys.1.hash_one(secret.expose_secret());
                CredentialFingerprint::Secret((u128::from(high) << 64) | u128::from(low))
            }
            ClientCredential::Certificate(certificate) => {
                CredentialFingerprint::Certificate(certificate.thumbprint_sha256().to_owned())
            }
            ClientCredential::Federated(source) => {
                CredentialFingerprint::Federated(source.identity())
            }
        };
        TokenKey {
            authority: app.endpoints().authority_host().as_str().to_owned(),
            tenant: app.tenant().to_ascii_lowercase(),
            client_id: app.client_id().to_ascii_lowercase(),
            scope: app.endpoints().scope().to_owned(),
            credential_fingerprint,
        }
    }
}

/// Longer than any token Entra issues (one to a few hours); a longer `expires_in` is cut to it.
const LONGEST_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// The token endpoint's success body. `expires_in` is a number, or a string in older responses.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: ExpiresIn,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ExpiresIn {
    Seconds(u64),
    Text(String),
}

impl ExpiresIn {
    fn seconds(&self) -> Option<u64> {
        match self {
            ExpiresIn::Seconds(seconds) => Some(*seconds),
            ExpiresIn::Text(text) => text.trim().parse().ok(),
        }
    }
}

async fn request_token(
    http: &reqwest::Client,
    config: &GraphClientConfig,
    app: &AppCredentials,
    generation: u64,
) -> Result<AccessToken, GraphError> {
    let url = &token_url(app)?;
    let response = with_retries(&config.retry, OPERATION, |attempt| async move {
        // A fresh assertion per attempt: Entra may refuse a `jti` it has seen.
        let proof = ClientProof::of(app, url).await?;
        let request = http
            .post(url.clone())
            .timeout(config.request_timeout)
            .form(&token_form(app, &proof));
        let response = send_once(request, OPERATION, attempt).await?;
        match token_transient(&response) {
            Some(transient) => Err(Failure::Transient(transient)),
            None => Ok(response),
        }
    })
    .await?;
    if !response.status.is_success() {
        return Err(token_error(&response, app.credential()));
    }
    let parsed: TokenResponse =
        serde_json::from_slice(&response.body).map_err(|_| malformed(&response))?;
    // Clamped before any arithmetic: a token endpoint's number near u64::MAX would overflow the
    // refresh instant and panic the operator.
    let lifetime = Duration::from_secs(
        parsed
            .expires_in
            .seconds()
            .ok_or_else(|| malformed(&response))?
            .min(LONGEST_TOKEN_LIFETIME.as_secs()),
    );
    let fetched_at = Instant::now();
    tracing::debug!(
        tenant = app.tenant(),
        client_id = app.client_id(),
        credential = app.credential().kind(),
        expires_in_s = lifetime.as_secs(),
        "fetched an access token"
    );
    Ok(AccessToken {
        value: SecretString::from(parsed.access_token),
        generation,
        fetched_at,
        // Short-lived tokens (as test tenants issue) would never be fresh under a margin of
        // minutes: keep at least half the lifetime.
        refresh_at: fetched_at + lifetime - config.token_expiry_margin.min(lifetime / 2),
    })
}

/// What the form carries to prove the app's identity.
enum ClientProof<'a> {
    Secret(&'a SecretString),
    /// A signed JWT: a certificate's client assertion or a federated token.
    Assertion(SecretString),
}

impl<'a> ClientProof<'a> {
    async fn of(app: &'a AppCredentials, token_url: &Url) -> Result<Self, GraphError> {
        Ok(match app.credential() {
            ClientCredential::Secret(secret) => ClientProof::Secret(secret),
            ClientCredential::Certificate(certificate) => {
                ClientProof::Assertion(certificate.assertion(token_url.as_str(), app.client_id())?)
            }
            ClientCredential::Federated(source) => ClientProof::Assertion(source.token().await?),
        })
    }
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The client-credentials grant's form: a secret as `client_secret`, an assertion as
/// `client_assertion` with its type.
fn token_form<'a>(
    app: &'a AppCredentials,
    proof: &'a ClientProof<'_>,
) -> Vec<(&'static str, &'a str)> {
    let mut form = vec![("client_id", app.client_id())];
    match proof {
        ClientProof::Secret(secret) => form.push(("client_secret", secret.expose_secret())),
        ClientProof::Assertion(assertion) => form.extend([
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion.expose_secret()),
        ]),
    }
    form.extend([
        ("scope", app.endpoints().scope()),
        ("grant_type", "client_credentials"),
    ]);
    form
}

fn token_url(app: &AppCredentials) -> Result<Url, GraphError> {
    if app.tenant().is_empty() {
        return Err(GraphError::Config("the tenant id is empty".into()));
    }
    let mut url = app.endpoints().authority_host().clone();
    url.path_segments_mut()
        .map_err(|()| GraphError::Config("the authority host cannot hold a path".into()))?
        .pop_if_empty()
        .extend([app.tenant(), "oauth2", "v2.0", "token"]);
    Ok(url)
}

/// Throttling and outages of the token endpoint: statuses, or OAuth's `temporarily_unavailable`.
fn token_transient(response: &RawResponse) -> Option<TransientFailure> {
    let body = TokenErrorBody::parse(&response.body);
    let kind = response.transient_kind().or_else(|| {
        (body.error.as_deref() == Some("temporarily_unavailable")).then_some(
            TransientKind::Unavailable {
                status: response.status.as_u16(),
            },
        )
    })?;
    Some(TransientFailure {
        kind,
        retry_after: response.retry_after,
        diagnostics: body.diagnostics(&response.client_request_id),
    })
}

/// Maps a token error on its OAuth `error` code (and status); AADSTS numbers, which Microsoft
/// says may change, only tell an unknown tenant apart from other malformed requests, and tell
/// apart why an assertion was refused.
fn token_error(response: &RawResponse, credential: &ClientCredential) -> GraphError {
    /// AADSTS90002: tenant not found; AADSTS900023: not a valid tenant identifier.
    const UNKNOWN_TENANT_CODES: [u32; 2] = [90002, 900023];
    let body = TokenErrorBody::parse(&response.body);
    let diagnostics = body.diagnostics(&response.client_request_id);
    if credential.is_assertion()
        && let Some(error) = assertion_error(&body, &diagnostics)
    {
        return error;
    }
    match body.error.as_deref() {
        Some("invalid_client") if credential.is_assertion() => {
            GraphError::InvalidClientAssertion(diagnostics)
        }
        Some("invalid_client") => GraphError::InvalidClientSecret(diagnostics),
        Some("unauthorized_client") => GraphError::UnknownApplication(diagnostics),
        Some("invalid_tenant") => GraphError::UnknownTenant(diagnostics),
        Some("invalid_request")
            if body
                .error_codes
                .iter()
                .any(|code| UNKNOWN_TENANT_CODES.contains(code)) =>
        {
            GraphError::UnknownTenant(diagnostics)
        }
        _ => GraphError::TokenRequestFailed {
            status: response.status.as_u16(),
            diagnostics,
        },
    }
}

/// A refused assertion, told apart by AADSTS number. Entra has answered these both as
/// `invalid_client` and as `invalid_request`.
fn assertion_error(body: &TokenErrorBody, diagnostics: &Diagnostics) -> Option<GraphError> {
    /// AADSTS700027: invalid signature, unknown thumbprint or certificate not registered.
    const INVALID_ASSERTION: [u32; 1] = [700027];
    /// AADSTS700024: not within its valid time range.
    const EXPIRED_ASSERTION: [u32; 1] = [700024];
    /// AADSTS70021 and its later, more specific forms (no match for the issuer, audience or
    /// subject): no federated identity credential matches the token.
    const NO_FEDERATED_CREDENTIAL: [u32; 6] = [70021, 700211, 700212, 700213, 7002137, 7002138];
    if !matches!(
        body.error.as_deref(),
        Some("invalid_client" | "invalid_request")
    ) {
        return None;
    }
    let has = |codes: &[u32]| body.error_codes.iter().any(|code| codes.contains(code));
    let diagnostics = diagnostics.clone();
    if has(&NO_FEDERATED_CREDENTIAL) {
        Some(GraphError::FederatedCredentialNotFound(diagnostics))
    } else if has(&EXPIRED_ASSERTION) {
        Some(GraphError::ClientAssertionExpired(diagnostics))
    } else if has(&INVALID_ASSERTION) {
        Some(GraphError::InvalidClientAssertion(diagnostics))
    } else {
        None
    }
}

fn malformed(response: &RawResponse) -> GraphError {
    GraphError::MalformedResponse {
        operation: OPERATION,
        status: response.status.as_u16(),
        diagnostics: TokenErrorBody::parse(&response.body).diagnostics(&response.client_request_id),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;

    use super::*;
    use crate::graph::certificate::{AssertionAlgorithm, CertificateCredential};
    use crate::graph::cloud::{Cloud, Endpoints};
    use crate::graph::federated::{FederatedTokenFile, FederatedTokenSource};

    fn token_response(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            request_id: None,
            retry_after: None,
            throttle_scope: None,
            limit_percentage: None,
            client_request_id: "sent".into(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn app(secret: &str) -> AppCredentials {
        AppCredentials::with_client_secret(
            Endpoints::for_cloud(Cloud::AzurePublic),
            "Contoso.onmicrosoft.com",
            "00000000-0000-0000-0000-000000000001",
            SecretString::from(secret),
        )
    }

    fn app_with(credential: ClientCredential) -> AppCredentials {
        AppCredentials::new(
            Endpoints::for_cloud(Cloud::AzurePublic),
            "Contoso.onmicrosoft.com",
            "00000000-0000-0000-0000-000000000001",
            credential,
        )
    }

    fn certificate(cert_pem: &[u8]) -> ClientCredential {
        let credential = CertificateCredential::from_pem(
            cert_pem,
            include_bytes!("testdata/rsa.key"),
            AssertionAlgorithm::Ps256,
            "2026-06-01T00:00:00Z".parse().unwrap(),
        )
        .unwrap();
        ClientCredential::Certificate(Arc::new(credential))
    }

    fn federated(path: &str) -> ClientCredential {
        ClientCredential::Federated(Arc::new(FederatedTokenFile::new(path)))
    }

    /// A federated source that hands out one fixed token.
    #[derive(Debug)]
    struct FixedToken;

    impl FederatedTokenSource for FixedToken {
        fn identity(&self) -> String {
            "serviceaccount:entra-operator/pool-a".into()
        }

        fn token(&self) -> futures::future::BoxFuture<'_, Result<SecretString, GraphError>> {
            Box::pin(async { Ok(SecretString::from("federated.service-account.token")) })
        }
    }

    async fn form_of(app: &AppCredentials) -> Vec<(String, String)> {
        let url = token_url(app).unwrap();
        let proof = ClientProof::of(app, &url).await.unwrap();
        token_form(app, &proof)
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    }

    fn names(form: &[(String, String)]) -> Vec<&str> {
        form.iter().map(|(name, _)| name.as_str()).collect()
    }

    fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
        &form.iter().find(|(field, _)| field == name).unwrap().1
    }

    #[tokio::test]
    async fn a_secret_is_sent_as_client_secret() {
        let form = form_of(&app("the-secret-value")).await;
        assert_eq!(
            names(&form),
            ["client_id", "client_secret", "scope", "grant_type"]
        );
        assert_eq!(field(&form, "client_secret"), "the-secret-value");
        assert_eq!(field(&form, "grant_type"), "client_credentials");
    }

    #[tokio::test]
    async fn certificates_and_federated_tokens_are_sent_as_jwt_bearer_assertions() {
        let certificate_app = app_with(certificate(include_bytes!("testdata/rsa.crt")));
        let federated_app = app_with(ClientCredential::Federated(Arc::new(FixedToken)));
        for app in [&certificate_app, &federated_app] {
            let form = form_of(app).await;
            assert_eq!(
                names(&form),
                [
                    "client_id",
                    "client_assertion_type",
                    "client_assertion",
                    "scope",
                    "grant_type"
                ]
            );
            assert_eq!(
                field(&form, "client_assertion_type"),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            );
            assert_eq!(field(&form, "client_id"), app.client_id());
            assert_eq!(
                field(&form, "scope"),
                "https://graph.microsoft.com/.default"
            );
        }
        let federated_form = form_of(&federated_app).await;
        assert_eq!(
            field(&federated_form, "client_assertion"),
            "federated.service-account.token"
        );
        // The certificate's assertion is a JWT for this token endpoint.
        let certificate_form = form_of(&certificate_app).await;
        let assertion = field(&certificate_form, "client_assertion");
        let claims = assertion.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["aud"], token_url(&certificate_app).unwrap().as_str());
    }

    #[test]
    fn a_certificate_is_keyed_by_its_thumbprint() {
        let cache = TokenCache::new();
        let key = cache.key(&app_with(certificate(include_bytes!("testdata/rsa.crt"))));
        let ClientCredential::Certificate(loaded) = certificate(include_bytes!("testdata/rsa.crt"))
        else {
            unreachable!()
        };
        assert_eq!(
            key.credential_fingerprint,
            CredentialFingerprint::Certificate(loaded.thumbprint_sha256().to_owned())
        );
        // The same leaf, sent with its chain, is the same credential.
        let chain = cache.key(&app_with(certificate(include_bytes!("testdata/chain.crt"))));
        assert_eq!(key, chain);
        // A renewed certificate for the same key gets its own token.
        let rotated = cache.key(&app_with(certificate(include_bytes!(
            "testdata/rotated.crt"
        ))));
        assert_ne!(key, rotated);
    }

    #[test]
    fn a_federated_source_is_keyed_by_its_identity() {
        let cache = TokenCache::new();
        let path = "/var/run/secrets/azure/tokens/azure-identity-token";
        let key = cache.key(&app_with(federated(path)));
        assert_eq!(
            key.credential_fingerprint,
            CredentialFingerprint::Federated(format!("file:{path}"))
        );
        assert_eq!(key, cache.key(&app_with(federated(path))));
        assert_ne!(key, cache.key(&app_with(federated("/elsewhere/token"))));
    }

    #[test]
    fn refused_assertions_map_on_the_aadsts_number() {
        let assertion = certificate(include_bytes!("testdata/rsa.crt"));
        let cases = [
            (
                401,
                r#"{"error":"invalid_client","error_codes":[700027]}"#,
                "InvalidClientAssertion",
            ),
            (
                401,
                r#"{"error":"invalid_client","error_codes":[700024]}"#,
                "ClientAssertionExpired",
            ),
            (
                400,
                r#"{"error":"invalid_request","error_codes":[70021]}"#,
                "FederatedCredentialNotFound",
            ),
            (
                401,
                r#"{"error":"invalid_client","error_codes":[7002138]}"#,
                "FederatedCredentialNotFound",
            ),
            // Any other refusal of the client is about the assertion, never a secret.
            (
                401,
                r#"{"error":"invalid_client","error_codes":[7000215]}"#,
                "InvalidClientAssertion",
            ),
            (
                400,
                r#"{"error":"unauthorized_client","error_codes":[700016]}"#,
                "UnknownApplication",
            ),
            (
                400,
                r#"{"error":"invalid_request","error_codes":[90002]}"#,
                "UnknownTenant",
            ),
            (
                400,
                r#"{"error":"invalid_request","error_codes":[900144]}"#,
                "TokenRequestFailed",
            ),
        ];
        for (status, body, reason) in cases {
            let error = token_error(&token_response(status, body), &assertion);
            assert_eq!(error.reason(), reason, "{body}");
            assert!(error.diagnostics().unwrap().aadsts.is_some());
        }
        // A secret's refusal stays a secret's, whatever the number.
        let secret = app("x");
        let body = r#"{"error":"invalid_client","error_codes":[700027]}"#;
        assert_eq!(
            token_error(&token_response(401, body), secret.credential()).reason(),
            "InvalidClientSecret"
        );
    }

    #[test]
    fn token_errors_map_on_the_oauth_code() {
        let cases = [
            (
                401,
                r#"{"error":"invalid_client","error_codes":[7000215]}"#,
                "InvalidClientSecret",
            ),
            (
                400,
                r#"{"error":"invalid_client","error_codes":[7000215]}"#,
                "InvalidClientSecret",
            ),
            (
                400,
                r#"{"error":"unauthorized_client","error_codes":[700016]}"#,
                "UnknownApplication",
            ),
            (
                400,
                r#"{"error":"invalid_request","error_codes":[90002]}"#,
                "UnknownTenant",
            ),
            (
                400,
                r#"{"error":"invalid_request","error_codes":[900144]}"#,
                "TokenRequestFailed",
            ),
            (
                400,
                r#"{"error":"invalid_scope","error_codes":[1002012]}"#,
                "TokenRequestFailed",
            ),
            (404, "<html>not found</html>", "TokenRequestFailed"),
        ];
        for (status, body, reason) in cases {
            assert_eq!(
                token_error(&token_response(status, body), app("x").credential()).reason(),
                reason,
                "{body}"
            );
        }
    }

    #[test]
    fn throttling_and_temporarily_unavailable_are_transient() {
        assert!(token_transient(&token_response(429, "")).is_some());
        assert!(token_transient(&token_response(503, "")).is_some());
        assert!(
            token_transient(&token_response(
                400,
                r#"{"error":"temporarily_unavailable"}"#
            ))
            .is_some()
        );
        assert!(token_transient(&token_response(400, r#"{"error":"invalid_client"}"#)).is_none());
    }

    #[test]
    fn token_url_encodes_the_tenant_as_one_segment() {
        let url = token_url(&app("x")).unwrap();
        assert_eq!(
            url.as_str(),
            "https://login.microsoftonline.com/Contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
    }

    #[test]
    fn rotated_secret_changes_the_key_and_debug_hides_the_secret() {
        let cache = TokenCache::new();
        let old = cache.key(&app("old-secret-value"));
        let new = cache.key(&app("new-secret-value"));
        assert_ne!(old, new);
        assert_eq!(old, cache.key(&app("old-secret-value")));
        assert!(!format!("{old:?}").contains("old-secret-value"));
    }
}
