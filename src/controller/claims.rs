//! Invariant I1, one holder per user: a lease holds an Entra user through a claim recorded in the
//! API server, a `coordination.k8s.io` Lease named after the user's object id in the operator's
//! namespace. Creating it is create-if-absent and taking over a stale one carries a
//! resourceVersion precondition, so two reconciles, two replicas or a restart can never both win,
//! whichever dynamic secrets or namespaces list the user.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::{Lease as Claim, LeaseSpec as ClaimSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};
use kube::{Client, ResourceExt};

use crate::api::{EntraLease, LeasedUser};
use crate::secret::{MANAGED_BY, MANAGED_BY_LABEL};

/// Annotation of a claim naming the lease that holds it, as `<namespace>/<name>`.
pub const HOLDER_ANNOTATION: &str = "kms.hanzo.ai/lease";
/// Annotation of a claim naming the dynamic secret the user was leased from, as `<namespace>/<name>`.
pub const POOL_ANNOTATION: &str = "kms.hanzo.ai/dynamic-secret";
/// Label of a claim with the user's object id, for lookups by user.
pub const USER_LABEL: &str = "kms.hanzo.ai/user-id";
/// Label of a claim with the holding lease's uid, for lookups by lease.
pub const HOLDER_UID_LABEL: &str = "kms.hanzo.ai/holder-uid";
/// Annotation of a claim with the user's principal name.
pub const UPN_ANNOTATION: &str = "kms.hanzo.ai/user-principal-name";

#[derive(Clone)]
pub struct Claims {
    api: Api<Claim>,
    namespace: String,
    client: Client,
}

/// The outcome of trying to claim a user.
#[derive(Debug, PartialEq, Eq)]
pub enum ClaimOutcome {
    Claimed,
    /// Another live lease holds the user.
    Taken,
}

impl Claims {
    pub fn new(client: Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client.clone(), namespace),
            namespace: namespace.to_owned(),
            client,
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

    /// Claims `user` for `lease`. Idempotent: a claim the lease already holds is `Claimed`.
    pub async fn claim(
        &self,
        user: &LeasedUser,
        lease: &EntraLease,
        pool: &str,
    ) -> kube::Result<ClaimOutcome> {
        let user_id = user.id.as_str();
        let claim = claim_object(user, lease, pool);
        match self.api.create(&PostParams::default(), &claim).await {
            Ok(_) => return Ok(ClaimOutcome::Claimed),
            Err(error) if is_conflict(&error) => {}
            Err(error) => return Err(error),
        }
        let Some(existing) = self.api.get_opt(&claim_name(user_id)).await? else {
            // Released between our create and our read: try once more on the next reconcile.
            return Ok(ClaimOutcome::Taken);
        };
        if holder_uid(&existing) == lease.uid().as_deref() {
            return Ok(ClaimOutcome::Claimed);
        }
        if self.holder_is_alive(&existing).await? {
            return Ok(ClaimOutcome::Taken);
        }
        // The holder is gone without releasing (its finalizer was removed by hand): take over,
        // conditional on the claim being exactly the stale one we read.
        let mut takeover = claim;
        takeover.metadata.resource_version = existing.resource_version();
        match self
            .api
            .replace(&claim_name(user_id), &PostParams::default(), &takeover)
            .await
        {
            Ok(_) => Ok(ClaimOutcome::Claimed),
            Err(error) if is_conflict(&error) => Ok(ClaimOutcome::Taken),
            Err(error) => Err(error),
        }
    }

    /// The user `lease` holds, read from the API server (not a cache): the claim is the record of
    /// which user a lease holds until its credential is issued or ended.
    pub async fn held_by(&self, lease: &EntraLease) -> kube::Result<Option<LeasedUser>> {
        let Some(uid) = lease.uid() else {
            return Ok(None);
        };
        let selector = format!("{}={uid}", HOLDER_UID_LABEL);
        let claims = self
            .api
            .list(&ListParams::default().labels(&selector))
            .await?;
        Ok(claims
            .items
            .iter()
            .filter(|claim| holder_uid(claim) == Some(uid.as_str()))
            .find_map(|claim| {
                Some(LeasedUser {
                    id: claim.labels().get(USER_LABEL)?.clone(),
                    user_principal_name: claim.annotations().get(UPN_ANNOTATION)?.clone(),
                })
            }))
    }

    /// True when `lease` holds the claim on `user_id`.
    pub async fn holds(&self, user_id: &str, lease: &EntraLease) -> kube::Result<bool> {
        let claim = self.api.get_opt(&claim_name(user_id)).await?;
        Ok(claim.is_some_and(|c| holder_uid(&c) == lease.uid().as_deref()))
    }

    /// Releases `lease`'s claim on `user_id`, if it holds it.
    pub async fn release(&self, user_id: &str, lease: &EntraLease) -> kube::Result<()> {
        let Some(claim) = self.api.get_opt(&claim_name(user_id)).await? else {
            return Ok(());
        };
        if holder_uid(&claim) != lease.uid().as_deref() {
            return Ok(());
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: claim.uid(),
                resource_version: claim.resource_version(),
            }),
            ..DeleteParams::default()
        };
        match self.api.delete(&claim.name_any(), &params).await {
            Ok(_) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn holder_is_alive(&self, claim: &Claim) -> kube::Result<bool> {
        let holder = ClaimHolder::of(claim);
        let Some((namespace, name)) = holder.lease() else {
            return Ok(false);
        };
        let leases: Api<EntraLease> = Api::namespaced(self.client.clone(), namespace);
        let lease = leases.get_opt(name).await?;
        Ok(lease.is_some_and(|lease| lease.uid() == holder.uid))
    }
}

/// The claim's name: one per Entra user object id (ids are unique across tenants).
pub fn claim_name(user_id: &str) -> String {
    format!("entra-user-{}", user_id.to_ascii_lowercase())
}

pub fn holder_uid(claim: &Claim) -> Option<&str> {
    claim.spec.as_ref()?.holder_identity.as_deref()
}

/// What the operator caches of a claim: the lease holding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimHolder {
    /// The holding lease's uid.
    pub uid: Option<String>,
    /// `namespace/name` of the holding lease.
    lease: Option<String>,
}

impl ClaimHolder {
    pub fn of(claim: &Claim) -> ClaimHolder {
        ClaimHolder {
            uid: holder_uid(claim).map(str::to_owned),
            lease: claim.annotations().get(HOLDER_ANNOTATION).cloned(),
        }
    }

    /// The namespace and name of the holding lease.
    pub fn lease(&self) -> Option<(&str, &str)> {
        self.lease.as_deref()?.split_once('/')
    }
}

fn claim_object(user: &LeasedUser, lease: &EntraLease, pool: &str) -> Claim {
    let namespace = lease.namespace().unwrap_or_default();
    let user_id = user.id.as_str();
    Claim {
        metadata: ObjectMeta {
            name: Some(claim_name(user_id)),
            labels: Some(BTreeMap::from([
                (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
                (USER_LABEL.to_owned(), user_id.to_ascii_lowercase()),
                (HOLDER_UID_LABEL.to_owned(), lease.uid().unwrap_or_default()),
            ])),
            annotations: Some(BTreeMap::from([
                (
                    HOLDER_ANNOTATION.to_owned(),
                    format!("{namespace}/{}", lease.name_any()),
                ),
                (POOL_ANNOTATION.to_owned(), format!("{namespace}/{pool}")),
                (UPN_ANNOTATION.to_owned(), user.user_principal_name.clone()),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(ClaimSpec {
            holder_identity: lease.uid(),
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
