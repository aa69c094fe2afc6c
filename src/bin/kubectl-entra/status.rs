//! `kubectl entra status`: is everything in place? The API server, the CRDs (and whether they
//! are the ones this plugin was built with), the operator's Deployment and its leader.

use clap::Args;
use entra_operator::api::crds;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use crate::connect::Target;
use crate::error::{PluginError, is_status};

#[derive(Args)]
pub struct StatusArgs {
    /// The namespace the operator is installed in.
    #[arg(long, default_value = "entra-operator")]
    operator_namespace: String,
    /// The leader-election Lease, when the operator's Deployment cannot be read to find it.
    #[arg(long, default_value = "entra-operator-leader")]
    leader_lease: String,
}

const OPERATOR_LABEL: &str = "app.kubernetes.io/name=entra-operator";

pub async fn run(target: &Target, args: StatusArgs) -> Result<(), PluginError> {
    let mut problems = Vec::new();
    let version =
        target.client.apiserver_version().await.map_err(|error| {
            PluginError::Config(format!("the API server is unreachable: {error}"))
        })?;
    line(
        "Plugin",
        format!("kubectl-entra {}", env!("CARGO_PKG_VERSION")),
    );
    line("API server", version.git_version);
    check_crds(target, &mut problems).await;
    let (deployments, lease_name) = check_deployments(target, &args, &mut problems).await;
    let leader = check_leader(target, &args.operator_namespace, &lease_name, &mut problems).await;
    let namespace = &args.operator_namespace;
    match (leader, deployments) {
        (Seen::Yes | Seen::Reported, _) | (Seen::No, Seen::Yes) => {}
        (Seen::No, Seen::No) => problems.push(format!(
            "no running operator found in namespace {namespace}: no ready Deployment labelled \
             {OPERATOR_LABEL} and no leader (is it installed elsewhere? --operator-namespace)"
        )),
        _ => problems.push(format!(
            "could not verify that an operator runs: you may not read its Deployments or \
             leader Lease in namespace {namespace}"
        )),
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(PluginError::Unhealthy(problems.join("\n  - ")))
}

/// Whether a running operator was seen, not seen, could not be looked for, or was found broken
/// (a problem already reported).
#[derive(Clone, Copy)]
enum Seen {
    Yes,
    No,
    Unknown,
    Reported,
}

fn line(label: &str, value: impl std::fmt::Display) {
    println!("{label:<12} {value}");
}

/// Each CRD: served at which versions, and whether its schema is this plugin's.
async fn check_crds(target: &Target, problems: &mut Vec<String>) {
    let api: Api<CustomResourceDefinition> = Api::all(target.client.clone());
    for expected in crds() {
        let name = expected.name_any();
        match api.get_opt(&name).await {
            Ok(Some(installed)) => {
                let versions: Vec<String> = installed
                    .spec
                    .versions
                    .iter()
                    .filter(|v| v.served)
                    .map(|v| v.name.clone())
                    .collect();
                let same = schemas(&installed) == schemas(&expected);
                let note = if same {
                    "matches this plugin"
                } else {
                    problems.push(format!(
                        "CRD {name} differs from this plugin's: apply crds/ of the release you run"
                    ));
                    "differs from this plugin's"
                };
                line("CRD", format!("{name} {} ({note})", versions.join(",")));
            }
            Ok(None) => {
                problems.push(format!("CRD {name} is not installed"));
                line("CRD", format!("{name} MISSING"));
            }
            // Reading CRDs is a cluster right; discovery tells anyone what is served.
            Err(error) if is_status(&error, 403) => {
                let group_version = format!("{}/{}", expected.spec.group, "v1alpha1");
                let served = target
                    .client
                    .list_api_group_resources(&group_version)
                    .await
                    .is_ok_and(|list| {
                        list.resources
                            .iter()
                            .any(|r| r.name == expected.spec.names.plural)
                    });
                if !served {
                    problems.push(format!(
                        "{group_version} {} is not served",
                        expected.spec.names.plural
                    ));
                }
                line("CRD", format!("{name} {} (served: {served})", "v1alpha1"));
            }
            Err(error) => {
                problems.push(format!("cannot read CRD {name}: {error}"));
            }
        }
    }
}

fn schemas(crd: &CustomResourceDefinition) -> Vec<String> {
    crd.spec
        .versions
        .iter()
        .map(|v| serde_json::to_string(&v.schema).unwrap_or_default())
        .collect()
}

/// The operator's Deployments in its namespace: whether one has a ready replica, and the leader
/// Lease they name.
async fn check_deployments(
    target: &Target,
    args: &StatusArgs,
    problems: &mut Vec<String>,
) -> (Seen, String) {
    let namespace = &args.operator_namespace;
    let api: Api<Deployment> = Api::namespaced(target.client.clone(), namespace);
    let list = match api
        .list(&ListParams::default().labels(OPERATOR_LABEL))
        .await
    {
        Ok(list) => list.items,
        Err(error) if is_status(&error, 403) => {
            line(
                "Operator",
                format!("cannot list Deployments in {namespace} (RBAC)"),
            );
            return (Seen::Unknown, args.leader_lease.clone());
        }
        Err(error) => {
            problems.push(format!("cannot list Deployments in {namespace}: {error}"));
            return (Seen::Unknown, args.leader_lease.clone());
        }
    };
    if list.is_empty() {
        line(
            "Operator",
            format!("no Deployment labelled {OPERATOR_LABEL} in namespace {namespace}"),
        );
    }
    let mut lease_name = args.leader_lease.clone();
    let mut ready = Seen::No;
    for deployment in &list {
        let version = deployment
            .labels()
            .get("app.kubernetes.io/version")
            .cloned()
            .unwrap_or_else(|| "unknown".to_owned());
        let status = deployment.status.clone().unwrap_or_default();
        let desired = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        if status.ready_replicas.unwrap_or(0) > 0 {
            ready = Seen::Yes;
        }
        line(
            "Operator",
            format!(
                "Deployment {namespace}/{} version {version}: {}/{desired} replicas ready",
                deployment.name_any(),
                status.ready_replicas.unwrap_or(0)
            ),
        );
        if let Some(name) = leader_lease_of(deployment) {
            lease_name = name;
        }
    }
    (ready, lease_name)
}

/// The `--leader-election-lease-name` the operator container is given.
fn leader_lease_of(deployment: &Deployment) -> Option<String> {
    let containers = &deployment.spec.as_ref()?.template.spec.as_ref()?.containers;
    containers
        .iter()
        .flat_map(|c| c.args.iter().flatten())
        .find_map(|arg| arg.strip_prefix("--leader-election-lease-name="))
        .map(str::to_owned)
}

/// Who leads, and whether it renewed its Lease in time: the sign that an operator runs.
async fn check_leader(
    target: &Target,
    namespace: &str,
    name: &str,
    problems: &mut Vec<String>,
) -> Seen {
    let api: Api<Lease> = Api::namespaced(target.client.clone(), namespace);
    let lease = match api.get_opt(name).await {
        Ok(Some(lease)) => lease,
        Ok(None) => {
            line(
                "Leader",
                format!("no Lease {namespace}/{name} (leader election off, or no replica started)"),
            );
            return Seen::No;
        }
        Err(error) if is_status(&error, 403) => {
            line(
                "Leader",
                format!("cannot read Lease {namespace}/{name} (RBAC)"),
            );
            return Seen::Unknown;
        }
        Err(error) => {
            problems.push(format!("cannot read Lease {namespace}/{name}: {error}"));
            return Seen::Unknown;
        }
    };
    let spec = lease.spec.unwrap_or_default();
    let holder = spec.holder_identity.unwrap_or_default();
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    let renewed = spec.renew_time.map(|t| t.0);
    let age = renewed.map(|at| Timestamp::now().as_second() - at.as_second());
    match age {
        Some(age) if !holder.is_empty() && age <= duration => {
            line("Leader", format!("{holder} (renewed {age}s ago)"));
            Seen::Yes
        }
        _ => {
            let since = age.map_or_else(|| "never".to_owned(), |age| format!("{age}s ago"));
            line(
                "Leader",
                format!("none: Lease {namespace}/{name} last renewed {since}"),
            );
            problems.push(format!(
                "no replica leads: Lease {namespace}/{name} was last renewed {since}, longer \
                 than its {duration}s; no lease is issued or revoked until one does"
            ));
            Seen::Reported
        }
    }
}
