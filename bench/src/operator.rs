//! The operator binary as its own process, the way the harness runs it: started with the flags of
//! `entra-operator run`, killed and restarted, probed on /readyz and /metrics, and measured from
//! /proc (peak RSS, CPU seconds).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::lab::OperatorProcess;
use entra_test_support::operator::free_port;

pub struct OperatorRun {
    binary: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    /// /metrics, plain HTTP without authentication (`--metrics-secure=false`, local runs only).
    pub metrics_port: u16,
    /// /livez and /readyz.
    pub health_port: u16,
    /// When the current process was spawned.
    pub spawned_at: Instant,
}

/// Memory and CPU of a process, from /proc.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Usage {
    /// Peak resident set size (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// Current resident set size (VmRSS), MiB.
    pub rss_mib: f64,
    /// User plus system CPU time, seconds.
    pub cpu_seconds: f64,
}

/// Flags of one operator process.
pub struct OperatorFlags<'a> {
    pub kubeconfig: &'a Path,
    pub graph_url: &'a str,
    /// Watch only this namespace (all when `None`).
    pub namespace: Option<&'a str>,
    pub operator_namespace: &'a str,
    pub graph_retry_seconds: u64,
    pub concurrency: u16,
    pub log_level: &'a str,
    /// More flags, after the ones above.
    pub extra_args: &'a [String],
}

impl OperatorRun {
    /// The operator binary: `$OPERATOR_BIN`, or `entra-operator` beside this executable (the
    /// Makefile builds both into the same target directory).
    pub fn binary() -> PathBuf {
        entra_test_support::operator::operator_binary()
    }

    pub fn start(flags: &OperatorFlags<'_>, log: PathBuf) -> OperatorRun {
        let binary = Self::binary();
        assert!(
            binary.is_file(),
            "{} is missing: build it (make bench and make chaos do)",
            binary.display()
        );
        let metrics_port = free_port();
        let health_port = free_port();
        let mut args = vec![
            "run".to_owned(),
            format!("--kubeconfig={}", flags.kubeconfig.display()),
            format!("--operator-namespace={}", flags.operator_namespace),
            format!("--authority-host={}", flags.graph_url),
            format!("--graph-endpoint={}", flags.graph_url),
            format!("--metrics-bind-address=127.0.0.1:{metrics_port}"),
            "--metrics-secure=false".to_owned(),
            format!("--health-probe-bind-address=127.0.0.1:{health_port}"),
            format!("--graph-retry-seconds={}", flags.graph_retry_seconds),
            format!("--concurrency={}", flags.concurrency),
            format!("--log-level={}", flags.log_level),
        ];
        if let Some(namespace) = flags.namespace {
            args.push(format!("--namespace={namespace}"));
        }
        args.extend(flags.extra_args.iter().cloned());
        let mut run = OperatorRun {
            binary,
            args,
            log,
            child: None,
            metrics_port,
            health_port,
            spawned_at: Instant::now(),
        };
        run.spawn();
        run
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the operator log opens");
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log handle"))
            .stderr(log)
            .spawn()
            .expect("the operator starts");
        self.spawned_at = Instant::now();
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// SIGTERM, as Kubernetes stops a pod, then waits for the exit.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) with the pid of our own child and a valid signal.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let _ = child.wait();
        }
    }

    /// Starts the operator and waits (up to a minute) until it is ready.
    pub async fn start_ready(flags: &OperatorFlags<'_>, log: PathBuf) -> OperatorRun {
        let operator = Self::start(flags, log);
        operator
            .wait_ready(Duration::from_secs(60))
            .await
            .expect("the operator becomes ready");
        operator
    }

    /// Waits until /readyz answers 200; the time since the process was spawned.
    pub async fn wait_ready(&self, timeout: Duration) -> Option<Duration> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if http_get(self.health_port, "/readyz")
                .await
                .is_some_and(|(status, _)| status == 200)
            {
                return Some(self.spawned_at.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// The operator's own Prometheus metrics.
    pub async fn scrape(&self) -> Option<String> {
        http_get(self.metrics_port, "/metrics")
            .await
            .filter(|(status, _)| *status == 200)
            .map(|(_, body)| body)
    }

    pub fn usage(&self) -> Option<Usage> {
        usage_of(self.pid()?)
    }
}

impl OperatorProcess for OperatorRun {
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }
}

impl Drop for OperatorRun {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Peak and current RSS from /proc/<pid>/status, CPU time from /proc/<pid>/stat.
pub fn usage_of(pid: u32) -> Option<Usage> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse::<f64>().ok()
    };
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and
    // 13th of them (fields 14 and 15 of the whole line).
    let after_name = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(Usage {
        peak_rss_mib: kib("VmHWM:")? / 1024.0,
        rss_mib: kib("VmRSS:")? / 1024.0,
        cpu_seconds: ticks / per_second,
    })
}

/// A plain HTTP/1.0 GET on loopback: the status and the body.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8_lossy(&response).into_owned();
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
        Some((status, body))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
}

/// A bench phase's own world: `namespace` for its objects, `operator_namespace` for the claims,
/// both created if absent, and an operator watching `namespace` through `emulator`, started
/// and ready (`extra_args` after the usual flags).
pub async fn start_phase_operator(
    control_plane: &crate::control_plane::ControlPlane,
    emulator: &entra_emulator::Emulator,
    (namespace, operator_namespace): (&str, &str),
    graph_retry_seconds: u64,
    extra_args: &[String],
    log: PathBuf,
) -> (crate::lab::Lab, OperatorRun) {
    use crate::lab::Lab;
    let client = control_plane.client().await;
    Lab::ensure_namespace(&client, namespace).await;
    Lab::ensure_namespace(&client, operator_namespace).await;
    crate::setup::install_finalizer_policy(control_plane, operator_namespace, &[namespace]).await;
    let lab = Lab {
        client,
        namespace: namespace.into(),
        claims_namespace: operator_namespace.into(),
    };
    let graph_url = emulator.base_url();
    let flags = OperatorFlags {
        kubeconfig: &control_plane.kubeconfig,
        graph_url: &graph_url,
        namespace: Some(namespace),
        operator_namespace,
        graph_retry_seconds,
        concurrency: 16,
        log_level: "info",
        extra_args,
    };
    let operator = OperatorRun::start_ready(&flags, log).await;
    (lab, operator)
}
