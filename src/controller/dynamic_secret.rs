//! The pool reconciler, for both kinds: checks the app's credentials, resolves every pool user
//! once, publishes the pool's state, and ends all of its leases before it goes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};

use super::Error;
use super::app_credential::app_credentials;
use super::claims::{HeldClaim, is_conflict, is_not_found};
use super::context::Progress;
use super::context::{Context, FORBIDDEN_FOR, FORBIDDEN_PROBLEM};
use super::credential::end_credential;
use super::pool::Pool;
use super::pool_sign_in::{MethodsManaged, check_methods, leasable_when_disabled_here};
use super::reasons::Reason;
use super::status::set_condition;
use crate::api::{
    ClusterEntraDynamicSecret, DynamicSecretStatus, EntraDynamicSecret, EntraLease, PoolUser,
};
use crate::graph::{Class, GraphError, Purpose};

/// Held by every dynamic secret until all of its leases have ended.
pub const FINALIZER: &str = "kms.hanzo.ai/end-leases";

/// The holders and counts in a pool's status are rewritten at most this often.
const HOLDERS_EVERY: Duration = Duration::from_secs(2);
/// Pool users are resolved again at this interval, to notice changes made in Entra (a user
/// disabled or deleted). Hourly keeps a large pool from costing Graph reads all day.
pub const REVALIDATE_EVERY: Duration = Duration::from_secs(3600);

pub async fn reconcile(pool: Arc<EntraDynamicSecret>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = pool.namespace().unwrap_or_default();
    let api: Api<EntraDynamicSecret> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, pool, |event| async {
        match event {
            Finalizer::Apply(pool) => validate(&Pool::Namespaced(pool), &ctx).await,
            Finalizer::Cleanup(pool) => end_leases(&Pool::Namespaced(pool), &ctx).await,
        }
    })
    .await
    .or_else(super::lease::gone_is_done)
}

pub async fn reconcile_cluster(
    pool: Arc<ClusterEntraDynamicSecret>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let api: Api<ClusterEntraDynamicSecret> = Api::all(ctx.client.clone());
    finalizer(&api, FINALIZER, pool, |event| async {
        match event {
            Finalizer::Apply(pool) => validate(&Pool::Cluster(pool), &ctx).await,
            Finalizer::Cleanup(pool) => end_leases(&Pool::Cluster(pool), &ctx).await,
        }
    })
    .await
    .or_else(super::lease::gone_is_done)
}

