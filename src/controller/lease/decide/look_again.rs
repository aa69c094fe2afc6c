//! When a lease is looked at again after its decision was carried out, if nothing wakes it
//! first: the one place that says so.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::Decision;
use crate::controller::claim_record::ClaimRecord;
use crate::controller::deadlines::until_then;
use crate::controller::lease::facts::LeaseFacts;
use crate::controller::reasons::Reason;
use crate::controller::rotation_schedule::{Rollouts, retire_at};

/// How long a waiting lease, or one refused for a Secret it does not own, or one due to rotate
/// without a user to rotate to, looks again on its own: releases and pool changes wake it, this
/// covers what sends no event.
pub const LOOK_AGAIN_AFTER: Duration = Duration::from_secs(60);

/// How often the rollouts a previous credential waits for are looked at.
pub const ROLLOUT_POLL: Duration = Duration::from_secs(2);

/// How soon a lease goes on after a step that changes what it holds (a user set aside, a
/// credential ended): the next step is decided on the new state.
pub const NEXT_STEP_AFTER: Duration = Duration::from_millis(100);

/// How long a lease whose issue Entra refused waits before trying again, unless its spec changes.
pub const RETRY_REFUSED_ISSUE: Duration = Duration::from_secs(300);

/// What carrying a decision out left, as far as looking again goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Nothing changes on its own: objects changing wake the lease (and the decision may ask
    /// for a look on its own).
    Settled,
    /// A credential is active: look again at its end, or when its previous one retires.
    Active {
        current: Arc<ClaimRecord>,
        previous: Option<Arc<ClaimRecord>>,
    },
    /// What the lease holds changed: decide again at once.
    GoOn,
    /// Entra refused the issue: try again later.
    IssueRefused,
    /// A due rotation waits for a user: look again soon, never past the credential's end.
    RotationWaits { expires_at: Timestamp },
}

/// When to reconcile again after `decision` (taken on `facts`) was carried out with `outcome`;
/// `None`: only when something changes.
pub fn look_again_after(
    decision: &Decision,
    facts: &LeaseFacts<'_>,
    outcome: &Outcome,
) -> Option<Duration> {
    let now = facts.now;
    let after = match outcome {
        Outcome::Active { current, previous } => {
            let wake_at = match previous {
                Some(previous) => {
                    current
                        .expires_at()
                        .min(retire_at(facts.lease, current, previous))
                }
                None => current.expires_at(),
            };
            return Some(until_then(wake_at, now));
        }
        Outcome::GoOn => return Some(NEXT_STEP_AFTER),
        Outcome::IssueRefused => return Some(RETRY_REFUSED_ISSUE),
        Outcome::RotationWaits { expires_at } => {
            return Some(LOOK_AGAIN_AFTER.min(until_then(*expires_at, now)));
        }
        Outcome::Settled => match decision {
            Decision::Wait { .. }
            | Decision::Refuse {
                reason: Reason::SecretConflict,
                ..
            } => LOOK_AGAIN_AFTER,
            Decision::Hold { until, .. } => until_then(*until, now),
            Decision::EndUntilRestore { restore_at, .. }
            | Decision::RestoreWaits { restore_at, .. } => until_then(*restore_at, now),
            // Their effects say when to look again, or objects changing wake the lease.
            Decision::Expire { .. }
            | Decision::EndCredentials { .. }
            | Decision::Rotate(_)
            | Decision::RotationWaiting { .. }
            | Decision::Retire { .. }
            | Decision::Refuse { .. }
            | Decision::FailIssue { .. }
            | Decision::Issue(_)
            | Decision::Reissue { .. }
            | Decision::Resume { .. }
            | Decision::Restore { .. }
            | Decision::RenewDeclined { .. }
            | Decision::Renew { .. } => return None,
        },
    };
    // Rollouts are read, not watched: looked at often while the previous credential waits.
    let after = match facts.previous_record() {
        Some(_) if facts.rollouts == Rollouts::InProgress => after.min(ROLLOUT_POLL),
        _ => after,
    };
    // Never later than the end of the credential the lease holds.
    Some(match facts.record() {
        Some(record) => after.min(until_then(record.expires_at(), now)),
        None => after,
    })
}
