//! The lease finalizer: a deleted lease (by a user, by expiry or with its dynamic secret) keeps
//! its finalizer until the credential its claim records has ended (invariant I3). Should the
//! finalizer be stripped by hand, the reaper ends the credential from the claim instead.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::Error;
use super::claims::HeldClaim;
use super::context::Context;
use super::credential::end_credential;
use super::lease_status::LeaseStatusWriter;
use super::reasons::Reason;
use crate::api::EntraLease;
use crate::metrics::{ReasonLabels, metrics};

pub(super) async fn cleanup(
    lease: &EntraLease,
    api: &Api<EntraLease>,
    ctx: &Context,
) -> Result<Action, Error> {
    let Some(uid) = lease.uid() else {
        return Ok(Action::await_change());
    };
    ctx.refused_issues.forget(&uid);
    ctx.rotation_done(&uid);
    // The claims, read live, are the record of what this lease holds (two for a continuous
    // lease mid-rotation); without one there is nothing to end (never issued, or ended before).
    let claims = ctx.claims.held_by(&uid).await?;
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
    match end_credential(ctx, claim).await {
        Ok(()) => {
            let (reason, why) = if record.expires_at() <= now {
                (Reason::Expired, "the lease expired")
            } else {
                (Reason::Revoked, "the lease was deleted")
            };
            let message = format!(
                "{why}: the password of {} was scrambled and the user released",
                record.user.user_principal_name
            );
            ctx.publish(lease, EventType::Normal, reason, "Revoke", message)
                .await;
            Ok(())
        }
        Err(error) => {
            let message = format!(
                "revoking {} failed, retrying: {error}",
                record.user.user_principal_name
            );
            let reason = revocation_reason(&error);
            ctx.publish(lease, EventType::Warning, reason, "Revoke", message.clone())
                .await;
            count_revocation_failure(&error);
            LeaseStatusWriter::new(api, lease, now)
                .revoking(reason, message)
                .await;
            Err(error)
        }
    }
}

/// `RevocationBlocked` when an administrator must act (the credential is lost), else
/// `RevocationFailing` (retried with backoff).
pub(super) fn revocation_reason(error: &Error) -> Reason {
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
        | Error::Stale(_)
        | Error::WaitingForLeases(_)
        | Error::Finalizer(_) => Reason::RevocationFailing,
    }
}

pub(super) fn count_revocation_failure(error: &Error) {
    let reason = ReasonLabels {
        reason: error.metric_label().to_owned(),
    };
    metrics().revocation_failures.get_or_create(&reason).inc();
}
