//! Fake nodes for a control plane whose workloads must really roll: kube-scheduler binds pods to
//! nodes that KWOK (sigs.k8s.io/kwok) simulates, and KWOK plays the part of their kubelets, moving
//! each bound pod to Running and Ready and finishing the deletion of pods being deleted. With the
//! workload controllers in kube-controller-manager, Deployments, StatefulSets and DaemonSets roll
//! as in a real cluster, minus the containers.
//!
//! The pod lifecycle is KWOK's default Stages (what `kwokctl` gives a cluster), printed by
//! `controlplane kwok-stages`, where the pod-ready stage also honours
//! [`POD_READY_DELAY_ANNOTATION`].

use std::fs;
use std::time::{Duration, Instant};

use crate::control_plane::ControlPlane;

/// kube-controller-manager's controllers that turn workloads into pods, and the node lifecycle
/// controller: kube-apiserver taints every new node `node.kubernetes.io/not-ready:NoSchedule`, and
/// only that controller lifts the taint once the node reports Ready.
pub(crate) const WORKLOAD_CONTROLLERS: &str = "deployment-controller,replicaset-controller,statefulset-controller,daemonset-controller,node-lifecycle-controller";

/// A pod annotation holding a Go duration (`"15s"`) by which the pod's move to Running and Ready
/// is delayed; a long one (`"8760h"`) withholds readiness for good. Set it in a pod template.
pub const POD_READY_DELAY_ANNOTATION: &str = "pod-ready.stage.kwok.x-k8s.io/delay";

/// The annotation by which KWOK tells the nodes it manages (KWOK's own convention).
const MANAGED_NODE_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");

const NODES_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What [`ControlPlane::start_with_nodes`] adds to a control plane.
pub(crate) struct NodeSimulation {
    pub nodes: usize,
}

/// The name of the `index`th fake node.
pub fn node_name(index: usize) -> String {
    format!("kwok-node-{index}")
}

impl ControlPlane {
    /// Starts kube-scheduler and KWOK, registers the fake nodes and waits until they are Ready.
    pub(crate) fn start_node_simulation(&self, simulation: &NodeSimulation) -> Result<(), String> {
        let kubeconfig = format!("--kubeconfig={}", self.kubeconfig.display());
        self.spawn(
            "kube-scheduler",
            &[&kubeconfig, "--leader-elect=false", "--secure-port=0"],
        )?;

        let stages = self.data_dir().join("kwok-stages.yaml");
        fs::write(&stages, self.output_of(&["kwok-stages"])?)
            .map_err(|e| format!("KWOK stages: {e}"))?;
        let (key, value) = MANAGED_NODE_ANNOTATION;
        self.spawn(
            "kwok",
            &[
                &kubeconfig,
                &format!("--config={}", stages.display()),
                &format!("--manage-nodes-with-annotation-selector={key}={value}"),
                // No kubelet API (logs, exec): nothing here uses it, and it would need a port.
                "--node-port=0",
            ],
        )?;

        let nodes: String = (0..simulation.nodes).map(node_manifest).collect();
        let created = self.kubectl_with_input(&["apply", "-f", "-"], &nodes);
        if !created.status.success() {
            return Err(format!(
                "fake nodes not created: {}",
                String::from_utf8_lossy(&created.stderr)
            ));
        }
        self.wait_until_nodes_ready(simulation.nodes)
    }

    fn wait_until_nodes_ready(&self, nodes: usize) -> Result<(), String> {
        let started = Instant::now();
        loop {
            self.check_still_running()?;
            let ready = self.kubectl(&[
                "get",
                "nodes",
                "-o",
                "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}",
            ]);
            let ready = String::from_utf8_lossy(&ready.stdout)
                .split_whitespace()
                .filter(|status| *status == "True")
                .count();
            if ready == nodes {
                return Ok(());
            }
            if started.elapsed() > NODES_READY_TIMEOUT {
                return Err(format!(
                    "{ready} of {nodes} fake nodes Ready after {NODES_READY_TIMEOUT:?}; kwok:\n{}",
                    self.log_tail("kwok")
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A node as `kwokctl create cluster` registers one: KWOK fills in its status (Ready, capacity,
/// addresses) and keeps its lease. It has no taint, so every workload may land on it.
fn node_manifest(index: usize) -> String {
    let (key, value) = MANAGED_NODE_ANNOTATION;
    let name = node_name(index);
    format!(
        "---
apiVersion: v1
kind: Node
metadata:
  name: {name}
  annotations:
    {key}: {value}
  labels:
    kubernetes.io/hostname: {name}
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
"
    )
}

/// A Deployment of `replicas` pods that roll one at a time (maxSurge 1, maxUnavailable 0), each
/// becoming Ready after `ready_after` if given. The image is never pulled: KWOK runs no containers.
pub fn rolling_deployment(
    name: &str,
    replicas: i32,
    ready_after: Option<&str>,
) -> k8s_openapi::api::apps::v1::Deployment {
    let annotations = match ready_after {
        Some(delay) => serde_json::json!({ POD_READY_DELAY_ANNOTATION: delay }),
        None => serde_json::json!({}),
    };
    serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": { "maxSurge": 1, "maxUnavailable": 0 }
            },
            "template": {
                "metadata": { "labels": { "app": name }, "annotations": annotations },
                "spec": {
                    "containers": [{ "name": "app", "image": "registry.invalid/app:1" }]
                }
            }
        }
    }))
    .expect("a Deployment object")
}
