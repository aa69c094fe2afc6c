//! The app credential revocation needs, kept where lease users and pool editors cannot take it
//! away: copies in the operator's namespace, one per credential value that obtained a token for
//! its (cloud, tenant, app), each referenced by the claims issued with it. A copy is never
//! overwritten, so no pool of another namespace sharing the app can swap a working credential
//! for one that stops working; a revocation uses the recorded copy, or, when that one no longer
//! gets a token (a rotated secret), any other copy of the same app. Deleting the pool's Secret or
//! re-pointing the pool at another tenant leaves them as they were.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};

use super::Error;
use super::claim_record::{AppIdentity, ClaimRecord, CredentialCopyRef};
use super::claims::is_conflict;
use super::kept_credential::{
    CREDENTIAL_COPY_LABEL, KeptCredential, PoolCredential, client_credential,
};
use crate::api::Cloud;
use crate::graph::{
    AppCredentials, AssertionAlgorithm, ClientCredential, EndpointOverrides, Endpoints,
    GraphClient, GraphError,
};
use crate::secret::MANAGED_BY;
use crate::sensitive::{ExposeSecret, SecretString};

const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
/// Label of a copy with a digest of its (cloud, tenant, app): the copies of one app identity.
const APP_LABEL: &str = "kms.hanzo.ai/app";
const TENANT_ANNOTATION: &str = "kms.hanzo.ai/tenant-id";
const APPLICATION_ANNOTATION: &str = "kms.hanzo.ai/application-id";
const CLOUD_ANNOTATION: &str = "kms.hanzo.ai/cloud";
const CLIENT_SECRET_KEY: &str = "clientSecret";
const TLS_CERTIFICATE_KEY: &str = "tls.crt";
const TLS_KEY_KEY: &str = "tls.key";
const ALGORITHM_KEY: &str = "algorithm";

pub struct CredentialCopies {
    api: Api<Secret>,
    /// For workload identity: token requests for ServiceAccounts of the operator's namespace.
    client: Client,
    operator_namespace: String,
    /// The copies known to exist, with when a pool last used each: an issue costs no API call
    /// for them, and the sweep leaves the ones in use alone.
    known: Mutex<HashMap<String, Instant>>,
    /// Held shared by `keep`, exclusively by the sweep from its last look at a copy to its
    /// delete: a copy a pool takes up in between is never deleted under a new claim.
    sweep_guard: tokio::sync::RwLock<()>,
    /// A process knows which copies pools use only after every pool re-validated once.
    started: Instant,
}

