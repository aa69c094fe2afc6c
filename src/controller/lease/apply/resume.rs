//! Resuming an issue interrupted after its claim: a Secret left by it holds the password that
//! may already be set, so that same one is set again and no working password is ever lost (I2).

use k8s_openapi::api::core::v1::Secret;

use super::set_password::{Previous, Write};
use super::{Shell, Step};
use crate::controller::Error;
use crate::controller::claims::HeldClaim;
use crate::controller::credential::end_credential;
use crate::controller::lease::decide::resume_after_pool_changed;
use crate::controller::lease::facts::Held;
use crate::controller::reasons::Reason;
use crate::secret::{Held as HeldAs, SecretState, held_as, stored_password_of};

impl Shell<'_> {
    /// A rotation interrupted so keeps the previous credential beside it, if the Secret still
    /// holds that; if not, the previous credential ends first (nobody could use it).
    pub(super) async fn resume(
        &self,
        current: Held,
        previous: Option<HeldClaim>,
        secret: SecretState,
    ) -> Result<Step, Error> {
        let record = &current.record;
        let Some(app) = self.setting_credentials(record).await? else {
            return Ok(Step::then(resume_after_pool_changed(current.claim)));
        };
        // An edited Secret's password is not necessarily the one that may be set: a fresh one
        // replaces whichever it is.
        let stored = match secret {
            SecretState::Intact => self.ctx.own_secret(self.lease, &record.secret_name).await?,
            SecretState::Tampered | SecretState::Missing | SecretState::Foreign => None,
        };
        // The password of this claim's user, as current or (a rotation) still pending.
        let resumed = stored.as_ref().and_then(|s| {
            let upn = &record.user.user_principal_name;
            matches!(held_as(s, upn), Some(HeldAs::Current | HeldAs::Pending))
                .then(|| stored_password_of(s, upn))
                .flatten()
        });
        let kept = match previous {
            Some(previous) => self.keep_previous(previous, stored.as_ref()).await?,
            None => None,
        };
        self.set_and_confirm(Write {
            claim: current.claim.clone(),
            record,
            app: &app,
            password: resumed,
            // Whatever the Secret holds now, an earlier attempt may have set a password.
            may_be_set: true,
            outcome: Reason::Issued,
            previous: kept.as_ref(),
        })
        .await
    }

    /// The previous credential with its password from the Secret, to be kept beside the one
    /// being set; ended now when the Secret does not hold it.
    async fn keep_previous(
        &self,
        previous: HeldClaim,
        stored: Option<&Secret>,
    ) -> Result<Option<Previous>, Error> {
        let Some(record) = previous.record.clone() else {
            end_credential(self.ctx, &previous).await?;
            return Ok(None);
        };
        let password = stored.and_then(|s| stored_password_of(s, &record.user.user_principal_name));
        match password {
            Some(password) => Ok(Some(Previous {
                claim: previous,
                record,
                password,
            })),
            None => {
                end_credential(self.ctx, &previous).await?;
                Ok(None)
            }
        }
    }
}
