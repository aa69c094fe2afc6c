//! A lease whose credential is set: restored when its Secret was taken, renewed when asked or
//! due, rotated when a continuous lease is due to, and held otherwise.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::Decision;
use super::issue::refuse;
use super::pool::effective_ttl;
use super::restore::restore_decision;
use super::rotation::rotation_decision;
use crate::controller::deadlines::{earlier, later};
use crate::controller::lease::facts::{Held, LeaseFacts};
use crate::controller::lease::messages;
use crate::controller::reasons::Reason;
use crate::controller::requests::{pending_renew_request, pending_rotate_request};
use crate::controller::rotation_schedule::{forced_rotation_at, overlap, retire_at, rotate_at};
use crate::secret::SecretState;

/// The decision for a lease holding `current`, whose password Entra confirmed.
pub fn decide_active(facts: &LeaseFacts<'_>, current: &Held) -> Decision {
    let record = &current.record;
    let expires_at = record.expires_at();
    let max_expires_at = record.max_expires_at();
    let previous = facts.previous_record().cloned();
    let hold = |until: Timestamp| Decision::Hold {
        until,
        current: current.clone(),
        previous: previous.clone(),
        rollout_refusal: facts.rollout_refusal.map(str::to_owned),
    };
    if facts.secret == SecretState::Foreign {
        return refuse(
            facts,
            Reason::SecretConflict,
            format!(
                "Secret {} was replaced by one this lease does not own; the credential was ended",
                record.secret_name
            ),
        );
    }
    // A credential ended for its Secret's sake stays ended until its restore, whatever the
    // Secret holds meanwhile.
    let taken = matches!(facts.secret, SecretState::Missing | SecretState::Tampered);
    // A pass is shown once and cannot be set again: taking its Secret ends the lease.
    if taken && record.access_pass.is_some() {
        return Decision::Expire {
            user: Some(record.user.user_principal_name.clone()),
            ending: Vec::new(),
        };
    }
    if taken || record.restore_at.is_some() {
        // A namespace its pool no longer serves gets no fresh password: the credential ends.
        if !facts.served {
            return Decision::Expire {
                user: Some(record.user.user_principal_name.clone()),
                ending: Vec::new(),
            };
        }
        return restore_decision(facts, current);
    }
    if !facts.served {
        // Not renewed any more, but what was issued runs to its end.
        return match pending_renew_request(facts.lease, record) {
            Some(request) => Decision::RenewDeclined {
                current: current.clone(),
                previous,
                request,
                reason: Reason::NamespaceNotSelected,
                message: messages::not_served(facts.lease),
            },
            None => hold(expires_at),
        };
    }
    let ttl = effective_ttl(facts).ok();
    // When a continuous lease rotates next (none while its previous credential lives).
    let mut hold_until = expires_at;
    if previous.is_none()
        && let Some(Ok(overlap)) = overlap(facts.lease)
    {
        let request = pending_rotate_request(facts.lease, record);
        let mut due = rotate_at(record, overlap);
        if request.is_some() {
            due = due.min(forced_rotation_at(
                record,
                overlap,
                facts.min_forced_rotation,
            ));
        }
        if facts.now >= due {
            return rotation_decision(facts, current, request);
        }
        hold_until = hold_until.min(due);
    }
    if let Some(previous) = &previous {
        hold_until = hold_until.min(retire_at(facts.lease, record, previous));
    }
    let renew = |expires_at: Timestamp, capped: bool, request: Option<String>| Decision::Renew {
        current: current.clone(),
        previous: previous.clone(),
        expires_at,
        capped,
        request,
    };
    if let Some(request) = pending_renew_request(facts.lease, record) {
        if record.access_pass.is_some() {
            return Decision::RenewDeclined {
                current: current.clone(),
                previous,
                request,
                reason: Reason::NotForAccessPass,
                message: messages::pass_not_renewed(),
            };
        }
        return match ttl {
            Some(ttl) => {
                let (expires_at, capped) = renewed_until(facts.now, ttl, max_expires_at);
                renew(expires_at, capped, Some(request))
            }
            // Without a TTL to renew by (its dynamic secret is gone), record the request only.
            None => renew(expires_at, true, Some(request)),
        };
    }
    let auto_renew = facts.lease.spec.auto_renew || facts.lease.spec.rotates();
    if let (true, Some(ttl)) = (auto_renew, ttl)
        && expires_at < max_expires_at
    {
        let renew_at = earlier(expires_at, ttl / 3);
        if facts.now >= renew_at {
            let (expires_at, capped) = renewed_until(facts.now, ttl, max_expires_at);
            return renew(expires_at, capped, None);
        }
        return hold(renew_at.min(hold_until));
    }
    hold(hold_until)
}

/// Where a renewal by `ttl` at `now` moves the expiry, and whether maxTTL stopped it short.
fn renewed_until(now: Timestamp, ttl: Duration, max_expires_at: Timestamp) -> (Timestamp, bool) {
    let wanted = later(now, ttl);
    (wanted.min(max_expires_at), wanted > max_expires_at)
}
