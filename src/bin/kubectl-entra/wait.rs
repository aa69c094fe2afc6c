//! Waiting on a lease through a watch, with a deadline whose error says where the lease stands.

use std::time::Duration;

use entra_operator::api::{EntraLease, LeasePhase};
use entra_operator::duration::format_duration;
use kube::Api;
use kube::runtime::wait::await_condition;

use crate::error::PluginError;

/// Where a lease stands, for messages: `Pending (NoUserAvailable: every user is leased)`.
pub fn describe(lease: &EntraLease) -> String {
    let status = lease.status.as_ref();
    let phase = status.and_then(|s| s.phase).map_or_else(
        || "new (not seen by the operator yet)".to_owned(),
        |p| format!("{p:?}"),
    );
    match status.and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready")) {
        Some(ready) if ready.message.is_empty() => format!("{phase} ({})", ready.reason),
        Some(ready) => format!("{phase} ({}: {})", ready.reason, ready.message),
        None => phase,
    }
}

pub fn phase(lease: &EntraLease) -> Option<LeasePhase> {
    lease.status.as_ref().and_then(|s| s.phase)
}

/// Waits until `name` is Active; a Failed lease or the deadline ends the wait with the lease's
/// reason.
pub async fn until_active(
    api: &Api<EntraLease>,
    name: &str,
    timeout: Duration,
) -> Result<EntraLease, PluginError> {
    let settled = |lease: Option<&EntraLease>| {
        lease.is_none_or(|l| matches!(phase(l), Some(LeasePhase::Active | LeasePhase::Failed)))
    };
    let waited = tokio::time::timeout(timeout, await_condition(api.clone(), name, settled)).await;
    let lease = match waited {
        Ok(Ok(Some(lease))) => lease,
        Ok(Ok(None)) => {
            return Err(PluginError::LeaseNotUsable(format!(
                "lease {name} was deleted while waiting for it"
            )));
        }
        Ok(Err(error)) => {
            return Err(PluginError::Timeout(format!(
                "lost the watch on lease {name}: {error}"
            )));
        }
        Err(_) => {
            let now = api.get_opt(name).await.ok().flatten();
            let stands = now.as_ref().map_or_else(|| "gone".to_owned(), describe);
            return Err(PluginError::Timeout(format!(
                "timed out after {} waiting for lease {name} to be Active; it is {stands}. \
                 It stays and may still be issued: `kubectl entra leases`, or \
                 `kubectl entra revoke {name}`",
                format_duration(timeout)
            )));
        }
    };
    match phase(&lease) {
        Some(LeasePhase::Active) => Ok(lease),
        _ => Err(PluginError::LeaseNotUsable(format!(
            "lease {name} cannot be issued: {}",
            describe(&lease)
        ))),
    }
}

/// Waits until `name` (of `uid`) is gone.
pub async fn until_deleted(
    api: &Api<EntraLease>,
    name: &str,
    uid: &str,
    timeout: Duration,
) -> Result<(), PluginError> {
    let condition = kube::runtime::conditions::is_deleted(uid);
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, condition)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(PluginError::Timeout(format!(
            "lost the watch on lease {name}: {error}"
        ))),
        Err(_) => {
            let now = api.get_opt(name).await.ok().flatten();
            let stands = now.as_ref().map_or_else(|| "gone".to_owned(), describe);
            Err(PluginError::Timeout(format!(
                "timed out after {} waiting for lease {name} to be revoked; it is {stands}",
                format_duration(timeout)
            )))
        }
    }
}
