//! A pool of either kind, as the controllers see it: an `EntraDynamicSecret` serves its own
//! namespace with a credential kept there; a `ClusterEntraDynamicSecret` serves the namespaces it
//! selects with a credential kept in the operator's namespace.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::Api;
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};

use super::status::apply_status;
use crate::api::{
    ClusterEntraDynamicSecret, DynamicSecretRef, DynamicSecretStatus, EntraDynamicSecret,
    EntraLease, PoolKind, PoolSpec,
};

#[derive(Clone, Debug)]
pub enum Pool {
    Namespaced(Arc<EntraDynamicSecret>),
    Cluster(Arc<ClusterEntraDynamicSecret>),
}

/// The same pool object: the same key, uid and version.
impl PartialEq for Pool {
    fn eq(&self, other: &Pool) -> bool {
        let (mine, theirs) = (self.metadata(), other.metadata());
        self.key() == other.key()
            && mine.uid == theirs.uid
            && mine.resource_version == theirs.resource_version
            && mine.generation == theirs.generation
    }
}

/// Names one pool: its kind, its namespace (none for a cluster pool) and its name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub kind: PoolKind,
    pub namespace: Option<String>,
    pub name: String,
}

impl PoolKey {
    /// The pool a lease in `namespace` refers to.
    pub fn of_lease(namespace: &str, reference: &DynamicSecretRef) -> PoolKey {
        PoolKey {
            kind: reference.kind,
            namespace: match reference.kind {
                PoolKind::EntraDynamicSecret => Some(namespace.to_owned()),
                PoolKind::ClusterEntraDynamicSecret => None,
            },
            name: reference.name.clone(),
        }
    }

    /// The pool a claim's record says its credential was issued from.
    pub fn issued_from(pool: &super::claim_record::PoolIdentity) -> PoolKey {
        PoolKey {
            kind: if pool.namespace.is_empty() {
                PoolKind::ClusterEntraDynamicSecret
            } else {
                PoolKind::EntraDynamicSecret
            },
            namespace: (!pool.namespace.is_empty()).then(|| pool.namespace.clone()),
            name: pool.name.clone(),
        }
    }

    /// The key as a claim's pool annotation carries it: `namespace/name` for a namespaced pool
    /// (as before cluster pools existed), `/name` for a cluster pool.
    pub fn to_annotation(&self) -> String {
        format!(
            "{}/{}",
            self.namespace.as_deref().unwrap_or_default(),
            self.name
        )
    }

    pub fn from_annotation(value: &str) -> Option<PoolKey> {
        let (namespace, name) = value.split_once('/')?;
        Some(PoolKey {
            kind: if namespace.is_empty() {
                PoolKind::ClusterEntraDynamicSecret
            } else {
                PoolKind::EntraDynamicSecret
            },
            namespace: (!namespace.is_empty()).then(|| namespace.to_owned()),
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for PoolKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind.as_str(), self.name),
            None => write!(f, "{} {}", self.kind.as_str(), self.name),
        }
    }
}

