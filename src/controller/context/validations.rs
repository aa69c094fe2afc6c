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
        let validation = Validation {
            made_for,
            credential_version,
            users,
            at: Instant::now(),
        };
        self.by_pool.lock().unwrap().insert(key, validation);
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
}
