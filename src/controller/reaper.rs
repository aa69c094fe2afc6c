//! The reaper: ends the credential of every claim whose lease is gone, whatever the path (its
//! finalizer stripped, its namespace force-deleted, the CRD deleted), and of every claim still
//! held [`OVERDUE_AFTER`] past its expiry, from the claim's record alone. It looks when a lease
//! disappears, when the lease watch (re)lists (so on every start), and at each claim's overdue
//! time; claims are watched, not polled, and a healthy lease costs it no API call.
//!
//! A lease counts as gone only on a live read answering 404 or another uid (or showing it deleted
//! with the revocation finalizer stripped while another finalizer keeps it), never on its absence
//! from a cache or on a refusal (403). An overdue claim needs no read at all: however reading
//! its lease fails, the record says the credential's time is up.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::scheduler::{ScheduleRequest, scheduler};
use tokio::time::Instant;

use super::Error;
use super::claims::{HeldClaim, is_not_found};
use super::context::Context;
use super::credential::end_credential;
use super::deadlines::{later, until_then};
use super::lease::is_ending_without_our_finalizer;
use super::lease::{count_revocation_failure, revocation_reason};
use crate::api::EntraLease;

/// How long past its expiry a claim may still be held before the reaper ends it: the lease's
/// own expiry normally gets there first, and two scrambles would be one too many.
pub const OVERDUE_AFTER: Duration = Duration::from_secs(30);
/// How long after a lease disappears its claim is looked at: a normal ending released it
/// before the lease went, and the claim cache needs a moment to show that.
const SETTLE: Duration = Duration::from_secs(2);
/// Reaps running at once.
const CONCURRENCY: usize = 4;

/// What the reaper is told.
pub enum ReaperInput {
    /// Look at this claim (by name) at this time.
    Claim(String, Instant),
    /// The lease with this uid was deleted.
    LeaseGone(String),
    /// The lease watch (re)listed: deletions may have been missed.
    Everything,
}

#[derive(Clone)]
pub struct ReaperHandle(UnboundedSender<ReaperInput>);

impl ReaperHandle {
    pub fn channel() -> (ReaperHandle, UnboundedReceiver<ReaperInput>) {
        let (tx, rx) = unbounded();
        (ReaperHandle(tx), rx)
    }

    pub fn send(&self, input: ReaperInput) {
        let _ = self.0.unbounded_send(input);
    }

    /// Tells the reaper about a claim as the claim watch sees it.
    pub fn watch_claim(&self, claim: &HeldClaim) {
        if let Some(record) = &claim.record {
            self.send(ReaperInput::Claim(
                claim.name.clone(),
                instant_at(later(record.expires_at(), OVERDUE_AFTER)),
            ));
        }
    }
}

/// Runs the reaper until `inputs` ends.
pub async fn run(
    ctx: Arc<Context>,
    leases: Store<EntraLease>,
    handle: ReaperHandle,
    inputs: UnboundedReceiver<ReaperInput>,
) {
    let expand_ctx = ctx.clone();
    let requests = inputs.flat_map(move |input| {
        let now = Instant::now();
        let claims: Vec<ScheduleRequest<String>> = match input {
            ReaperInput::Claim(name, at) => vec![ScheduleRequest {
                message: name,
                run_at: at,
            }],
            ReaperInput::LeaseGone(uid) => expand_ctx
                .cached_claims_where(|c| c.is_held_by(Some(&uid)))
                .into_iter()
                .map(|name| ScheduleRequest {
                    message: name,
                    run_at: now + SETTLE,
                })
                .collect(),
            ReaperInput::Everything => expand_ctx
                .cached_claims_where(|_| true)
                .into_iter()
                .map(|name| ScheduleRequest {
                    message: name,
                    run_at: now + SETTLE,
                })
                .collect(),
        };
        futures::stream::iter(claims)
    });
    scheduler(requests)
        .for_each_concurrent(CONCURRENCY, |name| {
            let (ctx, leases, handle) = (ctx.clone(), leases.clone(), handle.clone());
            async move {
                if let Some(next) = look_at(&ctx, &leases, &name).await {
                    handle.send(ReaperInput::Claim(name, next));
                }
            }
        })
        .await;
}

