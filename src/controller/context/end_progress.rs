//! How far this process got ending each claim's credential. An end takes several Graph writes
//! (the scramble, then the session revocation); when a later one waits its turn in the app's
//! line, the reconcile returns and comes back. Without this memory it would scramble again each
//! time, spending a write per visit, and under a tight quota could spend them for ever.
//!
//! A step counts as done only for the claim object exactly as it was read (its resourceVersion):
//! any write to the claim in between, or a restart, means starting over, which only costs writes.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::jiff::Timestamp;

use crate::controller::claims::HeldClaim;

/// What an end did besides the scramble, for the event that tells it.
#[derive(Clone, Debug, Default)]
pub struct Ended {
    /// The user's `signInSessionsValidFromDateTime` as read after the session revocation.
    pub sessions_valid_from: Option<Timestamp>,
    /// Sign-in methods registered during the lease and deleted now.
    pub methods_removed: usize,
}

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
    done: Mutex<HashMap<String, (String, EndStep, Ended)>>,
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
            .is_some_and(|(at, done, _)| at == version && *done >= step)
    }

    /// Records that `step` was done for `claim` as it stands, with what the end did so far.
    pub fn done(&self, claim: &HeldClaim, step: EndStep, ended: &Ended) {
        if let Some(version) = &claim.resource_version {
            let mut done = self.done.lock().unwrap();
            done.insert(claim.name.clone(), (version.clone(), step, ended.clone()));
        }
    }

    /// What the steps done for `claim` as it stands did, for an end that goes on from them.
    pub fn ended_so_far(&self, claim: &HeldClaim) -> Ended {
        let done = self.done.lock().unwrap();
        match (done.get(&claim.name), claim.resource_version.as_deref()) {
            (Some((at, _, ended)), Some(version)) if at == version => ended.clone(),
            _ => Ended::default(),
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
        progress.done(&claim("7"), EndStep::Scrambled, &Ended::default());
        assert!(progress.has_done(&claim("7"), EndStep::Scrambled));
        assert!(!progress.has_done(&claim("7"), EndStep::SessionsRevoked));
        assert!(
            !progress.has_done(&claim("8"), EndStep::Scrambled),
            "a claim written since starts over"
        );
        progress.done(&claim("7"), EndStep::SessionsRevoked, &Ended::default());
        assert!(progress.has_done(&claim("7"), EndStep::Scrambled));
        progress.forget("entra-user-1");
        assert!(!progress.has_done(&claim("7"), EndStep::Scrambled));
    }

    #[test]
    fn what_an_end_did_so_far_is_kept_for_the_step_that_tells_it() {
        let progress = EndProgress::default();
        let ended = Ended {
            sessions_valid_from: None,
            methods_removed: 2,
        };
        progress.done(&claim("7"), EndStep::MethodsRemoved, &ended);
        assert_eq!(progress.ended_so_far(&claim("7")).methods_removed, 2);
        assert_eq!(progress.ended_so_far(&claim("8")).methods_removed, 0);
    }
}
