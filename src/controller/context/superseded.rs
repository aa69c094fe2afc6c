//! The lease copies this process has written over. A reconcile handed such a copy (a requeue
//! that fires before the watch brought the operator's own status write) would judge stale facts,
//! and its status write would be refused with a 409: it waits for the watch instead, which
//! brings the newer copy and a reconcile with it.

use std::collections::HashMap;
use std::sync::Mutex;

/// By lease uid, the resourceVersion the operator's last write replaced.
#[derive(Default)]
pub struct Superseded {
    replaced: Mutex<HashMap<String, String>>,
}

impl Superseded {
    /// Notes that the lease `uid` at `resource_version` was just written over.
    pub fn wrote_over(&self, uid: &str, resource_version: &str) {
        self.replaced
            .lock()
            .unwrap()
            .insert(uid.to_owned(), resource_version.to_owned());
    }

    /// True when the copy of lease `uid` at `resource_version` is one the operator wrote over.
    /// Any other copy is newer, and what was noted is dropped.
    pub fn is_stale(&self, uid: &str, resource_version: Option<&str>) -> bool {
        let mut replaced = self.replaced.lock().unwrap();
        match (replaced.get(uid), resource_version) {
            (Some(old), Some(seen)) if old == seen => true,
            (Some(_), _) => {
                replaced.remove(uid);
                false
            }
            (None, _) => false,
        }
    }

    /// Drops what is noted of lease `uid` (it is gone).
    pub fn forget(&self, uid: &str) {
        self.replaced.lock().unwrap().remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_copy_written_over_is_stale_and_a_newer_one_clears_the_note() {
        let superseded = Superseded::default();
        assert!(!superseded.is_stale("a", Some("10")));
        superseded.wrote_over("a", "10");
        assert!(superseded.is_stale("a", Some("10")));
        assert!(!superseded.is_stale("b", Some("10")), "another lease");
        assert!(superseded.is_stale("a", Some("10")), "still that copy");
        assert!(
            !superseded.is_stale("a", Some("11")),
            "the watch's newer copy"
        );
        assert!(
            !superseded.is_stale("a", Some("10")),
            "the note went with the newer copy"
        );
    }

    #[test]
    fn a_forgotten_lease_is_never_stale() {
        let superseded = Superseded::default();
        superseded.wrote_over("a", "10");
        superseded.forget("a");
        assert!(!superseded.is_stale("a", Some("10")));
    }
}
