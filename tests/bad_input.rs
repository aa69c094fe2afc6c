//! Bad input gets a clear condition and event, and nothing is issued.

use entra_test_support as support;

use entra_emulator::{Config, Operation, sample};
use entra_operator::api::{EntraLease, LeasePhase};
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use serde_json::json;
use support::lease_env::LeaseEnv;

const POOL: [&str; 5] = [
    "alice@contoso.onmicrosoft.com",
    "dave_fabrikam.com#EXT#@contoso.onmicrosoft.com",
    "erin@contoso.onmicrosoft.com",
    "grace@contoso.onmicrosoft.com",
    "nobody@contoso.onmicrosoft.com",
];

/// Waits until the lease's Ready condition has `reason`, and returns the lease.
async fn wait_for_reason(env: &LeaseEnv, name: &str, reason: &str) -> EntraLease {
    env.wait_for(&format!("lease {name} to report {reason}"), || async {
        env.lease(name).await.filter(|lease| {
            lease.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == reason)
            })
        })
    })
    .await
}

async fn event_reasons(env: &LeaseEnv) -> String {
    let events = env
        .control_plane
        .kubectl(&["get", "events", "-n", &env.namespace, "-o", "yaml"]);
    String::from_utf8_lossy(&events.stdout).into_owned()
}

fn password_writes(env: &LeaseEnv) -> u64 {
    env.emulator.counters().operation(Operation::SetPassword)
}

#[tokio::test]
async fn invalid_leases_are_refused_with_a_reason_and_nothing_is_issued() {
    let env = LeaseEnv::start("refused").await;
    env.create_pool("pool", &POOL, "1h", "2h").await;
    let pool = env.wait_for_ready_pool("pool").await;
    let problems: Vec<_> = pool
        .status
        .unwrap()
        .users
        .into_iter()
        .map(|u| u.problem)
        .collect();
    assert_eq!(
        problems,
        [
            None,
            Some("Guest".into()),
            Some("SyncedFromOnPremises".into()),
            None,
            Some("NotFound".into())
        ]
    );

    let cases = [
        (
            "too-long",
            json!({ "dynamicSecretRef": { "name": "pool" }, "ttl": "3h" }),
            "TTLExceedsMax",
            LeasePhase::Failed,
        ),
        (
            "stranger",
            json!({ "dynamicSecretRef": { "name": "pool" }, "user": "bob@contoso.onmicrosoft.com" }),
            "UserNotInPool",
            LeasePhase::Failed,
        ),
        (
            "guest",
            json!({ "dynamicSecretRef": { "name": "pool" }, "user": POOL[1] }),
            "UserNotLeasable",
            LeasePhase::Failed,
        ),
        (
            "synced",
            json!({ "dynamicSecretRef": { "name": "pool" }, "user": POOL[2] }),
            "UserNotLeasable",
            LeasePhase::Failed,
        ),
        (
            "orphan",
            json!({ "dynamicSecretRef": { "name": "no-such-pool" } }),
            "DynamicSecretNotFound",
            LeasePhase::Pending,
        ),
    ];
    for (name, spec, _, _) in &cases {
        env.create_lease(name, spec.clone()).await;
    }
    for (name, _, reason, phase) in &cases {
        let lease = wait_for_reason(&env, name, reason).await;
        let status = lease.status.unwrap();
        assert_eq!(status.phase, Some(*phase), "{name}");
        assert!(
            status.user.is_none() && status.secret_name.is_none(),
            "{name}: nothing issued"
        );
    }
    let events = event_reasons(&env).await;
    for (_, _, reason, _) in &cases {
        assert!(events.contains(reason), "an event says {reason}");
    }
    assert_eq!(
        password_writes(&env),
        0,
        "no password was set for any of them"
    );

    // A protected admin looks leasable to a read, but Entra refuses the reset: the lease fails
    // with the reason, the user is released and no Secret is left behind.
    env.create_lease(
        "admin",
        json!({ "dynamicSecretRef": { "name": "pool" }, "user": POOL[3] }),
    )
    .await;
    let lease = wait_for_reason(&env, "admin", "MissingPermission").await;
    assert_eq!(lease.status.unwrap().phase, Some(LeasePhase::Failed));
    assert!(
        env.secrets()
            .get_opt("entra-admin")
            .await
            .unwrap()
            .is_none()
    );
    let grace = env.emulator.user(sample::GRACE_ADMIN.id).unwrap();
    assert_eq!(grace.password_set_count, 0);
}

