//! The parts of the lease reconciler that only continuous leases reach: rotating onto another
//! pool user, waiting for one, ending the previous credential, and ending everything when the
//! current credential runs out before a rotation could happen.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::Error;
use super::claim_record::ClaimRecord;
use super::claims::{HeldClaim, LeaseClaims};
use super::credential::{Secrets, end_credential, write_credentials};
use super::lease::{IssuePlan, Shell};
use super::lease_decision::{
    IssueFailureKind, LOOK_AGAIN_AFTER, NEXT_USER_AFTER, later, until_then,
};
use super::pool::Pool;
use super::reasons::Reason;
use super::rollout::RolloutReport;
use super::rotation_decision::overlap;
use crate::api::{LeasePhase, LeasedUser};
use crate::metrics::metrics;
use crate::secret::{format_time, stored_password_of};
use crate::sensitive::SecretString;

/// A continuous lease's previous credential: its claim, its record, and its password as the
/// Secret holds it (to be written again beside the next one).
pub(super) struct Previous {
    pub claim: HeldClaim,
    pub record: std::sync::Arc<ClaimRecord>,
    pub password: SecretString,
}

/// Where a rotation may go.
pub(super) struct Rotation {
    pub candidates: Vec<LeasedUser>,
    pub ttl: Duration,
    pub max_ttl: Duration,
    pub request: Option<String>,
}

