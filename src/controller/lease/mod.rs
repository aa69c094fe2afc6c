//! The lease reconciler, as its lifecycle: it reads the facts (`facts`), asks `decide` what to
//! do, and carries that out (`apply`: issue, resume, restore, renew, rotate, wait, refuse, end).
//! What users read is in `messages`, the status a lease shows in `status`.

mod apply;
mod decide;
mod facts;
mod messages;
mod status;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};

use super::Error;
use super::claims::{LeaseClaims, is_not_found};
use super::context::Context;
use super::credential::end_credential;
use super::pool::Pool;
use super::rollout::restart_and_observe;
use super::rotation_schedule::Rollouts;
use crate::api::{EntraLease, PoolKind};
use crate::secret::secret_state;
use apply::{Shell, Step, cleanup};
use decide::{Outcome, Reads, decide, look_again_after};
use facts::{LeaseFacts, credentials_secret_name};
use status::LeaseStatusWriter;

pub use apply::{count_revocation_failure, revocation_reason};

/// Held by every lease until its credential is revoked (invariant I3).
pub const FINALIZER: &str = "kms.hanzo.ai/revoke";

/// Reconciles a lease that is not being deleted; a deleted one is the revocation controller's.
pub async fn reconcile_live(lease: Arc<EntraLease>, ctx: Arc<Context>) -> Result<Action, Error> {
    if lease.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    reconcile(lease, ctx).await
}

/// Reconciles a deleted lease, or a live one whose credential reached its end: the revocation
/// controller's work. A live lease's next look stays the lease controller's, which schedules
/// its own; this queue only ever holds ends.
pub async fn reconcile_ending(lease: Arc<EntraLease>, ctx: Arc<Context>) -> Result<Action, Error> {
    let deleted = lease.metadata.deletion_timestamp.is_some();
    let action = reconcile(lease, ctx).await?;
    Ok(if deleted {
        action
    } else {
        Action::await_change()
    })
}

pub async fn reconcile(lease: Arc<EntraLease>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _one_actor = ctx.lease_locks.lock(&lease.uid().unwrap_or_default()).await;
    let namespace = lease.namespace().unwrap_or_default();
    let api: Api<EntraLease> = Api::namespaced(ctx.client.clone(), &namespace);
    // Deleted, our finalizer stripped, and another finalizer keeping the object: kube's helper
    // would leave it alone, but the lease is ending all the same.
    if is_ending_without_our_finalizer(&lease) {
        return cleanup(&lease, &api, &ctx).await;
    }
    finalizer(&api, FINALIZER, lease, |event| async {
        match event {
            Finalizer::Apply(lease) => live_lease(&lease, &api, &ctx).await,
            Finalizer::Cleanup(lease) => cleanup(&lease, &api, &ctx).await,
        }
    })
    .await
    .or_else(gone_is_done)
}

/// True for a deleted lease whose revocation finalizer someone else removed.
pub fn is_ending_without_our_finalizer(lease: &EntraLease) -> bool {
    lease.metadata.deletion_timestamp.is_some()
        && !lease.finalizers().iter().any(|f| f == FINALIZER)
}

/// An object that vanished while its finalizer was being removed was finished by an earlier run.
pub(super) fn gone_is_done(error: kube::runtime::finalizer::Error<Error>) -> Result<Action, Error> {
    match error {
        kube::runtime::finalizer::Error::RemoveFinalizer(error) if is_not_found(&error) => {
            Ok(Action::await_change())
        }
        error => Err(Error::Finalizer(Box::new(error))),
    }
}

