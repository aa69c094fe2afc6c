use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Secret};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use super::claims::{Claims, HeldClaim, LeaseClaims};
use super::credential_copies::CredentialCopies;
use super::index::Index;
use super::pool::{Pool, PoolKey, PoolStores};
use crate::api::{EntraLease, LeasedUser, PoolUser};
use crate::graph::{EndpointOverrides, GraphClient};
use crate::secret::{SecretSummary, is_owned_by, stored_password};
use crate::sensitive::SecretString;

/// How long a continuous lease's word that it waits to rotate counts: it says so again each
/// time it looks (every minute at most), so a lease that went away stops counting soon.
pub const ROTATION_WAIT_FRESH: std::time::Duration = std::time::Duration::from_secs(150);

/// How many generated passwords an issue tries when Entra rejects one (banned list, user's name).
pub const PASSWORD_ATTEMPTS: u32 = 3;

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    /// The namespaces whose leases the operator serves.
    pub scope: super::WatchScope,
    pub graph: GraphClient,
    pub endpoints: EndpointOverrides,
    pub claims: Claims,
    /// The operator's copies of the app credentials that revocations need.
    pub copies: CredentialCopies,
    pub events: super::events::Events,
    /// Every pool of both kinds, from the shared watches.
    pub pools: PoolStores,
    /// The namespaces' metadata (their labels decide which cluster pools serve them).
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// Which national clouds pools may issue in (revocations go wherever a claim was issued).
    pub allowed_clouds: Vec<crate::api::Cloud>,
    /// Every Secret the operator manages, summarised.
    pub secrets: Index<SecretSummary>,
    /// Every user claim: its holder and record.
    pub claim_cache: Index<HeldClaim>,
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

impl Context {
    /// Drops the remembered resolution of `pool`'s users, so its next reconcile asks Graph.
    pub fn forget_resolution(&self, pool: &Pool) {
        self.validations.lock().unwrap().remove(&pool.key());
    }

    /// `pool`'s users as this process resolved them through Graph, if it has for the pool as it
    /// is now (same object, same generation), with the users Entra recently refused to reset
    /// marked as such.
    pub fn resolution_of(&self, pool: &Pool) -> Option<Vec<PoolUser>> {
        let mut users = {
            let validations = self.validations.lock().unwrap();
            let validation = validations.get(&pool.key())?;
            let current = validation.uid == pool.metadata().uid
                && validation.generation == pool.metadata().generation;
            current.then(|| validation.users.clone())?
        };
        self.mark_forbidden(&mut users);
        Some(users)
    }

    /// Marks the users Entra recently refused to reset (the pool status shows the same).
    pub fn mark_forbidden(&self, users: &mut [PoolUser]) {
        for user in users {
            if user.problem.is_none() && user.id.as_deref().is_some_and(|id| self.is_forbidden(id))
            {
                user.problem = Some(FORBIDDEN_PROBLEM.into());
            }
        }
    }

    /// Remembers that Entra refused to reset `user_id`.
    pub fn forbid(&self, user_id: &str) {
        let mut forbidden = self.forbidden.lock().unwrap();
        forbidden.retain(|_, at| at.elapsed() < FORBIDDEN_FOR);
        forbidden.insert(user_id.to_ascii_lowercase(), Instant::now());
    }

    /// True when Entra recently refused to reset `user_id`.
    pub fn is_forbidden(&self, user_id: &str) -> bool {
        let forbidden = self.forbidden.lock().unwrap();
        forbidden
            .get(&user_id.to_ascii_lowercase())
            .is_some_and(|at| at.elapsed() < FORBIDDEN_FOR)
    }

    /// `candidates` with those the claim cache shows free first, so that a burst of leases
    /// does not retry every taken user. Only an order: the cache may lag a release (the one that
    /// woke this lease), and the claim itself decides (invariant I1).
    pub fn likely_free_first(
        &self,
        candidates: Vec<LeasedUser>,
        lease: &EntraLease,
    ) -> Vec<LeasedUser> {
        let uid = lease.uid().unwrap_or_default();
        let (free, taken): (Vec<LeasedUser>, Vec<LeasedUser>) =
            candidates.into_iter().partition(|candidate| {
                self.cached_claim(&candidate.id)
                    .is_none_or(|holder| holder.uid.as_deref() == Some(uid.as_str()))
            });
        free.into_iter().chain(taken).collect()
    }

    /// The claim on `user_id` in the cache, looked up by its name (one per user).
    pub fn cached_claim(&self, user_id: &str) -> Option<HeldClaim> {
        let name = super::claims::claim_name(user_id);
        self.claim_cache.get(self.claims.namespace(), &name)
    }

