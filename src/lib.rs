//! entra-operator: issues Microsoft Entra ID user credentials as Kubernetes Secrets.

pub mod api;
pub mod controller;
pub mod duration;
#[cfg(test)]
mod fixtures;
pub mod graph;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod metrics_endpoint;
pub mod password;
pub mod secret;
pub mod secret_template;
pub mod secret_types;
pub mod sensitive;
pub mod telemetry;
pub mod tls;
