//! The layer around every token and Graph request: assigns request ids, adds the plan's latency,
//! records counters and the request log, sets Graph's id headers, and carries out the delivery a
//! handler chose (answer, or drop the connection, now or after a hold).

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
    responses::RequestIds, server::ConnectionControl, state::Shared,
};

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
            credential: None,
        };
        Reply { response, outcome }
    }

    pub fn with_credential(mut self, credential: Option<CredentialKind>) -> Reply {
        self.outcome.credential = credential;
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

    let latency = shared.lock().faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
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
    };
    // Only ids, the path and the outcome: bodies (passwords, secrets) and headers (tokens) never.
    tracing::debug!(
        method = %record.method,
        path = %record.path,
        status = ?record.status,
        operation = ?record.operation,
        fault = ?record.fault,
        credential = ?record.credential,
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
            response
        }
        (Delivery::Drop, Some(connection)) => connection.drop_now().await,
        (Delivery::HoldThenDrop(hold), Some(connection)) => {
            tokio::time::sleep(hold).await;
            connection.drop_now().await
        }
    }
}

/// Graph answers `request-id` and `client-request-id` (and the cost of the request); the token
/// endpoint answers `x-ms-request-id` and `client-request-id`.
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
        set("x-ms-resource-unit", "1");
    } else {
        set("x-ms-request-id", &ids.request_id);
    }
}
