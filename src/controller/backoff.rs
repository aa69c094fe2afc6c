//! How watches retry after an error (such as the API server restarting), and how a failed
//! reconcile of one object waits before its next attempt.

use std::time::Duration;

use kube::runtime::utils::{Backoff, ResetTimerBackoff};

const FIRST: Duration = Duration::from_millis(500);
/// kube's default grows to 30 s, which after an API server restart leaves reconciles waiting on
/// a watch for up to half a minute once the server is back. Six watches retrying every 5 s are
/// no burden on a server that is down.
const LONGEST: Duration = Duration::from_secs(5);
/// The delays start again from [`FIRST`] after this long without an error.
const RESET_AFTER: Duration = Duration::from_secs(30);

/// Doubling delays from 0.5 s up to 5 s.
pub fn watch_backoff() -> ResetTimerBackoff<Doubling> {
    ResetTimerBackoff::new(Doubling { next: FIRST }, RESET_AFTER)
}

pub struct Doubling {
    next: Duration,
}

impl Iterator for Doubling {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (delay * 2).min(LONGEST);
        Some(delay)
    }
}

impl Backoff for Doubling {
    fn reset(&mut self) {
        self.next = FIRST;
    }
}

/// The first retry of a failed reconcile, and the longest wait between two.
const RECONCILE_FIRST: Duration = Duration::from_secs(1);
const RECONCILE_LONGEST: Duration = Duration::from_secs(30);

/// The wait before the next attempt after `failures` failed reconciles of one object in a row:
/// doubling from 1 s to 30 s, so that one broken object does not retry at the pace of a healthy
/// one while a recovered dependency is still noticed within half a minute.
pub fn reconcile_backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    RECONCILE_FIRST
        .saturating_mul(1 << doublings)
        .min(RECONCILE_LONGEST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconcile_retries_double_up_to_half_a_minute() {
        let waits: Vec<u64> = (1..=8).map(|n| reconcile_backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(reconcile_backoff(u32::MAX).as_secs(), 30);
    }

    #[test]
    fn delays_double_up_to_five_seconds_and_start_over_on_reset() {
        let mut backoff = Doubling { next: FIRST };
        let delays: Vec<u64> = backoff
            .by_ref()
            .take(6)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 5000, 5000]);
        backoff.reset();
        assert_eq!(backoff.next(), Some(FIRST));
    }
}
