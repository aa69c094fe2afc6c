//! A lease without a credential: every check an issue must pass, in order, and then the issue.

use std::time::Duration;

use super::after::over_namespace_share;
use super::pool::{candidates, effective_ttl, is_ready, same_user};
use super::{Decision, Issue};
use crate::api::{EntraLease, PoolKind};
use crate::controller::access_pass;
use crate::controller::lease::facts::LeaseFacts;
use crate::controller::lease::messages;
use crate::controller::reasons::Reason;
use crate::controller::rotation_schedule::overlap;
use crate::duration::parse_duration;
use crate::secret::SecretState;

/// A lease without a credential: the checks an issue passes, in order, then the issue.
pub fn decide_issue(facts: &LeaseFacts<'_>) -> Decision {
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
        return refuse(
            facts,
            Reason::NamespaceNotSelected,
            messages::not_served(facts.lease),
        );
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
            return refuse(facts, Reason::InvalidTTL, message);
        }
    };
    if ttl > max_ttl {
        return refuse(
            facts,
            Reason::TTLExceedsMax,
            format!(
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
        );
    }
    if let Some(refusal) = invalid_rotation(facts, max_ttl) {
        return refusal;
    }
    if let Some((reason, message)) = access_pass::lease_problem(pool_spec, &facts.lease.spec, ttl) {
        return refuse(facts, reason, message);
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
        return refuse(
            facts,
            Reason::UserNotInPool,
            format!("user {wanted} is not in the pool of {pool}"),
        );
    }
    if let Some(template) = &facts.lease.spec.template
        && let Err(error) = crate::secret_template::check(template)
    {
        return refuse(facts, Reason::TemplateInvalid, error.to_string());
    }
    let asked_type = facts
        .lease
        .spec
        .template
        .as_ref()
        .and_then(|t| t.type_.as_deref());
    if let Err(refused) = facts.secret_types.check(asked_type) {
        return refuse(facts, Reason::SecretTypeNotAllowed, refused.to_string());
    }
    if facts.secret == SecretState::Foreign {
        return refuse(
            facts,
            Reason::SecretConflict,
            format!(
                "Secret {} already exists and is not managed by this lease; choose another \
                 spec.secretName or delete that Secret",
                facts.secret_name()
            ),
        );
    }
    if !is_ready(pool) || facts.resolved.is_none() {
        return Decision::Wait {
            reason: Reason::DynamicSecretNotReady,
            message: format!("{pool} is not ready; see its Ready condition"),
        };
    }
    let candidates = candidates(facts);
    if candidates.is_empty() {
        let wanted = facts.lease.spec.user.as_deref();
        return refuse(
            facts,
            Reason::UserNotLeasable,
            match wanted {
                Some(user) => {
                    format!("user {user} cannot be leased; see the status of {pool}")
                }
                None => format!("no user of {pool} can be leased"),
            },
        );
    }
    if let Some(wait) = over_namespace_share(facts.lease, pool, facts.namespace_holds) {
        return wait;
    }
    if facts.rotation_queued {
        return Decision::Wait {
            reason: Reason::WaitingForUser,
            message: messages::rotation_goes_first(pool),
        };
    }
    Decision::Issue(Box::new(Issue {
        pool: pool.clone(),
        candidates,
        ttl,
        max_ttl,
        secret_name: facts.secret_name(),
        generation: next_generation(facts.lease),
        namespace_share: pool.max_leases_per_namespace(),
    }))
}

/// The generation of a new credential: after a continuous lease's credential ended, its next
/// one counts on. The status is only a hint for a counter: what it restarts is the lease's own
/// workloads.
fn next_generation(lease: &EntraLease) -> u32 {
    lease
        .status
        .as_ref()
        .and_then(|s| s.credential_generation)
        .unwrap_or(0)
        .saturating_add(1)
}

/// A refusal: nothing is issued, and whatever the lease holds ends.
pub fn refuse(facts: &LeaseFacts<'_>, reason: Reason, message: String) -> Decision {
    Decision::Refuse {
        reason,
        message,
        ending: facts.claims.owned_oldest_first(),
    }
}

/// A continuous lease that cannot rotate as specified: it names its user, or its overlap is not
/// shorter than the pool's maxTTL (it would rotate on issue).
pub fn invalid_rotation(facts: &LeaseFacts<'_>, max_ttl: Duration) -> Option<Decision> {
    let refuse = |message: String| refuse(facts, Reason::InvalidRotation, message);
    let overlap = match overlap(facts.lease)? {
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
