//! A lease's credential in Entra and in its Secret: setting it (Secret first, then Graph) and
//! ending it from the claim's record alone (scramble, disable the account, revoke sessions,
//! delete added sign-in methods, delete the Secret, release the user), so that an ending needs
//! neither the lease nor its pool as they are now.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::EventType;

use super::Error;
use super::claim_record::{AccessPassRecord, ClaimRecord};
use super::claims::{HeldClaim, is_conflict, is_not_found};
pub use super::context::Ended;
use super::context::{Context, EndStep, PASSWORD_ATTEMPTS};
use super::reasons::Reason;
use super::sign_in_methods::remove_methods_added;
use super::status::{FIELD_MANAGER, whole_seconds};
use crate::api::EntraLease;
use crate::graph::{AppCredentials, Class, GraphClient, GraphError, Purpose, SignInMethod};
use crate::metrics::metrics;
use crate::password::generate_password;
use crate::secret::{
    Credentials, EXPIRES_AT_ANNOTATION, Held, OtherCredentials, credentials_secret, format_time,
    held_as, is_controlled_by, is_owned_by, secret_generation, without,
};
use crate::sensitive::SecretString;

/// A continuous lease's previous credential, kept in the Secret beside the one being set.
pub(super) struct KeptCredential<'a> {
    pub record: &'a ClaimRecord,
    pub password: &'a SecretString,
}

