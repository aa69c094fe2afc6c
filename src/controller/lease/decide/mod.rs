//! What to do with a lease: a pure function of the facts the reconciler read (the lease, its
//! pool, its claims, its Secret, the time). Every branch of a lease's life is decided here, so
//! the whole lifecycle is testable without a cluster; the shell in `apply` only carries out.

mod active;
mod after;
mod decision;
mod issue;
mod look_again;
mod pool;
mod restore;
mod rotation;
#[cfg(test)]
mod tests;

use crate::api::LeasePhase;

use super::facts::LeaseFacts;
use crate::controller::rotation_schedule::retire_due;
use active::decide_active;
use issue::decide_issue;

pub use after::{
    Ending, FailedWrite, FailureKind, Then, after_failed_write, applied_nothing,
    issue_credential_ends_soon, issue_credential_failed, nobody_free_to_issue,
    nobody_free_to_rotate, over_namespace_share, restore_after_pool_changed,
    resume_after_pool_changed, rotation_credential_ends_soon, rotation_credential_failed,
};
pub use decision::{Decision, Issue, Reads, Rotation};
#[cfg(test)]
use look_again::LOOK_AGAIN_AFTER;
pub use look_again::{Outcome, RETRY_REFUSED_ISSUE, look_again_after};

/// The lifecycle in one function; see the design's "Lifecycle" section.
pub fn decide(facts: &LeaseFacts<'_>) -> Decision {
    let decision = decide_any(facts);
    // A continuous lease is not deleted at its credential's end: it waits for a user again.
    if let Decision::Expire { user, .. } = &decision
        && facts.lease.spec.rotates()
    {
        return Decision::EndCredentials {
            claims: facts.claims.owned_oldest_first(),
            user: user.clone().unwrap_or_default(),
        };
    }
    decision
}

fn decide_any(facts: &LeaseFacts<'_>) -> Decision {
    let Some(current) = facts.current() else {
        if ended_unseen(facts) {
            return Decision::Expire {
                user: None,
                ending: Vec::new(),
            };
        }
        return decide_issue(facts);
    };
    let record = &current.record;
    // A lease past its expiry ends, whatever it was doing (a restore cannot extend it).
    if facts.now >= record.expires_at() {
        return Decision::Expire {
            user: Some(record.user.user_principal_name.clone()),
            ending: facts.claims.owned_oldest_first(),
        };
    }
    if !record.issued {
        // No password for a namespace its pool stopped serving, as its labels read now: what
        // it holds ends. (Without its pool, the resume finds the pool changed.)
        if !facts.served && facts.served_read_live && facts.pool.is_some() {
            return issue::refuse(
                facts,
                crate::controller::reasons::Reason::NamespaceNotSelected,
                super::messages::not_served(facts.lease),
            );
        }
        return Decision::Resume {
            current,
            previous: facts.claims.previous.clone(),
            secret: facts.secret,
        };
    }
    if let Some(previous) = facts.previous()
        && retire_due(
            facts.lease,
            record,
            &previous.record,
            facts.rollouts,
            facts.now,
        )
    {
        return Decision::Retire {
            previous,
            current: record.clone(),
        };
    }
    decide_active(facts, &current)
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
