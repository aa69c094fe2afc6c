//! The lease finalizer: a deleted lease (by a user, by expiry or with its dynamic secret) keeps
//! its finalizer until its credential has ended (invariant I3).

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

use super::Error;
use super::context::Context;
use super::credential::end_credential;
use super::lease::Shell;
use super::reasons::Reason;
use super::status::apply_status;
use crate::api::{EntraLease, LeasePhase};
use crate::metrics::{ReasonLabels, metrics};

/// The finalizer: the lease is deleted (by a user, by expiry or with its dynamic secret). Its
/// finalizer stays until the credential is ended (invariant I3); failures retry with backoff.
pub(super) async fn cleanup(
    lease: &EntraLease,
    api: &Api<EntraLease>,
    ctx: &Context,
) -> Result<Action, Error> {
    if let Some(uid) = lease.uid() {
        ctx.issue_retry_at.lock().unwrap().remove(&uid);
    }
    let user = match lease.status.as_ref().and_then(|s| s.user.clone()) {
        Some(user) => Some(user),
        // Deleted before it became active: it may hold a claim, and even a set password.
        None => ctx.claims.held_by(lease).await?,
    };
    let Some(user) = user else {
        return Ok(Action::await_change());
    };
    // A released claim means an earlier run already ended the credential (this reconcile may
    // see a cached copy of a lease whose finalizer is already gone).
    if !ctx.claims.holds(&user.id, lease).await? {
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    let shell = Shell {
        lease,
        api,
        ctx,
        now,
    };
    // A revocation normally takes one Graph call: its status is written only when it fails.
    let mut status = shell.status();
    let outcome = match ctx.pool_of(lease) {
        Some(pool) => end_credential(lease, ctx, &pool, &user).await,
        None => Err(Error::RevocationBlocked(format!(
            "EntraDynamicSecret {} is gone, so the password of {} cannot be scrambled; restore it",
            lease.spec.dynamic_secret_ref.name, user.user_principal_name
        ))),
    };
    match outcome {
        Ok(true) => {
            tracing::info!(lease = %lease.name_any(), user = %user.user_principal_name, "revoked");
            let (reason, why) = if expired(lease, now) {
                (Reason::Expired, "the lease expired")
            } else {
                (Reason::Revoked, "the lease was deleted")
            };
            let message = format!(
                "{why}: the password of {} was scrambled and the user released",
                user.user_principal_name
            );
            ctx.publish(lease, EventType::Normal, reason.as_str(), "Revoke", message)
                .await;
            Ok(Action::await_change())
        }
        Ok(false) => Ok(Action::await_change()),
        Err(error) => {
            let message = format!(
                "revoking {} failed, retrying: {error}",
                user.user_principal_name
            );
            ctx.publish(
                lease,
                EventType::Warning,
                Reason::RevocationFailing.as_str(),
                "Revoke",
                message.clone(),
            )
            .await;
            let reason = ReasonLabels {
                reason: error.metric_label().to_owned(),
            };
            metrics().revocation_failures.get_or_create(&reason).inc();
            let failing = Reason::RevocationFailing.as_str();
            status.phase = Some(LeasePhase::Revoking);
            shell.condition(&mut status, false, failing, message);
            let _ = apply_status(api, lease, lease.status.as_ref(), &status).await;
            Err(error)
        }
    }
}

fn expired(lease: &EntraLease, now: Timestamp) -> bool {
    lease
        .status
        .as_ref()
        .and_then(|s| s.expires_at.as_ref())
        .is_some_and(|expires_at| expires_at.0 <= now)
}