impl Pool {
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Pool::Namespaced(pool) => &pool.metadata,
            Pool::Cluster(pool) => &pool.metadata,
        }
    }

    pub fn spec(&self) -> &PoolSpec {
        match self {
            Pool::Namespaced(pool) => &pool.spec.pool,
            Pool::Cluster(pool) => &pool.spec.pool,
        }
    }

    pub fn status(&self) -> Option<&DynamicSecretStatus> {
        match self {
            Pool::Namespaced(pool) => pool.status.as_ref(),
            Pool::Cluster(pool) => pool.status.as_ref(),
        }
    }

    /// How many of its users the leases of one namespace may hold at once (cluster pools only).
    pub fn max_leases_per_namespace(&self) -> Option<u32> {
        match self {
            Pool::Namespaced(_) => None,
            Pool::Cluster(pool) => pool.spec.max_leases_per_namespace,
        }
    }

    pub fn kind(&self) -> PoolKind {
        match self {
            Pool::Namespaced(_) => PoolKind::EntraDynamicSecret,
            Pool::Cluster(_) => PoolKind::ClusterEntraDynamicSecret,
        }
    }

    pub fn name_any(&self) -> String {
        self.metadata().name.clone().unwrap_or_default()
    }

    pub fn key(&self) -> PoolKey {
        PoolKey {
            kind: self.kind(),
            namespace: self.metadata().namespace.clone(),
            name: self.name_any(),
        }
    }

    /// Where the pool's credential references resolve: its own namespace, or for a cluster pool
    /// only the operator's (never a tenant's).
    pub fn credential_namespace(&self, operator_namespace: &str) -> String {
        match self {
            Pool::Namespaced(pool) => pool.namespace().unwrap_or_default(),
            Pool::Cluster(_) => operator_namespace.to_owned(),
        }
    }

    /// Whether the pool serves leases of a namespace with `labels`: a namespaced pool serves its
    /// own namespace (a lease can name no other), a cluster pool those its selector matches. An
    /// invalid selector selects nothing.
    pub fn serves(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Pool::Namespaced(_) => true,
            Pool::Cluster(pool) => namespace_selector(&pool.spec.namespace_selector)
                .is_ok_and(|selector| selector.matches(labels)),
        }
    }

    /// Why the pool's namespace selector is invalid, if it is.
    pub fn selector_problem(&self) -> Option<String> {
        match self {
            Pool::Namespaced(_) => None,
            Pool::Cluster(pool) => namespace_selector(&pool.spec.namespace_selector).err(),
        }
    }

    /// Writes the pool's status (conditional on the cached resourceVersion).
    pub async fn write_status(
        &self,
        client: &Client,
        status: &DynamicSecretStatus,
    ) -> kube::Result<()> {
        match self {
            Pool::Namespaced(pool) => {
                let api = Api::namespaced(client.clone(), &pool.namespace().unwrap_or_default());
                apply_status(&api, pool.as_ref(), pool.status.as_ref(), status)
                    .await
                    .map(|_| ())
            }
            Pool::Cluster(pool) => {
                let api = Api::all(client.clone());
                apply_status(&api, pool.as_ref(), pool.status.as_ref(), status)
                    .await
                    .map(|_| ())
            }
        }
    }

    /// A reference for events about the pool.
    pub fn object_ref(&self) -> ObjectReference {
        let mut reference = match self {
            Pool::Namespaced(pool) => pool.object_ref(&()),
            Pool::Cluster(pool) => pool.object_ref(&()),
        };
        // Without the resourceVersion, repeats of a warning about one pool form a series.
        reference.resource_version = None;
        reference
    }
}

/// A namespace selector as Kubernetes reads one. The CRD schema cannot check its expressions, and
/// kube's parser is more lenient than Kubernetes (`NotIn` with no values would match every
/// namespace), so each expression is checked here.
fn namespace_selector(selector: &LabelSelector) -> Result<Selector, String> {
    for expression in selector.match_expressions.iter().flatten() {
        let values = expression.values.as_ref().map_or(0, Vec::len);
        let fits = match expression.operator.as_str() {
            "In" | "NotIn" => values > 0,
            "Exists" | "DoesNotExist" => values == 0,
            other => {
                return Err(format!(
                    "unknown operator {other:?} for key {}",
                    expression.key
                ));
            }
        };
        if !fits {
            return Err(format!(
                "operator {} for key {} takes {} values",
                expression.operator,
                expression.key,
                if values == 0 { "some" } else { "no" }
            ));
        }
    }
    Selector::try_from(selector.clone()).map_err(|error| error.to_string())
}

/// The caches of both kinds of pool.
#[derive(Clone)]
pub struct PoolStores {
    pub namespaced: Store<EntraDynamicSecret>,
    pub cluster: Store<ClusterEntraDynamicSecret>,
}

