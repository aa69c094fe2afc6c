//! Time arithmetic on deadlines that come from objects: an absurd duration must end in a far
//! deadline or a bounded sleep, never in an overflow.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The longest a lease or claim sleeps: a deadline years away (a pool editor may allow that) is
/// looked at again from the cache, which costs nothing, instead of overflowing a timer.
pub const LONGEST_SLEEP: Duration = Duration::from_secs(3600);

/// The time from `now` to a hair after `deadline`, so that the deadline has passed on waking;
/// at most [`LONGEST_SLEEP`].
pub fn until_then(deadline: Timestamp, now: Timestamp) -> Duration {
    let wait = deadline
        .duration_since(now)
        .saturating_add(SignedDuration::from_millis(20));
    Duration::try_from(wait)
        .unwrap_or(Duration::ZERO)
        .min(LONGEST_SLEEP)
}

/// `time` plus `duration`, or the end of time.
pub fn later(time: Timestamp, duration: Duration) -> Timestamp {
    time.checked_add(signed(duration)).unwrap_or(Timestamp::MAX)
}

/// `time` minus `duration`, or the start of time.
pub fn earlier(time: Timestamp, duration: Duration) -> Timestamp {
    time.checked_sub(signed(duration)).unwrap_or(Timestamp::MIN)
}

fn signed(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}
