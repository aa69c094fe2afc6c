//! A real Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager,
//! each its own process from the multi-call binary that `make controlplane` builds.
//!
//! One control plane serves a whole test binary ([`ControlPlane::shared`]): starting one takes
//! seconds and a few hundred MiB, while tests isolate themselves in namespaces of their own. It is
//! stopped when the test binary exits, and its processes also exit on their own if the test binary
//! dies without cleaning up (they watch their parent).
//!
//! Workloads need more: [`ControlPlane::start_with_nodes`] also runs kube-scheduler, KWOK's fake
//! nodes and the workload controllers (see [`crate::node_simulation`]). The shared control plane
//! has none of these, so the other tests pay nothing for them.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::node_simulation::{NodeSimulation, WORKLOAD_CONTROLLERS};

/// The admin identity's bearer token; it authenticates as a member of `system:masters`.
const ADMIN_TOKEN: &str = "entra-operator-tests-admin-token";
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// What every control plane's kube-controller-manager runs.
const CORE_CONTROLLERS: &str = "garbage-collector-controller,namespace-controller,serviceaccount-token-controller,serviceaccount-controller,root-ca-certificate-publisher-controller,clusterrole-aggregation-controller";

pub struct ControlPlane {
    /// `https://127.0.0.1:<port>` of kube-apiserver.
    pub server: String,
    /// A kubeconfig for the admin identity.
    pub kubeconfig: PathBuf,
    /// The PEM key that signs service-account tokens.
    pub service_account_key: PathBuf,
    /// The API server's certificate (self-signed): the CA to trust it, as its service-account
    /// issuer too.
    pub ca_certificate: PathBuf,
    /// How long the control plane took to become ready.
    pub startup: Duration,
    binary: PathBuf,
    /// Each running component by name.
    processes: Mutex<Vec<(String, Child)>>,
    dir: Mutex<Option<TempDir>>,
}

static SHARED: OnceLock<ControlPlane> = OnceLock::new();
static SHARED_WITH_NODES: OnceLock<ControlPlane> = OnceLock::new();