#[tokio::test]
async fn a_secret_name_taken_by_an_unmanaged_secret_is_never_overwritten() {
    let env = LeaseEnv::start("taken").await;
    env.create_pool("pool", &POOL[..1], "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    let theirs: Secret = serde_json::from_value(json!({
        "metadata": { "name": "precious" },
        "stringData": { "password": "someone else's" }
    }))
    .unwrap();
    env.secrets()
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    env.create_lease(
        "grab",
        json!({ "dynamicSecretRef": { "name": "pool" }, "secretName": "precious" }),
    )
    .await;
    let lease = wait_for_reason(&env, "grab", "SecretConflict").await;
    assert_eq!(lease.status.unwrap().phase, Some(LeasePhase::Failed));
    let kept = env.secrets().get("precious").await.unwrap();
    assert_eq!(kept.data.unwrap()["password"].0, b"someone else's");
    assert!(kept.metadata.owner_references.is_none(), "not adopted");
    assert_eq!(password_writes(&env), 0);
}

#[tokio::test]
async fn a_missing_or_wrong_client_secret_keeps_the_pool_not_ready() {
    let env = LeaseEnv::start("creds").await;
    env.secrets()
        .delete("entra-app", &Default::default())
        .await
        .unwrap();
    env.create_pool("pool", &POOL[..1], "1h", "2h").await;
    env.wait_for("the pool to report the missing Secret", || async {
        env.pools().get("pool").await.unwrap().status.filter(|s| {
            s.conditions
                .iter()
                .any(|c| c.reason == "ClientSecretNotFound" && c.status == "False")
        })
    })
    .await;
    env.create_lease("early", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    let lease = wait_for_reason(&env, "early", "DynamicSecretNotReady").await;
    assert_eq!(lease.status.unwrap().phase, Some(LeasePhase::Pending));

    // A wrong value is named precisely; the pool re-validates as soon as the Secret changes.
    env.create_client_secret("wrong-secret-value").await;
    env.wait_for("the pool to report the wrong secret", || async {
        env.pools().get("pool").await.unwrap().status.filter(|s| {
            s.conditions
                .iter()
                .any(|c| c.reason == "InvalidClientSecret")
        })
    })
    .await;
    assert_eq!(password_writes(&env), 0);

    // Fixing the Secret readies the pool and the waiting lease is issued.
    env.create_client_secret(support::lease_env::CLIENT_SECRET)
        .await;
    env.wait_for_ready_pool("pool").await;
    env.wait_for_phase("early", LeasePhase::Active).await;
}

#[tokio::test]
async fn restoring_a_deleted_or_edited_secret_issues_a_fresh_password() {
    let env = LeaseEnv::start("restore").await;
    env.create_pool("pool", &POOL[..1], "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    env.create_lease("mine", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    env.wait_for_phase("mine", LeasePhase::Active).await;
    let (user, first) = env.credentials("entra-mine").await;

    env.secrets()
        .delete("entra-mine", &Default::default())
        .await
        .unwrap();
    let second = env
        .wait_for("the Secret to be restored", || async {
            let secret = env.secrets().get_opt("entra-mine").await.unwrap()?;
            let password = String::from_utf8(secret.data?.get("password")?.0.clone()).ok()?;
            (password != first && env.emulator.sign_in(&user, &password)).then_some(password)
        })
        .await;
    assert!(
        !env.emulator.sign_in(&user, &first),
        "the deleted Secret's password is dead"
    );

    let patch = json!({ "stringData": { "password": "edited-by-hand" } });
    env.secrets()
        .patch(
            "entra-mine",
            &Default::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    // Edited soon after a restore: the credential ends at once, and the restore follows the
    // lease's restore backoff (30 s after the first).
    env.wait_for("the edited Secret's password to be ended", || async {
        (!env.emulator.sign_in(&user, &second)).then_some(())
    })
    .await;
    env.wait_for("the edited Secret to be restored", || async {
        let secret = env.secrets().get_opt("entra-mine").await.unwrap()?;
        let password = String::from_utf8(secret.data?.get("password")?.0.clone()).ok()?;
        (password != "edited-by-hand"
            && password != second
            && env.emulator.sign_in(&user, &password))
        .then_some(())
    })
    .await;
    assert!(!env.emulator.sign_in(&user, &second));
    let lease = env.wait_for_phase("mine", LeasePhase::Active).await;
    assert_eq!(lease.status.unwrap().renew_count, 0);
}

#[tokio::test]
async fn a_protected_admin_in_the_pool_is_set_aside_for_the_next_free_user() {
    let env = LeaseEnv::start("protected").await;
    let pool = [
        "grace@contoso.onmicrosoft.com",
        "carol@contoso.onmicrosoft.com",
    ];
    env.create_pool("pool", &pool, "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    env.create_lease("any", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    let lease = env.wait_for_phase("any", LeasePhase::Active).await;
    let user = lease.status.unwrap().user.unwrap();
    assert_eq!(user.user_principal_name, "carol@contoso.onmicrosoft.com");
    env.wait_for_user_problem("pool", "grace", "PasswordResetForbidden")
        .await;
    assert_eq!(
        env.emulator
            .user(sample::GRACE_ADMIN.id)
            .unwrap()
            .password_set_count,
        0
    );
}

#[tokio::test]
async fn protected_users_are_known_up_front_when_the_app_may_read_memberships() {
    let mut config = Config::sample();
    let tenant = &mut config.tenants[0];
    let app = tenant.app_mut(sample::CLIENT_ID).unwrap();
    app.permissions.push("Directory.Read.All".into());
    tenant
        .user_mut(sample::BOB.id)
        .unwrap()
        .role_assignable_group_member = true;
    let env = LeaseEnv::start_with("known-protected", config).await;
    let pool = [
        "grace@contoso.onmicrosoft.com",
        "bob@contoso.onmicrosoft.com",
        "carol@contoso.onmicrosoft.com",
    ];
    env.create_pool("pool", &pool, "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    env.wait_for_user_problem("pool", "grace", "Protected")
        .await;
    env.wait_for_user_problem("pool", "bob", "Protected").await;
    let status = env.pools().get("pool").await.unwrap().status.unwrap();
    assert_eq!(status.available, 1);
    assert!(
        env.emulator
            .counters()
            .operation(Operation::ListMemberships)
            >= 3
    );

    env.create_lease(
        "admin",
        json!({ "dynamicSecretRef": { "name": "pool" }, "user": "grace@contoso.onmicrosoft.com" }),
    )
    .await;
    wait_for_reason(&env, "admin", "UserNotLeasable").await;
    // Refused from the pool's resolution: not one password write or session revocation.
    assert_eq!(env.emulator.counters().graph_writes, 0);
    assert_eq!(
        env.emulator
            .user(sample::GRACE_ADMIN.id)
            .unwrap()
            .password_set_count,
        0
    );
}

#[tokio::test]
async fn a_user_deleted_in_entra_after_resolution_is_set_aside_for_the_next_free_user() {
    let env = LeaseEnv::start("vanished").await;
    let pool = [
        "alice@contoso.onmicrosoft.com",
        "carol@contoso.onmicrosoft.com",
    ];
    env.create_pool("pool", &pool, "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    // Entra loses the first user after the pool resolved it: the pool's status still lists it.
    assert!(env.emulator.delete_user("alice@contoso.onmicrosoft.com"));
    env.create_lease("any", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    let lease = env.wait_for_phase("any", LeasePhase::Active).await;
    let user = lease.status.unwrap().user.unwrap();
    assert_eq!(user.user_principal_name, "carol@contoso.onmicrosoft.com");
    // The pool resolves its users again and says why the first one cannot be leased.
    env.wait_for_user_problem("pool", "alice", "NotFound").await;
}