async fn validate(pool: &Pool, ctx: &Context) -> Result<Action, Error> {
    if let Some(wait) = written_a_moment_ago(pool, ctx) {
        return Ok(Action::requeue(wait));
    }
    let now = Timestamp::now();
    let current = pool.status().cloned().unwrap_or_default();
    let generation = pool.metadata().generation;
    let resolved = match resolve_users(pool, ctx).await {
        Ok(resolved) => resolved,
        Err(Failure {
            retry_in: Some(wait),
            ..
        }) => return Ok(Action::requeue(wait)),
        Err(Failure {
            reason, message, ..
        }) => {
            let mut status = current.clone();
            status.observed_generation = generation;
            status.users = pool
                .spec()
                .users
                .iter()
                .map(|u| PoolUser {
                    configured: u.clone(),
                    ..PoolUser::default()
                })
                .collect();
            status.available = 0;
            status.leased = 0;
            set_condition(
                &mut status.conditions,
                "Ready",
                false,
                reason,
                message.clone(),
                generation,
                now,
            );
            status.conditions.retain(|c| c.type_ != "Degraded");
            if !has_reason(&current, reason) {
                ctx.publish_about(
                    pool.object_ref(),
                    EventType::Warning,
                    reason,
                    "Validate",
                    event_note(pool, message),
                )
                .await;
            }
            pool.write_status(&ctx.client, &status)
                .await
                .map_err(Error::stale_on_conflict("the pool"))?;
            // The fix (a Secret, a grant in Entra) may come without a change here: look again soon.
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
    };
    let (mut status, ready) = pool_status(pool, ctx, resolved.users, &current, now);
    status.credential_expires_at = resolved.credential_expires_at.map(Time);
    if let Some(methods) = resolved.methods {
        set_condition(
            &mut status.conditions,
            SIGN_IN_METHODS_MANAGED,
            methods.managed,
            methods.reason,
            methods.message,
            generation,
            now,
        );
    }
    tell_other_methods(pool, ctx, &current, &status).await;
    if !has_reason(&current, ready.reason) {
        let type_ = if ready.ready {
            EventType::Normal
        } else {
            EventType::Warning
        };
        ctx.publish_about(
            pool.object_ref(),
            type_,
            ready.reason,
            "Validate",
            event_note(pool, ready.message),
        )
        .await;
    }
    if let Some(wait) = holders_update_wait(pool, ctx, &current, &status) {
        return Ok(Action::requeue(wait));
    }
    pool.write_status(&ctx.client, &status)
        .await
        .map_err(Error::stale_on_conflict("the pool"))?;
    ctx.status_writes.written(pool.key());
    let set_aside = status
        .users
        .iter()
        .any(|u| u.problem.as_deref() == Some(FORBIDDEN_PROBLEM));
    Ok(Action::requeue(if set_aside {
        FORBIDDEN_FOR.min(REVALIDATE_EVERY)
    } else {
        REVALIDATE_EVERY
    }))
}

/// The condition type saying whether a pool's leases end the sign-in methods added during them.
pub const SIGN_IN_METHODS_MANAGED: &str = "SignInMethodsManaged";

/// A warning naming the idle users that carry sign-in methods besides the password (never the
/// methods themselves), when that list changed: a way in no scramble closes.
async fn tell_other_methods(
    pool: &Pool,
    ctx: &Context,
    current: &DynamicSecretStatus,
    status: &DynamicSecretStatus,
) {
    let carrying = |status: &DynamicSecretStatus| -> Vec<String> {
        status
            .users
            .iter()
            .filter(|user| user.other_sign_in_methods.is_some())
            .map(|user| user.configured.clone())
            .collect()
    };
    let now_carrying = carrying(status);
    if now_carrying.is_empty() || now_carrying == carrying(current) {
        return;
    }
    let message = format!(
        "pool users carry sign-in methods besides the password, which outlive any lease and          that no scramble closes: {} (see users[].otherSignInMethods; remove them in Entra if          they are nobody's)",
        now_carrying.join(", ")
    );
    ctx.publish_about(
        pool.object_ref(),
        EventType::Warning,
        Reason::OtherSignInMethods,
        "Validate",
        event_note(pool, message),
    )
    .await;
}

/// The note of an event about `pool`. A cluster pool's events are recorded in the `default`
/// namespace, where its users' names and where its credential is kept are nobody's business:
/// they stay in its status, which only those who may read cluster pools see.
fn event_note(pool: &Pool, message: String) -> String {
    match pool {
        Pool::Namespaced(_) => message,
        Pool::Cluster(_) => format!("see the status of {pool}"),
    }
}

/// How long a pool whose status this process wrote less than [`HOLDERS_EVERY`] ago, for its
/// current generation, waits before it is judged again. Every claim of its leases coming and going
/// wakes it, and judging it builds its whole status: a burst of issues then costs one judgement
/// per pool every [`HOLDERS_EVERY`], not one per claim event. A change of its credential or of
/// Entra's refusals shows that much later; a change of its spec (a new generation) does not wait.
fn written_a_moment_ago(pool: &Pool, ctx: &Context) -> Option<Duration> {
    let observed = pool.status().and_then(|status| status.observed_generation);
    if observed != pool.metadata().generation {
        return None;
    }
    let since_written = ctx.status_writes.since_last(&pool.key())?;
    HOLDERS_EVERY.checked_sub(since_written)
}

/// How long a change of only the holders and counts waits, when the status was written less than
/// [`HOLDERS_EVERY`] ago: a burst of issues then costs a few status writes per pool, not one each.
fn holders_update_wait(
    pool: &Pool,
    ctx: &Context,
    current: &DynamicSecretStatus,
    status: &DynamicSecretStatus,
) -> Option<Duration> {
    if status == current || without_holders(status) != without_holders(current) {
        return None;
    }
    let since_written = ctx.status_writes.since_last(&pool.key())?;
    HOLDERS_EVERY.checked_sub(since_written)
}

fn without_holders(status: &DynamicSecretStatus) -> DynamicSecretStatus {
    let mut status = status.clone();
    status.available = 0;
    status.leased = 0;
    for user in &mut status.users {
        user.leased_by = None;
    }
    status
}

/// The Ready condition a pool's status shows, for its event too.
struct ReadyCondition {
    ready: bool,
    reason: Reason,
    message: String,
}

struct Failure {
    reason: Reason,
    message: String,
    /// The validation waits its turn in the app's Graph line: look again then, status as it is.
    retry_in: Option<Duration>,
}

/// A pool's users as resolved, and when its app credential stops working (if known).
struct Resolved {
    users: Vec<PoolUser>,
    credential_expires_at: Option<Timestamp>,
    /// Whether added sign-in methods are removed, when it was just checked (`None` when the
    /// resolution was reused: the condition stays as it is).
    methods: Option<MethodsManaged>,
}

/// Resolves each configured user through Graph once, then reuses the resolution in the status
/// while the spec and the credential are unchanged and it is younger than [`REVALIDATE_EVERY`]:
/// a lease coming or going costs no Graph call here.
async fn resolve_users(pool: &Pool, ctx: &Context) -> Result<Resolved, Failure> {
    let spec = pool.spec();
    if let Some(problem) = pool.selector_problem() {
        return Err(Failure {
            reason: Reason::InvalidNamespaceSelector,
            message: format!(
                "{pool} serves no namespace: its namespaceSelector is invalid: {problem}"
            ),
            retry_in: None,
        });
    }
    if !ctx.allowed_clouds.contains(&spec.cloud) {
        return Err(Failure {
            reason: Reason::CloudNotAllowed,
            message: format!(
                "this operator issues only in {:?} (its --allowed-clouds flag); {pool} names {:?}",
                ctx.allowed_clouds, spec.cloud
            ),
            retry_in: None,
        });
    }
    if let Some(problem) = super::access_pass::pool_problem(spec) {
        return Err(Failure {
            reason: Reason::AccessPassMisconfigured,
            message: format!("{pool} cannot issue Temporary Access Passes: {problem}"),
            retry_in: None,
        });
    }
    let credential = app_credentials(ctx, pool).await.map_err(|error| Failure {
        reason: match &error {
            Error::KubeConflict(_)
            | Error::KubeNotFound(_)
            | Error::KubeForbidden(_)
            | Error::KubeServer(_) => Reason::ClientSecretUnreadable,
            other => other.reason(),
        },
        message: error.to_string(),
        retry_in: None,
    })?;
    let graph_failure = |error: GraphError| Failure {
        reason: Reason::of_graph(&error),
        message: error.to_string(),
        retry_in: error.queued_for(),
    };
    let key = pool.key();
    if let Some(users) = ctx
        .validations
        .reusable(pool, &credential.version, REVALIDATE_EVERY)
    {
        return Ok(Resolved {
            users,
            credential_expires_at: credential.expires_at,
            methods: None,
        });
    }
    let app = &credential.app;
    ctx.graph
        .check_credentials(app)
        .await
        .map_err(graph_failure)?;
    // The credential just got a token for this tenant and app: revocations of claims issued
    // with an older one (a rotated secret) use this one from now on.
    ctx.copies
        .keep(spec.cloud, &credential)
        .await
        .map_err(|error| Failure {
            reason: Reason::ClientSecretUnreadable,
            message: error.to_string(),
            retry_in: None,
        })?;
    // Validation reads go last in the app's line, parked under the pool when they wait.
    let graph = ctx.graph.for_purpose(Purpose::new(
        Class::Validate,
        key.namespace.clone().unwrap_or_default(),
        format!("validate/{key}"),
    ));
    // An attempt that waited its turn goes on where the last one stopped.
    let version = &credential.version;
    let mut progress = ctx.validations.progress(pool, version, REVALIDATE_EVERY);
    let stopped = |progress: Progress, error: GraphError| {
        ctx.validations
            .keep_progress(pool, version, REVALIDATE_EVERY, progress);
        graph_failure(error)
    };
    for configured in spec.users.iter().skip(progress.looked_up.len()) {
        let mut user = PoolUser {
            configured: configured.clone(),
            ..PoolUser::default()
        };
        match graph.get_user(app, configured).await {
            Ok(found) => {
                user.problem = found
                    .not_leasable()
                    .map(|reason| reason.as_str().to_owned());
                user.id = Some(found.id);
                user.user_principal_name = Some(found.user_principal_name);
                user.display_name = found.display_name;
            }
            Err(GraphError::UserNotFound { .. }) => user.problem = Some("NotFound".into()),
            Err(error) => return Err(stopped(progress, error)),
        }
        progress.looked_up.push(user);
    }
    // Applied to what is kept, so that an attempt going on after a wait does not take a user
    // the operator enabled meanwhile for disabled again.
    if let Err(error) =
        leasable_when_disabled_here(ctx, &graph, app, spec, &mut progress.looked_up).await
    {
        return Err(match error {
            Error::Graph(error) => stopped(progress, error),
            other => Failure {
                reason: other.reason(),
                message: other.to_string(),
                retry_in: None,
            },
        });
    }
    let mut users = progress.looked_up.clone();
    let mut seen = HashMap::new();
    for user in &mut users {
        if let Some(id) = &user.id
            && let Some(first) = seen.insert(id.to_ascii_lowercase(), user.configured.clone())
        {
            user.problem = Some(format!("DuplicateOf:{first}"));
        }
    }
    let protection = &mut progress.protection;
    if let Err(error) =
        super::protected_users::mark_protected(&graph, app, &mut users, protection).await
    {
        return Err(stopped(progress, error));
    }
    let methods =
        match check_methods(ctx, &graph, app, spec, &mut users, &mut progress.methods).await {
            Ok(methods) => methods,
            Err(error) => return Err(stopped(progress, error)),
        };
    // A pass lets its holder register methods: a pass pool whose app cannot remove them at the
    // lease's end does not issue.
    if super::access_pass::issues_passes(spec) && !methods.managed {
        return Err(Failure {
            reason: methods.reason,
            message: format!(
                "{pool} cannot issue Temporary Access Passes: {}",
                methods.message
            ),
            retry_in: None,
        });
    }
    ctx.validations
        .record(pool, credential.version.clone(), users.clone());
    // Leases draw their candidates from this resolution only: those that waited for it go on.
    let _ = ctx.resolved_pools.unbounded_send(key);
    Ok(Resolved {
        users,
        credential_expires_at: credential.expires_at,
        methods: Some(methods),
    })
}

fn pool_status(
    pool: &Pool,
    ctx: &Context,
    mut users: Vec<PoolUser>,
    current: &DynamicSecretStatus,
    now: Timestamp,
) -> (DynamicSecretStatus, ReadyCondition) {
    let namespace = pool.metadata().namespace.clone();
    ctx.mark_forbidden(&pool.key(), &mut users);
    for user in &mut users {
        user.leased_by = user
            .id
            .as_deref()
            .and_then(|id| ctx.cached_claim(id))
            .and_then(|claim| holder_shown(&claim, namespace.as_deref()));
    }
    let leasable = users.iter().filter(|u| u.problem.is_none()).count();
    let leased = users
        .iter()
        .filter(|u| u.problem.is_none() && u.leased_by.is_some())
        .count();
    let mut status = current.clone();
    status.observed_generation = pool.metadata().generation;
    status.available = (leasable - leased) as u32;
    status.leased = leased as u32;
    let problems: Vec<String> = users
        .iter()
        .filter_map(|u| {
            u.problem
                .as_ref()
                .map(|p| format!("{} ({p})", u.configured))
        })
        .collect();
    status.users = users;
    let generation = pool.metadata().generation;
    let ready = if leasable == 0 {
        ReadyCondition {
            ready: false,
            reason: Reason::NoLeasableUsers,
            message: format!("no pool user can be leased: {}", problems.join(", ")),
        }
    } else {
        ReadyCondition {
            ready: true,
            reason: Reason::Ready,
            message: format!(
                "{leasable} of {} pool users can be leased",
                pool.spec().users.len()
            ),
        }
    };
    set_condition(
        &mut status.conditions,
        "Ready",
        ready.ready,
        ready.reason,
        ready.message.clone(),
        generation,
        now,
    );
    if problems.is_empty() {
        set_condition(
            &mut status.conditions,
            "Degraded",
            false,
            Reason::AllUsersLeasable,
            "every pool user can be leased".into(),
            generation,
            now,
        );
    } else {
        let message = format!("some pool users cannot be leased: {}", problems.join(", "));
        set_condition(
            &mut status.conditions,
            "Degraded",
            true,
            Reason::SomeUsersNotLeasable,
            message,
            generation,
            now,
        );
    }
    (status, ready)
}

/// The lease holding a claim as the pool's status shows it: leases of other namespaces are not
/// ours to name there, only that the user is taken (a cluster pool, in no namespace, names none).
fn holder_shown(holder: &HeldClaim, namespace: Option<&str>) -> Option<String> {
    let (holder_namespace, name) = holder.lease()?;
    Some(if Some(holder_namespace) == namespace {
        name.to_owned()
    } else {
        "(another namespace)".to_owned()
    })
}

fn has_reason(status: &DynamicSecretStatus, reason: Reason) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.reason == reason.as_str())
}

