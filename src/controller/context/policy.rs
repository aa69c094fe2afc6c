//! The operator's own memory that shapes decisions: which pools' users were resolved, which
//! users Entra refused, which continuous leases wait to rotate, and the order to try users in.

use kube::ResourceExt;

use super::{Context, FORBIDDEN_PROBLEM};
use crate::api::{EntraLease, LeasedUser, PoolUser};
use crate::controller::pool::{Pool, PoolKey};

impl Context {
    /// Drops the remembered resolution of `pool`'s users, so its next reconcile asks Graph.
    pub fn forget_resolution(&self, pool: &Pool) {
        self.validations.forget(&pool.key());
    }

    /// `pool`'s users as this process resolved them through Graph, if it has for the pool as it
    /// is now (same object, same generation), with the users Entra recently refused to reset
    /// marked as such.
    pub fn resolution_of(&self, pool: &Pool) -> Option<Vec<PoolUser>> {
        let mut users = self.validations.users_of(pool)?;
        self.mark_forbidden(&pool.key(), &mut users);
        Some(users)
    }

    /// Marks the users Entra recently refused to reset for `pool` (the pool status shows the
    /// same); refusals to other pools listing them do not count.
    pub fn mark_forbidden(&self, pool: &PoolKey, users: &mut [PoolUser]) {
        for user in users {
            if user.problem.is_none()
                && user
                    .id
                    .as_deref()
                    .is_some_and(|id| self.forbidden_users.is_forbidden(pool, id))
            {
                user.problem = Some(FORBIDDEN_PROBLEM.into());
            }
        }
    }

    /// Remembers that Entra refused `pool`'s reset of `user_id`.
    pub fn forbid(&self, pool: &PoolKey, user_id: &str) {
        self.forbidden_users.forbid(pool, user_id);
    }

    /// `candidates` with those the claim cache shows free first, so that a burst of leases
    /// does not retry every taken user. Only an order: the cache may lag a release (the one that
    /// woke this lease), and the claim itself decides (invariant I1).
    pub fn likely_free_first(
        &self,
        candidates: Vec<LeasedUser>,
        lease: &EntraLease,
    ) -> Vec<LeasedUser> {
        let uid = lease.uid().unwrap_or_default();
        let (free, taken): (Vec<LeasedUser>, Vec<LeasedUser>) =
            candidates.into_iter().partition(|candidate| {
                self.cached_claim(&candidate.id)
                    .is_none_or(|holder| holder.uid.as_deref() == Some(uid.as_str()))
            });
        free.into_iter().chain(taken).collect()
    }

    /// Notes that the continuous lease `uid` of `pool` waits for a user to rotate to.
    pub fn waits_to_rotate(&self, uid: &str, pool: PoolKey) {
        self.rotation_queue.waits(uid, pool);
    }

    /// Notes that the lease `uid` no longer waits to rotate.
    pub fn rotation_done(&self, uid: &str) {
        self.rotation_queue.done(uid);
    }

    /// True when a continuous lease of `pool` (other than `uid`) waits for a user to rotate to.
    pub fn rotation_goes_first(&self, pool: &PoolKey, uid: &str) -> bool {
        self.rotation_queue.goes_first(pool, uid)
    }
}
