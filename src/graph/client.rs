//! The Graph client: one HTTP connection pool, one token cache and one scheduler for every app
//! the operator serves.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use tokio::time::Instant;
use url::Url;
use zeroize::Zeroizing;

use super::config::GraphClientConfig;
use super::credentials::AppCredentials;
use super::error::{GraphError, QueuedBecause, TransientFailure, TransientKind};
use super::http::{RawResponse, build_http_client, send_once};
use super::retry::Failure;
use super::scheduler::{Answer, AppInTenant, Limit, NotYet, Purpose, Scheduler, Ticket};
use super::token::TokenCache;
use crate::sensitive::ExposeSecret;

const THROTTLE_PRIORITY: HeaderName = HeaderName::from_static("x-ms-throttle-priority");

/// A Microsoft Graph client for app-only calls. Cheap to clone: clones share connections, tokens
/// and the scheduler; [`GraphClient::for_purpose`] makes one whose requests wait in line for a
/// purpose.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
    purpose: Purpose,
}

struct Inner {
    http: reqwest::Client,
    config: GraphClientConfig,
    tokens: TokenCache,
    scheduler: Scheduler,
}

/// One Graph call, re-sendable as is: retries send the same body (the same password).
pub(crate) struct GraphRequest {
    pub operation: &'static str,
    pub method: Method,
    pub url: Url,
    pub json_body: Option<Zeroizing<Vec<u8>>>,
}

impl GraphRequest {
    /// Writes and reads are counted apart.
    fn limit(&self) -> Limit {
        if self.method == Method::GET {
            Limit::Read
        } else {
            Limit::Write
        }
    }

    /// What Entra counts the request as: a write one; a read 2 resource units, 1 less with
    /// `$select`, 1 more with `$expand`.
    fn units(&self) -> f64 {
        if self.limit() == Limit::Write {
            return 1.0;
        }
        let query = self.url.query().unwrap_or_default();
        let mut units: f64 = 2.0;
        if query.contains("$select") || query.contains("%24select") {
            units -= 1.0;
        }
        if query.contains("$expand") || query.contains("%24expand") {
            units += 1.0;
        }
        units.max(1.0)
    }
}

