//! What to do with a lease: a pure function of the lease, its dynamic secret, its Secret and the
//! time. The reconciler fetches these facts, asks [`decide`], and carries the decision out, so the
//! whole lifecycle is testable without a cluster.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use crate::api::{EntraDynamicSecret, EntraLease, LeasePhase, RENEW_ANNOTATION};
use crate::duration::parse_duration;

use super::reasons::Reason;

/// The state of the Secret a lease writes its credentials to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretState {
    /// No object of that name.
    Missing,
    /// Owned by this lease, with the data the operator wrote.
    Intact,
    /// Owned by this lease, but its data was changed by someone else.
    Tampered,
    /// An object of that name that this lease does not own: never adopted or overwritten.
    Foreign,
}

/// Everything [`decide`] looks at.
pub struct LeaseFacts<'a> {
    pub lease: &'a EntraLease,
    /// The referenced dynamic secret, if it exists.
    pub pool: Option<&'a EntraDynamicSecret>,
    pub secret: SecretState,
    pub now: Timestamp,
}

/// A pool user a lease may claim, as resolved by the dynamic secret controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub user_principal_name: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// The lease reached its end: delete it; revocation runs as its finalizer.
    Expire,
    /// The lease cannot be issued as specified; nothing is issued (and a held credential ends).
    Refuse { reason: Reason, message: String },
    /// The lease waits for something outside it (a dynamic secret, a free user).
    Wait { reason: Reason, message: String },
    /// Claim the first free candidate and issue a password to it.
    Issue {
        candidates: Vec<Candidate>,
        ttl: Duration,
        max_ttl: Duration,
    },
    /// The active lease's Secret was deleted or edited: issue a fresh password, restore the Secret.
    Restore { cause: SecretState },
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

/// The lifecycle in one function; see the design's "Lifecycle" section.
pub fn decide(facts: &LeaseFacts<'_>) -> Decision {
    let status = facts.lease.status.clone().unwrap_or_default();
    if status.phase == Some(LeasePhase::Active) {
        return decide_active(facts);
    }
    decide_issue(facts, status.phase)
}

