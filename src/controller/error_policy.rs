//! What follows every reconcile of every controller: its duration and failure kind go to the
//! metrics, a success resets the object's backoff, and a failure waits that backoff (or, for a
//! stale copy or a pool waiting for its leases, looks again soon).

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;

use super::Error;
use super::context::Context;
use crate::metrics::metrics;

/// Records how long a reconcile took and, when it failed, what kind of error it was; a success
/// resets the object's backoff.
pub async fn timed(
    controller: &'static str,
    key: String,
    ctx: Arc<Context>,
    reconcile: impl Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile.await;
    let kind = result.as_ref().err().map(Error::metric_label);
    metrics().observe_reconcile(controller, started.elapsed(), kind);
    if result.is_ok() {
        ctx.reconcile_backoff.succeeded(&key);
    }
    result
}

pub fn failure_key<K: kube::Resource<DynamicType = ()>>(object: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        object.meta().namespace.as_deref().unwrap_or_default(),
        object.meta().name.as_deref().unwrap_or_default()
    )
}

/// Failed reconciles retry with a backoff of their own per object (1 s doubling to 30 s); the
/// error is logged (it never carries secrets). Acting on a stale copy is no failure: look again.
pub fn error_policy<K: kube::Resource<DynamicType = ()>>(
    object: Arc<K>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let name = object.meta().name.as_deref().unwrap_or_default();
    let waiting_for_leases = matches!(error, Error::Finalizer(inner)
        if matches!(inner.as_ref(), kube::runtime::finalizer::Error::CleanupFailed(Error::WaitingForLeases(_))));
    if waiting_for_leases {
        tracing::info!(object = %name, "waiting for leases to end");
        return Action::requeue(Duration::from_secs(2));
    }
    if let Some(wait) = error.queued_for() {
        tracing::debug!(object = %name, %error, "a Graph request waits its turn; looking again then");
        // Never sooner than a beat, so a request estimated ready "now" does not spin.
        return Action::requeue(wait.max(Duration::from_millis(100)));
    }
    if error.is_stale() {
        tracing::debug!(object = %name, %error, "acted on a stale copy; looking again");
        return Action::requeue(Duration::from_millis(500));
    }
    tracing::warn!(
        object = %name,
        namespace = %object.meta().namespace.as_deref().unwrap_or_default(),
        kind = error.metric_label(),
        %error,
        "reconcile failed"
    );
    Action::requeue(ctx.reconcile_backoff.failed(&failure_key(object.as_ref())))
}
