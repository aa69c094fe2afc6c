//! Each pool's users as this process last resolved them through Graph: leases draw their
//! candidates from it, and a pool re-validates only when it is stale. Kept here rather than read
//! back from the status, whose cached copy may be an older write.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::api::PoolUser;
use crate::controller::pool::{Pool, PoolKey};

/// Resolutions, by pool.
#[derive(Default)]
pub struct Validations {
    by_pool: Mutex<HashMap<PoolKey, Validation>>,
    /// How far each unfinished resolution got: one that waits its turn in the app's Graph line
    /// goes on from there, so a pool of many users under a busy app finishes instead of asking
    /// Graph for its first users again each time.
    unfinished: Mutex<HashMap<PoolKey, Unfinished>>,
}

/// An unfinished resolution of one pool object with one credential.
struct Unfinished {
    made_for: PoolVersion,
    credential_version: Option<String>,
    started: Instant,
    progress: Progress,
}

/// What a resolution asked Graph so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    /// The configured users looked up, in order, as Graph answered.
    pub looked_up: Vec<PoolUser>,
    pub protection: ProtectionProgress,
    pub methods: MethodsProgress,
}

/// How far the reading of users' memberships (protected users) got.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProtectionProgress {
    /// The index of the next user to read.
    pub next: usize,
    /// The users before `next` found protected (or gone), by index, with their problem.
    pub marked: Vec<(usize, String)>,
}

/// How far the listing of idle users' sign-in methods got.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MethodsProgress {
    /// The index of the next user to list.
    pub next: usize,
    /// Whether any listing succeeded.
    pub listed_any: bool,
    /// The methods besides the password found on the users before `next`.
    pub found: Vec<Option<u32>>,
}

/// A resolution of a pool's users, valid while its object, spec and credential are unchanged.
struct Validation {
    /// The pool object it was made for: a pool recreated under the same name starts over.
    made_for: PoolVersion,
    /// The resourceVersion of the object the credential was read from (a Secret), if any.
    credential_version: Option<String>,
    users: Vec<PoolUser>,
    at: Instant,
}

/// One pool object at one spec generation.
#[derive(Clone, Debug, PartialEq)]
struct PoolVersion {
    uid: Option<String>,
    generation: Option<i64>,
}

impl PoolVersion {
    fn of(pool: &Pool) -> Self {
        Self {
            uid: pool.metadata().uid.clone(),
            generation: pool.metadata().generation,
        }
    }
}

impl Validations {
    /// Remembers `users` as `pool`'s resolution now, made with the credential at
    /// `credential_version`.
    pub fn record(&self, pool: &Pool, credential_version: Option<String>, users: Vec<PoolUser>) {
        self.record_version(pool.key(), PoolVersion::of(pool), credential_version, users);
    }

    fn record_version(
        &self,
        key: PoolKey,
        made_for: PoolVersion,
        credential_version: Option<String>,
        users: Vec<PoolUser>,
    ) {
        self.unfinished.lock().unwrap().remove(&key);
        let validation = Validation {
            made_for,
            credential_version,
            users,
            at: Instant::now(),
        };
        self.by_pool.lock().unwrap().insert(key, validation);
    }

    /// What an unfinished resolution of `pool` as it is now, with its credential at
    /// `credential_version`, started less than `max_age` ago, got so far; else nothing.
    pub fn progress(
        &self,
        pool: &Pool,
        credential_version: &Option<String>,
        max_age: Duration,
    ) -> Progress {
        let made_for = PoolVersion::of(pool);
        self.progress_of(&pool.key(), &made_for, credential_version, max_age)
    }

    fn progress_of(
        &self,
        key: &PoolKey,
        made_for: &PoolVersion,
        credential_version: &Option<String>,
        max_age: Duration,
    ) -> Progress {
        let unfinished = self.unfinished.lock().unwrap();
        unfinished
            .get(key)
            .filter(|u| {
                u.made_for == *made_for
                    && u.credential_version == *credential_version
                    && u.started.elapsed() < max_age
            })
            .map(|u| u.progress.clone())
            .unwrap_or_default()
    }

