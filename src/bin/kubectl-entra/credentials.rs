//! The credential a lease holds, read from its Secret.

use entra_operator::api::{EntraLease, LeasePhase};
use entra_operator::sensitive::SecretString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, ResourceExt};

use crate::connect::Target;
use crate::error::{PluginError, Request, in_namespace};
use crate::wait::{describe, phase};

/// What `lease` and `creds` print.
pub struct Held {
    pub namespace: String,
    pub lease: String,
    pub pool: String,
    pub secret: String,
    pub username: String,
    /// The password, or a Temporary Access Pass when `access_pass`.
    pub password: SecretString,
    pub access_pass: bool,
    pub expires_at: Option<Timestamp>,
    pub max_expires_at: Option<Timestamp>,
    pub next_rotation_at: Option<Timestamp>,
}

/// Lease `name`, which must be Active.
pub async fn active_lease(target: &Target, name: &str) -> Result<EntraLease, PluginError> {
    let lease = get_lease(target, name).await?;
    match phase(&lease) {
        Some(LeasePhase::Active) => Ok(lease),
        _ => Err(PluginError::LeaseNotUsable(format!(
            "lease {name} holds no credential: it is {}",
            describe(&lease)
        ))),
    }
}

pub async fn get_lease(target: &Target, name: &str) -> Result<EntraLease, PluginError> {
    let scope = in_namespace(&target.namespace);
    let api: Api<EntraLease> = Api::namespaced(target.client.clone(), &target.namespace);
    let request = Request {
        verb: "get",
        resource: "entraleases",
        scope: &scope,
    };
    api.get_opt(name)
        .await
        .map_err(|error| request.error(error))?
        .ok_or_else(|| {
            PluginError::NotFound(format!(
                "no lease {name} in namespace {}; `kubectl entra leases` lists them",
                target.namespace
            ))
        })
}

/// The credential in an Active lease's Secret.
pub async fn read(target: &Target, lease: &EntraLease) -> Result<Held, PluginError> {
    let name = lease.name_any();
    let namespace = lease
        .namespace()
        .unwrap_or_else(|| target.namespace.clone());
    let status = lease.status.clone().unwrap_or_default();
    let secret_name = status.secret_name.clone().ok_or_else(|| {
        PluginError::LeaseNotUsable(format!("lease {name} names no Secret in its status yet"))
    })?;
    let scope = in_namespace(&namespace);
    let request = Request {
        verb: "get",
        resource: "secrets",
        scope: &scope,
    };
    let secrets: Api<Secret> = Api::namespaced(target.client.clone(), &namespace);
    let secret = secrets
        .get_opt(&secret_name)
        .await
        .map_err(|error| request.error(error))?
        .ok_or_else(|| {
            PluginError::LeaseNotUsable(format!(
                "Secret {secret_name} of lease {name} is gone; the operator writes it again shortly"
            ))
        })?;
    // The status names the Secret, and anyone allowed to write a lease's status could point it
    // at another Secret of the namespace: only the Secret the lease controls is printed.
    if !entra_operator::secret::is_owned_by(&secret, lease) {
        return Err(PluginError::LeaseNotUsable(format!(
            "Secret {secret_name}, named in the status of lease {name}, is not controlled by that \
             lease; not printing it (the status may have been edited)"
        )));
    }
    let text = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .and_then(|value| String::from_utf8(value.0.clone()).ok())
            .ok_or_else(|| {
                PluginError::LeaseNotUsable(format!("Secret {secret_name} has no key {key}"))
            })
    };
    // A pass lease's Secret holds its pass where a password lease's holds the password.
    let (password, access_pass) = match text("password") {
        Ok(password) => (password, false),
        Err(missing) => (text("temporaryAccessPass").map_err(|_| missing)?, true),
    };
    Ok(Held {
        namespace,
        lease: name,
        pool: lease.spec.dynamic_secret_ref.name.clone(),
        secret: secret_name.clone(),
        username: text("username")?,
        password: SecretString::from(password),
        access_pass,
        expires_at: status.expires_at.map(|t| t.0),
        max_expires_at: status.max_expires_at.map(|t| t.0),
        next_rotation_at: status.next_rotation_at.map(|t| t.0),
    })
}
