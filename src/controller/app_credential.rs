//! The app credential of a pool, read when it is needed (a rotated credential is used at once and
//! is a new token cache key): in the pool's namespace, or for a cluster pool only in the
//! operator's namespace. Three kinds: a client secret, a certificate that signs client
//! assertions, and workload identity federation (cluster pools only).

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;

use super::Error;
use super::context::Context;
use super::kept_credential::{
    CREDENTIAL_COPY_LABEL, KeptCredential, PoolCredential, client_credential,
};
use super::pool::Pool;
use super::reasons::Reason;
use crate::api::{self, CertificateRef, ClientSecretRef, WorkloadIdentity};
use crate::graph::{AppCredentials, AssertionAlgorithm, ClientCredential, Endpoints};
use crate::sensitive::{ExposeSecret, SecretString};

const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// On a client secret's Secret: when Entra stops accepting the secret (RFC 3339), as the app
/// registration shows it, so that an alert can warn before it does.
pub const CLIENT_SECRET_EXPIRES_AT_ANNOTATION: &str = "kms.hanzo.ai/client-secret-expires-at";

pub async fn app_credentials(ctx: &Context, pool: &Pool) -> Result<PoolCredential, Error> {
    let operator_namespace = ctx.claims.namespace();
    let namespace = pool.credential_namespace(operator_namespace);
    let spec = pool.spec();
    let (kept, version, annotated_expiry) = match (
        &spec.client_secret_ref,
        &spec.certificate_ref,
        &spec.workload_identity,
    ) {
        (Some(reference), None, None) => client_secret(ctx, &namespace, reference).await?,
        (None, Some(reference), None) => certificate(ctx, &namespace, reference).await?,
        (None, None, Some(identity)) if matches!(pool, Pool::Cluster(_)) => {
            (workload_identity(identity)?, None, None)
        }
        (None, None, Some(_)) => {
            return Err(Error::Credential {
                reason: Reason::WorkloadIdentityNotAllowed,
                message: api::WORKLOAD_IDENTITY_IS_CLUSTER_ONLY.to_owned(),
            });
        }
        _ => {
            return Err(Error::Credential {
                reason: Reason::CredentialAmbiguous,
                message: format!(
                    "{pool} must name exactly one credential: clientSecretRef, certificateRef or \
                     (cluster pools only) workloadIdentity"
                ),
            });
        }
    };
    let credential = client_credential(
        &ctx.client,
        operator_namespace,
        spec.cloud,
        &kept,
        Timestamp::now(),
    )?;
    let expires_at = match &credential {
        ClientCredential::Certificate(certificate) => Some(certificate.not_after()),
        _ => annotated_expiry,
    };
    let app = AppCredentials::new(
        Endpoints::resolve(spec.cloud, &ctx.endpoints),
        spec.tenant_id.clone(),
        spec.application_id.clone(),
        credential,
    );
    Ok(PoolCredential {
        app,
        version,
        kept,
        expires_at,
    })
}

async fn client_secret(
    ctx: &Context,
    namespace: &str,
    reference: &ClientSecretRef,
) -> Result<(KeptCredential, Option<String>, Option<Timestamp>), Error> {
    let secret = read_secret(ctx, namespace, &reference.name).await?;
    let expires_at = annotated_expiry(&secret, namespace)?;
    let value = text(&secret, &reference.key)
        .map(|text| SecretString::from(text.trim().to_owned()))
        .filter(|value| !value.expose_secret().is_empty())
        .ok_or_else(|| {
            Error::ClientSecret(format!(
                "Secret {} in {namespace} has no non-empty key {}",
                reference.name, reference.key
            ))
        })?;
    Ok((
        KeptCredential::ClientSecret(value),
        secret.resource_version(),
        expires_at,
    ))
}

