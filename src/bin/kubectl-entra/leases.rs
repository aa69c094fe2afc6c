//! `kubectl entra leases [POOL]`: the product page's lease list, with time left and why a lease
//! waits or failed.

use clap::Args;
use entra_operator::api::{EntraLease, LeasePhase};
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::connect::Target;
use crate::error::{PluginError, Request};
use crate::output::{Format, print_document};
use crate::table::{self, left};
use crate::wait::phase;

#[derive(Args)]
pub struct LeasesArgs {
    /// Only the leases of this pool.
    pool: Option<String>,
    /// Output format: text, json or yaml.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub async fn run(target: &Target, args: LeasesArgs) -> Result<(), PluginError> {
    let (api, scope): (Api<EntraLease>, String) = target.listing();
    let request = Request {
        verb: "list",
        resource: "entraleases",
        scope: &scope,
    };
    let mut leases: Vec<EntraLease> = api
        .list(&ListParams::default())
        .await
        .map_err(|error| request.error(error))?
        .items
        .into_iter()
        .filter(|lease| {
            args.pool
                .as_ref()
                .is_none_or(|pool| lease.spec.dynamic_secret_ref.name == *pool)
        })
        .collect();
    leases.sort_by_key(|l| (l.namespace(), l.name_any()));
    if args.format != Format::Text {
        let rows: Vec<Value> = leases.iter().map(summary).collect();
        return print_document(&json!(rows), args.format);
    }
    if leases.is_empty() {
        println!("No leases in {scope}.");
        return Ok(());
    }
    let mut header = vec![
        "NAME",
        "POOL",
        "USER",
        "PHASE",
        "EXPIRES IN",
        "RENEWABLE FOR",
        "WHY",
    ];
    if target.all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    let rows: Vec<Vec<String>> = leases
        .iter()
        .map(|lease| {
            let status = lease.status.clone().unwrap_or_default();
            let mut row = vec![
                lease.name_any(),
                lease.spec.dynamic_secret_ref.name.clone(),
                status
                    .user
                    .map_or_else(|| "-".to_owned(), |u| u.user_principal_name),
                phase(lease).map_or_else(|| "New".to_owned(), |p| format!("{p:?}")),
                left(status.expires_at.map(|t| t.0)),
                left(status.max_expires_at.map(|t| t.0)),
                why(lease),
            ];
            if target.all_namespaces {
                row.insert(0, lease.namespace().unwrap_or_default());
            }
            row
        })
        .collect();
    table::print(&header, &rows);
    Ok(())
}

/// The Ready condition's reason and message when the lease is not simply active.
fn why(lease: &EntraLease) -> String {
    let ready = lease
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    match ready {
        Some(ready) if ready.status != "True" || phase(lease) != Some(LeasePhase::Active) => {
            format!("{}: {}", ready.reason, ready.message)
        }
        _ => String::new(),
    }
}

fn summary(lease: &EntraLease) -> Value {
    let status = lease.status.clone().unwrap_or_default();
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    json!({
        "namespace": lease.namespace(),
        "name": lease.name_any(),
        "pool": lease.spec.dynamic_secret_ref.name,
        "poolKind": lease.spec.dynamic_secret_ref.kind.as_str(),
        "user": status.user.as_ref().map(|u| &u.user_principal_name),
        "phase": status.phase.map(|p| format!("{p:?}")),
        "secret": status.secret_name,
        "expiresAt": status.expires_at.map(|t| t.0.to_string()),
        "maxExpiresAt": status.max_expires_at.map(|t| t.0.to_string()),
        "nextRotationAt": status.next_rotation_at.map(|t| t.0.to_string()),
        "reason": ready.map(|c| &c.reason),
        "message": ready.map(|c| &c.message),
    })
}
