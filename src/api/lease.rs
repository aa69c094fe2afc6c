use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::descriptions::flowing_descriptions;
use super::leased_user::LeasedUser;
use super::rotation::{NAMED_USER_CANNOT_ROTATE, PreviousCredential, RolloutTarget, RotationSpec};
use super::secret_template::SecretTemplate;
use super::validation::{OBJECT_NAME_PATTERN, USER_PATTERN, positive_duration};
use crate::duration::DURATION_PATTERN;

/// One check-out of one Entra ID user from an EntraDynamicSecret's pool, for a bounded time.
// Repeated `type_` keys of different printer columns look like duplicates to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kms.hanzo.ai",
    version = "v1alpha1",
    kind = "EntraLease",
    namespaced,
    status = "LeaseStatus",
    shortname = "elease",
    category = "entra",
    doc = "A lease of one Microsoft Entra ID user; its credentials are written to a Secret.",
    printcolumn(
        name = "User",
        type_ = "string",
        json_path = ".status.user.userPrincipalName"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    // A `date` column would print every future expiry as `<invalid>`: show the timestamp.
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.expiresAt"),
    printcolumn(name = "Secret", type_ = "string", json_path = ".status.secretName"),
    printcolumn(
        name = "Next rotation",
        type_ = "string",
        json_path = ".status.nextRotationAt"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("!has(self.user) || !has(self.rotation) || !self.rotation.enabled")
    .message(Message::Message(NAMED_USER_CANNOT_ROTATE.into()))
    .field_path(".rotation"))]
#[serde(rename_all = "camelCase")]
#[schemars(transform = flowing_descriptions)]
pub struct EntraLeaseSpec {
    /// The pool this lease draws from: an EntraDynamicSecret in this namespace, or a
    /// ClusterEntraDynamicSecret that selects this namespace. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message(Message::Message("dynamicSecretRef is immutable".into())))]
    pub dynamic_secret_ref: DynamicSecretRef,

    /// A user of the pool to lease, as a user principal name or object ID. Empty takes the first
    /// free user. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(USER_PATTERN), length(max = 256))]
    #[x_kube(validation = Rule::new("self == oldSelf").message(Message::Message("user is immutable".into())))]
    pub user: Option<String>,

    /// How long the credentials stay valid after issue or renewal, as a duration such as 1h, 30m
    /// or 1.5h (units h, m, s; whole seconds). Defaults to the dynamic secret's defaultTTL; a
    /// lease asking for more than its maxTTL is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(DURATION_PATTERN), length(max = 32))]
    #[x_kube(validation = positive_duration())]
    pub ttl: Option<String>,

    /// Renew automatically when a third of the TTL remains, until the dynamic secret's maxTTL.
    #[serde(default)]
    pub auto_renew: bool,

    /// Name of the Secret to write the credentials to. Defaults to <secretPrefix>-<lease name>.
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(OBJECT_NAME_PATTERN), length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf").message(Message::Message("secretName is immutable".into())))]
    pub secret_name: Option<String>,

    /// The Secret's type, extra labels and annotations, and extra keys rendered from the
    /// credential. A change applies the next time the Secret is written (an issue, or a restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<SecretTemplate>,

    /// Continuous leases: rotate onto another pool user before each credential's maxExpiresAt
    /// instead of ending there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationSpec>,

    /// Workloads in this namespace to restart (as `kubectl rollout restart` does) when the
    /// Secret's credential changes; a rotation's previous credential ends once every rollout
    /// has completed, or when the overlap ends. Needs the chart's rolloutRestart.enabled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub rollout_restart_targets: Vec<RolloutTarget>,
}

impl EntraLeaseSpec {
    /// True for a continuous lease.
    pub fn rotates(&self) -> bool {
        self.rotation.as_ref().is_some_and(|r| r.enabled)
    }
}

/// A reference to a pool: an EntraDynamicSecret in the lease's namespace, or a
/// ClusterEntraDynamicSecret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DynamicSecretRef {
    /// Name of the pool.
    #[schemars(pattern(OBJECT_NAME_PATTERN), length(min = 1, max = 253))]
    pub name: String,

    /// Kind of the pool: EntraDynamicSecret (in this namespace) or ClusterEntraDynamicSecret.
    #[serde(default)]
    pub kind: PoolKind,
}

/// The two kinds of pool.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash,
)]
pub enum PoolKind {
    /// A pool in the lease's namespace.
    #[default]
    EntraDynamicSecret,
    /// A cluster-scoped pool whose namespaceSelector matches the lease's namespace.
    ClusterEntraDynamicSecret,
}

impl PoolKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolKind::EntraDynamicSecret => "EntraDynamicSecret",
            PoolKind::ClusterEntraDynamicSecret => "ClusterEntraDynamicSecret",
        }
    }
}

/// Where a lease is in its life.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeasePhase {
    /// Waiting for a free pool user or a ready dynamic secret.
    Pending,
    /// A user is claimed and its password is being set.
    Issuing,
    /// The credentials are in the Secret and valid until expiresAt.
    Active,
    /// The lease ended; the password is being scrambled.
    Revoking,
    /// The lease cannot be issued as specified; see the Ready condition.
    Failed,
}

/// What the operator last observed and did for a lease: a projection of the operator's own record
/// of the credential (its claim in the operator's namespace). The operator never reads it back, and
/// rewrites it when anyone else edits it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = flowing_descriptions)]
pub struct LeaseStatus {
    /// Where the lease is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<LeasePhase>,

    /// The leased user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<LeasedUser>,

    /// The Secret holding the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,

    /// When the current password was issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<Time>,

    /// When the lease ends unless renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,

    /// The latest the lease can be renewed to: issuedAt plus the dynamic secret's maxTTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_expires_at: Option<Time>,

    /// How many times the lease was renewed.
    #[serde(default)]
    #[schemars(extend("format" = "int32"))]
    pub renew_count: u32,

    /// When the lease was last renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_renewed_at: Option<Time>,

    /// The last value of the kms.hanzo.ai/renew annotation that was acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_renew_request: Option<String>,

    /// Which credential of the lease the Secret holds: 1 for the first, one more for each
    /// rotation or restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "int32"))]
    pub credential_generation: Option<u32>,

    /// A continuous lease's previous credential, while it is still valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousCredential>,

    /// When a continuous lease rotates next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_at: Option<Time>,

    /// Set when the operator clamps the lease's `rotation.overlap`: a `kms.hanzo.ai/rotate`
    /// request forces a rotation at most this often (the operator's
    /// `--min-forced-rotation-interval`), not once per overlap. A Go-style duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced_rotation_interval: Option<String>,

    /// Ready tells whether the credentials are issued and valid, with a reason when not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The generation of the spec that this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
