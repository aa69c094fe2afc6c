//! Ends: a lease deleted at its expiry, a continuous lease whose credential ran out before it
//! could rotate, an interrupted issue whose pool changed, and the revocation finalizer that ends
//! every credential a deleted lease holds (invariant I3). Should the finalizer be stripped by
//! hand, the reaper ends the credential from the claim instead.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::{Shell, Step};
use crate::api::{EntraLease, LeasePhase};
use crate::controller::Error;
use crate::controller::claims::{HeldClaim, is_not_found};
use crate::controller::context::Context;
use crate::controller::credential::{end_credential, end_in_entra_now};
use crate::controller::lease::decide::Outcome;
use crate::controller::lease::messages;
use crate::controller::lease::status::LeaseStatusWriter;
use crate::controller::reasons::Reason;
use crate::metrics::{ReasonLabels, metrics};

impl Shell<'_> {
    /// Ends the expired credentials in Entra, then deletes the lease; its finalizer finishes the
    /// end (Secret, release) and tells it in one event (Expired): events are API writes. A step
    /// that fails here is the finalizer's to retry and report.
    pub(super) async fn expire(
        &self,
        user: Option<&str>,
        ending: &[HeldClaim],
    ) -> Result<Step, Error> {
        let user = user.unwrap_or("(ended already)");
        tracing::info!(lease = %self.lease.name_any(), user, "expired; revoking");
        for claim in ending {
            if let Err(error) = end_in_entra_now(self.ctx, claim).await {
                tracing::debug!(lease = %self.lease.name_any(), %error, "ending before the delete failed; the finalizer retries");
            }
        }
        // The delete is conditional on the lease being the one judged: an edit since (a renewal
        // request) is judged first.
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: self.lease.uid(),
                resource_version: self.lease.resource_version(),
            }),
            ..DeleteParams::default()
        };
        match self
            .status
            .api()
            .delete(&self.lease.name_any(), &params)
            .await
        {
            Ok(_) => Ok(Step::Done(Outcome::Settled)),
            Err(error) if is_not_found(&error) => Ok(Step::Done(Outcome::Settled)),
            Err(error) => Err(Error::stale_on_conflict("the lease")(error)),
        }
    }

    /// A continuous lease's credential reached its end before it could rotate: everything it
    /// holds ends, and it waits for a user like a new lease, without precedence over others.
    pub(super) async fn end_credentials(
        &self,
        claims: &[HeldClaim],
        user: &str,
    ) -> Result<Step, Error> {
        for claim in claims {
            self.end_or_report(claim).await?;
        }
        if let Some(uid) = self.lease.metadata.uid.as_deref() {
            self.ctx.rotation_done(uid);
        }
        let reason = Reason::CredentialEnded;
        let message = messages::credential_ended(user);
        self.tell(EventType::Warning, reason, "Rotate", message.clone())
            .await;
        self.status
            .without_credential(LeasePhase::Pending, false, reason, message)
            .await?;
        metrics().continuous_lease_gaps.inc();
        Ok(Step::Done(Outcome::GoOn))
    }

    /// Ends one credential the lease holds; a failure says so as a revocation's does (the
    /// `RevocationFailing` condition, event and metric behind the alert), never a silent hold.
    pub(super) async fn end_or_report(&self, claim: &HeldClaim) -> Result<(), Error> {
        let Err(error) = end_credential(self.ctx, claim).await else {
            return Ok(());
        };
        // Waiting its turn in the app's Graph line is no failure.
        if error.only_waits_its_turn() {
            return Err(error);
        }
        let user = claim
            .record
            .as_ref()
            .map_or(claim.name.as_str(), |r| &r.user.user_principal_name);
        let message = messages::revocation_failing(user, &error);
        let reason = revocation_reason(&error);
        self.tell_once(EventType::Warning, reason, "Revoke", &message)
            .await;
        count_revocation_failure(&error);
        self.status.revoking(reason, message).await;
        Err(error)
    }

    /// An interrupted issue whose pool or app changed: its credential ends, and the lease is
    /// issued again as its pool is now.
    pub(super) async fn reissue(&self, claim: &HeldClaim) -> Result<Step, Error> {
        self.end_or_report(claim).await?;
        Ok(Step::Done(Outcome::GoOn))
    }
}

/// The finalizer of a deleted lease (by a user, by expiry or with its dynamic secret): it stays
/// until every credential the lease's claims record has ended.
pub async fn cleanup(
    lease: &EntraLease,
    api: &Api<EntraLease>,
    ctx: &Context,
) -> Result<Action, Error> {
    let Some(uid) = lease.uid() else {
        return Ok(Action::await_change());
    };
    ctx.refused_issues.forget(&uid);
    ctx.rotation_done(&uid);
    ctx.superseded.forget(&uid);
    // The claims, read live, are the record of what this lease holds (two for a continuous
    // lease mid-rotation); without one there is nothing to end (never issued, or ended before).
    let claims = ctx.live_claims_of(lease).await?;
    for claim in claims.all_oldest_first() {
        end_one(lease, api, ctx, claim).await?;
    }
    Ok(Action::await_change())
}

async fn end_one(
    lease: &EntraLease,
    api: &Api<EntraLease>,
    ctx: &Context,
    claim: &HeldClaim,
) -> Result<(), Error> {
    let now = Timestamp::now();
    let Some(record) = claim.record.clone() else {
        return Err(Error::MalformedClaim(claim.name.clone()));
    };
    let user = &record.user.user_principal_name;
    match end_credential(ctx, claim).await {
        Ok(ended) => {
            let expired = record.expires_at() <= now;
            let reason = if expired {
                Reason::Expired
            } else {
                Reason::Revoked
            };
            let message = messages::revoked(expired, user, &ended);
            ctx.publish(lease, EventType::Normal, reason, "Revoke", message)
                .await;
            Ok(())
        }
        // Waiting its turn in the app's line is no failure: the alert on ending credentials'
        // waits covers a turn that is long in coming.
        Err(error) if error.only_waits_its_turn() => Err(error),
        Err(error) => {
            let message = messages::revocation_failing(user, &error);
            let reason = revocation_reason(&error);
            ctx.publish(lease, EventType::Warning, reason, "Revoke", message.clone())
                .await;
            count_revocation_failure(&error);
            LeaseStatusWriter::new(api, lease, now, ctx)
                .revoking(reason, message)
                .await;
            Err(error)
        }
    }
}

/// `RevocationBlocked` when an administrator must act (the credential is lost), else
/// `RevocationFailing` (retried with backoff).
pub fn revocation_reason(error: &Error) -> Reason {
    match error {
        Error::CredentialLost(_) | Error::MalformedClaim(_) => Reason::RevocationBlocked,
        Error::KubeConflict(_)
        | Error::KubeNotFound(_)
        | Error::KubeForbidden(_)
        | Error::KubeServer(_)
        | Error::Graph(_)
        | Error::ClientSecret(_)
        | Error::Credential { .. }
        | Error::SecretNotOwned(_)
        | Error::Template(_)
        | Error::SecretType(_)
        | Error::PasswordsRejected(_)
        | Error::SignInMethodsRemain(_)
        | Error::SessionsNotRevoked(_)
        | Error::Stale(_)
        | Error::WaitingForLeases(_)
        | Error::Finalizer(_) => Reason::RevocationFailing,
    }
}

pub fn count_revocation_failure(error: &Error) {
    let reason = ReasonLabels {
        reason: error.metric_label().to_owned(),
    };
    metrics().revocation_failures.get_or_create(&reason).inc();
}
