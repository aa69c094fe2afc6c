//! A lease's status: a projection of its claim's record that the operator writes and never reads
//! back as truth. Writes are conditional on the lease's resourceVersion, so a status judged from
//! a stale cache fails (and is judged again) instead of overwriting a newer one.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::events::EventType;

use super::facts::Held;
use crate::api::{EntraLease, LeasePhase, LeaseStatus, PreviousCredential};
use crate::controller::Error;
use crate::controller::claim_record::ClaimRecord;
use crate::controller::context::{Context, Superseded};
use crate::controller::reasons::Reason;
use crate::controller::rotation_schedule::{
    clamped_forced_rotation_interval, next_rotation_at, retire_at,
};
use crate::controller::status::{apply_status, set_condition};
use crate::duration::format_duration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub struct LeaseStatusWriter<'a> {
    api: &'a Api<EntraLease>,
    lease: &'a EntraLease,
    now: Timestamp,
    /// The operator's minimum spacing of forced rotations, which the status shows when it
    /// clamps the lease's overlap.
    min_forced_rotation: Duration,
    /// Where a write notes the copy it replaced.
    superseded: &'a Superseded,
}

impl<'a> LeaseStatusWriter<'a> {
    pub fn new(
        api: &'a Api<EntraLease>,
        lease: &'a EntraLease,
        now: Timestamp,
        ctx: &'a Context,
    ) -> Self {
        Self {
            api,
            lease,
            now,
            min_forced_rotation: ctx.min_forced_rotation,
            superseded: &ctx.superseded,
        }
    }

    pub fn api(&self) -> &Api<EntraLease> {
        self.api
    }

    /// True when the lease's Ready condition already says `reason`: events fire on changes only.
    pub fn already(&self, reason: Reason) -> bool {
        self.lease
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.reason == reason.as_str())
    }

    /// A lease that holds no credential (waiting, refused, ended).
    pub async fn without_credential(
        &self,
        phase: LeasePhase,
        ready: bool,
        reason: Reason,
        message: String,
    ) -> Result<(), Error> {
        let mut status = self.current();
        status.phase = Some(phase);
        status.user = None;
        status.secret_name = None;
        status.issued_at = None;
        status.expires_at = None;
        status.max_expires_at = None;
        status.previous = None;
        status.next_rotation_at = None;
        status.forced_rotation_interval = None;
        self.condition(&mut status, ready, reason, message);
        self.write(&status).await
    }

    /// A lease whose credential `record` describes, with its Ready condition saying `reason`.
    pub async fn active(
        &self,
        record: &ClaimRecord,
        previous: Option<&ClaimRecord>,
        reason: Reason,
        message: String,
    ) -> Result<(), Error> {
        let mut status = self.projection(&self.current(), record, previous);
        self.condition(&mut status, true, reason, message);
        self.write(&status).await
    }

    /// A lease whose credential ended to wait for its restore: not Ready until then.
    pub async fn restore_waiting(
        &self,
        record: &ClaimRecord,
        message: String,
    ) -> Result<(), Error> {
        let mut status = self.projection(&self.current(), record, None);
        self.condition(&mut status, false, Reason::RestoreBackoff, message);
        self.write(&status).await
    }

    /// Rewrites the status from the record when it says anything else: someone other than the
    /// operator edited it (an Event says so). `held` may come from the cache, so it is confirmed
    /// by a live read before anything is written.
    pub async fn project(
        &self,
        ctx: &Context,
        held: &Held,
        previous: Option<&ClaimRecord>,
    ) -> Result<(), Error> {
        let (claim, record) = (&held.claim, held.record.as_ref());
        let current = self.current();
        let mut wanted = self.projection(&current, record, previous);
        let ready = wanted
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if !ready {
            let message = format!(
                "credentials for {} are in Secret {}",
                record.user.user_principal_name, record.secret_name
            );
            self.condition(&mut wanted, true, Reason::Issued, message);
        }
        if wanted == current {
            return Ok(());
        }
        let live = ctx.claims.get(&record.user.id).await?;
        if live.as_ref().map(|c| &c.resource_version) != Some(&claim.resource_version) {
            return Err(Error::Stale("the claim"));
        }
        self.write(&wanted).await?;
        tracing::warn!(lease = %self.lease.name_any(), namespace = %record.lease.namespace, "status differed from the claim; rewritten");
        ctx.publish(
            self.lease,
            EventType::Warning,
            Reason::StatusRewritten,
            "Project",
            "the status was changed by someone other than the operator; it was rewritten from \
             the operator's record"
                .to_owned(),
        )
        .await;
        Ok(())
    }

    /// Marks a lease whose revocation is failing (best effort: the failure is what matters).
    pub async fn revoking(&self, reason: Reason, message: String) {
        let mut status = self.current();
        status.phase = Some(LeasePhase::Revoking);
        self.condition(&mut status, false, reason, message);
        let _ = self.write(&status).await;
    }

    fn projection(
        &self,
        current: &LeaseStatus,
        record: &ClaimRecord,
        previous: Option<&ClaimRecord>,
    ) -> LeaseStatus {
        let mut status = projection(self.lease, current, record, previous);
        status.forced_rotation_interval =
            clamped_forced_rotation_interval(self.lease, self.min_forced_rotation)
                .map(format_duration);
        status
    }

    fn current(&self) -> LeaseStatus {
        self.lease.status.clone().unwrap_or_default()
    }

    fn condition(&self, status: &mut LeaseStatus, ready: bool, reason: Reason, message: String) {
        status.observed_generation = self.lease.metadata.generation;
        set_condition(
            &mut status.conditions,
            "Ready",
            ready,
            reason,
            message,
            self.lease.metadata.generation,
            self.now,
        );
    }

    async fn write(&self, status: &LeaseStatus) -> Result<(), Error> {
        let changed = apply_status(self.api, self.lease, self.lease.status.as_ref(), status)
            .await
            .map_err(Error::stale_on_conflict("the lease"))?;
        // Only a write that made a new version: the watch brings that one.
        if changed.is_some()
            && let (Some(uid), Some(version)) = (self.lease.uid(), self.lease.resource_version())
        {
            self.superseded.wrote_over(&uid, &version);
        }
        Ok(())
    }
}