fn decide_active(facts: &LeaseFacts<'_>) -> Decision {
    let status = facts
        .lease
        .status
        .as_ref()
        .expect("an active lease has a status");
    let (Some(expires_at), Some(max_expires_at)) = (
        status.expires_at.as_ref().map(|t| t.0),
        status.max_expires_at.as_ref().map(|t| t.0),
    ) else {
        // An active lease without its deadlines was not written by this operator: end it.
        return Decision::Expire;
    };
    if facts.now >= expires_at {
        return Decision::Expire;
    }
    if facts.secret == SecretState::Foreign {
        return Decision::Refuse {
            reason: Reason::SecretConflict,
            message: format!(
                "Secret {} was replaced by one this lease does not own; the credential was ended",
                secret_name(facts)
            ),
        };
    }
    if matches!(facts.secret, SecretState::Missing | SecretState::Tampered) {
        return Decision::Restore {
            cause: facts.secret,
        };
    }
    let ttl = effective_ttl(facts).ok();
    if let Some(request) = pending_renew_request(facts.lease) {
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
    if let (true, Some(ttl)) = (facts.lease.spec.auto_renew, ttl)
        && expires_at < max_expires_at
    {
        let renew_at = expires_at - signed(ttl / 3);
        if facts.now >= renew_at {
            return renewal(facts.now, ttl, max_expires_at, None);
        }
        return Decision::Hold { until: renew_at };
    }
    Decision::Hold { until: expires_at }
}

fn decide_issue(facts: &LeaseFacts<'_>, phase: Option<LeasePhase>) -> Decision {
    let Some(pool) = facts.pool else {
        return Decision::Wait {
            reason: Reason::DynamicSecretNotFound,
            message: format!(
                "EntraDynamicSecret {} does not exist in this namespace",
                facts.lease.spec.dynamic_secret_ref.name
            ),
        };
    };
    if pool.metadata.deletion_timestamp.is_some() {
        return Decision::Wait {
            reason: Reason::DynamicSecretDeleting,
            message: format!("EntraDynamicSecret {} is being deleted", pool.name_any()),
        };
    }
    let max_ttl = match parse_duration(&pool.spec.max_ttl) {
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
                "ttl {} is longer than the maxTTL {} of EntraDynamicSecret {}",
                facts
                    .lease
                    .spec
                    .ttl
                    .as_deref()
                    .unwrap_or(&pool.spec.default_ttl),
                pool.spec.max_ttl,
                pool.name_any()
            ),
        };
    }
    if let Some(wanted) = &facts.lease.spec.user
        && !pool
            .spec
            .users
            .iter()
            .any(|u| u.eq_ignore_ascii_case(wanted))
        && !resolved_users(pool).any(|u| same_user(u, wanted))
    {
        return Decision::Refuse {
            reason: Reason::UserNotInPool,
            message: format!(
                "user {wanted} is not in the pool of EntraDynamicSecret {}",
                pool.name_any()
            ),
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
    if !pool_is_ready(pool) {
        return Decision::Wait {
            reason: Reason::DynamicSecretNotReady,
            message: format!(
                "EntraDynamicSecret {} is not ready; see its Ready condition",
                pool.name_any()
            ),
        };
    }
    let candidates = candidates(facts, pool, phase);
    if candidates.is_empty() {
        let wanted = facts.lease.spec.user.as_deref();
        return Decision::Refuse {
            reason: Reason::UserNotLeasable,
            message: match wanted {
                Some(user) => {
                    format!("user {user} cannot be leased; see the dynamic secret's status")
                }
                None => format!(
                    "no user of EntraDynamicSecret {} can be leased",
                    pool.name_any()
                ),
            },
        };
    }
    Decision::Issue {
        candidates,
        ttl,
        max_ttl,
    }
}

/// The users the lease may claim, in pool order. A lease that was issuing before a restart keeps
/// the user it had claimed, so that the issue resumes instead of starting over elsewhere.
fn candidates(
    facts: &LeaseFacts<'_>,
    pool: &EntraDynamicSecret,
    phase: Option<LeasePhase>,
) -> Vec<Candidate> {
    let held = facts.lease.status.as_ref().and_then(|s| s.user.as_ref());
    if let (Some(LeasePhase::Issuing), Some(held)) = (phase, held) {
        return vec![Candidate {
            id: held.id.clone(),
            user_principal_name: held.user_principal_name.clone(),
        }];
    }
    let wanted = facts.lease.spec.user.as_deref();
    pool.status
        .iter()
        .flat_map(|s| &s.users)
        .filter(|u| u.problem.is_none())
        .filter(|u| wanted.is_none_or(|w| u.configured.eq_ignore_ascii_case(w) || same_user(u, w)))
        .filter_map(|u| {
            Some(Candidate {
                id: u.id.clone()?,
                user_principal_name: u.user_principal_name.clone()?,
            })
        })
        .collect()
}

fn resolved_users(pool: &EntraDynamicSecret) -> impl Iterator<Item = &crate::api::PoolUser> {
    pool.status.iter().flat_map(|s| &s.users)
}

fn same_user(user: &crate::api::PoolUser, wanted: &str) -> bool {
    user.id
        .as_deref()
        .is_some_and(|id| id.eq_ignore_ascii_case(wanted))
        || user
            .user_principal_name
            .as_deref()
            .is_some_and(|upn| upn.eq_ignore_ascii_case(wanted))
}

fn pool_is_ready(pool: &EntraDynamicSecret) -> bool {
    pool.status.as_ref().is_some_and(|status| {
        status.observed_generation == pool.metadata.generation
            && status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
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
        (None, Some(pool)) => pool.spec.default_ttl.as_str(),
        (None, None) => return Err("no ttl and no dynamic secret to take a default from".into()),
    };
    parse_duration(text).map_err(|error| format!("ttl: {error}"))
}

/// The renew annotation's value when it has not been acted on yet.
pub fn pending_renew_request(lease: &EntraLease) -> Option<String> {
    let requested = lease.annotations().get(RENEW_ANNOTATION)?;
    let handled = lease
        .status
        .as_ref()
        .and_then(|s| s.last_renew_request.as_ref());
    (handled != Some(requested)).then(|| requested.clone())
}

fn renewal(
    now: Timestamp,
    ttl: Duration,
    max_expires_at: Timestamp,
    request: Option<String>,
) -> Decision {
    let wanted = now + signed(ttl);
    Decision::Renew {
        expires_at: wanted.min(max_expires_at),
        capped: wanted > max_expires_at,
        request,
    }
}

fn secret_name(facts: &LeaseFacts<'_>) -> String {
    credentials_secret_name(facts.lease, facts.pool)
}

/// The name of a lease's Secret: the one it was issued to, else `spec.secretName`, else
/// `<secretPrefix>-<lease name>`.
pub fn credentials_secret_name(lease: &EntraLease, pool: Option<&EntraDynamicSecret>) -> String {
    let issued = lease.status.as_ref().and_then(|s| s.secret_name.clone());
    issued
        .or_else(|| lease.spec.secret_name.clone())
        .unwrap_or_else(|| {
            let prefix = pool.map_or("entra", |p| p.spec.secret_prefix.as_str());
            format!("{prefix}-{}", lease.name_any())
        })
}

fn signed(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}
