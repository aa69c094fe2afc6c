//! How often a lease's Secret may be restored with a fresh password. Every restore is a Graph
//! write on the app's shared quota, and whoever may delete the Secret may do so in a loop: the
//! first restore happens at once, later ones are spaced out (30 s, doubling to 5 min), and the
//! spacing forgets after a quiet 10 min. The state lives in the claim's record, so a restart
//! neither forgets it nor writes anything for it (a restore writes the record anyway).

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::deadlines::later;

/// The spacing after a first restore.
pub const FIRST_DELAY: Duration = Duration::from_secs(30);
/// The spacing never grows past this.
pub const MAX_DELAY: Duration = Duration::from_secs(300);
/// A lease this long without a restore starts again from a free restore.
pub const QUIET_PERIOD: Duration = Duration::from_secs(600);

/// A lease's restores so far, as its claim records them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreBackoff {
    /// When the last restore was decided.
    pub last_at: Time,
    /// How long after it the next restore may set a password.
    pub delay_seconds: u64,
}

/// When a lease whose Secret was taken may have a fresh password.
#[derive(Clone, Debug, PartialEq)]
pub enum RestoreTurn {
    /// Now; the record keeps this spacing for the next one.
    Now(RestoreBackoff),
    /// Not before then: until then the credential is ended, not restored.
    At(Timestamp),
}

impl RestoreBackoff {
    fn delay(&self) -> Duration {
        Duration::from_secs(self.delay_seconds)
    }

    fn starting(now: Timestamp, delay: Duration) -> RestoreBackoff {
        RestoreBackoff {
            last_at: Time(now),
            delay_seconds: delay.as_secs(),
        }
    }
}

/// When the restore of a lease with restores `so_far` may happen, asked at `now`.
pub fn restore_turn(so_far: Option<&RestoreBackoff>, now: Timestamp) -> RestoreTurn {
    let Some(so_far) = so_far else {
        return RestoreTurn::Now(RestoreBackoff::starting(now, FIRST_DELAY));
    };
    if now >= later(so_far.last_at.0, QUIET_PERIOD) {
        return RestoreTurn::Now(RestoreBackoff::starting(now, FIRST_DELAY));
    }
    let due = later(so_far.last_at.0, so_far.delay());
    if now < due {
        return RestoreTurn::At(due);
    }
    let next = so_far
        .delay()
        .saturating_mul(2)
        .clamp(FIRST_DELAY, MAX_DELAY);
    RestoreTurn::Now(RestoreBackoff::starting(now, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::at;

    fn now_with(turn: RestoreTurn) -> RestoreBackoff {
        match turn {
            RestoreTurn::Now(next) => next,
            RestoreTurn::At(at) => panic!("expected a restore now, got one at {at}"),
        }
    }

    #[test]
    fn the_first_restore_is_at_once_and_the_next_waits_thirty_seconds() {
        let first = now_with(restore_turn(None, at(100)));
        assert_eq!(first.delay_seconds, 30);
        assert_eq!(
            restore_turn(Some(&first), at(101)),
            RestoreTurn::At(at(130))
        );
        let second = now_with(restore_turn(Some(&first), at(130)));
        assert_eq!(second.last_at, Time(at(130)));
        assert_eq!(second.delay_seconds, 60);
    }

    #[test]
    fn the_spacing_doubles_to_five_minutes_and_stays_there() {
        let mut backoff = now_with(restore_turn(None, at(0)));
        let mut now = 0;
        let mut delays = Vec::new();
        for _ in 0..7 {
            now += i64::try_from(backoff.delay_seconds).unwrap();
            backoff = now_with(restore_turn(Some(&backoff), at(now)));
            delays.push(backoff.delay_seconds);
        }
        assert_eq!(delays, [60, 120, 240, 300, 300, 300, 300]);
    }

    #[test]
    fn ten_quiet_minutes_make_the_next_restore_free_again() {
        let mut backoff = now_with(restore_turn(None, at(0)));
        backoff.delay_seconds = 300;
        assert_eq!(
            restore_turn(Some(&backoff), at(299)),
            RestoreTurn::At(at(300))
        );
        let fresh = now_with(restore_turn(Some(&backoff), at(600)));
        assert_eq!(fresh.delay_seconds, 30);
    }
}
