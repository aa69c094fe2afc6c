//! Failures in a row, per key, and how long to wait after the latest: one type for every
//! retry loop of the controllers (a failed reconcile of an object, a failed reap of a claim), so
//! that they all back off the same way and forget a key as soon as it succeeds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Doublings past which the wait is at its longest anyway (and `1 << n` stays small).
const MOST_DOUBLINGS: u32 = 16;

/// Waits doubling from `first` to `longest`, per key, for as long as the key keeps failing.
pub struct FailureBackoff {
    first: Duration,
    longest: Duration,
    in_a_row: Mutex<HashMap<String, u32>>,
}

impl FailureBackoff {
    /// Failed reconciles of one object: 1 s doubling to 30 s, so that one broken object does not
    /// retry at the pace of a healthy one while a recovered dependency is still noticed within
    /// half a minute.
    pub fn for_reconciles() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// Failed reaps of one claim: 5 s doubling to 5 min (each attempt may cost Graph calls).
    pub fn for_reaps() -> Self {
        Self::new(Duration::from_secs(5), Duration::from_secs(300))
    }

    fn new(first: Duration, longest: Duration) -> Self {
        Self {
            first,
            longest,
            in_a_row: Mutex::default(),
        }
    }

    /// Counts one more failure of `key`; returns how long to wait before its next attempt.
    pub fn failed(&self, key: &str) -> Duration {
        let mut in_a_row = self.in_a_row.lock().unwrap();
        let count = in_a_row.entry(key.to_owned()).or_insert(0);
        *count = count.saturating_add(1);
        self.wait_after(*count)
    }

    /// `key` succeeded: its next failure waits the shortest time again.
    pub fn succeeded(&self, key: &str) {
        self.in_a_row.lock().unwrap().remove(key);
    }

    fn wait_after(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(MOST_DOUBLINGS);
        self.first.saturating_mul(1 << doublings).min(self.longest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waits(backoff: &FailureBackoff, key: &str, failures: usize) -> Vec<u64> {
        (0..failures)
            .map(|_| backoff.failed(key).as_secs())
            .collect()
    }

    #[test]
    fn reconcile_retries_double_up_to_half_a_minute() {
        let backoff = FailureBackoff::for_reconciles();
        assert_eq!(waits(&backoff, "a", 8), [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff.wait_after(u32::MAX).as_secs(), 30);
    }

    #[test]
    fn reap_retries_double_up_to_five_minutes() {
        let backoff = FailureBackoff::for_reaps();
        assert_eq!(
            waits(&backoff, "claim", 8),
            [5, 10, 20, 40, 80, 160, 300, 300]
        );
        assert_eq!(backoff.wait_after(u32::MAX).as_secs(), 300);
    }

    #[test]
    fn each_key_backs_off_on_its_own() {
        let backoff = FailureBackoff::for_reconciles();
        assert_eq!(waits(&backoff, "a", 3), [1, 2, 4]);
        assert_eq!(waits(&backoff, "b", 1), [1]);
    }

    #[test]
    fn a_success_starts_the_key_over() {
        let backoff = FailureBackoff::for_reaps();
        waits(&backoff, "claim", 4);
        backoff.succeeded("claim");
        assert_eq!(waits(&backoff, "claim", 2), [5, 10]);
    }
}