    /// Keeps how far a resolution of `pool` got, for its next attempt.
    pub fn keep_progress(
        &self,
        pool: &Pool,
        credential_version: &Option<String>,
        max_age: Duration,
        progress: Progress,
    ) {
        let made_for = PoolVersion::of(pool);
        self.keep_progress_of(pool.key(), made_for, credential_version, max_age, progress);
    }

    fn keep_progress_of(
        &self,
        key: PoolKey,
        made_for: PoolVersion,
        credential_version: &Option<String>,
        max_age: Duration,
        progress: Progress,
    ) {
        let mut unfinished = self.unfinished.lock().unwrap();
        // The attempts of one resolution share its start, so its answers age from the first;
        // a resolution too old to go on starts afresh.
        let started = unfinished
            .get(&key)
            .filter(|u| {
                u.made_for == made_for
                    && u.credential_version == *credential_version
                    && u.started.elapsed() < max_age
            })
            .map_or_else(Instant::now, |u| u.started);
        unfinished.insert(
            key,
            Unfinished {
                made_for,
                credential_version: credential_version.clone(),
                started,
                progress,
            },
        );
    }

    /// `pool`'s users, if they were resolved for the pool as it is now (same object, same
    /// generation), however long ago.
    pub fn users_of(&self, pool: &Pool) -> Option<Vec<PoolUser>> {
        self.users_of_version(&pool.key(), &PoolVersion::of(pool))
    }

    fn users_of_version(&self, key: &PoolKey, version: &PoolVersion) -> Option<Vec<PoolUser>> {
        let by_pool = self.by_pool.lock().unwrap();
        let validation = by_pool.get(key)?;
        (validation.made_for == *version).then(|| validation.users.clone())
    }

    /// `pool`'s users, if they were resolved for the pool as it is now, with its credential at
    /// `credential_version`, less than `max_age` ago: no need to ask Graph again.
    pub fn reusable(
        &self,
        pool: &Pool,
        credential_version: &Option<String>,
        max_age: Duration,
    ) -> Option<Vec<PoolUser>> {
        self.reusable_version(
            &pool.key(),
            &PoolVersion::of(pool),
            credential_version,
            max_age,
        )
    }

    fn reusable_version(
        &self,
        key: &PoolKey,
        version: &PoolVersion,
        credential_version: &Option<String>,
        max_age: Duration,
    ) -> Option<Vec<PoolUser>> {
        let by_pool = self.by_pool.lock().unwrap();
        let validation = by_pool.get(key)?;
        let reusable = validation.made_for == *version
            && validation.credential_version == *credential_version
            && validation.at.elapsed() < max_age;
        reusable.then(|| validation.users.clone())
    }