impl Shell<'_> {
    /// Claims another pool user and issues it beside the current credential, which stays in
    /// the Secret under the previous keys.
    pub(super) async fn rotate(
        &self,
        pool: &Pool,
        current: HeldClaim,
        record: &ClaimRecord,
        rotation: Rotation,
    ) -> Result<Action, Error> {
        if let Some(message) = self.not_served_now().await? {
            let message = format!("{message}; the credential runs to its end");
            return self.rotation_waiting(Some(pool), record, message).await;
        }
        let prepared = match self.prepare_issue(pool).await {
            Ok(Some(prepared)) => prepared,
            Ok(None) => {
                let message = "the pool's certificate ends within the hour; the credential runs \
                               to its end"
                    .to_owned();
                return self.rotation_waiting(Some(pool), record, message).await;
            }
            Err(error) if IssueFailureKind::of(&error) != IssueFailureKind::Transient => {
                return self
                    .rotation_waiting(Some(pool), record, error.to_string())
                    .await;
            }
            Err(error) => return Err(error),
        };
        let stored = self.ctx.own_secret(self.lease, &record.secret_name).await?;
        let Some(password) =
            stored.and_then(|s| stored_password_of(&s, &record.user.user_principal_name))
        else {
            // Edited since the decision: judged again (a restore, most likely).
            return Err(Error::Stale("the lease's Secret"));
        };
        let plan = IssuePlan {
            secret_name: &record.secret_name,
            ttl: rotation.ttl,
            max_ttl: rotation.max_ttl,
            generation: record.generation.saturating_add(1),
            last_rotate_request: rotation
                .request
                .or_else(|| record.last_rotate_request.clone()),
        };
        let claimed = self
            .claim_first(pool, &prepared, rotation.candidates, &plan)
            .await?;
        let Some((claim, next)) = claimed else {
            let message = format!(
                "every other user of {pool} is leased; the credential of {} runs until {} and the \
                 lease rotates as soon as a user is free",
                record.user.user_principal_name,
                format_time(record.expires_at())
            );
            return self.rotation_waiting(Some(pool), record, message).await;
        };
        let previous = Previous {
            claim: current,
            record: std::sync::Arc::new(record.clone()),
            password,
        };
        self.set_and_confirm(
            claim,
            &next,
            &prepared.app,
            None,
            false,
            Reason::Issued,
            Some(&previous),
        )
        .await
    }

    /// The lease is due to rotate and cannot: it says so, keeps its credential, and looks again
    /// when a user is freed (it goes first) or in a minute.
    pub(super) async fn rotation_waiting(
        &self,
        pool: Option<&Pool>,
        record: &ClaimRecord,
        message: String,
    ) -> Result<Action, Error> {
        if let Some(pool) = pool {
            self.ctx.waits_to_rotate(&record.lease.uid, pool.key());
        }
        let reason = Reason::RotationWaiting;
        if !self.status.already(reason) {
            self.ctx
                .publish(
                    self.lease,
                    EventType::Warning,
                    reason,
                    "Rotate",
                    message.clone(),
                )
                .await;
        }
        self.status.active(record, None, reason, message).await?;
        Ok(Action::requeue(
            LOOK_AGAIN_AFTER.min(until_then(record.expires_at(), self.now)),
        ))
    }

    /// The new credential of a rotation could not be set for good (Entra refused it): the
    /// Secret goes back to the current credential alone and the new user is released.
    pub(super) async fn rotation_failed(
        &self,
        claim: HeldClaim,
        next: &ClaimRecord,
        previous: &Previous,
        error: Error,
    ) -> Result<Action, Error> {
        if IssueFailureKind::of(&error) == IssueFailureKind::Transient {
            return Err(error);
        }
        write_credentials(
            self.ctx,
            self.lease,
            &previous.record,
            &previous.password,
            Secrets::Alone,
        )
        .await?;
        self.ctx.claims.release(&claim).await?;
        let user_problem = matches!(
            IssueFailureKind::of(&error),
            IssueFailureKind::UserChangedInEntra | IssueFailureKind::Refused
        );
        if user_problem {
            self.ctx.forbid(&next.user.id);
        }
        let message = format!(
            "rotating to {} failed ({error}); the credential of {} stays",
            next.user.user_principal_name, previous.record.user.user_principal_name
        );
        self.rotation_waiting(None, &previous.record, message)
            .await?;
        Ok(Action::requeue(if user_problem {
            NEXT_USER_AFTER
        } else {
            LOOK_AGAIN_AFTER
        }))
    }

    /// After a rotation, the previous credential's recorded deadline becomes the end of its
    /// overlap (never later than it was): the reaper enforces it should this process stop.
    pub(super) async fn shorten_previous(
        &self,
        previous: &Previous,
        current: &ClaimRecord,
    ) -> Result<ClaimRecord, Error> {
        let mut shortened = (*previous.record).clone();
        if let Some(Ok(overlap)) = overlap(self.lease) {
            let end = later(current.issued_at.0, overlap);
            if end < shortened.expires_at() {
                shortened.expires_at = Time(end);
                self.ctx
                    .claims
                    .update_record(&previous.claim, &shortened)
                    .await
                    .map_err(Error::stale_on_conflict("the previous claim"))?;
            }
        }
        Ok(shortened)
    }

    /// Ends the previous credential: consumers moved on, or its overlap ran out.
    pub(super) async fn retire(
        &self,
        previous: HeldClaim,
        current: &ClaimRecord,
    ) -> Result<Action, Error> {
        let Some(record) = previous.record.clone() else {
            return Err(Error::MalformedClaim(previous.name.clone()));
        };
        end_credential(self.ctx, &previous).await?;
        let message = format!(
            "the previous credential, for {}, was scrambled and its user released; {} is in \
             Secret {}",
            record.user.user_principal_name, current.user.user_principal_name, current.secret_name
        );
        let reason = Reason::PreviousCredentialEnded;
        self.status
            .active(current, None, reason, message.clone())
            .await?;
        self.ctx
            .publish(self.lease, EventType::Normal, reason, "Rotate", message)
            .await;
        Ok(Action::requeue(NEXT_USER_AFTER))
    }

    /// A continuous lease's credential reached its end before it could rotate: everything it
    /// holds ends, and it waits for a user like a new lease.
    pub(super) async fn end_credentials(&self, claims: &LeaseClaims) -> Result<Action, Error> {
        let ended = claims
            .current
            .as_ref()
            .and_then(|c| c.record.as_ref())
            .map(|r| r.user.user_principal_name.clone())
            .unwrap_or_default();
        for claim in claims.all_oldest_first() {
            end_credential(self.ctx, claim).await?;
        }
        // It waits for a user like a new lease now, without precedence over others.
        if let Some(uid) = self.lease.metadata.uid.as_deref() {
            self.ctx.rotation_done(uid);
        }
        let reason = Reason::CredentialEnded;
        let message = format!(
            "the credential of {ended} reached its end before another user was free to rotate \
             to; it was scrambled and the Secret deleted; waiting for a user"
        );
        self.ctx
            .publish(
                self.lease,
                EventType::Warning,
                reason,
                "Rotate",
                message.clone(),
            )
            .await;
        self.status
            .without_credential(LeasePhase::Pending, false, reason, message)
            .await?;
        metrics().continuous_lease_gaps.inc();
        Ok(Action::requeue(NEXT_USER_AFTER))
    }

    /// Tells what a look at the restart targets did: restarts and refusals, once each.
    pub(super) async fn tell_rollouts(&self, report: &RolloutReport) {
        if !report.restarted.is_empty() {
            let message = format!(
                "restarted {} for the new credential",
                report.restarted.join(", ")
            );
            self.ctx
                .publish(
                    self.lease,
                    EventType::Normal,
                    Reason::RolloutRestarted,
                    "Restart",
                    message,
                )
                .await;
        }
        let reason = Reason::RolloutTargetRefused;
        if report.refused.is_empty() || self.status.already(reason) {
            return;
        }
        self.ctx
            .publish(
                self.lease,
                EventType::Warning,
                reason,
                "Restart",
                report.refused.join("; "),
            )
            .await;
    }
}
