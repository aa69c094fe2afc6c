use crate::graph::GraphError;

/// Why a reconcile failed; the controller retries with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    #[error(transparent)]
    Graph(#[from] GraphError),

    #[error("client secret: {0}")]
    ClientSecret(String),

    #[error("revocation is waiting: {0}")]
    RevocationBlocked(String),

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
            Error::RevocationBlocked(_) => "revocation_blocked",
            Error::WaitingForLeases(_) => "waiting_for_leases",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(error)
                | kube::runtime::finalizer::Error::CleanupFailed(error) => error.metric_label(),
                _ => "finalizer",
            },
        }
    }
}