/// Reads the facts, decides, and carries the decision out. A decision taken on cached facts
/// that needs live ones ([`Reads`]) is taken again on them first.
async fn live_lease(
    lease: &EntraLease,
    api: &Api<EntraLease>,
    ctx: &Context,
) -> Result<Action, Error> {
    if let Some(wait) = refused_issue_backoff(lease, ctx) {
        return Ok(Action::requeue(wait));
    }
    let Some(uid) = lease.uid() else {
        return Ok(Action::await_change());
    };
    // A copy the operator's own write replaced: the watch brings the newer one, and with it a
    // reconcile, which judges what is true now (this one's status write would meet a 409).
    if ctx
        .superseded
        .is_stale(&uid, lease.metadata.resource_version.as_deref())
    {
        return Ok(Action::await_change());
    }
    let pool = ctx.pool_of(lease);
    // The claim from the cache when the lease's own status points at it; a status without that
    // hint (a new lease, or one someone rewrote) costs one live read.
    let (mut claims, mut reads) = match ctx.cached_claims_of(lease, &uid) {
        Some(claims) => (claims, Reads::Cached),
        None => (ctx.live_claims_of(lease).await?, Reads::LiveClaims),
    };
    let mut served_now = None;
    loop {
        // More than two claims only by a bug or by hand: the extra ones end at once.
        if reads >= Reads::LiveClaims {
            for older in std::mem::take(&mut claims.older) {
                end_credential(ctx, &older).await?;
            }
        }
        let read = read_facts(ctx, lease, pool.as_ref(), &claims).await?;
        let namespace_holds = namespace_holds(ctx, lease, pool.as_ref(), &claims, &uid).await?;
        let now = Timestamp::now();
        let facts = LeaseFacts {
            lease,
            pool: pool.as_ref(),
            served: served_now.unwrap_or_else(|| served(ctx, lease, pool.as_ref())),
            served_read_live: served_now.is_some(),
            secret: read.secret,
            resolved: read.resolved.as_deref(),
            claims: &claims,
            rollouts: read.rollouts,
            rollout_refusal: read.rollout_refusal.as_deref(),
            rotation_queued: pool
                .as_ref()
                .is_some_and(|pool| ctx.rotation_goes_first(&pool.key(), &uid)),
            namespace_holds,
            secret_types: &ctx.lease_secret_types,
            min_forced_rotation: ctx.min_forced_rotation,
            now,
        };
        let decision = decide(&facts);
        let needs = decision.needs();
        if needs > reads {
            let live_claims = if reads < Reads::LiveClaims {
                Some(ctx.live_claims_of(lease).await?)
            } else {
                None
            };
            let live_served = if needs == Reads::LiveClaimsAndNamespace {
                serves_now(ctx, lease, pool.as_ref()).await?
            } else {
                None
            };
            reads = needs;
            // Decided again only on what was read anew: a namespaced pool's labels need no read.
            if live_claims.is_some() || live_served.is_some() {
                claims = live_claims.unwrap_or(claims);
                served_now = live_served.or(served_now);
                continue;
            }
        }
        tracing::debug!(lease = %lease.name_any(), ?decision, "decided");
        let shell = Shell {
            lease,
            ctx,
            status: LeaseStatusWriter::new(api, lease, now, ctx),
            now,
        };
        if let Some(report) = &read.rollout_report {
            shell.tell_rollouts(report).await;
        }
        let mut next = decision.clone();
        let outcome = loop {
            match shell.carry_out(next).await? {
                Step::Done(outcome) => break outcome,
                Step::Then(follows) => next = *follows,
            }
        };
        if let Some(deadline) = credential_end(&outcome) {
            ctx.expiries.at(lease, deadline);
        }
        return Ok(match look_again_after(&decision, &facts, &outcome) {
            Some(after) => Action::requeue(after),
            None => Action::await_change(),
        });
    }
}

/// When the credential the lease holds after `outcome` ends, if it holds one.
fn credential_end(outcome: &Outcome) -> Option<Timestamp> {
    match outcome {
        Outcome::Active { current, .. } => Some(current.expires_at()),
        Outcome::RotationWaits { expires_at } => Some(*expires_at),
        Outcome::Settled | Outcome::GoOn | Outcome::IssueRefused => None,
    }
}

