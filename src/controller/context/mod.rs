//! What every reconcile shares: the clients it writes through, the caches it reads, and the
//! operator's own policy state. The methods live by concern in `clients`, `caches` and `policy`.

mod caches;
mod clients;
mod policy;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::Store;

use super::claims::{Claims, HeldClaim};
use super::credential_copies::CredentialCopies;
use super::index::Index;
use super::pool::{PoolKey, PoolStores};
use crate::graph::{EndpointOverrides, GraphClient};
use crate::secret::SecretSummary;

/// How long a continuous lease's word that it waits to rotate counts: it says so again each
/// time it looks (every minute at most), so a lease that went away stops counting soon.
pub const ROTATION_WAIT_FRESH: std::time::Duration = std::time::Duration::from_secs(150);

/// How many generated passwords an issue tries when Entra rejects one (banned list, user's name).
pub const PASSWORD_ATTEMPTS: u32 = 3;

/// What every reconcile shares.
pub struct Context {
    // Clients: what the operator writes through.
    pub client: Client,
    /// The namespaces whose leases the operator serves.
    pub scope: super::WatchScope,
    pub graph: GraphClient,
    pub endpoints: EndpointOverrides,
    pub claims: Claims,
    /// The operator's copies of the app credentials that revocations need.
    pub copies: CredentialCopies,
    pub events: super::events::Events,
    /// Which national clouds pools may issue in (revocations go wherever a claim was issued).
    pub allowed_clouds: Vec<crate::api::Cloud>,
    /// The types a lease's Secret may have.
    pub lease_secret_types: crate::secret_types::SecretTypes,

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
    /// Each pool's users as last resolved through Graph, with when and against what.
    pub validations: Mutex<HashMap<PoolKey, Validation>>,
    /// When each pool's status was last written by this process.
    pub status_written: Mutex<HashMap<PoolKey, Instant>>,
    /// Users whose password reset Entra recently refused with 403 (a protected admin, most
    /// likely), by object id, with when: leases that name no user skip them for a while.
    pub forbidden: Mutex<HashMap<String, Instant>>,
    /// Leases whose issue Entra refused, by uid, with the spec generation refused and when to
    /// try again: other leases' changes wake them, but only a change of their own spec or this
    /// time retries the issue. Kept here, not judged from the status, which tenants may write.
    pub issue_retry_at: Mutex<HashMap<String, (Option<i64>, Instant)>>,
    /// Continuous leases waiting for a user to rotate to, by uid, with their pool and when they
    /// last said so: a new lease of that pool leaves a freed user to them. An entry older than
    /// [`ROTATION_WAIT_FRESH`] is ignored (its lease rotated, ended or was deleted since).
    pub rotations_waiting: Mutex<HashMap<String, (PoolKey, Instant)>>,
    /// Failed reaps in a row, per claim name, for their backoff.
    pub reap_failures: Mutex<HashMap<String, u32>>,
    /// Failed reconciles in a row, per object, for their backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    /// Each pool whose users were just resolved, for its waiting leases to go on.
    pub resolved_pools: futures::channel::mpsc::UnboundedSender<PoolKey>,
    /// One actor (issue, revocation, reaper) per lease at a time.
    pub lease_locks: super::lease_locks::LeaseLocks,
}

/// The problem shown for a user Entra recently refused to reset.
pub const FORBIDDEN_PROBLEM: &str = "PasswordResetForbidden";

/// How long a user refused by Entra is set aside before it is tried again.
pub const FORBIDDEN_FOR: std::time::Duration = std::time::Duration::from_secs(600);

/// A resolution of a dynamic secret's users, valid while its spec and client secret are unchanged.
/// Kept here rather than read back from the status: the cached status may be an older write.
#[derive(Clone, Debug)]
pub struct Validation {
    /// The pool object it was made for: a pool recreated under the same name starts over.
    pub uid: Option<String>,
    pub generation: Option<i64>,
    /// The resourceVersion of the object the credential was read from (a Secret), if any.
    pub credential_version: Option<String>,
    pub users: Vec<crate::api::PoolUser>,
    pub at: Instant,
}
