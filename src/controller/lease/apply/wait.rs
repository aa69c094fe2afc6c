//! Effects that only tell: a lease waiting for something outside it, and a lease holding its
//! credential until its next point in time.

use std::sync::Arc;

use kube::runtime::events::EventType;

use super::{Shell, Step};
use crate::api::LeasePhase;
use crate::controller::Error;
use crate::controller::claim_record::ClaimRecord;
use crate::controller::lease::decide::Outcome;
use crate::controller::lease::facts::Held;
use crate::controller::reasons::Reason;

impl Shell<'_> {
    pub(super) async fn wait(&self, reason: Reason, message: String) -> Result<Step, Error> {
        self.tell_once(EventType::Normal, reason, "Wait", &message)
            .await;
        self.status
            .without_credential(LeasePhase::Pending, false, reason, message)
            .await?;
        Ok(Step::Done(Outcome::Settled))
    }

    /// The status shows the claim; a restart target that will not roll out is said once.
    pub(super) async fn hold(
        &self,
        current: &Held,
        previous: Option<Arc<ClaimRecord>>,
        rollout_refusal: Option<String>,
    ) -> Result<Step, Error> {
        let refused = Reason::RolloutTargetRefused;
        let kept = previous.as_deref();
        match rollout_refusal {
            Some(message) if !self.status.already(refused) => {
                self.status
                    .active(&current.record, kept, refused, message)
                    .await?;
            }
            _ => self.status.project(self.ctx, current, kept).await?,
        }
        Ok(Step::Done(Outcome::Settled))
    }
}
