//! The controller of namespaced pools (`EntraDynamicSecret`): re-validated when the Secret
//! holding their credential or one of their claims changes.

use std::sync::Arc;

use futures::{StreamExt, future};
use k8s_openapi::api::coordination::v1::Lease as Claim;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector::{ObjectRef, ReflectHandle};
use kube::runtime::{WatchStreamExt, watcher};

use super::backoff::watch_backoff;
use super::cache_bounds::paged;
use super::claims::{self, Claims};
use super::context::Context;
use super::dynamic_secret;
use super::error_policy::{error_policy, failure_key, timed};
use super::pool::PoolKey;
use crate::api::EntraDynamicSecret;

/// The controller of namespaced pools, until `shutdown`.
pub fn pool_controller(
    ctx: Arc<Context>,
    events: ReflectHandle<EntraDynamicSecret>,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> impl Future<Output = ()> {
    // A changed client secret re-validates its dynamic secrets at once. Metadata is enough to
    // notice the change, and keeps the values of unrelated Secrets out of this process.
    // No cache behind it: a relist's missed deletions need not be told.
    let client_secret_changes = ctx
        .scope
        .watch::<PartialObjectMeta<Secret>>(&ctx.client, paged(), |_| Vec::new())
        .touched_objects();
    let claim_metadata: Api<PartialObjectMeta<Claim>> =
        Api::namespaced(ctx.client.clone(), ctx.claims.namespace());
    let claim_changes = watcher(
        claim_metadata,
        watcher::Config::default().labels(&Claims::selector()),
    )
    .backoff(watch_backoff())
    .touched_objects();
    let pools = ctx.pools.namespaced.clone();
    let pools_by_secret = pools.clone();
    Controller::for_shared_stream(events, pools)
        .with_config(config)
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
        .graceful_shutdown_on(shutdown)
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
            ctx,
        )
        .for_each(|_| future::ready(()))
}
