//! Workloads roll on the local control plane's fake nodes as in a real cluster: kube-scheduler
//! binds pods, KWOK makes them Running and Ready, and a `kubectl rollout restart` (a new pod
//! template annotation) replaces every pod and completes, waiting for readiness as it goes.

use entra_test_support as support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::ControlPlane;
use support::cluster::{namespace, poll};
use support::node_simulation::rolling_deployment;

const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test]
async fn restarted_deployment_rolls_out_new_ready_pods() {
    let control_plane = ControlPlane::shared_with_nodes();
    let client = control_plane.client().await;
    let namespace = namespace(&client, "rollout").await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &namespace);
    let pods = Api::<Pod>::namespaced(client, &namespace);

    let started = Instant::now();
    deployments
        .create(&PostParams::default(), &rolling_deployment("web", 3, None))
        .await
        .expect("the Deployment is created");
    let first = rollout_complete(control_plane, &deployments, &pods, "web", 3).await;
    println!(
        "3-replica Deployment rolled out in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let restarted = Instant::now();
    restart(&deployments, "web").await;
    let second = rollout_complete(control_plane, &deployments, &pods, "web", 3).await;
    println!(
        "rollout restart completed in {:.1}s",
        restarted.elapsed().as_secs_f64()
    );
    assert!(
        first.is_disjoint(&second),
        "every pod was replaced: before {first:?}, after {second:?}"
    );
}

#[tokio::test]
async fn rollout_waits_for_each_new_pod_to_become_ready() {
    let control_plane = ControlPlane::shared_with_nodes();
    let client = control_plane.client().await;
    let namespace = namespace(&client, "slow-rollout").await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &namespace);
    let pods = Api::<Pod>::namespaced(client, &namespace);
    let delay = Duration::from_secs(3);

    deployments
        .create(
            &PostParams::default(),
            &rolling_deployment("slow", 2, Some(&format!("{}s", delay.as_secs()))),
        )
        .await
        .expect("the Deployment is created");
    rollout_complete(control_plane, &deployments, &pods, "slow", 2).await;

    // maxSurge 1 and maxUnavailable 0: each new pod must be Ready before an old one goes, so two
    // replicas take at least two readiness delays, one after the other.
    let restarted = Instant::now();
    restart(&deployments, "slow").await;
    rollout_complete(control_plane, &deployments, &pods, "slow", 2).await;
    let took = restarted.elapsed();
    println!(
        "rollout restart with a {delay:?} readiness delay completed in {:.1}s",
        took.as_secs_f64()
    );
    assert!(
        took >= 2 * delay,
        "the rollout waited for both new pods to become Ready in turn, took {took:?}"
    );
}

/// What `kubectl rollout restart` does: a new pod template annotation, hence a new ReplicaSet.
async fn restart(deployments: &Api<Deployment>, name: &str) {
    let patch = json!({
        "spec": { "template": { "metadata": { "annotations": {
            "kubectl.kubernetes.io/restartedAt": format!("{:?}", std::time::SystemTime::now())
        } } } }
    });
    deployments
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("the pod template is patched");
}

/// Waits until the Deployment's rollout is complete as `kubectl rollout status` judges it (the
/// controller has seen the latest spec, and every replica is updated and available, none old)
/// and exactly `replicas` of its pods are Ready; returns their names.
async fn rollout_complete(
    control_plane: &ControlPlane,
    deployments: &Api<Deployment>,
    pods: &Api<Pod>,
    name: &str,
    replicas: i32,
) -> BTreeSet<String> {
    let selector = ListParams::default().labels(&format!("app={name}"));
    poll(
        &format!("the rollout of Deployment {name}"),
        ROLLOUT_TIMEOUT,
        || async {
            let deployment = deployments.get(name).await.ok()?;
            let generation = deployment.metadata.generation?;
            let status = deployment.status?;
            let complete = status.observed_generation? >= generation
                && status.updated_replicas? == replicas
                && status.replicas? == replicas
                && status.available_replicas? == replicas;
            if !complete {
                return None;
            }
            let ready: BTreeSet<String> = pods
                .list(&selector)
                .await
                .ok()?
                .items
                .into_iter()
                .filter(is_ready)
                .filter_map(|pod| pod.metadata.name)
                .collect();
            (ready.len() == replicas as usize).then_some(ready)
        },
        || {
            ["kube-controller-manager", "kube-scheduler", "kwok"]
                .map(|component| format!("{component}:\n{}", control_plane.log_tail(component)))
                .join("\n")
        },
    )
    .await
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|status| status.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
}