impl ControlPlane {
    /// The control plane of this test binary, started on first use and stopped at exit.
    pub fn shared() -> &'static ControlPlane {
        SHARED.get_or_init(|| {
            let control_plane = ControlPlane::start()
                .unwrap_or_else(|error| panic!("the local control plane did not start: {error}"));
            stop_shared_at_exit();
            control_plane
        })
    }

    /// The control plane with fake nodes ([`ControlPlane::start_with_nodes`], two nodes) of this
    /// test binary, started on first use and stopped at exit. A test binary uses this one or
    /// [`ControlPlane::shared`], not both: started side by side in one process, the two were seen
    /// to stall the binary's tests (cause not found yet).
    pub fn shared_with_nodes() -> &'static ControlPlane {
        SHARED_WITH_NODES.get_or_init(|| {
            let control_plane = ControlPlane::start_with_nodes(2).unwrap_or_else(|error| {
                panic!("the local control plane with nodes did not start: {error}")
            });
            stop_shared_at_exit();
            control_plane
        })
    }

    /// Starts etcd, kube-apiserver and kube-controller-manager and waits until the API server is
    /// ready and the `default` namespace exists.
    pub fn start() -> Result<ControlPlane, String> {
        ControlPlane::start_with(None)
    }

    /// Starts a control plane whose workloads really roll: as [`ControlPlane::start`], plus the
    /// deployment, replicaset, statefulset and daemonset controllers, kube-scheduler, and KWOK
    /// with `nodes` fake nodes on which pods become Running and Ready (see
    /// [`crate::node_simulation`]). Returns once every node is Ready.
    pub fn start_with_nodes(nodes: usize) -> Result<ControlPlane, String> {
        ControlPlane::start_with(Some(NodeSimulation { nodes }))
    }

    fn start_with(simulation: Option<NodeSimulation>) -> Result<ControlPlane, String> {
        let started = Instant::now();
        let binary = binary_path()?;
        let dir = tempfile::Builder::new()
            .prefix("entra-operator-controlplane-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        let root = dir.path().to_path_buf();
        let mut control_plane = ControlPlane {
            server: String::new(),
            kubeconfig: root.join("admin.kubeconfig"),
            service_account_key: root.join("service-account.key"),
            ca_certificate: root.join("certs").join("apiserver.crt"),
            startup: Duration::ZERO,
            binary,
            processes: Mutex::new(Vec::new()),
            dir: Mutex::new(Some(dir)),
        };

        control_plane.run_to_completion(&[
            "keygen",
            control_plane.service_account_key.to_str().unwrap(),
        ])?;
        fs::write(
            root.join("tokens.csv"),
            format!("{ADMIN_TOKEN},admin,admin-uid,\"system:masters\"\n"),
        )
        .map_err(|e| format!("token file: {e}"))?;

        let [etcd_client, etcd_peer, secure] = free_ports::<3>()?;
        control_plane.spawn(
            "etcd",
            &[
                &format!("--data-dir={}", root.join("etcd").display()),
                &format!("--listen-client-url=http://127.0.0.1:{etcd_client}"),
                &format!("--listen-peer-url=http://127.0.0.1:{etcd_peer}"),
            ],
        )?;
        let cert_dir = root.join("certs");
        let key = control_plane.service_account_key.display().to_string();
        control_plane.spawn(
            "kube-apiserver",
            &[
                &format!("--etcd-servers=http://127.0.0.1:{etcd_client}"),
                "--bind-address=127.0.0.1",
                &format!("--secure-port={secure}"),
                &format!("--cert-dir={}", cert_dir.display()),
                &format!("--token-auth-file={}", root.join("tokens.csv").display()),
                "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.0.0.0/24",
                &format!("--service-account-issuer=https://127.0.0.1:{secure}/"),
                // Discovery names the keys' address on loopback, where a federated credential's
                // verifier (the Entra emulator) reaches it.
                &format!("--service-account-jwks-uri=https://127.0.0.1:{secure}/openid/v1/jwks"),
                &format!("--service-account-key-file={key}"),
                &format!("--service-account-signing-key-file={key}"),
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                "-v=0",
            ],
        )?;
        control_plane.server = format!("https://127.0.0.1:{secure}");
        let ca = wait_for_file(&cert_dir.join("apiserver.crt"), READY_TIMEOUT)?;
        control_plane.ca_certificate = ca.clone();
        write_kubeconfig(&control_plane.kubeconfig, &control_plane.server, &ca)?;
        control_plane.wait_until_ready(started)?;

        let controllers = match &simulation {
            None => CORE_CONTROLLERS.to_string(),
            Some(_) => format!("{CORE_CONTROLLERS},{WORKLOAD_CONTROLLERS}"),
        };
        control_plane.spawn(
            "kube-controller-manager",
            &[
                &format!("--kubeconfig={}", control_plane.kubeconfig.display()),
                "--leader-elect=false",
                &format!("--controllers={controllers}"),
                &format!("--service-account-private-key-file={key}"),
                &format!("--root-ca-file={}", ca.display()),
                // Each controller acts as its own ServiceAccount (the garbage collector as
                // system:serviceaccount:kube-system:generic-garbage-collector), as in a real
                // cluster, so admission policies meet the real identities, not the admin's.
                "--use-service-account-credentials=true",
                "--secure-port=0",
            ],
        )?;
        if let Some(simulation) = simulation {
            control_plane.start_node_simulation(&simulation)?;
        }
        control_plane.startup = started.elapsed();
        Ok(control_plane)
    }

    /// Runs the bundled kubectl against this control plane as the admin identity.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(&self.binary)
            .arg("kubectl")
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .output()
            .expect("kubectl runs")
    }

    /// Runs kubectl with `stdin` as its standard input.
    pub fn kubectl_with_input(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(&self.binary)
            .arg("kubectl")
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl starts");
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(stdin.as_bytes())
            .expect("kubectl reads its input");
        child.wait_with_output().expect("kubectl runs")
    }

    /// A client for the admin identity. Each test makes its own: a client is bound to the Tokio
    /// runtime of the test that created it.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .expect("the admin kubeconfig parses");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("the admin kubeconfig is usable");
        kube::Client::try_from(config).expect("a client from the admin kubeconfig")
    }

    /// Process ids of the running components, for memory measurements.
    pub fn pids(&self) -> Vec<u32> {
        self.processes
            .lock()
            .unwrap()
            .iter()
            .map(|(_, child)| child.id())
            .collect()
    }

    /// Stops every component and removes the data directory.
    pub fn stop(&self) {
        for (_, mut child) in self.processes.lock().unwrap().drain(..).rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = self.dir.lock().unwrap().take() {
            let _ = dir.close();
        }
    }

    pub(crate) fn spawn(&self, component: &str, args: &[&str]) -> Result<(), String> {
        let log = self.log_file(component)?;
        let child = Command::new(&self.binary)
            .arg(component)
            .args(args)
            .env("CONTROLPLANE_PARENT_PID", std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start {component}: {e}"))?;
        self.processes
            .lock()
            .unwrap()
            .push((component.to_string(), child));
        Ok(())
    }

    fn run_to_completion(&self, args: &[&str]) -> Result<(), String> {
        self.output_of(args).map(drop)
    }

    /// Runs the binary with `args` to completion and returns what it printed.
    pub(crate) fn output_of(&self, args: &[&str]) -> Result<Vec<u8>, String> {
        let output = Command::new(&self.binary)
            .args(args)
            .output()
            .map_err(|e| format!("{}: {e}", args[0]))?;
        if output.status.success() {
            Ok(output.stdout)
        } else {
            Err(format!(
                "{} failed: {}",
                args[0],
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    fn log_file(&self, component: &str) -> Result<fs::File, String> {
        let dir = self.dir.lock().unwrap();
        let path = dir
            .as_ref()
            .expect("running")
            .path()
            .join(format!("{component}.log"));
        fs::File::create(path).map_err(|e| format!("log file: {e}"))
    }

    /// The last lines a component logged, to explain a failure.
    pub fn log_tail(&self, component: &str) -> String {
        let dir = self.dir.lock().unwrap();
        let Some(dir) = dir.as_ref() else {
            return String::new();
        };
        let text =
            fs::read_to_string(dir.path().join(format!("{component}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn wait_until_ready(&self, started: Instant) -> Result<(), String> {
        loop {
            self.check_still_running()?;
            let readyz = self.kubectl(&["get", "--raw", "/readyz"]);
            if readyz.status.success()
                && self
                    .kubectl(&["get", "namespace", "default"])
                    .status
                    .success()
            {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(format!(
                    "kube-apiserver not ready after {READY_TIMEOUT:?}: {}\n{}",
                    String::from_utf8_lossy(&readyz.stderr),
                    self.log_tail("kube-apiserver")
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The directory holding this control plane's data, logs and configuration.
    pub(crate) fn data_dir(&self) -> PathBuf {
        let dir = self.dir.lock().unwrap();
        dir.as_ref().expect("running").path().to_path_buf()
    }

    pub(crate) fn check_still_running(&self) -> Result<(), String> {
        let mut processes = self.processes.lock().unwrap();
        for (component, child) in processes.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                let component = component.clone();
                drop(processes);
                return Err(format!(
                    "{component} exited with {status}:\n{}\netcd: {}\nkube-apiserver: {}",
                    self.log_tail(&component),
                    self.log_tail("etcd"),
                    self.log_tail("kube-apiserver")
                ));
            }
        }
        Ok(())
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The test harness never drops statics, so the shared control plane is stopped by an exit hook.
fn stop_shared_at_exit() {
    extern "C" fn stop_shared() {
        for shared in [&SHARED, &SHARED_WITH_NODES] {
            if let Some(control_plane) = shared.get() {
                control_plane.stop();
            }
        }
    }
    // SAFETY: registering a plain `extern "C" fn()` with the C runtime has no preconditions.
    unsafe {
        libc::atexit(stop_shared);
    }
}

fn binary_path() -> Result<PathBuf, String> {
    let path = std::env::var_os("CONTROLPLANE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/controlplane/controlplane")
        });
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: build it with `make controlplane` (make test does this)",
            path.display()
        ))
    }
}

/// Distinct free loopback ports. Each is released just before use, the usual small race.
fn free_ports<const N: usize>() -> Result<[u16; N], String> {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").map_err(|e| format!("free port: {e}")))
        .collect::<Result<_, _>>()?;
    let ports: Vec<u16> = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    Ok(ports.try_into().expect("N ports"))
}

fn wait_for_file(path: &Path, timeout: Duration) -> Result<PathBuf, String> {
    let started = Instant::now();
    while !path.is_file() {
        if started.elapsed() > timeout {
            return Err(format!("{} did not appear", path.display()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(path.to_path_buf())
}

fn write_kubeconfig(path: &Path, server: &str, ca: &Path) -> Result<(), String> {
    let kubeconfig = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: admin
  user:
    token: {ADMIN_TOKEN}
contexts:
- name: local
  context:
    cluster: local
    user: admin
    namespace: default
current-context: local
",
        ca = ca.display()
    );
    fs::write(path, kubeconfig).map_err(|e| format!("kubeconfig: {e}"))
}
