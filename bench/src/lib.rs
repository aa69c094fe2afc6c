//! The benchmark and fault-injection harness of entra-operator: `make bench` and `make chaos`.
//!
//! `lab`, `tracker`, `audit`, `apiserver` and `scenarios` also serve `tests/chaos.rs` (a dev
//! dependency of the operator crate); the control plane and the operator binary come from the
//! test-support crate the integration tests use.

pub use entra_test_support::control_plane;

pub mod apiserver;
pub mod audit;
pub mod lab;
pub mod operator;
pub mod results;
pub mod scenarios;
pub mod setup;
pub mod stats;
pub mod tracker;
