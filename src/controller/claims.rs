//! Invariant I1, one holder per user: a lease holds an Entra user through a claim recorded in the
//! API server, a `coordination.k8s.io` Lease named after the user's object id in the operator's
//! namespace. Creating it is create-if-absent and every later write carries a resourceVersion
//! precondition, so two reconciles, two replicas or a restart can never both win, whichever
//! dynamic secrets or namespaces list the user.
//!
//! The claim is also the record of the credential ([`ClaimRecord`]), and it carries a finalizer
//! that only the operator removes, after revocation: deleting the operator's namespace with live
//! claims leaves them Terminating instead of silently dropping what revocation needs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease as Claim, LeaseSpec as ClaimSpec};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Client, ResourceExt};

use super::claim_record::{ClaimRecord, RECORD_ANNOTATION};
use super::deadlines::later;
use crate::secret::{MANAGED_BY, MANAGED_BY_LABEL};

/// Annotation of a claim naming the lease that holds it, as `<namespace>/<name>`.
pub const HOLDER_ANNOTATION: &str = "kms.hanzo.ai/lease";
/// Annotation of a claim naming the dynamic secret the user was leased from, as `<namespace>/<name>`.
pub const POOL_ANNOTATION: &str = "kms.hanzo.ai/dynamic-secret";
/// Label of a claim with the user's object id, for lookups by user.
pub const USER_LABEL: &str = "kms.hanzo.ai/user-id";
/// Label of a claim with the holding lease's uid, for lookups by lease.
pub const HOLDER_UID_LABEL: &str = "kms.hanzo.ai/holder-uid";
/// Label of a claim with the holding lease's namespace, for counting a namespace's share of a
/// pool (`maxLeasesPerNamespace`).
pub const HOLDER_NAMESPACE_LABEL: &str = "kms.hanzo.ai/holder-namespace";
/// How far the API server's clock may run ahead of the operator's when a lease's age (the
/// server's creationTimestamp) is compared with the process's start (the operator's clock).
const CLOCK_MARGIN: Duration = Duration::from_secs(300);
/// Held by every claim until its credential is revoked.
pub const CLAIM_FINALIZER: &str = "kms.hanzo.ai/revoke";

#[derive(Clone)]
pub struct Claims {
    api: Api<Claim>,
    namespace: String,
    /// The claims this process created, by holding lease uid, until it releases them: what a
    /// claim cache that has not yet seen its own writes would miss.
    created_here: Arc<Mutex<HashMap<String, BTreeSet<String>>>>,
    /// When this process began writing claims (it acts only once it leads, after the previous
    /// leader stopped, and its claim cache starts from a full list taken after that).
    writing_since: Timestamp,
}

/// A claim as read from the API server or kept in the cache: its holder, its record, and what a
/// conditional write of it needs.
#[derive(Clone, Debug, PartialEq)]
pub struct HeldClaim {
    pub name: String,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    /// The holding lease's uid.
    pub holder_uid: Option<String>,
    /// `namespace/name` of the holding lease.
    holder: Option<String>,
    pub record: Option<Arc<ClaimRecord>>,
}

impl HeldClaim {
    pub fn of(claim: &Claim) -> HeldClaim {
        HeldClaim {
            name: claim.name_any(),
            uid: claim.uid(),
            resource_version: claim.resource_version(),
            holder_uid: holder_uid(claim).map(str::to_owned),
            holder: claim.annotations().get(HOLDER_ANNOTATION).cloned(),
            record: claim
                .annotations()
                .get(RECORD_ANNOTATION)
                .and_then(|value| ClaimRecord::from_annotation(value))
                .map(Arc::new),
        }
    }

    /// A claim held by the lease `record` names, as read back after its creation.
    #[cfg(test)]
    pub fn holding(record: ClaimRecord) -> HeldClaim {
        HeldClaim {
            name: claim_name(&record.user.id),
            uid: Some(format!("uid-{}", record.user.id)),
            resource_version: Some("1".into()),
            holder_uid: Some(record.lease.uid.clone()),
            holder: Some(format!("{}/{}", record.lease.namespace, record.lease.name)),
            record: Some(Arc::new(record)),
        }
    }

    /// The namespace and name of the holding lease.
    pub fn lease(&self) -> Option<(&str, &str)> {
        self.holder.as_deref()?.split_once('/')
    }

    /// A reference to the claim, for events about it.
    pub fn reference(&self, namespace: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("coordination.k8s.io/v1".into()),
            kind: Some("Lease".into()),
            name: Some(self.name.clone()),
            namespace: Some(namespace.to_owned()),
            uid: self.uid.clone(),
            ..ObjectReference::default()
        }
    }

    /// True when the lease with `uid` holds this claim.
    pub fn is_held_by(&self, uid: Option<&str>) -> bool {
        uid.is_some() && self.holder_uid.as_deref() == uid
    }
}