/// Writes the Secret first, then sets the same password in Entra: a crash in between leaves a
/// Secret whose password the next attempt sets again, never a working password nobody has.
pub(super) async fn set_password_via_secret(
    ctx: &Context,
    lease: &EntraLease,
    app: &AppCredentials,
    record: &ClaimRecord,
    resumed: Option<SecretString>,
    previous: Option<&KeptCredential<'_>>,
    class: Class,
) -> Result<(), Error> {
    let length = usize::from(record.password_length);
    // Parked in the app's line under the lease, so that its next reconcile finds its turn.
    let graph = ctx.graph.for_purpose(Purpose::new(
        class,
        &record.lease.namespace,
        &record.lease.uid,
    ));
    let mut password = resumed.unwrap_or_else(|| generate_password(length));
    for attempt in 1..=PASSWORD_ATTEMPTS {
        match previous {
            // A rotation: the next credential waits under the pending keys while consumers keep
            // reading the current one, which works.
            Some(current) => {
                let next = OtherCredentials {
                    user_principal_name: &record.user.user_principal_name,
                    password: &password,
                };
                let beside = Secrets::Pending(next);
                write_credentials(ctx, lease, current.record, current.password, beside).await?;
            }
            None => write_credentials(ctx, lease, record, &password, Secrets::Alone).await?,
        }
        match graph.set_password(app, &record.user.id, &password).await {
            // Entra took it: it becomes the current credential, the old one the previous.
            Ok(()) => {
                if let Some(kept) = previous {
                    let old = OtherCredentials {
                        user_principal_name: &kept.record.user.user_principal_name,
                        password: kept.password,
                    };
                    write_credentials(ctx, lease, record, &password, Secrets::Previous(old))
                        .await?;
                }
                return Ok(());
            }
            Err(GraphError::PasswordRejected { .. }) if attempt < PASSWORD_ATTEMPTS => {
                password = generate_password(length);
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(Error::PasswordsRejected(PASSWORD_ATTEMPTS))
}

/// Has Entra create the Temporary Access Pass `asked` for the user of `record`, then writes it to the
/// lease's Secret. Entra makes the pass, so it exists before the Secret holds it: a crash in
/// between leaves a pass nobody was given, which the next attempt replaces (a user has one pass)
/// and every end deletes (it is not among the methods at issue). Answers the record with the
/// pass's id, and Entra's end of it as the credential's.
pub(super) async fn create_pass_into_secret(
    ctx: &Context,
    lease: &EntraLease,
    app: &AppCredentials,
    record: &ClaimRecord,
    asked: &AccessPassRecord,
    class: Class,
) -> Result<ClaimRecord, Error> {
    let graph = ctx.graph.for_purpose(Purpose::new(
        class,
        &record.lease.namespace,
        &record.lease.uid,
    ));
    let pass = graph
        .create_access_pass(
            app,
            &record.user.id,
            asked.lifetime_in_minutes,
            asked.usable_once,
        )
        .await?;
    let mut created = record.clone();
    let ends_at = Time(whole_seconds(pass.ends_at()));
    created.expires_at = ends_at.clone();
    created.max_expires_at = ends_at;
    created.access_pass = Some(AccessPassRecord {
        id: Some(pass.id.clone()),
        ..asked.clone()
    });
    write_credentials(ctx, lease, &created, &pass.code, Secrets::Alone).await?;
    Ok(created)
}

/// What a lease's Secret holds beside its current credential.
pub(super) enum Secrets<'a> {
    Alone,
    /// A continuous lease's previous credential, still valid.
    Previous(OtherCredentials<'a>),
    /// A rotation's next credential, not yet taken by Entra.
    Pending(OtherCredentials<'a>),
}

/// Writes the lease's Secret with the credential `record` describes, and what goes beside it.
pub(super) async fn write_credentials(
    ctx: &Context,
    lease: &EntraLease,
    record: &ClaimRecord,
    password: &SecretString,
    beside: Secrets<'_>,
) -> Result<(), Error> {
    let (previous, pending) = match beside {
        Secrets::Alone => (None, None),
        Secrets::Previous(previous) => (Some(previous), None),
        Secrets::Pending(pending) => (None, Some(pending)),
    };
    let credentials = Credentials {
        user_principal_name: &record.user.user_principal_name,
        user_id: &record.user.id,
        tenant_id: &record.app.tenant_id,
        password,
        access_pass: record.access_pass.is_some(),
        max_expires_at: record.max_expires_at(),
        generation: record.generation,
        previous,
        pending,
    };
    let secret = credentials_secret(
        lease,
        &record.secret_name,
        &credentials,
        record.expires_at(),
    )?;
    write_secret(ctx, lease, secret).await
}

/// Creates the lease's Secret, or replaces it when the lease owns it. Never touches a Secret
/// the lease does not own, and never writes one of a type the administrator did not allow
/// (whatever the CRDs in the cluster let through).
async fn write_secret(ctx: &Context, lease: &EntraLease, secret: Secret) -> Result<(), Error> {
    ctx.lease_secret_types.check(secret.type_.as_deref())?;
    let namespace = lease.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let name = secret.name_any();
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.create(&params, &secret).await {
        Ok(written) => {
            ctx.remember_written(&written);
            return Ok(());
        }
        Err(error) if is_conflict(&error) => {}
        Err(error) => return Err(error.into()),
    }
    let existing = api.get(&name).await?;
    if !is_owned_by(&existing, lease) {
        ctx.remember_not_owned(&namespace, &name);
        return Err(Error::SecretNotOwned(name));
    }
    let mut replacement = secret;
    replacement.metadata.resource_version = existing.resource_version();
    let written = api.replace(&name, &params, &replacement).await?;
    ctx.remember_written(&written);
    Ok(())
}

/// Entra's clock and ours may differ this much when checking that a revocation moved the
/// user's sessions' start.
const CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// Makes the password of the user of `claim` (whose record is `record`) one nobody knows (a
/// fresh value that is never kept), with the app identity recorded at issue; revokes its sign-in
/// sessions if the pool did at issue, and checks that they moved; deletes the sign-in methods
/// registered since the issue (I9). A user that no longer exists has nothing left to end. Every
/// ending of a credential goes through here, in the ending class: a credential's end, and a
/// restore that must wait.
pub async fn scramble_credential(
    ctx: &Context,
    claim: &HeldClaim,
    record: &ClaimRecord,
) -> Result<Ended, Error> {
    end_in_entra(ctx, claim, record, false).await
}

/// [`scramble_credential`], disabling the account right after the scramble when `disable`: the
/// one step that closes every path at once comes before those that may keep failing.
async fn end_in_entra(
    ctx: &Context,
    claim: &HeldClaim,
    record: &ClaimRecord,
    disable: bool,
) -> Result<Ended, Error> {
    let (app, graph) = ending_client(ctx, claim, record).await?;
    let length = usize::from(record.password_length);
    let progress = &ctx.end_progress;
    let user_id = &record.user.id;
    let mut ended = progress.ended_so_far(claim);
    if !progress.has_done(claim, EndStep::Scrambled) {
        let scrambled = graph
            .set_new_password(&app, user_id, length, PASSWORD_ATTEMPTS)
            .await;
        match scrambled {
            Ok(_) | Err(GraphError::UserNotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        progress.done(claim, EndStep::Scrambled, &ended);
    }
    if disable && !progress.has_done(claim, EndStep::Disabled) {
        disable_account(ctx, claim, &graph, &app, record).await?;
        progress.done(claim, EndStep::Disabled, &ended);
    }
    if record.revoke_sign_in_sessions && !progress.has_done(claim, EndStep::SessionsRevoked) {
        let asked = Timestamp::now();
        match graph.revoke_sign_in_sessions(&app, user_id).await {
            Ok(()) => {
                ended.sessions_valid_from = sessions_moved(&graph, &app, record, asked).await?
            }
            Err(GraphError::UserNotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        progress.done(claim, EndStep::SessionsRevoked, &ended);
    }
    if !progress.has_done(claim, EndStep::MethodsRemoved) {
        let upn = &record.user.user_principal_name;
        let pass = record
            .access_pass
            .as_ref()
            .and_then(|pass| pass.id.as_deref());
        match (&record.methods_at_issue, pass) {
            // The pass is among the methods added during the lease.
            (Some(kept), _) => {
                ended.methods_removed =
                    remove_methods_added(&graph, &app, user_id, upn, kept).await?;
            }
            (None, Some(pass)) => {
                let pass = SignInMethod::access_pass(pass);
                match graph.delete_sign_in_method(&app, user_id, &pass).await {
                    Ok(()) | Err(GraphError::UserNotFound { .. }) => ended.methods_removed = 1,
                    Err(error) => return Err(error.into()),
                }
            }
            (None, None) => {}
        }
        progress.done(claim, EndStep::MethodsRemoved, &ended);
    }
    Ok(ended)
}

/// Ends the credential `claim` records in Entra (the steps `end_credential` starts with) and
/// leaves the Secret and the claim to a later `end_credential`, which finds these steps done.
pub async fn end_in_entra_now(ctx: &Context, claim: &HeldClaim) -> Result<(), Error> {
    let Some(record) = claim.record.as_deref() else {
        return Err(Error::MalformedClaim(claim.name.clone()));
    };
    end_in_entra(ctx, claim, record, record.disable_when_idle)
        .await
        .map(drop)
}

/// The recorded app's credentials, and the client whose requests go first in its line (parked
/// under the claim when they wait).
async fn ending_client(
    ctx: &Context,
    claim: &HeldClaim,
    record: &ClaimRecord,
) -> Result<(AppCredentials, GraphClient), Error> {
    let app = ctx
        .copies
        .recorded(&ctx.graph, &ctx.endpoints, record)
        .await?;
    let holder = format!("end/{}", claim.name);
    let graph = ctx
        .graph
        .for_purpose(Purpose::new(Class::End, &record.lease.namespace, holder));
    Ok((app, graph))
}

/// The user's sessions' start after a revocation asked for at `asked`: a start from before it
/// means the revocation did not take, and the end is retried.
async fn sessions_moved(
    graph: &GraphClient,
    app: &AppCredentials,
    record: &ClaimRecord,
    asked: Timestamp,
) -> Result<Option<Timestamp>, Error> {
    match graph.sessions_valid_from(app, &record.user.id).await {
        Ok(Some(valid_from)) if valid_from >= asked - CLOCK_SKEW => Ok(Some(valid_from)),
        Ok(_) => Err(Error::SessionsNotRevoked(
            record.user.user_principal_name.clone(),
        )),
        Err(GraphError::UserNotFound { .. }) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Ends the credential `claim` records: scramble the password (a fresh value nobody keeps) with
/// the app identity recorded at issue, disable the account if the pool did so at issue, revoke
/// sign-in sessions if it did, delete the methods added during the lease, delete the Secret,
/// release the claim. `claim` must have been read from the API server just now: its
/// release carries its resourceVersion, so a stale copy fails instead of releasing.
pub async fn end_credential(ctx: &Context, claim: &HeldClaim) -> Result<Ended, Error> {
    let Some(record) = claim.record.as_deref() else {
        return Err(Error::MalformedClaim(claim.name.clone()));
    };
    let ended = end_in_entra(ctx, claim, record, record.disable_when_idle).await?;
    // Only credentials that ended by running out count: a deletion before expiry has no lag.
    let late = Timestamp::now().duration_since(record.expires_at());
    if !late.is_negative() {
        metrics().revocation_lag.observe(late.as_secs_f64());
    }
    let lease = &record.lease;
    // The password no longer works: the user goes back to the pool even when the Secret cannot
    // be touched (the namespace's admin took the operator's rights there, say). A refusal would
    // otherwise hold the user for ever; the Secret left behind is reported instead.
    if let Err(error) = remove_from_secret(ctx, record).await {
        report_left_behind(ctx, claim, record, &error).await;
    }
    ctx.claims.release(claim).await?;
    ctx.end_progress.forget(&claim.name);
    metrics().revocations.inc();
    tracing::info!(
        lease = %lease.name,
        namespace = %lease.namespace,
        user = %record.user.user_principal_name,
        pool = %record.pool.name,
        issued_at = %record.issued_at.0,
        expires_at = %record.expires_at.0,
        methods_removed = ended.methods_removed,
        "credential ended"
    );
    Ok(ended)
}

/// Disables the account after its credential's end. An app that may not disable accounts does
/// not hold the end up (the password is scrambled): the account stays enabled, with a warning.
async fn disable_account(
    ctx: &Context,
    claim: &HeldClaim,
    graph: &GraphClient,
    app: &AppCredentials,
    record: &ClaimRecord,
) -> Result<(), Error> {
    let error = match ctx.idle_accounts.disable(graph, app, &record.user.id).await {
        Err(Error::Graph(error @ GraphError::MissingPermission { .. })) => error,
        other => return other,
    };
    let user = &record.user.user_principal_name;
    tracing::warn!(%user, pool = %record.pool.name, %error, "could not disable an idle account");
    let note = format!(
        "the password of {user} was scrambled, but its account could not be disabled \
         (disableIdleUsers): {error}. Grant the app User.EnableDisableAccount.All"
    );
    let regarding = claim.reference(ctx.claims.namespace());
    ctx.publish_about(
        regarding,
        EventType::Warning,
        Reason::MissingPermission,
        "Revoke",
        note,
    )
    .await;
    Ok(())
}

/// An event on the claim (in the operator's namespace, where its administrators look: the
/// lease's namespace may refuse the operator), a warning and a metric.
async fn report_left_behind(ctx: &Context, claim: &HeldClaim, record: &ClaimRecord, error: &Error) {
    let lease = &record.lease;
    metrics().secrets_left_behind.inc();
    tracing::warn!(
        lease = %lease.name,
        namespace = %lease.namespace,
        secret = %record.secret_name,
        %error,
        "the credential ended, but its Secret could not be deleted or emptied"
    );
    let note = format!(
        "the password of {} was scrambled, but Secret {}/{} (lease {}) could not be deleted or \
         emptied: {error}. The password in it no longer works; delete the Secret",
        record.user.user_principal_name, lease.namespace, record.secret_name, lease.name
    );
    let regarding = claim.reference(ctx.claims.namespace());
    ctx.publish_about(
        regarding,
        EventType::Warning,
        Reason::SecretLeftBehind,
        "Revoke",
        note,
    )
    .await;
}

/// Takes the ended credential of `record` out of its lease's Secret: a continuous lease's
/// previous (or pending) credential leaves its keys, the current one takes the Secret with it. A
/// Secret written for a later credential of the lease is left to that one.
async fn remove_from_secret(ctx: &Context, record: &ClaimRecord) -> Result<(), Error> {
    let lease = &record.lease;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &lease.namespace);
    let Some(secret) = api.get_opt(&record.secret_name).await? else {
        return Ok(());
    };
    if !is_controlled_by(&secret, &lease.uid) {
        return Ok(());
    }
    if let Some(held @ (Held::Previous | Held::Pending)) =
        held_as(&secret, &record.user.user_principal_name)
    {
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        return match api
            .replace(&record.secret_name, &params, &without(&secret, held))
            .await
        {
            Ok(written) => {
                ctx.remember_written(&written);
                Ok(())
            }
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(Error::stale_on_conflict("the lease's Secret")(error)),
        };
    }
    // A Secret written for a later credential of the lease is that credential's.
    if secret_generation(&secret).is_some_and(|written| written > record.generation) {
        return Ok(());
    }
    delete_controlled_secret(ctx, &lease.namespace, &record.secret_name, &lease.uid).await
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
        ctx.remember_deleted(namespace, name, None);
        return Ok(());
    };
    if !is_controlled_by(&secret, lease_uid) {
        ctx.remember_not_owned(namespace, name);
        return Ok(());
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: secret.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let gone = match api.delete(name, &params).await {
        // A Secret with finalizers is still there (being deleted) until they are done.
        Ok(deleted) => deleted.is_right(),
        Err(error) if is_not_found(&error) => true,
        Err(error) => return Err(error.into()),
    };
    if gone {
        ctx.remember_deleted(namespace, name, secret.uid().as_deref());
    }
    Ok(())
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
        Ok(written) => {
            ctx.remember_written(&written);
            Ok(())
        }
        Err(error) if is_not_found(&error) => Ok(()),
        Err(error) => Err(error.into()),
    }
}
