//! What the watches may hold in memory. Every tenant's objects land in one process, so the caches
//! keep only what the operator reads, and lists come in pages small enough that even objects at
//! Kubernetes' size limit (about 1.5 MiB) cannot make one list response exhaust the pod.

use kube::Resource;
use kube::runtime::watcher;

use crate::api::GROUP;

/// Objects per list page of the kinds tenants write (leases, pools, Secrets). A page is held whole
/// while it is decoded: with 200 leases at the CRD's maximum size (and 200 KiB of annotations
/// each) the operator peaked 20 MiB above its baseline at 10 per page, 36 MiB at 25 and 59 MiB at
/// 50 (tests/memory_bounds.rs). 10,000 leases list in 400 requests.
pub const LIST_PAGE_SIZE: u32 = 25;

/// A watch configuration for the kinds tenants write: lists in [`LIST_PAGE_SIZE`] pages.
pub fn paged() -> watcher::Config {
    watcher::Config::default().page_size(LIST_PAGE_SIZE)
}

/// Drops from a cached object what no reconcile reads: its managedFields (about a third of an
/// object) and every annotation outside the operator's own `kms.hanzo.ai/` keys, such as
/// kubectl's last-applied-configuration, a second copy of the whole object, or a tenant's own
/// notes of up to 256 KiB.
pub fn slim<K: Resource>(object: &mut K) {
    let metadata = object.meta_mut();
    metadata.managed_fields = None;
    if let Some(annotations) = metadata.annotations.as_mut() {
        let own = format!("{GROUP}/");
        annotations.retain(|key, _| key.starts_with(&own));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{EntraLease, RENEW_ANNOTATION, ROTATE_ANNOTATION};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    #[test]
    fn a_slim_lease_keeps_the_operators_annotations_only() {
        let mut lease = EntraLease::new("ci", crate::fixtures::lease_spec());
        lease.metadata.annotations = Some(
            [
                (RENEW_ANNOTATION, "1"),
                (ROTATE_ANNOTATION, "2"),
                ("kubectl.kubernetes.io/last-applied-configuration", "{...}"),
                ("team.example.com/notes", "long"),
            ]
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .into(),
        );
        lease.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        slim::<EntraLease>(&mut lease);
        let kept: Vec<&String> = lease
            .metadata
            .annotations
            .as_ref()
            .unwrap()
            .keys()
            .collect();
        assert_eq!(kept, [RENEW_ANNOTATION, ROTATE_ANNOTATION]);
        assert!(lease.metadata.managed_fields.is_none());
    }
}
