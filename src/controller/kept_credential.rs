//! What the operator keeps of a pool's app credential so that revocations work whatever happens
//! to the pool later, and how a kept credential becomes one the Graph client signs in with. Below
//! both the reading of pool credentials (`app_credential`) and the copies revocations use
//! (`credential_copies`), which share these types.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::Client;

use super::Error;
use super::reasons::Reason;
use super::service_account_token::ServiceAccountToken;
use crate::api;
use crate::graph::{
    AppCredentials, AssertionAlgorithm, CertificateCredential, ClientCredential, FederatedTokenFile,
};
use crate::sensitive::{ExposeSecret, SecretString};

/// Label of the operator's copies of app credentials: no pool may name one as its own.
pub const CREDENTIAL_COPY_LABEL: &str = "kms.hanzo.ai/credential-copy";

/// The variable the Azure workload identity webhook sets to the operator's own token file.
pub const FEDERATED_TOKEN_FILE_VARIABLE: &str = "AZURE_FEDERATED_TOKEN_FILE";

/// A pool's credential as read now.
pub struct PoolCredential {
    pub app: AppCredentials,
    /// The resourceVersion of the Secret it was read from, if any: a change invalidates the
    /// pool's resolution.
    pub version: Option<String>,
    /// What the operator keeps so that revocations work whatever happens to the pool later.
    pub kept: KeptCredential,
    /// When the credential stops working: a certificate's `notAfter`, or for a client secret the
    /// optional expiry annotation on its Secret (the value does not carry it).
    pub expires_at: Option<Timestamp>,
}

/// What revocation needs of a credential, beyond the app identity.
#[derive(Clone, Debug)]
pub enum KeptCredential {
    ClientSecret(SecretString),
    Certificate {
        certificate_pem: String,
        key_pem: SecretString,
        algorithm: AssertionAlgorithm,
    },
    /// Nothing to copy: a ServiceAccount of the operator's namespace, by name.
    ServiceAccount(String),
    /// Nothing to copy: the operator's own federated token.
    OwnFederatedToken,
}

/// The credential the Graph client uses for what was kept.
pub fn client_credential(
    client: &Client,
    operator_namespace: &str,
    cloud: api::Cloud,
    kept: &KeptCredential,
    now: Timestamp,
) -> Result<ClientCredential, Error> {
    Ok(match kept {
        KeptCredential::ClientSecret(value) => ClientCredential::Secret(value.clone()),
        KeptCredential::Certificate {
            certificate_pem,
            key_pem,
            algorithm,
        } => {
            let certificate = CertificateCredential::from_pem(
                certificate_pem.as_bytes(),
                key_pem.expose_secret().as_bytes(),
                *algorithm,
                now,
            )
            .map_err(|problem| Error::Credential {
                reason: Reason::of_certificate(&problem),
                message: problem.to_string(),
            })?;
            ClientCredential::Certificate(Arc::new(certificate))
        }
        KeptCredential::ServiceAccount(name) => {
            ClientCredential::Federated(Arc::new(ServiceAccountToken::new(
                client.clone(),
                operator_namespace,
                name,
                cloud.token_exchange_audience(),
            )))
        }
        KeptCredential::OwnFederatedToken => {
            let path = std::env::var_os(FEDERATED_TOKEN_FILE_VARIABLE).ok_or_else(|| {
                Error::Credential {
                    reason: Reason::FederatedTokenUnavailable,
                    message: format!(
                        "the operator has no federated token of its own: {FEDERATED_TOKEN_FILE_VARIABLE} \
                         is not set (label the operator's pod azure.workload.identity/use=true and \
                         annotate its ServiceAccount, or name a serviceAccountName)"
                    ),
                }
            })?;
            ClientCredential::Federated(Arc::new(FederatedTokenFile::new(path)))
        }
    })
}
