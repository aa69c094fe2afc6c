//! When each pool's status was last written by this process: a burst of changes to only its
//! holders and counts is then written a few times per pool, not once per issue.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::controller::pool::PoolKey;

/// The last status write, by pool.
#[derive(Default)]
pub struct StatusWrites {
    last: Mutex<HashMap<PoolKey, Instant>>,
}

impl StatusWrites {
    /// Notes that `pool`'s status was just written.
    pub fn written(&self, pool: PoolKey) {
        self.last.lock().unwrap().insert(pool, Instant::now());
    }

    /// How long ago this process last wrote `pool`'s status, if it has.
    pub fn since_last(&self, pool: &PoolKey) -> Option<Duration> {
        let last = *self.last.lock().unwrap().get(pool)?;
        Some(last.elapsed())
    }

    /// Drops what is known of `pool` (it is going away).
    pub fn forget(&self, pool: &PoolKey) {
        self.last.lock().unwrap().remove(pool);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PoolKind;

    fn key(name: &str) -> PoolKey {
        PoolKey {
            kind: PoolKind::ClusterEntraDynamicSecret,
            namespace: None,
            name: name.into(),
        }
    }

    #[test]
    fn a_written_status_was_written_just_now() {
        let writes = StatusWrites::default();
        writes.written(key("a"));
        assert!(writes.since_last(&key("a")).unwrap() < Duration::from_secs(60));
        assert_eq!(writes.since_last(&key("b")), None);
    }

    #[test]
    fn a_forgotten_pool_was_never_written() {
        let writes = StatusWrites::default();
        writes.written(key("a"));
        writes.forget(&key("a"));
        assert_eq!(writes.since_last(&key("a")), None);
    }
}