    /// Drops `pool`'s resolution, so that its next reconcile asks Graph.
    pub fn forget(&self, pool: &PoolKey) {
        self.by_pool.lock().unwrap().remove(pool);
        self.unfinished.lock().unwrap().remove(pool);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PoolKind;

    const AN_HOUR: Duration = Duration::from_secs(3600);

    fn key() -> PoolKey {
        PoolKey {
            kind: PoolKind::EntraDynamicSecret,
            namespace: Some("team".into()),
            name: "pool".into(),
        }
    }

    fn version(uid: &str, generation: i64) -> PoolVersion {
        PoolVersion {
            uid: Some(uid.into()),
            generation: Some(generation),
        }
    }

    fn users() -> Vec<PoolUser> {
        vec![PoolUser {
            configured: "alice@contoso.com".into(),
            ..PoolUser::default()
        }]
    }

    fn recorded() -> Validations {
        let validations = Validations::default();
        validations.record_version(key(), version("uid", 1), Some("7".into()), users());
        validations
    }

    #[test]
    fn a_resolution_serves_the_pool_it_was_made_for() {
        let validations = recorded();
        assert_eq!(
            validations.users_of_version(&key(), &version("uid", 1)),
            Some(users())
        );
    }

    #[test]
    fn a_changed_or_recreated_pool_has_no_resolution() {
        let validations = recorded();
        assert_eq!(
            validations.users_of_version(&key(), &version("uid", 2)),
            None
        );
        assert_eq!(
            validations.users_of_version(&key(), &version("new", 1)),
            None
        );
    }

    #[test]
    fn a_fresh_resolution_with_the_same_credential_is_reused() {
        let validations = recorded();
        let reused =
            validations.reusable_version(&key(), &version("uid", 1), &Some("7".into()), AN_HOUR);
        assert_eq!(reused, Some(users()));
    }

    #[test]
    fn a_changed_credential_or_an_old_resolution_asks_graph_again() {
        let validations = recorded();
        let current = version("uid", 1);
        let changed = &Some("8".into());
        assert_eq!(
            validations.reusable_version(&key(), &current, changed, AN_HOUR),
            None
        );
        let same = &Some("7".into());
        assert_eq!(
            validations.reusable_version(&key(), &current, same, Duration::ZERO),
            None
        );
    }

    #[test]
    fn a_forgotten_resolution_is_gone() {
        let validations = recorded();
        validations.forget(&key());
        assert_eq!(
            validations.users_of_version(&key(), &version("uid", 1)),
            None
        );
    }

    fn halfway() -> Progress {
        Progress {
            looked_up: users(),
            protection: ProtectionProgress::default(),
            methods: MethodsProgress {
                next: 1,
                listed_any: true,
                found: vec![Some(2)],
            },
        }
    }

    #[test]
    fn an_unfinished_resolution_goes_on_from_where_it_stopped() {
        let validations = Validations::default();
        let current = version("uid", 1);
        let credential = &Some("7".into());
        validations.keep_progress_of(key(), current.clone(), credential, AN_HOUR, halfway());
        assert_eq!(
            validations.progress_of(&key(), &current, credential, AN_HOUR),
            halfway()
        );
    }

    #[test]
    fn progress_of_another_pool_version_credential_or_age_is_not_taken_over() {
        let validations = Validations::default();
        let credential = &Some("7".into());
        validations.keep_progress_of(key(), version("uid", 1), credential, AN_HOUR, halfway());
        let none = Progress::default();
        let of =
            |v: &PoolVersion, c: &Option<String>, age| validations.progress_of(&key(), v, c, age);
        assert_eq!(of(&version("uid", 2), credential, AN_HOUR), none);
        assert_eq!(of(&version("uid", 1), &Some("8".into()), AN_HOUR), none);
        assert_eq!(of(&version("uid", 1), credential, Duration::ZERO), none);
    }

    #[test]
    fn a_finished_resolution_drops_its_progress() {
        let validations = Validations::default();
        let current = version("uid", 1);
        let credential = Some("7".into());
        validations.keep_progress_of(key(), current.clone(), &credential, AN_HOUR, halfway());
        validations.record_version(key(), current.clone(), credential.clone(), users());
        assert_eq!(
            validations.progress_of(&key(), &current, &credential, AN_HOUR),
            Progress::default()
        );
    }

    #[test]
    fn a_resolution_too_old_to_go_on_starts_afresh_and_can_go_on_again() {
        let validations = Validations::default();
        let current = version("uid", 1);
        let credential = &Some("7".into());
        validations.keep_progress_of(key(), current.clone(), credential, AN_HOUR, halfway());
        // Older than the limit: not taken over, and what it keeps next starts a new clock.
        assert_eq!(
            validations.progress_of(&key(), &current, credential, Duration::ZERO),
            Progress::default()
        );
        validations.keep_progress_of(
            key(),
            current.clone(),
            credential,
            Duration::ZERO,
            halfway(),
        );
        assert_eq!(
            validations.progress_of(&key(), &current, credential, AN_HOUR),
            halfway()
        );
    }
}
