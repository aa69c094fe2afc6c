//! What the watches may hold in memory. Every tenant's objects land in one process, so the caches
//! keep only what the operator reads, and lists come in pages small enough that even objects at
//! Kubernetes' size limit (about 1.5 MiB) cannot make one list response exhaust the pod.

use std::collections::BTreeMap;

use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use super::requests::request_key;
use crate::api::{EntraLease, RENEW_ANNOTATION, ROTATE_ANNOTATION};

/// Objects per list page of the kinds tenants write (leases, pools, Secrets). A page is held whole
/// while it is decoded: with 200 leases at the CRD's maximum size (and 200 KiB of annotations
/// each) the operator peaked 20 MiB above its baseline at 10 per page, 36 MiB at 25 and 59 MiB at
/// 50 (tests/memory_bounds.rs). 10,000 leases list in 400 requests.
pub const LIST_PAGE_SIZE: u32 = 25;

/// A watch configuration for the kinds tenants write: lists in [`LIST_PAGE_SIZE`] pages.
pub fn paged() -> watcher::Config {
    watcher::Config::default().page_size(LIST_PAGE_SIZE)
}

/// A cached pool as the reconcilers read it: no managedFields (about a third of an object), no
/// labels and no annotations (kubectl's last-applied-configuration is a second copy of the whole
/// object, and a tenant's own notes may hold 256 KiB). Nothing reads them.
pub fn slim<K: Resource>(object: &mut K) {
    let metadata = object.meta_mut();
    metadata.managed_fields = None;
    metadata.labels = None;
    metadata.annotations = None;
}

/// A cached namespace: its labels (the cluster pools' selectors read them), nothing else.
pub fn slim_namespace<K: Resource>(namespace: &mut K) {
    let metadata = namespace.meta_mut();
    metadata.managed_fields = None;
    metadata.annotations = None;
}

/// A cached lease: as [`slim`], but its renewal and rotation requests kept, each as the key the
/// decisions compare (a long value by its digest), so a request of 256 KiB costs 71 bytes.
pub fn slim_lease(lease: &mut EntraLease) {
    let requests: BTreeMap<String, String> = [RENEW_ANNOTATION, ROTATE_ANNOTATION]
        .into_iter()
        .filter_map(|key| Some((key.to_owned(), request_key(lease.annotations().get(key)?))))
        .collect();
    slim(lease);
    if !requests.is_empty() {
        lease.metadata.annotations = Some(requests);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    #[test]
    fn a_slim_lease_keeps_its_requests_as_keys_and_nothing_else_of_its_metadata() {
        let mut lease = EntraLease::new("ci", crate::fixtures::lease_spec());
        let huge = "r".repeat(256 * 1024);
        lease.metadata.annotations = Some(
            [
                (RENEW_ANNOTATION, "1"),
                (ROTATE_ANNOTATION, huge.as_str()),
                ("kms.hanzo.ai/notes", huge.as_str()),
                ("kubectl.kubernetes.io/last-applied-configuration", "{...}"),
            ]
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .into(),
        );
        lease.metadata.labels = Some([("team".to_owned(), "a".to_owned())].into());
        lease.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        let rotate_key = request_key(&huge);
        slim_lease(&mut lease);
        assert_eq!(
            lease.metadata.annotations,
            Some(
                [
                    (RENEW_ANNOTATION.to_owned(), "1".to_owned()),
                    (ROTATE_ANNOTATION.to_owned(), rotate_key.clone()),
                ]
                .into()
            )
        );
        assert_eq!(
            request_key(&rotate_key),
            rotate_key,
            "the decisions read the same request from the slim lease"
        );
        assert!(lease.metadata.labels.is_none() && lease.metadata.managed_fields.is_none());
    }
}
