//! The snapshot of the caches that the state gauges of `/metrics` are built from at each scrape.

use kube::runtime::reflector;

use super::claims::HeldClaim;
use super::context::Context;
use super::index;
use super::pool::PoolStores;
use crate::api::{EntraLease, LeasePhase};
use crate::metrics::{LeaseLabels, PoolCredentialLabels, PoolLabels, Snapshot, metrics};

/// Builds the state gauges of every scrape from these caches.
pub fn serve_snapshots(ctx: &Context, leases: reflector::Store<EntraLease>) {
    let (pools, claims) = (ctx.pools.clone(), ctx.claim_cache.clone());
    let claims_namespace = ctx.claims.namespace().to_owned();
    metrics().set_snapshot_source(move || snapshot(&leases, &pools, &claims, &claims_namespace));
}

/// The metrics that describe the current state, read from the caches at scrape time.
pub fn snapshot(
    leases: &reflector::Store<EntraLease>,
    pools: &PoolStores,
    claims: &index::Index<HeldClaim>,
    claims_namespace: &str,
) -> Snapshot {
    use LeasePhase::*;
    let leases = leases.state();
    let phase_of = |lease: &EntraLease| {
        lease
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or(Pending)
    };
    let leases_by_phase = [Pending, Issuing, Active, Revoking, Failed]
        .into_iter()
        .map(|phase| {
            let count = leases.iter().filter(|l| phase_of(l) == phase).count();
            (format!("{phase:?}"), count as i64)
        })
        .collect();
    // Expiries come from the claims, the operator's record: a forged lease status cannot hide
    // an overdue credential from the alert on this metric.
    let lease_expiries = claims
        .find(claims_namespace, |claim| {
            claim.record.as_ref().is_some_and(|r| r.issued)
        })
        .into_iter()
        .filter_map(|(_, claim)| {
            let record = claim.record?;
            let labels = LeaseLabels {
                namespace: record.lease.namespace.clone(),
                lease: record.lease.name.clone(),
            };
            Some((labels, record.expires_at().as_second()))
        })
        .collect();
    let mut pool_users = Vec::new();
    let mut pool_credential_expiries = Vec::new();
    for pool in pools.all() {
        let Some(status) = pool.status() else {
            continue;
        };
        let namespace = pool.metadata().namespace.clone().unwrap_or_default();
        if let Some(expires_at) = &status.credential_expires_at {
            let labels = PoolCredentialLabels {
                namespace: namespace.clone(),
                dynamic_secret: pool.name_any(),
            };
            pool_credential_expiries.push((labels, expires_at.0.as_second()));
        }
        let unleasable = status.users.iter().filter(|u| u.problem.is_some()).count() as i64;
        for (state, count) in [
            ("available", i64::from(status.available)),
            ("leased", i64::from(status.leased)),
            ("unleasable", unleasable),
        ] {
            let labels = PoolLabels {
                namespace: namespace.clone(),
                dynamic_secret: pool.name_any(),
                state: state.to_owned(),
            };
            pool_users.push((labels, count));
        }
    }
    Snapshot {
        leases_by_phase,
        lease_expiries,
        pool_users,
        pool_credential_expiries,
    }
}
