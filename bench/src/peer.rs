//! The peer `make bench-peer` measures beside the operator: External Secrets Operator (ESO), whose
//! `ExternalSecret` with a `Password` generator also turns one custom resource into one Secret
//! holding a generated password. Its controller is built by the Makefile from ESO's Go module
//! (`tests/peer/`), with the CRDs of that release beside it, and run here as its own process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

use super::control_plane::ControlPlane;
use super::operator::{Usage, usage_of};
use super::setup::target_dir;

/// The ESO release the Makefile builds (tests/peer/go.mod).
pub const ESO_VERSION: &str = "v0.16.2";
/// The Password generator every ExternalSecret of the run draws from.
pub const GENERATOR: &str = "password";

/// `$ESO_BIN`, or where the Makefile builds it.
pub fn eso_binary() -> PathBuf {
    std::env::var_os("ESO_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("controlplane/eso"))
}

/// `$ESO_CRDS`, or where the Makefile copies the release's CRD bundle.
pub fn eso_crds() -> PathBuf {
    std::env::var_os("ESO_CRDS")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("controlplane/eso-crds.yaml"))
}

/// Whether `make bench-peer` has built what a comparison needs.
pub fn is_built() -> bool {
    eso_binary().is_file() && eso_crds().is_file()
}

/// Applies ESO's CRDs and waits until ExternalSecrets and Passwords are served.
pub fn install_crds(control_plane: &ControlPlane) {
    let bundle = std::fs::read_to_string(eso_crds()).expect("ESO's CRD bundle");
    super::setup::install_crds(
        control_plane,
        &bundle,
        &[
            "crd/externalsecrets.external-secrets.io",
            "crd/passwords.generators.external-secrets.io",
        ],
        "externalsecrets,passwords",
    );
}

fn resource(group: &str, version: &str, kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

pub fn external_secrets(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let resource = resource("external-secrets.io", "v1", "ExternalSecret");
    Api::namespaced_with(client.clone(), namespace, &resource)
}

pub fn passwords(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let resource = resource("generators.external-secrets.io", "v1alpha1", "Password");
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// A 32-character password with digits and symbols, as the operator's passwords are.
pub fn password_generator() -> DynamicObject {
    object(json!({
        "apiVersion": "generators.external-secrets.io/v1alpha1",
        "kind": "Password",
        "metadata": { "name": GENERATOR },
        "spec": { "length": 32, "digits": 6, "symbols": 6, "allowRepeat": true },
    }))
}

/// An ExternalSecret writing a generated password into Secret `name`. Its refresh interval is
/// longer than any run, so no refresh falls inside a measurement.
pub fn external_secret(name: &str) -> DynamicObject {
    object(json!({
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": { "name": name },
        "spec": {
            "refreshInterval": "24h",
            "target": { "name": name },
            "dataFrom": [{ "sourceRef": { "generatorRef": {
                "apiVersion": "generators.external-secrets.io/v1alpha1",
                "kind": "Password",
                "name": GENERATOR,
            }}}],
        },
    }))
}

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).expect("a well-formed object")
}

/// The ESO controller as a process of its own.
pub struct EsoRun {
    /// controller-runtime takes the kubeconfig from `$KUBECONFIG` (ESO has no flag for it).
    kubeconfig: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    pub spawned_at: Instant,
}

impl EsoRun {
    /// Watching `namespace` only, with `concurrency` reconciles at once and a client rate limit
    /// high enough not to throttle it (the operator's client has none). The reconcilers this
    /// comparison does not use (stores, push secrets, cluster-wide resources) are off.
    pub fn start(kubeconfig: &Path, namespace: &str, concurrency: u16, log: PathBuf) -> EsoRun {
        let binary = eso_binary();
        assert!(
            binary.is_file(),
            "{} is missing: `make bench-peer` builds it",
            binary.display()
        );
        let metrics_port = entra_test_support::operator::free_port();
        let args = [
            format!("--namespace={namespace}"),
            format!("--concurrent={concurrency}"),
            format!("--metrics-addr=127.0.0.1:{metrics_port}"),
            "--client-qps=1000".to_owned(),
            "--client-burst=2000".to_owned(),
            "--loglevel=info".to_owned(),
            "--enable-leader-election=false".to_owned(),
            "--enable-cluster-store-reconciler=false".to_owned(),
            "--enable-cluster-external-secret-reconciler=false".to_owned(),
            "--enable-push-secret-reconciler=false".to_owned(),
            "--enable-cluster-push-secret-reconciler=false".to_owned(),
        ]
        .to_vec();
        let mut run = EsoRun {
            kubeconfig: kubeconfig.to_path_buf(),
            args,
            log,
            child: None,
            spawned_at: Instant::now(),
        };
        run.spawn();
        run
    }

    /// The flags, as results.md states them.
    pub fn flags(&self) -> String {
        self.args
            .iter()
            .filter(|arg| !arg.starts_with("--metrics-addr"))
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("ESO's log file");
        let child = Command::new(eso_binary())
            .args(&self.args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log)
            .spawn()
            .expect("ESO starts");
        self.spawned_at = Instant::now();
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn usage(&self) -> Option<Usage> {
        usage_of(self.pid()?)
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for EsoRun {
    fn drop(&mut self) {
        self.stop();
    }
}
