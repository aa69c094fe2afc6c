//! The custom resources: `EntraDynamicSecret` (a pool of users and the app that resets them) and
//! `EntraLease` (one check-out of one user). Types only; behaviour lives in the controllers.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

mod cloud;
mod dynamic_secret;
mod lease;
mod validation;

pub use cloud::Cloud;
pub use dynamic_secret::{
    ClientSecretRef, DynamicSecretStatus, EntraDynamicSecret, EntraDynamicSecretSpec, PoolUser,
};
pub use lease::{
    DynamicSecretRef, EntraLease, EntraLeaseSpec, LeasePhase, LeaseStatus, LeasedUser,
};

/// API group of both resources.
pub const GROUP: &str = "kms.hanzo.ai";

/// Annotation whose every new value asks for one renewal of a lease.
pub const RENEW_ANNOTATION: &str = "kms.hanzo.ai/renew";

/// Both CRDs, in the order they are printed by `entra-operator crds`.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![EntraDynamicSecret::crd(), EntraLease::crd()]
}

/// Both CRDs as one multi-document YAML stream, as committed in `crds/`.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}
