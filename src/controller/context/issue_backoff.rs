//! Leases whose issue Entra refused, and until when: other leases' changes wake them, but only a
//! change of their own spec or this time retries the issue. Kept in the process, not judged from
//! the status, which tenants may write.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Refused issues, by lease uid, with the spec generation refused and when to try again.
#[derive(Default)]
pub struct IssueBackoff {
    refused: Mutex<HashMap<String, Refusal>>,
}

struct Refusal {
    generation: Option<i64>,
    retry_at: Instant,
}

impl IssueBackoff {
    /// Notes that the issue of lease `uid` at spec `generation` was refused until `retry_at`.
    pub fn refused(&self, uid: String, generation: Option<i64>, retry_at: Instant) {
        let refusal = Refusal {
            generation,
            retry_at,
        };
        self.refused.lock().unwrap().insert(uid, refusal);
    }

    /// The time left before lease `uid`, its spec now at `generation`, may try to issue again:
    /// none once its spec changed or the time passed.
    pub fn wait_left(&self, uid: &str, generation: Option<i64>) -> Option<Duration> {
        let refused = self.refused.lock().unwrap();
        let refusal = refused.get(uid)?;
        if refusal.generation != generation {
            return None;
        }
        refusal.retry_at.checked_duration_since(Instant::now())
    }

    /// Lease `uid` issued, or ended: nothing of its refusal counts any more.
    pub fn forget(&self, uid: &str) {
        self.refused.lock().unwrap().remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AN_HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_refused_issue_waits_until_its_retry_time() {
        let backoff = IssueBackoff::default();
        backoff.refused("uid".into(), Some(1), Instant::now() + AN_HOUR);
        let left = backoff.wait_left("uid", Some(1)).unwrap();
        assert!(left > AN_HOUR - Duration::from_secs(60) && left <= AN_HOUR);
    }

    #[test]
    fn a_changed_spec_retries_at_once() {
        let backoff = IssueBackoff::default();
        backoff.refused("uid".into(), Some(1), Instant::now() + AN_HOUR);
        assert_eq!(backoff.wait_left("uid", Some(2)), None);
    }

    #[test]
    fn a_passed_retry_time_waits_no_more() {
        let backoff = IssueBackoff::default();
        backoff.refused("uid".into(), Some(1), Instant::now());
        assert_eq!(backoff.wait_left("uid", Some(1)), None);
    }

    #[test]
    fn other_and_forgotten_leases_do_not_wait() {
        let backoff = IssueBackoff::default();
        backoff.refused("uid".into(), Some(1), Instant::now() + AN_HOUR);
        assert_eq!(backoff.wait_left("other", Some(1)), None);
        backoff.forget("uid");
        assert_eq!(backoff.wait_left("uid", Some(1)), None);
    }
}
