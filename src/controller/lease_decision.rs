//! What to do with a lease: a pure function of the lease, its dynamic secret, its Secret and the
//! time. The reconciler fetches these facts, asks [`decide`], and carries the decision out, so the
//! whole lifecycle is testable without a cluster.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use crate::api::{EntraLease, LeasePhase, LeasedUser, PoolKind, PoolUser, RENEW_ANNOTATION};
use crate::duration::parse_duration;
use crate::graph::GraphError;
use crate::secret_types::SecretTypes;

use super::Error;
use super::claim_record::ClaimRecord;
use super::pool::Pool;
use super::reasons::Reason;
use super::rotation_decision::{
    self as rotation, Rollouts, forced_rotation_at, pending_rotate_request, retire_at, retire_due,
    rotate_at,
};
pub use crate::secret::SecretState;

/// Everything [`decide`] looks at. The lease's status is not among the facts: it is a
/// projection the operator writes, and anyone with `entraleases/status` may have rewritten it.
pub struct LeaseFacts<'a> {
    pub lease: &'a EntraLease,
    /// The referenced pool, if it exists.
    pub pool: Option<&'a Pool>,
    /// Whether the pool serves the lease's namespace (a cluster pool's selector matches it).
    pub served: bool,
    pub secret: SecretState,
    /// The pool's users as this operator resolved them through Graph, for the pool as it is
    /// now; `None` until it has. Never the pool's status, which its editors may write.
    pub resolved: Option<&'a [PoolUser]>,
    /// The record of the claim the lease holds: the user, the deadlines, whether the password
    /// was confirmed. An issue interrupted by a crash resumes with it.
    pub record: Option<&'a ClaimRecord>,
    /// A continuous lease's previous credential, while it lives (only with `record`).
    pub previous: Option<&'a ClaimRecord>,
    /// Where the rollouts of the lease's restart targets stand (only with `previous`).
    pub rollouts: Rollouts,
    /// The Secret types the cluster administrator allows for lease Secrets.
    pub secret_types: &'a SecretTypes,
    pub now: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// The lease reached its end: delete it; revocation runs as its finalizer.
    Expire,
    /// A continuous lease's credential reached its end before it could rotate: end every
    /// credential the lease holds, delete the Secret, and wait for a user like a new lease.
    EndCredentials,
    /// Claim another free user for a continuous lease and issue it beside the current one.
    Rotate {
        candidates: Vec<LeasedUser>,
        ttl: Duration,
        max_ttl: Duration,
        /// The rotate annotation value this rotation answers, if one asked for it.
        request: Option<String>,
    },
    /// A continuous lease is due to rotate but cannot yet (no other user free, the pool not
    /// ready): the current credential runs on, to its end at the latest.
    RotationWaiting { message: String },
    /// End the credential a continuous lease rotated away from.
    Retire,
    /// The lease cannot be issued as specified; nothing is issued (and a held credential ends).
    Refuse { reason: Reason, message: String },
    /// The lease waits for something outside it (a dynamic secret, a free user).
    Wait { reason: Reason, message: String },
    /// Claim the first free candidate and issue a password to it.
    Issue {
        candidates: Vec<LeasedUser>,
        ttl: Duration,
        max_ttl: Duration,
    },
    /// The lease holds a claim whose password Entra has not confirmed (a crash or a failure in
    /// the middle of an issue): set it again, with the recorded app identity.
    Resume,
    /// The active lease's Secret was deleted or edited: issue a fresh password, restore the Secret.
    Restore { cause: SecretState },
    /// A renewal was asked for but the pool no longer serves the lease's namespace: record the
    /// request, say why, and let the credential run to its end.
    RenewDeclined { request: String, message: String },
    /// Move `expiresAt` to `expires_at`; `capped` when maxTTL stopped the renewal short.
    Renew {
        expires_at: Timestamp,
        capped: bool,
        /// The renew annotation value this renewal answers, if it was asked for by one.
        request: Option<String>,
    },
    /// Nothing to do until `until` (the expiry or the automatic renewal point).
    Hold { until: Timestamp },
}

/// How long a waiting lease, or one refused for a Secret it does not own, looks again on its
/// own: releases and pool changes wake it, this covers what sends no event.
pub const LOOK_AGAIN_AFTER: Duration = Duration::from_secs(60);

impl Decision {
    /// True for the decisions that write to Graph: they are taken again from a live read of the
    /// claim before they are carried out, never from a cache alone.
    pub fn writes_to_graph(&self) -> bool {
        matches!(
            self,
            Decision::Issue { .. }
                | Decision::Resume
                | Decision::Restore { .. }
                | Decision::Rotate { .. }
                | Decision::Retire
                | Decision::EndCredentials
        )
    }

    /// True when the decision must be taken again on a live read of the claim before it is
    /// carried out (it writes to Graph, deletes the lease, or ends a held credential).
    pub fn needs_live_claim(&self, holds_claim: bool) -> bool {
        self.writes_to_graph()
            || *self == Decision::Expire
            || (holds_claim && matches!(self, Decision::Refuse { .. }))
    }

    /// When to reconcile again after carrying the decision out, if nothing else happens first.
    pub fn look_again_after(&self, facts: &LeaseFacts<'_>) -> Option<Duration> {
        let after = match self {
            Decision::Wait { .. } => LOOK_AGAIN_AFTER,
            Decision::Refuse {
                reason: Reason::SecretConflict,
                ..
            } => LOOK_AGAIN_AFTER,
            Decision::Hold { until } => until_then(*until, facts.now),
            Decision::Renew { expires_at, .. } => until_then(*expires_at, facts.now),
            Decision::RotationWaiting { .. } => LOOK_AGAIN_AFTER,
            _ => return None,
        };
        // Rollouts are read, not watched: looked at often while the previous credential waits.
        let after = match facts.previous {
            Some(_) if facts.rollouts == Rollouts::InProgress => after.min(ROLLOUT_POLL),
            _ => after,
        };
        // Never later than the end of the credential the lease holds.
        Some(match facts.record {
            Some(record) => after.min(until_then(record.expires_at(), facts.now)),
            None => after,
        })
    }
}

/// How often the rollouts a previous credential waits for are looked at.
pub const ROLLOUT_POLL: Duration = Duration::from_secs(2);

/// The longest a lease sleeps: a deadline years away (a pool editor may allow that) is looked at
/// again from the cache, which costs nothing, instead of overflowing a timer.
pub const LONGEST_SLEEP: Duration = Duration::from_secs(3600);

