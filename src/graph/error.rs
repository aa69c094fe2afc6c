//! What can go wrong talking to Entra and Graph, in terms an operator can act on.
//!
//! Errors carry Graph's `request-id`, the `client-request-id` we sent (or the token endpoint's
//! `trace_id`/`correlation_id`) and the AADSTS number, so a support case can find the request.
//! They never carry secrets, tokens, passwords or response bodies: Graph's `message` and AAD's
//! `error_description` are left out on purpose. Branching is on status and code, never on message.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::certificate_problem::CertificateProblem;
use super::not_leasable::NotLeasable;

/// Correlation data for one failed request: safe to show in conditions, events and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// Graph's `request-id`, or the token endpoint's `trace_id`.
    pub request_id: Option<String>,
    /// The `client-request-id` we sent, or the token endpoint's `correlation_id`.
    pub client_request_id: Option<String>,
    /// Graph's `error.code` or the token endpoint's `error`.
    pub code: Option<String>,
    /// The first AADSTS number of a token error.
    pub aadsts: Option<u32>,
}

impl Diagnostics {
    pub(crate) fn with_client_request_id(client_request_id: &str) -> Self {
        Self {
            client_request_id: Some(client_request_id.to_owned()),
            ..Self::default()
        }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(code) = &self.code {
            parts.push(code.clone());
        }
        if let Some(aadsts) = self.aadsts {
            parts.push(format!("AADSTS{aadsts}"));
        }
        if let Some(id) = &self.request_id {
            parts.push(format!("request-id {id}"));
        }
        if let Some(id) = &self.client_request_id {
            parts.push(format!("client-request-id {id}"));
        }
        if parts.is_empty() {
            f.write_str("no request id")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Why a request may succeed if sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransientKind {
    /// 429, or the token endpoint's `temporarily_unavailable`.
    Throttled,
    /// 500, 502, 503, 504.
    Unavailable { status: u16 },
    /// No answer within the request timeout; a write may or may not have been applied.
    Timeout,
    /// Connection refused, reset or closed before the answer; a write may have been applied.
    Connection,
    /// 202 to a read, without the resource in the body.
    Accepted,
}

/// The last transient failure seen before the retry budget ran out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransientFailure {
    pub kind: TransientKind,
    /// The server's `Retry-After`, if it sent one.
    pub retry_after: Option<Duration>,
    pub diagnostics: Diagnostics,
}

impl fmt::Display for TransientFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TransientKind::Throttled => f.write_str("throttled")?,
            TransientKind::Unavailable { status } => write!(f, "HTTP {status}")?,
            TransientKind::Timeout => f.write_str("timed out")?,
            TransientKind::Connection => f.write_str("connection failed")?,
            TransientKind::Accepted => f.write_str("accepted without a result")?,
        }
        if let Some(wait) = self.retry_after {
            write!(f, ", Retry-After {:.3}s", wait.as_secs_f64())?;
        }
        write!(f, " ({})", self.diagnostics)
    }
}

/// Why a request waits in line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueuedBecause {
    /// Entra answered 429 for a scope of it.
    Throttled,
    /// Graph did not answer, or answered 5xx: the app's requests back off.
    Unavailable,
    /// The operator paces the app to its budgets, or more urgent requests go first.
    Paced,
}

impl fmt::Display for QueuedBecause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QueuedBecause::Throttled => "Entra throttled it",
            QueuedBecause::Unavailable => "Graph did not answer",
            QueuedBecause::Paced => "paced to Entra's limits, ending credentials first",
        })
    }
}

