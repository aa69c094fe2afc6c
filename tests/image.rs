//! The image builds: its build context is assembled exactly as `.dockerignore` allows, the
//! Dockerfile's build stage is laid out from it (`WORKDIR` and `COPY`), and the Dockerfile's own
//! cargo command runs there, offline, from the local cargo registry cache. No Docker engine and no
//! network: what `docker build` would load, this loads.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use entra_test_support::{copy_tree, workspace_dir};
use globset::{GlobBuilder, GlobMatcher};

/// One `.dockerignore` line: a glob over context paths, and whether it admits (`!`) or excludes.
struct IgnoreRule {
    glob: GlobMatcher,
    admits: bool,
    /// The pattern's text, for deciding whether an excluded folder may hold admitted files.
    pattern: String,
}

/// `.dockerignore` as Docker reads it: comments (a `#` in the first column) and blank lines
/// dropped, patterns cleaned of a leading `/` and a trailing `/`, the last rule that matches a path
/// or one of its parents wins.
struct DockerIgnore(Vec<IgnoreRule>);

impl DockerIgnore {
    fn read(path: &Path) -> DockerIgnore {
        let text = fs::read_to_string(path).expect(".dockerignore is committed");
        let rules = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(|line| {
                let (admits, pattern) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest),
                    None => (false, line),
                };
                let pattern = pattern.trim_start_matches('/').trim_end_matches('/');
                let glob = GlobBuilder::new(pattern)
                    .literal_separator(true)
                    .build()
                    .unwrap_or_else(|e| panic!(".dockerignore pattern {pattern:?}: {e}"))
                    .compile_matcher();
                IgnoreRule {
                    glob,
                    admits,
                    pattern: pattern.to_owned(),
                }
            })
            .collect();
        DockerIgnore(rules)
    }

    /// Whether `relative` (slash-separated, from the context root) is in the build context.
    fn admits(&self, relative: &str) -> bool {
        let mut admitted = true;
        for rule in &self.0 {
            let matches = std::iter::successors(Some(relative), |path| {
                path.rfind('/').map(|slash| &path[..slash])
            })
            .any(|path| rule.glob.is_match(path));
            if matches {
                admitted = rule.admits;
            }
        }
        admitted
    }

    /// Whether an excluded folder may still hold admitted paths (an exception below it).
    fn may_admit_below(&self, folder: &str) -> bool {
        self.0.iter().any(|rule| {
            rule.admits
                && (rule.pattern.starts_with(&format!("{folder}/")) || rule.pattern.contains('*'))
        })
    }
}

