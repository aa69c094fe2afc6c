//! Condition and event reasons of every controller: the one vocabulary in which a lease's or a
//! dynamic secret's conditions, its events and the controllers' errors say why. The strings are
//! user-visible API (alerts and scripts match them), so each is spelled here once.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    // Progress of a lease.
    Issued,
    Renewed,
    RenewalCapped,
    CredentialRestored,
    RestoreBackoff,
    Expired,
    Revoking,
    Revoked,
    RevocationFailing,
    RevocationBlocked,
    SecretLeftBehind,
    StatusRewritten,
    WaitingForUser,
    NamespaceShareExhausted,
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
    // A pool's app credential, as read.
    CredentialAmbiguous,
    WorkloadIdentityNotAllowed,
    ClientSecretExpiryInvalid,
    CertificateSecretWrongType,
    CertificateSecretIncomplete,
    CredentialCopyNotAllowed,
    FederatedTokenUnavailable,
    ServiceAccountNotFound,
    ServiceAccountTokenForbidden,
    ServiceAccountTokenFailed,
    CertificateMalformed,
    CertificateExpired,
    CertificateNotYetValid,
    CertificateKeyMismatch,
    CertificateKeyUnsupported,
    // Graph failures (see `graph_reasons`).
    InvalidConfiguration,
    InvalidClientSecret,
    InvalidClientAssertion,
    ClientAssertionExpired,
    FederatedCredentialNotFound,
    UnknownTenant,
    UnknownApplication,
    TokenRequestFailed,
    AccessTokenRejected,
    MissingPermission,
    UserNotFound,
    PasswordRejected,
    GraphUnavailable,
    /// A Graph request waits its turn for the app's budget (throttled, or paced).
    WaitingForGraph,
    UnexpectedGraphResponse,
    // Any other failure of a reconcile (the Kubernetes API, a stale copy).
    ReconcileFailed,
}

