//! What wakes a reconcile, and why each trigger exists: the trigger graph, in one place. The
//! wiring is in `controller/mod.rs`; the filters and choices are below.
//!
//! **A lease** is reconciled when:
//! - **it changes** (spec, annotations such as `kms.hanzo.ai/renew`, deletion): the user's own
//!   requests;
//! - **its requeue time comes** (the reconcile returns the next deadline: expiry, renewal point,
//!   rotation point, end of an overlap): time is a trigger too, and nothing polls;
//! - **its Secret changes or goes** ([`owners_of_touched`]): a Secret edited or deleted by a tenant
//!   is restored, or the credential ended, at once rather than at the next deadline;
//! - **its pool changes in a way that matters to it** ([`lease_relevant_changes`]: spec,
//!   readiness, deletion, resolved users; not the counts every issue rewrites, or each claim would
//!   wake the whole pool);
//! - **its namespace's labels change** (leases of cluster pools): a selector may stop or start
//!   serving it;
//! - **a user of its pool is released** ([`released_users`], [`WaitingLeases`]): a waiting lease
//!   (Pending, or a continuous lease waiting to rotate, [`wants_a_user`]) gets the user; a few at a
//!   time, longest-unwoken first, so that one release does not start a herd. A lease waiting for
//!   its namespace's share of a cluster pool ([`waits_for_share`]) is woken only by a release of
//!   its own namespace, which is what makes room for it: one of them per such release, beside
//!   the few;
//! - **its pool's users were just resolved** ([`is_pending`]): a new lease that waited for the
//!   first resolution goes on without waiting for its requeue.
//!
//! **A pool** is reconciled when it changes, when the Secret holding its app credential changes (a
//! rotated credential is validated at once), when a claim of its users changes (its counts and
//! holders), and every [`REVALIDATE_EVERY`](super::dynamic_secret) for Entra-side changes.
//!
//! **The reaper** looks when a lease disappears, when the lease watch (re)lists (so on every
//! start) and at each claim's overdue time: a lease whose finalizer was stripped, or deleted while
//! no operator ran, still has its credential ended (see `reaper.rs`).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, future};
use k8s_openapi::api::coordination::v1::Lease as Claim;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use super::claims;
use super::pool::{Pool, PoolKey, PoolStores};
use super::reasons::Reason;
use crate::api::{EntraLease, LeasePhase};

/// The leases owning the Secrets a watch event applied or deleted.
pub(super) fn owners_of_touched(
    event: Result<watcher::Event<PartialObjectMeta<Secret>>, watcher::Error>,
) -> Vec<ObjectRef<EntraLease>> {
    let secret = match event {
        Ok(watcher::Event::Apply(secret) | watcher::Event::InitApply(secret))
        | Ok(watcher::Event::Delete(secret)) => secret,
        Ok(_) => return Vec::new(),
        Err(error) => {
            tracing::warn!(%error, "the Secret watch failed; retrying");
            return Vec::new();
        }
    };
    let namespace = secret.namespace();
    secret
        .owner_references()
        .iter()
        .filter(|owner| owner.controller == Some(true) && owner.kind == "EntraLease")
        .map(|owner| {
            let lease = ObjectRef::new(&owner.name);
            match &namespace {
                Some(namespace) => lease.within(namespace),
                None => lease,
            }
        })
        .collect()
}

/// What a claim watch event says about users becoming free.
pub(super) enum Released {
    /// The claim of the user `id` (object id) was deleted; it was held by a lease of
    /// `namespace`.
    User {
        id: String,
        namespace: Option<String>,
    },
    /// The watch restarted: deletions may have been missed.
    Unknown,
}

