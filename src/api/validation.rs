//! Schema fragments shared by both resources. Each pattern has an error message that names what is
//! expected, since the API server's default pattern message is hard to read.

use kube::core::{Message, Rule};

/// An Entra object id or application (client) id.
pub const GUID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// A tenant: its GUID, or a verified domain such as `contoso.onmicrosoft.com`.
pub const TENANT_PATTERN: &str = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\\.)+[a-zA-Z]{2,63})$";

/// A pool user: a user principal name (`name@domain`) or an object id.
pub const USER_PATTERN: &str = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[^@\\s]+@[^@\\s]+)$";

/// A Kubernetes object name (DNS subdomain), used for Secret and resource references.
pub const OBJECT_NAME_PATTERN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A Secret data key.
pub const SECRET_KEY_PATTERN: &str = "^[-._a-zA-Z0-9]+$";

/// CEL: a duration must be positive (the pattern alone admits `0s`).
pub fn positive_duration() -> Rule {
    Rule::new("duration(self) > duration('0s')").message(Message::Message(
        "must be a positive duration such as 90s, 15m, 1.5h or 1h30m".into(),
    ))
}
