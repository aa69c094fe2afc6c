//! The two controllers of leases, fed by one lease watch: live leases go to the lease controller,
//! woken by everything a waiting lease waits for (its Secret, its pool, its namespace's labels, a
//! released user, a resolved pool); deleted leases (revocations) go to a controller of their own,
//! with its own queue and workers, so that a burst of new leases never delays the end of a
//! credential. The watch also sends the reaper to the claims of leases that disappear.

use std::sync::Arc;

use futures::channel::mpsc::UnboundedReceiver;
use futures::{Stream, StreamExt, future};
use k8s_openapi::api::coordination::v1::Lease as Claim;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use super::backoff::watch_backoff;
use super::cache_bounds::{paged, slim_lease};
use super::claims::Claims;
use super::context::Context;
use super::error_policy::{error_policy, failure_key, timed};
use super::lease;
use super::pool::{Pool, PoolKey};
use super::reaper::{ReaperHandle, ReaperInput};
use super::shared_watches::{LeaseTriggers, in_namespace};
use super::triggers::{self, lease_relevant_changes, released_users};
use crate::api::{EntraLease, PoolKind};

/// Starts the lease watch; returns its cache and a future running both lease controllers
/// (polled only once the shared caches are synced).
pub fn lease_controllers(
    ctx: Arc<Context>,
    changes: LeaseTriggers,
    reaper: ReaperHandle,
    pools_resolved: UnboundedReceiver<PoolKey>,
    expired: impl Stream<Item = ObjectRef<EntraLease>> + Send + 'static,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()> + Clone + Send + Sync + 'static,
) -> (Store<EntraLease>, impl Future<Output = ()>) {
    // The lease controller's own cache, without managedFields (about a third of each object).
    let (lease_store, lease_writer) = reflector::store::<EntraLease>();
    let leases_known = lease_store.clone();
    let lease_events = ctx
        .scope
        .watch(&ctx.client, paged(), move |namespace| {
            in_namespace(&leases_known, namespace)
        })
        .modify(slim_lease)
        .reflect(lease_writer)
        // A lease that disappears, or a (re)list that may have missed some, sends the reaper to
        // the claims: a claim whose lease is gone is ended from its record.
        .inspect(move |event| match event {
            Ok(watcher::Event::Delete(lease)) => {
                if let Some(uid) = lease.uid() {
                    reaper.send(ReaperInput::LeaseGone(uid));
                }
            }
            Ok(watcher::Event::InitDone) => reaper.send(ReaperInput::Everything),
            _ => {}
        })
        .applied_objects();
    let (deleted_tx, deleted_leases) = futures::channel::mpsc::unbounded();
    let live_leases = lease_events.filter_map(move |event| {
        let deleted = matches!(&event, Ok(lease) if lease.metadata.deletion_timestamp.is_some());
        future::ready(if deleted {
            let _ = deleted_tx.unbounded_send(event);
            None
        } else {
            Some(event)
        })
    });
    let revocation_controller = Controller::for_stream(deleted_leases, lease_store.clone())
        .with_config(config.clone())
        // Credentials at their end, which a busy lease controller would reach late.
        .reconcile_on(expired)
        .graceful_shutdown_on(shutdown.clone())
        .run(
            |lease, ctx| {
                let key = failure_key(lease.as_ref());
                timed(
                    "lease",
                    key,
                    ctx.clone(),
                    lease::reconcile_ending(lease, ctx),
                )
            },
            error_policy::<EntraLease>,
            ctx.clone(),
        )
        .for_each(|_| future::ready(()));

    let leases_of_pool = lease_store.clone();
    let leases_of_resolved_pool = lease_store.clone();
    let leases_of_namespace = lease_store.clone();
    let waiting_leases = lease_store.clone();
    let pools_of_waiting = ctx.pools.clone();
    // Claims trigger through a watch of its own: shared streams skip deletions, and a released
    // claim is exactly what waiting leases must see. The metadata is enough to trigger.
    let claim_metadata: Api<PartialObjectMeta<Claim>> =
        Api::namespaced(ctx.client.clone(), ctx.claims.namespace());
    let released_users = released_users(
        watcher(
            claim_metadata,
            watcher::Config::default().labels(&Claims::selector()),
        )
        .backoff(watch_backoff()),
    );
    let mut waiting = triggers::WaitingLeases::default();
    let wake_waiting = released_users.flat_map(move |released| {
        let woken = waiting.wake_for(&released, waiting_leases.state(), &pools_of_waiting);
        futures::stream::iter(woken)
    });
    let pool_changes = futures::stream::select(
        changes.pools.map(Pool::Namespaced),
        changes.cluster_pools.map(Pool::Cluster),
    );
    let lease_controller = Controller::for_stream(live_leases, lease_store.clone())
        .with_config(config)
        .reconcile_on(changes.lease_secrets)
        .reconcile_on(lease_relevant_changes(pool_changes).flat_map(move |pool| {
            futures::stream::iter(leases_of(&leases_of_pool, &pool.key(), |_| true))
        }))
        // A namespace's labels changed: its leases of cluster pools are judged again.
        .reconcile_on(changes.namespaces.flat_map(move |namespace: String| {
            futures::stream::iter(
                leases_of_namespace
                    .state()
                    .into_iter()
                    .filter(|lease| {
                        lease.namespace().as_deref() == Some(namespace.as_str())
                            && lease.spec.dynamic_secret_ref.kind
                                == PoolKind::ClusterEntraDynamicSecret
                    })
                    .map(|lease| ObjectRef::from(lease.as_ref()))
                    .collect::<Vec<_>>(),
            )
        }))
        // A released user wakes the leases waiting for a user of a pool that lists it.
        .reconcile_on(wake_waiting)
        // A pool whose users were just resolved wakes its leases that hold no credential yet.
        .reconcile_on(pools_resolved.flat_map(move |pool: PoolKey| {
            futures::stream::iter(leases_of(
                &leases_of_resolved_pool,
                &pool,
                triggers::is_pending,
            ))
        }))
        .graceful_shutdown_on(shutdown)
        .run(
            |lease, ctx| {
                let key = failure_key(lease.as_ref());
                timed("lease", key, ctx.clone(), lease::reconcile_live(lease, ctx))
            },
            error_policy::<EntraLease>,
            ctx,
        )
        .for_each(|_| future::ready(()));
    let both = async move {
        future::join(lease_controller, revocation_controller).await;
    };
    (lease_store, both)
}

/// The leases of `pool` (from the lease cache) that match `wanted`.
fn leases_of(
    leases: &Store<EntraLease>,
    pool: &PoolKey,
    wanted: impl Fn(&EntraLease) -> bool,
) -> Vec<ObjectRef<EntraLease>> {
    leases
        .state()
        .into_iter()
        .filter(|lease| {
            let namespace = lease.namespace().unwrap_or_default();
            PoolKey::of_lease(&namespace, &lease.spec.dynamic_secret_ref) == *pool && wanted(lease)
        })
        .map(|lease| ObjectRef::from(lease.as_ref()))
        .collect()
}
