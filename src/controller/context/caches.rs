//! Reads from the watch caches (and, where a cache may lag or holds no secrets, the API server).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;

use super::Context;
use crate::api::EntraLease;
use crate::controller::claims::{HeldClaim, LeaseClaims};
use crate::controller::index::Versioned;
use crate::controller::pool::Pool;
use crate::secret::{SecretSummary, is_owned_by, stored_password};
use crate::sensitive::SecretString;

/// Whole Secrets read at once to learn whether their data is intact.
static SECRET_READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

impl Context {
    /// The claim on `user_id` in the cache, looked up by its name (one per user).
    pub fn cached_claim(&self, user_id: &str) -> Option<HeldClaim> {
        let name = crate::controller::claims::claim_name(user_id);
        self.claim_cache.get(self.claims.namespace(), &name)
    }

    /// The names of the claims in the cache whose summary matches.
    pub fn cached_claims_where(&self, matches: impl Fn(&HeldClaim) -> bool) -> Vec<String> {
        self.claim_cache
            .find(self.claims.namespace(), matches)
            .into_iter()
            .map(|(name, _)| name)
            .collect()
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
    /// one whose data was read (or written by the operator) at its current resourceVersion, else
    /// from the API server, which also reveals a Secret of that name that the operator does not
    /// own and a Secret written so recently that the cache has not seen it yet. The cache learns
    /// what a read found, so each resourceVersion is read at most once. A Secret the operator
    /// deleted lately is absent without a read, until the watch shows one of that name again.
    pub async fn secret(&self, namespace: &str, name: &str) -> kube::Result<Option<SecretSummary>> {
        if self.secrets.deleted_lately(namespace, name) {
            return Ok(None);
        }
        if let Some(cached) = self.secrets.get(namespace, name)
            && cached.data_as_written().is_some()
        {
            return Ok(Some(cached));
        }
        // A tenant can pad their lease Secrets to Kubernetes' limit (about 1.5 MiB): a few whole
        // Secrets in memory at once, however many reconciles want one.
        let _turn = SECRET_READS.acquire().await.expect("never closed");
        let secret = Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await?;
        let read = secret.as_ref().map(SecretSummary::of);
        drop(secret);
        if let Some(read) = &read {
            self.secrets
                .update(namespace, name, |cached| cached.learn(read));
        }
        Ok(read)
    }

    /// Records a Secret as the operator just wrote it, so that the watch's event of this very
    /// version (before or after this) needs no read. A later version, someone else's edit, is
    /// read once.
    pub fn remember_written(&self, written: &Secret) {
        let namespace = written.namespace().unwrap_or_default();
        let uid = written.uid().unwrap_or_default();
        let summary = SecretSummary::of(written);
        self.secrets
            .note_written(&namespace, &written.name_any(), &uid, summary);
    }

    /// Records that the operator deleted the Secret `uid` (or found no Secret to delete, `None`):
    /// absent for the next looks, without a read.
    pub fn remember_deleted(&self, namespace: &str, name: &str, uid: Option<&str>) {
        self.secrets.note_deleted(namespace, name, uid);
    }

    /// Records that a Secret the operator does not own holds `name`: a deletion noted there no
    /// longer answers for it (the watch sees only labelled Secrets).
    pub fn remember_not_owned(&self, namespace: &str, name: &str) {
        self.secrets.forget_note(namespace, name);
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
}

impl Versioned for SecretSummary {
    fn resource_version(&self) -> &str {
        SecretSummary::resource_version(self)
    }
}
