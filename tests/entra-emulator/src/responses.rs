//! The wire shapes of errors: Entra's token endpoint (AAD style) and Microsoft Graph.

use axum::{
    Json,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use jiff::Timestamp;
use serde_json::json;

/// The ids that tie one request to its response, its log record and its error body.
#[derive(Clone, Debug)]
pub struct RequestIds {
    /// Chosen by the emulator: Graph's `request-id`, the token endpoint's `trace_id`.
    pub request_id: String,
    /// The caller's `client-request-id` header, if it sent one.
    pub client_request_id_sent: Option<String>,
    /// Echo of the caller's `client-request-id`, or a fresh one (Graph always answers one).
    pub client_request_id: String,
}

impl RequestIds {
    pub fn for_request(headers: &HeaderMap) -> RequestIds {
        let sent = headers
            .get("client-request-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        RequestIds {
            request_id: uuid::Uuid::new_v4().to_string(),
            client_request_id: sent
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            client_request_id_sent: sent,
        }
    }
}

/// A Graph error: `{"error":{"code","message","innerError":{date, request-id, client-request-id}}}`.
pub fn graph_error(status: StatusCode, code: &str, message: &str, ids: &RequestIds) -> Response {
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S").to_string(),
                "request-id": ids.request_id,
                "client-request-id": ids.client_request_id,
            }
        }
    });
    (status, Json(body)).into_response()
}

/// Graph's 429, without the headers that say why and for how long.
pub fn too_many_requests(ids: &RequestIds) -> Response {
    graph_error(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        "Too many requests. Please retry after the time in the Retry-After header.",
        ids,
    )
}

/// A Graph error before it knows its request's ids.
#[derive(Debug)]
pub struct GraphError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl GraphError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> GraphError {
        GraphError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `Request_BadRequest`: Graph's answer to a body it will not act on.
    pub fn bad_request(message: impl Into<String>) -> GraphError {
        GraphError::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
    }

    /// Graph's answer to a caller without the needed permission, role, or rights over the target.
    pub fn insufficient_privileges() -> GraphError {
        GraphError::new(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        )
    }

    pub fn into_response(self, ids: &RequestIds) -> Response {
        graph_error(self.status, self.code, &self.message, ids)
    }
}

/// One AAD error of the token endpoint: what went wrong (`error`), and the AADSTS number.
pub struct AadError {
    pub status: StatusCode,
    pub error: &'static str,
    pub code: u32,
    pub description: String,
}

impl AadError {
    pub fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        description: impl Into<String>,
    ) -> AadError {
        AadError {
            status,
            error,
            code,
            description: description.into(),
        }
    }

    /// The JSON body Entra sends, with the description prefixed `AADSTSnnnn: ` and the ids appended.
    pub fn into_response(self, ids: &RequestIds, base_url: &str) -> Response {
        let timestamp = Timestamp::now().strftime("%Y-%m-%d %H:%M:%SZ").to_string();
        let description = format!(
            "AADSTS{}: {} Trace ID: {} Correlation ID: {} Timestamp: {}",
            self.code, self.description, ids.request_id, ids.client_request_id, timestamp
        );
        let body = json!({
            "error": self.error,
            "error_description": description,
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": ids.request_id,
            "correlation_id": ids.client_request_id,
            "error_uri": format!("{base_url}/error?code={}", self.code),
        });
        (self.status, Json(body)).into_response()
    }
}
