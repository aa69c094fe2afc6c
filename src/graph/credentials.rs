//! Who the operator is when it calls Graph: one app registration in one tenant, and its credential.

use crate::sensitive::SecretString;

use super::cloud::Endpoints;

/// How the app proves its identity to the token endpoint.
///
/// Only client secrets exist today; workload identity federation would add a variant carrying a
/// signed assertion (a projected service-account token) sent as `client_assertion`.
#[derive(Clone, Debug)]
pub enum ClientCredential {
    Secret(SecretString),
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