/// Every failure of the Graph client. Each permanent variant maps to one condition reason.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("invalid Graph client configuration: {0}")]
    Config(String),

    /// The token a federated credential exchanges could not be obtained (a token file missing, a
    /// TokenRequest refused); `reason` says which, for the condition.
    #[error("no federated token to exchange: {message}")]
    AssertionUnavailable {
        reason: &'static str,
        message: String,
    },

    #[error(
        "the token endpoint rejected the client secret ({0}): check that the Secret holds the \
         secret's value (not its id), that it belongs to this app and has not expired"
    )]
    InvalidClientSecret(Diagnostics),

    #[error(
        "the token endpoint rejected the client assertion ({0}): for a certificate, check that \
         this certificate (compare its thumbprint) is uploaded to this app's registration and \
         has not expired there; for workload identity, check that Entra can fetch the issuer's \
         OIDC discovery document and keys"
    )]
    InvalidClientAssertion(Diagnostics),

    #[error(
        "the token endpoint found the client assertion outside its valid time ({0}): check the \
         clock of the operator's node, and for a service-account token that it is still fresh"
    )]
    ClientAssertionExpired(Diagnostics),

    #[error(
        "the app has no federated identity credential matching the service-account token ({0}): \
         check the credential's issuer (the cluster's service-account issuer URL), subject \
         (system:serviceaccount:<namespace>:<name>) and audience (api://AzureADTokenExchange)"
    )]
    FederatedCredentialNotFound(Diagnostics),

    #[error("the client certificate cannot be used: {0}")]
    Certificate(CertificateProblem),

    #[error("the token endpoint does not know the tenant ({0}): check tenantId and cloud")]
    UnknownTenant(Diagnostics),

    #[error(
        "the tenant has no application with this client id ({0}): check applicationId, tenantId \
         and cloud"
    )]
    UnknownApplication(Diagnostics),

    #[error("the token endpoint refused to issue a token (HTTP {status}; {diagnostics})")]
    TokenRequestFailed {
        status: u16,
        diagnostics: Diagnostics,
    },

    #[error(
        "Graph rejected a freshly issued access token (HTTP 401; {0}): check that the cloud \
         matches the tenant"
    )]
    AccessTokenRejected(Diagnostics),

    #[error(
        "Graph denied {operation} (HTTP 403; {diagnostics}): the app lacks an application \
         permission (User-PasswordProfile.ReadWrite.All or User.ReadWrite.All) or its service \
         principal lacks the User Administrator role, or the user holds a protected admin role"
    )]
    MissingPermission {
        operation: &'static str,
        diagnostics: Diagnostics,
    },

    #[error("user {user} does not exist in the tenant ({diagnostics})")]
    UserNotFound {
        user: String,
        diagnostics: Diagnostics,
    },

    #[error("user {user} cannot be leased: {reason}")]
    UserNotLeasable { user: String, reason: NotLeasable },

    #[error(
        "Entra rejected the generated password for user {user} ({diagnostics}): it failed the \
         complexity or banned-password check"
    )]
    PasswordRejected {
        user: String,
        diagnostics: Diagnostics,
    },

    #[error("Graph did not complete {operation} after {attempts} attempts in {elapsed:?}: {last}")]
    TransientExhausted {
        operation: &'static str,
        attempts: u32,
        elapsed: Duration,
        /// Boxed: it is the bulk of the variant, and errors stay small to move around.
        last: Box<TransientFailure>,
    },

    /// Not sent (again) yet: the request waits its turn in the scheduler's line, its place kept,
    /// while the caller's worker goes on. The caller asks again in about `ready_in`.
    #[error("{operation} waits its turn for the app's Graph budget ({because}); next try in about {}s", ready_in.as_secs_f64().ceil())]
    Queued {
        operation: &'static str,
        ready_in: Duration,
        because: QueuedBecause,
        /// An earlier attempt of this call got no answer or a 5xx: a write may be applied.
        may_have_applied: bool,
    },

    #[error("unexpected answer to {operation}: HTTP {status} ({diagnostics})")]
    Unexpected {
        operation: &'static str,
        status: u16,
        diagnostics: Diagnostics,
    },

    #[error(
        "malformed answer to {operation}: HTTP {status} with an unreadable body ({diagnostics})"
    )]
    MalformedResponse {
        operation: &'static str,
        status: u16,
        diagnostics: Diagnostics,
    },
}

