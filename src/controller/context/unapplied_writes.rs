//! Issues whose every password write in this process was answered without applying anything (a
//! 4xx, throttling included). Only such an issue's claim may be released without a scramble when
//! Entra then refuses it for good: no password of it can work. Anything this process did not see
//! (a 5xx, a lost answer, a restart in between, a claim written by another replica) leaves no
//! entry, and the claim is scrambled before it is released, as ever.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// An issue's writes are forgotten after this long: a retry so late is judged as after a
/// restart (scrambled first), which only costs a write.
pub const REMEMBER_FOR: Duration = Duration::from_secs(3600);

/// At most this many issues are remembered; one more is not, and is judged as after a restart.
pub const REMEMBER_AT_MOST: usize = 4096;

/// One issue of one claim: the claim object (its uid changes when it is created again) and the
/// credential generation it records.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IssueWrites {
    pub claim_name: String,
    pub claim_uid: String,
    pub generation: u32,
}

/// The issues whose writes so far applied nothing, with when their first write was made.
#[derive(Default)]
pub struct UnappliedWrites {
    since: Mutex<HashMap<IssueWrites, Instant>>,
}

impl UnappliedWrites {
    /// The issue makes its first password write: nothing is applied yet.
    pub fn first_write(&self, issue: &IssueWrites) {
        self.first_write_at(issue, Instant::now());
    }

    fn first_write_at(&self, issue: &IssueWrites, at: Instant) {
        let mut since = self.since.lock().unwrap();
        since.retain(|_, first| first.elapsed() < REMEMBER_FOR);
        if since.len() < REMEMBER_AT_MOST || since.contains_key(issue) {
            since.insert(issue.clone(), at);
        }
    }

    /// A write of the issue failed; unless its answer applied nothing, a password may work.
    pub fn failed(&self, issue: &IssueWrites, applied_nothing: bool) {
        if !applied_nothing {
            self.forget(issue);
        }
    }

    /// True when every password write of the issue in this process applied nothing.
    pub fn nothing_applied(&self, issue: &IssueWrites) -> bool {
        self.since
            .lock()
            .unwrap()
            .get(issue)
            .is_some_and(|first| first.elapsed() < REMEMBER_FOR)
    }

    /// The issue's password was set, or its claim released: nothing more to know.
    pub fn forget(&self, issue: &IssueWrites) {
        self.since.lock().unwrap().remove(issue);
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.since.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(name: &str) -> IssueWrites {
        IssueWrites {
            claim_name: name.into(),
            claim_uid: format!("uid-{name}"),
            generation: 1,
        }
    }

    #[test]
    fn writes_answered_without_effect_leave_nothing_applied() {
        let writes = UnappliedWrites::default();
        writes.first_write(&issue("a"));
        writes.failed(&issue("a"), true);
        writes.failed(&issue("a"), true);
        assert!(writes.nothing_applied(&issue("a")));
    }

    #[test]
    fn a_write_that_may_have_applied_is_never_forgotten_by_later_refusals() {
        let writes = UnappliedWrites::default();
        writes.first_write(&issue("a"));
        writes.failed(&issue("a"), false);
        writes.failed(&issue("a"), true);
        assert!(!writes.nothing_applied(&issue("a")));
    }

    #[test]
    fn an_issue_this_process_never_wrote_may_have_applied() {
        let writes = UnappliedWrites::default();
        writes.failed(&issue("a"), true);
        assert!(!writes.nothing_applied(&issue("a")));
    }

    #[test]
    fn the_same_user_claimed_again_is_another_issue() {
        let writes = UnappliedWrites::default();
        writes.first_write(&issue("a"));
        let again = IssueWrites {
            claim_uid: "another-uid".into(),
            ..issue("a")
        };
        assert!(!writes.nothing_applied(&again));
    }

    #[test]
    fn issues_long_past_are_forgotten_and_the_memory_is_bounded() {
        let writes = UnappliedWrites::default();
        let long_ago = Instant::now() - REMEMBER_FOR - Duration::from_secs(1);
        writes.first_write_at(&issue("old"), long_ago);
        assert!(!writes.nothing_applied(&issue("old")));
        for i in 0..REMEMBER_AT_MOST + 10 {
            writes.first_write(&issue(&i.to_string()));
        }
        assert_eq!(writes.remembered(), REMEMBER_AT_MOST);
        assert!(!writes.nothing_applied(&issue(&(REMEMBER_AT_MOST + 5).to_string())));
    }
}
