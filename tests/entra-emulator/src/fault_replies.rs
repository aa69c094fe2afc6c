//! How an injected fault answers: before the request's effect (errors, drops, holds) or after it
//! (a lost response, a 202). Token faults speak AAD's error shape, Graph faults Graph's; a Graph
//! throttle also says which limit it stands for, as Entra's own 429s do.

use axum::{
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
    response::{IntoResponse, Response},
};

use crate::{
    faults::{DEFAULT_TIMEOUT_HOLD, Fault},
    operation::Operation,
    recording::{Delivery, Reply},
    responses::{AadError, RequestIds, graph_error, too_many_requests},
    throttle_headers::Throttled,
};

/// Which protocol the faulted request spoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Token,
    Graph,
}

/// The reply of a fault that strikes before the request has any effect; `None` lets the handler
/// go on (no fault, or one that strikes after the effect). An injected throttle names
/// `throttled_as` in its `x-ms-throttle-*` headers.
pub fn before_effect(
    api: Api,
    operation: Operation,
    fault: Option<&Fault>,
    ids: &RequestIds,
    base_url: &str,
    throttled_as: Option<&Throttled>,
) -> Option<Reply> {
    let fault = fault?;
    let (response, delivery) = match fault {
        Fault::Throttle { retry_after } => {
            let mut response =
                with_retry_after(throttled(api, ids, base_url), retry_after.as_deref());
            if let Some(throttled) = throttled_as {
                throttled.mark(response.headers_mut());
            }
            (response, Delivery::Respond)
        }
        Fault::Unavailable { retry_after } => (
            with_retry_after(
                server_error(api, StatusCode::SERVICE_UNAVAILABLE, ids, base_url),
                retry_after.as_deref(),
            ),
            Delivery::Respond,
        ),
        Fault::GatewayTimeout => (
            server_error(api, StatusCode::GATEWAY_TIMEOUT, ids, base_url),
            Delivery::Respond,
        ),
        Fault::BadGateway => (
            server_error(api, StatusCode::BAD_GATEWAY, ids, base_url),
            Delivery::Respond,
        ),
        Fault::Internal => (
            server_error(api, StatusCode::INTERNAL_SERVER_ERROR, ids, base_url),
            Delivery::Respond,
        ),
        Fault::Timeout { hold_ms } => {
            let hold = hold_ms.map_or(DEFAULT_TIMEOUT_HOLD, std::time::Duration::from_millis);
            (
                StatusCode::GATEWAY_TIMEOUT.into_response(),
                Delivery::HoldThenDrop(hold),
            )
        }
        Fault::Reset => (StatusCode::BAD_GATEWAY.into_response(), Delivery::Drop),
        Fault::LostResponse | Fault::Accepted202 => return None,
    };
    Some(Reply::faulted(operation, fault.clone(), response, delivery))
}

/// The reply once the request's effect is applied: a lost response is dropped, and
/// `accepted202` turns a Graph success into 202. The token endpoint never answers 202.
pub fn after_effect(
    api: Api,
    operation: Operation,
    fault: Option<Fault>,
    mut response: Response,
) -> Reply {
    match fault {
        Some(Fault::LostResponse) => {
            Reply::faulted(operation, Fault::LostResponse, response, Delivery::Drop)
        }
        Some(Fault::Accepted202) if api == Api::Graph => {
            if response.status().is_success() {
                *response.status_mut() = StatusCode::ACCEPTED;
            }
            Reply::faulted(operation, Fault::Accepted202, response, Delivery::Respond)
        }
        _ => Reply::new(Some(operation), response),
    }
}

fn throttled(api: Api, ids: &RequestIds, base_url: &str) -> Response {
    match api {
        Api::Graph => too_many_requests(ids),
        Api::Token => AadError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            90055,
            "TenantThrottlingThreshold - The number of requests has exceeded the throttling threshold. Please try again later.",
        )
        .into_response(ids, base_url),
    }
}

fn server_error(api: Api, status: StatusCode, ids: &RequestIds, base_url: &str) -> Response {
    match api {
        Api::Graph => {
            let (code, message) = match status {
                StatusCode::SERVICE_UNAVAILABLE => (
                    "serviceNotAvailable",
                    "The service is temporarily unavailable.",
                ),
                StatusCode::GATEWAY_TIMEOUT => (
                    "gatewayTimeout",
                    "The gateway timed out waiting for the service.",
                ),
                StatusCode::BAD_GATEWAY => (
                    "badGateway",
                    "The gateway got an invalid response from the service.",
                ),
                _ => ("generalException", "An unspecified error has occurred."),
            };
            graph_error(status, code, message, ids)
        }
        Api::Token => {
            let (error, code, description) = match status {
                StatusCode::SERVICE_UNAVAILABLE => (
                    "temporarily_unavailable",
                    90033,
                    "A transient error has occurred. Please try again.",
                ),
                _ => (
                    "server_error",
                    50000,
                    "There was an error issuing a token or an issue with our sign-in service.",
                ),
            };
            AadError::new(status, error, code, description).into_response(ids, base_url)
        }
    }
}

fn with_retry_after(mut response: Response, retry_after: Option<&str>) -> Response {
    if let Some(value) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}
