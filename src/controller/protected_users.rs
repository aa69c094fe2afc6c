//! Sets aside, at pool resolution, the users a User Administrator may not reset (admins, members
//! of role-assignable groups), so that no lease tries them and waits for a 403.

use crate::api::PoolUser;
use crate::graph::{AppCredentials, GraphClient, GraphError, Protection};

/// The `problem` of a pool user whose memberships protect it from a User Administrator.
pub const PROTECTED_PROBLEM: &str = "Protected";

/// Reads the memberships of every resolved user that is otherwise leasable (one Graph read each,
/// at resolution, not per lease) and marks the protected ones. When the app may not read
/// memberships, stops at the first 403 and changes nothing: the first issue finds out, as before.
pub async fn mark_protected(
    graph: &GraphClient,
    app: &AppCredentials,
    users: &mut [PoolUser],
) -> Result<(), GraphError> {
    for user in users.iter_mut().filter(|u| u.problem.is_none()) {
        let Some(id) = user.id.as_deref() else {
            continue;
        };
        match graph.user_protection(app, id).await {
            Ok(Protection::Protected) => user.problem = Some(PROTECTED_PROBLEM.into()),
            Ok(Protection::Unreadable) => return Ok(()),
            Ok(Protection::NotProtected | Protection::Undecided) => {}
            // Deleted since it was read: as if the read had not found it.
            Err(GraphError::UserNotFound { .. }) => user.problem = Some("NotFound".into()),
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
