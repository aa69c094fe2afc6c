//! The watches the controllers share: one stream per kind feeds both the caches the reconcilers
//! read and the controllers' triggers. Reconciles start only once every cache has its first full
//! list, and the process stops when any of these watches ends.

use std::sync::Arc;

use futures::channel::mpsc::{UnboundedReceiver, unbounded};
use futures::{StreamExt, future};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, ReflectHandle, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::backoff::watch_backoff;
use super::cache_bounds::{paged, slim, slim_namespace};
use super::claims::{Claims, HeldClaim};
use super::cluster_pools::nothing_to_watch;
use super::index::{self, Index};
use super::pool::PoolStores;
use super::reaper::ReaperHandle;
use super::triggers::owners_of_touched;
use super::watch_scope::WatchScope;
use crate::api::{ClusterEntraDynamicSecret, EntraDynamicSecret, EntraLease};
use crate::secret::{SecretSummary, managed_selector};

/// What the shared watches keep, read by the reconcilers without an API call.
pub struct SharedCaches {
    pub pools: Store<EntraDynamicSecret>,
    pub cluster_pools: Store<ClusterEntraDynamicSecret>,
    /// The namespaces' metadata (their labels decide which cluster pools serve them).
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// Every Secret the operator manages, summarised.
    pub secrets: Index<SecretSummary>,
    /// Every user claim: its holder and record.
    pub claims: Index<HeldClaim>,
}

/// What the shared watches tell the controllers.
pub struct SharedChanges {
    /// Pools, for their own controllers.
    pub pools: ReflectHandle<EntraDynamicSecret>,
    pub cluster_pools: ReflectHandle<ClusterEntraDynamicSecret>,
    pub for_leases: LeaseTriggers,
}

/// What the shared watches tell the lease controller.
pub struct LeaseTriggers {
    pub pools: ReflectHandle<EntraDynamicSecret>,
    pub cluster_pools: ReflectHandle<ClusterEntraDynamicSecret>,
    /// The names of namespaces whose labels may have changed.
    pub namespaces: UnboundedReceiver<String>,
    /// The leases whose Secret changed (edited, deleted), told once the Secret cache has it: a
    /// trigger from a watch of its own could come first, and the reconcile would judge the
    /// Secret as it was.
    pub lease_secrets: UnboundedReceiver<ObjectRef<EntraLease>>,
}

impl SharedCaches {
    pub fn pool_stores(&self) -> PoolStores {
        PoolStores {
            namespaced: self.pools.clone(),
            cluster: self.cluster_pools.clone(),
        }
    }

    /// Waits until every cache has its first full list: a lease must never be judged against a
    /// dynamic secret or a claim the cache has not loaded yet. False when one never will.
    pub async fn synced(&self) -> bool {
        let (pools, cluster_pools, namespaces, secrets, claims) = tokio::join!(
            self.pools.wait_until_ready(),
            self.cluster_pools.wait_until_ready(),
            self.namespaces.wait_until_ready(),
            self.secrets.wait_until_ready(),
            self.claims.wait_until_ready()
        );
        pools.is_ok()
            && cluster_pools.is_ok()
            && namespaces.is_ok()
            && secrets.is_ok()
            && claims.is_ok()
    }
}

