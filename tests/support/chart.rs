//! The Helm chart against the local control plane: helm itself (built by `make helm`), the chart's
//! ServiceAccount as a kubeconfig, and the operator started exactly as the chart's Deployment says.

use std::fs;
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::Value;

use super::ControlPlane;

pub const CHART_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../charts/entra-operator");

/// The helm binary: `$HELM_BIN` (the Makefile exports it) or where `make helm` puts it.
pub fn helm_binary() -> PathBuf {
    let path = std::env::var_os("HELM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::workspace_dir().join("target/controlplane/helm"));
    assert!(
        path.is_file(),
        "helm is missing at {}: build it with `make helm` (make test does this) or set HELM_BIN",
        path.display()
    );
    path
}

/// Runs helm with its config, cache and data directories under the test target directory, so
/// that the user's own repositories and plugins play no part.
pub fn helm(args: &[&str]) -> Output {
    let home = super::workspace_dir().join("target/tmp/helm-home");
    Command::new(helm_binary())
        .args(args)
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env_remove("KUBECONFIG")
        .output()
        .expect("helm runs")
}

/// Runs helm and returns its standard output; panics with its standard error when it fails.
pub fn helm_ok(args: &[&str]) -> String {
    let output = helm(args);
    assert!(
        output.status.success(),
        "helm {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("helm prints UTF-8")
}

/// A values file holding `values`, valid while the returned directory lives.
pub fn values_file(values: &Value) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a values directory");
    let path = dir.path().join("values.yaml");
    // JSON is YAML: no quoting surprises, unlike --set with commas and dots.
    fs::write(&path, serde_json::to_string_pretty(values).unwrap()).expect("values are written");
    (dir, path)
}

/// `helm template` of the chart as release `release` in `namespace` with `values`.
pub fn template(release: &str, namespace: &str, values: &Value) -> String {
    let (_dir, file) = values_file(values);
    helm_ok(&[
        "template",
        release,
        CHART_DIR,
        "--namespace",
        namespace,
        "--values",
        file.to_str().unwrap(),
    ])
}

/// `helm install` into the control plane; nothing waits for the pods (there is no kubelet).
/// The release leaves the CRDs alone unless `values` says otherwise: `install_crds` applies them
/// to the shared control plane, and one release owning them would refuse every other.
pub fn install(control_plane: &ControlPlane, release: &str, namespace: &str, values: &Value) {
    let mut values = values.clone();
    if values.get("crds").is_none() {
        values["crds"] = serde_json::json!({ "enabled": false });
    }
    let installed = helm_release(
        control_plane,
        &["install"],
        release,
        namespace,
        Path::new(CHART_DIR),
        &values,
    );
    assert!(
        installed.status.success(),
        "helm install {release} failed:\n{}",
        String::from_utf8_lossy(&installed.stderr)
    );
}

/// `helm <command> <release> <chart>` (an install or an upgrade) into the control plane with
/// `values`; nothing waits for the pods (there is no kubelet).
pub fn helm_release(
    control_plane: &ControlPlane,
    command: &[&str],
    release: &str,
    namespace: &str,
    chart: &Path,
    values: &Value,
) -> Output {
    let (_dir, file) = values_file(values);
    let mut args = command.to_vec();
    args.extend([
        release,
        chart.to_str().unwrap(),
        "--kubeconfig",
        control_plane.kubeconfig.to_str().unwrap(),
        "--namespace",
        namespace,
        "--values",
        file.to_str().unwrap(),
        "--wait=hookOnly",
    ]);
    helm(&args)
}

pub fn uninstall(control_plane: &ControlPlane, release: &str, namespace: &str) {
    helm_ok(&[
        "uninstall",
        release,
        "--kubeconfig",
        control_plane.kubeconfig.to_str().unwrap(),
        "--namespace",
        namespace,
    ]);
}

/// The objects of a multi-document YAML stream, empty documents left out.
pub fn documents(yaml: &str) -> Vec<Value> {
    yaml_serde::Deserializer::from_str(yaml)
        .map(|document| {
            serde::Deserialize::deserialize(document).expect("the manifest is valid YAML")
        })
        .filter(|object: &Value| !object.is_null())
        .collect()
}

/// The one object of `kind` in `objects`.
pub fn only<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let mut matching = objects.iter().filter(|o| o["kind"] == kind);
    let object = matching
        .next()
        .unwrap_or_else(|| panic!("no {kind} rendered"));
    assert!(matching.next().is_none(), "more than one {kind} rendered");
    object
}