impl GraphError {
    /// The CamelCase reason for a Kubernetes condition or event.
    pub fn reason(&self) -> &'static str {
        match self {
            GraphError::Config(_) => "InvalidConfiguration",
            GraphError::AssertionUnavailable { reason, .. } => reason,
            GraphError::InvalidClientSecret(_) => "InvalidClientSecret",
            GraphError::InvalidClientAssertion(_) => "InvalidClientAssertion",
            GraphError::ClientAssertionExpired(_) => "ClientAssertionExpired",
            GraphError::FederatedCredentialNotFound(_) => "FederatedCredentialNotFound",
            GraphError::Certificate(problem) => problem.reason(),
            GraphError::UnknownTenant(_) => "UnknownTenant",
            GraphError::UnknownApplication(_) => "UnknownApplication",
            GraphError::TokenRequestFailed { .. } => "TokenRequestFailed",
            GraphError::AccessTokenRejected(_) => "AccessTokenRejected",
            GraphError::MissingPermission { .. } => "MissingPermission",
            GraphError::UserNotFound { .. } => "UserNotFound",
            GraphError::UserNotLeasable { .. } => "UserNotLeasable",
            GraphError::PasswordRejected { .. } => "PasswordRejected",
            GraphError::TransientExhausted { .. } => "GraphUnavailable",
            GraphError::Queued { .. } => "WaitingForGraph",
            GraphError::Unexpected { .. } | GraphError::MalformedResponse { .. } => {
                "UnexpectedGraphResponse"
            }
        }
    }

    /// A low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            GraphError::Config(_) => "invalid_configuration",
            GraphError::AssertionUnavailable { .. } => "assertion_unavailable",
            GraphError::InvalidClientSecret(_) => "invalid_client_secret",
            GraphError::InvalidClientAssertion(_) => "invalid_client_assertion",
            GraphError::ClientAssertionExpired(_) => "client_assertion_expired",
            GraphError::FederatedCredentialNotFound(_) => "federated_credential_not_found",
            GraphError::Certificate(_) => "invalid_certificate",
            GraphError::UnknownTenant(_) => "unknown_tenant",
            GraphError::UnknownApplication(_) => "unknown_application",
            GraphError::TokenRequestFailed { .. } => "token_request_failed",
            GraphError::AccessTokenRejected(_) => "access_token_rejected",
            GraphError::MissingPermission { .. } => "missing_permission",
            GraphError::UserNotFound { .. } => "user_not_found",
            GraphError::UserNotLeasable { .. } => "user_not_leasable",
            GraphError::PasswordRejected { .. } => "password_rejected",
            GraphError::TransientExhausted { last, .. } => match last.kind {
                TransientKind::Throttled => "graph_throttled",
                TransientKind::Unavailable { .. }
                | TransientKind::Timeout
                | TransientKind::Connection
                | TransientKind::Accepted => "graph_unavailable",
            },
            GraphError::Queued {
                because: QueuedBecause::Unavailable,
                ..
            } => "graph_unavailable",
            GraphError::Queued { .. } => "graph_queued",
            GraphError::Unexpected { .. } | GraphError::MalformedResponse { .. } => {
                "unexpected_response"
            }
        }
    }

    /// True when the same call may succeed later without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        self.transient_failure().is_some() || matches!(self, GraphError::Queued { .. })
    }

    /// True when a write that failed this way may still have been applied: no answer came
    /// (a timeout, a broken connection) or Graph answered 5xx. Every other failure is an answer
    /// that applied nothing (a 4xx, throttling included) or a request that was never sent. The
    /// client reports a call whose earlier attempt had such an outcome as this kind too, whatever
    /// its last answer was.
    pub fn may_have_applied(&self) -> bool {
        if let GraphError::Queued {
            may_have_applied, ..
        } = self
        {
            return *may_have_applied;
        }
        self.transient_failure().is_some_and(|last| {
            matches!(
                last.kind,
                TransientKind::Unavailable { .. }
                    | TransientKind::Timeout
                    | TransientKind::Connection
                    | TransientKind::Accepted
            )
        })
    }

    /// When the server asked to be left alone for a while: a hint for the caller's requeue.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GraphError::Queued { ready_in, .. } => Some(*ready_in),
            _ => self.transient_failure()?.retry_after,
        }
    }

    /// True for a request that only waits its turn (throttled or paced), which is no failure;
    /// a request parked because Graph did not answer is one.
    pub fn only_waits_its_turn(&self) -> bool {
        matches!(
            self,
            GraphError::Queued {
                because: QueuedBecause::Throttled | QueuedBecause::Paced,
                ..
            }
        )
    }

    /// How long a request parked in the scheduler's line waits for its turn.
    pub fn queued_for(&self) -> Option<Duration> {
        match self {
            GraphError::Queued { ready_in, .. } => Some(*ready_in),
            _ => None,
        }
    }

    /// The last transient failure, when the retry budget ran out; `None` for the errors that
    /// need someone to change something.
    fn transient_failure(&self) -> Option<&TransientFailure> {
        match self {
            GraphError::TransientExhausted { last, .. } => Some(last),
            GraphError::Config(_)
            | GraphError::AssertionUnavailable { .. }
            | GraphError::InvalidClientSecret(_)
            | GraphError::InvalidClientAssertion(_)
            | GraphError::ClientAssertionExpired(_)
            | GraphError::FederatedCredentialNotFound(_)
            | GraphError::Certificate(_)
            | GraphError::UnknownTenant(_)
            | GraphError::UnknownApplication(_)
            | GraphError::TokenRequestFailed { .. }
            | GraphError::AccessTokenRejected(_)
            | GraphError::MissingPermission { .. }
            | GraphError::UserNotFound { .. }
            | GraphError::UserNotLeasable { .. }
            | GraphError::PasswordRejected { .. }
            | GraphError::Queued { .. }
            | GraphError::Unexpected { .. }
            | GraphError::MalformedResponse { .. } => None,
        }
    }

    /// The request ids to quote in an event, when the failure came from a request.
    pub fn diagnostics(&self) -> Option<&Diagnostics> {
        match self {
            GraphError::InvalidClientSecret(diagnostics)
            | GraphError::InvalidClientAssertion(diagnostics)
            | GraphError::ClientAssertionExpired(diagnostics)
            | GraphError::FederatedCredentialNotFound(diagnostics)
            | GraphError::UnknownTenant(diagnostics)
            | GraphError::UnknownApplication(diagnostics)
            | GraphError::AccessTokenRejected(diagnostics)
            | GraphError::TokenRequestFailed { diagnostics, .. }
            | GraphError::MissingPermission { diagnostics, .. }
            | GraphError::UserNotFound { diagnostics, .. }
            | GraphError::PasswordRejected { diagnostics, .. }
            | GraphError::Unexpected { diagnostics, .. }
            | GraphError::MalformedResponse { diagnostics, .. } => Some(diagnostics),
            GraphError::TransientExhausted { last, .. } => Some(&last.diagnostics),
            GraphError::Queued { .. }
            | GraphError::Config(_)
            | GraphError::AssertionUnavailable { .. }
            | GraphError::Certificate(_)
            | GraphError::UserNotLeasable { .. } => None,
        }
    }
}

