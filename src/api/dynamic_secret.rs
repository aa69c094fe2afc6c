use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::descriptions::flowing_descriptions;
use super::pool_spec::{DynamicSecretStatus, PoolSpec, WORKLOAD_IDENTITY_IS_CLUSTER_ONLY};

/// A pool of existing Entra ID users whose credentials can be leased, and the app registration
/// that may reset their passwords.
// Repeated `type_` keys of different printer columns look like duplicates to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kms.hanzo.ai",
    version = "v1alpha1",
    kind = "EntraDynamicSecret",
    namespaced,
    status = "DynamicSecretStatus",
    shortname = "eds",
    category = "entra",
    doc = "A pool of Microsoft Entra ID users whose credentials can be leased as Kubernetes Secrets.",
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
#[x_kube(validation = Rule::new("!has(self.workloadIdentity)")
    .message(Message::Message(WORKLOAD_IDENTITY_IS_CLUSTER_ONLY.into()))
    .field_path(".workloadIdentity"))]
#[x_kube(validation = Rule::new("(has(self.clientSecretRef) ? 1 : 0) + (has(self.certificateRef) ? 1 : 0) == 1")
    .message(Message::Message("set exactly one credential: clientSecretRef or certificateRef".into())))]
#[schemars(transform = flowing_descriptions)]
pub struct EntraDynamicSecretSpec {
    #[serde(flatten)]
    pub pool: PoolSpec,
}

impl std::ops::Deref for EntraDynamicSecretSpec {
    type Target = PoolSpec;

    fn deref(&self) -> &PoolSpec {
        &self.pool
    }
}
