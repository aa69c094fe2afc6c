//! Users whose password reset Entra recently refused with 403 (a protected admin, most likely):
//! leases that name no user skip them for a while, and pool statuses mark them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The problem shown for a user Entra recently refused to reset.
pub const FORBIDDEN_PROBLEM: &str = "PasswordResetForbidden";

/// How long a user refused by Entra is set aside before it is tried again.
pub const FORBIDDEN_FOR: Duration = Duration::from_secs(600);

/// Refused users, by object id (lowercase), with when Entra refused them.
#[derive(Default)]
pub struct ForbiddenUsers {
    refused_at: Mutex<HashMap<String, Instant>>,
}

impl ForbiddenUsers {
    /// Remembers that Entra refused to reset `user_id` (and forgets those refused long ago).
    pub fn forbid(&self, user_id: &str) {
        self.forbid_at(user_id, Instant::now());
    }

    fn forbid_at(&self, user_id: &str, at: Instant) {
        let mut refused_at = self.refused_at.lock().unwrap();
        refused_at.retain(|_, at| at.elapsed() < FORBIDDEN_FOR);
        refused_at.insert(user_id.to_ascii_lowercase(), at);
    }

    /// True when Entra refused to reset `user_id` less than [`FORBIDDEN_FOR`] ago.
    pub fn is_forbidden(&self, user_id: &str) -> bool {
        self.refused_at
            .lock()
            .unwrap()
            .get(&user_id.to_ascii_lowercase())
            .is_some_and(|at| at.elapsed() < FORBIDDEN_FOR)
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.refused_at.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn long_ago() -> Instant {
        Instant::now() - FORBIDDEN_FOR - Duration::from_secs(1)
    }

    #[test]
    fn a_refused_user_is_set_aside_whatever_the_case_of_its_id() {
        let users = ForbiddenUsers::default();
        users.forbid("ABC-123");
        assert!(users.is_forbidden("abc-123"));
        assert!(!users.is_forbidden("def-456"));
    }

    #[test]
    fn a_user_refused_long_ago_is_tried_again() {
        let users = ForbiddenUsers::default();
        users.forbid_at("abc", long_ago());
        assert!(!users.is_forbidden("abc"));
    }

    #[test]
    fn refusals_long_past_are_forgotten_at_the_next_refusal() {
        let users = ForbiddenUsers::default();
        users.forbid_at("old", long_ago());
        users.forbid("new");
        assert_eq!(users.remembered(), 1);
    }
}