/// Graph's error body: `{"error":{"code":..,"message":..,"innerError":{"request-id":..}}}`.
#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphErrorDetail,
}

#[derive(Deserialize)]
struct GraphErrorDetail {
    code: Option<String>,
    #[serde(alias = "innererror")]
    #[serde(rename = "innerError")]
    inner_error: Option<GraphInnerError>,
}

#[derive(Deserialize)]
struct GraphInnerError {
    #[serde(rename = "request-id")]
    request_id: Option<String>,
    #[serde(rename = "client-request-id")]
    client_request_id: Option<String>,
}

/// Diagnostics of a Graph response: ids from the headers, completed from the error body.
pub(crate) fn graph_diagnostics(
    body: &[u8],
    header_request_id: Option<&str>,
    sent_client_request_id: &str,
) -> Diagnostics {
    let parsed = serde_json::from_slice::<GraphErrorBody>(body).ok();
    let inner = parsed
        .as_ref()
        .and_then(|body| body.error.inner_error.as_ref());
    Diagnostics {
        request_id: header_request_id
            .map(str::to_owned)
            .or_else(|| inner.and_then(|inner| inner.request_id.clone()))
            .and_then(|id| printable_token(&id)),
        client_request_id: inner
            .and_then(|inner| inner.client_request_id.clone())
            .and_then(|id| printable_token(&id))
            .or_else(|| Some(sent_client_request_id.to_owned())),
        code: parsed
            .and_then(|body| body.error.code)
            .and_then(|code| printable_token(&code)),
        aadsts: None,
    }
}

/// The token endpoint's error body (OAuth 2.0 error response plus AAD's extras).
#[derive(Deserialize, Default)]
pub(crate) struct TokenErrorBody {
    pub error: Option<String>,
    #[serde(default)]
    pub error_codes: Vec<u32>,
    pub trace_id: Option<String>,
    pub correlation_id: Option<String>,
}

impl TokenErrorBody {
    pub(crate) fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }

    pub(crate) fn diagnostics(&self, sent_client_request_id: &str) -> Diagnostics {
        Diagnostics {
            request_id: self.trace_id.as_deref().and_then(printable_token),
            client_request_id: self
                .correlation_id
                .as_deref()
                .and_then(printable_token)
                .or_else(|| Some(sent_client_request_id.to_owned())),
            code: self.error.as_deref().and_then(printable_token),
            aadsts: self.error_codes.first().copied(),
        }
    }
}

