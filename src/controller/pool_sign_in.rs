//! What a pool's validation finds about the ways into its users besides the password: whether
//! its app may delete the sign-in methods holders register (the `SignInMethodsManaged`
//! condition), which idle users carry methods anyway, and which disabled users the operator
//! disabled itself between leases (those are leasable).

use super::Error;
use super::context::{Context, MethodsProgress};
use super::reasons::Reason;
use crate::api::{PoolSpec, PoolUser, SignInMethods};
use crate::graph::{AppCredentials, GraphClient, GraphError, METHODS_PERMISSION};

/// The `problem` of a disabled pool user.
const DISABLED_PROBLEM: &str = "Disabled";

/// The `SignInMethodsManaged` condition of a pool.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodsManaged {
    pub managed: bool,
    pub reason: Reason,
    pub message: String,
}

/// Whether the pool's leases end the methods their holders register (the app may list them), and
/// on each idle user (resolved, held by no claim) how many methods besides the password it
/// carries. Listing is a read: whether the app may also delete shows at the first end.
pub async fn check_methods(
    ctx: &Context,
    graph: &GraphClient,
    app: &AppCredentials,
    spec: &PoolSpec,
    users: &mut [PoolUser],
    progress: &mut MethodsProgress,
) -> Result<MethodsManaged, GraphError> {
    if spec.sign_in_methods == SignInMethods::Keep {
        return Ok(MethodsManaged {
            managed: false,
            reason: Reason::KeptAfterLease,
            message: "signInMethods is Keep: sign-in methods registered during a lease outlive \
                it; a lease's end covers the password and sessions only"
                .into(),
        });
    }
    let missing = MethodsManaged {
        managed: false,
        reason: Reason::MethodsPermissionMissing,
        message: format!(
            "the app may not list sign-in methods (Graph application permission \
             {METHODS_PERMISSION}): methods registered during a lease outlive it; leases still \
             issue, and their end covers the password and sessions only"
        ),
    };
    // What an earlier attempt that waited its turn found is taken over, not asked again.
    for (user, found) in users.iter_mut().zip(&progress.found) {
        user.other_sign_in_methods = *found;
    }
    let start = progress.next;
    for (index, user) in users.iter_mut().enumerate().skip(start) {
        let listed = match user.id.as_deref() {
            Some(id) if ctx.cached_claim(id).is_none() => {
                Some(graph.list_sign_in_methods(app, id).await)
            }
            _ => None,
        };
        match listed {
            Some(Ok(methods)) => {
                progress.listed_any = true;
                user.other_sign_in_methods =
                    Some(u32::try_from(methods.len()).unwrap_or(u32::MAX)).filter(|n| *n > 0);
            }
            // A protected admin refuses any app without a privileged role: try the next user.
            Some(Err(GraphError::MissingPermission { .. })) if user.problem.is_some() => {}
            Some(Err(GraphError::MissingPermission { .. })) => return Ok(missing),
            Some(Err(GraphError::UserNotFound { .. })) | None => {}
            Some(Err(error)) => return Err(error),
        }
        progress.found.push(user.other_sign_in_methods);
        progress.next = index + 1;
    }
    if !progress.listed_any
        && users
            .iter()
            .all(|user| user.id.is_none() || user.problem.is_some())
    {
        return Ok(missing);
    }
    Ok(MethodsManaged {
        managed: true,
        reason: Reason::RemovedAtLeaseEnd,
        message: format!(
            "sign-in methods registered during a lease are deleted at its end (deleting needs \
             {METHODS_PERMISSION}; a refusal shows as RevocationFailing)"
        ),
    })
}

/// Users disabled by the operator between leases are leasable: with `disableIdleUsers` the next
/// issue enables them; without it (the option turned off since) they are enabled now. Users
/// disabled by anyone else keep their `Disabled` problem.
pub async fn leasable_when_disabled_here(
    ctx: &Context,
    graph: &GraphClient,
    app: &AppCredentials,
    spec: &PoolSpec,
    users: &mut [PoolUser],
) -> Result<(), Error> {
    for user in users.iter_mut() {
        let Some(id) = user.id.as_deref() else {
            continue;
        };
        // Only disabled users cost a read of their marker.
        if user.problem.as_deref() != Some(DISABLED_PROBLEM)
            || !ctx.idle_accounts.disabled_here(id).await?
        {
            continue;
        }
        if !spec.disable_idle_users {
            match ctx
                .idle_accounts
                .enable_if_disabled_here(graph, app, id)
                .await
            {
                Ok(()) => {}
                // This user's own trouble (a protected admin now, say): it stays Disabled.
                Err(Error::Graph(GraphError::MissingPermission { .. })) => continue,
                Err(error) => return Err(error),
            }
        }
        user.problem = None;
    }
    Ok(())
}