/// The time from `now` to a hair after `deadline`, so that the deadline has passed on waking;
/// at most [`LONGEST_SLEEP`].
pub fn until_then(deadline: Timestamp, now: Timestamp) -> Duration {
    let wait = deadline
        .duration_since(now)
        .saturating_add(SignedDuration::from_millis(20));
    Duration::try_from(wait)
        .unwrap_or(Duration::ZERO)
        .min(LONGEST_SLEEP)
}

/// `time` plus `duration`, or the end of time: durations come from objects, and an absurd one
/// must end in a refusal or a far deadline, never in an overflow.
pub fn later(time: Timestamp, duration: Duration) -> Timestamp {
    time.checked_add(signed(duration)).unwrap_or(Timestamp::MAX)
}

/// `time` minus `duration`, or the start of time.
pub fn earlier(time: Timestamp, duration: Duration) -> Timestamp {
    time.checked_sub(signed(duration)).unwrap_or(Timestamp::MIN)
}

/// What kind of failure ended an attempt to set a lease's password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueFailureKind {
    /// Worth retrying as is (Graph unavailable, throttled, the API server, a stale copy).
    Transient,
    /// The user is gone from Entra or no longer leasable (disabled, guest, synced).
    UserChangedInEntra,
    /// Entra refused the reset: a protected admin, or the app lacks its role.
    Refused,
    /// Anything else Entra will keep refusing (a bad credential, rejected passwords).
    Permanent,
}

impl IssueFailureKind {
    pub fn of(error: &Error) -> IssueFailureKind {
        match error {
            Error::Graph(graph) if graph.is_transient() => IssueFailureKind::Transient,
            Error::Graph(GraphError::UserNotFound { .. } | GraphError::UserNotLeasable { .. }) => {
                IssueFailureKind::UserChangedInEntra
            }
            Error::Graph(GraphError::MissingPermission { .. }) => IssueFailureKind::Refused,
            Error::Graph(_)
            | Error::PasswordsRejected(_)
            | Error::SecretNotOwned(_)
            | Error::Template(_)
            | Error::SecretType(_) => IssueFailureKind::Permanent,
            _ => IssueFailureKind::Transient,
        }
    }
}

/// The facts about a failed attempt to set a lease's password.
#[derive(Clone, Copy, Debug)]
pub struct IssueFailure {
    pub kind: IssueFailureKind,
    /// The attempt re-sent a password an earlier attempt may already have set (a lost answer).
    pub resumed: bool,
    /// The lease names its user: no other user may be tried instead.
    pub named_user: bool,
}

/// How the claim of a failed issue ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// A password may work: scramble it (with the claim kept until that succeeds), then release.
    EndCredential,
    /// Entra never took a password: release the user as it is.
    Release,
}

/// What the lease does once the claim has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// Set the user aside for a while and try another free user after this pause.
    SetAsideAndTryAnother(Duration),
    /// Fail with the error's reason; retried later.
    Fail,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IssueFailureSteps {
    /// `None`: keep the claim and retry (the next attempt resumes the same password).
    pub ending: Option<Ending>,
    pub then: Then,
}

/// How long a lease waits before trying the next user after one was set aside.
pub const NEXT_USER_AFTER: Duration = Duration::from_millis(100);

/// Every crash window of an issue ends here: a transient failure keeps the claim, a permanent
/// one after a resumed attempt ends the credential (entra-graph.md: keep the claim and revoke),
/// and only a first attempt refused for good releases the user unscrambled.
pub fn after_issue_failure(failure: &IssueFailure) -> IssueFailureSteps {
    if failure.kind == IssueFailureKind::Transient {
        return IssueFailureSteps {
            ending: None,
            then: Then::Fail,
        };
    }
    let ending = if failure.resumed {
        Ending::EndCredential
    } else {
        Ending::Release
    };
    let user_problem = matches!(
        failure.kind,
        IssueFailureKind::UserChangedInEntra | IssueFailureKind::Refused
    );
    let then = if user_problem && !failure.named_user {
        Then::SetAsideAndTryAnother(NEXT_USER_AFTER)
    } else {
        Then::Fail
    };
    IssueFailureSteps {
        ending: Some(ending),
        then,
    }
}

/// The lifecycle in one function; see the design's "Lifecycle" section.
pub fn decide(facts: &LeaseFacts<'_>) -> Decision {
    let decision = decide_any(facts);
    // A continuous lease is not deleted at its credential's end: it waits for a user again.
    if decision == Decision::Expire && facts.lease.spec.rotates() {
        return Decision::EndCredentials;
    }
    decision
}

fn decide_any(facts: &LeaseFacts<'_>) -> Decision {
    let Some(record) = facts.record else {
        if ended_unseen(facts) {
            return Decision::Expire;
        }
        return decide_issue(facts);
    };
    // A lease past its expiry ends, whatever it was doing (a restore cannot extend it).
    if facts.now >= record.expires_at() {
        return Decision::Expire;
    }
    if !record.issued {
        return Decision::Resume;
    }
    if let Some(previous) = facts.previous
        && retire_due(facts.lease, record, previous, facts.rollouts, facts.now)
    {
        return Decision::Retire;
    }
    decide_active(facts, record)
}

/// A lease whose credential the reaper ended from its claim while the lease could not be
/// written (its namespace refused the operator) still shows it Active past its expiry: it is
/// deleted, never issued again. The status is no record, but reading it here can only end the
/// lease early, which anyone allowed to write it could do by deleting the lease. A continuous
/// lease waits for its next user instead.
fn ended_unseen(facts: &LeaseFacts<'_>) -> bool {
    let Some(status) = &facts.lease.status else {
        return false;
    };
    !facts.lease.spec.rotates()
        && status.phase == Some(LeasePhase::Active)
        && status
            .expires_at
            .as_ref()
            .is_some_and(|at| at.0 <= facts.now)
}