/// The claims one lease holds: its current credential and, for a continuous lease in the middle
/// of a rotation, the previous one. A claim's generation orders them; a claim without a readable
/// record counts as the oldest.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeaseClaims {
    pub current: Option<HeldClaim>,
    pub previous: Option<HeldClaim>,
    /// Anything older (only a bug or a hand-made claim gets here): ended at once.
    pub older: Vec<HeldClaim>,
}

impl LeaseClaims {
    pub fn of(mut claims: Vec<HeldClaim>) -> LeaseClaims {
        claims.sort_by_key(|claim| {
            std::cmp::Reverse(claim.record.as_ref().map(|r| (r.generation, r.issued_at.0)))
        });
        let mut claims = claims.into_iter();
        LeaseClaims {
            current: claims.next(),
            previous: claims.next(),
            older: claims.collect(),
        }
    }

    /// Every claim, the oldest first (the order endings go in).
    pub fn all_oldest_first(&self) -> Vec<&HeldClaim> {
        let mut all: Vec<&HeldClaim> = self.older.iter().rev().collect();
        all.extend(self.previous.iter());
        all.extend(self.current.iter());
        all
    }

    /// [`Self::all_oldest_first`], owned: what a decision that ends them all carries.
    pub fn owned_oldest_first(&self) -> Vec<HeldClaim> {
        self.all_oldest_first().into_iter().cloned().collect()
    }
}

/// The outcome of trying to claim a user.
#[derive(Debug)]
pub enum ClaimOutcome {
    Claimed(HeldClaim),
    /// Another lease holds the user (or did until a moment ago: its claim is being released).
    Taken,
}

