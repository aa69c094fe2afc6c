//! A continuous lease due to rotate: the users it may move to, or why it waits.

use super::pool::{candidates, effective_ttl, is_ready};
use super::{Decision, Rotation};
use crate::api::LeasedUser;
use crate::controller::lease::facts::{Held, LeaseFacts};
use crate::duration::parse_duration;

pub fn rotation_decision(
    facts: &LeaseFacts<'_>,
    current: &Held,
    request: Option<String>,
) -> Decision {
    let waiting = |message: String| Decision::RotationWaiting {
        queue_for: facts.pool.map(|pool| pool.key()),
        current: current.record.clone(),
        message,
    };
    let Some(pool) = facts.pool else {
        return waiting("its dynamic secret is gone; the credential runs to its end".into());
    };
    if pool.metadata().deletion_timestamp.is_some() {
        return waiting(format!(
            "{pool} is being deleted; the credential runs to its end"
        ));
    }
    if !is_ready(pool) || facts.resolved.is_none() {
        return waiting(format!("{pool} is not ready; see its Ready condition"));
    }
    let (Ok(max_ttl), Ok(ttl)) = (parse_duration(&pool.spec().max_ttl), effective_ttl(facts))
    else {
        return waiting(format!("the TTLs of {pool} cannot be read"));
    };
    let candidates: Vec<LeasedUser> = candidates(facts)
        .into_iter()
        .filter(|user| !user.id.eq_ignore_ascii_case(&current.record.user.id))
        .collect();
    if candidates.is_empty() {
        return waiting(format!(
            "{pool} has no other leasable user to rotate to; the credential runs to its end"
        ));
    }
    Decision::Rotate(Box::new(Rotation {
        pool: pool.clone(),
        current: current.clone(),
        candidates,
        ttl: ttl.min(max_ttl),
        max_ttl,
        request,
    }))
}
