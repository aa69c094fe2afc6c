//! The renew and rotate annotations are requests: a value the claim's record has not answered
//! yet asks for a renewal or a rotation, once.

use kube::ResourceExt;

use crate::api::{EntraLease, RENEW_ANNOTATION, ROTATE_ANNOTATION};

use super::claim_record::ClaimRecord;

/// The longest request kept as it is; a longer one is kept by its digest, so that a huge
/// annotation cannot bloat the claim.
pub const REQUEST_MAX: usize = 63;

/// An annotation's request as a record keeps it (renew and rotate alike).
pub fn request_key(value: &str) -> String {
    // A key is its own key: the lease cache keeps long requests as their keys.
    let is_key = value.len() == 71
        && value
            .strip_prefix("sha256:")
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()));
    if value.len() <= REQUEST_MAX || is_key {
        return value.to_owned();
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, value.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The renew annotation's value when no renewal has answered it yet.
pub fn pending_renew_request(lease: &EntraLease, record: &ClaimRecord) -> Option<String> {
    let requested = request_key(lease.annotations().get(RENEW_ANNOTATION)?);
    (record.last_renew_request.as_ref() != Some(&requested)).then_some(requested)
}

/// The rotate annotation's value when no rotation has answered it yet.
pub fn pending_rotate_request(lease: &EntraLease, current: &ClaimRecord) -> Option<String> {
    let requested = request_key(lease.annotations().get(ROTATE_ANNOTATION)?);
    (current.last_rotate_request.as_ref() != Some(&requested)).then_some(requested)
}
