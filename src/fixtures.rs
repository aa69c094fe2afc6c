//! Objects the unit tests of several modules build alike.

use crate::api::{ClientSecretRef, DynamicSecretRef, EntraDynamicSecretSpec, EntraLeaseSpec};

/// A dynamic secret of `users` with a 1h default and a 2h maximum TTL.
pub fn pool_spec(users: &[&str]) -> EntraDynamicSecretSpec {
    EntraDynamicSecretSpec {
        tenant_id: "contoso.onmicrosoft.com".into(),
        application_id: "3c9d2b1a-7e6f-4a5b-8c9d-0e1f2a3b4c5d".into(),
        client_secret_ref: ClientSecretRef {
            name: "app".into(),
            key: "clientSecret".into(),
        },
        cloud: Default::default(),
        users: users.iter().map(|user| user.to_string()).collect(),
        default_ttl: "1h".into(),
        max_ttl: "2h".into(),
        secret_prefix: "entra".into(),
        password_length: 32,
        revoke_sign_in_sessions: true,
    }
}

/// A lease of dynamic secret `pool` that asks for nothing more.
pub fn lease_spec() -> EntraLeaseSpec {
    EntraLeaseSpec {
        dynamic_secret_ref: DynamicSecretRef {
            name: "pool".into(),
        },
        user: None,
        ttl: None,
        auto_renew: false,
        secret_name: None,
    }
}
