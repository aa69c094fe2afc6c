use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// How a lease's Secret looks beyond its default keys (username, password, userId, tenantId).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// The Secret's type, such as kubernetes.io/basic-auth; Opaque when unset. Immutable, as
    /// Kubernetes keeps a Secret's type. Not kubernetes.io/service-account-token.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf").message(Message::Message("type is immutable".into())))]
    #[x_kube(validation = Rule::new("self != 'kubernetes.io/service-account-token'")
        .message(Message::Message("kubernetes.io/service-account-token is refused: Kubernetes would fill such a Secret with a token of a ServiceAccount it names".into())))]
    pub type_: Option<String>,

    /// Extra labels of the Secret. The operator's own keys (kms.hanzo.ai/*,
    /// app.kubernetes.io/managed-by) are not allowed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32), inner(length(max = 63)))]
    #[x_kube(validation = Rule::new(OWN_KEYS_RULE).message(Message::Message(OWN_KEYS_MESSAGE.into())))]
    pub labels: BTreeMap<String, String>,

    /// Extra annotations of the Secret; the operator's own keys are not allowed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32), inner(length(max = 4096)))]
    #[x_kube(validation = Rule::new(OWN_KEYS_RULE).message(Message::Message(OWN_KEYS_MESSAGE.into())))]
    #[x_kube(validation = Rule::new("self.map(k, size(k) + size(self[k])).sum() <= 16384")
        .message(Message::Message("annotations may hold 16384 characters in all (keys and values)".into())))]
    pub annotations: BTreeMap<String, String>,

    /// Extra keys of the Secret, each a template of the credential: text and {{ ... }}
    /// substitutions of username, password, userId, tenantId and maxExpiresAt (RFC 3339), joined
    /// with ~ and quoted strings, through the filters upper, lower, trim, urlencode, b64encode
    /// and tojson. No statements. The templates may hold 16384 characters in all; a key may render at most
    /// 16 KiB, all keys 64 KiB. Example:
    /// "Server=db;User Id={{ username }};Password={{ password }}". expiresAt is left out on
    /// purpose: a renewal never changes the data. The default keys (and a continuous lease's
    /// previous* and pending* keys) cannot be replaced.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32), inner(length(max = 16384)))]
    #[x_kube(validation = Rule::new("self.map(k, size(self[k])).sum() <= 16384")
        .message(Message::Message("data may hold 16384 characters of templates in all".into())))]
    #[x_kube(validation = Rule::new("self.all(k, !(k in ['username', 'password', 'userId', 'tenantId', 'previousUsername', 'previousPassword', 'pendingUsername', 'pendingPassword']))")
        .message(Message::Message("data may not replace the default keys username, password, userId, tenantId and a continuous lease's previous* and pending* keys".into())))]
    pub data: BTreeMap<String, String>,
}

const OWN_KEYS_RULE: &str =
    "self.all(k, !k.startsWith('kms.hanzo.ai/') && k != 'app.kubernetes.io/managed-by')";
const OWN_KEYS_MESSAGE: &str =
    "keys kms.hanzo.ai/* and app.kubernetes.io/managed-by are the operator's own";
