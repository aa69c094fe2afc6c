//! The lease's restart targets: restarted once per credential so consumers pick up a changed
//! Secret, and their rollouts read while a previous credential waits for them.

use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::Shell;
use crate::controller::claim_record::ClaimRecord;
use crate::controller::lease::messages;
use crate::controller::reasons::Reason;
use crate::controller::rollout::{RolloutReport, restart_and_observe};

impl Shell<'_> {
    /// Restarts the targets for the credential `confirmed` (and reads their rollouts): a
    /// failure is only logged, since they are retried while the previous credential lives.
    pub(super) async fn restart_targets(&self, confirmed: &ClaimRecord) {
        if self.lease.spec.rollout_restart_targets.is_empty() {
            return;
        }
        let restarted = restart_and_observe(
            self.ctx,
            self.lease,
            &confirmed.secret_name,
            confirmed.generation,
        )
        .await;
        match restarted {
            Ok(report) => self.tell_rollouts(&report).await,
            Err(error) => {
                tracing::warn!(lease = %self.lease.name_any(), %error, "restarting the rollout targets failed; retried while the previous credential lives");
            }
        }
    }

    /// Tells what a look at the restart targets did: restarts and refusals, once each.
    pub async fn tell_rollouts(&self, report: &RolloutReport) {
        if !report.restarted.is_empty() {
            self.tell(
                EventType::Normal,
                Reason::RolloutRestarted,
                "Restart",
                messages::rollouts_restarted(&report.restarted),
            )
            .await;
        }
        let reason = Reason::RolloutTargetRefused;
        if report.refused.is_empty() || self.status.already(reason) {
            return;
        }
        self.tell(
            EventType::Warning,
            reason,
            "Restart",
            report.refused.join("; "),
        )
        .await;
    }
}
