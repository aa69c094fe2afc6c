//! What every reconcile shares: the clients it writes through, the caches it reads, and the
//! operator's own policy state. The methods live by concern in `clients`, `caches` and `policy`;
//! each piece of policy state is a small type of its own file (`validations`, `status_writes`,
//! `forbidden_users`, `issue_backoff`, `rotation_queue`, `failure_backoff`, `unapplied_writes`, `end_progress`).

mod caches;
mod clients;
mod end_progress;
mod failure_backoff;
mod forbidden_users;
mod issue_backoff;
mod lease_claims;
mod policy;
mod rotation_queue;
mod status_writes;
mod superseded;
mod unapplied_writes;
mod validations;

use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::Store;

pub use end_progress::{EndProgress, EndStep, Ended};
pub use failure_backoff::FailureBackoff;
pub use forbidden_users::{FORBIDDEN_FOR, FORBIDDEN_PROBLEM, ForbiddenUsers};
pub use issue_backoff::IssueBackoff;
pub use rotation_queue::RotationQueue;
pub use status_writes::StatusWrites;
pub use superseded::Superseded;
pub use unapplied_writes::{IssueWrites, UnappliedWrites};
pub use validations::{MethodsProgress, Progress, ProtectionProgress, Validations};

use super::Settings;
use super::claims::{Claims, HeldClaim};
use super::credential_copies::CredentialCopies;
use super::events::Events;
use super::expiry_timers::ExpiryTimers;
use super::idle_accounts::IdleAccounts;
use super::index::Index;
use super::lease_locks::LeaseLocks;
use super::pool::{PoolKey, PoolStores};
use super::shared_watches::SharedCaches;
use super::watch_scope::WatchScope;
use crate::graph::{EndpointOverrides, GraphClient};
use crate::secret::SecretSummary;

/// How many generated passwords an issue tries when Entra rejects one (banned list, user's name).
pub const PASSWORD_ATTEMPTS: u32 = 3;

/// What every reconcile shares.
pub struct Context {
    // Clients: what the operator writes through.
    pub client: Client,
    /// The namespaces whose leases the operator serves.
    pub scope: WatchScope,
    pub graph: GraphClient,
    pub endpoints: EndpointOverrides,
    pub claims: Claims,
    /// The operator's copies of the app credentials that revocations need.
    pub copies: CredentialCopies,
    /// The markers of accounts the operator disabled between leases (`disableIdleUsers`).
    pub idle_accounts: IdleAccounts,
    pub events: Events,
    /// Which national clouds pools may issue in (revocations go wherever a claim was issued).
    pub allowed_clouds: Vec<crate::api::Cloud>,
    /// The types a lease's Secret may have.
    pub lease_secret_types: crate::secret_types::SecretTypes,
    /// The shortest spacing of rotations a rotate request may force (a continuous lease's
    /// shorter overlap is clamped to it).
    pub min_forced_rotation: std::time::Duration,

    // Caches: what the watches keep, read without an API call.
    /// Every pool of both kinds, from the shared watches.
    pub pools: PoolStores,
    /// The namespaces' metadata (their labels decide which cluster pools serve them).
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// Every Secret the operator manages, summarised.
    pub secrets: Index<SecretSummary>,
    /// Every user claim: its holder and record.
    pub claim_cache: Index<HeldClaim>,

    // Policy state: what this process remembers between reconciles (resolutions, refusals,
    // backoffs, waits), and its per-lease locks. Lost on a restart, which only costs time.
    /// Each pool's users as last resolved through Graph.
    pub validations: Validations,
    /// When each pool's status was last written by this process.
    pub status_writes: StatusWrites,
    /// Lease copies this process wrote over (their reconciles wait for the watch's newer one).
    pub superseded: Superseded,
    /// Users Entra recently refused to reset: leases that name no user skip them for a while.
    pub forbidden_users: ForbiddenUsers,
    /// Issues whose password writes so far applied nothing (their claims need no scramble).
    pub unapplied_writes: UnappliedWrites,
    /// How far each claim's end got, so a parked step does not redo the ones before it.
    pub end_progress: EndProgress,
    /// Leases whose issue Entra refused, until their spec changes or their time comes.
    pub refused_issues: IssueBackoff,
    /// Continuous leases waiting for a user to rotate to.
    pub rotation_queue: RotationQueue,
    /// Failed reaps in a row, per claim name.
    pub reap_backoff: FailureBackoff,
    /// Failed reconciles in a row, per object.
    pub reconcile_backoff: FailureBackoff,
    /// Each pool whose users were just resolved, for its waiting leases to go on.
    pub resolved_pools: UnboundedSender<PoolKey>,
    /// One actor (issue, revocation, reaper) per lease at a time.
    pub lease_locks: LeaseLocks,
    /// One issue at a time per (pool with `maxLeasesPerNamespace`, namespace): its count of the
    /// namespace's claims and its claim go together.
    pub share_locks: LeaseLocks,
    /// Wakes the revocation controller at each active credential's end.
    pub expiries: ExpiryTimers,
}

impl Context {
    /// The context of a process run with `settings`, reading `caches`, with nothing remembered
    /// yet. Each pool whose users get resolved is told to `resolved_pools`.
    pub fn new(
        client: &Client,
        settings: Settings,
        caches: &SharedCaches,
        resolved_pools: UnboundedSender<PoolKey>,
        expiries: ExpiryTimers,
    ) -> Self {
        let reporter = Reporter {
            controller: "entra-operator".into(),
            instance: settings.instance,
        };
        Context {
            client: client.clone(),
            scope: settings.scope,
            graph: settings.graph,
            endpoints: settings.endpoints,
            claims: Claims::new(client.clone(), &settings.claims_namespace),
            copies: CredentialCopies::new(client.clone(), &settings.claims_namespace),
            idle_accounts: IdleAccounts::new(client.clone(), &settings.claims_namespace),
            events: Events::new(client.clone(), reporter),
            allowed_clouds: settings.allowed_clouds,
            lease_secret_types: settings.lease_secret_types,
            min_forced_rotation: settings.min_forced_rotation_interval,
            pools: caches.pool_stores(),
            namespaces: caches.namespaces.clone(),
            secrets: caches.secrets.clone(),
            claim_cache: caches.claims.clone(),
            validations: Validations::default(),
            status_writes: StatusWrites::default(),
            superseded: Superseded::default(),
            forbidden_users: ForbiddenUsers::default(),
            unapplied_writes: UnappliedWrites::default(),
            end_progress: EndProgress::default(),
            refused_issues: IssueBackoff::default(),
            rotation_queue: RotationQueue::default(),
            reap_backoff: FailureBackoff::for_reaps(),
            reconcile_backoff: FailureBackoff::for_reconciles(),
            resolved_pools,
            lease_locks: LeaseLocks::default(),
            share_locks: LeaseLocks::default(),
            expiries,
        }
    }
}
