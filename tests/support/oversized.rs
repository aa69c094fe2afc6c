//! The largest objects a lease user can put in a namespace, for the memory test and the bench: a
//! lease at the CRD's maximum size, and a Secret of 1 MiB wearing the label of the operator's
//! Secrets.

use k8s_openapi::api::core::v1::Secret;
use kube::api::DynamicObject;
use serde_json::{Map, Value, json};

/// Bytes of the lease's own annotations (Kubernetes allows 256 KiB in all).
pub const LEASE_ANNOTATION_BYTES: usize = 200 * 1024;
/// Bytes of each labelled Secret's data.
pub const SECRET_BYTES: usize = 1024 * 1024;

/// Lease `big-<index>` as large as the CRD lets a lease user make it: templates of 16 KiB in all,
/// template annotations of 16 KiB, 32 template labels, and 200 KiB of the lease's own annotations.
/// It names a pool that does not exist, so it stays Pending, cached.
pub fn largest_lease(index: usize) -> DynamicObject {
    let map = |count: usize, prefix: &str, value: &str| -> Map<String, Value> {
        (0..count)
            .map(|key| (format!("{prefix}{key}"), json!(value)))
            .collect()
    };
    let template = format!("{{# {} #}}", "x".repeat(8180));
    serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraLease",
        "metadata": {
            "name": format!("big-{index}"),
            // A tenant may choose a key in the operator's own domain too.
            "annotations": { "kms.hanzo.ai/notes": "n".repeat(LEASE_ANNOTATION_BYTES) },
        },
        "spec": {
            "dynamicSecretRef": { "name": "no-such-pool" },
            "template": {
                "data": map(2, "k", &template),
                "annotations": map(4, "a", &"y".repeat(4000)),
                "labels": map(32, "l", &"z".repeat(63)),
            },
        },
    }))
    .expect("a lease")
}

/// Secret `mimic-<index>` of [`SECRET_BYTES`], labelled as the operator labels its Secrets.
pub fn labelled_secret(index: usize) -> Secret {
    serde_json::from_value(json!({
        "metadata": {
            "name": format!("mimic-{index}"),
            "labels": { "app.kubernetes.io/managed-by": "entra-operator" },
        },
        "stringData": { "blob": "s".repeat(SECRET_BYTES) },
    }))
    .expect("a Secret")
}
