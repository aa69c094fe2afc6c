//! Shared support for the integration tests.
#![allow(dead_code)] // each test binary uses a different part of it

pub mod chart;
pub mod cluster;
pub mod control_plane;
pub mod operator;

pub use control_plane::ControlPlane;
pub use operator::Operator;
pub mod audit;
pub mod lease_env;
