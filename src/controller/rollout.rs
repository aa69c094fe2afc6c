//! Rollout-aware restarts: after a lease's Secret changes credential, its restart targets get a
//! pod-template annotation naming the credential generation (the way `kubectl rollout restart`
//! writes `restartedAt`), and their rollouts are read back until every target runs only pods
//! started for that generation. Writing the same generation twice changes nothing, so an
//! operator restart or a renewal restarts nothing.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};

use super::Error;
use super::claims::is_not_found;
use super::context::Context;
use super::rotation_schedule::Rollouts;
use super::status::FIELD_MANAGER;
use crate::api::{CREDENTIAL_GENERATION_ANNOTATION, EntraLease, RolloutKind, RolloutTarget};

/// What one look at a lease's restart targets found and did.
#[derive(Debug, PartialEq, Eq)]
pub struct RolloutReport {
    pub progress: Rollouts,
    /// Targets restarted by this look, as `Kind/name`.
    pub restarted: Vec<String>,
    /// Targets that will not complete on their own, with why.
    pub refused: Vec<String>,
}

/// A target as far as restarts go.
struct Workload {
    generation_annotation: Option<String>,
    /// Its pods read the lease's Secret.
    reads_secret: bool,
    /// Its pods are replaced only when someone deletes them (`OnDelete`).
    on_delete: bool,
    /// Its rollout finished: every replica updated and available, no old one left.
    complete: bool,
}

