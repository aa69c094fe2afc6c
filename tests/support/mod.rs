//! What the integration tests (`tests/`), the benchmark and chaos harness (`bench/`) and the demo
//! (`examples/demo`) share: the local control plane, the operator launchers, cluster helpers, the
//! lease environment, the bench's world (`lab`), the password tracker and the invariant auditor.

pub mod admission;
pub mod audit;
pub mod chart;
pub mod chart_docs;
pub mod cluster;
pub mod control_plane;
pub mod lab;
pub mod lease_env;
pub mod node_simulation;
pub mod operator;
pub mod oversized;
pub mod teams;
pub mod tracker;

pub use control_plane::ControlPlane;
pub use operator::Operator;

/// Copies the file or folder `from` to `to`, creating the folders on the way.
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
}

/// The workspace's root directory (where `crds/`, `charts/` and `target/` are).
pub fn workspace_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