impl Reason {
    /// Every reason, for looking one up by its name.
    pub const ALL: [Reason; 74] = [
        Reason::Issued,
        Reason::Renewed,
        Reason::RenewalCapped,
        Reason::CredentialRestored,
        Reason::RestoreBackoff,
        Reason::Expired,
        Reason::Revoking,
        Reason::Revoked,
        Reason::RevocationFailing,
        Reason::RevocationBlocked,
        Reason::SecretLeftBehind,
        Reason::StatusRewritten,
        Reason::WaitingForUser,
        Reason::NamespaceShareExhausted,
        Reason::Rotated,
        Reason::RotationWaiting,
        Reason::PreviousCredentialEnded,
        Reason::CredentialEnded,
        Reason::RolloutRestarted,
        Reason::RolloutTargetRefused,
        Reason::RolloutRestartFailed,
        Reason::DynamicSecretNotFound,
        Reason::DynamicSecretNotReady,
        Reason::DynamicSecretDeleting,
        Reason::InvalidTTL,
        Reason::TTLExceedsMax,
        Reason::UserNotInPool,
        Reason::UserNotLeasable,
        Reason::SecretConflict,
        Reason::NamespaceNotSelected,
        Reason::CredentialEndsSoon,
        Reason::TemplateInvalid,
        Reason::SecretTypeNotAllowed,
        Reason::InvalidRotation,
        Reason::Ready,
        Reason::ClientSecretNotFound,
        Reason::ClientSecretUnreadable,
        Reason::NoLeasableUsers,
        Reason::SomeUsersNotLeasable,
        Reason::AllUsersLeasable,
        Reason::LeasesEnding,
        Reason::CloudNotAllowed,
        Reason::InvalidNamespaceSelector,
        Reason::CredentialAmbiguous,
        Reason::WorkloadIdentityNotAllowed,
        Reason::ClientSecretExpiryInvalid,
        Reason::CertificateSecretWrongType,
        Reason::CertificateSecretIncomplete,
        Reason::CredentialCopyNotAllowed,
        Reason::FederatedTokenUnavailable,
        Reason::ServiceAccountNotFound,
        Reason::ServiceAccountTokenForbidden,
        Reason::ServiceAccountTokenFailed,
        Reason::CertificateMalformed,
        Reason::CertificateExpired,
        Reason::CertificateNotYetValid,
        Reason::CertificateKeyMismatch,
        Reason::CertificateKeyUnsupported,
        Reason::InvalidConfiguration,
        Reason::InvalidClientSecret,
        Reason::InvalidClientAssertion,
        Reason::ClientAssertionExpired,
        Reason::FederatedCredentialNotFound,
        Reason::UnknownTenant,
        Reason::UnknownApplication,
        Reason::TokenRequestFailed,
        Reason::AccessTokenRejected,
        Reason::MissingPermission,
        Reason::UserNotFound,
        Reason::PasswordRejected,
        Reason::GraphUnavailable,
        Reason::WaitingForGraph,
        Reason::UnexpectedGraphResponse,
        Reason::ReconcileFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Issued => "Issued",
            Reason::Renewed => "Renewed",
            Reason::RenewalCapped => "RenewalCapped",
            Reason::CredentialRestored => "CredentialRestored",
            Reason::RestoreBackoff => "RestoreBackoff",
            Reason::Expired => "Expired",
            Reason::Revoking => "Revoking",
            Reason::Revoked => "Revoked",
            Reason::RevocationFailing => "RevocationFailing",
            Reason::RevocationBlocked => "RevocationBlocked",
            Reason::SecretLeftBehind => "SecretLeftBehind",
            Reason::StatusRewritten => "StatusRewritten",
            Reason::WaitingForUser => "WaitingForUser",
            Reason::NamespaceShareExhausted => "NamespaceShareExhausted",
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
            Reason::CredentialAmbiguous => "CredentialAmbiguous",
            Reason::WorkloadIdentityNotAllowed => "WorkloadIdentityNotAllowed",
            Reason::ClientSecretExpiryInvalid => "ClientSecretExpiryInvalid",
            Reason::CertificateSecretWrongType => "CertificateSecretWrongType",
            Reason::CertificateSecretIncomplete => "CertificateSecretIncomplete",
            Reason::CredentialCopyNotAllowed => "CredentialCopyNotAllowed",
            Reason::FederatedTokenUnavailable => "FederatedTokenUnavailable",
            Reason::ServiceAccountNotFound => "ServiceAccountNotFound",
            Reason::ServiceAccountTokenForbidden => "ServiceAccountTokenForbidden",
            Reason::ServiceAccountTokenFailed => "ServiceAccountTokenFailed",
            Reason::CertificateMalformed => "CertificateMalformed",
            Reason::CertificateExpired => "CertificateExpired",
            Reason::CertificateNotYetValid => "CertificateNotYetValid",
            Reason::CertificateKeyMismatch => "CertificateKeyMismatch",
            Reason::CertificateKeyUnsupported => "CertificateKeyUnsupported",
            Reason::InvalidConfiguration => "InvalidConfiguration",
            Reason::InvalidClientSecret => "InvalidClientSecret",
            Reason::InvalidClientAssertion => "InvalidClientAssertion",
            Reason::ClientAssertionExpired => "ClientAssertionExpired",
            Reason::FederatedCredentialNotFound => "FederatedCredentialNotFound",
            Reason::UnknownTenant => "UnknownTenant",
            Reason::UnknownApplication => "UnknownApplication",
            Reason::TokenRequestFailed => "TokenRequestFailed",
            Reason::AccessTokenRejected => "AccessTokenRejected",
            Reason::MissingPermission => "MissingPermission",
            Reason::UserNotFound => "UserNotFound",
            Reason::PasswordRejected => "PasswordRejected",
            Reason::GraphUnavailable => "GraphUnavailable",
            Reason::WaitingForGraph => "WaitingForGraph",
            Reason::UnexpectedGraphResponse => "UnexpectedGraphResponse",
            Reason::ReconcileFailed => "ReconcileFailed",
        }
    }

    /// The reason spelled `name`, if there is one.
    pub fn named(name: &str) -> Option<Reason> {
        Reason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == name)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_spelled_as_its_variant_and_found_by_its_name() {
        for reason in Reason::ALL {
            assert_eq!(reason.as_str(), format!("{reason:?}"));
            assert_eq!(Reason::named(reason.as_str()), Some(reason));
        }
        assert_eq!(Reason::named("NoSuchReason"), None);
    }
}