/// Restarts the lease's targets not yet started for `generation`, then reports whether every
/// rollout has completed.
pub async fn restart_and_observe(
    ctx: &Context,
    lease: &EntraLease,
    secret_name: &str,
    generation: u32,
) -> Result<RolloutReport, Error> {
    let targets = &lease.spec.rollout_restart_targets;
    let mut report = RolloutReport {
        progress: if targets.is_empty() {
            Rollouts::NotTracked
        } else {
            Rollouts::Complete
        },
        restarted: Vec::new(),
        refused: Vec::new(),
    };
    let namespace = lease.namespace().unwrap_or_default();
    let wanted = generation.to_string();
    for target in targets {
        let named = format!("{}/{}", target.kind.as_str(), target.name);
        let workload = match look(ctx, &namespace, target, secret_name).await {
            Ok(Some(workload)) => workload,
            // Nothing to move: a target that does not exist holds no old credential.
            Ok(None) => continue,
            Err(error) if is_forbidden(&error) => {
                report.refused.push(format!(
                    "{named}: the operator may not read or patch it (enable the chart's \
                     rolloutRestart.enabled)"
                ));
                report.progress = Rollouts::InProgress;
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        // The operator restarts only what depends on the credential: a lease user must not
        // be able to restart, through the operator, workloads that do not read its Secret.
        if !workload.reads_secret {
            report.refused.push(format!(
                "{named}: its pod template does not use Secret {secret_name}, so it was not \
                 restarted"
            ));
            report.progress = Rollouts::InProgress;
            continue;
        }
        if workload.on_delete {
            report.refused.push(format!(
                "{named}: its updateStrategy is OnDelete, so its rollout never completes on its \
                 own; it was not restarted and the previous credential ends with the overlap"
            ));
            report.progress = Rollouts::InProgress;
            continue;
        }
        if workload.generation_annotation.as_deref() != Some(wanted.as_str()) {
            match restart(ctx, &namespace, target, &wanted).await {
                Ok(()) => report.restarted.push(named),
                Err(error) if is_forbidden(&error) => report.refused.push(format!(
                    "{named}: the operator may not patch it (enable the chart's \
                     rolloutRestart.enabled)"
                )),
                Err(error) if is_not_found(&error) => continue,
                Err(error) => return Err(error.into()),
            }
            report.progress = Rollouts::InProgress;
            continue;
        }
        if !workload.complete {
            report.progress = Rollouts::InProgress;
        }
    }
    Ok(report)
}

fn is_forbidden(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 403)
}

async fn restart(
    ctx: &Context,
    namespace: &str,
    target: &RolloutTarget,
    generation: &str,
) -> kube::Result<()> {
    let patch = serde_json::json!({
        "spec": { "template": { "metadata": { "annotations": {
            CREDENTIAL_GENERATION_ANNOTATION: generation
        } } } }
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let client = ctx.client.clone();
    let patch = Patch::Merge(&patch);
    match target.kind {
        RolloutKind::Deployment => {
            let api: Api<Deployment> = Api::namespaced(client, namespace);
            api.patch(&target.name, &params, &patch).await.map(drop)
        }
        RolloutKind::StatefulSet => {
            let api: Api<StatefulSet> = Api::namespaced(client, namespace);
            api.patch(&target.name, &params, &patch).await.map(drop)
        }
        RolloutKind::DaemonSet => {
            let api: Api<DaemonSet> = Api::namespaced(client, namespace);
            api.patch(&target.name, &params, &patch).await.map(drop)
        }
    }
}

async fn look(
    ctx: &Context,
    namespace: &str,
    target: &RolloutTarget,
    secret_name: &str,
) -> kube::Result<Option<Workload>> {
    let client = ctx.client.clone();
    let name = &target.name;
    Ok(match target.kind {
        RolloutKind::Deployment => Api::<Deployment>::namespaced(client, namespace)
            .get_opt(name)
            .await?
            .map(|object| deployment(&object, secret_name)),
        RolloutKind::StatefulSet => Api::<StatefulSet>::namespaced(client, namespace)
            .get_opt(name)
            .await?
            .map(|object| stateful_set(&object, secret_name)),
        RolloutKind::DaemonSet => Api::<DaemonSet>::namespaced(client, namespace)
            .get_opt(name)
            .await?
            .map(|object| daemon_set(&object, secret_name)),
    })
}

/// Whether pods of `template` read Secret `name`: as a volume (also projected), an environment
/// variable or an env source, in any container.
fn reads_secret(template: &PodTemplateSpec, name: &str) -> bool {
    let Some(spec) = &template.spec else {
        return false;
    };
    let volumes = spec.volumes.iter().flatten().any(|volume| {
        volume
            .secret
            .as_ref()
            .is_some_and(|s| s.secret_name.as_deref() == Some(name))
            || volume.projected.as_ref().is_some_and(|p| {
                p.sources
                    .iter()
                    .flatten()
                    .any(|source| source.secret.as_ref().is_some_and(|s| s.name == name))
            })
    });
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let environment = containers.clone().any(|container| {
        container.env.iter().flatten().any(|var| {
            var.value_from
                .as_ref()
                .and_then(|from| from.secret_key_ref.as_ref())
                .is_some_and(|key| key.name == name)
        }) || container
            .env_from
            .iter()
            .flatten()
            .any(|source| source.secret_ref.as_ref().is_some_and(|s| s.name == name))
    });
    volumes || environment
}

fn template_annotation(template: &PodTemplateSpec) -> Option<String> {
    template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(CREDENTIAL_GENERATION_ANNOTATION)
        .cloned()
}

/// True when the controller has seen the object's latest spec.
fn observed(metadata_generation: Option<i64>, observed_generation: Option<i64>) -> bool {
    observed_generation >= metadata_generation
}

fn deployment(deployment: &Deployment, secret: &str) -> Workload {
    let spec = deployment.spec.clone().unwrap_or_default();
    let status = deployment.status.clone().unwrap_or_default();
    let wanted = spec.replicas.unwrap_or(1);
    Workload {
        generation_annotation: template_annotation(&spec.template),
        reads_secret: reads_secret(&spec.template, secret),
        on_delete: false,
        complete: observed(deployment.metadata.generation, status.observed_generation)
            && status.updated_replicas.unwrap_or(0) == wanted
            && status.replicas.unwrap_or(0) == wanted
            && status.available_replicas.unwrap_or(0) == wanted,
    }
}

fn stateful_set(set: &StatefulSet, secret: &str) -> Workload {
    let spec = set.spec.clone().unwrap_or_default();
    let status = set.status.clone().unwrap_or_default();
    let wanted = spec.replicas.unwrap_or(1);
    let strategy = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref());
    Workload {
        generation_annotation: template_annotation(&spec.template),
        reads_secret: reads_secret(&spec.template, secret),
        on_delete: strategy == Some("OnDelete"),
        complete: observed(set.metadata.generation, status.observed_generation)
            && status.updated_replicas.unwrap_or(0) == wanted
            && status.ready_replicas.unwrap_or(0) == wanted
            && status.current_revision == status.update_revision,
    }
}

fn daemon_set(set: &DaemonSet, secret: &str) -> Workload {
    let spec = set.spec.clone().unwrap_or_default();
    let status = set.status.clone().unwrap_or_default();
    let strategy = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref());
    let desired = status.desired_number_scheduled;
    Workload {
        generation_annotation: template_annotation(&spec.template),
        reads_secret: reads_secret(&spec.template, secret),
        on_delete: strategy == Some("OnDelete"),
        complete: observed(set.metadata.generation, status.observed_generation)
            && status.updated_number_scheduled.unwrap_or(0) == desired
            && status.number_available.unwrap_or(0) == desired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStatus, StatefulSetSpec, StatefulSetUpdateStrategy,
    };

    fn deployment_with(generation: i64, status: DeploymentStatus) -> Deployment {
        let mut object = Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(3),
                ..DeploymentSpec::default()
            }),
            status: Some(status),
            ..Deployment::default()
        };
        object.metadata.generation = Some(generation);
        object
    }

    #[test]
    fn a_deployment_is_complete_only_with_every_replica_updated_and_available_and_no_old_one() {
        let done = DeploymentStatus {
            observed_generation: Some(4),
            replicas: Some(3),
            updated_replicas: Some(3),
            available_replicas: Some(3),
            ..DeploymentStatus::default()
        };
        assert!(deployment(&deployment_with(4, done.clone()), "entra-svc").complete);
        assert!(
            !deployment(&deployment_with(5, done.clone()), "entra-svc").complete,
            "the controller has not seen the restart yet"
        );
        let surge = DeploymentStatus {
            replicas: Some(4),
            ..done.clone()
        };
        assert!(
            !deployment(&deployment_with(4, surge), "entra-svc").complete,
            "an old pod is left"
        );
        let unready = DeploymentStatus {
            available_replicas: Some(2),
            ..done
        };
        assert!(!deployment(&deployment_with(4, unready), "entra-svc").complete);
    }

    #[test]
    fn only_a_template_that_reads_the_secret_counts_as_its_consumer() {
        let template = |spec: serde_json::Value| -> PodTemplateSpec {
            serde_json::from_value(serde_json::json!({ "spec": spec })).unwrap()
        };
        let container = |extra: serde_json::Value| {
            let mut c = serde_json::json!({ "name": "app" });
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            c
        };
        let by_env = template(
            serde_json::json!({ "containers": [container(serde_json::json!({
            "env": [{ "name": "P", "valueFrom": { "secretKeyRef": { "name": "entra-svc", "key": "password" } } }]
        }))] }),
        );
        let by_env_from = template(
            serde_json::json!({ "containers": [container(serde_json::json!({
            "envFrom": [{ "secretRef": { "name": "entra-svc" } }]
        }))] }),
        );
        let by_volume = template(serde_json::json!({
            "containers": [container(serde_json::json!({}))],
            "volumes": [{ "name": "v", "secret": { "secretName": "entra-svc" } }]
        }));
        let by_projection = template(serde_json::json!({
            "containers": [container(serde_json::json!({}))],
            "volumes": [{ "name": "v", "projected": { "sources": [{ "secret": { "name": "entra-svc" } }] } }]
        }));
        for reader in [&by_env, &by_env_from, &by_volume, &by_projection] {
            assert!(reads_secret(reader, "entra-svc"));
            assert!(!reads_secret(reader, "entra-other"));
        }
        let unrelated =
            template(serde_json::json!({ "containers": [container(serde_json::json!({}))] }));
        assert!(!reads_secret(&unrelated, "entra-svc"));
    }

    #[test]
    fn an_on_delete_stateful_set_is_recognised() {
        let set = StatefulSet {
            spec: Some(StatefulSetSpec {
                update_strategy: Some(StatefulSetUpdateStrategy {
                    type_: Some("OnDelete".into()),
                    ..StatefulSetUpdateStrategy::default()
                }),
                ..StatefulSetSpec::default()
            }),
            ..StatefulSet::default()
        };
        assert!(stateful_set(&set, "entra-svc").on_delete);
    }
}