pub(super) fn released_users<S>(
    claim_events: S,
) -> impl futures::Stream<Item = Released> + Send + 'static
where
    S: futures::Stream<Item = Result<watcher::Event<PartialObjectMeta<Claim>>, watcher::Error>>
        + Send
        + 'static,
{
    claim_events.filter_map(|event| {
        future::ready(match event {
            Ok(watcher::Event::Delete(claim)) => {
                let namespace = claim
                    .annotations()
                    .get(claims::HOLDER_ANNOTATION)
                    .and_then(|holder| holder.split_once('/'))
                    .map(|(namespace, _)| namespace.to_owned());
                claim
                    .labels()
                    .get(claims::USER_LABEL)
                    .map(|user| Released::User {
                        id: user.clone(),
                        namespace,
                    })
            }
            Ok(watcher::Event::InitDone) => Some(Released::Unknown),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%error, "the claim watch failed; retrying");
                None
            }
        })
    })
}

pub(super) fn is_pending(lease: &EntraLease) -> bool {
    lease.status.as_ref().and_then(|s| s.phase) == Some(LeasePhase::Pending)
}

/// Whether the lease is a continuous one waiting for a user to rotate to (by its status: only a
/// hint of whom to wake; the claims decide who gets the user).
pub(super) fn is_waiting_to_rotate(lease: &EntraLease) -> bool {
    lease.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.reason == Reason::RotationWaiting.as_str())
    })
}

/// Whether the lease waits for its namespace's share of a cluster pool
/// (`maxLeasesPerNamespace`), by its status: only a hint of whom to wake.
pub(super) fn waits_for_share(lease: &EntraLease) -> bool {
    is_pending(lease)
        && lease.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.reason == Reason::NamespaceShareExhausted.as_str())
        })
}

/// Whether the lease waits for a user: to start, or to rotate.
pub(super) fn wants_a_user(lease: &EntraLease) -> bool {
    is_pending(lease) || is_waiting_to_rotate(lease)
}

/// Whether the lease's pool lists the user (by object id), however it was configured.
pub(super) fn lists_user(pools: &PoolStores, lease: &EntraLease, user_id: &str) -> bool {
    pools.of_lease(lease).is_some_and(|pool| {
        pool.status().iter().flat_map(|s| &s.users).any(|u| {
            u.id.as_deref()
                .is_some_and(|id| id.eq_ignore_ascii_case(user_id))
        })
    })
}

/// The pool changes its leases depend on: its spec, readiness, deletion and resolved users, not
/// the counts and holders that every issue and release rewrites. Without this filter each claim
/// would wake every lease of the pool.
pub(super) fn lease_relevant_changes(
    pools: impl futures::Stream<Item = Pool> + Send + 'static,
) -> impl futures::Stream<Item = Pool> + Send + 'static {
    let mut seen: HashMap<PoolKey, u64> = HashMap::new();
    pools.filter(move |pool| {
        let fingerprint = lease_relevant_fingerprint(pool);
        let changed = seen.insert(pool.key(), fingerprint) != Some(fingerprint);
        future::ready(changed)
    })
}

fn lease_relevant_fingerprint(pool: &Pool) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    pool.metadata().generation.hash(&mut hasher);
    pool.metadata()
        .deletion_timestamp
        .is_some()
        .hash(&mut hasher);
    if let Some(status) = pool.status() {
        status.observed_generation.hash(&mut hasher);
        for condition in status.conditions.iter().filter(|c| c.type_ == "Ready") {
            condition.status.hash(&mut hasher);
        }
        for user in &status.users {
            (
                &user.configured,
                &user.id,
                &user.user_principal_name,
                &user.problem,
            )
                .hash(&mut hasher);
        }
    }
    hasher.finish()
}

/// A waiting lease as [`WaitingLeases`] weighs it: when it was last woken, and the lease.
type Waiting = (Option<Instant>, ObjectRef<EntraLease>, Arc<EntraLease>);

/// How many waiting leases a released user wakes.
const WAKE_PER_RELEASE: usize = 2;

/// Chooses the waiting leases a released user wakes. One user is free, so waking every waiting
/// lease would only start a herd of claim attempts that delays every other reconcile (expiries
/// among them). A few are enough, but not always the same few: releases often come together, and
/// the cache may still show the leases the last release woke as waiting. So each release wakes
/// the leases woken least recently, the longest waiting first among equals.
#[derive(Default)]
pub(super) struct WaitingLeases {
    last_woken: HashMap<ObjectRef<EntraLease>, Instant>,
}

