//! How far this process got ending each claim's credential. An end takes several Graph writes
//! (the scramble, then the session revocation); when a later one waits its turn in the app's
//! line, the reconcile returns and comes back. Without this memory it would scramble again each
//! time, spending a write per visit, and under a tight quota could spend them for ever.
//!
//! A step counts as done only for the claim object exactly as it was read (its resourceVersion):
//! any write to the claim in between, or a restart, means starting over, which only costs writes.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::controller::claims::HeldClaim;

/// The Graph writes that end a credential, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum EndStep {
    Scrambled,
    Disabled,
    SessionsRevoked,
    MethodsRemoved,
}

/// The last step done per claim name, with the claim's resourceVersion when it was done.
#[derive(Default)]
pub struct EndProgress {
    done: Mutex<HashMap<String, (String, EndStep)>>,
}

impl EndProgress {
    /// True when `step` was done for `claim` as it stands now.
    pub fn has_done(&self, claim: &HeldClaim, step: EndStep) -> bool {
        let Some(version) = claim.resource_version.as_deref() else {
            return false;
        };
        self.done
            .lock()
            .unwrap()
            .get(&claim.name)
            .is_some_and(|(at, done)| at == version && *done >= step)
    }

    pub fn done(&self, claim: &HeldClaim, step: EndStep) {
        if let Some(version) = &claim.resource_version {
            let mut done = self.done.lock().unwrap();
            done.insert(claim.name.clone(), (version.clone(), step));
        }
    }

    /// The claim was released (or taken by someone else): nothing of it is left to remember.
    /// Entries are one per claim name, so at most one per pool user, even when never forgotten.
    pub fn forget(&self, claim_name: &str) {
        self.done.lock().unwrap().remove(claim_name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(version: &str) -> HeldClaim {
        let mut claim = HeldClaim::of(&Default::default());
        claim.name = "entra-user-1".into();
        claim.resource_version = Some(version.into());
        claim
    }

    #[test]
    fn a_step_counts_only_for_the_claim_as_it_was_read() {
        let progress = EndProgress::default();
        progress.done(&claim("7"), EndStep::Scrambled);
        assert!(progress.has_done(&claim("7"), EndStep::Scrambled));
        assert!(!progress.has_done(&claim("7"), EndStep::SessionsRevoked));
        assert!(
            !progress.has_done(&claim("8"), EndStep::Scrambled),
            "a claim written since starts over"
        );
        progress.done(&claim("7"), EndStep::SessionsRevoked);
        assert!(progress.has_done(&claim("7"), EndStep::Scrambled));
        progress.forget("entra-user-1");
        assert!(!progress.has_done(&claim("7"), EndStep::Scrambled));
    }
}
