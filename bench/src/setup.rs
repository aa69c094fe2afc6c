//! Starting what every run needs: the local control plane with the CRDs, and where logs go.

use std::path::PathBuf;
use std::time::{Duration, Instant};

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
