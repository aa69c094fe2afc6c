//! The layer around every token and Graph request: assigns request ids, records counters and the
//! request log, sets Graph's id and usage headers, and carries out the delivery a handler chose
//! (answer, or drop the connection, now or after a hold). The fault plan's latency is the
//! handlers' to add: only they know whose plan applies.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{Request, State},
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::{IntoResponse, Response},
};
use jiff::Timestamp;

use crate::{
    credential::CredentialKind, faults::Fault, operation::Operation, request_log::RequestRecord,
    responses::RequestIds, server::ConnectionControl, state::Shared, throttle_headers::set_usage,
    token_buckets::Verdict,
};

/// The priority a client asks Entra to give a request when throttling: `low`, `normal`, `high`.
const THROTTLE_PRIORITY: &str = "x-ms-throttle-priority";

/// How the response reaches the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Delivery {
    #[default]
    Respond,
    /// Close the connection without a response.
    Drop,
    /// Keep the connection silent this long, then close it.
    HoldThenDrop(Duration),
}

/// What a handler decided, carried to the recorder in the response's extensions.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub operation: Option<Operation>,
    pub fault: Option<Fault>,
    pub delivery: Delivery,
    /// The kind of client credential a token request carried.
    pub credential: Option<CredentialKind>,
    /// The app the request came from: the token's for Graph, `client_id` for the token endpoint.
    pub app_id: Option<String>,
    /// What a Graph request cost, for `x-ms-resource-unit`.
    pub resource_units: Option<u32>,
    /// The quota refused the request.
    pub quota_refused: bool,
    /// For `x-ms-throttle-limit-percentage`.
    pub limit_percentage: Option<u8>,
}

/// A handler's response with its outcome.
pub struct Reply {
    response: Response,
    outcome: Outcome,
}

impl Reply {
    pub fn new(operation: Option<Operation>, response: impl IntoResponse) -> Reply {
        let outcome = Outcome {
            operation,
            ..Outcome::default()
        };
        Reply {
            response: response.into_response(),
            outcome,
        }
    }

    pub fn faulted(
        operation: Operation,
        fault: Fault,
        response: Response,
        delivery: Delivery,
    ) -> Reply {
        let outcome = Outcome {
            operation: Some(operation),
            fault: Some(fault),
            delivery,
            ..Outcome::default()
        };
        Reply { response, outcome }
    }

    pub fn with_credential(mut self, credential: Option<CredentialKind>) -> Reply {
        self.outcome.credential = credential;
        self
    }

    pub fn with_app(mut self, app_id: Option<&str>) -> Reply {
        self.outcome.app_id = app_id.map(str::to_owned);
        self
    }

    pub fn with_resource_units(mut self, units: u32) -> Reply {
        self.outcome.resource_units = Some(units);
        self
    }

    pub fn with_quota(mut self, verdict: &Verdict) -> Reply {
        self.outcome.quota_refused = verdict.refusal.is_some();
        self.outcome.limit_percentage = verdict.limit_percentage;
        self
    }
}

impl IntoResponse for Reply {
    fn into_response(mut self) -> Response {
        self.response.extensions_mut().insert(self.outcome);
        self.response
    }
}

pub async fn record_request(
    State(shared): State<Arc<Shared>>,
    mut request: Request,
    next: Next,
) -> Response {
    let ids = RequestIds::for_request(request.headers());
    request.extensions_mut().insert(ids.clone());
    let connection = request.extensions().get::<ConnectionControl>().cloned();
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let throttle_priority = request
        .headers()
        .get(THROTTLE_PRIORITY)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);

    let mut response = next.run(request).await;
    let outcome = response
        .extensions_mut()
        .remove::<Outcome>()
        .unwrap_or_default();

    let answered = outcome.delivery == Delivery::Respond;
    let record = RequestRecord {
        time: Timestamp::now(),
        method,
        path,
        query,
        status: answered.then(|| response.status().as_u16()),
        request_id: ids.request_id.clone(),
        client_request_id: ids.client_request_id_sent.clone(),
        operation: outcome.operation,
        fault: outcome.fault.as_ref().map(|f| f.name().to_owned()),
        credential: outcome.credential,
        app_id: outcome.app_id,
        quota_refused: outcome.quota_refused,
        throttle_priority,
    };
    // Only ids, the path and the outcome: bodies (passwords, secrets) and headers (tokens) never.
    tracing::debug!(
        method = %record.method,
        path = %record.path,
        status = ?record.status,
        operation = ?record.operation,
        fault = ?record.fault,
        credential = ?record.credential,
        app_id = ?record.app_id,
        quota_refused = record.quota_refused,
        throttle_priority = ?record.throttle_priority,
        request_id = %record.request_id,
        client_request_id = ?record.client_request_id,
        "emulated request"
    );
    let graph = record.is_graph();
    {
        let mut state = shared.lock();
        state.counters.record(&record);
        state.request_log.push(record);
    }

    match (outcome.delivery, connection) {
        (Delivery::Respond, _) | (_, None) => {
            set_id_headers(&mut response, &ids, graph);
            if graph {
                let units = outcome.resource_units.unwrap_or(1);
                set_usage(response.headers_mut(), units, outcome.limit_percentage);
            }
            response
        }
        (Delivery::Drop, Some(connection)) => connection.drop_now().await,
        (Delivery::HoldThenDrop(hold), Some(connection)) => {
            tokio::time::sleep(hold).await;
            connection.drop_now().await
        }
    }
}

/// Graph answers `request-id` and `client-request-id`; the token endpoint answers
/// `x-ms-request-id` and `client-request-id`.
fn set_id_headers(response: &mut Response, ids: &RequestIds, graph: bool) {
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("client-request-id", &ids.client_request_id);
    if graph {
        set("request-id", &ids.request_id);
    } else {
        set("x-ms-request-id", &ids.request_id);
    }
}
