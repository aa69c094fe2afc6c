//! What the lease reconciler does next. Each decision carries everything its effect needs (the
//! claims it touches, the pool it issues from), so carrying one out is a flat match.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::api::LeasedUser;
use crate::controller::claim_record::ClaimRecord;
use crate::controller::claims::HeldClaim;
use crate::controller::lease::facts::Held;
use crate::controller::pool::{Pool, PoolKey};
use crate::controller::reasons::Reason;
use crate::controller::restore_backoff::RestoreBackoff;
use crate::secret::SecretState;

#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// The lease reached its end: delete it; revocation runs as its finalizer.
    Expire {
        /// The user whose credential ends, for the log (none when it ended already).
        user: Option<String>,
        /// Credentials past their deadline, ended in Entra before the delete: the step that
        /// makes them stop working does not wait for the delete's round trip and the finalizer.
        ending: Vec<HeldClaim>,
    },
    /// A continuous lease's credential reached its end before it could rotate: end every
    /// credential the lease holds, delete the Secret, and wait for a user like a new lease.
    EndCredentials {
        /// Oldest first.
        claims: Vec<HeldClaim>,
        /// The user of the credential that ran out.
        user: String,
    },
    /// Claim another free user for a continuous lease and issue it beside the current one.
    Rotate(Box<Rotation>),
    /// A continuous lease is due to rotate but cannot yet (no other user free, the pool not
    /// ready): the current credential runs on, to its end at the latest.
    RotationWaiting {
        /// The pool whose next freed user the lease goes first for, if it waits for one.
        queue_for: Option<PoolKey>,
        current: Arc<ClaimRecord>,
        message: String,
    },
    /// End the credential a continuous lease rotated away from.
    Retire {
        previous: Held,
        current: Arc<ClaimRecord>,
    },
    /// The lease cannot be issued as specified; nothing is issued, and `ending` (what the lease
    /// held, oldest first) ends.
    Refuse {
        reason: Reason,
        message: String,
        ending: Vec<HeldClaim>,
    },
    /// Entra refused the issue for a reason the lease cannot fix (a permission, a role): Failed,
    /// and tried again later or when the lease's spec changes.
    FailIssue { reason: Reason, message: String },
    /// The lease waits for something outside it (a dynamic secret, a free user).
    Wait { reason: Reason, message: String },
    /// Claim the first free candidate and issue a password to it.
    Issue(Box<Issue>),
    /// An interrupted issue whose pool or app changed since: its credential ends, and the lease
    /// is issued again as its pool is now.
    Reissue { claim: HeldClaim },
    /// The lease holds a claim whose password Entra has not confirmed (a crash or a failure in
    /// the middle of an issue): set it again, with the pool's own credential.
    Resume {
        current: Held,
        previous: Option<HeldClaim>,
        /// What the Secret holds: an intact one may hold the password an earlier attempt set.
        secret: SecretState,
    },
    /// The active lease's Secret was deleted or edited: issue a fresh password, restore the Secret.
    Restore {
        current: Held,
        previous: Option<HeldClaim>,
        cause: SecretState,
        /// The lease's restores with this one, for its record.
        restores: RestoreBackoff,
    },
    /// The Secret was taken before the lease's next restore is allowed: end the live credential
    /// now (scramble it, revoke sessions as its record says, end a previous one), keep the claim,
    /// and record that a fresh password follows at `restore_at`.
    EndUntilRestore {
        current: Held,
        previous: Option<HeldClaim>,
        restore_at: Timestamp,
        cause: SecretState,
    },
    /// The credential was ended and waits for its restore at `restore_at`: the status says when.
    RestoreWaits {
        current: Held,
        restore_at: Timestamp,
    },
    /// A renewal was asked for but cannot be granted (the pool no longer serves the lease's
    /// namespace, or the credential is a pass whose lifetime Entra fixed): record the request,
    /// say why, and let the credential run to its end.
    RenewDeclined {
        current: Held,
        previous: Option<Arc<ClaimRecord>>,
        request: String,
        reason: Reason,
        message: String,
    },
    /// Move `expiresAt` to `expires_at`; `capped` when maxTTL stopped the renewal short.
    Renew {
        current: Held,
        previous: Option<Arc<ClaimRecord>>,
        expires_at: Timestamp,
        capped: bool,
        /// The renew annotation value this renewal answers, if it was asked for by one.
        request: Option<String>,
    },
    /// Nothing to do until `until` (the expiry, the automatic renewal or the rotation point);
    /// the status shows the claim.
    Hold {
        until: Timestamp,
        current: Held,
        previous: Option<Arc<ClaimRecord>>,
        /// Why a restart target will not complete its rollout, while a previous credential waits.
        rollout_refusal: Option<String>,
    },
}

/// An issue: the users to try, in order, and what the claim records.
#[derive(Clone, Debug, PartialEq)]
pub struct Issue {
    pub pool: Pool,
    pub candidates: Vec<LeasedUser>,
    pub ttl: Duration,
    pub max_ttl: Duration,
    pub secret_name: String,
    /// The credential generation the new claim records.
    pub generation: u32,
    /// The pool's `maxLeasesPerNamespace`: the shell counts again from the live claims before
    /// it claims (the cache may lag another issue of the namespace).
    pub namespace_share: Option<u32>,
}

/// A rotation: the users to move to, and the credential it moves from.
#[derive(Clone, Debug, PartialEq)]
pub struct Rotation {
    pub pool: Pool,
    pub current: Held,
    pub candidates: Vec<LeasedUser>,
    pub ttl: Duration,
    pub max_ttl: Duration,
    /// The rotate annotation value this rotation answers, if one asked for it.
    pub request: Option<String>,
}

/// What a decision must be taken on: what the watches cached, or live reads. Ordered: each
/// includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reads {
    Cached,
    /// The lease's claims read from the API server.
    LiveClaims,
    /// Also the namespace's labels (a cluster pool's selector) read from the API server.
    LiveClaimsAndNamespace,
}

impl Decision {
    /// Graph writes, the expiry and an ending are decided again on a live read of the claim: a
    /// cache older than this operator's last write would re-issue, expire over a renewal, or
    /// end a user another lease holds by now. A password is set only for a namespace its pool
    /// serves as its labels read now: the namespace cache may lag a label just removed.
    pub fn needs(&self) -> Reads {
        match self {
            Decision::Issue(_)
            | Decision::Resume { .. }
            | Decision::Restore { .. }
            | Decision::Rotate(_) => Reads::LiveClaimsAndNamespace,
            Decision::Retire { .. }
            | Decision::EndCredentials { .. }
            | Decision::EndUntilRestore { .. }
            // A claim cache older than the restore would show a restored lease as waiting.
            | Decision::RestoreWaits { .. }
            | Decision::Reissue { .. }
            | Decision::Expire { .. } => Reads::LiveClaims,
            Decision::Refuse { ending, .. } if !ending.is_empty() => Reads::LiveClaims,
            Decision::Refuse { .. }
            | Decision::FailIssue { .. }
            | Decision::Wait { .. }
            | Decision::RotationWaiting { .. }
            | Decision::RenewDeclined { .. }
            | Decision::Renew { .. }
            | Decision::Hold { .. } => Reads::Cached,
        }
    }
}
