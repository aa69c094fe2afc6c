//! A lease's credential in Entra and in its Secret: setting it (Secret first, then Graph) and
//! ending it from the claim's record alone (scramble, revoke sessions, delete the Secret, release
//! the user), so that an ending needs neither the lease nor its pool as they are now.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};

use super::Error;
use super::claim_record::ClaimRecord;
use super::claims::{HeldClaim, is_conflict, is_not_found};
use super::context::{Context, PASSWORD_ATTEMPTS};
use super::status::FIELD_MANAGER;
use crate::api::EntraLease;
use crate::graph::{AppCredentials, GraphError};
use crate::metrics::metrics;
use crate::password::generate_password;
use crate::secret::{
    Credentials, EXPIRES_AT_ANNOTATION, credentials_secret, format_time, is_controlled_by,
    is_owned_by,
};
use crate::sensitive::SecretString;

/// Writes the Secret first, then sets the same password in Entra: a crash in between leaves a
/// Secret whose password the next attempt sets again, never a working password nobody has.
pub(super) async fn set_password_via_secret(
    ctx: &Context,
    lease: &EntraLease,
    app: &AppCredentials,
    record: &ClaimRecord,
    resumed: Option<SecretString>,
) -> Result<(), Error> {
    let length = usize::from(record.password_length);
    let mut password = resumed.unwrap_or_else(|| generate_password(length));
    for attempt in 1..=PASSWORD_ATTEMPTS {
        let credentials = Credentials {
            user_principal_name: &record.user.user_principal_name,
            user_id: &record.user.id,
            tenant_id: &record.app.tenant_id,
            password: &password,
            max_expires_at: record.max_expires_at(),
        };
        let secret = credentials_secret(
            lease,
            &record.secret_name,
            &credentials,
            record.expires_at(),
        )?;
        write_secret(ctx, lease, secret).await?;
        match ctx
            .graph
            .set_password(app, &record.user.id, &password)
            .await
        {
            Ok(()) => return Ok(()),
            Err(GraphError::PasswordRejected { .. }) if attempt < PASSWORD_ATTEMPTS => {
                password = generate_password(length);
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::PasswordsRejected(PASSWORD_ATTEMPTS))
}

/// Creates the lease's Secret, or replaces it when the lease owns it. Never touches a Secret
/// the lease does not own.
async fn write_secret(ctx: &Context, lease: &EntraLease, secret: Secret) -> Result<(), Error> {
    let namespace = lease.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let name = secret.name_any();
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.create(&params, &secret).await {
        Ok(_) => return Ok(()),
        Err(error) if is_conflict(&error) => {}
        Err(error) => return Err(error.into()),
    }
    let existing = api.get(&name).await?;
    if !is_owned_by(&existing, lease) {
        return Err(Error::SecretNotOwned(name));
    }
    let mut replacement = secret;
    replacement.metadata.resource_version = existing.resource_version();
    api.replace(&name, &params, &replacement).await?;
    Ok(())
}

/// Ends the credential `claim` records: scramble the password (a fresh value nobody keeps) with
/// the app identity recorded at issue, revoke sign-in sessions if the pool did at issue, delete
/// the Secret, release the claim. `claim` must have been read from the API server just now: its
/// release carries its resourceVersion, so a stale copy fails instead of releasing.
pub async fn end_credential(ctx: &Context, claim: &HeldClaim) -> Result<(), Error> {
    let Some(record) = claim.record.as_deref() else {
        return Err(Error::MalformedClaim(claim.name.clone()));
    };
    let app = ctx.copies.recorded(ctx, record).await?;
    let length = usize::from(record.password_length);
    let scrambled = ctx
        .graph
        .set_new_password(&app, &record.user.id, length, PASSWORD_ATTEMPTS)
        .await;
    match scrambled {
        Ok(_) | Err(GraphError::UserNotFound { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    if record.revoke_sign_in_sessions {
        match ctx
            .graph
            .revoke_sign_in_sessions(&app, &record.user.id)
            .await
        {
            Ok(()) | Err(GraphError::UserNotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let lease = &record.lease;
    delete_controlled_secret(ctx, &lease.namespace, &record.secret_name, &lease.uid).await?;
    ctx.claims.release(claim).await?;
    metrics().revocations.inc();
    tracing::info!(
        lease = %lease.name,
        namespace = %lease.namespace,
        user = %record.user.user_principal_name,
        pool = %record.pool.name,
        issued_at = %record.issued_at.0,
        expires_at = %record.expires_at.0,
        "credential ended"
    );
    Ok(())
}

/// Deletes the Secret `name` in `namespace` if the lease with `lease_uid` controls it.
pub(super) async fn delete_controlled_secret(
    ctx: &Context,
    namespace: &str,
    name: &str,
    lease_uid: &str,
) -> Result<(), Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(secret) = api.get_opt(name).await? else {
        return Ok(());
    };
    if !is_controlled_by(&secret, lease_uid) {
        return Ok(());
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: secret.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(error) if is_not_found(&error) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Renewals change the Secret's expiry annotation only, never its data.
pub(super) async fn annotate_expiry(
    ctx: &Context,
    record: &ClaimRecord,
    expires_at: Timestamp,
) -> Result<(), Error> {
    let patch = serde_json::json!({
        "metadata": { "annotations": { EXPIRES_AT_ANNOTATION: format_time(expires_at) } }
    });
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &record.lease.namespace);
    match secrets
        .patch(
            &record.secret_name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(error) if is_not_found(&error) => Ok(()),
        Err(error) => Err(error.into()),
    }
}
