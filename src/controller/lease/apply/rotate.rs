//! Rotation, for continuous leases: moving onto another pool user beside the current
//! credential, waiting for one, shortening the previous credential to its overlap, and retiring
//! it once consumers moved on.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;

use super::issue::IssuePlan;
use super::set_password::{Previous, Write};
use super::{Shell, Step};
use crate::controller::Error;
use crate::controller::claim_record::ClaimRecord;
use crate::controller::credential::end_credential;
use crate::controller::deadlines::later;
use crate::controller::lease::decide::{
    Outcome, Rotation, nobody_free_to_rotate, rotation_credential_ends_soon,
    rotation_credential_failed,
};
use crate::controller::lease::facts::Held;
use crate::controller::lease::messages;
use crate::controller::pool::PoolKey;
use crate::controller::reasons::Reason;
use crate::controller::rotation_schedule::overlap;
use crate::graph::Class;
use crate::secret::stored_password_of;

impl Shell<'_> {
    /// Claims another pool user and issues it beside the current credential, which stays in
    /// the Secret under the previous keys.
    pub(super) async fn rotate(&self, rotation: Rotation) -> Result<Step, Error> {
        let Rotation {
            pool,
            current,
            candidates,
            ttl,
            max_ttl,
            request,
        } = rotation;
        let prepared = match self.prepare_issue(&pool).await {
            Ok(Some(prepared)) => prepared,
            Ok(None) => {
                let next = rotation_credential_ends_soon(&pool, current.record);
                return Ok(Step::then(next));
            }
            Err(error) => {
                return match rotation_credential_failed(&error, &pool, current.record) {
                    Some(next) => Ok(Step::then(next)),
                    None => Err(error),
                };
            }
        };
        let record = &current.record;
        let stored = self.ctx.own_secret(self.lease, &record.secret_name).await?;
        let Some(password) =
            stored.and_then(|s| stored_password_of(&s, &record.user.user_principal_name))
        else {
            // Edited since the decision: judged again (a restore, most likely).
            return Err(Error::Stale("the lease's Secret"));
        };
        let plan = IssuePlan {
            secret_name: &record.secret_name,
            ttl,
            max_ttl,
            generation: record.generation.saturating_add(1),
            last_rotate_request: request.or_else(|| record.last_rotate_request.clone()),
            restores: record.restores.clone(),
            class: Class::Rotate,
        };
        let Some((claim, next)) = self
            .claim_first(&pool, &prepared, candidates, &plan)
            .await?
        else {
            return Ok(Step::then(nobody_free_to_rotate(&pool, current.record)));
        };
        let previous = Previous {
            claim: current.claim,
            record: current.record,
            password,
        };
        self.set_and_confirm(Write {
            claim,
            record: &next,
            app: &prepared.app,
            password: None,
            may_be_set: false,
            outcome: Reason::Issued,
            previous: Some(&previous),
        })
        .await
    }

    /// The lease is due to rotate and cannot: it says so, keeps its credential, and looks again
    /// when a user is freed (it goes first when `queue_for` names its pool) or in a minute.
    pub(super) async fn rotation_waiting(
        &self,
        queue_for: Option<PoolKey>,
        current: &ClaimRecord,
        message: String,
    ) -> Result<Step, Error> {
        if let Some(pool) = queue_for {
            self.ctx.waits_to_rotate(&current.lease.uid, pool);
        }
        let reason = Reason::RotationWaiting;
        self.tell_once(EventType::Warning, reason, "Rotate", &message)
            .await;
        self.status.active(current, None, reason, message).await?;
        Ok(Step::Done(Outcome::RotationWaits {
            expires_at: current.expires_at(),
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
        previous: Held,
        current: &Arc<ClaimRecord>,
    ) -> Result<Step, Error> {
        end_credential(self.ctx, &previous.claim).await?;
        let message = messages::retired(&previous.record, current);
        let reason = Reason::PreviousCredentialEnded;
        self.status
            .active(current, None, reason, message.clone())
            .await?;
        self.tell(EventType::Normal, reason, "Rotate", message)
            .await;
        Ok(Step::Done(Outcome::GoOn))
    }
}
