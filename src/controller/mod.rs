//! The two controllers and the watches they share.

mod app_credential;
mod backoff;
mod cache_bounds;
pub mod claim_record;
mod claims;
mod cluster_pools;
mod context;
mod credential;
mod credential_copies;
mod dynamic_secret;
mod error;
mod events;
mod graph_reasons;
mod index;
mod kept_credential;
mod lease;
pub mod lease_decision;
mod lease_locks;
mod lease_rotation;
mod lease_status;
mod metrics;
mod pool;
mod protected_users;
mod reaper;
mod reasons;
mod revocation;
mod rollout;
pub mod rotation_decision;
mod service_account_token;
mod status;
mod triggers;
mod watch_scope;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, future};
use k8s_openapi::api::coordination::v1::Lease as Claim;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use backoff::watch_backoff;
use cache_bounds::{paged, slim, slim_lease, slim_namespace};
pub use claims::{CLAIM_FINALIZER, Claims, HeldClaim, claim_name};
use cluster_pools::{cluster_pool_controller, nothing_to_watch};
pub use context::Context;
pub use credential_copies::copy_name;
pub use error::Error;
pub use kept_credential::CREDENTIAL_COPY_LABEL;
use pool::{Pool, PoolKey, PoolStores};
use reaper::{ReaperHandle, ReaperInput};
pub use reasons::Reason;
use triggers::{lease_relevant_changes, owners_of_touched, released_users};
pub use watch_scope::WatchScope;

use crate::api::{Cloud, ClusterEntraDynamicSecret, EntraDynamicSecret, EntraLease, PoolKind};
use crate::graph::{EndpointOverrides, GraphClient};
use crate::health::Readiness;
use crate::metrics::metrics;
use crate::secret::{SecretSummary, managed_selector};
use crate::secret_types::SecretTypes;

/// How the controllers run.
pub struct Settings {
    /// Namespace of the user claims (the operator's own).
    pub claims_namespace: String,
    /// The namespaces whose pools, leases and Secrets the operator serves.
    pub scope: WatchScope,
    pub endpoints: EndpointOverrides,
    pub graph: GraphClient,
    /// Reconciles running at once, per controller.
    pub concurrency: u16,
    /// Name of this instance in events.
    pub instance: Option<String>,
    /// Set once the caches are synced and reconciles run.
    pub readiness: Arc<Readiness>,
    /// The clouds pools may issue in.
    pub allowed_clouds: Vec<Cloud>,
    /// Whether this process serves cluster pools (one release per cluster does).
    pub cluster_pools: bool,
    /// The types a lease's Secret may have.
    pub lease_secret_types: SecretTypes,
}

