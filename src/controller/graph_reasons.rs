//! The reason a condition or event shows for each Graph failure: the controller's vocabulary,
//! matched variant by variant so that a new kind of failure cannot go by without one.

use super::reasons::Reason;
use crate::graph::{CertificateProblem, GraphError};

impl Reason {
    /// The reason for a failure of the Graph client.
    pub fn of_graph(error: &GraphError) -> Reason {
        match error {
            GraphError::Config(_) => Reason::InvalidConfiguration,
            GraphError::AssertionUnavailable { reason, .. } => Reason::of_assertion(reason),
            GraphError::InvalidClientSecret(_) => Reason::InvalidClientSecret,
            GraphError::InvalidClientAssertion(_) => Reason::InvalidClientAssertion,
            GraphError::ClientAssertionExpired(_) => Reason::ClientAssertionExpired,
            GraphError::FederatedCredentialNotFound(_) => Reason::FederatedCredentialNotFound,
            GraphError::Certificate(problem) => Reason::of_certificate(problem),
            GraphError::UnknownTenant(_) => Reason::UnknownTenant,
            GraphError::UnknownApplication(_) => Reason::UnknownApplication,
            GraphError::TokenRequestFailed { .. } => Reason::TokenRequestFailed,
            GraphError::AccessTokenRejected(_) => Reason::AccessTokenRejected,
            GraphError::MissingPermission { .. } => Reason::MissingPermission,
            GraphError::UserNotFound { .. } => Reason::UserNotFound,
            GraphError::UserNotLeasable { .. } => Reason::UserNotLeasable,
            GraphError::PasswordRejected { .. } => Reason::PasswordRejected,
            GraphError::TransientExhausted { .. } => Reason::GraphUnavailable,
            GraphError::Queued { .. } => Reason::WaitingForGraph,
            GraphError::Unexpected { .. } | GraphError::MalformedResponse { .. } => {
                Reason::UnexpectedGraphResponse
            }
        }
    }

    /// The reason for an app certificate that cannot sign client assertions.
    pub fn of_certificate(problem: &CertificateProblem) -> Reason {
        match problem {
            CertificateProblem::NoCertificate
            | CertificateProblem::NoPrivateKey
            | CertificateProblem::Malformed(_) => Reason::CertificateMalformed,
            CertificateProblem::Expired { .. } => Reason::CertificateExpired,
            CertificateProblem::NotYetValid { .. } => Reason::CertificateNotYetValid,
            CertificateProblem::KeyDoesNotMatch => Reason::CertificateKeyMismatch,
            CertificateProblem::UnsupportedKeyType(_) => Reason::CertificateKeyUnsupported,
        }
    }

    /// The reason a federated token could not be had, as its source named it: the operator's
    /// own token file (`graph::federated`) or a ServiceAccount's token (`service_account_token`),
    /// both spelled from this vocabulary. A name outside it cannot come from either.
    fn of_assertion(named: &str) -> Reason {
        Reason::named(named).unwrap_or(Reason::FederatedTokenUnavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Diagnostics;

    #[test]
    fn graph_failures_keep_the_reasons_graph_gives_them() {
        let failures = [
            GraphError::Config("x".into()),
            GraphError::InvalidClientSecret(Diagnostics::default()),
            GraphError::UnknownTenant(Diagnostics::default()),
            GraphError::Certificate(CertificateProblem::KeyDoesNotMatch),
            GraphError::Certificate(CertificateProblem::NoPrivateKey),
            GraphError::AssertionUnavailable {
                reason: Reason::FederatedTokenUnavailable.as_str(),
                message: "x".into(),
            },
            GraphError::AssertionUnavailable {
                reason: Reason::ServiceAccountTokenForbidden.as_str(),
                message: "x".into(),
            },
        ];
        for failure in failures {
            assert_eq!(Reason::of_graph(&failure).as_str(), failure.reason());
        }
    }
}
