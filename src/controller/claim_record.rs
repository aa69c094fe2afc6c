//! What the operator relies on for one leased user, kept in the user's claim in the operator's
//! namespace (where only the operator writes). The lease's status is a projection of it and is
//! never read back as truth: whoever may write `entraleases/status` cannot move a deadline, swap
//! the user or skip a revocation.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::restore_backoff::RestoreBackoff;
use crate::api::{Cloud, LeasedUser};

/// Annotation of a claim holding its [`ClaimRecord`] as JSON.
pub const RECORD_ANNOTATION: &str = "kms.hanzo.ai/record";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimRecord {
    pub lease: LeaseIdentity,
    pub pool: PoolIdentity,
    pub user: LeasedUser,
    /// The app identity the password was set with; revocation uses it, whatever the pool says now.
    pub app: AppIdentity,
    /// `revokeSignInSessions` of the pool as it was at issue.
    pub revoke_sign_in_sessions: bool,
    /// The fingerprints of the user's sign-in methods (besides the password) when the lease was
    /// issued (ids; a phone's or an email's with a digest of its number or address): every end
    /// deletes the others. `None`: methods are not removed (the pool keeps them, or
    /// its app could not list them at issue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods_at_issue: Option<Vec<String>>,
    /// A Temporary Access Pass lease (the pool's `credentialType` at issue): the pass asked for,
    /// and once Entra created it, its id. The Secret holds the pass instead of a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_pass: Option<AccessPassRecord>,
    /// `disableIdleUsers` of the pool as it was at issue: the end disables the account.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_when_idle: bool,
    /// Length of the scramble password (the pool's `passwordLength` at issue).
    pub password_length: u16,
    /// The Secret (in the lease's namespace) the credentials are written to.
    pub secret_name: String,
    /// True once Entra confirmed the password: until then a restart resumes the issue.
    pub issued: bool,
    pub issued_at: Time,
    pub expires_at: Time,
    pub max_expires_at: Time,
    #[serde(default)]
    pub renew_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_renewed_at: Option<Time>,
    /// The last value of the renew annotation acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_renew_request: Option<String>,
    /// Which credential of its lease this is: 1 for the first, one more for each rotation or
    /// restore. Of two claims a continuous lease holds, the higher one is current.
    #[serde(default = "first_generation")]
    pub generation: u32,
    /// The last value of the rotate annotation acted on (carried from credential to credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotate_request: Option<String>,
    /// The lease's restores of its Secret so far, which space out the next one (carried from
    /// credential to credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restores: Option<RestoreBackoff>,
    /// Set once the password was scrambled because the Secret was taken while the next restore
    /// had to wait: no working password exists, and a fresh one is issued at this time (or
    /// later, as the restores' spacing says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_at: Option<Time>,
}

/// The Temporary Access Pass of a lease.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AccessPassRecord {
    /// The lease's TTL in whole minutes.
    pub lifetime_in_minutes: u32,
    pub usable_once: bool,
    /// The pass's method id, once Entra created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

fn first_generation() -> u32 {
    1
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LeaseIdentity {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PoolIdentity {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AppIdentity {
    pub cloud: Cloud,
    /// The authority host the token came from (informational: endpoints follow the cloud and the
    /// operator's own overrides, never an object's field).
    pub authority: String,
    pub tenant_id: String,
    pub application_id: String,
    /// What revocation authenticates with.
    pub credential: CredentialCopyRef,
}

/// The credential a claim was issued with, as revocation finds it: the operator's own copy (a
/// Secret in its namespace) of a client secret or certificate, or, for workload identity, the
/// ServiceAccount of the operator's namespace or the operator's own federated token.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialCopyRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub own_federated_token: bool,
}

impl ClaimRecord {
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at.0
    }

    pub fn max_expires_at(&self) -> Timestamp {
        self.max_expires_at.0
    }

    /// The record as the claim's annotation value.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The record in a claim's annotation; `None` when absent or unreadable (then nothing is
    /// trusted from the claim but its holder).
    pub fn from_annotation(value: &str) -> Option<ClaimRecord> {
        serde_json::from_str(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::record;

    #[test]
    fn a_record_survives_its_annotation() {
        let record = record();
        let back = ClaimRecord::from_annotation(&record.to_annotation());
        assert_eq!(back, Some(record));
    }

    #[test]
    fn a_record_written_before_other_credential_kinds_still_reads() {
        let mut value = serde_json::to_value(record()).unwrap();
        value["app"]["credential"] = serde_json::json!({ "secretName": "entra-app-1-2" });
        let old = ClaimRecord::from_annotation(&value.to_string()).expect("an old record");
        assert_eq!(
            old.app.credential.secret_name.as_deref(),
            Some("entra-app-1-2")
        );
        assert!(!old.app.credential.own_federated_token);
    }

    #[test]
    fn an_unreadable_annotation_is_no_record() {
        assert_eq!(ClaimRecord::from_annotation("{\"lease\":1}"), None);
        assert_eq!(ClaimRecord::from_annotation(""), None);
    }
}
