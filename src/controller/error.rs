use crate::graph::GraphError;

/// Why a reconcile failed; the controller retries with backoff. Each actionable failure has a
/// variant of its own, with its condition reason and its metric label.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    #[error(transparent)]
    Graph(#[from] GraphError),

    #[error("client secret: {0}")]
    ClientSecret(String),

    /// A pool's credential is unusable as configured; `reason` names the problem.
    #[error("{message}")]
    Credential {
        reason: &'static str,
        message: String,
    },

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

impl Error {
    /// A low-cardinality label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kubernetes",
            Error::Graph(error) => error.metric_label(),
            Error::ClientSecret(_) => "client_secret",
            Error::Credential { .. } => "credential",
            Error::SecretNotOwned(_) => "secret_conflict",
            Error::Template(_) => "template",
            Error::SecretType(_) => "secret_type",
            Error::PasswordsRejected(_) => "password_rejected",
            Error::CredentialLost(_) => "credential_lost",
            Error::MalformedClaim(_) => "malformed_claim",
            Error::Stale(_) => "stale",
            Error::WaitingForLeases(_) => "waiting_for_leases",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(error)
                | kube::runtime::finalizer::Error::CleanupFailed(error) => error.metric_label(),
                _ => "finalizer",
            },
        }
    }

    /// The reason a condition or event shows for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Graph(error) => error.reason(),
            Error::ClientSecret(_) => "ClientSecretNotFound",
            Error::Credential { reason, .. } => reason,
            Error::SecretNotOwned(_) => "SecretConflict",
            Error::Template(_) => "TemplateInvalid",
            Error::SecretType(_) => "SecretTypeNotAllowed",
            Error::PasswordsRejected(_) => "PasswordRejected",
            Error::CredentialLost(_) | Error::MalformedClaim(_) => "RevocationBlocked",
            _ => "ReconcileFailed",
        }
    }

    /// True when the reconcile acted on a stale copy (directly or inside the finalizer helper).
    pub fn is_stale(&self) -> bool {
        match self {
            Error::Stale(_) => true,
            Error::Finalizer(inner) => matches!(
                inner.as_ref(),
                kube::runtime::finalizer::Error::ApplyFailed(Error::Stale(_))
                    | kube::runtime::finalizer::Error::CleanupFailed(Error::Stale(_))
            ),
            _ => false,
        }
    }

    /// Turns a conditional write's 409 into [`Error::Stale`].
    pub fn stale_on_conflict(what: &'static str) -> impl Fn(kube::Error) -> Error {
        move |error| match &error {
            kube::Error::Api(status) if status.code == 409 => Error::Stale(what),
            _ => Error::Kube(error),
        }
    }
}
