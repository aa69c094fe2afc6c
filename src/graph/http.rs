//! One HTTP attempt: send, read the whole answer, and sort out what is worth retrying.
//!
//! Logged at debug level with the operation, status and ids only: never URLs' queries, headers,
//! or bodies, which carry tokens and passwords.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};

use super::error::{Diagnostics, GraphError, TransientFailure, TransientKind, graph_diagnostics};
use super::retry::{Failure, parse_retry_after};

const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("client-request-id");
const RETURN_CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("return-client-request-id");
const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
/// The token endpoint's name for it.
const MS_REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-request-id");
const THROTTLE_SCOPE: HeaderName = HeaderName::from_static("x-ms-throttle-scope");
const THROTTLE_LIMIT_PERCENTAGE: HeaderName =
    HeaderName::from_static("x-ms-throttle-limit-percentage");

/// The most of an answer that is read. What the operator asks Entra and Graph for is answered in a
/// few KiB (a page of memberships is the largest); a bigger body is nothing it can use, and
/// reading it would spend memory that every tenant's leases share.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A complete answer: status, the headers we use, and the body.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub status: StatusCode,
    pub request_id: Option<String>,
    pub retry_after: Option<Duration>,
    /// `x-ms-throttle-scope`: which of Entra's budgets refused (on a 429).
    pub throttle_scope: Option<String>,
    /// `x-ms-throttle-limit-percentage`: how much of a budget is used, once 80 % or more.
    pub limit_percentage: Option<f64>,
    pub client_request_id: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Diagnostics of a Graph answer (ids from headers and error body).
    pub fn graph_diagnostics(&self) -> Diagnostics {
        graph_diagnostics(
            &self.body,
            self.request_id.as_deref(),
            &self.client_request_id,
        )
    }

    /// What kind of transient failure the status says this is: 429 and the 5xx statuses a
    /// gateway or a busy service return.
    pub fn transient_kind(&self) -> Option<TransientKind> {
        match self.status.as_u16() {
            429 => Some(TransientKind::Throttled),
            status @ (500 | 502 | 503 | 504) => Some(TransientKind::Unavailable { status }),
            _ => None,
        }
    }

    /// The answer as a transient Graph failure, when its status says "try again".
    pub fn graph_transient(&self) -> Option<TransientFailure> {
        self.transient_kind().map(|kind| TransientFailure {
            kind,
            retry_after: self.retry_after,
            diagnostics: self.graph_diagnostics(),
        })
    }
}

/// Sends one attempt with a fresh `client-request-id`, reads the body, and classifies transport
/// failures. HTTP error statuses come back as `Ok`: what they mean depends on the endpoint.
pub(crate) async fn send_once(
    request: RequestBuilder,
    operation: &'static str,
    attempt: u32,
) -> Result<RawResponse, Failure> {
    let client_request_id = uuid::Uuid::new_v4().to_string();
    let request = request
        .header(
            CLIENT_REQUEST_ID,
            HeaderValue::from_str(&client_request_id).expect("a UUID is a valid header value"),
        )
        .header(RETURN_CLIENT_REQUEST_ID, HeaderValue::from_static("true"));
    let started = std::time::Instant::now();
    let result = match request.send().await {
        Ok(response) => {
            let status = response.status();
            let headers = response.headers().clone();
            read_body(response)
                .await
                .map(|body| (status, headers, body))
        }
        Err(error) => Err(error),
    };
    let (status, headers, body) = match result {
        Ok((status, headers, Some(body))) => (status, headers, body),
        Ok((status, headers, None)) => {
            crate::metrics::metrics().observe_graph(operation, "oversized", started.elapsed());
            tracing::debug!(
                operation,
                attempt,
                client_request_id,
                status = status.as_u16(),
                "answer too large"
            );
            return Err(Failure::Permanent(GraphError::MalformedResponse {
                operation,
                status: status.as_u16(),
                diagnostics: Diagnostics {
                    request_id: header_text(&headers, &REQUEST_ID)
                        .or_else(|| header_text(&headers, &MS_REQUEST_ID)),
                    ..Diagnostics::with_client_request_id(&client_request_id)
                },
            }));
        }
        Err(error) => {
            let failure = transport_failure(&error, &client_request_id);
            let status = if error.is_timeout() {
                "timeout"
            } else {
                "connection"
            };
            crate::metrics::metrics().observe_graph(operation, status, started.elapsed());
            tracing::debug!(
                operation,
                attempt,
                client_request_id,
                timeout = error.is_timeout(),
                cause = %innermost_cause(&error),
                "request failed without an answer"
            );
            return Err(failure);
        }
    };
    let response = RawResponse {
        status,
        request_id: header_text(&headers, &REQUEST_ID)
            .or_else(|| header_text(&headers, &MS_REQUEST_ID)),
        retry_after: headers
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after),
        throttle_scope: header_text(&headers, &THROTTLE_SCOPE),
        limit_percentage: header_text(&headers, &THROTTLE_LIMIT_PERCENTAGE)
            .and_then(|text| text.trim().parse().ok())
            .filter(|percent: &f64| percent.is_finite()),
        client_request_id,
        body,
    };
    let status = response.status.as_u16().to_string();
    crate::metrics::metrics().observe_graph(operation, &status, started.elapsed());
    tracing::debug!(
        operation,
        attempt,
        status = response.status.as_u16(),
        request_id = response.request_id.as_deref().unwrap_or(""),
        client_request_id = response.client_request_id,
        "answered"
    );
    Ok(response)
}

/// The body, read chunk by chunk up to [`MAX_BODY_BYTES`]; `None` when the answer is larger (by
/// its Content-Length, before reading, or as it arrives).
async fn read_body(mut response: reqwest::Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if response
        .content_length()
        .is_some_and(|length| length > MAX_BODY_BYTES as u64)
    {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

fn header_text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// A request that got no (complete) answer. Building errors are ours and permanent; everything
/// on the wire (connect, reset, timeout, truncated body) may work next time.
fn transport_failure(error: &reqwest::Error, client_request_id: &str) -> Failure {
    if error.is_builder() {
        return Failure::Permanent(GraphError::Config(format!(
            "cannot build the request: {}",
            innermost_cause(error)
        )));
    }
    let kind = if error.is_timeout() {
        TransientKind::Timeout
    } else {
        TransientKind::Connection
    };
    Failure::Transient(TransientFailure {
        kind,
        retry_after: None,
        diagnostics: Diagnostics::with_client_request_id(client_request_id),
    })
}

/// The root cause's message ("connection refused", "dns error"), without reqwest's outer text,
/// which repeats the URL.
fn innermost_cause(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// The reqwest client shared by every app: no redirects (a redirect could carry a bearer token
/// to another host), bounded connect time.
pub(crate) fn build_http_client(connect_timeout: Duration) -> Result<reqwest::Client, GraphError> {
    crate::tls::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .user_agent(concat!("entra-operator/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| {
            GraphError::Config(format!(
                "cannot build the HTTP client: {}",
                innermost_cause(&error)
            ))
        })
}
