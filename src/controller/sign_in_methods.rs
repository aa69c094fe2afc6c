//! Sign-in methods registered during a lease (invariant I9): the ids of a user's methods are
//! recorded in its claim at issue, and every end of the credential deletes the others, then lists
//! again to check, so a passkey or an Authenticator app a holder added stops working with the
//! password.

use super::Error;
use crate::api::{PoolSpec, SignInMethods};
use crate::graph::{AppCredentials, GraphClient, GraphError};

/// List-and-delete rounds an end makes before it reports methods that keep coming back.
const ROUNDS: usize = 3;

/// The fingerprints (ids, with a digest of a phone's number or an email's address) of the user's
/// methods besides the password, to record at issue; `None` when the pool
/// keeps methods, or when its app may not list them (the pool's `SignInMethodsManaged` condition
/// says so, and the lease still issues).
pub async fn methods_at_issue(
    graph: &GraphClient,
    app: &AppCredentials,
    spec: &PoolSpec,
    user_id: &str,
) -> Result<Option<Vec<String>>, Error> {
    if spec.sign_in_methods == SignInMethods::Keep {
        return Ok(None);
    }
    match graph.list_sign_in_methods(app, user_id).await {
        Ok(methods) => Ok(Some(methods.into_iter().map(|m| m.fingerprint).collect())),
        Err(GraphError::MissingPermission { .. }) => Ok(None),
        // Gone from Entra: the password write says so, and the issue goes on to another user.
        Err(GraphError::UserNotFound { .. }) => Ok(Some(Vec::new())),
        Err(error) => Err(error.into()),
    }
}

/// Deletes every method of the user whose fingerprint is not in `kept`, then lists again, until none is left (a user
/// gone has none). Returns how many were deleted.
pub async fn remove_methods_added(
    graph: &GraphClient,
    app: &AppCredentials,
    user_id: &str,
    user_principal_name: &str,
    kept: &[String],
) -> Result<usize, Error> {
    let mut removed = 0;
    for _ in 0..ROUNDS {
        let added: Vec<_> = match graph.list_sign_in_methods(app, user_id).await {
            Ok(methods) => methods
                .into_iter()
                .filter(|method| {
                    !kept
                        .iter()
                        .any(|kept| kept.eq_ignore_ascii_case(&method.fingerprint))
                })
                .collect(),
            Err(GraphError::UserNotFound { .. }) => return Ok(removed),
            Err(error) => return Err(error.into()),
        };
        if added.is_empty() {
            return Ok(removed);
        }
        for method in &added {
            match graph.delete_sign_in_method(app, user_id, method).await {
                Ok(()) | Err(GraphError::UserNotFound { .. }) => removed += 1,
                Err(error) => return Err(error.into()),
            }
        }
    }
    Err(Error::SignInMethodsRemain(user_principal_name.to_owned()))
}
