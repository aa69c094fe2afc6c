//! The pool specification both kinds of pool share, and the status both report.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Cloud;
use super::descriptions::flowing_descriptions;
use super::validation::{
    GUID_PATTERN, OBJECT_NAME_PATTERN, SECRET_KEY_PATTERN, TENANT_PATTERN, USER_PATTERN,
    positive_duration,
};
use crate::duration::DURATION_PATTERN;

/// What both kinds of pool declare: the tenant, the app and its credential, the users and the
/// TTLs. `EntraDynamicSecret` and `ClusterEntraDynamicSecret` flatten it into their specs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PoolSpec {
    /// The directory (tenant) ID as a GUID, or a verified domain such as contoso.onmicrosoft.com.
    #[schemars(pattern(TENANT_PATTERN), length(max = 253))]
    pub tenant_id: String,

    /// The application (client) ID of the app registration that resets pool users' passwords. It
    /// needs the Graph application permission User-PasswordProfile.ReadWrite.All (or
    /// User.ReadWrite.All) with admin consent, and the User Administrator directory role.
    #[schemars(pattern(GUID_PATTERN))]
    pub application_id: String,

    /// A Secret holding the app's client secret value (not its secret ID): in the pool's
    /// namespace, or for a ClusterEntraDynamicSecret in the operator's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<ClientSecretRef>,

    /// A kubernetes.io/tls Secret holding a certificate registered on the app and its RSA private
    /// key (tls.crt, tls.key): in the pool's namespace, or for a ClusterEntraDynamicSecret in the
    /// operator's namespace. The operator signs a client assertion with it; no secret is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_ref: Option<CertificateRef>,

    /// Workload identity federation (ClusterEntraDynamicSecret only): the app trusts tokens of a
    /// ServiceAccount in the operator's namespace, or the operator's own federated token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<WorkloadIdentity>,

    /// The Microsoft cloud of the tenant: AzurePublic, AzureUSGovernment or AzureChina. It picks
    /// the sign-in authority, the Graph endpoint and the token scope together.
    #[serde(default)]
    pub cloud: Cloud,

    /// The users that leases draw from, each a user principal name (alice@contoso.com) or an
    /// object ID. Guests, users synced from on-premises and disabled users cannot be leased.
    #[schemars(
        length(min = 1, max = 256),
        inner(pattern(USER_PATTERN), length(max = 256))
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub users: Vec<String>,

    /// The TTL of a lease that names none, as a duration such as 1h, 1h30m or 1.5h (units h, m, s; whole seconds).
    #[serde(rename = "defaultTTL")]
    #[schemars(pattern(DURATION_PATTERN), length(max = 32))]
    #[x_kube(validation = positive_duration())]
    pub default_ttl: String,

    /// The longest a lease may live from its issue, renewals included, as a duration such as 24h.
    #[serde(rename = "maxTTL")]
    #[schemars(pattern(DURATION_PATTERN), length(max = 32))]
    #[x_kube(validation = positive_duration())]
    pub max_ttl: String,

    /// Prefix of the Secrets that leases create, named <secretPrefix>-<lease name>.
    #[serde(default = "default_secret_prefix")]
    #[schemars(pattern(OBJECT_NAME_PATTERN), length(min = 1, max = 200))]
    pub secret_prefix: String,

    /// Length of issued passwords, from 16 to 256 characters.
    #[serde(default = "default_password_length")]
    #[schemars(range(min = 16, max = 256), extend("format" = "int32"))]
    pub password_length: u16,

    /// When a lease ends, also invalidate the user's refresh tokens and browser sessions, so that
    /// sessions opened with the leased password end too.
    #[serde(default = "default_true")]
    pub revoke_sign_in_sessions: bool,

    /// What becomes of sign-in methods (a passkey, the Authenticator app, a phone) registered on a
    /// pool user during a lease. RemoveAddedDuringLease deletes each at the lease's end, keeping
    /// those present before it; it needs the Graph application permission
    /// UserAuthenticationMethod.ReadWrite.All. Keep leaves them: they sign in after the lease ends.
    #[serde(default)]
    pub sign_in_methods: SignInMethods,

    /// Disable each pool user's account between leases: enabled right before its password is set
    /// at issue, disabled again at every end. Accounts disabled by anyone else stay disabled and
    /// are not leased. Needs User.EnableDisableAccount.All (or User.ReadWrite.All).
    #[serde(default)]
    pub disable_idle_users: bool,

    /// What a lease receives: Password (a fresh password for its user, ended by the operator) or
    /// TemporaryAccessPass (a pass Entra creates and ends at its lifetime, even with the operator
    /// down). A TemporaryAccessPass pool needs signInMethods RemoveAddedDuringLease and the Graph
    /// application permission UserAuthenticationMethod.ReadWrite.All.
    #[serde(default)]
    pub credential_type: CredentialType,

    /// The tenant's Temporary Access Pass policy as it applies to pool users, for
    /// credentialType TemporaryAccessPass: leases whose TTL falls outside its lifetimes are
    /// refused before anything is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_access_pass: Option<AccessPassPolicy>,
}

/// What a lease of a pool receives.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CredentialType {
    #[default]
    Password,
    TemporaryAccessPass,
}