    /// The claim the lease with `uid` holds, from the cache, found through the user its status
    /// names. Only a hint: the claim itself must say the lease holds it, so a rewritten status
    /// can at worst cost a live read. A continuous lease, or one showing a previous credential,
    /// may hold two claims: those are always read live.
    pub fn cached_claims_of(&self, lease: &EntraLease, uid: &str) -> Option<LeaseClaims> {
        let status = lease.status.as_ref()?;
        if lease.spec.rotates() || status.previous.is_some() {
            return None;
        }
        let claim = self
            .cached_claim(&status.user.as_ref()?.id)
            .filter(|claim| claim.is_held_by(Some(uid)))?;
        Some(LeaseClaims {
            current: Some(claim),
            ..LeaseClaims::default()
        })
    }

    /// Notes that the continuous lease `uid` of `pool` waits for a user to rotate to.
    pub fn waits_to_rotate(&self, uid: &str, pool: PoolKey) {
        let mut waiting = self.rotations_waiting.lock().unwrap();
        waiting.insert(uid.to_owned(), (pool, Instant::now()));
    }

    /// Notes that the lease `uid` no longer waits to rotate.
    pub fn rotation_done(&self, uid: &str) {
        self.rotations_waiting.lock().unwrap().remove(uid);
    }

    /// True when a continuous lease of `pool` (other than `uid`) waits for a user to rotate to.
    pub fn rotation_goes_first(&self, pool: &PoolKey, uid: &str) -> bool {
        let mut waiting = self.rotations_waiting.lock().unwrap();
        waiting.retain(|_, (_, at)| at.elapsed() < ROTATION_WAIT_FRESH);
        waiting
            .iter()
            .any(|(waiting_uid, (waiting_pool, _))| waiting_uid != uid && waiting_pool == pool)
    }

    /// The pool a lease refers to, from the cache.
    pub fn pool_of(&self, lease: &EntraLease) -> Option<Pool> {
        self.pools.of_lease(lease)
    }

    /// Whether `pool` serves `lease`'s namespace, by the namespace's labels in the cache (a
    /// namespace the cache does not have is served by no cluster pool).
    pub fn serves(&self, pool: &Pool, lease: &EntraLease) -> bool {
        let namespace = lease.namespace().unwrap_or_default();
        match pool {
            Pool::Namespaced(_) => true,
            Pool::Cluster(_) => self
                .namespace_labels(&namespace)
                .is_some_and(|labels| pool.serves(&labels)),
        }
    }

    /// The labels of namespace `name`, from the cache; `None` when the cache does not have it.
    pub fn namespace_labels(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let namespace = self.namespaces.get(&ObjectRef::new(name))?;
        Some(namespace.metadata.labels.clone().unwrap_or_default())
    }

    /// The Secret named `name` in `namespace`, summarised: from the cache when it is a managed
    /// one, else from the API server, which also reveals a Secret of that name that the operator
    /// does not own and a Secret written so recently that the cache has not seen it yet.
    pub async fn secret(&self, namespace: &str, name: &str) -> kube::Result<Option<SecretSummary>> {
        if let Some(secret) = self.secrets.get(namespace, name) {
            return Ok(Some(secret));
        }
        let secret = Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await?;
        Ok(secret.as_ref().map(SecretSummary::of))
    }

    /// The lease's own Secret `name`, read from the API server (caches hold no passwords).
    pub async fn own_secret(&self, lease: &EntraLease, name: &str) -> kube::Result<Option<Secret>> {
        let namespace = lease.namespace().unwrap_or_default();
        let secret = Api::<Secret>::namespaced(self.client.clone(), &namespace)
            .get_opt(name)
            .await?;
        Ok(secret.filter(|s| is_owned_by(s, lease)))
    }

    /// The password in the lease's own Secret `name`, read from the API server (caches hold no
    /// passwords).
    pub async fn stored_password(
        &self,
        lease: &EntraLease,
        name: &str,
    ) -> kube::Result<Option<SecretString>> {
        let namespace = lease.namespace().unwrap_or_default();
        let secret = Api::<Secret>::namespaced(self.client.clone(), &namespace)
            .get_opt(name)
            .await?;
        Ok(secret
            .filter(|s| is_owned_by(s, lease))
            .and_then(|s| stored_password(&s)))
    }

    /// Publishes an event about `object`. Event notes carry no secret material: they are built
    /// from names, reasons and Graph error messages, which never include secrets.
    pub async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        // Without the resourceVersion, repeats of a warning about one object form a series.
        let mut regarding = object.object_ref(&());
        regarding.resource_version = None;
        self.publish_about(regarding, type_, reason, action, note)
            .await;
    }

    /// Publishes an event about the object `regarding` refers to.
    pub async fn publish_about(
        &self,
        regarding: ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.events.publish(event, regarding).await {
            tracing::warn!(%error, reason, "could not publish an event");
        }
    }
}