/// Runs both controllers until `shutdown` resolves.
pub async fn run(
    client: Client,
    settings: Settings,
    shutdown: impl future::Future<Output = ()> + Send + Sync + 'static,
) {
    let scope = settings.scope.clone();
    let settings_readiness = settings.readiness.clone();
    // Shared watches: one stream per kind feeds both the caches the reconcilers read and the
    // controllers' triggers.
    let (pools, pool_writer) = reflector::store_shared::<EntraDynamicSecret>(1024);
    let (cluster_pools, cluster_pool_writer) =
        reflector::store_shared::<ClusterEntraDynamicSecret>(1024);
    let (namespaces, namespace_writer) = reflector::store::<PartialObjectMeta<Namespace>>();
    let (secrets, mut secret_writer) = index::index::<SecretSummary>();
    let (claim_cache, mut claim_writer) = index::index::<HeldClaim>();
    let (reaper, reaper_inputs) = ReaperHandle::channel();
    let (resolved_pools, pools_resolved) = futures::channel::mpsc::unbounded();
    let pool_events = pool_writer.subscribe().expect("a shared store");
    let pool_events_for_leases = pool_writer.subscribe().expect("a shared store");
    let cluster_pool_events = cluster_pool_writer.subscribe().expect("a shared store");
    let cluster_pool_events_for_leases = cluster_pool_writer.subscribe().expect("a shared store");

    let pools_known = pools.clone();
    let pool_watch = scope
        .watch(&client, paged(), move |namespace| {
            in_namespace(&pools_known, namespace)
        })
        .modify(slim)
        .reflect_shared(pool_writer)
        .for_each(|_| future::ready(()));
    // One release per cluster serves cluster pools; the others see none of them.
    let cluster_pool_source = if settings.cluster_pools {
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
    // leases of cluster pools (the lease controller subscribes below).
    let (namespace_changes_tx, namespace_changes) = futures::channel::mpsc::unbounded();
    let namespace_source = if settings.cluster_pools {
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
    let pool_stores = PoolStores {
        namespaced: pools.clone(),
        cluster: cluster_pools.clone(),
    };
    // A change of a lease's Secret (edited, deleted) triggers the lease from the watch that
    // feeds the Secret cache, after the cache has it: a trigger from a watch of its own could
    // come first, and the reconcile would judge the Secret as it was.
    let (secret_changes_tx, secret_changes) = futures::channel::mpsc::unbounded();
    let secrets_known = secrets.clone();
    let secret_watch = scope
        .watch(
            &client,
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
    let claims = Claims::new(client.clone(), &settings.claims_namespace);
    let reaper_of_claims = reaper.clone();
    let claim_watch = watcher(
        claims.api().clone(),
        watcher::Config::default().labels(&Claims::selector()),
    )
    .backoff(watch_backoff())
    .for_each(move |event| {
        if let Ok(event) = &event {
            claim_writer.apply(event, HeldClaim::of);
            // Every claim is looked at when it would be overdue; the cache has it by then.
            if let watcher::Event::Apply(claim) | watcher::Event::InitApply(claim) = event {
                reaper_of_claims.watch_claim(&HeldClaim::of(claim));
            }
        }
        future::ready(())
    });

    let reporter = Reporter {
        controller: "entra-operator".into(),
        instance: settings.instance.clone(),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        scope: scope.clone(),
        graph: settings.graph,
        endpoints: settings.endpoints,
        claims,
        copies: credential_copies::CredentialCopies::new(
            client.clone(),
            &settings.claims_namespace,
        ),
        events: events::Events::new(client.clone(), reporter),
        pools: pool_stores.clone(),
        namespaces: namespaces.clone(),
        allowed_clouds: settings.allowed_clouds.clone(),
        lease_secret_types: settings.lease_secret_types.clone(),
        secrets: secrets.clone(),
        claim_cache: claim_cache.clone(),
        validations: Default::default(),
        status_writes: Default::default(),
        forbidden_users: Default::default(),
        refused_issues: Default::default(),
        rotation_queue: Default::default(),
        reap_backoff: context::FailureBackoff::for_reaps(),
        reconcile_backoff: context::FailureBackoff::for_reconciles(),
        lease_locks: Default::default(),
        resolved_pools,
    });
    let config = ControllerConfig::default().concurrency(settings.concurrency);
    let shutdown = future::Shared::clone(&futures::FutureExt::shared(Box::pin(shutdown)));

    let claim_metadata: Api<PartialObjectMeta<Claim>> =
        Api::namespaced(client.clone(), &settings.claims_namespace);
    // The lease controller's own cache, without managedFields (about a third of each object).
    let (lease_store, lease_writer) = reflector::store::<EntraLease>();
    let reaper_of_leases = reaper.clone();
    let leases_known = lease_store.clone();
    let lease_events = scope
        .watch(&client, paged(), move |namespace| {
            in_namespace(&leases_known, namespace)
        })
        .modify(slim_lease)
        .reflect(lease_writer)
        // A lease that disappears, or a (re)list that may have missed some, sends the reaper to
        // the claims: a claim whose lease is gone is ended from its record.
        .inspect(move |event| match event {
            Ok(watcher::Event::Delete(lease)) => {
                if let Some(uid) = lease.uid() {
                    reaper_of_leases.send(ReaperInput::LeaseGone(uid));
                }
            }
            Ok(watcher::Event::InitDone) => reaper_of_leases.send(ReaperInput::Everything),
            _ => {}
        })
        .applied_objects();
    // Deleted leases (revocations) go to a controller of their own, with its own queue and
    // workers: a burst of new leases never delays the end of a credential.
    let (deleted_tx, deleted_leases) = futures::channel::mpsc::unbounded();
    let lease_events = lease_events.filter_map(move |event| {
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
        .graceful_shutdown_on(shutdown.clone())
        .run(
            |lease, ctx| {
                let key = failure_key(lease.as_ref());
                timed("lease", key, ctx.clone(), lease::reconcile(lease, ctx))
            },
            error_policy::<EntraLease>,
            ctx.clone(),
        )
        .for_each(|_| future::ready(()));
    let leases =
        Controller::for_stream(lease_events, lease_store.clone()).with_config(config.clone());
    let (snapshot_leases, snapshot_pools) = (lease_store.clone(), pool_stores.clone());
    let (snapshot_claims, claims_namespace) =
        (claim_cache.clone(), settings.claims_namespace.clone());
    metrics().set_snapshot_source(move || {
        self::metrics::snapshot(
            &snapshot_leases,
            &snapshot_pools,
            &snapshot_claims,
            &claims_namespace,
        )
    });
    let leases_of_pool = lease_store.clone();
    let leases_of_resolved_pool = lease_store.clone();
    let leases_of_namespace = lease_store.clone();
    let waiting_leases = lease_store.clone();
    let pools_of_waiting = pool_stores.clone();
    // Claims trigger through a watch of its own: shared streams skip deletions, and a released
    // claim is exactly what waiting leases must see. The metadata is enough to trigger.
    let released_users = released_users(
        watcher(
            claim_metadata.clone(),
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
        pool_events_for_leases.map(Pool::Namespaced),
        cluster_pool_events_for_leases.map(Pool::Cluster),
    );
    let lease_controller = leases
        .reconcile_on(secret_changes)
        .reconcile_on(lease_relevant_changes(pool_changes).flat_map(move |pool| {
            futures::stream::iter(leases_of(&leases_of_pool, &pool.key(), |_| true))
        }))
        // A namespace's labels changed: its leases of cluster pools are judged again.
        .reconcile_on(namespace_changes.flat_map(move |namespace: String| {
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
        .graceful_shutdown_on(shutdown.clone())
        .run(
            |lease, ctx| {
                let key = failure_key(lease.as_ref());
                timed("lease", key, ctx.clone(), lease::reconcile_live(lease, ctx))
            },
            error_policy::<EntraLease>,
            ctx.clone(),
        )
        .for_each(|_| future::ready(()));

    // A changed client secret re-validates its dynamic secrets at once. Metadata is enough to
    // notice the change, and keeps the values of unrelated Secrets out of this process.
    // No cache behind it: a relist's missed deletions need not be told.
    let client_secret_changes = scope
        .watch::<PartialObjectMeta<Secret>>(&client, paged(), |_| Vec::new())
        .touched_objects();
    let claim_changes = watcher(
        claim_metadata,
        watcher::Config::default().labels(&Claims::selector()),
    )
    .backoff(watch_backoff())
    .touched_objects();
    let pools_by_secret = pools.clone();
    let pools_for_readiness = pools.clone();
    let pool_controller = Controller::for_shared_stream(pool_events, pools)
        .with_config(config.clone())
        .watches_stream(client_secret_changes, move |secret| {
            let namespace = secret.namespace();
            let name = secret.name_any();
            pools_by_secret
                .state()
                .into_iter()
                .filter(move |pool| {
                    pool.namespace() == namespace && pool.spec.credential_secret() == Some(&name)
                })
                .map(|pool| ObjectRef::from(pool.as_ref()))
        })
        .watches_stream(claim_changes, |claim| {
            let pool = claim.annotations().get(claims::POOL_ANNOTATION)?;
            let key = PoolKey::from_annotation(pool)?;
            Some(ObjectRef::<EntraDynamicSecret>::new(&key.name).within(key.namespace.as_ref()?))
        })
        .graceful_shutdown_on(shutdown.clone())
        .run(
            |pool, ctx| {
                let key = failure_key(pool.as_ref());
                timed(
                    "dynamic_secret",
                    key,
                    ctx.clone(),
                    dynamic_secret::reconcile(pool, ctx),
                )
            },
            error_policy::<EntraDynamicSecret>,
            ctx.clone(),
        )
        .for_each(|_| future::ready(()));
    let cluster_pool_controller = cluster_pool_controller(
        &client,
        &settings.claims_namespace,
        cluster_pool_events,
        cluster_pools.clone(),
        config,
        shutdown.clone(),
        ctx.clone(),
    );

    // Reconciles read the caches, so they start once every cache has its first full list: a lease
    // must never be judged against a dynamic secret or a claim the cache has not loaded yet.
    let pools_ready = pools_for_readiness;
    let readiness = settings_readiness;
    let sweeper_task = sweep_credential_copies(ctx.clone());
    let reaper_task = reaper::run(ctx, lease_store.clone(), reaper, reaper_inputs);
    let controllers = async move {
        let (a, b, c, d, e) = tokio::join!(
            pools_ready.wait_until_ready(),
            cluster_pools.wait_until_ready(),
            namespaces.wait_until_ready(),
            secrets.wait_until_ready(),
            claim_cache.wait_until_ready()
        );
        if a.is_err() || b.is_err() || c.is_err() || d.is_err() || e.is_err() {
            return;
        }
        tracing::info!("caches synced; reconciling");
        readiness.set(true);
        // The reaper stops with the controllers (on shutdown): an interrupted reap is repeated
        // by the next leader, as after a crash.
        tokio::select! {
            _ = future::join4(lease_controller, revocation_controller, pool_controller, cluster_pool_controller) => {}
            _ = reaper_task => {}
            _ = sweeper_task => {}
        }
    };
    tokio::select! {
        _ = controllers => {}
        _ = pool_watch => tracing::error!("the dynamic secret watch ended"),
        _ = cluster_pool_watch => tracing::error!("the cluster dynamic secret watch ended"),
        _ = namespace_watch => tracing::error!("the namespace watch ended"),
        _ = secret_watch => tracing::error!("the Secret watch ended"),
        _ = claim_watch => tracing::error!("the claim watch ended"),
    }
}

/// The objects of `namespace` in `store`, for telling which ones a relist no longer shows.
fn in_namespace<K: kube::Resource + Clone>(store: &reflector::Store<K>, namespace: &str) -> Vec<K>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    store
        .state()
        .into_iter()
        .filter(|object| object.meta().namespace.as_deref() == Some(namespace))
        .map(|object| object.as_ref().clone())
        .collect()
}

/// The leases of `pool` (from the lease cache) that match `wanted`.
fn leases_of(
    leases: &reflector::Store<EntraLease>,
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

/// How often the credential copies nobody needs are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Deletes, every [`SWEEP_EVERY`], the credential copies no claim refers to and no pool uses.
async fn sweep_credential_copies(ctx: Arc<Context>) {
    let mut ticks = tokio::time::interval(SWEEP_EVERY);
    loop {
        ticks.tick().await;
        let referenced: std::collections::HashSet<String> = ctx
            .claim_cache
            .find(ctx.claims.namespace(), |claim| claim.record.is_some())
            .into_iter()
            .filter_map(|(_, claim)| claim.record?.app.credential.secret_name.clone())
            .collect();
        if let Err(error) = ctx.copies.sweep(&referenced).await {
            tracing::warn!(%error, "could not sweep the credential copies");
        }
    }
}

/// Records how long a reconcile took and, when it failed, what kind of error it was; a success
/// resets the object's backoff.
async fn timed(
    controller: &'static str,
    key: String,
    ctx: Arc<Context>,
    reconcile: impl future::Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile.await;
    let kind = result.as_ref().err().map(Error::metric_label);
    metrics().observe_reconcile(controller, started.elapsed(), kind);
    if result.is_ok() {
        ctx.reconcile_backoff.succeeded(&key);
    }
    result
}

fn failure_key<K: kube::Resource<DynamicType = ()>>(object: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        object.meta().namespace.as_deref().unwrap_or_default(),
        object.meta().name.as_deref().unwrap_or_default()
    )
}

/// Failed reconciles retry with a backoff of their own per object (1 s doubling to 30 s); the
/// error is logged (it never carries secrets). Acting on a stale copy is no failure: look again.
fn error_policy<K: kube::Resource<DynamicType = ()>>(
    object: Arc<K>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    let name = object.meta().name.as_deref().unwrap_or_default();
    let waiting_for_leases = matches!(error, Error::Finalizer(inner)
        if matches!(inner.as_ref(), kube::runtime::finalizer::Error::CleanupFailed(Error::WaitingForLeases(_))));
    if waiting_for_leases {
        tracing::info!(object = %name, "waiting for leases to end");
        return Action::requeue(Duration::from_secs(2));
    }
    if error.is_stale() {
        tracing::debug!(object = %name, %error, "acted on a stale copy; looking again");
        return Action::requeue(Duration::from_millis(500));
    }
    tracing::warn!(
        object = %name,
        namespace = %object.meta().namespace.as_deref().unwrap_or_default(),
        kind = error.metric_label(),
        %error,
        "reconcile failed"
    );
    Action::requeue(ctx.reconcile_backoff.failed(&failure_key(object.as_ref())))
}
