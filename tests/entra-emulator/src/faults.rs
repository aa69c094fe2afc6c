//! Fault injection: the plan a test sets, and the injector that draws from it per request.
//! How each fault then answers is in `fault_replies`.

use std::{collections::VecDeque, time::Duration};

use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize};

use crate::operation::Operation;

/// One injected failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Fault {
    /// 429; `retry_after` goes verbatim into `Retry-After` ("2", "0.25"), absent when `None`.
    Throttle {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<String>,
    },
    /// 503 `serviceNotAvailable`, with `Retry-After` when given.
    Unavailable {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<String>,
    },
    /// 504.
    GatewayTimeout,
    /// 502.
    BadGateway,
    /// 500.
    Internal,
    /// Holds the request unanswered (default 30 s), then drops the connection; no effect applied.
    Timeout {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hold_ms: Option<u64>,
    },
    /// Drops the connection without a response; no effect applied.
    Reset,
    /// Applies the write, then drops the connection without a response.
    LostResponse,
    /// Answers 202 instead of 200/204, with the same body and effect: Graph's other success.
    Accepted202,
}

pub const DEFAULT_TIMEOUT_HOLD: Duration = Duration::from_secs(30);

impl Fault {
    pub fn throttle(retry_after: Option<&str>) -> Fault {
        Fault::Throttle {
            retry_after: retry_after.map(str::to_owned),
        }
    }

    pub fn unavailable(retry_after: Option<&str>) -> Fault {
        Fault::Unavailable {
            retry_after: retry_after.map(str::to_owned),
        }
    }

    pub fn timeout(hold: Duration) -> Fault {
        Fault::Timeout {
            hold_ms: Some(hold.as_millis().try_into().unwrap_or(u64::MAX)),
        }
    }

    /// The kind's name, as in the plan's JSON and the counters.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Throttle { .. } => "throttle",
            Fault::Unavailable { .. } => "unavailable",
            Fault::GatewayTimeout => "gatewayTimeout",
            Fault::BadGateway => "badGateway",
            Fault::Internal => "internal",
            Fault::Timeout { .. } => "timeout",
            Fault::Reset => "reset",
            Fault::LostResponse => "lostResponse",
            Fault::Accepted202 => "accepted202",
        }
    }
}

/// What to inject. Everything defaults to "nothing".
///
/// JSON: `{"latencyMs":50,"latencyJitterMs":10,"rate":0.2,"kinds":["unavailable",{"kind":"throttle",
/// "retryAfter":"2"}],"script":[{"kind":"reset"}],"operations":["setPassword"]}`. A fault may be
/// written as its bare kind name when it needs no parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct FaultPlan {
    /// Added to every token and Graph request, matching `operations` or not.
    pub latency_ms: u64,
    /// Up to this much more, uniformly drawn.
    pub latency_jitter_ms: u64,
    /// Probability in 0..=1 that a matching request gets a fault drawn uniformly from `kinds`.
    pub rate: f64,
    #[serde(deserialize_with = "faults_by_name_or_object")]
    pub kinds: Vec<Fault>,
    /// Faults for the next matching requests, one each, in order; consulted before `rate`.
    #[serde(deserialize_with = "faults_by_name_or_object")]
    pub script: Vec<Fault>,
    /// The operations faults apply to; empty means all. `Operation::GRAPH` means Graph only.
    pub operations: Vec<Operation>,
}

impl FaultPlan {
    /// Every token and Graph request answers 503.
    pub fn outage() -> FaultPlan {
        FaultPlan::random(1.0, [Fault::unavailable(None)])
    }

    /// These faults, in order, for the next matching requests.
    pub fn script(faults: impl IntoIterator<Item = Fault>) -> FaultPlan {
        FaultPlan {
            script: faults.into_iter().collect(),
            ..FaultPlan::default()
        }
    }

    /// With probability `rate`, one of `kinds`.
    pub fn random(rate: f64, kinds: impl IntoIterator<Item = Fault>) -> FaultPlan {
        FaultPlan {
            rate,
            kinds: kinds.into_iter().collect(),
            ..FaultPlan::default()
        }
    }

    /// Restricts faults (not latency) to these operations.
    pub fn only(mut self, operations: impl IntoIterator<Item = Operation>) -> FaultPlan {
        self.operations = operations.into_iter().collect();
        self
    }

    pub fn with_latency(mut self, latency: Duration, jitter: Duration) -> FaultPlan {
        self.latency_ms = latency.as_millis().try_into().unwrap_or(u64::MAX);
        self.latency_jitter_ms = jitter.as_millis().try_into().unwrap_or(u64::MAX);
        self
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.rate) {
            return Err(format!("rate {} is not between 0 and 1", self.rate));
        }
        if self.rate > 0.0 && self.kinds.is_empty() {
            return Err("a rate above 0 needs at least one fault in kinds".into());
        }
        Ok(())
    }

    fn applies_to(&self, operation: Operation) -> bool {
        self.operations.is_empty() || self.operations.contains(&operation)
    }
}

