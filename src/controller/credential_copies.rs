//! The app credential revocation needs, kept where lease users and pool editors cannot take it
//! away: a copy in the operator's namespace per (cloud, tenant, app), referenced by every claim
//! issued with it. A copy is replaced only by a value that has just obtained a token for that
//! same tenant and app, so rotating the client secret keeps revocation working, while deleting the
//! pool's Secret or re-pointing the pool at another tenant leaves it as it was.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};

use super::Error;
use super::claim_record::{AppIdentity, ClaimRecord, CredentialCopyRef};
use super::claims::is_conflict;
use crate::api::Cloud;
use crate::graph::{AppCredentials, ClientCredential, EndpointOverrides, Endpoints};
use crate::secret::MANAGED_BY;
use crate::sensitive::SecretString;

const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
/// Label of the operator's copies of app credentials.
pub const CREDENTIAL_COPY_LABEL: &str = "kms.hanzo.ai/credential-copy";
const TENANT_ANNOTATION: &str = "kms.hanzo.ai/tenant-id";
const APPLICATION_ANNOTATION: &str = "kms.hanzo.ai/application-id";
const CLOUD_ANNOTATION: &str = "kms.hanzo.ai/cloud";
const CLIENT_SECRET_KEY: &str = "clientSecret";

pub struct CredentialCopies {
    api: Api<Secret>,
    /// A digest of the value each copy is known to hold, so that an issue costs no API call
    /// when the copy is current. Memory only: a digest of a secret is not written anywhere.
    known: Mutex<HashMap<String, [u8; 32]>>,
}

impl CredentialCopies {
    pub fn new(client: Client, operator_namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, operator_namespace),
            known: Mutex::default(),
        }
    }

    /// Makes the copy for `app` hold `app`'s credential and returns the identity to record.
    /// Call it only once `app` has obtained a token: a copy never takes an untested value.
    pub async fn keep(&self, cloud: Cloud, app: &AppCredentials) -> Result<AppIdentity, Error> {
        let name = copy_name(cloud, app.tenant(), app.client_id());
        let identity = AppIdentity {
            cloud,
            authority: app.endpoints().authority_host().to_string(),
            tenant_id: app.tenant().to_owned(),
            application_id: app.client_id().to_owned(),
            credential: CredentialCopyRef {
                secret_name: name.clone(),
            },
        };
        let ClientCredential::Secret(value) = app.credential();
        let wanted_digest = digest(value);
        if self.known.lock().unwrap().get(&name) == Some(&wanted_digest) {
            return Ok(identity);
        }
        let wanted = copy_object(&name, cloud, app, value);
        match self.api.get_opt(&name).await? {
            Some(existing)
                if client_secret(&existing).is_some_and(|v| digest(&v) == wanted_digest) => {}
            Some(existing) => {
                let mut replacement = wanted;
                replacement.metadata.resource_version = existing.resource_version();
                self.api
                    .replace(&name, &PostParams::default(), &replacement)
                    .await?;
                tracing::info!(copy = %name, tenant = %app.tenant(), application = %app.client_id(), "updated the operator's copy of an app credential");
            }
            None => match self.api.create(&PostParams::default(), &wanted).await {
                Ok(_) => {}
                // Another reconcile wrote it a moment ago; the next call compares again.
                Err(error) if is_conflict(&error) => return Ok(identity),
                Err(error) => return Err(error.into()),
            },
        }
        self.known.lock().unwrap().insert(name, wanted_digest);
        Ok(identity)
    }

    /// The app credentials recorded at issue, from the operator's copy.
    pub async fn recorded(
        &self,
        record: &ClaimRecord,
        overrides: &EndpointOverrides,
    ) -> Result<AppCredentials, Error> {
        let app = &record.app;
        let name = &app.credential.secret_name;
        let value = self
            .api
            .get_opt(name)
            .await?
            .as_ref()
            .and_then(client_secret)
            .ok_or_else(|| {
                Error::CredentialLost(format!(
                    "the operator's copy {name} of the credential of app {} in tenant {} is gone",
                    app.application_id, app.tenant_id
                ))
            })?;
        Ok(AppCredentials::with_client_secret(
            Endpoints::resolve(app.cloud, overrides),
            app.tenant_id.clone(),
            app.application_id.clone(),
            value,
        ))
    }
}

/// One copy per cloud, tenant and app, named by a digest of the three (names must be DNS labels).
pub fn copy_name(cloud: Cloud, tenant: &str, application: &str) -> String {
    let key = format!(
        "{cloud:?}/{}/{}",
        tenant.to_ascii_lowercase(),
        application.to_ascii_lowercase()
    );
    let hash = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let hex: String = hash.as_ref()[..10]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("entra-app-{hex}")
}

fn copy_object(name: &str, cloud: Cloud, app: &AppCredentials, value: &SecretString) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            // Not the managed-by label of lease Secrets: a copy is no lease's, and the operator's
            // watch of lease Secrets must not cache admin credentials.
            labels: Some(BTreeMap::from([
                (PART_OF_LABEL.to_owned(), MANAGED_BY.to_owned()),
                (CREDENTIAL_COPY_LABEL.to_owned(), "true".to_owned()),
            ])),
            annotations: Some(BTreeMap::from([
                (CLOUD_ANNOTATION.to_owned(), format!("{cloud:?}")),
                (TENANT_ANNOTATION.to_owned(), app.tenant().to_owned()),
                (
                    APPLICATION_ANNOTATION.to_owned(),
                    app.client_id().to_owned(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            CLIENT_SECRET_KEY.to_owned(),
            ByteString(value.expose().as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

fn client_secret(secret: &Secret) -> Option<SecretString> {
    let bytes = &secret.data.as_ref()?.get(CLIENT_SECRET_KEY)?.0;
    let text = String::from_utf8(bytes.clone()).ok()?;
    (!text.is_empty()).then(|| SecretString::new(text))
}

fn digest(value: &SecretString) -> [u8; 32] {
    let hash = ring::digest::digest(&ring::digest::SHA256, value.expose().as_bytes());
    let mut out = [0; 32];
    out.copy_from_slice(hash.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_one_per_cloud_tenant_and_app() {
        let a = copy_name(Cloud::AzurePublic, "Contoso.onmicrosoft.com", "APP");
        assert_eq!(
            a,
            copy_name(Cloud::AzurePublic, "contoso.onmicrosoft.com", "app")
        );
        assert_ne!(
            a,
            copy_name(Cloud::AzureChina, "contoso.onmicrosoft.com", "app")
        );
        assert_ne!(
            a,
            copy_name(Cloud::AzurePublic, "fabrikam.onmicrosoft.com", "app")
        );
        assert_ne!(
            a,
            copy_name(Cloud::AzurePublic, "contoso.onmicrosoft.com", "other")
        );
        assert!(a.starts_with("entra-app-") && a.len() == "entra-app-".len() + 20);
    }
}
