//! `kubectl entra renew LEASE`: the product page's "Renew" button. Sets the lease's renew
//! annotation to a new value (each new value asks for one renewal) and waits for the operator
//! to answer it.

use std::time::Duration;

use clap::Args;
use entra_operator::api::{EntraLease, LeasePhase, RENEW_ANNOTATION};
use entra_operator::duration::format_duration;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::wait::await_condition;
use serde_json::json;

use crate::connect::Target;
use crate::error::{PluginError, Request, in_namespace};
use crate::table::until;
use crate::wait::{describe, phase};
use crate::{credentials, parse_wait};

#[derive(Args)]
pub struct RenewArgs {
    /// The lease.
    lease: String,
    /// How long to wait for the operator to renew it.
    #[arg(long, default_value = "30s", value_parser = parse_wait)]
    wait: Duration,
}

pub async fn run(target: &Target, args: RenewArgs) -> Result<(), PluginError> {
    let name = &args.lease;
    let lease = credentials::get_lease(target, name).await?;
    if phase(&lease) != Some(LeasePhase::Active) {
        return Err(PluginError::LeaseNotUsable(format!(
            "lease {name} has no credential to renew: it is {}",
            describe(&lease)
        )));
    }
    let renewals_before = renew_count(&lease);
    let request_value = format!("kubectl-entra-{}", Timestamp::now().as_nanosecond());
    let api: Api<EntraLease> = Api::namespaced(target.client.clone(), &target.namespace);
    let patch = json!({ "metadata": { "annotations": { RENEW_ANNOTATION: request_value } } });
    let scope = in_namespace(&target.namespace);
    let request = Request {
        verb: "patch",
        resource: "entraleases",
        scope: &scope,
    };
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|error| request.error(error))?;
    let answered = |lease: Option<&EntraLease>| {
        lease.is_none_or(|l| {
            l.status
                .as_ref()
                .and_then(|s| s.last_renew_request.as_deref())
                == Some(request_value.as_str())
        })
    };
    let renewed = tokio::time::timeout(args.wait, await_condition(api.clone(), name, answered))
        .await
        .map_err(|_| {
            PluginError::Timeout(format!(
                "the operator did not answer the renewal of lease {name} within {}; the \
                 request stands ({RENEW_ANNOTATION}={request_value})",
                format_duration(args.wait)
            ))
        })?
        .map_err(|error| PluginError::Timeout(format!("lost the watch on lease {name}: {error}")))?
        .ok_or_else(|| PluginError::LeaseNotUsable(format!("lease {name} was deleted")))?;
    let after = expires_at(&renewed);
    let max = renewed
        .status
        .as_ref()
        .and_then(|s| s.max_expires_at.as_ref())
        .map(|t| t.0);
    let shown = |at: Option<Timestamp>| {
        at.map_or_else(|| "-".to_owned(), |at| format!("{at} ({})", until(at)))
    };
    // The operator answers every request, also those it declines: its reason says which.
    let ready = renewed
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    let (reason, message) = ready.map_or(("", ""), |c| (c.reason.as_str(), c.message.as_str()));
    let moved = renew_count(&renewed) > renewals_before;
    let capped = match reason {
        // Not moved: renewed within the second it was issued or last renewed, to the same time.
        "Renewed" => "",
        "RenewalCapped" if moved => " (capped at the pool's maxTTL)",
        _ => {
            return Err(PluginError::LeaseNotUsable(format!(
                "lease {name} was not renewed ({reason}: {message}); it expires {}, and may be \
                 renewed until {} at most",
                shown(after),
                shown(max)
            )));
        }
    };
    println!(
        "Lease {}/{name} renewed: expires {}{capped}",
        target.namespace,
        shown(after)
    );
    Ok(())
}

fn expires_at(lease: &EntraLease) -> Option<Timestamp> {
    lease
        .status
        .as_ref()
        .and_then(|s| s.expires_at.as_ref())
        .map(|t| t.0)
}

fn renew_count(lease: &EntraLease) -> u32 {
    lease.status.as_ref().map_or(0, |s| s.renew_count)
}