/// Looks at one claim; returns when to look again, if ever.
async fn look_at(ctx: &Context, leases: &Store<EntraLease>, name: &str) -> Option<Instant> {
    let claim = ctx.claim_cache.get(ctx.claims.namespace(), name)?;
    let Some(record) = claim.record.clone() else {
        tracing::warn!(claim = %name, "a claim without a readable record; leaving it");
        return None;
    };
    let overdue_at = later(record.expires_at(), OVERDUE_AFTER);
    let overdue = Timestamp::now() >= overdue_at;
    let lease = &record.lease;
    let holds = |l: &EntraLease| {
        l.uid().as_deref() == Some(lease.uid.as_str()) && !is_ending_without_our_finalizer(l)
    };
    let cached = leases
        .get(&ObjectRef::new(&lease.name).within(&lease.namespace))
        .filter(|l| holds(l));
    if cached.is_some() && !overdue {
        return Some(instant_at(overdue_at));
    }
    let api: Api<EntraLease> = Api::namespaced(ctx.client.clone(), &lease.namespace);
    let (live, why) = match api.get_opt(&lease.name).await {
        Ok(Some(live)) if holds(&live) => (Some(live), "still held 30s past its expiry"),
        Ok(_) => (None, "its lease is gone"),
        // Overdue: the record alone decides, whatever reading the lease answers (the lease's
        // namespace may refuse the operator for ever). The lease itself stays where it is.
        Err(error) if overdue => {
            tracing::warn!(claim = %name, %error, "could not read an overdue claim's lease; ending its credential from the claim");
            (
                None,
                "still held 30s past its expiry; its lease could not be read",
            )
        }
        Err(error) => {
            // Not a 404 and not overdue: the lease may well exist (a refusal, an outage), so
            // it is never reaped on that; looked at again, by the time it is overdue at the latest.
            tracing::warn!(claim = %name, %error, "could not read a claim's lease; looking again");
            let again = Instant::now() + ctx.reap_backoff.failed(name);
            return Some(again.min(instant_at(overdue_at)));
        }
    };
    if live.is_some() && !overdue {
        return Some(instant_at(overdue_at));
    }
    match reap(ctx, &claim, live.as_ref(), &api).await {
        Ok(()) => {
            tracing::info!(
                claim = %name,
                lease = %lease.name,
                namespace = %lease.namespace,
                user = %record.user.user_principal_name,
                why,
                "reaped"
            );
            None
        }
        Err(error) if error.only_waits_its_turn() => {
            let wait = error.queued_for().unwrap_or_default();
            tracing::debug!(claim = %name, %error, "reaping waits its turn for Graph");
            Some(Instant::now() + wait.max(Duration::from_millis(100)))
        }
        Err(error) => {
            let reason = revocation_reason(&error);
            count_revocation_failure(&error);
            let message = format!(
                "ending the credential of {} (lease {}/{}; {why}) failed, retrying: {error}",
                record.user.user_principal_name, lease.namespace, lease.name
            );
            tracing::warn!(claim = %name, %reason, %error, "reaping failed");
            ctx.publish_about(
                claim.reference(ctx.claims.namespace()),
                EventType::Warning,
                reason,
                "Reap",
                message,
            )
            .await;
            Some(Instant::now() + ctx.reap_backoff.failed(name))
        }
    }
}

/// Ends the claim's credential from a live read of the claim, then deletes an overdue lease so
/// that it is not issued again.
async fn reap(
    ctx: &Context,
    claim: &HeldClaim,
    overdue_lease: Option<&EntraLease>,
    api: &Api<EntraLease>,
) -> Result<(), Error> {
    let Some(record) = claim.record.as_deref() else {
        return Ok(());
    };
    // An issue of this lease still in flight (its PATCH being retried) finishes first.
    let _one_actor = ctx.lease_locks.lock(&record.lease.uid).await;
    let live = ctx.claims.get(&record.user.id).await?;
    if let Some(live) = live.filter(|c| c.uid == claim.uid && c.holder_uid == claim.holder_uid) {
        end_credential(ctx, &live).await?;
    }
    if let Some(lease) = overdue_lease {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: lease.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&lease.name_any(), &params).await {
            Ok(_) => {}
            Err(error) if is_not_found(&error) => {}
            // The credential ended; the lease's own expiry deletes it once it can.
            Err(error) => {
                tracing::warn!(lease = %lease.name_any(), %error, "could not delete an overdue lease")
            }
        }
    }
    ctx.reap_backoff.succeeded(&claim.name);
    Ok(())
}

/// The monotonic instant of a wall-clock time (now when it has passed), at most an hour away:
/// a claim is looked at again then, from the caches.
fn instant_at(at: Timestamp) -> Instant {
    Instant::now() + until_then(at, Timestamp::now())
}
