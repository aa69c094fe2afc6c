//! A restore that must wait for the lease's restore backoff: the live credential ends first
//! (scrambled, sessions revoked as its record says), so that the password of a Secret someone
//! took stops working (I2), and the claim records that a fresh one follows later. The claim stays
//! held: the user is the lease's until its restore or its end.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;

use super::{Shell, Step};
use crate::controller::Error;
use crate::controller::claims::HeldClaim;
use crate::controller::credential::{
    delete_controlled_secret, end_credential, scramble_credential,
};
use crate::controller::lease::decide::{Decision, Outcome};
use crate::controller::lease::facts::Held;
use crate::controller::lease::messages;
use crate::controller::reasons::Reason;
use crate::secret::SecretState;

impl Shell<'_> {
    /// Scrambles first, then records the wait: a crash in between leaves a record that asks for
    /// a restore again, never one that says "ended" over a password that still works.
    pub(super) async fn end_until_restore(
        &self,
        current: Held,
        previous: Option<HeldClaim>,
        restore_at: Timestamp,
        cause: SecretState,
    ) -> Result<Step, Error> {
        let record = &current.record;
        if let Some(previous) = previous {
            end_credential(self.ctx, &previous).await?;
        }
        scramble_credential(self.ctx, &current.claim, record).await?;
        let mut waiting = (**record).clone();
        waiting.restore_at = Some(Time(restore_at));
        let claim = self
            .ctx
            .claims
            .update_record(&current.claim, &waiting)
            .await
            .map_err(Error::stale_on_conflict("the claim"))?;
        // An edited Secret holds a password that no longer works: it goes until the restore.
        let lease = &record.lease;
        delete_controlled_secret(self.ctx, &lease.namespace, &record.secret_name, &lease.uid)
            .await?;
        self.tell(
            EventType::Warning,
            Reason::RestoreBackoff,
            "Restore",
            messages::restore_deferred(&record.secret_name, cause, restore_at),
        )
        .await;
        Ok(Step::then(Decision::RestoreWaits {
            current: Held {
                claim,
                record: Arc::new(waiting),
            },
            restore_at,
        }))
    }

    /// Says when the ended credential is restored; writes nothing else (a Secret taken again
    /// meanwhile costs no Graph write).
    pub(super) async fn restore_waits(
        &self,
        current: &Held,
        restore_at: Timestamp,
    ) -> Result<Step, Error> {
        let message = messages::restore_waiting(&current.record.secret_name, restore_at);
        self.status
            .restore_waiting(&current.record, message)
            .await?;
        Ok(Step::Done(Outcome::Settled))
    }
}