/// The client secret's expiry as its Secret is annotated, if it is.
fn annotated_expiry(secret: &Secret, namespace: &str) -> Result<Option<Timestamp>, Error> {
    let Some(value) = secret
        .annotations()
        .get(CLIENT_SECRET_EXPIRES_AT_ANNOTATION)
    else {
        return Ok(None);
    };
    parse_expiry(value).map(Some).ok_or_else(|| {
        // Whoever annotated it chose the value: quote a bounded part of it.
        let shown: String = value.chars().take(64).collect();
        Error::Credential {
            reason: Reason::ClientSecretExpiryInvalid,
            message: format!(
                "Secret {} in {namespace}: annotation {CLIENT_SECRET_EXPIRES_AT_ANNOTATION} is \
                 {shown:?}, not an RFC 3339 time such as 2027-06-30T00:00:00Z",
                secret.name_any()
            ),
        }
    })
}

/// An RFC 3339 time of the years 1 to 9999, the range a status timestamp can hold.
fn parse_expiry(value: &str) -> Option<Timestamp> {
    let at: Timestamp = value.trim().parse().ok()?;
    let year = at.to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC).year();
    (1..=9999).contains(&year).then_some(at)
}

async fn certificate(
    ctx: &Context,
    namespace: &str,
    reference: &CertificateRef,
) -> Result<(KeptCredential, Option<String>, Option<Timestamp>), Error> {
    let secret = read_secret(ctx, namespace, &reference.name).await?;
    let name = &reference.name;
    if secret.type_.as_deref() != Some(TLS_SECRET_TYPE) {
        return Err(Error::Credential {
            reason: Reason::CertificateSecretWrongType,
            message: format!(
                "Secret {name} in {namespace} is of type {:?}; certificateRef needs a \
                 {TLS_SECRET_TYPE} Secret (tls.crt and tls.key)",
                secret.type_.as_deref().unwrap_or("Opaque")
            ),
        });
    }
    let (Some(certificate_pem), Some(key_pem)) =
        (text(&secret, "tls.crt"), text(&secret, "tls.key"))
    else {
        return Err(Error::Credential {
            reason: Reason::CertificateSecretIncomplete,
            message: format!("Secret {name} in {namespace} lacks tls.crt or tls.key"),
        });
    };
    let algorithm = match reference.algorithm {
        api::AssertionAlgorithm::PS256 => AssertionAlgorithm::Ps256,
        api::AssertionAlgorithm::RS256 => AssertionAlgorithm::Rs256,
    };
    let kept = KeptCredential::Certificate {
        certificate_pem,
        key_pem: SecretString::from(key_pem),
        algorithm,
    };
    // The expiry comes from the certificate itself, once it is parsed.
    Ok((kept, secret.resource_version(), None))
}

fn workload_identity(identity: &WorkloadIdentity) -> Result<KeptCredential, Error> {
    Ok(match &identity.service_account_name {
        Some(name) => KeptCredential::ServiceAccount(name.clone()),
        None => KeptCredential::OwnFederatedToken,
    })
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

async fn read_secret(ctx: &Context, namespace: &str, name: &str) -> Result<Secret, Error> {
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), namespace)
        .get_opt(name)
        .await?
        .ok_or_else(|| Error::ClientSecret(format!("Secret {name} not found in {namespace}")))?;
    // The operator's copies keep other pools' credentials for their revocations: no pool may
    // borrow one (nor keep a copy the sweep would delete from under it).
    if secret
        .labels()
        .get(CREDENTIAL_COPY_LABEL)
        .map(String::as_str)
        == Some("true")
    {
        return Err(Error::Credential {
            reason: Reason::CredentialCopyNotAllowed,
            message: format!(
                "Secret {name} in {namespace} is one of the operator's credential copies; a pool \
                 must name a Secret of its own"
            ),
        });
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::parse_expiry;

    #[test]
    fn expiry_annotations_are_rfc_3339_times_a_status_can_hold() {
        assert_eq!(
            parse_expiry(" 2027-06-30T00:00:00Z ").map(|t| t.to_string()),
            Some("2027-06-30T00:00:00Z".to_owned())
        );
        assert!(parse_expiry("2027-06-30T02:00:00+02:00").is_some());
        for refused in ["end of June", "2027-06-30", "-000001-06-30T00:00:00Z", ""] {
            assert_eq!(parse_expiry(refused), None, "{refused:?}");
        }
    }
}
