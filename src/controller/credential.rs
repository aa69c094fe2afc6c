//! A lease's credential in Entra and in its Secret: setting it (Secret first, then Graph) and
//! ending it (scramble, revoke sessions, delete the Secret, release the user).

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};

use super::Error;
use super::claims::{is_conflict, is_not_found};
use super::context::{Context, PASSWORD_ATTEMPTS};
use super::lease_decision::credentials_secret_name;
use super::status::FIELD_MANAGER;
use crate::api::{EntraDynamicSecret, EntraLease, LeasedUser};
use crate::graph::GraphError;
use crate::metrics::metrics;
use crate::password::generate_password;
use crate::secret::{Credentials, credentials_secret, is_owned_by};
use crate::sensitive::SecretString;

/// Writes the Secret first, then sets the same password in Entra: a crash in between leaves a
/// Secret whose password the next attempt sets again, never a working password nobody has.
pub(super) async fn set_password_via_secret(
    ctx: &Context,
    lease: &EntraLease,
    pool: &EntraDynamicSecret,
    user: &LeasedUser,
    secret_name: &str,
    resumed: Option<SecretString>,
    expires_at: Timestamp,
) -> Result<(), Error> {
    let app = &ctx.app_credentials(pool).await?;
    let mut password =
        resumed.unwrap_or_else(|| generate_password(usize::from(pool.spec.password_length)));
    for attempt in 1..=PASSWORD_ATTEMPTS {
        let credentials = Credentials {
            user_principal_name: &user.user_principal_name,
            user_id: &user.id,
            tenant_id: &pool.spec.tenant_id,
            password: &password,
        };
        let secret = credentials_secret(lease, secret_name, &credentials, expires_at);
        write_secret(ctx, lease, secret).await?;
        match ctx.graph.set_password(app, &user.id, &password).await {
            Ok(()) => return Ok(()),
            Err(GraphError::PasswordRejected { .. }) if attempt < PASSWORD_ATTEMPTS => {
                password = generate_password(usize::from(pool.spec.password_length));
            }
            Err(error) => return Err(error.into()),
        }
    }
    unreachable!("the last attempt returns")
}

/// Creates the lease's Secret, or replaces it when the lease owns it. Never touches a Secret
/// the lease does not own.
async fn write_secret(ctx: &Context, lease: &EntraLease, secret: Secret) -> Result<(), Error> {
    let namespace = lease.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let name = secret.name_any();
    match api
        .create(
            &PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            },
            &secret,
        )
        .await
    {
        Ok(_) => return Ok(()),
        Err(error) if is_conflict(&error) => {}
        Err(error) => return Err(error.into()),
    }
    let existing = api.get(&name).await?;
    if !is_owned_by(&existing, lease) {
        return Err(Error::ClientSecret(format!(
            "Secret {name} is not owned by this lease"
        )));
    }
    let mut replacement = secret;
    replacement.metadata.resource_version = existing.resource_version();
    api.replace(
        &name,
        &PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        },
        &replacement,
    )
    .await?;
    Ok(())
}

/// Ends a lease's credential: scramble the password (a fresh value nobody keeps), revoke sign-in
/// sessions, delete the Secret, release the user. Only a holder of the user's claim scrambles,
/// so a retry after the user went to another lease never touches that lease's password.
/// Returns whether this call scrambled the password (false when an earlier one already had).
pub async fn end_credential(
    lease: &EntraLease,
    ctx: &Context,
    pool: &EntraDynamicSecret,
    user: &LeasedUser,
) -> Result<bool, Error> {
    let holds = ctx.claims.holds(&user.id, lease).await?;
    if holds {
        let app = ctx.app_credentials(pool).await?;
        let scrambled = ctx
            .graph
            .set_new_password(
                &app,
                &user.id,
                usize::from(pool.spec.password_length),
                PASSWORD_ATTEMPTS,
            )
            .await;
        match scrambled {
            Ok(_) | Err(GraphError::UserNotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        if pool.spec.revoke_sign_in_sessions {
            match ctx.graph.revoke_sign_in_sessions(&app, &user.id).await {
                Ok(()) | Err(GraphError::UserNotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
    }
    let name = credentials_secret_name(lease, Some(pool));
    delete_owned_secret(ctx, lease, &name).await?;
    ctx.claims.release(&user.id, lease).await?;
    if holds {
        metrics().revocations.inc();
    }
    Ok(holds)
}

pub(super) async fn delete_owned_secret(
    ctx: &Context,
    lease: &EntraLease,
    name: &str,
) -> Result<(), Error> {
    let namespace = lease.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let Some(secret) = api.get_opt(name).await? else {
        return Ok(());
    };
    if !is_owned_by(&secret, lease) {
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
