//! The custom resources: `EntraDynamicSecret` (a pool of users and the app that resets them, in a
//! namespace), `ClusterEntraDynamicSecret` (the same, serving selected namespaces, its credential
//! in the operator's namespace) and `EntraLease` (one check-out of one user). Types only;
//! behaviour lives in the controllers.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

mod cloud;
mod cluster_dynamic_secret;
mod descriptions;
mod dynamic_secret;
mod lease;
mod leased_user;
mod pool_spec;
mod rotation;
mod secret_template;
mod validation;

pub use cloud::Cloud;
pub use cluster_dynamic_secret::{ClusterEntraDynamicSecret, ClusterEntraDynamicSecretSpec};
pub use dynamic_secret::{EntraDynamicSecret, EntraDynamicSecretSpec};
pub use lease::{DynamicSecretRef, EntraLease, EntraLeaseSpec, LeasePhase, LeaseStatus, PoolKind};
pub use leased_user::LeasedUser;
pub use pool_spec::{
    AccessPassPolicy, AssertionAlgorithm, CertificateRef, ClientSecretRef, CredentialType,
    DynamicSecretStatus, PoolSpec, PoolUser, SignInMethods, WORKLOAD_IDENTITY_IS_CLUSTER_ONLY,
    WorkloadIdentity,
};
pub use rotation::{
    CREDENTIAL_GENERATION_ANNOTATION, DEFAULT_OVERLAP, NAMED_USER_CANNOT_ROTATE,
    PreviousCredential, ROTATE_ANNOTATION, RolloutKind, RolloutTarget, RotationSpec,
};
pub use secret_template::SecretTemplate;

/// API group of both resources.
pub const GROUP: &str = "kms.hanzo.ai";

/// Annotation whose every new value asks for one renewal of a lease.
pub const RENEW_ANNOTATION: &str = "kms.hanzo.ai/renew";

/// The label every CRD of the operator carries, however it was installed (`kubectl get crd -l`).
pub const CRD_LABEL: (&str, &str) = ("app.kubernetes.io/part-of", "entra-operator");

/// The CRDs, in the order they are printed by `entra-operator crds`.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        EntraDynamicSecret::crd(),
        ClusterEntraDynamicSecret::crd(),
        EntraLease::crd(),
    ];
    for crd in &mut crds {
        let (key, value) = CRD_LABEL;
        crd.metadata.labels = Some([(key.to_owned(), value.to_owned())].into());
    }
    crds
}

/// The CRDs as one multi-document YAML stream, as committed in `crds/`.
pub fn crds_yaml() -> Result<String, yaml_serde::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&yaml_serde::to_string(&crd)?);
    }
    Ok(out)
}