impl Claims {
    pub fn new(client: Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            created_here: Arc::default(),
            writing_since: Timestamp::now(),
        }
    }

    pub fn api(&self) -> &Api<Claim> {
        &self.api
    }

    /// The namespace the claims live in (the operator's).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The label selector of every claim.
    pub fn selector() -> String {
        format!("{MANAGED_BY_LABEL}={MANAGED_BY}")
    }

    /// Claims the record's user for the record's lease. Idempotent: a claim the lease already
    /// holds is `Claimed`. A claim whose holder vanished is not taken over here: the reaper
    /// revokes it first, and its release wakes the waiting leases.
    pub async fn claim(&self, record: &ClaimRecord) -> kube::Result<ClaimOutcome> {
        let claim = claim_object(record);
        let lease_uid = record.lease.uid.as_str();
        // Noted before the request: a create the server took but whose answer was lost is found
        // by name all the same (a read that shows the claim not held drops the note).
        self.remember_created(lease_uid, &claim_name(&record.user.id));
        match self.api.create(&PostParams::default(), &claim).await {
            Ok(created) => return Ok(ClaimOutcome::Claimed(HeldClaim::of(&created))),
            Err(error) if is_conflict(&error) => {}
            Err(error) => return Err(error),
        }
        match self.get(&record.user.id).await? {
            Some(existing) if existing.is_held_by(Some(lease_uid)) => {
                Ok(ClaimOutcome::Claimed(existing))
            }
            _ => {
                self.forget_created(lease_uid, &claim_name(&record.user.id));
                Ok(ClaimOutcome::Taken)
            }
        }
    }

    /// True when every claim of a lease created at `created` was created by this process: the
    /// lease is younger than the process, with a margin for the API server's clock against ours.
    pub fn all_created_here(&self, created: Option<&Time>) -> bool {
        created.is_some_and(|created| created.0 > later(self.writing_since, CLOCK_MARGIN))
    }

    fn remember_created(&self, lease_uid: &str, name: &str) {
        self.created_here
            .lock()
            .unwrap()
            .entry(lease_uid.to_owned())
            .or_default()
            .insert(name.to_owned());
    }

    fn forget_created(&self, lease_uid: &str, name: &str) {
        let mut created = self.created_here.lock().unwrap();
        if let Some(names) = created.get_mut(lease_uid) {
            names.remove(name);
            if names.is_empty() {
                created.remove(lease_uid);
            }
        }
    }

    /// The claim on `user_id`, read from the API server.
    pub async fn get(&self, user_id: &str) -> kube::Result<Option<HeldClaim>> {
        Ok(self
            .api
            .get_opt(&claim_name(user_id))
            .await?
            .as_ref()
            .map(HeldClaim::of))
    }

    /// The claims the lease with `lease_uid` holds, each read from the API server by name: those
    /// this process created for it, and `known` (what the claim cache shows it holding). Which
    /// claims to read never takes a LIST, whose cost would grow with every claim in the store.
    pub async fn held_by(
        &self,
        lease_uid: &str,
        known: impl IntoIterator<Item = String>,
    ) -> kube::Result<LeaseClaims> {
        let mut names: BTreeSet<String> = known.into_iter().collect();
        if let Some(created) = self.created_here.lock().unwrap().get(lease_uid) {
            names.extend(created.iter().cloned());
        }
        let mut held = Vec::with_capacity(names.len());
        for name in names {
            match self.api.get_opt(&name).await?.as_ref().map(HeldClaim::of) {
                Some(claim) if claim.is_held_by(Some(lease_uid)) => held.push(claim),
                _ => self.forget_created(lease_uid, &name),
            }
        }
        Ok(LeaseClaims::of(held))
    }

    /// How many leases of `namespace` other than `except_uid` hold users of the pool with
    /// `pool_uid`, read from the API server (a lease mid-rotation counts once). Claims written
    /// before they carried the namespace label are not counted.
    pub async fn leases_holding(
        &self,
        namespace: &str,
        pool_uid: &str,
        except_uid: &str,
    ) -> kube::Result<u32> {
        let selector = format!("{},{HOLDER_NAMESPACE_LABEL}={namespace}", Self::selector());
        let claims = self
            .api
            .list(&ListParams::default().labels(&selector))
            .await?;
        let holders: std::collections::BTreeSet<&str> = claims
            .items
            .iter()
            .filter(|claim| {
                claim
                    .annotations()
                    .get(RECORD_ANNOTATION)
                    .and_then(|value| ClaimRecord::from_annotation(value))
                    .is_some_and(|record| {
                        record.pool.uid == pool_uid && record.lease.namespace == namespace
                    })
            })
            .filter_map(holder_uid)
            .filter(|holder| *holder != except_uid)
            .collect();
        Ok(u32::try_from(holders.len()).unwrap_or(u32::MAX))
    }

    /// Writes `record` into `claim`, on the condition that the claim is still exactly the one
    /// read: a 409 means this process acted on a stale copy and must look again.
    pub async fn update_record(
        &self,
        claim: &HeldClaim,
        record: &ClaimRecord,
    ) -> kube::Result<HeldClaim> {
        let patch = serde_json::json!({
            "metadata": {
                "resourceVersion": claim.resource_version,
                "annotations": { RECORD_ANNOTATION: record.to_annotation() },
            }
        });
        let updated = self
            .api
            .patch(&claim.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(HeldClaim::of(&updated))
    }

    /// Releases `claim` after its credential ended: its finalizer goes (on the condition that
    /// it is the claim read), then the claim itself.
    pub async fn release(&self, claim: &HeldClaim) -> kube::Result<()> {
        self.release_claim(claim).await?;
        if let Some(holder) = &claim.holder_uid {
            self.forget_created(holder, &claim.name);
        }
        Ok(())
    }

    async fn release_claim(&self, claim: &HeldClaim) -> kube::Result<()> {
        let patch = serde_json::json!({
            "metadata": { "resourceVersion": claim.resource_version, "finalizers": null }
        });
        match self
            .api
            .patch(&claim.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(error) if is_not_found(&error) => return Ok(()),
            Err(error) => return Err(error),
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: claim.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.api.delete(&claim.name, &params).await {
            Ok(_) => Ok(()),
            Err(error) if is_not_found(&error) || is_conflict(&error) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// The claim's name: one per Entra user object id (ids are unique across tenants).
pub fn claim_name(user_id: &str) -> String {
    format!("entra-user-{}", user_id.to_ascii_lowercase())
}

fn holder_uid(claim: &Claim) -> Option<&str> {
    claim.spec.as_ref()?.holder_identity.as_deref()
}

fn claim_object(record: &ClaimRecord) -> Claim {
    let user_id = record.user.id.to_ascii_lowercase();
    let lease = &record.lease;
    Claim {
        metadata: ObjectMeta {
            name: Some(claim_name(&user_id)),
            labels: Some(BTreeMap::from([
                (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
                (USER_LABEL.to_owned(), user_id),
                (HOLDER_UID_LABEL.to_owned(), lease.uid.clone()),
                (HOLDER_NAMESPACE_LABEL.to_owned(), lease.namespace.clone()),
            ])),
            annotations: Some(BTreeMap::from([
                (
                    HOLDER_ANNOTATION.to_owned(),
                    format!("{}/{}", lease.namespace, lease.name),
                ),
                (
                    POOL_ANNOTATION.to_owned(),
                    format!("{}/{}", record.pool.namespace, record.pool.name),
                ),
                (RECORD_ANNOTATION.to_owned(), record.to_annotation()),
            ])),
            finalizers: Some(vec![CLAIM_FINALIZER.to_owned()]),
            ..ObjectMeta::default()
        },
        spec: Some(ClaimSpec {
            holder_identity: Some(lease.uid.clone()),
            ..ClaimSpec::default()
        }),
    }
}

pub fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}