/// How many other leases of the lease's namespace hold users of its pool, read live, for a lease
/// that holds none yet of a pool with `maxLeasesPerNamespace` (a cache lagging a release would
/// keep it waiting); 0 for every other lease.
async fn namespace_holds(
    ctx: &Context,
    lease: &EntraLease,
    pool: Option<&Pool>,
    claims: &LeaseClaims,
    uid: &str,
) -> Result<u32, Error> {
    let Some(pool) = pool.filter(|p| p.max_leases_per_namespace().is_some()) else {
        return Ok(0);
    };
    if claims.current.is_some() {
        return Ok(0);
    }
    let namespace = lease.namespace().unwrap_or_default();
    let pool_uid = pool.metadata().uid.clone().unwrap_or_default();
    Ok(ctx
        .claims
        .leases_holding(&namespace, &pool_uid, uid)
        .await?)
}

/// The facts read through the caches (and the restart targets' rollouts).
struct Read {
    secret: crate::secret::SecretState,
    resolved: Option<Vec<crate::api::PoolUser>>,
    rollouts: Rollouts,
    rollout_refusal: Option<String>,
    rollout_report: Option<super::rollout::RolloutReport>,
}

async fn read_facts(
    ctx: &Context,
    lease: &EntraLease,
    pool: Option<&Pool>,
    claims: &LeaseClaims,
) -> Result<Read, Error> {
    let record = claims.current.as_ref().and_then(|c| c.record.as_deref());
    let previous = claims.previous.as_ref().and_then(|c| c.record.as_deref());
    // Only a lease without a credential, or a continuous one that may be due to rotate, chooses
    // among the pool's users: others (every lease after a restart) skip copying the resolution.
    let chooses = record.is_none() || (lease.spec.rotates() && previous.is_none());
    let resolved = match (chooses, pool) {
        (true, Some(pool)) => ctx.resolution_of(pool),
        _ => None,
    };
    let namespace = lease.namespace().unwrap_or_default();
    let secret_name = credentials_secret_name(lease, pool, record);
    let secret = secret_state(lease, ctx.secret(&namespace, &secret_name).await?.as_ref());
    // While a previous credential lives, the restart targets are restarted (once per
    // credential) and their rollouts read: their completion ends it.
    let rollout_report = match (record, previous) {
        (Some(record), Some(_)) if record.issued => {
            Some(restart_and_observe(ctx, lease, &record.secret_name, record.generation).await?)
        }
        _ => None,
    };
    Ok(Read {
        secret,
        resolved,
        rollouts: rollout_report
            .as_ref()
            .map_or(Rollouts::NotTracked, |report| report.progress),
        rollout_refusal: rollout_report
            .as_ref()
            .filter(|report| !report.refused.is_empty())
            .map(|report| report.refused.join("; ")),
        rollout_report,
    })
}

/// Whether the lease's pool serves its namespace, from the caches. A cluster pool that is gone
/// serves nobody (its leases run to their end unrenewed); a namespaced pool that is gone leaves
/// the lease waiting.
fn served(ctx: &Context, lease: &EntraLease, pool: Option<&Pool>) -> bool {
    match pool {
        Some(pool) => ctx.serves(pool, lease),
        None => lease.spec.dynamic_secret_ref.kind == PoolKind::EntraDynamicSecret,
    }
}

/// Whether the lease's cluster pool serves its namespace, judged on the namespace's labels read
/// now; `None` for a namespaced pool (or none), which the caches answer.
async fn serves_now(
    ctx: &Context,
    lease: &EntraLease,
    pool: Option<&Pool>,
) -> Result<Option<bool>, Error> {
    let Some(pool @ Pool::Cluster(_)) = pool else {
        return Ok(None);
    };
    let name = lease.namespace().unwrap_or_default();
    let namespace = Api::<Namespace>::all(ctx.client.clone())
        .get_metadata_opt(&name)
        .await?;
    Ok(Some(namespace.is_some_and(|namespace| {
        pool.serves(&namespace.metadata.labels.unwrap_or_default())
    })))
}

/// The time left before a lease whose issue Entra refused may try again, if any: none once its
/// spec changed.
fn refused_issue_backoff(lease: &EntraLease, ctx: &Context) -> Option<Duration> {
    ctx.refused_issues
        .wait_left(&lease.uid()?, lease.metadata.generation)
}
