//! Carrying a lease's decision out: one file per kind of effect. Nothing here chooses a lease's
//! future: an effect that cannot go as decided hands back what `decide` says follows.

mod end;
mod issue;
mod refuse;
mod renew;
mod restore;
mod restore_wait;
mod resume;
mod rollouts;
mod rotate;
mod set_password;
mod wait;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;

use super::decide::{Decision, Outcome};
use super::status::LeaseStatusWriter;
use crate::api::EntraLease;
use crate::controller::Error;
use crate::controller::context::Context;
use crate::controller::reasons::Reason;

pub use end::{cleanup, count_revocation_failure, revocation_reason};

/// What carrying out one decision led to.
pub enum Step {
    Done(Outcome),
    /// The effect could not go as decided; this is what follows.
    Then(Box<Decision>),
}

/// Carries decisions out for one lease.
pub struct Shell<'a> {
    pub lease: &'a EntraLease,
    pub ctx: &'a Context,
    pub status: LeaseStatusWriter<'a>,
    pub now: Timestamp,
}

impl Step {
    pub fn then(decision: Decision) -> Step {
        Step::Then(Box::new(decision))
    }
}

impl Shell<'_> {
    /// An event about the lease.
    async fn tell(&self, type_: EventType, reason: Reason, action: &str, message: String) {
        self.ctx
            .publish(self.lease, type_, reason, action, message)
            .await;
    }

    /// An event, unless the lease's Ready condition already says `reason`: a state that lasts
    /// is told once (events are API writes).
    async fn tell_once(&self, type_: EventType, reason: Reason, action: &str, message: &str) {
        if !self.status.already(reason) {
            self.tell(type_, reason, action, message.to_owned()).await;
        }
    }

    pub async fn carry_out(&self, decision: Decision) -> Result<Step, Error> {
        match decision {
            Decision::Expire { user, ending } => self.expire(user.as_deref(), &ending).await,
            Decision::EndCredentials { claims, user } => self.end_credentials(&claims, &user).await,
            Decision::Rotate(rotation) => self.rotate(*rotation).await,
            Decision::RotationWaiting {
                queue_for,
                current,
                message,
            } => self.rotation_waiting(queue_for, &current, message).await,
            Decision::Retire { previous, current } => self.retire(previous, &current).await,
            Decision::Refuse {
                reason,
                message,
                ending,
            } => self.refuse(&ending, reason, message).await,
            Decision::FailIssue { reason, message } => self.fail_issue(reason, message).await,
            Decision::Wait { reason, message } => self.wait(reason, message).await,
            Decision::Issue(issue) => self.issue(*issue).await,
            Decision::Reissue { claim } => self.reissue(&claim).await,
            Decision::Resume {
                current,
                previous,
                secret,
            } => self.resume(current, previous, secret).await,
            Decision::Restore {
                current,
                previous,
                cause,
                restores,
            } => self.restore(current, previous, cause, restores).await,
            Decision::EndUntilRestore {
                current,
                previous,
                restore_at,
                cause,
            } => {
                self.end_until_restore(current, previous, restore_at, cause)
                    .await
            }
            Decision::RestoreWaits {
                current,
                restore_at,
            } => self.restore_waits(&current, restore_at).await,
            Decision::RenewDeclined {
                current,
                previous,
                request,
                reason,
                message,
            } => {
                self.decline_renewal(current, previous, request, reason, message)
                    .await
            }
            Decision::Renew {
                current,
                previous,
                expires_at,
                capped,
                request,
            } => {
                self.renew(current, previous, expires_at, capped, request)
                    .await
            }
            Decision::Hold {
                current,
                previous,
                rollout_refusal,
                ..
            } => self.hold(&current, previous, rollout_refusal).await,
        }
    }
}