/// A token of ServiceAccount `name` in `namespace` from the TokenRequest API, valid for an hour.
pub fn service_account_token(control_plane: &ControlPlane, namespace: &str, name: &str) -> String {
    let token = control_plane.kubectl(&[
        "create",
        "token",
        name,
        "--namespace",
        namespace,
        "--duration=1h",
    ]);
    assert!(
        token.status.success(),
        "a token for {namespace}/{name}: {}",
        String::from_utf8_lossy(&token.stderr)
    );
    String::from_utf8(token.stdout).unwrap().trim().to_owned()
}

/// A kubeconfig that authenticates as ServiceAccount `name` in `namespace` with a token from the
/// TokenRequest API, against the same server and CA as the admin kubeconfig.
pub fn service_account_kubeconfig(
    control_plane: &ControlPlane,
    namespace: &str,
    name: &str,
    path: &Path,
) {
    let token = service_account_token(control_plane, namespace, name);
    let admin = kube::config::Kubeconfig::read_from(&control_plane.kubeconfig)
        .expect("the admin kubeconfig parses");
    let cluster = admin.clusters[0].cluster.as_ref().expect("a cluster");
    let ca = cluster
        .certificate_authority
        .as_deref()
        .expect("the admin kubeconfig names its CA file");
    let kubeconfig = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "local", "cluster": {
            "server": control_plane.server,
            "certificate-authority": ca,
        }}],
        "users": [{ "name": name, "user": { "token": token } }],
        "contexts": [{ "name": "local", "context": {
            "cluster": "local", "user": name, "namespace": namespace,
        }}],
        "current-context": "local",
    });
    fs::write(path, serde_json::to_string_pretty(&kubeconfig).unwrap())
        .expect("the kubeconfig is written");
}

/// The Deployment of `release` (installed in `namespace`), with a kubeconfig for the
/// ServiceAccount its pod runs as written to `kubeconfig`: what [`OperatorPod::start`] needs to run
/// the operator exactly as the chart deploys it.
pub async fn chart_operator(
    control_plane: &ControlPlane,
    release: &str,
    namespace: &str,
    kubeconfig: &Path,
) -> Deployment {
    let admin = control_plane.client().await;
    let deployment = kube::Api::<Deployment>::namespaced(admin, namespace)
        .get(&format!("{release}-entra-operator"))
        .await
        .expect("the chart's Deployment");
    let service_account = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .and_then(|pod| pod.service_account_name.clone())
        .expect("the pod names its ServiceAccount");
    service_account_kubeconfig(control_plane, namespace, &service_account, kubeconfig);
    deployment
}

/// A release of the chart installed in a namespace of its own (the release is named after it),
/// with its operator running as the chart deploys it, on the chart's ServiceAccount.
pub struct ChartRelease {
    pub namespace: String,
    pub deployment: Deployment,
    /// The operator's ServiceAccount, as a kubeconfig.
    pub kubeconfig: PathBuf,
    pub operator: OperatorPod,
    _dir: tempfile::TempDir,
}

impl ChartRelease {
    /// Installs the chart with `values` into a new namespace named after `prefix`, and starts
    /// its operator as pod `pod_name`. The metrics and probe ports are free loopback ports unless
    /// `values` names them (pods share the test machine's network).
    pub async fn start(
        control_plane: &ControlPlane,
        prefix: &str,
        values: &Value,
        pod_name: &str,
    ) -> ChartRelease {
        let admin = control_plane.client().await;
        let namespace = super::cluster::namespace(&admin, prefix).await;
        let mut values = values.clone();
        for section in ["metrics", "health"] {
            if values[section]["port"].is_null() {
                values[section]["port"] = free_port().into();
            }
        }
        install(control_plane, &namespace, &namespace, &values);
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("operator.kubeconfig");
        let deployment = chart_operator(control_plane, &namespace, &namespace, &kubeconfig).await;
        let operator = OperatorPod::start(&deployment, pod_name, &kubeconfig);
        ChartRelease {
            namespace,
            deployment,
            kubeconfig,
            operator,
            _dir: dir,
        }
    }

    /// The loopback port of the operator's container port `name` (`metrics`, `health`).
    pub fn port(&self, name: &str) -> u16 {
        container_port(&self.deployment, name)
    }

    /// Stops the operator, as a crash would.
    pub fn stop_operator(&mut self) {
        self.operator.kill();
    }

    /// Starts the operator again, as pod `pod_name`.
    pub fn start_operator(&mut self, pod_name: &str) {
        self.operator = OperatorPod::start(&self.deployment, pod_name, &self.kubeconfig);
    }
}

