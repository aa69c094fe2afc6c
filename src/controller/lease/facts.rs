//! Everything a lease's decision is taken on, as plain data: the lease, its pool and the
//! operator's resolution of the pool's users, its claims, its Secret, where its rollouts stand and
//! the time. Read by the reconciler in `mod.rs`; [`decide`](super::decide::decide) looks only here.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::api::{EntraLease, PoolUser};
use crate::controller::claim_record::ClaimRecord;
use crate::controller::claims::{HeldClaim, LeaseClaims};
use crate::controller::pool::Pool;
use crate::controller::rotation_schedule::Rollouts;
use crate::secret::SecretState;
use crate::secret_types::SecretTypes;

/// Everything [`decide`](super::decide::decide) looks at. The lease's status is not among the
/// facts (but for one reading that can only end a lease early): it is a projection the operator
/// writes, and anyone with `entraleases/status` may have rewritten it.
pub struct LeaseFacts<'a> {
    pub lease: &'a EntraLease,
    /// The referenced pool, if it exists.
    pub pool: Option<&'a Pool>,
    /// Whether the pool serves the lease's namespace (a cluster pool's selector matches it).
    pub served: bool,
    /// `served` comes from the namespace's labels read now, not from the cache (which may lag
    /// a label just changed).
    pub served_read_live: bool,
    pub secret: SecretState,
    /// The pool's users as this operator resolved them through Graph, for the pool as it is
    /// now; `None` until it has. Never the pool's status, which its editors may write.
    pub resolved: Option<&'a [PoolUser]>,
    /// The claims the lease holds: their records say which users, until when, and whether the
    /// password was confirmed. An issue interrupted by a crash resumes with them.
    pub claims: &'a LeaseClaims,
    /// Where the rollouts of the lease's restart targets stand (only while a previous
    /// credential lives).
    pub rollouts: Rollouts,
    /// Why a restart target will not complete its rollout, if one will not.
    pub rollout_refusal: Option<&'a str>,
    /// A continuous lease of the same pool waits for a user to rotate to: it goes first.
    pub rotation_queued: bool,
    /// The shortest spacing of rotations a rotate request may force: a continuous lease's
    /// overlap below it is clamped to it (the operator's `--min-forced-rotation-interval`).
    pub min_forced_rotation: Duration,
    /// How many other leases of the lease's namespace hold users of its pool, by the claims in
    /// the cache (counted only for a pool with `maxLeasesPerNamespace`; 0 otherwise). A lease
    /// mid-rotation counts once.
    pub namespace_holds: u32,
    /// The Secret types the cluster administrator allows for lease Secrets.
    pub secret_types: &'a SecretTypes,
    pub now: Timestamp,
}

/// A claim and its record, as read: what the lease holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    pub claim: HeldClaim,
    pub record: Arc<ClaimRecord>,
}

impl LeaseFacts<'_> {
    /// The record of the lease's current credential.
    pub fn record(&self) -> Option<&ClaimRecord> {
        self.current_record().map(Arc::as_ref)
    }

    pub fn current_record(&self) -> Option<&Arc<ClaimRecord>> {
        self.current_claim()?.record.as_ref()
    }

    /// The current claim, when it has a readable record.
    pub fn current_claim(&self) -> Option<&HeldClaim> {
        self.claims.current.as_ref().filter(|c| c.record.is_some())
    }

    /// A continuous lease's previous credential, while it lives (only with a current one).
    pub fn previous_record(&self) -> Option<&Arc<ClaimRecord>> {
        self.current_claim()?;
        self.claims.previous.as_ref()?.record.as_ref()
    }

    /// The current claim with its record.
    pub fn current(&self) -> Option<Held> {
        Some(Held {
            claim: self.current_claim()?.clone(),
            record: self.current_record()?.clone(),
        })
    }

    /// The previous claim with its record, while it lives.
    pub fn previous(&self) -> Option<Held> {
        Some(Held {
            claim: self.claims.previous.clone()?,
            record: self.previous_record()?.clone(),
        })
    }

    /// The name of the lease's Secret.
    pub fn secret_name(&self) -> String {
        credentials_secret_name(self.lease, self.pool, self.record())
    }
}

/// The name of a lease's Secret: the one its claim records, else `spec.secretName`, else
/// `<secretPrefix>-<lease name>`.
pub fn credentials_secret_name(
    lease: &EntraLease,
    pool: Option<&Pool>,
    record: Option<&ClaimRecord>,
) -> String {
    let issued = record.map(|r| r.secret_name.clone());
    issued
        .or_else(|| lease.spec.secret_name.clone())
        .unwrap_or_else(|| {
            let prefix = pool.map_or("entra", |p| p.spec().secret_prefix.as_str());
            format!("{prefix}-{}", lease.name_any())
        })
}
