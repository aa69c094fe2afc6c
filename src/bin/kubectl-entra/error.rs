//! What can go wrong, each said so that the user knows what to do next.

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PoolNotReady(String),
    #[error("{0}")]
    LeaseNotUsable(String),
    #[error("{0}")]
    Timeout(String),
    /// RBAC refused a request: which verb on which resource, and where.
    #[error(
        "you may not {verb} {resource} in {scope} (RBAC: {message}); ask your cluster \
         administrator for that right"
    )]
    Forbidden {
        verb: &'static str,
        resource: &'static str,
        scope: String,
        message: String,
    },
    #[error("{0}")]
    Output(String),
    #[error("entra-operator is not fully working:\n  - {0}")]
    Unhealthy(String),
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
}

/// One API request, described for its errors.
pub struct Request<'a> {
    pub verb: &'static str,
    pub resource: &'static str,
    /// `namespace team-a`, or `the cluster`.
    pub scope: &'a str,
}

impl Request<'_> {
    /// A kube error as the user should read it: RBAC refusals by verb and resource.
    pub fn error(&self, error: kube::Error) -> PluginError {
        match error {
            kube::Error::Api(status) if status.code == 403 => PluginError::Forbidden {
                verb: self.verb,
                resource: self.resource,
                scope: self.scope.to_owned(),
                message: status.message.clone(),
            },
            other => PluginError::Kube {
                action: format!("{} {} in {}", self.verb, self.resource, self.scope),
                source: other,
            },
        }
    }
}

/// Whether the API answered with `code`.
pub fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

/// `namespace X` for messages.
pub fn in_namespace(namespace: &str) -> String {
    format!("namespace {namespace}")
}
