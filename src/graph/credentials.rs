//! Who the operator is when it calls Graph: one app registration in one tenant, and its credential.

use std::sync::Arc;

use crate::sensitive::SecretString;

use super::certificate::CertificateCredential;
use super::cloud::Endpoints;
use super::federated::FederatedTokenSource;

/// How the app proves its identity to the token endpoint. `Debug` never shows a secret or key.
#[derive(Clone, Debug)]
pub enum ClientCredential {
    /// A client secret's value, sent as `client_secret`.
    Secret(SecretString),
    /// A certificate registered on the app: each token request sends a fresh assertion signed
    /// with its key as `client_assertion`.
    Certificate(Arc<CertificateCredential>),
    /// Workload identity federation: a token from another issuer (a projected service-account
    /// token) sent as `client_assertion`.
    Federated(Arc<dyn FederatedTokenSource>),
}

impl ClientCredential {
    /// `secret`, `certificate` or `federated`: for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientCredential::Secret(_) => "secret",
            ClientCredential::Certificate(_) => "certificate",
            ClientCredential::Federated(_) => "federated",
        }
    }

    /// True when the token request carries a `client_assertion` rather than a secret.
    pub fn is_assertion(&self) -> bool {
        match self {
            ClientCredential::Secret(_) => false,
            ClientCredential::Certificate(_) | ClientCredential::Federated(_) => true,
        }
    }
}

/// An app registration's identity in a tenant: everything needed to get an app-only Graph token.
/// `Debug` shows the ids and endpoints, never the credential's value.
#[derive(Clone, Debug)]
pub struct AppCredentials {
    endpoints: Endpoints,
    tenant: String,
    client_id: String,
    credential: ClientCredential,
}

impl AppCredentials {
    /// `tenant` is the tenant's GUID or one of its verified domains; `client_id` the app's GUID.
    pub fn new(
        endpoints: Endpoints,
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        credential: ClientCredential,
    ) -> Self {
        Self {
            endpoints,
            tenant: tenant.into().trim().to_owned(),
            client_id: client_id.into().trim().to_owned(),
            credential,
        }
    }

    pub fn with_client_secret(
        endpoints: Endpoints,
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretString,
    ) -> Self {
        Self::new(
            endpoints,
            tenant,
            client_id,
            ClientCredential::Secret(client_secret),
        )
    }

    pub fn with_certificate(
        endpoints: Endpoints,
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        certificate: Arc<CertificateCredential>,
    ) -> Self {
        Self::new(
            endpoints,
            tenant,
            client_id,
            ClientCredential::Certificate(certificate),
        )
    }

    pub fn with_federated_token(
        endpoints: Endpoints,
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        source: Arc<dyn FederatedTokenSource>,
    ) -> Self {
        Self::new(
            endpoints,
            tenant,
            client_id,
            ClientCredential::Federated(source),
        )
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn credential(&self) -> &ClientCredential {
        &self.credential
    }
}
