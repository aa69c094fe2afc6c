//! The two controllers and the watches they share.

mod access_pass;
mod app_credential;
mod backoff;
mod cache_bounds;
pub mod claim_record;
mod claims;
mod cluster_pools;
mod context;
mod credential;
mod credential_copies;
mod credential_sweep;
mod deadlines;
mod dynamic_secret;
mod error;
mod error_policy;
mod events;
mod expiry_timers;
mod graph_reasons;
mod idle_accounts;
mod index;
mod kept_credential;
mod lease;
mod lease_controllers;
mod lease_locks;
mod metrics;
mod pool;
mod pool_controller;
mod pool_sign_in;
mod protected_users;
mod reaper;
mod reasons;
mod requests;
mod restore_backoff;
mod rollout;
mod rotation_schedule;
mod service_account_token;
mod shared_watches;
mod sign_in_methods;
mod status;
mod triggers;
mod watch_scope;

use std::sync::Arc;

use futures::{FutureExt, future};
use kube::Client;
use kube::runtime::controller::Config as ControllerConfig;

pub use claims::{CLAIM_FINALIZER, Claims, HeldClaim, claim_name};
use cluster_pools::cluster_pool_controller;
pub use context::Context;
pub use credential_copies::copy_name;
use credential_sweep::sweep_credential_copies;
pub use error::Error;
use expiry_timers::ExpiryTimers;
pub use kept_credential::CREDENTIAL_COPY_LABEL;
use lease_controllers::lease_controllers;
use pool_controller::pool_controller;
use reaper::ReaperHandle;
pub use reasons::Reason;
use shared_watches::watch_shared;
pub use watch_scope::WatchScope;

use crate::api::Cloud;
use crate::graph::{EndpointOverrides, GraphClient};
use crate::health::Readiness;
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
    /// The shortest spacing of rotations a `kms.hanzo.ai/rotate` request may force: each costs
    /// Graph writes on the app's shared quota, and any lease user may ask for one.
    pub min_forced_rotation_interval: std::time::Duration,
}

/// Runs the controllers until `shutdown` resolves: the shared watches fill the caches, and once
/// every cache has its first full list the controllers, the reaper and the sweep of credential
/// copies start. The process stops when a watch ends.
pub async fn run(
    client: Client,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let shutdown = Box::pin(shutdown).shared();
    let config = ControllerConfig::default().concurrency(settings.concurrency);
    let readiness = settings.readiness.clone();
    let (reaper, reaper_inputs) = ReaperHandle::channel();
    let (caches, changes, watches) = watch_shared(
        &client,
        &settings.scope,
        &settings.claims_namespace,
        settings.cluster_pools,
        reaper.clone(),
    );
    let (resolved_pools, pools_resolved) = futures::channel::mpsc::unbounded();
    let (expiries, expired) = ExpiryTimers::new();
    let ctx = Arc::new(Context::new(
        &client,
        settings,
        &caches,
        resolved_pools,
        expiries,
    ));
    let (leases, lease_controllers) = lease_controllers(
        ctx.clone(),
        changes.for_leases,
        reaper.clone(),
        pools_resolved,
        expired,
        config.clone(),
        shutdown.clone(),
    );
    metrics::serve_snapshots(&ctx, leases.clone());
    let pool_controller =
        pool_controller(ctx.clone(), changes.pools, config.clone(), shutdown.clone());
    let cluster_pool_controller =
        cluster_pool_controller(ctx.clone(), changes.cluster_pools, config, shutdown);
    let sweeper = sweep_credential_copies(ctx.clone());
    let reaper = reaper::run(ctx, leases, reaper, reaper_inputs);
    let controllers = async move {
        if !caches.synced().await {
            return;
        }
        tracing::info!("caches synced; reconciling");
        readiness.set(true);
        // The reaper stops with the controllers (on shutdown): an interrupted reap is repeated
        // by the next leader, as after a crash.
        tokio::select! {
            _ = future::join3(lease_controllers, pool_controller, cluster_pool_controller) => {}
            _ = reaper => {}
            _ = sweeper => {}
        }
    };
    tokio::select! {
        _ = controllers => {}
        _ = watches => {}
    }
}
