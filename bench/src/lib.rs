//! The benchmark and fault-injection harness of entra-operator: `make bench` and `make chaos`.
//!
//! `lab`, `tracker`, `audit`, `apiserver` and `scenarios` are shared with `tests/chaos.rs`, which
//! includes them by path; the rest serves the benchmark only.

#[path = "../../tests/support/control_plane.rs"]
pub mod control_plane;

pub mod apiserver;
pub mod audit;
pub mod lab;
pub mod operator;
pub mod results;
pub mod scenarios;
pub mod setup;
pub mod stats;
pub mod tracker;