/// The finalizer: delete every lease holding a credential issued from this pool and wait until
/// each has ended, so no credential outlives its configuration. The claims are the record of what
/// was issued, read from the claim cache: a lease that never held one (a pending lease, or one in
/// a namespace a cluster pool does not select, whatever finalizers it carries) has nothing to end
/// and holds nothing up.
async fn end_leases(pool: &Pool, ctx: &Context) -> Result<Action, Error> {
    let key = pool.key();
    let pool_uid = pool.metadata().uid.clone().unwrap_or_default();
    let issued: Vec<HeldClaim> = ctx
        .claim_cache
        .find(ctx.claims.namespace(), |claim| {
            claim
                .record
                .as_ref()
                .is_some_and(|r| r.pool.uid == pool_uid)
        })
        .into_iter()
        .map(|(_, claim)| claim)
        .collect();
    if issued.is_empty() {
        ctx.validations.forget(&key);
        ctx.status_writes.forget(&key);
        return Ok(Action::await_change());
    }
    for claim in &issued {
        end_lease_holding(ctx, claim).await?;
    }
    let message = format!("ending {} leases before deletion", issued.len());
    ctx.publish_about(
        pool.object_ref(),
        EventType::Normal,
        Reason::LeasesEnding,
        "Delete",
        message,
    )
    .await;
    Err(Error::WaitingForLeases(issued.len()))
}

