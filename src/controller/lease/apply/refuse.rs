//! Refusals: a lease that cannot be issued as specified (what it holds ends), and an issue Entra
//! refused for a reason the lease cannot fix (tried again later).

use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::{Shell, Step};
use crate::api::LeasePhase;
use crate::controller::Error;
use crate::controller::claims::HeldClaim;
use crate::controller::lease::decide::{Outcome, RETRY_REFUSED_ISSUE};
use crate::controller::reasons::Reason;

impl Shell<'_> {
    pub(super) async fn refuse(
        &self,
        ending: &[HeldClaim],
        reason: Reason,
        message: String,
    ) -> Result<Step, Error> {
        for claim in ending {
            self.end_or_report(claim).await?;
        }
        self.tell_once(EventType::Warning, reason, "Validate", &message)
            .await;
        self.status
            .without_credential(LeasePhase::Failed, false, reason, message)
            .await?;
        Ok(Step::Done(Outcome::Settled))
    }

    /// Failed, and not tried again before the retry time unless the lease's spec changes:
    /// permissions and roles can be fixed in Entra without any change here.
    pub(super) async fn fail_issue(&self, reason: Reason, message: String) -> Result<Step, Error> {
        self.tell(EventType::Warning, reason, "Issue", message.clone())
            .await;
        self.status
            .without_credential(LeasePhase::Failed, false, reason, message)
            .await?;
        self.ctx.refused_issues.refused(
            self.lease.uid().unwrap_or_default(),
            self.lease.metadata.generation,
            std::time::Instant::now() + RETRY_REFUSED_ISSUE,
        );
        Ok(Step::Done(Outcome::IssueRefused))
    }
}
