//! The benchmark and fault-injection harness of entra-operator: `make bench` and `make chaos`.
//!
//! `apiserver` and `scenarios` also serve `tests/chaos.rs` (a dev dependency of the operator
//! crate). The run's world (`lab`), the watch that remembers every password (`tracker`) and the
//! invariant auditor (`audit`) come from the test-support crate, so the chaos scenarios and every
//! integration test judge the operator by one auditor.

pub use entra_test_support::{audit, control_plane, lab, tracker};

pub mod apiserver;
pub mod noisy;
pub mod noisy_neighbour;
pub mod operator;
pub mod peer;
pub mod peer_report;
pub mod quota;
pub mod results;
pub mod rotation;
pub mod scenarios;
pub mod setup;
pub mod sign_in_options;
pub mod stats;
