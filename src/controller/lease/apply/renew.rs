//! Renewal: moving the credential's expiry (the claim first, it is the record), and answering a
//! renewal the pool no longer allows.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::{Shell, Step};
use crate::controller::Error;
use crate::controller::claim_record::ClaimRecord;
use crate::controller::credential::annotate_expiry;
use crate::controller::lease::decide::Outcome;
use crate::controller::lease::facts::Held;
use crate::controller::lease::messages;
use crate::controller::reasons::Reason;
use crate::controller::status::whole_seconds;
use crate::metrics::{CappedLabels, metrics};
use crate::secret::format_time;

impl Shell<'_> {
    pub(super) async fn renew(
        &self,
        current: Held,
        previous: Option<Arc<ClaimRecord>>,
        expires_at: Timestamp,
        capped: bool,
        request: Option<String>,
    ) -> Result<Step, Error> {
        let mut renewed = (*current.record).clone();
        let moved = renewed.expires_at() != expires_at;
        if moved {
            renewed.renew_count += 1;
            renewed.last_renewed_at = Some(Time(whole_seconds(self.now)));
            renewed.expires_at = Time(expires_at);
        }
        if request.is_some() {
            renewed.last_renew_request = request;
        }
        // The claim first: it is the record, and its precondition stops a renewal judged on a
        // stale copy from being applied twice.
        self.ctx
            .claims
            .update_record(&current.claim, &renewed)
            .await
            .map_err(Error::stale_on_conflict("the claim"))?;
        if moved {
            annotate_expiry(self.ctx, &renewed, expires_at).await?;
        }
        let reason = if capped {
            Reason::RenewalCapped
        } else {
            Reason::Renewed
        };
        let message = messages::renewed(expires_at, capped);
        self.status
            .active(&renewed, previous.as_deref(), reason, message.clone())
            .await?;
        tracing::info!(lease = %self.lease.name_any(), %reason, expires_at = %format_time(expires_at), "renewed");
        let capped_label = CappedLabels {
            capped: capped.to_string(),
        };
        metrics().renewals.get_or_create(&capped_label).inc();
        self.tell(EventType::Normal, reason, "Renew", message).await;
        Ok(Step::Done(Outcome::Active {
            current: Arc::new(renewed),
            previous,
        }))
    }

    /// A renewal the pool no longer allows (its selector stopped matching the namespace): the
    /// request is recorded, so it is answered once, and the credential keeps its deadline.
    pub(super) async fn decline_renewal(
        &self,
        current: Held,
        previous: Option<Arc<ClaimRecord>>,
        request: String,
        reason: Reason,
        message: String,
    ) -> Result<Step, Error> {
        let mut answered = (*current.record).clone();
        answered.last_renew_request = Some(request);
        self.ctx
            .claims
            .update_record(&current.claim, &answered)
            .await
            .map_err(Error::stale_on_conflict("the claim"))?;
        self.status
            .active(&answered, previous.as_deref(), reason, message.clone())
            .await?;
        self.tell(EventType::Warning, reason, "Renew", message)
            .await;
        Ok(Step::Done(Outcome::Active {
            current: Arc::new(answered),
            previous,
        }))
    }
}