fn decide_active(facts: &LeaseFacts<'_>, record: &ClaimRecord) -> Decision {
    let expires_at = record.expires_at();
    let max_expires_at = record.max_expires_at();
    if facts.secret == SecretState::Foreign {
        return Decision::Refuse {
            reason: Reason::SecretConflict,
            message: format!(
                "Secret {} was replaced by one this lease does not own; the credential was ended",
                record.secret_name
            ),
        };
    }
    if matches!(facts.secret, SecretState::Missing | SecretState::Tampered) {
        // A namespace its pool no longer serves gets no fresh password: the credential ends.
        if !facts.served {
            return Decision::Expire;
        }
        return Decision::Restore {
            cause: facts.secret,
        };
    }
    if !facts.served {
        // Not renewed any more, but what was issued runs to its end.
        return match pending_renew_request(facts.lease, record) {
            Some(request) => Decision::RenewDeclined {
                request,
                message: not_served(facts),
            },
            None => Decision::Hold { until: expires_at },
        };
    }
    let ttl = effective_ttl(facts).ok();
    // When a continuous lease rotates next (none while its previous credential lives).
    let mut hold_until = expires_at;
    if facts.previous.is_none()
        && let Some(Ok(overlap)) = rotation::overlap(facts.lease)
    {
        let request = pending_rotate_request(facts.lease, record);
        let mut due = rotate_at(record, overlap);
        if request.is_some() {
            due = due.min(forced_rotation_at(record, overlap));
        }
        if facts.now >= due {
            return rotation_decision(facts, record, request);
        }
        hold_until = hold_until.min(due);
    }
    if let Some(previous) = facts.previous {
        hold_until = hold_until.min(retire_at(facts.lease, record, previous));
    }
    if let Some(request) = pending_renew_request(facts.lease, record) {
        return match ttl {
            Some(ttl) => renewal(facts.now, ttl, max_expires_at, Some(request)),
            // Without a TTL to renew by (its dynamic secret is gone), record the request only.
            None => Decision::Renew {
                expires_at,
                capped: true,
                request: Some(request),
            },
        };
    }
    let auto_renew = facts.lease.spec.auto_renew || facts.lease.spec.rotates();
    if let (true, Some(ttl)) = (auto_renew, ttl)
        && expires_at < max_expires_at
    {
        let renew_at = earlier(expires_at, ttl / 3);
        if facts.now >= renew_at {
            return renewal(facts.now, ttl, max_expires_at, None);
        }
        return Decision::Hold {
            until: renew_at.min(hold_until),
        };
    }
    Decision::Hold { until: hold_until }
}

/// A continuous lease due to rotate: the users it may move to, or why it waits.
fn rotation_decision(
    facts: &LeaseFacts<'_>,
    current: &ClaimRecord,
    request: Option<String>,
) -> Decision {
    let waiting = |message: String| Decision::RotationWaiting { message };
    let Some(pool) = facts.pool else {
        return waiting("its dynamic secret is gone; the credential runs to its end".into());
    };
    if pool.metadata().deletion_timestamp.is_some() {
        return waiting(format!(
            "{pool} is being deleted; the credential runs to its end"
        ));
    }
    if !pool_is_ready(pool) || facts.resolved.is_none() {
        return waiting(format!("{pool} is not ready; see its Ready condition"));
    }
    let (Ok(max_ttl), Ok(ttl)) = (parse_duration(&pool.spec().max_ttl), effective_ttl(facts))
    else {
        return waiting(format!("the TTLs of {pool} cannot be read"));
    };
    let candidates: Vec<LeasedUser> = candidates(facts)
        .into_iter()
        .filter(|user| !user.id.eq_ignore_ascii_case(&current.user.id))
        .collect();
    if candidates.is_empty() {
        return waiting(format!(
            "{pool} has no other leasable user to rotate to; the credential runs to its end"
        ));
    }
    Decision::Rotate {
        candidates,
        ttl: ttl.min(max_ttl),
        max_ttl,
        request,
    }
}

/// Why a lease's namespace is not served by its cluster pool.
fn not_served(facts: &LeaseFacts<'_>) -> String {
    format!(
        "ClusterEntraDynamicSecret {} does not serve namespace {} (its namespaceSelector does not \
         match the namespace's labels)",
        facts.lease.spec.dynamic_secret_ref.name,
        facts.lease.namespace().unwrap_or_default()
    )
}

fn decide_issue(facts: &LeaseFacts<'_>) -> Decision {
    let Some(pool) = facts.pool else {
        let reference = &facts.lease.spec.dynamic_secret_ref;
        return Decision::Wait {
            reason: Reason::DynamicSecretNotFound,
            message: match reference.kind {
                PoolKind::EntraDynamicSecret => format!(
                    "EntraDynamicSecret {} does not exist in this namespace",
                    reference.name
                ),
                PoolKind::ClusterEntraDynamicSecret => {
                    format!(
                        "ClusterEntraDynamicSecret {} does not exist",
                        reference.name
                    )
                }
            },
        };
    };
    if !facts.served {
        return Decision::Refuse {
            reason: Reason::NamespaceNotSelected,
            message: not_served(facts),
        };
    }
    if pool.metadata().deletion_timestamp.is_some() {
        return Decision::Wait {
            reason: Reason::DynamicSecretDeleting,
            message: format!("{pool} is being deleted"),
        };
    }
    let pool_spec = pool.spec();
    let max_ttl = match parse_duration(&pool_spec.max_ttl) {
        Ok(max_ttl) => max_ttl,
        Err(error) => return invalid_pool(format!("maxTTL: {error}")),
    };
    let ttl = match effective_ttl(facts) {
        Ok(ttl) => ttl,
        Err(message) => {
            return Decision::Refuse {
                reason: Reason::InvalidTTL,
                message,
            };
        }
    };
    if ttl > max_ttl {
        return Decision::Refuse {
            reason: Reason::TTLExceedsMax,
            message: format!(
                "ttl {} is longer than the maxTTL {} of {}",
                facts
                    .lease
                    .spec
                    .ttl
                    .as_deref()
                    .unwrap_or(&pool_spec.default_ttl),
                pool_spec.max_ttl,
                pool
            ),
        };
    }
    if let Some(refusal) = invalid_rotation(facts, max_ttl) {
        return refusal;
    }
    if let Some(wanted) = &facts.lease.spec.user
        && !pool_spec
            .users
            .iter()
            .any(|u| u.eq_ignore_ascii_case(wanted))
        && !facts
            .resolved
            .into_iter()
            .flatten()
            .any(|u| same_user(u, wanted))
    {
        return Decision::Refuse {
            reason: Reason::UserNotInPool,
            message: format!("user {wanted} is not in the pool of {pool}"),
        };
    }
    if let Some(template) = &facts.lease.spec.template
        && let Err(error) = crate::secret_template::check(template)
    {
        return Decision::Refuse {
            reason: Reason::TemplateInvalid,
            message: error.to_string(),
        };
    }
    let asked_type = facts
        .lease
        .spec
        .template
        .as_ref()
        .and_then(|t| t.type_.as_deref());
    if let Err(refused) = facts.secret_types.check(asked_type) {
        return Decision::Refuse {
            reason: Reason::SecretTypeNotAllowed,
            message: refused.to_string(),
        };
    }
    if facts.secret == SecretState::Foreign {
        return Decision::Refuse {
            reason: Reason::SecretConflict,
            message: format!(
                "Secret {} already exists and is not managed by this lease; choose another \
                 spec.secretName or delete that Secret",
                secret_name(facts)
            ),
        };
    }
    if !pool_is_ready(pool) || facts.resolved.is_none() {
        return Decision::Wait {
            reason: Reason::DynamicSecretNotReady,
            message: format!("{pool} is not ready; see its Ready condition"),
        };
    }
    let candidates = candidates(facts);
    if candidates.is_empty() {
        let wanted = facts.lease.spec.user.as_deref();
        return Decision::Refuse {
            reason: Reason::UserNotLeasable,
            message: match wanted {
                Some(user) => {
                    format!("user {user} cannot be leased; see the status of {pool}")
                }
                None => format!("no user of {pool} can be leased"),
            },
        };
    }
    Decision::Issue {
        candidates,
        ttl,
        max_ttl,
    }
}