/// Starts the shared watches: their caches, what they tell the controllers, and a future that
/// runs them and resolves when one ends. Every claim the claim watch sees goes to `reaper`.
pub fn watch_shared(
    client: &Client,
    scope: &WatchScope,
    claims_namespace: &str,
    cluster_pools_served: bool,
    reaper: ReaperHandle,
) -> (
    SharedCaches,
    SharedChanges,
    impl Future<Output = ()> + use<>,
) {
    let (pools, pool_writer) = reflector::store_shared::<EntraDynamicSecret>(1024);
    let (cluster_pools, cluster_pool_writer) =
        reflector::store_shared::<ClusterEntraDynamicSecret>(1024);
    let (namespaces, namespace_writer) = reflector::store::<PartialObjectMeta<Namespace>>();
    let (secrets, mut secret_writer) = index::index::<SecretSummary>();
    let (claims, mut claim_writer) = index::index::<HeldClaim>();
    let (namespace_changes_tx, namespace_changes) = unbounded();
    let (secret_changes_tx, secret_changes) = unbounded();
    let changes = SharedChanges {
        pools: pool_writer.subscribe().expect("a shared store"),
        cluster_pools: cluster_pool_writer.subscribe().expect("a shared store"),
        for_leases: LeaseTriggers {
            pools: pool_writer.subscribe().expect("a shared store"),
            cluster_pools: cluster_pool_writer.subscribe().expect("a shared store"),
            namespaces: namespace_changes,
            lease_secrets: secret_changes,
        },
    };

    let pools_known = pools.clone();
    let pool_watch = scope
        .watch(client, paged(), move |namespace| {
            in_namespace(&pools_known, namespace)
        })
        .modify(slim)
        .reflect_shared(pool_writer)
        .for_each(|_| future::ready(()));
    // One release per cluster serves cluster pools; the others see none of them.
    let cluster_pool_source = if cluster_pools_served {
        watcher(
            Api::<ClusterEntraDynamicSecret>::all(client.clone()),
            paged(),
        )
        .backoff(watch_backoff())
        .boxed()
    } else {
        nothing_to_watch().boxed()
    };
    let cluster_pool_watch = cluster_pool_source
        .modify(slim)
        .reflect_shared(cluster_pool_writer)
        .for_each(|_| future::ready(()));
    // Namespaces' labels decide which cluster pools serve them: a change wakes the namespace's
    // leases of cluster pools.
    let namespace_source = if cluster_pools_served {
        watcher(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            paged(),
        )
        .backoff(watch_backoff())
        .boxed()
    } else {
        nothing_to_watch().boxed()
    };
    let namespace_watch = namespace_source
        .modify(slim_namespace)
        .reflect(namespace_writer)
        .touched_objects()
        .for_each(move |namespace| {
            if let Ok(namespace) = namespace {
                let _ = namespace_changes_tx.unbounded_send(namespace.name_any());
            }
            future::ready(())
        });
    let secrets_known = secrets.clone();
    let secret_watch = scope
        .watch(
            client,
            paged().labels(&managed_selector()),
            move |namespace| {
                let summaries = secrets_known.find(namespace, |_| true);
                summaries
                    .into_iter()
                    .map(|(name, summary)| summary.stand_in(namespace, &name))
                    .collect()
            },
        )
        .for_each(move |event| {
            if let Ok(event) = &event {
                secret_writer.apply_keeping(event, SecretSummary::of_watched);
            }
            // The Secret cache is updated by now, so the owning lease's reconcile reads the change.
            for lease in owners_of_touched(event) {
                let _ = secret_changes_tx.unbounded_send(lease);
            }
            future::ready(())
        });
    let claim_watch = watcher(
        Claims::new(client.clone(), claims_namespace).api().clone(),
        watcher::Config::default().labels(&Claims::selector()),
    )
    .backoff(watch_backoff())
    .for_each(move |event| {
        if let Ok(event) = &event {
            claim_writer.apply(event, HeldClaim::of);
            // Every claim is looked at when it would be overdue; the cache has it by then.
            if let watcher::Event::Apply(claim) | watcher::Event::InitApply(claim) = event {
                reaper.watch_claim(&HeldClaim::of(claim));
            }
        }
        future::ready(())
    });

    let caches = SharedCaches {
        pools,
        cluster_pools,
        namespaces,
        secrets,
        claims,
    };
    let until_one_ends = async move {
        tokio::select! {
            _ = pool_watch => tracing::error!("the dynamic secret watch ended"),
            _ = cluster_pool_watch => tracing::error!("the cluster dynamic secret watch ended"),
            _ = namespace_watch => tracing::error!("the namespace watch ended"),
            _ = secret_watch => tracing::error!("the Secret watch ended"),
            _ = claim_watch => tracing::error!("the claim watch ended"),
        }
    };
    (caches, changes, until_one_ends)
}

/// The objects of `namespace` in `store`, for telling which ones a relist no longer shows.
pub fn in_namespace<K: kube::Resource + Clone>(store: &Store<K>, namespace: &str) -> Vec<K>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    store
        .state()
        .into_iter()
        .filter(|object: &Arc<K>| object.meta().namespace.as_deref() == Some(namespace))
        .map(|object| object.as_ref().clone())
        .collect()
}