impl GraphClient {
    pub fn new(config: GraphClientConfig) -> Result<Self, GraphError> {
        let http = build_http_client(config.connect_timeout)?;
        let scheduler = Scheduler::new(
            config.budgets.clone(),
            config.retry.initial_backoff,
            config.retry.max_backoff,
        );
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                tokens: TokenCache::new(),
                scheduler,
            }),
            purpose: Purpose::default(),
        })
    }

    pub fn config(&self) -> &GraphClientConfig {
        &self.inner.config
    }

    /// The same client, whose requests wait in line for `purpose`.
    pub fn for_purpose(&self, purpose: Purpose) -> GraphClient {
        GraphClient {
            inner: self.inner.clone(),
            purpose,
        }
    }

    /// Requests waiting for their turn, parked ones included.
    pub fn waiting_requests(&self) -> usize {
        self.inner.scheduler.waiting()
    }

    /// Proves the app can get a token (reusing a cached one): the tenant, app and secret are right.
    pub async fn check_credentials(&self, app: &AppCredentials) -> Result<(), GraphError> {
        self.inner
            .tokens
            .token(&self.inner.http, &self.inner.config, app)
            .await
            .map(drop)
    }

    /// Sends `request` with the app's token when the scheduler gives it its turn, and answers
    /// with the first response that is neither transient nor an auth failure worth a new token.
    /// A refusal (429) or an outage pauses the app's scope in the scheduler and the request
    /// waits its turn again, keeping its place; a request whose turn is not soon answers
    /// [`GraphError::Queued`] when its purpose has a holder to come back. A 401 drops the token
    /// and retries once; so does a 403 on a token old enough to predate a grant.
    pub(crate) async fn call(
        &self,
        app: &AppCredentials,
        request: &GraphRequest,
    ) -> Result<RawResponse, GraphError> {
        let Inner {
            http,
            config,
            tokens,
            scheduler,
        } = &*self.inner;
        let who = AppInTenant::new(app.tenant(), app.client_id());
        let limit = request.limit();
        let started = Instant::now();
        let mut attempts = 0;
        let mut kept = None;
        let mut last: Option<TransientFailure> = None;
        let mut renewed_after_401 = false;
        let mut renewed_after_403 = false;
        loop {
            let ticket = Ticket {
                who: &who,
                limit,
                units: request.units(),
                purpose: &self.purpose,
                kept,
                longest_wait: config.retry.max_elapsed.saturating_sub(started.elapsed()),
            };
            let permit = match scheduler.admit(ticket).await {
                Ok(permit) => permit,
                Err(not_yet) => return Err(self.not_yet(request, attempts, started, last, not_yet)),
            };
            kept = Some(permit.place());
            let token = tokens.token(http, config, app).await?;
            attempts += 1;
            let sent = send_once(self.builder(request, &token), request.operation, attempts).await;
            let response = match sent {
                Ok(response) => response,
                Err(Failure::Permanent(error)) => return Err(error),
                Err(Failure::Transient(failure)) => {
                    let unanswered = Answer {
                        answered: false,
                        ..Answer::default()
                    };
                    scheduler.observe(&who, limit, &unanswered);
                    drop(permit);
                    last = Some(self.give_up_after(request, attempts, started, failure)?);
                    continue;
                }
            };
            scheduler.observe(
                &who,
                limit,
                &Answer {
                    status: response.status.as_u16(),
                    answered: true,
                    retry_after: response.retry_after,
                    throttle_scope: response.throttle_scope.as_deref(),
                    limit_percentage: response.limit_percentage,
                },
            );
            drop(permit);
            if let Some(failure) = transient(request, &response) {
                last = Some(self.give_up_after(request, attempts, started, failure)?);
                continue;
            }
            // A write that may have been applied by an earlier attempt reports that, whatever
            // this answer says, so that the caller never takes it for a clean refusal.
            if let Some(unsure) = last.as_ref().filter(|last| may_have_applied(request, last))
                && !response.status.is_success()
            {
                return Err(GraphError::TransientExhausted {
                    operation: request.operation,
                    attempts,
                    elapsed: started.elapsed(),
                    last: Box::new(unsure.clone()),
                });
            }
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

    fn builder(
        &self,
        request: &GraphRequest,
        token: &super::token::AccessToken,
    ) -> reqwest::RequestBuilder {
        let mut builder = self
            .inner
            .http
            .request(request.method.clone(), request.url.clone())
            .timeout(self.inner.config.request_timeout)
            .bearer_auth(token.value().expose_secret());
        if let Some(priority) = self.purpose.class.throttle_priority() {
            builder = builder.header(THROTTLE_PRIORITY, HeaderValue::from_static(priority));
        }
        if let Some(body) = &request.json_body {
            builder = builder
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body.to_vec());
        }
        builder
    }

    /// A transient failure is tried again (the scheduler paces the next attempt) until the
    /// attempts run out.
    fn give_up_after(
        &self,
        request: &GraphRequest,
        attempts: u32,
        started: Instant,
        failure: TransientFailure,
    ) -> Result<TransientFailure, GraphError> {
        tracing::debug!(
            operation = request.operation,
            attempt = attempts,
            %failure,
            "transient failure; waiting for the next turn"
        );
        if attempts >= self.inner.config.retry.max_attempts {
            return Err(GraphError::TransientExhausted {
                operation: request.operation,
                attempts,
                elapsed: started.elapsed(),
                last: Box::new(failure),
            });
        }
        Ok(failure)
    }

    /// The request did not get its turn in time: parked (its holder comes back), or its caller
    /// waited as long as it may.
    fn not_yet(
        &self,
        request: &GraphRequest,
        attempts: u32,
        started: Instant,
        last: Option<TransientFailure>,
        not_yet: NotYet,
    ) -> GraphError {
        let because = match last.as_ref().map(|last| last.kind) {
            Some(TransientKind::Throttled) => QueuedBecause::Throttled,
            Some(_) => QueuedBecause::Unavailable,
            None if not_yet.refused => QueuedBecause::Throttled,
            None => QueuedBecause::Paced,
        };
        let may_have_applied = last
            .as_ref()
            .is_some_and(|last| may_have_applied(request, last));
        if self.purpose.holder.is_none() {
            // A waiting caller has nowhere to be parked: it gets what it waited for.
            let last = last.unwrap_or(TransientFailure {
                kind: TransientKind::Throttled,
                retry_after: Some(not_yet.ready_in),
                diagnostics: Default::default(),
            });
            return GraphError::TransientExhausted {
                operation: request.operation,
                attempts,
                elapsed: started.elapsed(),
                last: Box::new(TransientFailure {
                    retry_after: last
                        .retry_after
                        .or(Some(not_yet.ready_in.max(Duration::from_millis(1)))),
                    ..last
                }),
            };
        }
        GraphError::Queued {
            operation: request.operation,
            ready_in: not_yet.ready_in,
            because,
            may_have_applied,
        }
    }
}

/// A write whose attempt got no answer, or a 5xx, may have been applied.
fn may_have_applied(request: &GraphRequest, last: &TransientFailure) -> bool {
    request.limit() == Limit::Write
        && matches!(
            last.kind,
            TransientKind::Unavailable { .. } | TransientKind::Timeout | TransientKind::Connection
        )
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
            .field("purpose", &self.purpose)
            .field("cached_apps", &self.inner.tokens.len())
            .finish_non_exhaustive()
    }
}
