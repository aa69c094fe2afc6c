//! Continuous leases waiting for a user to rotate to: a new lease of their pool leaves a freed
//! user to them. Each says so again every time it looks (every minute at most), so an entry that
//! stopped being renewed (its lease rotated, ended or was deleted) soon stops counting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::controller::pool::PoolKey;

/// How long a continuous lease's word that it waits to rotate counts.
pub const ROTATION_WAIT_FRESH: Duration = Duration::from_secs(150);

/// Waiting leases, by uid, with their pool and when they last said so.
#[derive(Default)]
pub struct RotationQueue {
    waiting: Mutex<HashMap<String, Waiting>>,
}

struct Waiting {
    pool: PoolKey,
    since: Instant,
}

impl RotationQueue {
    /// Notes that the continuous lease `uid` of `pool` waits for a user to rotate to.
    pub fn waits(&self, uid: &str, pool: PoolKey) {
        self.waits_since(uid, pool, Instant::now());
    }

    fn waits_since(&self, uid: &str, pool: PoolKey, since: Instant) {
        let waiting = Waiting { pool, since };
        self.waiting.lock().unwrap().insert(uid.to_owned(), waiting);
    }

    /// Notes that the lease `uid` no longer waits to rotate.
    pub fn done(&self, uid: &str) {
        self.waiting.lock().unwrap().remove(uid);
    }

    /// True when a continuous lease of `pool` other than `uid` waits for a user to rotate to.
    pub fn goes_first(&self, pool: &PoolKey, uid: &str) -> bool {
        let mut waiting = self.waiting.lock().unwrap();
        waiting.retain(|_, entry| entry.since.elapsed() < ROTATION_WAIT_FRESH);
        waiting
            .iter()
            .any(|(waiting_uid, entry)| waiting_uid != uid && entry.pool == *pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str) -> PoolKey {
        PoolKey {
            kind: crate::api::PoolKind::EntraDynamicSecret,
            namespace: Some("team".into()),
            name: name.into(),
        }
    }

    #[test]
    fn a_waiting_rotation_goes_before_other_leases_of_its_pool() {
        let queue = RotationQueue::default();
        queue.waits("rotating", pool("a"));
        assert!(queue.goes_first(&pool("a"), "new"));
        assert!(!queue.goes_first(&pool("b"), "new"));
    }

    #[test]
    fn a_lease_never_waits_for_itself() {
        let queue = RotationQueue::default();
        queue.waits("rotating", pool("a"));
        assert!(!queue.goes_first(&pool("a"), "rotating"));
    }

    #[test]
    fn a_done_rotation_no_longer_goes_first() {
        let queue = RotationQueue::default();
        queue.waits("rotating", pool("a"));
        queue.done("rotating");
        assert!(!queue.goes_first(&pool("a"), "new"));
    }

    #[test]
    fn a_stale_wait_no_longer_goes_first() {
        let queue = RotationQueue::default();
        let long_ago = Instant::now() - ROTATION_WAIT_FRESH - Duration::from_secs(1);
        queue.waits_since("rotating", pool("a"), long_ago);
        assert!(!queue.goes_first(&pool("a"), "new"));
    }
}
