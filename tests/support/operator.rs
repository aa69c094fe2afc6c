//! The operator as it runs in production: its own process, talking to the real API server and to
//! the Entra emulator, with its logs kept for inspection.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::ControlPlane;

pub struct Operator {
    child: Option<Child>,
    log: PathBuf,
    args: Vec<String>,
    /// Port of the operator's /metrics: plain HTTP without authentication
    /// (`--metrics-secure=false`, for local runs; the chart never sets it, and
    /// `tests/metrics_auth.rs` checks the secured endpoint the chart deploys).
    pub metrics_port: u16,
    /// Port of /livez and /readyz.
    pub health_port: u16,
    _dir: tempfile::TempDir,
}

impl Operator {
    /// Starts the operator against `control_plane`, watching `namespace`, with Graph and the
    /// authority at `graph_url` and its claims in `operator_namespace`.
    pub fn start(
        control_plane: &ControlPlane,
        graph_url: &str,
        namespace: &str,
        operator_namespace: &str,
    ) -> Operator {
        Self::start_with(
            control_plane,
            graph_url,
            namespace,
            operator_namespace,
            "operator",
            Vec::new(),
        )
    }

    /// [`Operator::start`] with an instance name and extra flags. An extra `--flag=value` replaces
    /// the default of the same flag (`--kubeconfig`, `--graph-retry-seconds`, ...).
    pub fn start_with(
        control_plane: &ControlPlane,
        graph_url: &str,
        namespace: &str,
        operator_namespace: &str,
        instance: &str,
        extra: Vec<String>,
    ) -> Operator {
        let dir = tempfile::tempdir().expect("a log directory");
        let metrics_port = free_port();
        let health_port = free_port();
        let overridden: Vec<String> = extra
            .iter()
            .filter(|arg| arg.starts_with("--"))
            .filter_map(|arg| arg.split('=').next().map(str::to_owned))
            .collect();
        let args: Vec<String> = [
            "run".to_owned(),
            format!("--kubeconfig={}", control_plane.kubeconfig.display()),
            format!("--namespace={namespace}"),
            format!("--operator-namespace={operator_namespace}"),
            format!("--authority-host={graph_url}"),
            format!("--graph-endpoint={graph_url}"),
            "--graph-retry-seconds=5".to_owned(),
            "--log-level=entra_operator=debug,info".to_owned(),
            format!("--metrics-bind-address=127.0.0.1:{metrics_port}"),
            "--metrics-secure=false".to_owned(),
            format!("--health-probe-bind-address=127.0.0.1:{health_port}"),
            format!("--instance={instance}"),
        ]
        .into_iter()
        .filter(|default| {
            let flag = default.split('=').next().unwrap_or_default();
            !overridden.iter().any(|arg| arg == flag)
        })
        .chain(extra)
        .collect();
        let mut operator = Operator {
            child: None,
            log: dir.path().join("operator.log"),
            args,
            metrics_port,
            health_port,
            _dir: dir,
        };
        operator.spawn();
        operator
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the log file opens");
        let child = Command::new(operator_binary())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the operator starts");
        self.child = Some(child);
    }

    /// SIGKILL, as a crash or an evicted pod would end it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, as Kubernetes stops a pod, and waits for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill(2) with a pid we own and a valid signal number.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        child.wait().expect("the operator exits")
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Everything the operator logged so far, across restarts.
    pub fn logs(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit status once the process has ended (without waiting); `None` while it runs.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// The process id, while it was started and not yet reaped by [`Operator::kill`].
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }
}

/// The operator binary: `$OPERATOR_BIN`, or `entra-operator` in the target directory of the
/// running executable (a test in `target/<profile>/deps`, or the bench beside it), where cargo
/// builds it for the integration tests and the Makefile for the bench.
pub fn operator_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("OPERATOR_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the running executable's path");
    let mut dir = exe.parent().expect("a target directory").to_path_buf();
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir.pop();
    }
    dir.join("entra-operator")
}

/// A free loopback port (released just before the operator binds it, the usual small race).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}
