//! App-only access tokens by client credentials, cached per (authority, tenant, app, scope,
//! credential) until a margin before expiry.
//!
//! Concurrent callers for the same key wait on one per-key lock, so a burst of reconciles costs
//! one token request. The credential enters the key as a keyed hash (random keys per process),
//! so a rotated secret gets a fresh token while the secret itself is never stored as a key.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use crate::sensitive::SecretString;

use super::client::GraphClientConfig;
use super::credentials::{AppCredentials, ClientCredential};
use super::error::{GraphError, TokenErrorBody, TransientFailure, TransientKind};
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

/// Identifies one app's token. `Debug` shows the credential only as its keyed fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TokenKey {
    authority: String,
    tenant: String,
    client_id: String,
    scope: String,
    credential_fingerprint: u128,
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
        let secret = match app.credential() {
            ClientCredential::Secret(secret) => secret.expose(),
        };
        let high = self.fingerprint_keys.0.hash_one(secret);
        let low = self.fingerprint_keys.1.hash_one(secret);
        TokenKey {
            authority: app.endpoints().authority_host().as_str().to_owned(),
            tenant: app.tenant().to_ascii_lowercase(),
            client_id: app.client_id().to_ascii_lowercase(),
            scope: app.endpoints().scope().to_owned(),
            credential_fingerprint: (u128::from(high) << 64) | u128::from(low),
        }
    }
}

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
    let url = token_url(app)?;
    let ClientCredential::Secret(secret) = app.credential();
    let form = [
        ("client_id", app.client_id()),
        ("client_secret", secret.expose()),
        ("scope", app.endpoints().scope()),
        ("grant_type", "client_credentials"),
    ];
    let response = with_retries(&config.retry, OPERATION, |attempt| {
        let request = http
            .post(url.clone())
            .timeout(config.request_timeout)
            .form(&form);
        async move {
            let response = send_once(request, OPERATION, attempt).await?;
            match token_transient(&response) {
                Some(transient) => Err(Failure::Transient(transient)),
                None => Ok(response),
            }
        }
    })
    .await?;
    if !response.status.is_success() {
        return Err(token_error(&response));
    }
    let parsed: TokenResponse =
        serde_json::from_slice(&response.body).map_err(|_| malformed(&response))?;
    let lifetime = Duration::from_secs(
        parsed
            .expires_in
            .seconds()
            .ok_or_else(|| malformed(&response))?,
    );
    let fetched_at = Instant::now();
    tracing::debug!(
        tenant = app.tenant(),
        client_id = app.client_id(),
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
/// says may change, only tell an unknown tenant apart from other malformed requests.
fn token_error(response: &RawResponse) -> GraphError {
    /// AADSTS90002: tenant not found; AADSTS900023: not a valid tenant identifier.
    const UNKNOWN_TENANT_CODES: [u32; 2] = [90002, 900023];
    let body = TokenErrorBody::parse(&response.body);
    let diagnostics = body.diagnostics(&response.client_request_id);
    match body.error.as_deref() {
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
    use crate::graph::cloud::{Cloud, Endpoints};

    fn token_response(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            request_id: None,
            retry_after: None,
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
                token_error(&token_response(status, body)).reason(),
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
