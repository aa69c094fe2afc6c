//! How watches retry after an error, such as the API server restarting.

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

#[cfg(test)]
mod tests {
    use super::*;

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
