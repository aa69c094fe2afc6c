//! One actor per lease at a time. Issues, revocations and the reaper run in separate queues, so
//! kube's one-reconcile-per-object guarantee no longer covers them together: a revocation that
//! ran while an issue's password PATCH was still being retried would scramble first and let the
//! late PATCH set a password that nobody ends. Each of them holds the lease's lock instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// Locks are pruned once this many were handed out since the last pruning.
const PRUNE_EVERY: usize = 1024;

#[derive(Default)]
pub struct LeaseLocks {
    locks: Mutex<Locks>,
}

#[derive(Default)]
struct Locks {
    by_uid: HashMap<String, Weak<AsyncMutex<()>>>,
    handed_out: usize,
}

impl LeaseLocks {
    /// Waits until nobody else acts on the lease with `uid`, and holds it until the guard drops.
    pub async fn lock(&self, uid: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap();
            locks.handed_out += 1;
            if locks.handed_out >= PRUNE_EVERY {
                locks.handed_out = 0;
                locks.by_uid.retain(|_, lock| lock.strong_count() > 0);
            }
            match locks.by_uid.get(uid).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(AsyncMutex::new(()));
                    locks.by_uid.insert(uid.to_owned(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_holder_per_lease_and_others_pass() {
        let locks = Arc::new(LeaseLocks::default());
        let held = locks.lock("a").await;
        let other = tokio::time::timeout(Duration::from_millis(50), locks.lock("b")).await;
        assert!(other.is_ok(), "another lease is not blocked");
        let same = tokio::time::timeout(Duration::from_millis(50), locks.lock("a")).await;
        assert!(same.is_err(), "the same lease waits");
        drop(held);
        let again = tokio::time::timeout(Duration::from_millis(50), locks.lock("a")).await;
        assert!(again.is_ok(), "released");
    }
}
