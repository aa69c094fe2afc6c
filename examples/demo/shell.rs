//! The tour's voice: headings, notes, and kubectl commands echoed with their real output, as in
//! a terminal session.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::control_plane::ControlPlane;

pub fn heading(title: &str) {
    println!("\n== {title}");
}

pub fn note(text: &str) {
    println!("   {text}");
}

/// The bundled kubectl against the demo's control plane; the kubeconfig flag is left out of the
/// echoed commands.
pub struct Kubectl {
    pub control_plane: &'static ControlPlane,
}

impl Kubectl {
    /// Echoes and runs a command, prints its output and fails if kubectl does.
    pub fn show(&self, args: &[&str]) -> Result<String, String> {
        echo(args, None);
        let output = self.control_plane.kubectl(args);
        print_output(&output);
        succeeded(args, output)
    }

    /// Like [`Kubectl::show`], with `manifest` on standard input (`-f -`), echoed as a heredoc.
    pub fn show_with_input(&self, args: &[&str], manifest: &str) -> Result<String, String> {
        echo(args, Some(manifest));
        let output = self.control_plane.kubectl_with_input(args, manifest);
        print_output(&output);
        succeeded(args, output)
    }

    /// Echoes and runs a command that is expected to fail (asking for something that is gone).
    pub fn show_failing(&self, args: &[&str]) -> Result<(), String> {
        echo(args, None);
        let output = self.control_plane.kubectl(args);
        print_output(&output);
        if output.status.success() {
            Err(format!("`kubectl {}` was expected to fail", args.join(" ")))
        } else {
            Ok(())
        }
    }

    /// Starts a command in the background, collecting its output for [`Watch::stop`].
    pub fn watch(&self, args: &[&str]) -> Result<Watch, String> {
        let mut child = Command::new(controlplane_binary())
            .arg("kubectl")
            .arg(format!(
                "--kubeconfig={}",
                self.control_plane.kubeconfig.display()
            ))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("kubectl {}: {e}", args.join(" ")))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let seen = Arc::new(Mutex::new(String::new()));
        let reader = {
            let seen = seen.clone();
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let mut seen = seen.lock().unwrap();
                    seen.push_str(&line);
                    seen.push('\n');
                }
            })
        };
        Ok(Watch {
            args: args.iter().map(|arg| arg.to_string()).collect(),
            child,
            seen,
            reader,
        })
    }

    /// Echoes and runs `kubectl entra ...`: kubectl itself finds the plugin on the PATH, where
    /// the demo puts the `kubectl-entra` it was built with.
    pub fn entra(&self, args: &[&str]) -> Result<String, String> {
        let mut command = vec!["entra"];
        command.extend_from_slice(args);
        echo(&command, None);
        let plugin = crate::stack::built_binary("kubectl-entra")?;
        let plugin_dir = plugin.parent().expect("a file has a directory");
        let path = std::env::join_paths(std::iter::once(plugin_dir.to_path_buf()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .map_err(|e| format!("PATH: {e}"))?;
        let output = Command::new(controlplane_binary())
            .arg("kubectl")
            .args(&command)
            .env("KUBECONFIG", &self.control_plane.kubeconfig)
            .env("PATH", path)
            .output()
            .map_err(|e| format!("kubectl entra: {e}"))?;
        // The plugin's progress notes (stderr) come before its result.
        print!("{}", String::from_utf8_lossy(&output.stderr));
        print!("{}", String::from_utf8_lossy(&output.stdout));
        succeeded(&command, output)
    }

    /// Runs a command without echoing it; its trimmed standard output.
    pub fn quiet(&self, args: &[&str]) -> Result<String, String> {
        let output = self.control_plane.kubectl(args);
        succeeded(args, output).map(|stdout| stdout.trim().to_owned())
    }
}

fn echo(args: &[&str], heredoc: Option<&str>) {
    let command: Vec<String> = args.iter().map(|arg| quote(arg)).collect();
    match heredoc {
        Some(text) => println!("$ kubectl {} <<EOF\n{}EOF", command.join(" "), text),
        None => println!("$ kubectl {}", command.join(" ")),
    }
}

fn print_output(output: &Output) {
    print!("{}", String::from_utf8_lossy(&output.stdout));
    print!("{}", String::from_utf8_lossy(&output.stderr));
}

fn succeeded(args: &[&str], output: Output) -> Result<String, String> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`kubectl {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Single-quotes an argument for a POSIX shell when it needs it.
fn quote(arg: &str) -> String {
    let plain = arg
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain && !arg.is_empty() {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// A `kubectl ... --watch` running in the background until [`Watch::stop`].
pub struct Watch {
    args: Vec<String>,
    child: Child,
    seen: Arc<Mutex<String>>,
    reader: thread::JoinHandle<()>,
}

impl Watch {
    /// Stops the watch once it has printed `last` (or after two seconds) and prints what it saw,
    /// as if it had been interrupted with Ctrl-C.
    pub fn stop(mut self, last: &str) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.seen.lock().unwrap().contains(last) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.reader.join();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        echo(&args, None);
        print!("{}", self.seen.lock().unwrap());
        println!("^C");
    }
}

/// The multi-call binary that `ControlPlane` runs, found the same way.
fn controlplane_binary() -> PathBuf {
    std::env::var_os("CONTROLPLANE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/controlplane/controlplane")
        })
}