/// ServiceAccount `name` of `namespace` with the built-in `edit` role there (what a lease user
/// has), plus `extra` (more YAML documents applied with it); its kubeconfig is written to
/// `kubeconfig`. Returns a client acting as it.
pub async fn edit_user(
    control_plane: &ControlPlane,
    namespace: &str,
    name: &str,
    extra: &str,
    kubeconfig: &Path,
) -> kube::Client {
    namespace_user(control_plane, namespace, name, "edit", extra, kubeconfig).await
}

/// ServiceAccount `name` of `namespace` bound there to ClusterRole `role` (`edit`, `admin`),
/// plus `extra` (more YAML documents applied with it); its kubeconfig is written to
/// `kubeconfig`. Returns a client acting as it.
pub async fn namespace_user(
    control_plane: &ControlPlane,
    namespace: &str,
    name: &str,
    role: &str,
    extra: &str,
    kubeconfig: &Path,
) -> kube::Client {
    let rbac = format!(
        r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{ name: {name}, namespace: {namespace} }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: {name}-{role}, namespace: {namespace} }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role} }}
subjects: [{{ kind: ServiceAccount, name: {name}, namespace: {namespace} }}]
{extra}"#
    );
    let applied = control_plane.kubectl_with_input(&["apply", "-f", "-"], &rbac);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    service_account_kubeconfig(control_plane, namespace, name, kubeconfig);
    client_for(kubeconfig).await
}

/// A client for the identity of `kubeconfig`.
pub async fn client_for(kubeconfig: &Path) -> kube::Client {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(kubeconfig).expect("the kubeconfig parses");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("the kubeconfig is usable");
    kube::Client::try_from(config).expect("a client")
}

/// Container port `name` of the Deployment's operator container.
pub fn container_port(deployment: &Deployment, name: &str) -> u16 {
    deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .and_then(|pod| pod.containers.first())
        .and_then(|container| container.ports.as_ref())
        .and_then(|ports| ports.iter().find(|port| port.name.as_deref() == Some(name)))
        .map(|port| port.container_port as u16)
        .unwrap_or_else(|| panic!("the operator container has a port named {name}"))
}

/// A free loopback port, released just before use.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// The operator container of a Deployment, run as a local process: the image's entrypoint (the
/// operator binary) with the container's args and env, the pod's downward-API fields filled in,
/// and the in-cluster identity replaced by a kubeconfig for the same ServiceAccount.
pub struct OperatorPod {
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl OperatorPod {
    pub fn start(deployment: &Deployment, pod_name: &str, kubeconfig: &Path) -> OperatorPod {
        let namespace = deployment
            .metadata
            .namespace
            .as_deref()
            .expect("namespaced");
        let pod = deployment
            .spec
            .as_ref()
            .and_then(|spec| spec.template.spec.as_ref())
            .expect("a pod template");
        assert_eq!(pod.containers.len(), 1, "one container");
        let container = &pod.containers[0];
        assert!(
            container.command.is_none(),
            "the image's ENTRYPOINT (the operator binary) runs"
        );
        let mut command = Command::new(super::operator::operator_binary());
        command.args(container.args.iter().flatten());
        // A container starts with only what its spec sets.
        command.env_clear();
        for var in container.env.iter().flatten() {
            let value = match (&var.value, &var.value_from) {
                (Some(value), None) => value.clone(),
                (None, Some(source)) => {
                    let field = &source.field_ref.as_ref().expect("a fieldRef").field_path;
                    match field.as_str() {
                        "metadata.name" => pod_name.to_owned(),
                        "metadata.namespace" => namespace.to_owned(),
                        other => panic!("unexpected fieldRef {other}"),
                    }
                }
                other => panic!("unexpected env source for {}: {other:?}", var.name),
            };
            command.env(&var.name, value);
        }
        command.env("KUBECONFIG", kubeconfig);

        let dir = tempfile::tempdir().expect("a log directory");
        let log = dir.path().join("operator.log");
        let file = fs::File::create(&log).expect("the log file opens");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("the operator starts");
        OperatorPod {
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    /// Everything the operator logged so far.
    pub fn logs(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the log, to explain a failure.
    pub fn log_tail(&self) -> String {
        let logs = self.logs();
        let lines: Vec<&str> = logs.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Polls `probe` until it yields a value; fails with `what` and the log tail after 60 s.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        super::cluster::poll(what, Duration::from_secs(60), probe, || self.log_tail()).await
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OperatorPod {
    fn drop(&mut self) {
        self.kill();
    }
}