/// Accepts `"reset"` as shorthand for `{"kind":"reset"}`.
fn faults_by_name_or_object<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Fault>, D::Error> {
    let values = Vec::<serde_json::Value>::deserialize(deserializer)?;
    values
        .into_iter()
        .map(|value| match value {
            serde_json::Value::String(kind) => serde_json::json!({ "kind": kind }),
            other => other,
        })
        .map(|value| serde_json::from_value(value).map_err(serde::de::Error::custom))
        .collect()
}

/// The live plan: the script is consumed as requests arrive.
#[derive(Debug, Default)]
pub struct FaultInjector {
    plan: FaultPlan,
    script: VecDeque<Fault>,
}

impl FaultInjector {
    pub fn set(&mut self, plan: FaultPlan) {
        self.script = plan.script.iter().cloned().collect();
        self.plan = plan;
    }

    /// The plan as it stands, with only the part of the script not yet consumed.
    pub fn plan(&self) -> FaultPlan {
        FaultPlan {
            script: self.script.iter().cloned().collect(),
            ..self.plan.clone()
        }
    }

    pub fn latency(&self) -> Duration {
        let jitter = match self.plan.latency_jitter_ms {
            0 => 0,
            max => rand::rng().random_range(0..=max),
        };
        Duration::from_millis(self.plan.latency_ms.saturating_add(jitter))
    }

    /// The fault for one request of `operation`, if any: the script first, then the dice.
    pub fn draw(&mut self, operation: Operation) -> Option<Fault> {
        if !self.plan.applies_to(operation) {
            return None;
        }
        if let Some(fault) = self.script.pop_front() {
            return Some(fault);
        }
        let kinds = &self.plan.kinds;
        let mut rng = rand::rng();
        if kinds.is_empty() || !rng.random_bool(self.plan.rate.clamp(0.0, 1.0)) {
            return None;
        }
        Some(kinds[rng.random_range(0..kinds.len())].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_json_accepts_names_and_objects() {
        let plan: FaultPlan = serde_json::from_str(
            r#"{"latencyMs":50,"latencyJitterMs":10,"rate":0.2,
                "kinds":["unavailable",{"kind":"throttle","retryAfter":"0.25"}],
                "script":[{"kind":"timeout","holdMs":100},"lostResponse","accepted202"],
                "operations":["setPassword","token"]}"#,
        )
        .unwrap();
        assert_eq!(
            plan.kinds,
            [Fault::unavailable(None), Fault::throttle(Some("0.25"))]
        );
        assert_eq!(plan.script[0], Fault::timeout(Duration::from_millis(100)));
        assert_eq!(plan.script[1..], [Fault::LostResponse, Fault::Accepted202]);
        assert_eq!(plan.operations, [Operation::SetPassword, Operation::Token]);
        let round_trip: FaultPlan =
            serde_json::from_value(serde_json::to_value(&plan).unwrap()).unwrap();
        assert_eq!(round_trip, plan);
    }

    #[test]
    fn unknown_fault_kinds_are_refused() {
        assert!(serde_json::from_str::<FaultPlan>(r#"{"script":["meteor"]}"#).is_err());
    }

    #[test]
    fn script_is_consumed_in_order_by_matching_operations_only() {
        let mut injector = FaultInjector::default();
        injector
            .set(FaultPlan::script([Fault::Reset, Fault::Internal]).only([Operation::SetPassword]));
        assert_eq!(injector.draw(Operation::Token), None);
        assert_eq!(injector.draw(Operation::SetPassword), Some(Fault::Reset));
        assert_eq!(injector.plan().script, [Fault::Internal]);
        assert_eq!(injector.draw(Operation::SetPassword), Some(Fault::Internal));
        assert_eq!(injector.draw(Operation::SetPassword), None);
    }

    #[test]
    fn an_outage_fails_everything() {
        let mut injector = FaultInjector::default();
        injector.set(FaultPlan::outage());
        for _ in 0..100 {
            assert_eq!(
                injector.draw(Operation::GetUser),
                Some(Fault::unavailable(None))
            );
        }
    }

    #[test]
    fn rate_zero_never_fails_and_rate_checks_are_enforced() {
        let mut injector = FaultInjector::default();
        injector.set(FaultPlan::random(0.0, [Fault::Internal]));
        assert!((0..100).all(|_| injector.draw(Operation::Token).is_none()));
        assert!(
            FaultPlan::random(1.5, [Fault::Internal])
                .validate()
                .is_err()
        );
        assert!(FaultPlan::random(0.5, []).validate().is_err());
    }
}
