//! Users whose password reset Entra recently refused with 403 (a protected admin, or an app
//! without the right): that pool's leases that name no user skip them for a while, and that
//! pool's status marks them. Per pool, not per user: another pool listing the same user, with an
//! app that cannot write it, must not set the user aside for everyone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::controller::pool::PoolKey;

/// The problem shown for a user Entra recently refused to reset.
pub const FORBIDDEN_PROBLEM: &str = "PasswordResetForbidden";

/// How long a user refused by Entra is set aside before it is tried again.
pub const FORBIDDEN_FOR: Duration = Duration::from_secs(600);

/// Refused users, by pool and object id (lowercase), with when Entra refused them.
#[derive(Default)]
pub struct ForbiddenUsers {
    refused_at: Mutex<HashMap<(PoolKey, String), Instant>>,
}

impl ForbiddenUsers {
    /// Remembers that Entra refused `pool`'s write of `user_id` (and forgets those refused long
    /// ago, so the map holds at most what ten minutes of refusals added).
    pub fn forbid(&self, pool: &PoolKey, user_id: &str) {
        self.forbid_at(pool, user_id, Instant::now());
    }

    fn forbid_at(&self, pool: &PoolKey, user_id: &str, at: Instant) {
        let mut refused_at = self.refused_at.lock().unwrap();
        refused_at.retain(|_, at| at.elapsed() < FORBIDDEN_FOR);
        refused_at.insert((pool.clone(), user_id.to_ascii_lowercase()), at);
    }

    /// True when Entra refused `pool`'s write of `user_id` less than [`FORBIDDEN_FOR`] ago.
    pub fn is_forbidden(&self, pool: &PoolKey, user_id: &str) -> bool {
        self.refused_at
            .lock()
            .unwrap()
            .get(&(pool.clone(), user_id.to_ascii_lowercase()))
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
    use crate::api::PoolKind;

    fn pool(namespace: &str) -> PoolKey {
        PoolKey {
            kind: PoolKind::EntraDynamicSecret,
            namespace: Some(namespace.into()),
            name: "pool".into(),
        }
    }

    fn cluster_pool() -> PoolKey {
        PoolKey {
            kind: PoolKind::ClusterEntraDynamicSecret,
            namespace: None,
            name: "pool".into(),
        }
    }

    fn long_ago() -> Instant {
        Instant::now() - FORBIDDEN_FOR - Duration::from_secs(1)
    }

    #[test]
    fn a_refused_user_is_set_aside_whatever_the_case_of_its_id() {
        let users = ForbiddenUsers::default();
        users.forbid(&pool("a"), "ABC-123");
        assert!(users.is_forbidden(&pool("a"), "abc-123"));
        assert!(!users.is_forbidden(&pool("a"), "def-456"));
    }

    #[test]
    fn a_user_refused_to_one_pool_stays_leasable_in_others() {
        let users = ForbiddenUsers::default();
        users.forbid(&pool("b"), "abc");
        assert!(users.is_forbidden(&pool("b"), "abc"));
        assert!(!users.is_forbidden(&pool("a"), "abc"));
        assert!(!users.is_forbidden(&cluster_pool(), "abc"));
    }

    #[test]
    fn a_user_refused_long_ago_is_tried_again() {
        let users = ForbiddenUsers::default();
        users.forbid_at(&pool("a"), "abc", long_ago());
        assert!(!users.is_forbidden(&pool("a"), "abc"));
    }

    #[test]
    fn refusals_long_past_are_forgotten_at_the_next_refusal() {
        let users = ForbiddenUsers::default();
        users.forbid_at(&pool("a"), "old", long_ago());
        users.forbid(&pool("a"), "new");
        assert_eq!(users.remembered(), 1);
    }
}
