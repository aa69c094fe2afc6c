//! Waiting on the chart's admission policies: a policy and its binding take effect a moment after
//! they are created, and a fresh RoleBinding a moment after it is, so tests repeat an attempt
//! until the API server gives the answer they expect, never sleeping a fixed time.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a new policy, binding or RoleBinding may take to be in force.
pub const POLICY_WAIT: Duration = Duration::from_secs(30);

/// Whether `result` is a refusal by ValidatingAdmissionPolicy `policy`; its message if so.
pub fn refusal_by<T>(policy: &str, result: &kube::Result<T>) -> Option<String> {
    match result {
        Err(kube::Error::Api(status))
            if status
                .message
                .contains(&format!("ValidatingAdmissionPolicy '{policy}'")) =>
        {
            Some(status.message.clone())
        }
        _ => None,
    }
}

/// Repeats `attempt` until policy `policy` refuses it, at most [`POLICY_WAIT`]; returns the
/// refusal's message, after checking that it names each of `who`. An attempt must be repeatable:
/// it restores what an admitted try changed.
pub async fn until_refused<F, Fut>(policy: &str, what: &str, who: &[&str], mut attempt: F) -> String
where
    F: FnMut() -> Fut,
    Fut: Future<Output = kube::Result<()>>,
{
    let started = Instant::now();
    loop {
        let result = attempt().await;
        if let Some(message) = refusal_by(policy, &result) {
            assert!(
                !message.contains("cannot patch resource"),
                "{what}: refused by the policy, not by RBAC: {message}"
            );
            for name in who {
                assert!(
                    message.contains(name),
                    "{what}: the refusal names {name}: {message}"
                );
            }
            return message;
        }
        assert!(
            started.elapsed() < POLICY_WAIT,
            "{what}: not refused by {policy} within {POLICY_WAIT:?}; last answer: {result:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Repeats `attempt` while RBAC (not an admission policy) refuses it: a fresh RoleBinding, or a
/// fresh aggregation into a built-in role, takes a moment to reach the authorizer.
pub async fn until_authorized<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = kube::Result<T>>,
{
    let started = Instant::now();
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(kube::Error::Api(status))
                if status.code == 403
                    && !status.message.contains("ValidatingAdmissionPolicy")
                    && started.elapsed() < POLICY_WAIT =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("{what}: {error:?}"),
        }
    }
}
