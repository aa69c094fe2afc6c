//! Objects the unit tests of several modules build alike.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::{
    ClientSecretRef, Cloud, DynamicSecretRef, EntraDynamicSecretSpec, EntraLeaseSpec, LeasedUser,
    PoolKind, PoolSpec,
};
use crate::controller::claim_record::{
    AppIdentity, ClaimRecord, CredentialCopyRef, LeaseIdentity, PoolIdentity,
};

/// A dynamic secret of `users` with a 1h default and a 2h maximum TTL.
pub fn pool_spec(users: &[&str]) -> EntraDynamicSecretSpec {
    EntraDynamicSecretSpec {
        pool: PoolSpec {
            tenant_id: "contoso.onmicrosoft.com".into(),
            application_id: "3c9d2b1a-7e6f-4a5b-8c9d-0e1f2a3b4c5d".into(),
            client_secret_ref: Some(ClientSecretRef {
                name: "app".into(),
                key: "clientSecret".into(),
            }),
            certificate_ref: None,
            workload_identity: None,
            cloud: Default::default(),
            users: users.iter().map(|user| user.to_string()).collect(),
            default_ttl: "1h".into(),
            max_ttl: "2h".into(),
            secret_prefix: "entra".into(),
            password_length: 32,
            revoke_sign_in_sessions: true,
            sign_in_methods: Default::default(),
            disable_idle_users: false,
            credential_type: Default::default(),
            temporary_access_pass: None,
        },
    }
}

/// A lease of dynamic secret `pool` that asks for nothing more.
pub fn lease_spec() -> EntraLeaseSpec {
    EntraLeaseSpec {
        dynamic_secret_ref: DynamicSecretRef {
            name: "pool".into(),
            kind: PoolKind::EntraDynamicSecret,
        },
        user: None,
        ttl: None,
        auto_renew: false,
        secret_name: None,
        template: None,
        rotation: None,
        rollout_restart_targets: Vec::new(),
    }
}

/// The unit tests' clock: `seconds` after a fixed instant.
pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + seconds).unwrap()
}

/// The record of an issued claim on alice for lease `ci`, issued at `at(0)` with a 1h TTL and a
/// 2h maximum, where `at(s)` is 1_800_000_000 + s seconds.
pub fn record() -> ClaimRecord {
    let at = |s| Time(at(s));
    ClaimRecord {
        lease: LeaseIdentity {
            namespace: "team".into(),
            name: "ci".into(),
            uid: "uid-1".into(),
        },
        pool: PoolIdentity {
            kind: "EntraDynamicSecret".into(),
            namespace: "team".into(),
            name: "pool".into(),
            uid: "pool-uid".into(),
        },
        user: LeasedUser {
            user_principal_name: "alice@contoso.com".into(),
            id: "id-alice".into(),
        },
        app: AppIdentity {
            cloud: Cloud::AzurePublic,
            authority: "https://login.microsoftonline.com/".into(),
            tenant_id: "contoso.onmicrosoft.com".into(),
            application_id: "app".into(),
            credential: CredentialCopyRef {
                secret_name: Some("entra-app-x".into()),
                ..CredentialCopyRef::default()
            },
        },
        revoke_sign_in_sessions: true,
        methods_at_issue: None,
        access_pass: None,
        disable_when_idle: false,
        password_length: 32,
        secret_name: "entra-ci".into(),
        issued: true,
        issued_at: at(0),
        expires_at: at(3600),
        max_expires_at: at(7200),
        renew_count: 0,
        last_renewed_at: None,
        last_renew_request: None,
        generation: 1,
        last_rotate_request: None,
        restores: None,
        restore_at: None,
    }
}

/// A lease `ci` of namespace `team`, with a uid.
pub fn lease() -> crate::api::EntraLease {
    let mut lease = crate::api::EntraLease::new("ci", lease_spec());
    lease.metadata.namespace = Some("team".into());
    lease.metadata.uid = Some("lease-uid".into());
    lease
}

/// The Secret `entra-ci` the operator writes for `lease`, holding a fixed password.
pub fn lease_secret(lease: &crate::api::EntraLease) -> k8s_openapi::api::core::v1::Secret {
    let password = crate::sensitive::SecretString::from("Correct-Horse-Battery-1");
    let credentials = crate::secret::Credentials {
        user_principal_name: "alice@contoso.com",
        user_id: "a11ce000-0000-4000-8000-000000000001",
        tenant_id: "contoso.com",
        password: &password,
        access_pass: false,
        max_expires_at: Timestamp::UNIX_EPOCH,
        generation: 1,
        previous: None,
        pending: None,
    };
    crate::secret::credentials_secret(lease, "entra-ci", &credentials, Timestamp::UNIX_EPOCH)
        .expect("no template")
}