/// Copies every file of `source` that `.dockerignore` admits into `context`.
fn assemble_context(source: &Path, ignore: &DockerIgnore, relative: &str, context: &Path) {
    let folder = if relative.is_empty() {
        source.to_path_buf()
    } else {
        source.join(relative)
    };
    for entry in fs::read_dir(&folder).expect("the source folder is readable") {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().expect("UTF-8 file names");
        let path = if relative.is_empty() {
            name
        } else {
            format!("{relative}/{name}")
        };
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            if path == ".git" || !(ignore.admits(&path) || ignore.may_admit_below(&path)) {
                continue;
            }
            assemble_context(source, ignore, &path, context);
        } else if kind.is_file() && ignore.admits(&path) {
            let target = context.join(&path);
            fs::create_dir_all(target.parent().unwrap()).unwrap();
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn instructions(dockerfile: &str) -> Vec<String> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    joined
}

/// What the build stage (the Dockerfile's first stage) does: its working folder, its copies from the
/// context as (sources, destination), and the cargo command of its `RUN`.
struct BuildStage {
    /// The Rust image's version (`rust:1.95-bookworm` gives `1.95`).
    rust: String,
    workdir: String,
    copies: Vec<(Vec<String>, String)>,
    cargo: String,
}

fn build_stage(dockerfile: &str) -> BuildStage {
    let mut rust = None;
    let mut workdir = String::from("/");
    let mut copies = Vec::new();
    let mut cargo = None;
    let mut stages = 0;
    for instruction in instructions(dockerfile) {
        let (keyword, rest) = instruction
            .split_once(' ')
            .unwrap_or((instruction.as_str(), ""));
        match keyword.to_ascii_uppercase().as_str() {
            "FROM" => {
                stages += 1;
                if stages > 1 {
                    break;
                }
                rust = rest
                    .split_whitespace()
                    .next()
                    .and_then(|image| image.rsplit_once("rust:"))
                    .and_then(|(_, tag)| tag.split('-').next())
                    .map(str::to_owned);
            }
            "WORKDIR" => workdir = rest.trim().to_owned(),
            "COPY" => {
                let words: Vec<String> = rest
                    .split_whitespace()
                    .filter(|word| !word.starts_with("--"))
                    .map(str::to_owned)
                    .collect();
                let (destination, sources) = words.split_last().expect("COPY names a destination");
                copies.push((sources.to_vec(), destination.clone()));
            }
            "RUN" => {
                if let Some(command) = rest
                    .split("&&")
                    .map(|part| {
                        part.split_whitespace()
                            .filter(|word| !word.starts_with("--mount="))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .find(|part| part.starts_with("cargo "))
                {
                    cargo = Some(command);
                }
            }
            _ => {}
        }
    }
    BuildStage {
        rust: rust.expect("the build stage is FROM a rust image"),
        workdir,
        copies,
        cargo: cargo.expect("the build stage runs cargo"),
    }
}

/// Lays the build stage's working folder out under `root` (standing for `/`), as `COPY` would.
fn lay_out(stage: &BuildStage, context: &Path, root: &Path) -> PathBuf {
    let workdir = root.join(stage.workdir.trim_start_matches('/'));
    fs::create_dir_all(&workdir).unwrap();
    for (sources, destination) in &stage.copies {
        let into = workdir.join(destination);
        for source in sources {
            let from = context.join(source);
            assert!(
                from.exists(),
                "COPY {source} fails: it is not in the build context that .dockerignore allows"
            );
            if from.is_dir() || destination.ends_with('/') {
                let target = if from.is_dir() {
                    into.clone()
                } else {
                    into.join(from.file_name().unwrap())
                };
                copy_tree(&from, &target);
            } else {
                copy_tree(&from, &into);
            }
        }
    }
    workdir
}

#[test]
fn the_dockerfile_builds_the_operator_from_its_context() {
    let workspace = workspace_dir().canonicalize().unwrap();
    let dockerfile = fs::read_to_string(workspace.join("Dockerfile")).expect("a Dockerfile");
    let stage = build_stage(&dockerfile);
    assert!(
        stage.cargo.contains("--locked") && stage.cargo.contains("--bin entra-operator"),
        "the image builds the locked operator binary: {}",
        stage.cargo
    );

    // The image's toolchain must build the workspace: its Rust is at least the rust-version the
    // workspace declares (this test itself builds with the machine's toolchain).
    let manifest = fs::read_to_string(workspace.join("Cargo.toml")).unwrap();
    let declared = manifest
        .lines()
        .find_map(|line| line.strip_prefix("rust-version = "))
        .map(|version| version.trim_matches('"'))
        .expect("the workspace declares its rust-version");
    let as_numbers = |version: &str| -> Vec<u32> {
        version
            .split('.')
            .map(|part| part.parse().unwrap())
            .collect()
    };
    assert!(
        as_numbers(&stage.rust) >= as_numbers(declared),
        "the build image's Rust {} is older than the workspace's rust-version {declared}",
        stage.rust
    );

    let scratch = tempfile::tempdir().unwrap();
    let context = scratch.path().join("context");
    fs::create_dir_all(&context).unwrap();
    let ignore = DockerIgnore::read(&workspace.join(".dockerignore"));
    assemble_context(&workspace, &ignore, "", &context);
    assert!(
        !context.join("target").exists() && !context.join("charts").exists(),
        "the context holds what the build needs, not the build output or the chart"
    );

    let root = scratch.path().join("root");
    let workdir = lay_out(&stage, &context, &root);
    // Compiled once per machine and reused (like the control plane); an optimized build would
    // add minutes to `make test` without loading or compiling anything else.
    let target = workspace.join("target/image-build");
    let built = Command::new("sh")
        .arg("-c")
        .arg(&stage.cargo)
        .current_dir(&workdir)
        .env("CARGO_NET_OFFLINE", "true")
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "256")
        .env("CARGO_PROFILE_RELEASE_INCREMENTAL", "true")
        .output()
        .expect("cargo runs");
    assert!(
        built.status.success(),
        "`{}` fails in the image's build context:\n{}",
        stage.cargo,
        String::from_utf8_lossy(&built.stderr)
    );

    let binary = target.join("release/entra-operator");
    let version = Command::new(&binary)
        .arg("--version")
        .output()
        .expect("the built binary runs");
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        concat!("entra-operator ", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn dockerignore_rules_apply_as_docker_applies_them() {
    let ignore = DockerIgnore::read(&workspace_dir().join(".dockerignore"));
    for admitted in [
        "Cargo.toml",
        "src/main.rs",
        "src/graph/http.rs",
        "bench/src/lib.rs",
    ] {
        assert!(ignore.admits(admitted), "{admitted} is in the context");
    }
    for excluded in [
        "README.md",
        "target/release/entra-operator",
        "charts/entra-operator/values.yaml",
        "bench/results.md",
        "src/lib.rs.bk",
    ] {
        assert!(!ignore.admits(excluded), "{excluded} stays out");
    }
}
