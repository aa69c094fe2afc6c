//! The steps every Graph operation shares, in Entra's order: the caller's fault plan (its latency,
//! then a fault that may strike first), authentication (401), the quota (429), the operation's
//! own checks and effect under the state lock, then a fault that strikes after the effect.

use axum::{http::StatusCode, response::Response};

use crate::{
    fault_replies::{self, Api},
    operation::Operation,
    recording::Reply,
    resource_units::Cost,
    responses::{GraphError, RequestIds},
    state::{Shared, State as EmulatorState},
    throttle_headers::{Throttled, quota_refusal},
    token::{Caller, Grant, authenticate},
    token_buckets::{Limit, Scope, Verdict},
};

/// A Graph request as the handlers need it.
pub(crate) struct GraphRequest<'a> {
    pub shared: &'a Shared,
    pub ids: &'a RequestIds,
    pub authorization: Option<&'a str>,
    /// Whom the bearer token names, if the emulator issued it (expired or not).
    pub caller: Option<&'a Caller>,
    pub cost: Cost,
}

impl GraphRequest<'_> {
    /// Draws a fault from the caller's plan and answers it if it strikes first; otherwise
    /// authenticates, charges the quota, runs `effect` under the state lock, and lets a late
    /// fault act on the result.
    pub(crate) fn handle(
        &self,
        operation: Operation,
        effect: impl FnOnce(&mut EmulatorState, &Grant) -> Result<Response, GraphError>,
    ) -> Reply {
        let app_id = self.caller.map(|caller| caller.app_id.as_str());
        let fault = self.shared.lock().faults.injector(app_id).draw(operation);
        let early = fault_replies::before_effect(
            Api::Graph,
            operation,
            fault.as_ref(),
            self.ids,
            &self.shared.base_url,
            Some(&self.injected_throttle()),
        );
        if let Some(reply) = early {
            return reply;
        }
        let (result, verdict) = {
            let mut state = self.shared.lock();
            match authenticate(&state, self.authorization) {
                Ok(grant) => {
                    let now = std::time::Instant::now();
                    let verdict =
                        state
                            .quota
                            .charge(&grant.app_id, &grant.tenant_id, self.cost, now);
                    if let Some(refusal) = &verdict.refusal {
                        let response =
                            quota_refusal(refusal, &grant.app_id, &grant.tenant_id, self.ids);
                        // Refused before any effect: a fault meant for after it has nothing to act on.
                        return Reply::new(Some(operation), response).with_quota(&verdict);
                    }
                    (effect(&mut state, &grant), verdict)
                }
                Err(message) => {
                    let error = GraphError::new(
                        StatusCode::UNAUTHORIZED,
                        "InvalidAuthenticationToken",
                        message,
                    );
                    (Err(error), Verdict::default())
                }
            }
        };
        let response = result.unwrap_or_else(|error| error.into_response(self.ids));
        fault_replies::after_effect(Api::Graph, operation, fault, response).with_quota(&verdict)
    }

    /// What an injected throttle blames: the app and tenant's own write or read limit.
    fn injected_throttle(&self) -> Throttled {
        Throttled {
            scope: Scope::TenantApplication,
            limit: Limit::of(self.cost),
            app_id: self
                .caller
                .map(|caller| caller.app_id.clone())
                .unwrap_or_default(),
            tenant_id: self
                .caller
                .map(|caller| caller.tenant_id.clone())
                .unwrap_or_default(),
        }
    }
}
