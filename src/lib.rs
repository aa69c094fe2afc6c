//! entra-operator: issues Microsoft Entra ID user credentials as Kubernetes Secrets.

pub mod api;
pub mod duration;
pub mod graph;
pub mod password;
pub mod sensitive;
pub mod tls;
