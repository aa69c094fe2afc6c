//! The app credential of a pool, read when it is needed (a rotated credential is used at once and
//! is a new token cache key): in the pool's namespace, or for a cluster pool only in the
//! operator's namespace.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;

use super::Error;
use super::context::Context;
use super::pool::Pool;
use crate::api::ClientSecretRef;
use crate::graph::{AppCredentials, ClientCredential, Endpoints};
use crate::sensitive::SecretString;

/// A pool's app credentials, and the resourceVersion of the object they were read from (a
/// change of it invalidates the pool's resolution).
pub async fn app_credentials(
    ctx: &Context,
    pool: &Pool,
) -> Result<(AppCredentials, Option<String>), Error> {
    let namespace = pool.credential_namespace(ctx.claims.namespace());
    let spec = pool.spec();
    let (credential, version) = match &spec.client_secret_ref {
        Some(reference) => client_secret(ctx, &namespace, reference).await?,
        None => {
            return Err(Error::ClientSecret(format!(
                "{pool} names no credential the operator can use"
            )));
        }
    };
    let endpoints = Endpoints::resolve(spec.cloud, &ctx.endpoints);
    let app = AppCredentials::new(
        endpoints,
        spec.tenant_id.clone(),
        spec.application_id.clone(),
        credential,
    );
    Ok((app, version))
}

async fn client_secret(
    ctx: &Context,
    namespace: &str,
    reference: &ClientSecretRef,
) -> Result<(ClientCredential, Option<String>), Error> {
    let secret = read_secret(ctx, namespace, &reference.name).await?;
    let value = secret
        .data
        .as_ref()
        .and_then(|data| data.get(&reference.key))
        .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok())
        .map(|text| SecretString::new(text.trim().to_owned()))
        .filter(|value| !value.is_empty())
        .ok_or_else(|| {
            Error::ClientSecret(format!(
                "Secret {} in {namespace} has no non-empty key {}",
                reference.name, reference.key
            ))
        })?;
    Ok((ClientCredential::Secret(value), secret.resource_version()))
}

async fn read_secret(ctx: &Context, namespace: &str, name: &str) -> Result<Secret, Error> {
    Api::<Secret>::namespaced(ctx.client.clone(), namespace)
        .get_opt(name)
        .await?
        .ok_or_else(|| Error::ClientSecret(format!("Secret {name} not found in {namespace}")))
}