/// The users the lease may claim, in pool order, from the operator's own resolution.
fn candidates(facts: &LeaseFacts<'_>) -> Vec<LeasedUser> {
    let wanted = facts.lease.spec.user.as_deref();
    facts
        .resolved
        .into_iter()
        .flatten()
        .filter(|u| u.problem.is_none())
        .filter(|u| wanted.is_none_or(|w| u.configured.eq_ignore_ascii_case(w) || same_user(u, w)))
        .filter_map(|u| {
            Some(LeasedUser {
                id: u.id.clone()?,
                user_principal_name: u.user_principal_name.clone()?,
            })
        })
        .collect()
}

fn same_user(user: &PoolUser, wanted: &str) -> bool {
    user.id
        .as_deref()
        .is_some_and(|id| id.eq_ignore_ascii_case(wanted))
        || user
            .user_principal_name
            .as_deref()
            .is_some_and(|upn| upn.eq_ignore_ascii_case(wanted))
}

fn pool_is_ready(pool: &Pool) -> bool {
    pool.status().is_some_and(|status| {
        status.observed_generation == pool.metadata().generation
            && status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// A continuous lease that cannot rotate as specified: it names its user, or its overlap is not
/// shorter than the pool's maxTTL (it would rotate on issue).
fn invalid_rotation(facts: &LeaseFacts<'_>, max_ttl: Duration) -> Option<Decision> {
    let refuse = |message: String| Decision::Refuse {
        reason: Reason::InvalidRotation,
        message,
    };
    let overlap = match rotation::overlap(facts.lease)? {
        Ok(overlap) => overlap,
        Err(message) => return Some(refuse(message)),
    };
    if facts.lease.spec.user.is_some() {
        return Some(refuse(crate::api::NAMED_USER_CANNOT_ROTATE.to_owned()));
    }
    (overlap >= max_ttl).then(|| {
        refuse(format!(
            "rotation.overlap must be shorter than the maxTTL {} of the dynamic secret",
            facts
                .pool
                .map(|p| p.spec().max_ttl.clone())
                .unwrap_or_default()
        ))
    })
}

fn invalid_pool(message: String) -> Decision {
    Decision::Wait {
        reason: Reason::DynamicSecretNotReady,
        message,
    }
}

/// The lease's TTL: its own, or its dynamic secret's default.
fn effective_ttl(facts: &LeaseFacts<'_>) -> Result<Duration, String> {
    let text = match (&facts.lease.spec.ttl, facts.pool) {
        (Some(ttl), _) => ttl.as_str(),
        (None, Some(pool)) => pool.spec().default_ttl.as_str(),
        (None, None) => return Err("no ttl and no dynamic secret to take a default from".into()),
    };
    parse_duration(text).map_err(|error| format!("ttl: {error}"))
}

/// The renew annotation's value when it has not been acted on yet (by the claim's record), as
/// the record keeps it: a value longer than [`RENEW_REQUEST_MAX`] by its digest, so that a huge
/// annotation cannot bloat the claim.
pub fn pending_renew_request(lease: &EntraLease, record: &ClaimRecord) -> Option<String> {
    let requested = request_key(lease.annotations().get(RENEW_ANNOTATION)?);
    (record.last_renew_request.as_ref() != Some(&requested)).then_some(requested)
}

/// The longest renew request kept as it is.
pub const RENEW_REQUEST_MAX: usize = 63;

/// An annotation's request as a record keeps it (renew and rotate alike).
pub fn request_key(value: &str) -> String {
    // A key is its own key: the lease cache keeps long requests as their keys.
    let is_key = value.len() == 71
        && value
            .strip_prefix("sha256:")
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()));
    if value.len() <= RENEW_REQUEST_MAX || is_key {
        return value.to_owned();
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, value.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn renewal(
    now: Timestamp,
    ttl: Duration,
    max_expires_at: Timestamp,
    request: Option<String>,
) -> Decision {
    let wanted = later(now, ttl);
    Decision::Renew {
        expires_at: wanted.min(max_expires_at),
        capped: wanted > max_expires_at,
        request,
    }
}

fn secret_name(facts: &LeaseFacts<'_>) -> String {
    credentials_secret_name(facts.lease, facts.pool, facts.record)
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

fn signed(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DynamicSecretStatus, EntraDynamicSecret, EntraLeaseSpec};
    use crate::fixtures::{at, record};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn pool() -> EntraDynamicSecret {
        let mut pool = EntraDynamicSecret::new(
            "pool",
            crate::fixtures::pool_spec(&["alice@contoso.com", "bob@contoso.com"]),
        );
        pool.metadata.generation = Some(1);
        let user = |upn: &str, id: &str, problem: Option<&str>| PoolUser {
            configured: upn.into(),
            id: Some(id.into()),
            user_principal_name: Some(upn.into()),
            problem: problem.map(Into::into),
            ..PoolUser::default()
        };
        pool.status = Some(DynamicSecretStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: "Ready".into(),
                message: String::new(),
                observed_generation: Some(1),
                last_transition_time: Time(at(0)),
            }],
            observed_generation: Some(1),
            users: vec![
                user("alice@contoso.com", "id-alice", None),
                user("bob@contoso.com", "id-bob", Some("Guest")),
            ],
            available: 1,
            leased: 0,
            credential_expires_at: None,
        });
        pool
    }

    fn lease(spec: impl FnOnce(&mut EntraLeaseSpec)) -> EntraLease {
        let mut lease_spec = crate::fixtures::lease_spec();
        spec(&mut lease_spec);
        EntraLease::new("ci", lease_spec)
    }

    fn decide_at(
        lease: &EntraLease,
        pool: Option<&EntraDynamicSecret>,
        secret: SecretState,
        now: i64,
    ) -> Decision {
        decide_with(lease, pool, secret, None, now)
    }

    fn decide_with(
        lease: &EntraLease,
        pool: Option<&EntraDynamicSecret>,
        secret: SecretState,
        record: Option<&ClaimRecord>,
        now: i64,
    ) -> Decision {
        let resolved = pool
            .and_then(|p| p.status.as_ref())
            .map(|s| s.users.as_slice());
        let pool = pool.map(|p| Pool::Namespaced(std::sync::Arc::new(p.clone())));
        decide(&LeaseFacts {
            lease,
            pool: pool.as_ref(),
            served: true,
            secret,
            resolved,
            record,
            previous: None,
            rollouts: Rollouts::NotTracked,
            secret_types: &SecretTypes::default(),
            now: at(now),
        })
    }

    #[test]
    fn new_lease_issues_to_the_first_leasable_user_with_the_default_ttl() {
        let pool = pool();
        let decision = decide_at(&lease(|_| {}), Some(&pool), SecretState::Missing, 0);
        let Decision::Issue {
            candidates,
            ttl,
            max_ttl,
        } = decision
        else {
            panic!("{decision:?}")
        };
        assert_eq!(candidates.len(), 1, "the guest is no candidate");
        assert_eq!(candidates[0].id, "id-alice");
        assert_eq!((ttl.as_secs(), max_ttl.as_secs()), (3600, 7200));
    }

    #[test]
    fn ttl_over_max_ttl_is_refused() {
        let pool = pool();
        let decision = decide_at(
            &lease(|s| s.ttl = Some("3h".into())),
            Some(&pool),
            SecretState::Missing,
            0,
        );
        assert!(
            matches!(
                decision,
                Decision::Refuse {
                    reason: Reason::TTLExceedsMax,
                    ..
                }
            ),
            "{decision:?}"
        );
    }

    #[test]
    fn user_outside_the_pool_is_refused_and_unleasable_user_too() {
        let pool = pool();
        let stranger = lease(|s| s.user = Some("eve@contoso.com".into()));
        let guest = lease(|s| s.user = Some("BOB@contoso.com".into()));
        assert!(matches!(
            decide_at(&stranger, Some(&pool), SecretState::Missing, 0),
            Decision::Refuse {
                reason: Reason::UserNotInPool,
                ..
            }
        ));
        assert!(matches!(
            decide_at(&guest, Some(&pool), SecretState::Missing, 0),
            Decision::Refuse {
                reason: Reason::UserNotLeasable,
                ..
            }
        ));
    }

    #[test]
    fn missing_or_unready_pool_waits() {
        let mut pool = pool();
        assert!(matches!(
            decide_at(&lease(|_| {}), None, SecretState::Missing, 0),
            Decision::Wait {
                reason: Reason::DynamicSecretNotFound,
                ..
            }
        ));
        pool.metadata.generation = Some(2);
        assert!(matches!(
            decide_at(&lease(|_| {}), Some(&pool), SecretState::Missing, 0),
            Decision::Wait {
                reason: Reason::DynamicSecretNotReady,
                ..
            }
        ));
    }

    #[test]
    fn candidates_come_from_the_operators_resolution_never_the_pool_status() {
        let mut pool = pool();
        // A pool editor writes the status: another user, leasable, and the guest made leasable.
        let forged = pool.status.as_mut().unwrap();
        forged.users[1].problem = None;
        forged.users.push(PoolUser {
            configured: "mallory@contoso.com".into(),
            id: Some("id-mallory".into()),
            user_principal_name: Some("mallory@contoso.com".into()),
            ..PoolUser::default()
        });
        let resolution = [PoolUser {
            configured: "alice@contoso.com".into(),
            id: Some("id-alice".into()),
            user_principal_name: Some("alice@contoso.com".into()),
            ..PoolUser::default()
        }];
        let pool = Pool::Namespaced(std::sync::Arc::new(pool));
        let decide_resolved = |lease: &EntraLease, resolved| {
            decide(&LeaseFacts {
                lease,
                pool: Some(&pool),
                served: true,
                secret: SecretState::Missing,
                resolved,
                record: None,
                previous: None,
                rollouts: Rollouts::NotTracked,
                secret_types: &SecretTypes::default(),
                now: at(0),
            })
        };
        let Decision::Issue { candidates, .. } = decide_resolved(&lease(|_| {}), Some(&resolution))
        else {
            panic!("an issue")
        };
        let ids: Vec<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["id-alice"]);
        let named = lease(|s| s.user = Some("id-mallory".into()));
        assert!(matches!(
            decide_resolved(&named, Some(&resolution)),
            Decision::Refuse {
                reason: Reason::UserNotInPool,
                ..
            }
        ));
        assert!(
            matches!(
                decide_resolved(&lease(|_| {}), None),
                Decision::Wait {
                    reason: Reason::DynamicSecretNotReady,
                    ..
                }
            ),
            "nothing is issued before the operator resolved the pool itself"
        );
    }

    #[test]
    fn a_foreign_secret_is_never_taken() {
        let pool = pool();
        assert!(matches!(
            decide_at(&lease(|_| {}), Some(&pool), SecretState::Foreign, 0),
            Decision::Refuse {
                reason: Reason::SecretConflict,
                ..
            }
        ));
    }

    #[test]
    fn an_interrupted_issue_resumes_with_its_claimed_user() {
        let pool = pool();
        let mut unconfirmed = record();
        unconfirmed.issued = false;
        for secret in [SecretState::Intact, SecretState::Missing] {
            assert_eq!(
                decide_with(&lease(|_| {}), Some(&pool), secret, Some(&unconfirmed), 10),
                Decision::Resume
            );
        }
        assert_eq!(
            decide_with(
                &lease(|_| {}),
                None,
                SecretState::Intact,
                Some(&unconfirmed),
                10
            ),
            Decision::Resume,
            "the recorded identity needs no pool"
        );
        assert_eq!(
            decide_with(
                &lease(|_| {}),
                Some(&pool),
                SecretState::Intact,
                Some(&unconfirmed),
                3600
            ),
            Decision::Expire,
            "an unconfirmed credential still ends at its expiry"
        );
    }

    #[test]
    fn a_forged_status_changes_no_decision() {
        use crate::api::{LeaseStatus, LeasedUser};
        let pool = pool();
        let record = record();
        let mut forged = lease(|_| {});
        forged.status = Some(LeaseStatus {
            phase: Some(LeasePhase::Active),
            user: Some(LeasedUser {
                user_principal_name: "mallory@contoso.com".into(),
                id: "id-mallory".into(),
            }),
            expires_at: Some(Time(at(99_999))),
            max_expires_at: Some(Time(at(99_999))),
            last_renew_request: Some("1".into()),
            ..LeaseStatus::default()
        });
        forged
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(RENEW_ANNOTATION.into(), "1".into());
        assert_eq!(
            decide_with(
                &forged,
                Some(&pool),
                SecretState::Intact,
                Some(&record),
                3600
            ),
            Decision::Expire,
            "the recorded expiry holds"
        );
        assert!(
            matches!(
                decide_with(
                    &forged,
                    Some(&pool),
                    SecretState::Intact,
                    Some(&record),
                    600
                ),
                Decision::Renew { .. }
            ),
            "the renewal request is judged by the record"
        );
        let mut no_status = forged.clone();
        no_status.status = None;
        assert!(matches!(
            decide_with(
                &no_status,
                Some(&pool),
                SecretState::Intact,
                Some(&record),
                600
            ),
            Decision::Renew { .. }
        ));
    }

    #[test]
    fn a_failed_first_attempt_releases_and_a_failed_resumed_one_ends_the_credential() {
        use IssueFailureKind::*;
        let steps = |kind, resumed, named_user| {
            after_issue_failure(&IssueFailure {
                kind,
                resumed,
                named_user,
            })
        };
        for resumed in [false, true] {
            assert_eq!(
                steps(Transient, resumed, false).ending,
                None,
                "a transient failure keeps the claim: the next attempt resumes"
            );
        }
        // The window of a lost answer: the resumed password may work, so it is scrambled.
        for kind in [UserChangedInEntra, Refused, Permanent] {
            assert_eq!(steps(kind, true, false).ending, Some(Ending::EndCredential));
            assert_eq!(steps(kind, false, false).ending, Some(Ending::Release));
        }
        assert_eq!(
            steps(Refused, false, false).then,
            Then::SetAsideAndTryAnother(NEXT_USER_AFTER)
        );
        assert_eq!(
            steps(Refused, false, true).then,
            Then::Fail,
            "a named user is not swapped"
        );
        assert_eq!(steps(Permanent, false, false).then, Then::Fail);
    }

    #[test]
    fn a_huge_renew_request_is_kept_by_its_digest_and_still_renews_once() {
        let pool = pool();
        let mut record = record();
        let mut lease = lease(|_| {});
        let huge = "x".repeat(100_000);
        lease
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(RENEW_ANNOTATION.into(), huge);
        let Decision::Renew { request, .. } =
            decide_with(&lease, Some(&pool), SecretState::Intact, Some(&record), 600)
        else {
            panic!("a renewal")
        };
        let request = request.unwrap();
        assert!(
            request.starts_with("sha256:") && request.len() == 71,
            "{request}"
        );
        record.last_renew_request = Some(request);
        assert!(matches!(
            decide_with(&lease, Some(&pool), SecretState::Intact, Some(&record), 600),
            Decision::Hold { .. }
        ));
    }

    #[test]
    fn absurd_durations_give_far_deadlines_and_bounded_sleeps() {
        let far = later(at(0), Duration::from_secs(u64::MAX / 2));
        assert_eq!(far, Timestamp::MAX);
        assert_eq!(
            earlier(at(0), Duration::from_secs(u64::MAX / 2)),
            Timestamp::MIN
        );
        assert_eq!(until_then(far, at(0)), LONGEST_SLEEP);
        assert_eq!(until_then(at(0), at(10)), Duration::ZERO);
        let mut record = record();
        record.expires_at = Time(Timestamp::MAX);
        record.max_expires_at = Time(Timestamp::MAX);
        let lease = lease(|s| s.auto_renew = true);
        let decision = decide_with(&lease, Some(&pool()), SecretState::Intact, Some(&record), 0);
        assert!(matches!(decision, Decision::Hold { .. }), "{decision:?}");
    }

    #[test]
    fn requeues_never_pass_the_held_credential_expiry() {
        let pool = Pool::Namespaced(std::sync::Arc::new(pool()));
        let record = record();
        let lease = lease(|_| {});
        let facts = LeaseFacts {
            lease: &lease,
            pool: Some(&pool),
            served: true,
            secret: SecretState::Intact,
            resolved: None,
            record: Some(&record),
            previous: None,
            rollouts: Rollouts::NotTracked,
            secret_types: &SecretTypes::default(),
            now: at(3590),
        };
        let wait = Decision::Wait {
            reason: Reason::WaitingForUser,
            message: String::new(),
        };
        let after = wait.look_again_after(&facts).unwrap();
        assert!(after <= Duration::from_secs(11), "{after:?}");
        let facts = LeaseFacts {
            record: None,
            ..facts
        };
        assert_eq!(wait.look_again_after(&facts), Some(LOOK_AGAIN_AFTER));
        assert_eq!(Decision::Expire.look_again_after(&facts), None);
    }

    #[test]
    fn an_active_lease_holds_until_its_expiry_then_expires() {
        let pool = pool();
        let lease = lease(|_| {});
        let record = record();
        assert_eq!(
            decide_with(&lease, Some(&pool), SecretState::Intact, Some(&record), 10),
            Decision::Hold { until: at(3600) }
        );
        assert_eq!(
            decide_with(
                &lease,
                Some(&pool),
                SecretState::Intact,
                Some(&record),
                3600
            ),
            Decision::Expire
        );
        assert_eq!(
            decide_with(&lease, None, SecretState::Missing, Some(&record), 4000),
            Decision::Expire
        );
    }

    #[test]
    fn renewal_is_capped_at_max_ttl() {
        let pool = pool();
        let mut record = record();
        let mut lease = lease(|_| {});
        lease
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(RENEW_ANNOTATION.into(), "1".into());
        let mut longer = lease.clone();
        longer.spec.ttl = Some("2h".into());
        assert_eq!(
            decide_with(&lease, Some(&pool), SecretState::Intact, Some(&record), 600),
            Decision::Renew {
                expires_at: at(4200),
                capped: false,
                request: Some("1".into())
            }
        );
        assert_eq!(
            decide_with(
                &longer,
                Some(&pool),
                SecretState::Intact,
                Some(&record),
                600
            ),
            Decision::Renew {
                expires_at: at(7200),
                capped: true,
                request: Some("1".into())
            }
        );
        record.last_renew_request = Some("1".into());
        assert!(
            matches!(
                decide_with(&lease, Some(&pool), SecretState::Intact, Some(&record), 600),
                Decision::Hold { .. }
            ),
            "each value renews once"
        );
    }

    #[test]
    fn auto_renewal_happens_when_a_third_of_the_ttl_remains() {
        let pool = pool();
        let lease = lease(|s| s.auto_renew = true);
        let mut record = record();
        assert_eq!(
            decide_with(&lease, Some(&pool), SecretState::Intact, Some(&record), 100),
            Decision::Hold { until: at(2400) }
        );
        assert_eq!(
            decide_with(
                &lease,
                Some(&pool),
                SecretState::Intact,
                Some(&record),
                2400
            ),
            Decision::Renew {
                expires_at: at(6000),
                capped: false,
                request: None
            }
        );
        record.expires_at = Time(at(7200));
        assert_eq!(
            decide_with(
                &lease,
                Some(&pool),
                SecretState::Intact,
                Some(&record),
                7000
            ),
            Decision::Hold { until: at(7200) },
            "no renewal past the ceiling"
        );
    }

    #[test]
    fn a_deleted_or_edited_secret_of_an_active_lease_is_restored() {
        let pool = pool();
        let lease = lease(|_| {});
        let record = record();
        for state in [SecretState::Missing, SecretState::Tampered] {
            assert_eq!(
                decide_with(&lease, Some(&pool), state, Some(&record), 10),
                Decision::Restore { cause: state }
            );
        }
    }

    #[test]
    fn ttl_edits_never_touch_an_active_credential() {
        let pool = pool();
        let lease = lease(|s| s.ttl = Some("5h".into()));
        assert_eq!(
            decide_with(
                &lease,
                Some(&pool),
                SecretState::Intact,
                Some(&record()),
                10
            ),
            Decision::Hold { until: at(3600) }
        );
    }

    #[test]
    fn a_namespace_the_cluster_pool_does_not_select_is_refused_and_an_active_lease_is_not_renewed()
    {
        let pool = Pool::Namespaced(std::sync::Arc::new(pool()));
        let resolved = pool.status().map(|s| s.users.clone()).unwrap_or_default();
        let lease = lease(|s| s.dynamic_secret_ref.kind = PoolKind::ClusterEntraDynamicSecret);
        let facts = LeaseFacts {
            lease: &lease,
            pool: Some(&pool),
            served: false,
            secret: SecretState::Missing,
            resolved: Some(&resolved),
            record: None,
            previous: None,
            rollouts: Rollouts::NotTracked,
            secret_types: &SecretTypes::default(),
            now: at(0),
        };
        assert!(matches!(
            decide(&facts),
            Decision::Refuse {
                reason: Reason::NamespaceNotSelected,
                ..
            }
        ));
        let mut asking = lease.clone();
        asking
            .annotations_mut()
            .insert(RENEW_ANNOTATION.into(), "1".into());
        let record = record();
        let active = LeaseFacts {
            lease: &asking,
            secret: SecretState::Intact,
            record: Some(&record),
            previous: None,
            rollouts: Rollouts::NotTracked,
            resolved: None,
            ..facts
        };
        assert!(
            matches!(decide(&active), Decision::RenewDeclined { ref request, .. } if request == "1"),
            "a renewal is declined, the credential keeps its deadline"
        );
        let deleted = LeaseFacts {
            secret: SecretState::Missing,
            ..active
        };
        assert_eq!(
            decide(&deleted),
            Decision::Expire,
            "no fresh password for a namespace no longer served"
        );
        let mut auto = lease.clone();
        auto.spec.auto_renew = true;
        let auto_facts = LeaseFacts {
            lease: &auto,
            ..active
        };
        assert_eq!(
            decide(&auto_facts),
            Decision::Hold {
                until: record.expires_at()
            }
        );
    }

    #[test]
    fn a_template_that_cannot_render_is_refused_before_anything_is_issued() {
        let pool = pool();
        let lease = lease(|s| {
            s.template = Some(crate::api::SecretTemplate {
                data: [("dsn".to_owned(), "{{ expiresAt }}".to_owned())].into(),
                ..Default::default()
            })
        });
        let decision = decide_at(&lease, Some(&pool), SecretState::Missing, 0);
        assert!(
            matches!(
                decision,
                Decision::Refuse {
                    reason: Reason::TemplateInvalid,
                    ..
                }
            ),
            "{decision:?}"
        );
    }

    #[test]
    fn a_lease_shown_active_past_its_expiry_without_a_claim_is_deleted_not_issued_again() {
        let pool = pool();
        let mut ended = lease(|_| {});
        ended.status = Some(crate::api::LeaseStatus {
            phase: Some(LeasePhase::Active),
            expires_at: Some(Time(at(100))),
            ..Default::default()
        });
        let decision = decide_at(&ended, Some(&pool), SecretState::Intact, 130);
        assert_eq!(decision, Decision::Expire);
        // Before its expiry, a missing claim is a lease to issue (the status is no record).
        let decision = decide_at(&ended, Some(&pool), SecretState::Intact, 50);
        assert!(matches!(decision, Decision::Issue { .. }), "{decision:?}");
    }

    #[test]
    fn a_secret_type_the_administrator_did_not_list_is_refused_before_anything_is_issued() {
        let pool = pool();
        let typed = |kind: &str| {
            lease(|s| {
                s.template = Some(crate::api::SecretTemplate {
                    type_: Some(kind.to_owned()),
                    ..Default::default()
                })
            })
        };
        for kind in [
            "kubernetes.io/dockerconfigjson",
            crate::secret_types::SERVICE_ACCOUNT_TOKEN,
        ] {
            let decision = decide_at(&typed(kind), Some(&pool), SecretState::Missing, 0);
            let Decision::Refuse { reason, message } = &decision else {
                panic!("{kind}: {decision:?}");
            };
            assert_eq!(*reason, Reason::SecretTypeNotAllowed, "{kind}");
            assert!(message.contains(kind), "{message}");
        }
        let allowed = decide_at(
            &typed("kubernetes.io/basic-auth"),
            Some(&pool),
            SecretState::Missing,
            0,
        );
        assert!(matches!(allowed, Decision::Issue { .. }), "{allowed:?}");
    }

    fn continuous_lease(overlap: &str) -> EntraLease {
        lease(|s| {
            s.rotation = Some(crate::api::RotationSpec {
                enabled: true,
                overlap: Some(overlap.into()),
            })
        })
    }

    /// The test pool with a second leasable user, carol.
    fn pool_with_carol() -> EntraDynamicSecret {
        let mut pool = pool();
        pool.status.as_mut().unwrap().users.push(PoolUser {
            configured: "carol@contoso.com".into(),
            id: Some("id-carol".into()),
            user_principal_name: Some("carol@contoso.com".into()),
            ..PoolUser::default()
        });
        pool
    }

    fn decide_continuous(
        lease: &EntraLease,
        pool: &EntraDynamicSecret,
        record: &ClaimRecord,
        previous: Option<&ClaimRecord>,
        rollouts: Rollouts,
        now: i64,
    ) -> Decision {
        let resolved = pool.status.as_ref().map(|s| s.users.as_slice());
        let pool = Pool::Namespaced(std::sync::Arc::new(pool.clone()));
        decide(&LeaseFacts {
            lease,
            pool: Some(&pool),
            served: true,
            secret: SecretState::Intact,
            resolved,
            record: Some(record),
            previous,
            rollouts,
            secret_types: &SecretTypes::default(),
            now: at(now),
        })
    }

    #[test]
    fn a_continuous_lease_rotates_to_another_user_one_overlap_before_its_ceiling() {
        let lease = continuous_lease("10m");
        let pool = pool_with_carol();
        let mut record = record();
        record.expires_at = Time(at(7200));
        let decide =
            |now| decide_continuous(&lease, &pool, &record, None, Rollouts::NotTracked, now);
        assert_eq!(decide(6000), Decision::Hold { until: at(6600) });
        let Decision::Rotate { candidates, .. } = decide(6600) else {
            panic!("a rotation at the ceiling minus the overlap")
        };
        let ids: Vec<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["id-carol"], "never the same user twice in a row");
        assert_eq!(
            decide(7200),
            Decision::EndCredentials,
            "not deleted at its end"
        );
        let plain = lease_with_record_at(&pool, &record, 7200);
        assert_eq!(plain, Decision::Expire);
    }

    fn lease_with_record_at(pool: &EntraDynamicSecret, record: &ClaimRecord, now: i64) -> Decision {
        decide_with(
            &lease(|_| {}),
            Some(pool),
            SecretState::Intact,
            Some(record),
            now,
        )
    }

    #[test]
    fn a_continuous_lease_renews_itself_up_to_its_ceiling() {
        let lease = continuous_lease("10m");
        let pool = pool_with_carol();
        let record = record(); // expires at 3600, ceiling 7200, TTL 1h
        assert_eq!(
            decide_continuous(&lease, &pool, &record, None, Rollouts::NotTracked, 2400),
            Decision::Renew {
                expires_at: at(6000),
                capped: false,
                request: None
            }
        );
    }

    #[test]
    fn with_no_other_user_free_a_rotation_waits_and_the_credential_runs_on() {
        let lease = continuous_lease("10m");
        let pool = pool();
        let mut record = record();
        record.expires_at = Time(at(7200));
        assert!(matches!(
            decide_continuous(&lease, &pool, &record, None, Rollouts::NotTracked, 6600),
            Decision::RotationWaiting { .. }
        ));
    }

    #[test]
    fn the_previous_credential_ends_when_rollouts_complete_or_the_overlap_runs_out() {
        let lease = continuous_lease("10m");
        let pool = pool_with_carol();
        let mut previous = record();
        previous.expires_at = Time(at(7200));
        let mut current = record();
        current.user = LeasedUser {
            user_principal_name: "carol@contoso.com".into(),
            id: "id-carol".into(),
        };
        current.generation = 2;
        current.issued_at = Time(at(6600));
        current.expires_at = Time(at(6600 + 3600));
        current.max_expires_at = Time(at(6600 + 7200));
        let decide = |rollouts, now| {
            decide_continuous(&lease, &pool, &current, Some(&previous), rollouts, now)
        };
        assert_eq!(
            decide(Rollouts::InProgress, 6700),
            Decision::Hold { until: at(7200) },
            "held until the overlap ends, and no rotation meanwhile"
        );
        assert_eq!(decide(Rollouts::Complete, 6700), Decision::Retire);
        assert_eq!(decide(Rollouts::InProgress, 7200), Decision::Retire);
        let pool_arc = Pool::Namespaced(std::sync::Arc::new(pool.clone()));
        let facts = LeaseFacts {
            lease: &lease,
            pool: Some(&pool_arc),
            served: true,
            secret: SecretState::Intact,
            resolved: None,
            record: Some(&current),
            previous: Some(&previous),
            rollouts: Rollouts::InProgress,
            secret_types: &SecretTypes::default(),
            now: at(6700),
        };
        assert_eq!(
            Decision::Hold { until: at(7200) }.look_again_after(&facts),
            Some(ROLLOUT_POLL),
            "rollouts are looked at often while the previous credential waits for them"
        );
    }

    #[test]
    fn a_continuous_lease_that_cannot_rotate_is_refused() {
        let pool = pool_with_carol();
        let too_long = continuous_lease("2h");
        assert!(matches!(
            decide_at(&too_long, Some(&pool), SecretState::Missing, 0),
            Decision::Refuse {
                reason: Reason::InvalidRotation,
                ..
            }
        ));
        let mut named = continuous_lease("10m");
        named.spec.user = Some("alice@contoso.com".into());
        assert!(matches!(
            decide_at(&named, Some(&pool), SecretState::Missing, 0),
            Decision::Refuse {
                reason: Reason::InvalidRotation,
                ..
            }
        ));
        assert!(matches!(
            decide_at(
                &continuous_lease("10m"),
                Some(&pool),
                SecretState::Missing,
                0
            ),
            Decision::Issue { .. }
        ));
    }
}