impl WaitingLeases {
    /// The leases to reconcile for `released`, out of the cached `leases`.
    pub(super) fn wake_for(
        &mut self,
        released: &Released,
        leases: Vec<Arc<EntraLease>>,
        pools: &PoolStores,
    ) -> Vec<ObjectRef<EntraLease>> {
        let waiting: Vec<(ObjectRef<EntraLease>, Arc<EntraLease>)> = leases
            .into_iter()
            .filter(|lease| wants_a_user(lease))
            .map(|lease| (ObjectRef::from(lease.as_ref()), lease))
            .collect();
        self.last_woken
            .retain(|woken, _| waiting.iter().any(|(lease, _)| lease == woken));
        let candidates = waiting.into_iter().filter(|(_, lease)| match released {
            Released::User { id, .. } => lists_user(pools, lease, id),
            Released::Unknown => true,
        });
        let (share_waiting, mut chosen): (Vec<Waiting>, Vec<Waiting>) = candidates
            .map(|(key, lease)| (self.last_woken.get(&key).copied(), key, lease))
            .partition(|(_, _, lease)| {
                matches!(released, Released::User { .. }) && waits_for_share(lease)
            });
        // A release of its own namespace makes room for one lease waiting for its share.
        let share_woken = match released {
            Released::User {
                namespace: Some(namespace),
                ..
            } => share_waiting
                .into_iter()
                .filter(|(_, _, lease)| lease.namespace().as_deref() == Some(namespace.as_str()))
                .min_by(|(a_woken, _, a), (b_woken, _, b)| {
                    a_woken.cmp(b_woken).then_with(|| {
                        a.metadata
                            .creation_timestamp
                            .cmp(&b.metadata.creation_timestamp)
                    })
                }),
            _ => None,
        };
        if matches!(released, Released::User { .. }) {
            // Continuous leases waiting to rotate first: a freed user goes to them first.
            chosen.sort_by(|(a_woken, _, a), (b_woken, _, b)| {
                let rotates_first =
                    |lease: &EntraLease| std::cmp::Reverse(is_waiting_to_rotate(lease));
                rotates_first(a).cmp(&rotates_first(b)).then_with(|| {
                    a_woken.cmp(b_woken).then_with(|| {
                        a.metadata
                            .creation_timestamp
                            .cmp(&b.metadata.creation_timestamp)
                    })
                })
            });
            chosen.truncate(WAKE_PER_RELEASE);
        }
        chosen.extend(share_woken);
        let now = Instant::now();
        chosen
            .into_iter()
            .map(|(_, key, _)| {
                self.last_woken.insert(key.clone(), now);
                key
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DynamicSecretStatus, EntraDynamicSecret, LeaseStatus, PoolUser};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::runtime::reflector;
    use std::collections::HashSet;

    fn pool_of(ids: &[&str]) -> PoolStores {
        let mut pool = EntraDynamicSecret::new("pool", crate::fixtures::pool_spec(ids));
        pool.metadata.namespace = Some("team".into());
        pool.status = Some(DynamicSecretStatus {
            users: ids
                .iter()
                .map(|id| PoolUser {
                    configured: id.to_string(),
                    id: Some(id.to_string()),
                    ..PoolUser::default()
                })
                .collect(),
            ..DynamicSecretStatus::default()
        });
        let (namespaced, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Apply(pool));
        let (cluster, _) = reflector::store();
        PoolStores {
            namespaced,
            cluster,
        }
    }

    /// A lease of the pool, created `age` seconds before the others, in `phase`.
    fn lease(name: &str, age: i64, phase: LeasePhase) -> Arc<EntraLease> {
        let mut lease = EntraLease::new(name, crate::fixtures::lease_spec());
        lease.metadata.namespace = Some("team".into());
        lease.metadata.creation_timestamp = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 - age).unwrap(),
        ));
        lease.status = Some(LeaseStatus {
            phase: Some(phase),
            ..LeaseStatus::default()
        });
        Arc::new(lease)
    }

    fn user_released(id: &str, namespace: &str) -> Released {
        Released::User {
            id: id.into(),
            namespace: Some(namespace.into()),
        }
    }

    fn names(woken: &[ObjectRef<EntraLease>]) -> Vec<&str> {
        woken.iter().map(|lease| lease.name.as_str()).collect()
    }

    #[test]
    fn a_release_wakes_the_longest_waiting_leases_of_pools_listing_the_user() {
        let pools = pool_of(&["id-a", "id-b"]);
        let leases = vec![
            lease("new", 1, LeasePhase::Pending),
            lease("active", 9, LeasePhase::Active),
            lease("old", 5, LeasePhase::Pending),
            lease("older", 7, LeasePhase::Pending),
        ];
        let mut waiting = WaitingLeases::default();
        let released = user_released("ID-A", "team");
        let woken = waiting.wake_for(&released, leases.clone(), &pools);
        assert_eq!(names(&woken), ["older", "old"]);
        let elsewhere = user_released("id-other", "team");
        assert!(waiting.wake_for(&elsewhere, leases, &pools).is_empty());
    }

    #[test]
    fn releases_in_a_row_wake_different_leases_while_the_cache_still_shows_them_waiting() {
        // Three users freed at once, five leases waiting: the cache lags, so every release
        // sees all five as waiting. Each release must reach leases the others did not.
        let pools = pool_of(&["id-a", "id-b", "id-c"]);
        let leases: Vec<_> = (0..5)
            .map(|i| lease(&format!("waiting-{i}"), 10 - i, LeasePhase::Pending))
            .collect();
        let mut waiting = WaitingLeases::default();
        let mut woken = HashSet::new();
        for user in ["id-a", "id-b", "id-c"] {
            let released = user_released(user, "team");
            for lease in waiting.wake_for(&released, leases.clone(), &pools) {
                woken.insert(lease.name);
            }
        }
        assert_eq!(woken.len(), 5, "woken: {woken:?}");
    }

    /// A lease of the pool in `namespace`, Pending for its namespace's share.
    fn waiting_for_share(name: &str, namespace: &str, age: i64) -> Arc<EntraLease> {
        let mut lease = (*lease(name, age, LeasePhase::Pending)).clone();
        lease.metadata.namespace = Some(namespace.into());
        if let Some(status) = lease.status.as_mut() {
            status
                .conditions
                .push(k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                    type_: "Ready".into(),
                    status: "False".into(),
                    reason: Reason::NamespaceShareExhausted.as_str().into(),
                    message: String::new(),
                    last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                    observed_generation: None,
                });
        }
        Arc::new(lease)
    }

    #[test]
    fn a_lease_waiting_for_its_share_is_woken_by_its_own_namespaces_release_only() {
        let pools = pool_of(&["id-a", "id-b"]);
        let leases = vec![
            lease("older", 9, LeasePhase::Pending),
            lease("old", 8, LeasePhase::Pending),
            waiting_for_share("share-new", "team", 1),
            waiting_for_share("share-old", "team", 5),
            waiting_for_share("elsewhere", "other", 7),
        ];
        let mut waiting = WaitingLeases::default();
        let woken = waiting.wake_for(&user_released("id-a", "team"), leases.clone(), &pools);
        assert_eq!(
            names(&woken),
            ["older", "old", "share-old"],
            "one lease waiting for its share, beside the few"
        );
        let from_another = waiting.wake_for(&user_released("id-b", "another"), leases, &pools);
        assert!(
            !names(&from_another)
                .iter()
                .any(|n| n.starts_with("share") || *n == "elsewhere"),
            "a release of another namespace makes no room: {from_another:?}"
        );
    }

    #[test]
    fn a_restarted_claim_watch_wakes_every_waiting_lease() {
        let pools = pool_of(&["id-a"]);
        let leases: Vec<_> = (0..4)
            .map(|i| lease(&format!("waiting-{i}"), i, LeasePhase::Pending))
            .collect();
        let woken = WaitingLeases::default().wake_for(&Released::Unknown, leases, &pools);
        assert_eq!(woken.len(), 4);
    }
}
