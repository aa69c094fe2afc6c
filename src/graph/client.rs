//! The Graph client: one HTTP connection pool and one token cache for every app the operator serves.

use std::fmt;
use std::sync::Arc;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;
use zeroize::Zeroizing;

use super::config::GraphClientConfig;
use super::credentials::AppCredentials;
use super::error::{GraphError, TransientFailure, TransientKind};
use super::http::{RawResponse, build_http_client, send_once};
use super::retry::{Failure, with_retries};
use super::token::TokenCache;
use crate::sensitive::ExposeSecret;

/// A Microsoft Graph client for app-only calls. Cheap to clone: clones share connections and tokens.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: GraphClientConfig,
    tokens: TokenCache,
}

/// One Graph call, re-sendable as is: retries send the same body (the same password).
pub(crate) struct GraphRequest {
    pub operation: &'static str,
    pub method: Method,
    pub url: Url,
    pub json_body: Option<Zeroizing<Vec<u8>>>,
}

impl GraphClient {
    pub fn new(config: GraphClientConfig) -> Result<Self, GraphError> {
        let http = build_http_client(config.connect_timeout)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                tokens: TokenCache::new(),
            }),
        })
    }

    pub fn config(&self) -> &GraphClientConfig {
        &self.inner.config
    }

    /// Proves the app can get a token (reusing a cached one): the tenant, app and secret are right.
    pub async fn check_credentials(&self, app: &AppCredentials) -> Result<(), GraphError> {
        self.inner
            .tokens
            .token(&self.inner.http, &self.inner.config, app)
            .await
            .map(drop)
    }

    /// Sends `request` with the app's token, retrying transient failures, and answers with the
    /// first response that is neither transient nor an auth failure worth a new token. A 401
    /// drops the token and retries once; so does a 403 on a token old enough to predate a grant.
    pub(crate) async fn call(
        &self,
        app: &AppCredentials,
        request: &GraphRequest,
    ) -> Result<RawResponse, GraphError> {
        let Inner {
            http,
            config,
            tokens,
        } = &*self.inner;
        let started = tokio::time::Instant::now();
        let mut renewed_after_401 = false;
        let mut renewed_after_403 = false;
        loop {
            let token = tokens.token(http, config, app).await?;
            let response = with_retries(&config.retry, request.operation, |attempt| {
                let mut builder = http
                    .request(request.method.clone(), request.url.clone())
                    .timeout(config.request_timeout)
                    .bearer_auth(token.value().expose_secret());
                if let Some(body) = &request.json_body {
                    builder = builder
                        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                        .body(body.to_vec());
                }
                async move {
                    let response = send_once(builder, request.operation, attempt).await?;
                    match transient(request, &response) {
                        Some(transient) => Err(Failure::Transient(transient)),
                        None => Ok(response),
                    }
                }
            })
            .await?;
            let token_predates_call = token.fetched_at() < started;
            let renew = match response.status {
                StatusCode::UNAUTHORIZED if !renewed_after_401 => {
                    renewed_after_401 = true;
                    true
                }
                StatusCode::FORBIDDEN
                    if !renewed_after_403
                        && token_predates_call
                        && token.fetched_at().elapsed() >= config.forbidden_token_min_age =>
                {
                    renewed_after_403 = true;
                    true
                }
                _ => false,
            };
            if !renew {
                return Ok(response);
            }
            tracing::debug!(
                operation = request.operation,
                status = response.status.as_u16(),
                "dropping the cached token and retrying with a new one"
            );
            tokens.invalidate(app, &token).await;
        }
    }
}

/// Transient answers: throttling and outages, and a 202 to a read that carries no resource.
fn transient(request: &GraphRequest, response: &RawResponse) -> Option<TransientFailure> {
    if response.status == StatusCode::ACCEPTED
        && request.method == Method::GET
        && response.body.iter().all(u8::is_ascii_whitespace)
    {
        return Some(TransientFailure {
            kind: TransientKind::Accepted,
            retry_after: response.retry_after,
            diagnostics: response.graph_diagnostics(),
        });
    }
    response.graph_transient()
}

impl fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphClient")
            .field("config", &self.inner.config)
            .field("cached_apps", &self.inner.tokens.len())
            .finish_non_exhaustive()
    }
}
