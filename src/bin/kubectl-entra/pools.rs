//! `kubectl entra pools`: each pool's users available, leased and unleasable, and what is wrong
//! with each unleasable one.

use clap::Args;
use entra_operator::api::{
    ClusterEntraDynamicSecret, DynamicSecretStatus, EntraDynamicSecret, PoolSpec,
};
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::connect::Target;
use crate::error::{PluginError, Request, is_status};
use crate::output::{Format, print_document};
use crate::table::{self, until};

#[derive(Args)]
pub struct PoolsArgs {
    /// Output format: text, json or yaml.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// One pool of either kind, as listed.
struct Listed {
    namespace: Option<String>,
    name: String,
    kind: &'static str,
    spec: PoolSpec,
    status: DynamicSecretStatus,
}

pub async fn run(target: &Target, args: PoolsArgs) -> Result<(), PluginError> {
    let mut pools = namespaced(target).await?;
    // Lease users usually may not read cluster pools: say so rather than fail.
    let cluster = cluster(target).await?;
    let cluster_unreadable = cluster.is_none();
    pools.extend(cluster.unwrap_or_default());
    if args.format != Format::Text {
        let rows: Vec<Value> = pools.iter().map(summary).collect();
        return print_document(&json!(rows), args.format);
    }
    if cluster_unreadable {
        eprintln!("(you may not list ClusterEntraDynamicSecrets; only namespaced pools are shown)");
    }
    if pools.is_empty() {
        println!("No pools.");
        return Ok(());
    }
    let header = [
        "NAME",
        "KIND",
        "READY",
        "AVAILABLE",
        "LEASED",
        "UNLEASABLE",
        "MAX TTL",
        "CREDENTIAL EXPIRES",
    ];
    let rows: Vec<Vec<String>> = pools
        .iter()
        .map(|pool| {
            vec![
                shown_name(pool),
                pool.kind.to_owned(),
                ready(&pool.status),
                pool.status.available.to_string(),
                pool.status.leased.to_string(),
                unleasable(&pool.status).len().to_string(),
                pool.spec.max_ttl.clone(),
                pool.status
                    .credential_expires_at
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |t| until(t.0)),
            ]
        })
        .collect();
    table::print(&header, &rows);
    for pool in &pools {
        for (user, problem) in unleasable(&pool.status) {
            println!("{}: {user} cannot be leased: {problem}", shown_name(pool));
        }
    }
    Ok(())
}

async fn namespaced(target: &Target) -> Result<Vec<Listed>, PluginError> {
    let (api, scope): (Api<EntraDynamicSecret>, String) = target.listing();
    let request = Request {
        verb: "list",
        resource: "entradynamicsecrets",
        scope: &scope,
    };
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|error| request.error(error))?;
    Ok(list
        .items
        .into_iter()
        .map(|pool| Listed {
            namespace: pool.namespace(),
            name: pool.name_any(),
            kind: "EntraDynamicSecret",
            status: pool.status.unwrap_or_default(),
            spec: pool.spec.pool,
        })
        .collect())
}

/// None when the user may not list cluster pools.
async fn cluster(target: &Target) -> Result<Option<Vec<Listed>>, PluginError> {
    let api: Api<ClusterEntraDynamicSecret> = Api::all(target.client.clone());
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(Some(
            list.items
                .into_iter()
                .map(|pool| Listed {
                    namespace: None,
                    name: pool.name_any(),
                    kind: "ClusterEntraDynamicSecret",
                    status: pool.status.unwrap_or_default(),
                    spec: pool.spec.pool,
                })
                .collect(),
        )),
        Err(error) if is_status(&error, 403) => Ok(None),
        Err(error) => Err(Request {
            verb: "list",
            resource: "clusterentradynamicsecrets",
            scope: "the cluster",
        }
        .error(error)),
    }
}

fn shown_name(pool: &Listed) -> String {
    match &pool.namespace {
        Some(namespace) => format!("{namespace}/{}", pool.name),
        None => pool.name.clone(),
    }
}

/// `True`, or `False (Reason)`.
fn ready(status: &DynamicSecretStatus) -> String {
    match status.conditions.iter().find(|c| c.type_ == "Ready") {
        Some(c) if c.status == "True" => "True".to_owned(),
        Some(c) => format!("{} ({})", c.status, c.reason),
        None => "Unknown".to_owned(),
    }
}

fn unleasable(status: &DynamicSecretStatus) -> Vec<(&str, &str)> {
    status
        .users
        .iter()
        .filter_map(|u| Some((u.configured.as_str(), u.problem.as_deref()?)))
        .collect()
}

fn summary(pool: &Listed) -> Value {
    let ready = pool.status.conditions.iter().find(|c| c.type_ == "Ready");
    json!({
        "namespace": pool.namespace,
        "name": pool.name,
        "kind": pool.kind,
        "ready": ready.map(|c| &c.status),
        "reason": ready.map(|c| &c.reason),
        "message": ready.map(|c| &c.message),
        "available": pool.status.available,
        "leased": pool.status.leased,
        "defaultTTL": pool.spec.default_ttl,
        "maxTTL": pool.spec.max_ttl,
        "credentialExpiresAt": pool.status.credential_expires_at.as_ref().map(|t| t.0.to_string()),
        "unleasable": unleasable(&pool.status)
            .into_iter()
            .map(|(user, problem)| json!({ "user": user, "problem": problem }))
            .collect::<Vec<_>>(),
    })
}
