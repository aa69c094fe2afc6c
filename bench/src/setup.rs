//! Starting what every run needs: the local control plane with the CRDs, and where logs go.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use entra_operator::api::EntraLease;
use entra_test_support::admission::POLICY_WAIT;
use entra_test_support::chart::{CHART_DIR, documents, helm_ok, values_file};
use kube::api::{Api, PostParams};
use serde_json::json;

use super::control_plane::ControlPlane;

/// The workspace's target directory, where `make` put the binaries and where runs keep logs.
pub fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .join("target")
}

/// Points the support code at the control plane `make controlplane` built, unless the Makefile
/// already did. Call before any thread starts.
pub fn locate_control_plane() {
    if std::env::var_os("CONTROLPLANE_BIN").is_none() {
        let path = target_dir().join("controlplane/controlplane");
        // SAFETY: called first thing in `main`, before the runtime or any other thread exists.
        unsafe { std::env::set_var("CONTROLPLANE_BIN", path) };
    }
}

/// Starts the control plane and installs the operator's CRDs (as `entra-operator crds` prints them).
pub fn start_control_plane() -> ControlPlane {
    let control_plane = ControlPlane::start()
        .unwrap_or_else(|error| panic!("the local control plane did not start: {error}"));
    let crds = entra_operator::api::crds_yaml().expect("the CRDs render");
    install_crds(
        &control_plane,
        &crds,
        &[
            "crd/entradynamicsecrets.kms.hanzo.ai",
            "crd/entraleases.kms.hanzo.ai",
        ],
        "entraleases",
    );
    control_plane
}

/// Applies the CRDs in `yaml`, waits until `established` are and until `served` (resources, as
/// `kubectl get` takes them) can be listed: discovery lags the Established condition a moment.
pub fn install_crds(control_plane: &ControlPlane, yaml: &str, established: &[&str], served: &str) {
    let apply = control_plane.kubectl_with_input(&["apply", "--server-side", "-f", "-"], yaml);
    assert!(
        apply.status.success(),
        "the CRDs apply: {}",
        String::from_utf8_lossy(&apply.stderr)
    );
    let mut wait = vec!["wait", "--for=condition=Established", "--timeout=60s"];
    wait.extend_from_slice(established);
    assert!(
        control_plane.kubectl(&wait).status.success(),
        "{established:?} become Established"
    );
    let started = Instant::now();
    while !control_plane
        .kubectl(&["get", served, "-A"])
        .status
        .success()
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{served} are served"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The finalizer the chart's MutatingAdmissionPolicy adds to every new lease.
const REVOKE_FINALIZER: &str = "kms.hanzo.ai/revoke";

/// Installs the chart's finalizer policy (MutatingAdmissionPolicy `<release>-finalizer` and its
/// binding) as `helm install` of a release in `operator_namespace` watching `watched` would, so
/// that the run's leases are created as in a cluster with the chart: carrying the operator's
/// finalizer, which the operator then need not write. The chart renders them (helm from
/// `$HELM_BIN`, which the Makefile exports) for this API server's version; only those two objects
/// are applied, the operator here runs with the admin's rights. Returns once a lease created in
/// `watched[0]` comes back with the finalizer.
pub async fn install_finalizer_policy(
    control_plane: &ControlPlane,
    operator_namespace: &str,
    watched: &[&str],
) {
    let client = control_plane.client().await;
    let version = client
        .apiserver_version()
        .await
        .expect("the API server's version")
        .git_version;
    let (_dir, values) = values_file(&json!({ "watchNamespaces": watched }));
    let rendered = helm_ok(&[
        "template",
        operator_namespace,
        CHART_DIR,
        "--namespace",
        operator_namespace,
        "--values",
        values.to_str().unwrap(),
        "--kube-version",
        &version,
        "--show-only",
        "templates/admissionpolicies.yaml",
    ]);
    let policy: Vec<_> = documents(&rendered)
        .into_iter()
        .filter(|o| {
            o["kind"] == "MutatingAdmissionPolicy" || o["kind"] == "MutatingAdmissionPolicyBinding"
        })
        .collect();
    assert_eq!(
        policy.len(),
        2,
        "the chart renders its finalizer policy and binding for Kubernetes {version}"
    );
    let list = json!({ "apiVersion": "v1", "kind": "List", "items": policy });
    let applied = control_plane.kubectl_with_input(
        &["apply", "--server-side", "--field-manager=helm", "-f", "-"],
        &list.to_string(),
    );
    assert!(
        applied.status.success(),
        "the finalizer policy applies: {}",
        String::from_utf8_lossy(&applied.stderr)
    );

    // A dry run: admitted, mutated and returned as a create is, seen by no operator and
    // leaving nothing to delete.
    let probe: EntraLease = serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraLease",
        "metadata": { "name": "finalizer-policy-probe" },
        "spec": { "dynamicSecretRef": { "name": "probe" } },
    }))
    .expect("a valid lease");
    let leases = Api::<EntraLease>::namespaced(client, watched[0]);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let started = Instant::now();
    loop {
        let created = leases.create(&dry_run, &probe).await;
        if let Ok(lease) = &created
            && lease
                .metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == REVOKE_FINALIZER)
        {
            return;
        }
        assert!(
            started.elapsed() < POLICY_WAIT,
            "the finalizer policy is not in force in {} after {POLICY_WAIT:?}: {created:?}",
            watched[0]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fresh directory for one run's logs: `target/<kind>/<unix time>`.
pub fn log_dir(kind: &str) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let dir = target_dir().join(kind).join(stamp.to_string());
    std::fs::create_dir_all(&dir).expect("the log directory");
    dir
}
