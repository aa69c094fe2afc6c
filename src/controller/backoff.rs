//! How watches retry after an error (such as the API server restarting). Failed reconciles and
//! reaps back off per object instead: see [`FailureBackoff`](super::context::FailureBackoff).

use std::time::Duration;

use kube::runtime::utils::ResetTimerBackoff;
use kube::runtime::watcher::ExponentialBackoff;

/// The first delay before jitter. Jitter adds up to the delay itself, so each wait lies in
/// `[d, 2d)`: 0.25-0.5 s at first, then doubling.
const FIRST: Duration = Duration::from_millis(250);
/// kube's default grows to 30 s, which after an API server restart leaves reconciles waiting on
/// a watch for up to half a minute once the server is back. With jitter, no wait reaches 5 s:
/// six watches retrying that often are no burden on a server that is down.
const LONGEST_BEFORE_JITTER: Duration = Duration::from_millis(2500);
/// The delays start again from [`FIRST`] after this long without an error.
const RESET_AFTER: Duration = Duration::from_secs(30);

/// kube-runtime's own exponential backoff with jitter (so that watches restarting together
/// spread out), doubling from 0.25-0.5 s to under 5 s.
pub fn watch_backoff() -> ResetTimerBackoff<ExponentialBackoff> {
    let builder = backon::ExponentialBuilder::default()
        .with_min_delay(FIRST)
        .with_max_delay(LONGEST_BEFORE_JITTER)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    ResetTimerBackoff::new(builder.into(), RESET_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_delays_double_with_jitter_and_stay_under_five_seconds() {
        use kube::runtime::utils::Backoff;
        let mut backoff = watch_backoff();
        let delays: Vec<Duration> = backoff.by_ref().take(12).collect();
        let floors = [250, 500, 1000, 2000, 2500, 2500];
        for (delay, floor) in delays.iter().zip(floors.iter().chain([2500; 6].iter())) {
            let floor = Duration::from_millis(*floor);
            assert!(
                *delay >= floor && *delay < floor * 2,
                "{delay:?} in [{floor:?}, 2x)"
            );
        }
        backoff.reset();
        let first = backoff.next().unwrap();
        assert!(first < Duration::from_millis(500), "starts over: {first:?}");
    }
}