/// Deletes the lease holding `claim` (its finalizer ends the credential). Where the lease cannot
/// be deleted (its namespace refuses the operator), the credential ends from the claim's record,
/// as the reaper would end it.
async fn end_lease_holding(ctx: &Context, claim: &HeldClaim) -> Result<(), Error> {
    let Some(record) = claim.record.as_deref() else {
        return Ok(());
    };
    let lease = &record.lease;
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(lease.uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let deleted = Api::<EntraLease>::namespaced(ctx.client.clone(), &lease.namespace)
        .delete(&lease.name, &params)
        .await;
    match deleted {
        // Gone or replaced: the reaper ends what its claim records.
        Ok(_) => Ok(()),
        Err(error) if is_not_found(&error) || is_conflict(&error) => Ok(()),
        Err(error) => {
            tracing::warn!(lease = %lease.name, namespace = %lease.namespace, %error, "could not delete a lease of a deleted pool; ending its credential from the claim");
            let _one_actor = ctx.lease_locks.lock(&lease.uid).await;
            match ctx.claims.get(&record.user.id).await? {
                Some(live) if live.uid == claim.uid && live.holder_uid == claim.holder_uid => {
                    end_credential(ctx, &live).await.map(drop)
                }
                _ => Ok(()),
            }
        }
    }
}
