//! Sets aside, at pool resolution, the users a User Administrator may not reset (admins, members
//! of role-assignable groups), so that no lease tries them and waits for a 403.

use super::context::ProtectionProgress;
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
    progress: &mut ProtectionProgress,
) -> Result<(), GraphError> {
    // What an earlier attempt that waited its turn found is taken over, not read again.
    for (index, problem) in &progress.marked {
        if let Some(user) = users.get_mut(*index) {
            user.problem = Some(problem.clone());
        }
    }
    for index in progress.next..users.len() {
        let user = &mut users[index];
        if user.problem.is_none()
            && let Some(id) = user.id.as_deref()
        {
            let marked = match graph.user_protection(app, id).await {
                Ok(Protection::Protected) => Some(PROTECTED_PROBLEM.to_owned()),
                Ok(Protection::Unreadable) => {
                    // Unreadable for every user: not asked again in this resolution.
                    progress.next = users.len();
                    return Ok(());
                }
                Ok(Protection::NotProtected | Protection::Undecided) => None,
                // Deleted since it was read: as if the read had not found it.
                Err(GraphError::UserNotFound { .. }) => Some("NotFound".to_owned()),
                Err(error) => return Err(error),
            };
            if let Some(problem) = marked {
                user.problem = Some(problem.clone());
                progress.marked.push((index, problem));
            }
        }
        progress.next = index + 1;
    }
    Ok(())
}
