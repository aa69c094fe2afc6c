//! Restoring an active lease's Secret that was deleted or edited: a fresh password (which also
//! ends the old one) goes into a restored Secret, set with the pool's own credential. The claim
//! records the restore, which spaces out the next one.

use kube::runtime::events::EventType;

use super::set_password::Write;
use super::{Shell, Step};
use crate::controller::Error;
use crate::controller::claims::HeldClaim;
use crate::controller::credential::end_credential;
use crate::controller::lease::decide::restore_after_pool_changed;
use crate::controller::lease::facts::Held;
use crate::controller::lease::messages;
use crate::controller::reasons::Reason;
use crate::controller::restore_backoff::RestoreBackoff;
use crate::secret::SecretState;

impl Shell<'_> {
    /// A previous credential of a continuous lease ends first: the Secret no longer reliably
    /// holds it.
    pub(super) async fn restore(
        &self,
        current: Held,
        previous: Option<HeldClaim>,
        cause: SecretState,
        restores: RestoreBackoff,
    ) -> Result<Step, Error> {
        let record = &current.record;
        self.tell(
            EventType::Warning,
            Reason::CredentialRestored,
            "Restore",
            messages::restoring(&record.secret_name, cause),
        )
        .await;
        let Some(app) = self.setting_credentials(record).await? else {
            return Ok(Step::then(restore_after_pool_changed(record)));
        };
        if let Some(previous) = previous {
            end_credential(self.ctx, &previous).await?;
        }
        // Unconfirmed until Entra takes the fresh password: a crash or failure in between
        // resumes it, and never leaves a Secret whose password was not set. A fresh password is
        // a new credential generation (consumers restart for it).
        let mut unconfirmed = (**record).clone();
        unconfirmed.issued = false;
        unconfirmed.generation = record.generation.saturating_add(1);
        unconfirmed.restores = Some(restores);
        unconfirmed.restore_at = None;
        let claim = self
            .ctx
            .claims
            .update_record(&current.claim, &unconfirmed)
            .await
            .map_err(Error::stale_on_conflict("the claim"))?;
        self.set_and_confirm(Write {
            claim,
            record: &unconfirmed,
            app: &app,
            password: None,
            may_be_set: true,
            outcome: Reason::CredentialRestored,
            previous: None,
        })
        .await
    }
}
