//! Continuous leases: a lease that rotates onto a second pool user before its credential's
//! maxExpiresAt, keeps the previous credential beside the new one for an overlap, and restarts
//! the workloads that read it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::leased_user::LeasedUser;
use super::validation::{OBJECT_NAME_PATTERN, positive_duration};
use crate::duration::DURATION_PATTERN;

/// Annotation whose every new value asks for one rotation onto another pool user, honoured at
/// most once per overlap.
pub const ROTATE_ANNOTATION: &str = "kms.hanzo.ai/rotate";

/// Annotation on a restarted workload's pod template naming the credential generation its pods
/// were started for, the way `kubectl rollout restart` writes `restartedAt`.
pub const CREDENTIAL_GENERATION_ANNOTATION: &str = "kms.hanzo.ai/credential-generation";

/// Why a lease naming its user cannot rotate (the CRD's message, and the operator's).
pub const NAMED_USER_CANNOT_ROTATE: &str =
    "a continuous lease rotates between pool users: it cannot name spec.user";

/// The overlap a continuous lease uses unless it names one.
pub const DEFAULT_OVERLAP: &str = "10m";

/// How a lease rotates.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RotationSpec {
    /// Keep the lease going past maxExpiresAt by rotating onto another pool user before each
    /// credential's end. A continuous lease renews itself.
    #[serde(default)]
    pub enabled: bool,

    /// How long before a credential's maxExpiresAt the next user is issued, and the longest the
    /// previous credential stays valid beside the new one (it ends sooner once every
    /// rolloutRestartTargets rollout has completed). Default 10m; shorter than the pool's maxTTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION_PATTERN), length(max = 32))]
    #[x_kube(validation = positive_duration())]
    pub overlap: Option<String>,
}

/// A workload in the lease's namespace restarted when the Secret's credential changes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct RolloutTarget {
    /// Deployment, StatefulSet or DaemonSet.
    pub kind: RolloutKind,
    /// Name of the workload in the lease's namespace.
    #[schemars(pattern(OBJECT_NAME_PATTERN), length(min = 1, max = 253))]
    pub name: String,
}

/// The workload kinds a lease can restart.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RolloutKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl RolloutKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutKind::Deployment => "Deployment",
            RolloutKind::StatefulSet => "StatefulSet",
            RolloutKind::DaemonSet => "DaemonSet",
        }
    }
}

/// The credential a continuous lease rotated away from, still valid under the Secret's
/// previousUsername and previousPassword keys until it ends.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PreviousCredential {
    pub user: LeasedUser,
    /// When it was issued.
    pub issued_at: Time,
    /// When it ends at the latest: the rotation plus the overlap, or its own maxExpiresAt.
    pub expires_at: Time,
}
