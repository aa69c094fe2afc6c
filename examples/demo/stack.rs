//! What the demo runs: the local control plane, the Entra emulator (in this process) and the
//! operator (its own process, logging to `target/demo/operator.log`), and how they all stop, also
//! on Ctrl-C.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use entra_emulator::{Config, Emulator};

use crate::control_plane::ControlPlane;

/// The sample tenant the emulator serves; `examples/dynamic-secret.yaml` points at it.
pub const TENANT_FILE: &str = "examples/tenant.yaml";
/// Where the operator records which lease holds which user.
pub const OPERATOR_NAMESPACE: &str = "entra-operator";

/// Static so that the Ctrl-C handler can stop them too.
static CONTROL_PLANE: OnceLock<ControlPlane> = OnceLock::new();
static OPERATOR_PID: AtomicU32 = AtomicU32::new(0);

pub struct Stack {
    runtime: tokio::runtime::Runtime,
    emulator: Option<Emulator>,
    operator: Option<Child>,
    pub operator_log: PathBuf,
}

impl Stack {
    /// A runtime for the emulator's server (the tour itself runs on the main thread) and a Ctrl-C
    /// handler that stops everything started so far.
    pub fn new() -> Result<Stack, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("a Tokio runtime: {e}"))?;
        runtime.spawn(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ninterrupted: stopping the operator and the control plane");
                stop_operator_now();
                if let Some(control_plane) = CONTROL_PLANE.get() {
                    control_plane.stop();
                }
                std::process::exit(130);
            }
        });
        Ok(Stack {
            runtime,
            emulator: None,
            operator: None,
            operator_log: target_dir()?.join("demo/operator.log"),
        })
    }

    pub fn start_control_plane(&self) -> Result<&'static ControlPlane, String> {
        // One fake node (KWOK) runs the continuous lease's Deployment.
        let control_plane = ControlPlane::start_with_nodes(1)?;
        Ok(CONTROL_PLANE.get_or_init(|| control_plane))
    }

    pub fn control_plane(&self) -> &'static ControlPlane {
        CONTROL_PLANE.get().expect("the control plane was started")
    }

    pub fn start_emulator(&mut self) -> Result<&Emulator, String> {
        let mut config =
            Config::from_yaml_file(TENANT_FILE).map_err(|e| format!("{TENANT_FILE}: {e}"))?;
        // Entra fetches a federated issuer's keys over TLS: the emulator trusts the control
        // plane's certificate, whose API server is the service-account issuer.
        let ca = &self.control_plane().ca_certificate;
        config.trusted_issuer_cas =
            vec![fs::read_to_string(ca).map_err(|e| format!("{}: {e}", ca.display()))?];
        let emulator = self
            .runtime
            .block_on(Emulator::start(config))
            .map_err(|e| format!("the Entra emulator: {e}"))?;
        Ok(self.emulator.insert(emulator))
    }

    pub fn emulator(&self) -> &Emulator {
        self.emulator.as_ref().expect("the emulator was started")
    }

    /// Starts `entra-operator run` against the control plane and the emulator; returns its
    /// command line as a user would type it.
    pub fn start_operator(&mut self) -> Result<String, String> {
        let binary = built_binary("entra-operator")?;
        let emulator_url = self.emulator().base_url();
        let args = [
            "run".to_owned(),
            format!("--kubeconfig={}", self.control_plane().kubeconfig.display()),
            format!("--operator-namespace={OPERATOR_NAMESPACE}"),
            format!("--authority-host={emulator_url}"),
            format!("--graph-endpoint={emulator_url}"),
            "--log-level=entra_operator=debug,info".to_owned(),
            "--metrics-bind-address=127.0.0.1:0".to_owned(),
        ];
        fs::create_dir_all(self.operator_log.parent().expect("a log directory"))
            .map_err(|e| format!("{}: {e}", self.operator_log.display()))?;
        let log = fs::File::create(&self.operator_log)
            .map_err(|e| format!("{}: {e}", self.operator_log.display()))?;
        let child = Command::new(&binary)
            .args(&args)
            // The log is a file, not a terminal: no colour codes in it.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start {}: {e}", binary.display()))?;
        OPERATOR_PID.store(child.id(), Ordering::SeqCst);
        self.operator = Some(child);
        Ok(format!(
            "{} {}",
            relative(&binary).display(),
            args.join(" ")
        ))
    }

    /// An error if the operator process has exited: a wait for its work would only time out.
    pub fn check_operator(&mut self) -> Result<(), String> {
        match self.operator.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Err(format!("the operator exited with {status}")),
            _ => Ok(()),
        }
    }

    /// The last lines the operator logged, to explain a failure.
    pub fn operator_log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.operator_log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stops the operator (SIGTERM, as Kubernetes would), the emulator and the control plane, and
    /// removes the control plane's data directory. Returns how the operator exited.
    pub fn stop(&mut self) -> Option<String> {
        let operator = self.operator.take().map(stop_gracefully);
        OPERATOR_PID.store(0, Ordering::SeqCst);
        if let Some(emulator) = self.emulator.take() {
            self.runtime.block_on(emulator.shutdown());
        }
        if let Some(control_plane) = CONTROL_PLANE.get() {
            control_plane.stop();
        }
        operator
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGTERM, then SIGKILL if the operator has not exited within ten seconds.
fn stop_gracefully(mut child: Child) -> String {
    // SAFETY: kill(2) with the pid of a child we have not yet reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return format!("exited with {status} after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    "killed: it did not exit within 10s of SIGTERM".to_owned()
}

fn stop_operator_now() {
    let pid = OPERATOR_PID.swap(0, Ordering::SeqCst);
    if pid != 0 {
        // SAFETY: kill(2) of our own child, which nothing else reaps while we exit.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

/// The cargo target directory this example was built into (`target/debug/examples/demo`).
fn target_dir() -> Result<PathBuf, String> {
    let profile = profile_dir()?;
    profile.parent().map(Path::to_path_buf).ok_or_else(|| {
        format!(
            "{} is not under a cargo target directory",
            profile.display()
        )
    })
}

/// The cargo profile directory this example was built into (`target/debug`), where the operator
/// and the `kubectl-entra` plugin are built beside it.
pub fn profile_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("the demo's own path: {e}"))?;
    exe.ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .ok_or_else(|| "the demo is not in a cargo target directory".to_owned())
}

/// A binary of the same profile as this example.
pub fn built_binary(name: &str) -> Result<PathBuf, String> {
    let binary = profile_dir()?.join(name);
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "{} is missing: build it with `cargo build` (make demo does this)",
            binary.display()
        ))
    }
}

/// `path` relative to the working directory (the workspace root) when it is below it.
pub fn relative(path: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
}