/// Keeps an id or code from a response only if it looks like one, so a hostile or broken server
/// cannot inject text (or echo a secret) into our messages.
fn printable_token(value: &str) -> Option<String> {
    let value = value.trim();
    let looks_like_an_id = !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    looks_like_an_id.then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_error_body_yields_code_and_ids_but_not_the_message() {
        let body = br#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"date":"2024-01-01T00:00:00","request-id":"11111111-2222-3333-4444-555555555555","client-request-id":"c1"}}}"#;
        let diagnostics = graph_diagnostics(body, None, "sent");
        assert_eq!(
            diagnostics.code.as_deref(),
            Some("Authorization_RequestDenied")
        );
        assert_eq!(
            diagnostics.request_id.as_deref(),
            Some("11111111-2222-3333-4444-555555555555")
        );
        assert_eq!(diagnostics.client_request_id.as_deref(), Some("c1"));
        assert!(!diagnostics.to_string().contains("Insufficient"));
    }

    #[test]
    fn lowercase_innererror_is_understood_and_headers_win() {
        let body = br#"{"error":{"code":"Request_ResourceNotFound","innererror":{"request-id":"from-body"}}}"#;
        let diagnostics = graph_diagnostics(body, Some("from-header"), "sent");
        assert_eq!(diagnostics.request_id.as_deref(), Some("from-header"));
        assert_eq!(diagnostics.client_request_id.as_deref(), Some("sent"));
        let diagnostics = graph_diagnostics(body, None, "sent");
        assert_eq!(diagnostics.request_id.as_deref(), Some("from-body"));
    }

    #[test]
    fn unreadable_bodies_still_give_the_sent_id() {
        let diagnostics = graph_diagnostics(b"<html>bad gateway</html>", None, "sent");
        assert_eq!(diagnostics.code, None);
        assert_eq!(diagnostics.client_request_id.as_deref(), Some("sent"));
    }

    #[test]
    fn token_error_body_yields_error_trace_and_aadsts() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215],"timestamp":"2024-01-01 00:00:00Z","trace_id":"t-1","correlation_id":"c-1","error_uri":"https://login.microsoftonline.com/error?code=7000215"}"#;
        let diagnostics = TokenErrorBody::parse(body).diagnostics("sent");
        assert_eq!(diagnostics.code.as_deref(), Some("invalid_client"));
        assert_eq!(diagnostics.aadsts, Some(7000215));
        assert_eq!(diagnostics.request_id.as_deref(), Some("t-1"));
        assert_eq!(diagnostics.client_request_id.as_deref(), Some("c-1"));
        let shown = diagnostics.to_string();
        assert!(
            shown.contains("AADSTS7000215") && shown.contains("t-1"),
            "{shown}"
        );
    }

    #[test]
    fn ids_that_do_not_look_like_ids_are_dropped() {
        let body = br#"{"error":{"code":"bad code with spaces and a p4ssw0rd","innerError":{"request-id":"x\ny"}}}"#;
        let diagnostics = graph_diagnostics(body, None, "sent");
        assert_eq!(diagnostics.code, None);
        assert_eq!(diagnostics.request_id, None);
    }

    #[test]
    fn reasons_and_transience() {
        let exhausted = GraphError::TransientExhausted {
            operation: "get user",
            attempts: 3,
            elapsed: Duration::from_secs(1),
            last: Box::new(TransientFailure {
                kind: TransientKind::Throttled,
                retry_after: Some(Duration::from_millis(2128)),
                diagnostics: Diagnostics::default(),
            }),
        };
        assert!(exhausted.is_transient());
        assert_eq!(exhausted.reason(), "GraphUnavailable");
        assert_eq!(exhausted.metric_label(), "graph_throttled");
        assert_eq!(exhausted.retry_after(), Some(Duration::from_millis(2128)));
        assert!(exhausted.to_string().contains("Retry-After 2.128s"));

        let forbidden = GraphError::MissingPermission {
            operation: "set password",
            diagnostics: Diagnostics::default(),
        };
        assert!(!forbidden.is_transient());
        assert_eq!(forbidden.reason(), "MissingPermission");
        assert!(forbidden.to_string().contains("User Administrator"));
    }
}
