//! What a lease's pool allows it, read from the facts: its TTL, whether the pool is ready, and
//! the users the lease may claim.

use std::time::Duration;

use crate::api::{LeasedUser, PoolUser};
use crate::controller::lease::facts::LeaseFacts;
use crate::controller::pool::Pool;
use crate::duration::parse_duration;

/// The users the lease may claim, in pool order, from the operator's own resolution.
pub fn candidates(facts: &LeaseFacts<'_>) -> Vec<LeasedUser> {
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

/// True when `user` is the one `wanted` names, by object id or user principal name.
pub fn same_user(user: &PoolUser, wanted: &str) -> bool {
    user.id
        .as_deref()
        .is_some_and(|id| id.eq_ignore_ascii_case(wanted))
        || user
            .user_principal_name
            .as_deref()
            .is_some_and(|upn| upn.eq_ignore_ascii_case(wanted))
}

/// True when the pool's status says Ready for its current generation.
pub fn is_ready(pool: &Pool) -> bool {
    pool.status().is_some_and(|status| {
        status.observed_generation == pool.metadata().generation
            && status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// The lease's TTL: its own, or its dynamic secret's default.
pub fn effective_ttl(facts: &LeaseFacts<'_>) -> Result<Duration, String> {
    let text = match (&facts.lease.spec.ttl, facts.pool) {
        (Some(ttl), _) => ttl.as_str(),
        (None, Some(pool)) => pool.spec().default_ttl.as_str(),
        (None, None) => return Err("no ttl and no dynamic secret to take a default from".into()),
    };
    parse_duration(text).map_err(|error| format!("ttl: {error}"))
}
