use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::descriptions::flowing_descriptions;
use super::pool_spec::{DynamicSecretStatus, PoolSpec};

/// A pool that serves leases of every namespace its selector matches, with its app credential
/// kept in the operator's namespace: lease users never see the credential that resets passwords.
// Repeated `type_` keys of different printer columns look like duplicates to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kms.hanzo.ai",
    version = "v1alpha1",
    kind = "ClusterEntraDynamicSecret",
    status = "DynamicSecretStatus",
    shortname = "ceds",
    category = "entra",
    doc = "A cluster-wide pool of Microsoft Entra ID users, leased from the namespaces it selects; its app credential stays in the operator's namespace.",
    printcolumn(name = "Tenant", type_ = "string", json_path = ".spec.tenantId"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Available", type_ = "integer", json_path = ".status.available"),
    printcolumn(name = "Leased", type_ = "integer", json_path = ".status.leased"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("duration(self.defaultTTL) <= duration(self.maxTTL)")
    .message(Message::Message("defaultTTL must not be longer than maxTTL".into()))
    .field_path(".defaultTTL"))]
#[x_kube(validation = Rule::new("(has(self.clientSecretRef) ? 1 : 0) + (has(self.certificateRef) ? 1 : 0) + (has(self.workloadIdentity) ? 1 : 0) == 1")
    .message(Message::Message("set exactly one credential: clientSecretRef, certificateRef or workloadIdentity".into())))]
#[serde(rename_all = "camelCase")]
#[schemars(transform = flowing_descriptions)]
pub struct ClusterEntraDynamicSecretSpec {
    #[serde(flatten)]
    pub pool: PoolSpec,

    /// The namespaces whose leases this pool serves; {} selects every namespace. A lease from a
    /// namespace it does not select is refused; one whose namespace stops matching while it is
    /// active runs to its end but is not renewed.
    pub namespace_selector: LabelSelector,

    /// How many of the pool's users the leases of one namespace may hold at once, at least 1;
    /// unset, as many as the pool has. A lease over it waits Pending (NamespaceShareExhausted)
    /// until one of its namespace's leases of this pool ends. A continuous lease's rotation is
    /// not held back by it: for the overlap, the rotating lease holds a second user beyond it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("format" = "int32"))]
    pub max_leases_per_namespace: Option<u32>,
}

impl std::ops::Deref for ClusterEntraDynamicSecretSpec {
    type Target = PoolSpec;

    fn deref(&self) -> &PoolSpec {
        &self.pool
    }
}
