//! Condition and event reasons of the lease and dynamic secret controllers. Graph failures use the
//! reason of their [`GraphError`](crate::graph::GraphError) instead.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    // Progress of a lease.
    Issued,
    Renewed,
    RenewalCapped,
    CredentialRestored,
    Expired,
    Revoking,
    Revoked,
    RevocationFailing,
    RevocationBlocked,
    SecretLeftBehind,
    StatusRewritten,
    WaitingForUser,
    // A continuous lease.
    Rotated,
    RotationWaiting,
    PreviousCredentialEnded,
    CredentialEnded,
    RolloutRestarted,
    RolloutTargetRefused,
    RolloutRestartFailed,
    // Why a lease waits.
    DynamicSecretNotFound,
    DynamicSecretNotReady,
    DynamicSecretDeleting,
    // Why a lease is refused.
    InvalidTTL,
    TTLExceedsMax,
    UserNotInPool,
    UserNotLeasable,
    SecretConflict,
    NamespaceNotSelected,
    CredentialEndsSoon,
    TemplateInvalid,
    SecretTypeNotAllowed,
    InvalidRotation,
    // A dynamic secret.
    Ready,
    ClientSecretNotFound,
    ClientSecretUnreadable,
    NoLeasableUsers,
    SomeUsersNotLeasable,
    AllUsersLeasable,
    LeasesEnding,
    CloudNotAllowed,
    InvalidNamespaceSelector,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Issued => "Issued",
            Reason::Renewed => "Renewed",
            Reason::RenewalCapped => "RenewalCapped",
            Reason::CredentialRestored => "CredentialRestored",
            Reason::Expired => "Expired",
            Reason::Revoking => "Revoking",
            Reason::Revoked => "Revoked",
            Reason::RevocationFailing => "RevocationFailing",
            Reason::RevocationBlocked => "RevocationBlocked",
            Reason::SecretLeftBehind => "SecretLeftBehind",
            Reason::StatusRewritten => "StatusRewritten",
            Reason::WaitingForUser => "WaitingForUser",
            Reason::Rotated => "Rotated",
            Reason::RotationWaiting => "RotationWaiting",
            Reason::PreviousCredentialEnded => "PreviousCredentialEnded",
            Reason::CredentialEnded => "CredentialEnded",
            Reason::RolloutRestarted => "RolloutRestarted",
            Reason::RolloutTargetRefused => "RolloutTargetRefused",
            Reason::RolloutRestartFailed => "RolloutRestartFailed",
            Reason::DynamicSecretNotFound => "DynamicSecretNotFound",
            Reason::DynamicSecretNotReady => "DynamicSecretNotReady",
            Reason::DynamicSecretDeleting => "DynamicSecretDeleting",
            Reason::InvalidTTL => "InvalidTTL",
            Reason::TTLExceedsMax => "TTLExceedsMax",
            Reason::UserNotInPool => "UserNotInPool",
            Reason::UserNotLeasable => "UserNotLeasable",
            Reason::SecretConflict => "SecretConflict",
            Reason::NamespaceNotSelected => "NamespaceNotSelected",
            Reason::CredentialEndsSoon => "CredentialEndsSoon",
            Reason::TemplateInvalid => "TemplateInvalid",
            Reason::SecretTypeNotAllowed => "SecretTypeNotAllowed",
            Reason::InvalidRotation => "InvalidRotation",
            Reason::Ready => "Ready",
            Reason::ClientSecretNotFound => "ClientSecretNotFound",
            Reason::ClientSecretUnreadable => "ClientSecretUnreadable",
            Reason::NoLeasableUsers => "NoLeasableUsers",
            Reason::SomeUsersNotLeasable => "SomeUsersNotLeasable",
            Reason::AllUsersLeasable => "AllUsersLeasable",
            Reason::LeasesEnding => "LeasesEnding",
            Reason::CloudNotAllowed => "CloudNotAllowed",
            Reason::InvalidNamespaceSelector => "InvalidNamespaceSelector",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
