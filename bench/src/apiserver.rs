//! Restarts the kube-apiserver of a running local control plane (tests/support/control_plane.rs)
//! from outside it: the support code starts its components but offers no restart, so the process
//! is found among its pids, killed, and started again with exactly the command line, environment
//! and log file it had (read from /proc). Its certificates and etcd stay, so clients keep working.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A kube-apiserver started by [`restart_apiserver`]; killed when dropped.
pub struct RestartedApiServer {
    child: Child,
    log: PathBuf,
}

impl RestartedApiServer {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log both the original and the restarted process wrote.
    pub fn log(&self) -> &std::path::Path {
        &self.log
    }
}

impl Drop for RestartedApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pid of the kube-apiserver among `pids` (those of the control plane, or a restarted one).
pub fn find_apiserver(pids: &[u32]) -> Option<u32> {
    pids.iter().copied().find(|pid| {
        fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).nth(1) == Some(b"kube-apiserver"))
    })
}

/// SIGKILLs the kube-apiserver `pid`, waits `down`, and starts it again as it was.
pub fn restart_apiserver(pid: u32, down: Duration) -> Result<RestartedApiServer, String> {
    let read = |what: &str| {
        fs::read(format!("/proc/{pid}/{what}")).map_err(|e| format!("/proc/{pid}/{what}: {e}"))
    };
    let split = |bytes: Vec<u8>| -> Vec<std::ffi::OsString> {
        bytes
            .split(|b| *b == 0)
            .filter(|part| !part.is_empty())
            .map(|part| std::ffi::OsStr::from_bytes(part).to_owned())
            .collect()
    };
    let cmdline = split(read("cmdline")?);
    let environ = split(read("environ")?);
    let log: PathBuf =
        fs::read_link(format!("/proc/{pid}/fd/1")).map_err(|e| format!("log of {pid}: {e}"))?;
    let binary =
        fs::read_link(format!("/proc/{pid}/exe")).map_err(|e| format!("exe of {pid}: {e}"))?;
    // SAFETY: kill(2) with a pid of the control plane this process started, and SIGKILL.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    // Its parent (the support code) reaps it; wait until the port is free again.
    let started = std::time::Instant::now();
    while is_alive(pid) && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(down);
    let log_file = fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let mut command = Command::new(binary);
    command.args(&cmdline[1..]).env_clear();
    for variable in &environ {
        let bytes = variable.as_bytes();
        if let Some(equals) = bytes.iter().position(|b| *b == b'=') {
            command.env(
                std::ffi::OsStr::from_bytes(&bytes[..equals]),
                std::ffi::OsStr::from_bytes(&bytes[equals + 1..]),
            );
        }
    }
    // The control plane's processes exit when their parent does: this process is the parent now.
    command.env("CONTROLPLANE_PARENT_PID", std::process::id().to_string());
    let child = command
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(log_file)
        .spawn()
        .map_err(|e| format!("restart kube-apiserver: {e}"))?;
    Ok(RestartedApiServer { child, log })
}

/// Whether `pid` still runs (a zombie, killed but not reaped, does not).
fn is_alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
    })
}