impl CredentialCopies {
    pub fn new(client: Client, operator_namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client.clone(), operator_namespace),
            client,
            operator_namespace: operator_namespace.to_owned(),
            known: Mutex::default(),
            sweep_guard: tokio::sync::RwLock::new(()),
            started: Instant::now(),
        }
    }

    /// Makes sure the operator keeps what revocations of credentials issued with `pool` need,
    /// and returns the identity to record: a copy of a client secret or certificate; nothing for
    /// workload identity, whose ServiceAccount or token file is the operator's own. Call it only
    /// once the credential has obtained a token: no copy is made of an untested value.
    pub async fn keep(&self, cloud: Cloud, pool: &PoolCredential) -> Result<AppIdentity, Error> {
        let _not_swept = self.sweep_guard.read().await;
        let app = &pool.app;
        let mut identity = AppIdentity {
            cloud,
            authority: app.endpoints().authority_host().to_string(),
            tenant_id: app.tenant().to_owned(),
            application_id: app.client_id().to_owned(),
            credential: CredentialCopyRef::default(),
        };
        let copied = match &pool.kept {
            KeptCredential::ServiceAccount(name) => {
                identity.credential.service_account_name = Some(name.clone());
                return Ok(identity);
            }
            KeptCredential::OwnFederatedToken => {
                identity.credential.own_federated_token = true;
                return Ok(identity);
            }
            KeptCredential::ClientSecret(value) => value.clone(),
            // One copy per certificate, named by its thumbprint (not secret).
            KeptCredential::Certificate { .. } => match app.credential() {
                ClientCredential::Certificate(certificate) => {
                    SecretString::from(certificate.thumbprint_sha256())
                }
                _ => return Err(Error::MalformedClaim("a certificate credential".into())),
            },
        };
        let name = copy_name(cloud, app.tenant(), app.client_id(), &copied);
        identity.credential.secret_name = Some(name.clone());
        if let Some(used) = self.known.lock().unwrap().get_mut(&name) {
            *used = Instant::now();
            return Ok(identity);
        }
        if self.api.get_opt(&name).await?.is_none() {
            match self
                .api
                .create(
                    &PostParams::default(),
                    &copy_object(&name, cloud, app, &pool.kept),
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(copy = %name, tenant = %app.tenant(), application = %app.client_id(), "kept a copy of an app credential for revocations");
                }
                // Made a moment ago by another reconcile, with the same value (the name says so).
                Err(error) if is_conflict(&error) => {}
                Err(error) => return Err(error.into()),
            }
        }
        self.known.lock().unwrap().insert(name, Instant::now());
        Ok(identity)
    }

    /// Deletes the copies nobody needs any more: no claim refers to them (`referenced`), and no
    /// pool has used them for [`UNUSED_FOR`] (pools re-validate hourly, so a copy of a pool's
    /// current credential is always fresher). Returns how many went.
    pub async fn sweep(&self, referenced: &HashSet<String>) -> kube::Result<usize> {
        if self.started.elapsed() < UNUSED_FOR {
            return Ok(0);
        }
        let selector = format!("{CREDENTIAL_COPY_LABEL}=true");
        let copies = self
            .api
            .list(&ListParams::default().labels(&selector))
            .await?;
        let now = Timestamp::now();
        let mut deleted = 0;
        for copy in copies {
            let Some(name) = copy.metadata.name.clone() else {
                continue;
            };
            let _no_keep = self.sweep_guard.write().await;
            let last_used = self.known.lock().unwrap().get(&name).map(|at| at.elapsed());
            let created = copy.metadata.creation_timestamp.as_ref().map(|t| t.0);
            if !is_unused(&name, referenced, last_used, created, now) {
                continue;
            }
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: copy.metadata.uid.clone(),
                    resource_version: copy.metadata.resource_version.clone(),
                }),
                ..DeleteParams::default()
            };
            match self.api.delete(&name, &params).await {
                Ok(_) => {
                    self.known.lock().unwrap().remove(&name);
                    tracing::info!(copy = %name, "deleted an app credential copy nothing refers to");
                    deleted += 1;
                }
                Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
                Err(error) => return Err(error),
            }
        }
        Ok(deleted)
    }

    /// App credentials for the identity recorded at issue that get a token: workload identity
    /// as recorded; else the recorded copy first, then the other copies of the same app, newest
    /// first (a rotated client secret, a renewed certificate).
    pub async fn recorded(
        &self,
        graph: &GraphClient,
        endpoints: &EndpointOverrides,
        record: &ClaimRecord,
    ) -> Result<AppCredentials, Error> {
        let app = &record.app;
        let credentials = |kept: &KeptCredential| -> Result<AppCredentials, Error> {
            Ok(AppCredentials::new(
                Endpoints::resolve(app.cloud, endpoints),
                app.tenant_id.clone(),
                app.application_id.clone(),
                client_credential(
                    &self.client,
                    &self.operator_namespace,
                    app.cloud,
                    kept,
                    Timestamp::now(),
                )?,
            ))
        };
        let recorded = &app.credential;
        if let Some(name) = &recorded.service_account_name {
            return credentials(&KeptCredential::ServiceAccount(name.clone()));
        }
        if recorded.own_federated_token {
            return credentials(&KeptCredential::OwnFederatedToken);
        }
        let recorded = recorded.secret_name.clone().unwrap_or_default();
        let mut last_error = None;
        // The recorded copy first; the other copies of the app only when it no longer works.
        let mut copies: Vec<Secret> = self.api.get_opt(&recorded).await?.into_iter().collect();
        let mut listed = false;
        loop {
            let Some(copy) = copies.pop() else {
                if listed {
                    break;
                }
                listed = true;
                let selector = format!(
                    "{APP_LABEL}={}",
                    identity_digest(app.cloud, &app.tenant_id, &app.application_id)
                );
                copies = self
                    .api
                    .list(&ListParams::default().labels(&selector))
                    .await?
                    .items;
                copies.retain(|c| c.metadata.name.as_deref() != Some(recorded.as_str()));
                // Oldest first, so that `pop` tries the newest first.
                copies.sort_by_key(|c| c.metadata.creation_timestamp.clone());
                continue;
            };
            let Some(kept) = kept_in(&copy) else {
                continue;
            };
            let candidate = match credentials(&kept) {
                Ok(candidate) => candidate,
                // An expired copy of a certificate: try the next copy.
                Err(error) => {
                    last_error = Some(error.to_string());
                    continue;
                }
            };
            match graph.check_credentials(&candidate).await {
                Ok(()) => return Ok(candidate),
                // This copy no longer gets a token (a rotated secret or certificate): try the next.
                Err(
                    error @ (GraphError::InvalidClientSecret { .. }
                    | GraphError::InvalidClientAssertion { .. }
                    | GraphError::Certificate(_)),
                ) => last_error = Some(error.to_string()),
                Err(error) => return Err(error.into()),
            }
        }
        Err(Error::CredentialLost(format!(
            "no copy of the credential of app {} in tenant {} gets a token{}",
            app.application_id,
            app.tenant_id,
            last_error.map_or_else(String::new, |error| format!(" ({error})"))
        )))
    }
}

