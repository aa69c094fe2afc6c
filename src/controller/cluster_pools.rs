//! The controller of cluster pools (`ClusterEntraDynamicSecret`), and what stands in for their
//! watches in a process that leaves them to another release.

use std::sync::Arc;

use futures::{StreamExt, future};
use k8s_openapi::api::coordination::v1::Lease as Claim;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};

use super::backoff::watch_backoff;
use super::claims::{self, Claims};
use super::context::Context;
use super::dynamic_secret;
use super::error_policy::{error_policy, failure_key, timed};
use super::pool::PoolKey;
use crate::api::ClusterEntraDynamicSecret;

/// The controller of cluster pools: re-validated when their credential (a Secret in the
/// operator's namespace) or one of their claims changes.
pub(super) fn cluster_pool_controller(
    ctx: Arc<Context>,
    events: impl futures::Stream<Item = Arc<ClusterEntraDynamicSecret>> + Send + 'static,
    config: ControllerConfig,
    shutdown: impl future::Future<Output = ()> + Send + Sync + 'static,
) -> impl future::Future<Output = ()> {
    let (client, operator_namespace) = (&ctx.client, ctx.claims.namespace().to_owned());
    let credential_changes = watcher(
        Api::<PartialObjectMeta<Secret>>::namespaced(client.clone(), &operator_namespace),
        super::cache_bounds::paged(),
    )
    .backoff(watch_backoff())
    .touched_objects();
    let claim_changes = watcher(
        Api::<PartialObjectMeta<Claim>>::namespaced(client.clone(), &operator_namespace),
        watcher::Config::default().labels(&Claims::selector()),
    )
    .backoff(watch_backoff())
    .touched_objects();
    let pools = ctx.pools.cluster.clone();
    let pools_by_secret = pools.clone();
    Controller::for_shared_stream(events, pools)
        .with_config(config)
        .watches_stream(credential_changes, move |secret| {
            let name = secret.name_any();
            pools_by_secret
                .state()
                .into_iter()
                .filter(move |pool| pool.spec.credential_secret() == Some(&name))
                .map(|pool| ObjectRef::from(pool.as_ref()))
        })
        .watches_stream(claim_changes, |claim| {
            let pool = claim.annotations().get(claims::POOL_ANNOTATION)?;
            let key = PoolKey::from_annotation(pool)?;
            key.namespace
                .is_none()
                .then(|| ObjectRef::<ClusterEntraDynamicSecret>::new(&key.name))
        })
        .graceful_shutdown_on(shutdown)
        .run(
            |pool, ctx| {
                let key = failure_key(pool.as_ref());
                timed(
                    "cluster_dynamic_secret",
                    key,
                    ctx.clone(),
                    dynamic_secret::reconcile_cluster(pool, ctx),
                )
            },
            error_policy::<ClusterEntraDynamicSecret>,
            ctx,
        )
        .for_each(|_| future::ready(()))
}

/// A watch of a kind this process does not serve: an empty list, then nothing.
pub(super) fn nothing_to_watch<K: Send + 'static>()
-> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send {
    futures::stream::iter([Ok(watcher::Event::Init), Ok(watcher::Event::InitDone)])
        .chain(futures::stream::pending())
}
