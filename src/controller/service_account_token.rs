//! Workload identity with a ServiceAccount of the operator's namespace: the operator asks the
//! TokenRequest API for a short-lived token with the cloud's token-exchange audience, only when
//! an access token must be requested.

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};

use super::reasons::Reason;
use crate::graph::{FederatedTokenSource, GraphError};
use crate::sensitive::SecretString;

/// Ten minutes, the shortest lifetime the TokenRequest API grants: the token is exchanged at
/// once and never stored.
const TOKEN_LIFETIME_SECONDS: i64 = 600;

pub struct ServiceAccountToken {
    api: Api<ServiceAccount>,
    namespace: String,
    name: String,
    audience: &'static str,
}

impl ServiceAccountToken {
    pub fn new(client: kube::Client, namespace: &str, name: &str, audience: &'static str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            audience,
        }
    }
}

impl std::fmt::Debug for ServiceAccountToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.identity())
    }
}

impl FederatedTokenSource for ServiceAccountToken {
    fn identity(&self) -> String {
        format!(
            "serviceaccount:{}/{}@{}",
            self.namespace, self.name, self.audience
        )
    }

    fn token(&self) -> BoxFuture<'_, Result<SecretString, GraphError>> {
        Box::pin(async move {
            let request = TokenRequest {
                spec: Some(TokenRequestSpec {
                    audiences: Some(vec![self.audience.to_owned()]),
                    expiration_seconds: Some(TOKEN_LIFETIME_SECONDS),
                    ..TokenRequestSpec::default()
                }),
                ..TokenRequest::default()
            };
            let issued = self
                .api
                .create_token_request(&self.name, &PostParams::default(), &request)
                .await
                .map_err(|error| self.unavailable(&error))?;
            let token = issued
                .status
                .and_then(|status| status.token)
                .unwrap_or_default();
            if token.is_empty() {
                return Err(GraphError::AssertionUnavailable {
                    reason: Reason::ServiceAccountTokenFailed.as_str(),
                    message: format!(
                        "the TokenRequest for ServiceAccount {}/{} returned no token",
                        self.namespace, self.name
                    ),
                });
            }
            Ok(SecretString::from(token))
        })
    }
}

impl ServiceAccountToken {
    /// What went wrong, said so that an administrator knows what to create.
    fn unavailable(&self, error: &kube::Error) -> GraphError {
        let (namespace, name) = (&self.namespace, &self.name);
        let (reason, message) = match error {
            kube::Error::Api(status) if status.code == 404 => (
                Reason::ServiceAccountNotFound,
                format!("ServiceAccount {namespace}/{name} does not exist"),
            ),
            kube::Error::Api(status) if status.code == 403 => (
                Reason::ServiceAccountTokenForbidden,
                format!(
                    "the operator may not request tokens for ServiceAccount {namespace}/{name}: \
                     create a Role in {namespace} granting create on serviceaccounts/token with \
                     resourceNames [{name}], bound to the operator's ServiceAccount (the chart's \
                     workloadIdentity.serviceAccounts value does it)"
                ),
            ),
            other => (
                Reason::ServiceAccountTokenFailed,
                format!("the TokenRequest for ServiceAccount {namespace}/{name} failed: {other}"),
            ),
        };
        GraphError::AssertionUnavailable {
            reason: reason.as_str(),
            message,
        }
    }
}