/// How long a copy no claim refers to is kept after a pool last used it, and after it was made.
pub const UNUSED_FOR: Duration = Duration::from_secs(2 * 3600);

/// True when the copy `name` may go: no claim refers to it, no pool used it for [`UNUSED_FOR`]
/// (as far as this process knows), and it is older than that.
fn is_unused(
    name: &str,
    referenced: &HashSet<String>,
    last_used: Option<Duration>,
    created: Option<Timestamp>,
    now: Timestamp,
) -> bool {
    let old_enough = created.is_some_and(|created| {
        now.duration_since(created) >= SignedDuration::try_from(UNUSED_FOR).unwrap_or_default()
    });
    !referenced.contains(name) && last_used.is_none_or(|ago| ago >= UNUSED_FOR) && old_enough
}

/// One copy per credential value of a (cloud, tenant, app), named by digests of both (names
/// must be DNS labels). 40 bits of a digest of a high-entropy secret reveal nothing usable.
pub fn copy_name(cloud: Cloud, tenant: &str, application: &str, value: &SecretString) -> String {
    let value_digest = hex(&digest(value.expose_secret().as_bytes())[..5]);
    format!(
        "entra-app-{}-{value_digest}",
        identity_digest(cloud, tenant, application)
    )
}

fn identity_digest(cloud: Cloud, tenant: &str, application: &str) -> String {
    let key = format!(
        "{cloud:?}/{}/{}",
        tenant.to_ascii_lowercase(),
        application.to_ascii_lowercase()
    );
    hex(&digest(key.as_bytes())[..5])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn copy_object(name: &str, cloud: Cloud, app: &AppCredentials, kept: &KeptCredential) -> Secret {
    let (type_, data) = match kept {
        KeptCredential::Certificate {
            certificate_pem,
            key_pem,
            algorithm,
        } => (
            "kubernetes.io/tls",
            BTreeMap::from([
                (TLS_CERTIFICATE_KEY.to_owned(), bytes(certificate_pem)),
                (TLS_KEY_KEY.to_owned(), bytes(key_pem.expose_secret())),
                (
                    ALGORITHM_KEY.to_owned(),
                    bytes(match algorithm {
                        AssertionAlgorithm::Ps256 => "PS256",
                        AssertionAlgorithm::Rs256 => "RS256",
                    }),
                ),
            ]),
        ),
        KeptCredential::ClientSecret(value) => (
            "Opaque",
            BTreeMap::from([(CLIENT_SECRET_KEY.to_owned(), bytes(value.expose_secret()))]),
        ),
        // Workload identity keeps no copy.
        KeptCredential::ServiceAccount(_) | KeptCredential::OwnFederatedToken => {
            ("Opaque", BTreeMap::new())
        }
    };
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            // Not the managed-by label of lease Secrets: a copy is no lease's, and the operator's
            // watch of lease Secrets must not cache admin credentials.
            labels: Some(BTreeMap::from([
                (PART_OF_LABEL.to_owned(), MANAGED_BY.to_owned()),
                (CREDENTIAL_COPY_LABEL.to_owned(), "true".to_owned()),
                (
                    APP_LABEL.to_owned(),
                    identity_digest(cloud, app.tenant(), app.client_id()),
                ),
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
        type_: Some(type_.to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

fn bytes(text: &str) -> ByteString {
    ByteString(text.as_bytes().to_vec())
}

/// The credential a copy holds.
fn kept_in(copy: &Secret) -> Option<KeptCredential> {
    let data = copy.data.as_ref()?;
    let text = |key: &str| {
        let value = String::from_utf8(data.get(key)?.0.clone()).ok()?;
        (!value.is_empty()).then_some(value)
    };
    if let Some(value) = text(CLIENT_SECRET_KEY) {
        return Some(KeptCredential::ClientSecret(SecretString::from(value)));
    }
    Some(KeptCredential::Certificate {
        certificate_pem: text(TLS_CERTIFICATE_KEY)?,
        key_pem: SecretString::from(text(TLS_KEY_KEY)?),
        algorithm: match text(ALGORITHM_KEY).as_deref() {
            Some("RS256") => AssertionAlgorithm::Rs256,
            _ => AssertionAlgorithm::Ps256,
        },
    })
}

fn digest(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_copy_nobody_refers_to_or_used_lately_is_swept() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let hours_ago = |h: i64| Some(now - SignedDuration::from_hours(h));
        let referenced = HashSet::from(["in-a-claim".to_owned()]);
        let long = Some(UNUSED_FOR);
        assert!(is_unused("old", &referenced, None, hours_ago(3), now));
        assert!(is_unused("old", &referenced, long, hours_ago(3), now));
        assert!(!is_unused(
            "in-a-claim",
            &referenced,
            None,
            hours_ago(3),
            now
        ));
        assert!(
            !is_unused(
                "old",
                &referenced,
                Some(Duration::from_secs(60)),
                hours_ago(3),
                now
            ),
            "a pool used it a minute ago"
        );
        assert!(
            !is_unused("new", &referenced, None, hours_ago(1), now),
            "made an hour ago"
        );
        assert!(!is_unused("unknown-age", &referenced, None, None, now));
    }

    #[test]
    fn copies_are_one_per_credential_value_of_a_cloud_tenant_and_app() {
        let name = |cloud, tenant, app, value: &str| {
            copy_name(cloud, tenant, app, &SecretString::from(value))
        };
        let a = name(
            Cloud::AzurePublic,
            "Contoso.onmicrosoft.com",
            "APP",
            "s3cret",
        );
        let same = name(
            Cloud::AzurePublic,
            "contoso.onmicrosoft.com",
            "app",
            "s3cret",
        );
        assert_eq!(a, same);
        for other in [
            name(
                Cloud::AzureChina,
                "contoso.onmicrosoft.com",
                "app",
                "s3cret",
            ),
            name(
                Cloud::AzurePublic,
                "fabrikam.onmicrosoft.com",
                "app",
                "s3cret",
            ),
            name(
                Cloud::AzurePublic,
                "contoso.onmicrosoft.com",
                "other",
                "s3cret",
            ),
        ] {
            assert_ne!(a[..20], other[..20], "another app identity");
        }
        let rotated = name(
            Cloud::AzurePublic,
            "contoso.onmicrosoft.com",
            "app",
            "rotated",
        );
        assert_ne!(
            a, rotated,
            "another value is another copy, never an overwrite"
        );
        assert_eq!(a[..20], rotated[..20], "of the same app identity");
        assert!(a.starts_with("entra-app-") && a.len() == "entra-app-".len() + 21);
    }
}