/// `current` with every field the records decide taken from them: the current credential's,
/// and a continuous lease's previous one and next rotation.
fn projection(
    lease: &EntraLease,
    current: &LeaseStatus,
    record: &ClaimRecord,
    previous: Option<&ClaimRecord>,
) -> LeaseStatus {
    LeaseStatus {
        credential_generation: Some(record.generation),
        previous: previous.map(|previous| PreviousCredential {
            user: previous.user.clone(),
            issued_at: previous.issued_at.clone(),
            expires_at: Time(retire_at(lease, record, previous)),
        }),
        next_rotation_at: next_rotation_at(lease, record).map(Time),
        forced_rotation_interval: current.forced_rotation_interval.clone(),
        phase: Some(LeasePhase::Active),
        user: Some(record.user.clone()),
        secret_name: Some(record.secret_name.clone()),
        issued_at: Some(record.issued_at.clone()),
        expires_at: Some(record.expires_at.clone()),
        max_expires_at: Some(record.max_expires_at.clone()),
        renew_count: record.renew_count,
        last_renewed_at: record.last_renewed_at.clone(),
        last_renew_request: record.last_renew_request.clone(),
        conditions: current.conditions.clone(),
        observed_generation: current.observed_generation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::LeasedUser;
    use crate::fixtures::{at, record};

    #[test]
    fn the_projection_takes_every_credential_field_from_the_record() {
        let record = record();
        let forged = LeaseStatus {
            phase: Some(LeasePhase::Failed),
            user: Some(LeasedUser {
                user_principal_name: "mallory@contoso.com".into(),
                id: "id-mallory".into(),
            }),
            expires_at: Some(Time(at(99_999))),
            max_expires_at: None,
            renew_count: 7,
            last_renew_request: Some("forged".into()),
            ..LeaseStatus::default()
        };
        let lease = EntraLease::new("ci", crate::fixtures::lease_spec());
        let projected = projection(&lease, &forged, &record, None);
        assert_eq!(projected.phase, Some(LeasePhase::Active));
        assert_eq!(projected.user.as_ref(), Some(&record.user));
        assert_eq!(projected.expires_at, Some(record.expires_at.clone()));
        assert_eq!(
            projected.max_expires_at,
            Some(record.max_expires_at.clone())
        );
        assert_eq!(projected.renew_count, 0);
        assert_eq!(projected.last_renew_request, None);
        assert_eq!(
            projection(&lease, &projected, &record, None),
            projected,
            "stable"
        );
    }
}