/// The lifetimes the tenant's Temporary Access Pass policy allows (Entra's defaults: 1h to 8h),
/// and whether passes are usable once.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccessPassPolicy {
    /// The policy's minimum lifetime (at least 10m, Graph's floor).
    #[serde(default = "default_pass_minimum")]
    #[schemars(pattern(DURATION_PATTERN), length(max = 32))]
    #[x_kube(validation = positive_duration())]
    pub minimum_lifetime: String,

    /// The policy's maximum lifetime (at most 720h, Graph's ceiling). maxTTL may not exceed it.
    #[serde(default = "default_pass_maximum")]
    #[schemars(pattern(DURATION_PATTERN), length(max = 32))]
    #[x_kube(validation = positive_duration())]
    pub maximum_lifetime: String,

    /// Each pass signs in once (its sign-in session then runs to the pass's end).
    #[serde(default)]
    pub usable_once: bool,
}

impl Default for AccessPassPolicy {
    fn default() -> Self {
        Self {
            minimum_lifetime: default_pass_minimum(),
            maximum_lifetime: default_pass_maximum(),
            usable_once: false,
        }
    }
}

fn default_pass_minimum() -> String {
    "1h".into()
}

fn default_pass_maximum() -> String {
    "8h".into()
}

/// What a lease's end does to sign-in methods registered during the lease.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SignInMethods {
    /// Delete every method that was not on the user when the lease was issued.
    #[default]
    RemoveAddedDuringLease,
    /// Leave methods as they are: they outlive the lease.
    Keep,
}

/// A key of a Secret in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ClientSecretRef {
    /// Name of the Secret.
    #[schemars(pattern(OBJECT_NAME_PATTERN), length(min = 1, max = 253))]
    pub name: String,

    /// Key in the Secret's data that holds the client secret value.
    #[serde(default = "default_client_secret_key")]
    #[schemars(pattern(SECRET_KEY_PATTERN), length(min = 1, max = 253))]
    pub key: String,
}

impl PoolSpec {
    /// The name of the Secret holding the pool's credential, if it is kept in one.
    pub fn credential_secret(&self) -> Option<&String> {
        let client_secret = self.client_secret_ref.as_ref().map(|r| &r.name);
        client_secret.or(self.certificate_ref.as_ref().map(|r| &r.name))
    }
}

/// A certificate credential: a kubernetes.io/tls Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRef {
    /// Name of the kubernetes.io/tls Secret (keys tls.crt and tls.key).
    #[schemars(pattern(OBJECT_NAME_PATTERN), length(min = 1, max = 253))]
    pub name: String,

    /// How the client assertion is signed: PS256 with the certificate's SHA-256 thumbprint
    /// (x5t#S256), as Microsoft documents today, or RS256 with its SHA-1 thumbprint (x5t), as
    /// older versions of the documentation did.
    #[serde(default)]
    pub algorithm: AssertionAlgorithm,
}

/// The signature of a certificate's client assertion.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AssertionAlgorithm {
    /// RSASSA-PSS with SHA-256; header x5t#S256.
    #[default]
    PS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256; header x5t.
    RS256,
}

/// Workload identity federation: which token the operator exchanges for the app's.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadIdentity {
    /// A ServiceAccount in the operator's namespace whose tokens the app's federated identity
    /// credential trusts (subject system:serviceaccount:<operator namespace>:<name>). The
    /// operator requests a short-lived token for it; the chart must be allowed to mint it. Empty:
    /// the operator's own federated token, injected by the Azure workload identity webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(OBJECT_NAME_PATTERN), length(min = 1, max = 253))]
    pub service_account_name: Option<String>,
}

/// Why a namespaced pool refuses `workloadIdentity`.
pub const WORKLOAD_IDENTITY_IS_CLUSTER_ONLY: &str = "workloadIdentity is accepted only on a \
    ClusterEntraDynamicSecret: in a namespace, the built-in edit role may mint tokens for any \
    ServiceAccount (so an editor would hold the app's admin token), and no token can be minted in \
    a terminating namespace (so revocations would fail)";

/// What the operator last observed about a pool.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = flowing_descriptions)]
pub struct DynamicSecretStatus {
    /// Ready: the app can get a token and at least one pool user can be leased. Degraded: some
    /// pool users cannot be leased (see users[].problem). SignInMethodsManaged: sign-in methods
    /// registered during a lease are removed at its end (False says why not: Keep, or a missing
    /// permission).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The generation of the spec that this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Each pool user as configured and as resolved in Entra ID.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<PoolUser>,

    /// Pool users that are leasable and not leased.
    #[serde(default)]
    #[schemars(extend("format" = "int32"))]
    pub available: u32,

    /// Pool users currently held by a lease.
    #[serde(default)]
    #[schemars(extend("format" = "int32"))]
    pub leased: u32,

    /// When the app credential stops working: the certificate's notAfter, or a client secret's
    /// `kms.hanzo.ai/client-secret-expires-at` annotation. Absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_expires_at: Option<Time>,
}

/// One pool user as configured and as found in Entra ID.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PoolUser {
    /// The entry of spec.users this describes.
    pub configured: String,
    /// The user's object ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The user's principal name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_principal_name: Option<String>,
    /// The user's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The lease holding this user, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leased_by: Option<String>,
    /// How many sign-in methods besides the password the user has while no lease holds it: a way
    /// in that no password scramble closes (methods present before a lease are kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "int32"))]
    pub other_sign_in_methods: Option<u32>,
    /// Why this user cannot be leased: not found, guest, synced from on-premises, disabled or
    /// protected admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

fn default_secret_prefix() -> String {
    "entra".into()
}

fn default_password_length() -> u16 {
    32
}

fn default_true() -> bool {
    true
}

fn default_client_secret_key() -> String {
    "clientSecret".into()
}