impl PoolStores {
    /// The pool `key` names.
    pub fn get(&self, key: &PoolKey) -> Option<Pool> {
        match (key.kind, &key.namespace) {
            (PoolKind::EntraDynamicSecret, Some(namespace)) => self
                .namespaced
                .get(&ObjectRef::new(&key.name).within(namespace))
                .map(Pool::Namespaced),
            (PoolKind::ClusterEntraDynamicSecret, None) => self
                .cluster
                .get(&ObjectRef::new(&key.name))
                .map(Pool::Cluster),
            _ => None,
        }
    }

    /// The pool `lease` refers to.
    pub fn of_lease(&self, lease: &EntraLease) -> Option<Pool> {
        let namespace = lease.namespace().unwrap_or_default();
        self.get(&PoolKey::of_lease(
            &namespace,
            &lease.spec.dynamic_secret_ref,
        ))
    }

    /// Every pool of both kinds.
    pub fn all(&self) -> impl Iterator<Item = Pool> + use<> {
        let namespaced = self.namespaced.state().into_iter().map(Pool::Namespaced);
        let cluster = self.cluster.state().into_iter().map(Pool::Cluster);
        namespaced.chain(cluster)
    }
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind().as_str(), self.name_any())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ClusterEntraDynamicSecretSpec;
    use crate::fixtures::pool_spec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    fn cluster_pool(selector: LabelSelector) -> Pool {
        let spec = ClusterEntraDynamicSecretSpec {
            pool: pool_spec(&["alice@contoso.com"]).pool,
            namespace_selector: selector,
            max_leases_per_namespace: None,
        };
        Pool::Cluster(Arc::new(ClusterEntraDynamicSecret::new("shared", spec)))
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_empty_selector_serves_every_namespace_and_a_set_one_only_matches() {
        assert!(cluster_pool(LabelSelector::default()).serves(&labels(&[])));
        let team = cluster_pool(LabelSelector {
            match_labels: Some(labels(&[("entra", "yes")])),
            ..LabelSelector::default()
        });
        assert!(team.serves(&labels(&[("entra", "yes"), ("x", "y")])));
        assert!(!team.serves(&labels(&[("entra", "no")])));
        assert!(!team.serves(&labels(&[])));
        let expression = cluster_pool(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["prod".into()]),
            }]),
            ..LabelSelector::default()
        });
        assert!(expression.serves(&labels(&[("tier", "prod")])));
        assert!(!expression.serves(&labels(&[("tier", "dev")])));
    }

    #[test]
    fn an_invalid_selector_serves_nobody_and_says_why() {
        for (operator, values) in [
            ("NotIn", None),
            ("In", Some(vec![])),
            ("Exists", Some(vec!["x".to_owned()])),
            ("Matches", Some(vec!["x".to_owned()])),
        ] {
            let pool = cluster_pool(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: operator.into(),
                    values,
                }]),
                ..LabelSelector::default()
            });
            assert!(!pool.serves(&labels(&[("tier", "prod")])), "{operator}");
            assert!(pool.selector_problem().is_some(), "{operator}");
        }
    }

    #[test]
    fn a_cluster_pools_credential_resolves_in_the_operators_namespace_only() {
        let pool = cluster_pool(LabelSelector::default());
        assert_eq!(pool.credential_namespace("entra-system"), "entra-system");
        let mut namespaced = EntraDynamicSecret::new("pool", pool_spec(&["alice@contoso.com"]));
        namespaced.metadata.namespace = Some("team-a".into());
        let namespaced = Pool::Namespaced(Arc::new(namespaced));
        assert_eq!(namespaced.credential_namespace("entra-system"), "team-a");
    }

    #[test]
    fn pool_keys_survive_the_claim_annotation() {
        for key in [
            PoolKey {
                kind: PoolKind::EntraDynamicSecret,
                namespace: Some("team-a".into()),
                name: "pool".into(),
            },
            PoolKey {
                kind: PoolKind::ClusterEntraDynamicSecret,
                namespace: None,
                name: "shared".into(),
            },
        ] {
            assert_eq!(PoolKey::from_annotation(&key.to_annotation()), Some(key));
        }
    }
}
