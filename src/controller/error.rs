//! Why a reconcile failed, in kinds an operator can act on: each has its condition reason and
//! its metric label, and every classifier names every kind.

use super::reasons::Reason;
use crate::graph::GraphError;
use kube::runtime::finalizer::Error as Finalizer;

/// Why a reconcile failed; the controller retries with backoff. Each actionable failure has a
/// variant of its own, with its condition reason and its metric label.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server answered 409: an object was created or changed meanwhile (a write that
    /// expected it could be, such as a conditional one, becomes [`Error::Stale`] instead).
    #[error("Kubernetes API: {0}")]
    KubeConflict(#[source] kube::Error),

    /// The API server answered 404: an object (or its namespace, or its kind) is not there.
    #[error("Kubernetes API: {0}")]
    KubeNotFound(#[source] kube::Error),

    /// The API server answered 403: the operator's role does not allow the request.
    #[error("Kubernetes API: {0}")]
    KubeForbidden(#[source] kube::Error),

    /// Any other failure talking to the API server: another error status (a 5xx, 429, 401, an
    /// invalid object), or no answer at all (a connection refused, TLS, a body that does not
    /// parse). Mostly the server or the way to it: retried with backoff.
    #[error("Kubernetes API: {0}")]
    KubeServer(#[source] kube::Error),

    #[error(transparent)]
    Graph(#[from] GraphError),

    #[error("client secret: {0}")]
    ClientSecret(String),

    /// A pool's credential is unusable as configured; `reason` names the problem.
    #[error("{message}")]
    Credential { reason: Reason, message: String },

    #[error("Secret {0} exists and is not owned by this lease")]
    SecretNotOwned(String),

    #[error(transparent)]
    Template(#[from] crate::secret_template::TemplateError),

    #[error(transparent)]
    SecretType(#[from] crate::secret_types::SecretTypeRefused),

    #[error("Entra rejected {0} generated passwords in a row")]
    PasswordsRejected(u32),

    /// The operator's copy of the app credential recorded at issue is gone: revocation cannot
    /// authenticate until an administrator restores it (see the README).
    #[error("revocation is blocked: {0}")]
    CredentialLost(String),

    /// Sign-in methods registered during a lease came back as fast as the end deleted them.
    #[error(
        "sign-in methods added to {0} during its lease are still registered after deleting them"
    )]
    SignInMethodsRemain(String),

    /// A session revocation Graph answered, whose effect a read of the user does not show.
    #[error("the sessions of {0} were revoked, yet signInSessionsValidFromDateTime did not move")]
    SessionsNotRevoked(String),

    /// A claim without a readable record: nothing about its credential can be trusted.
    #[error("claim {0} has no readable record")]
    MalformedClaim(String),

    /// A conditional write found the object changed since it was read: this process acted on a
    /// stale copy, and looks again instead of acting on it.
    #[error("{0} changed since it was read; looking again")]
    Stale(&'static str),

    /// Not a failure: a dynamic secret's finalizer waits for its leases to end. kube's finalizer
    /// helper removes the finalizer after any successful cleanup, so waiting must be an error.
    #[error("waiting for {0} leases to end")]
    WaitingForLeases(usize),

    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl From<kube::Error> for Error {
    /// Classifies an API failure by its status, so that `?` sorts every kube call's error.
    fn from(error: kube::Error) -> Self {
        let code = match &error {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        };
        match code {
            Some(409) => Error::KubeConflict(error),
            Some(404) => Error::KubeNotFound(error),
            Some(403) => Error::KubeForbidden(error),
            Some(_) | None => Error::KubeServer(error),
        }
    }
}

impl Error {
    /// A low-cardinality label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::KubeConflict(_) => "kubernetes_conflict",
            Error::KubeNotFound(_) => "kubernetes_not_found",
            Error::KubeForbidden(_) => "kubernetes_forbidden",
            Error::KubeServer(_) => "kubernetes_server",
            Error::Graph(error) => error.metric_label(),
            Error::ClientSecret(_) => "client_secret",
            Error::Credential { .. } => "credential",
            Error::SecretNotOwned(_) => "secret_conflict",
            Error::Template(_) => "template",
            Error::SecretType(_) => "secret_type",
            Error::PasswordsRejected(_) => "password_rejected",
            Error::CredentialLost(_) => "credential_lost",
            Error::MalformedClaim(_) => "malformed_claim",
            Error::SignInMethodsRemain(_) => "sign_in_methods_remain",
            Error::SessionsNotRevoked(_) => "sessions_not_revoked",
            Error::Stale(_) => "stale",
            Error::WaitingForLeases(_) => "waiting_for_leases",
            Error::Finalizer(inner) => match inner.as_ref() {
                Finalizer::ApplyFailed(error) | Finalizer::CleanupFailed(error) => {
                    error.metric_label()
                }
                Finalizer::AddFinalizer(_)
                | Finalizer::RemoveFinalizer(_)
                | Finalizer::UnnamedObject
                | Finalizer::InvalidFinalizer => "finalizer",
            },
        }
    }

    /// The reason a condition or event shows for this failure.
    pub fn reason(&self) -> Reason {
        match self {
            Error::Graph(error) => Reason::of_graph(error),
            Error::ClientSecret(_) => Reason::ClientSecretNotFound,
            Error::Credential { reason, .. } => *reason,
            Error::SecretNotOwned(_) => Reason::SecretConflict,
            Error::Template(_) => Reason::TemplateInvalid,
            Error::SecretType(_) => Reason::SecretTypeNotAllowed,
            Error::PasswordsRejected(_) => Reason::PasswordRejected,
            Error::CredentialLost(_) | Error::MalformedClaim(_) => Reason::RevocationBlocked,
            Error::SignInMethodsRemain(_) => Reason::SignInMethodsRemain,
            Error::SessionsNotRevoked(_) => Reason::RevocationFailing,
            Error::KubeConflict(_)
            | Error::KubeNotFound(_)
            | Error::KubeForbidden(_)
            | Error::KubeServer(_)
            | Error::Stale(_)
            | Error::WaitingForLeases(_)
            | Error::Finalizer(_) => Reason::ReconcileFailed,
        }
    }

    /// How long a Graph request the reconcile parked in its app's line waits for its turn
    /// (directly or inside the finalizer helper): no failure, the reconcile comes back then.
    pub fn queued_for(&self) -> Option<std::time::Duration> {
        match self {
            Error::Graph(error) => error.queued_for(),
            Error::Finalizer(inner) => match inner.as_ref() {
                Finalizer::ApplyFailed(error) | Finalizer::CleanupFailed(error) => {
                    error.queued_for()
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// True when a Graph request of the reconcile only waits its turn (throttled or paced):
    /// no failure to report. One parked because Graph does not answer is reported.
    pub fn only_waits_its_turn(&self) -> bool {
        match self {
            Error::Graph(error) => error.only_waits_its_turn(),
            Error::Finalizer(inner) => match inner.as_ref() {
                Finalizer::ApplyFailed(error) | Finalizer::CleanupFailed(error) => {
                    error.only_waits_its_turn()
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// True when the reconcile acted on a stale copy (directly or inside the finalizer helper).
    pub fn is_stale(&self) -> bool {
        match self {
            Error::Stale(_) => true,
            Error::Finalizer(inner) => match inner.as_ref() {
                Finalizer::ApplyFailed(error) | Finalizer::CleanupFailed(error) => {
                    matches!(error, Error::Stale(_))
                }
                Finalizer::AddFinalizer(_)
                | Finalizer::RemoveFinalizer(_)
                | Finalizer::UnnamedObject
                | Finalizer::InvalidFinalizer => false,
            },
            Error::KubeConflict(_)
            | Error::KubeNotFound(_)
            | Error::KubeForbidden(_)
            | Error::KubeServer(_)
            | Error::Graph(_)
            | Error::ClientSecret(_)
            | Error::Credential { .. }
            | Error::SecretNotOwned(_)
            | Error::Template(_)
            | Error::SecretType(_)
            | Error::PasswordsRejected(_)
            | Error::CredentialLost(_)
            | Error::MalformedClaim(_)
            | Error::SignInMethodsRemain(_)
            | Error::SessionsNotRevoked(_)
            | Error::WaitingForLeases(_) => false,
        }
    }

    /// Turns a conditional write's 409 into [`Error::Stale`].
    pub fn stale_on_conflict(what: &'static str) -> impl Fn(kube::Error) -> Error {
        move |error| match Error::from(error) {
            Error::KubeConflict(_) => Error::Stale(what),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            ..kube::core::Status::default()
        }))
    }

    #[test]
    fn api_failures_are_told_apart_by_their_status() {
        let labels: Vec<&str> = [409, 404, 403, 500, 429, 401]
            .into_iter()
            .map(|code| Error::from(api_error(code)).metric_label())
            .collect();
        assert_eq!(
            labels,
            [
                "kubernetes_conflict",
                "kubernetes_not_found",
                "kubernetes_forbidden",
                "kubernetes_server",
                "kubernetes_server",
                "kubernetes_server",
            ]
        );
    }

    #[test]
    fn no_answer_from_the_api_server_is_a_server_failure() {
        let unparsable = serde_json::from_str::<u8>("not json").unwrap_err();
        let error = Error::from(kube::Error::SerdeError(unparsable));
        assert_eq!(error.metric_label(), "kubernetes_server");
        assert_eq!(error.reason(), Reason::ReconcileFailed);
    }

    #[test]
    fn only_a_conditional_writes_conflict_is_stale() {
        assert!(Error::stale_on_conflict("the lease")(api_error(409)).is_stale());
        assert!(!Error::stale_on_conflict("the lease")(api_error(404)).is_stale());
        assert!(!Error::from(api_error(409)).is_stale());
    }
}
