//! Temporary Access Pass leases: Entra creates the pass and ends it at its lifetime, with the
//! operator down too; TTLs outside the tenant's policy, renewals and rotations are refused with
//! a reason; a pass pool whose app cannot remove sign-in methods does not issue; every end
//! deletes the pass and the methods registered with it.

use std::time::Duration;

use entra_test_support as support;

use entra_emulator::{MethodKind, Operation, sample};
use entra_operator::api::{EntraLease, LeasePhase};
use serde_json::json;
use support::lease_env::{APP_ID, LeaseEnv};

const PASS_POOL: &str = "passes";

/// A pass pool over Alice and Bob: the tenant's default policy (1h to 8h).
async fn pass_pool(env: &LeaseEnv, extra: serde_json::Value) {
    let mut spec = json!({
        "credentialType": "TemporaryAccessPass",
        "defaultTTL": "1h",
        "maxTTL": "8h",
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    env.create_pool_with(PASS_POOL, &[sample::ALICE.upn, sample::BOB.upn], spec)
        .await;
}

/// The lease's user id and the pass in its Secret.
async fn issued_pass(env: &LeaseEnv, lease: &EntraLease) -> (String, String) {
    let status = lease.status.clone().unwrap();
    let secret = env
        .secrets()
        .get(&status.secret_name.unwrap())
        .await
        .unwrap();
    let data = secret.data.unwrap();
    assert!(
        !data.contains_key("password"),
        "a pass lease hands out no password"
    );
    let pass = String::from_utf8(data["temporaryAccessPass"].0.clone()).unwrap();
    (status.user.unwrap().id, pass)
}

/// The reason and message of the lease's Ready condition.
fn ready(lease: &EntraLease) -> (String, String) {
    let status = lease.status.as_ref().unwrap();
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_tap_lease_issues_a_pass_that_signs_in() {
    let env = LeaseEnv::start("tap-issue").await;
    pass_pool(&env, json!({})).await;
    env.wait_for_ready_pool(PASS_POOL).await;
    let asked_at = k8s_openapi::jiff::Timestamp::now();
    env.create_lease("ci", json!({ "dynamicSecretRef": { "name": PASS_POOL } }))
        .await;
    let lease = env.wait_for_phase("ci", LeasePhase::Active).await;
    let (user, pass) = issued_pass(&env, &lease).await;
    assert!(env.emulator.pass_is_live(&user, &pass));
    assert!(env.emulator.sign_in_with_pass(&user, &pass));
    // expiresAt is Entra's: the pass's start plus its hour.
    let expires_at = lease.status.unwrap().expires_at.unwrap().0;
    let hour = k8s_openapi::jiff::SignedDuration::from_hours(1);
    assert!(expires_at >= asked_at + hour - k8s_openapi::jiff::SignedDuration::from_secs(2));
    assert!(expires_at <= k8s_openapi::jiff::Timestamp::now() + hour);
    assert_eq!(env.emulator.counters().operation(Operation::SetPassword), 0);

    // With the pass the holder registers a passkey; the end deletes both.
    let passkey = env
        .emulator
        .register_method(&user, MethodKind::Fido2)
        .unwrap();
    assert_eq!(env.violations().await, Vec::<String>::new());
    env.end_lease("ci").await;
    assert!(!env.emulator.sign_in_with_pass(&user, &pass));
    assert!(!env.emulator.sign_in_with_method(&user, &passkey.id));
    assert!(env.emulator.user(&user).unwrap().methods.is_empty());
    assert_eq!(env.violations().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_tap_lease_ends_when_entra_ends_it() {
    let mut env = LeaseEnv::start("tap-entra-ends").await;
    pass_pool(&env, json!({})).await;
    env.create_lease("ci", json!({ "dynamicSecretRef": { "name": PASS_POOL } }))
        .await;
    let lease = env.wait_for_phase("ci", LeasePhase::Active).await;
    let (user, pass) = issued_pass(&env, &lease).await;
    // The operator is down past the pass's end: Entra ends it all the same.
    env.operator.kill();
    env.emulator.advance_clock(Duration::from_secs(59 * 60));
    assert!(env.emulator.sign_in_with_pass(&user, &pass));
    env.emulator.advance_clock(Duration::from_secs(2 * 60));
    assert!(!env.emulator.sign_in_with_pass(&user, &pass));
    env.operator.restart();
}

#[tokio::test]
async fn a_tap_ttl_outside_the_policy_is_refused() {
    let env = LeaseEnv::start("tap-ttl").await;
    pass_pool(&env, json!({})).await;
    env.wait_for_ready_pool(PASS_POOL).await;
    env.create_lease(
        "short",
        json!({ "dynamicSecretRef": { "name": PASS_POOL }, "ttl": "30m" }),
    )
    .await;
    let lease = env.wait_for_phase("short", LeasePhase::Failed).await;
    let (reason, message) = ready(&lease);
    assert_eq!(reason, "TTLOutsidePassPolicy");
    assert!(message.contains("1h to 8h"), "{message}");
    assert_eq!(env.emulator.counters().operation(Operation::CreatePass), 0);
}

/// The choice for renewals: a pass's lifetime is fixed, so a renewal is declined with a reason
/// and the pass runs to its end (a new lease gets a new pass).
#[tokio::test]
async fn a_tap_lease_is_not_renewed_and_says_why() {
    let env = LeaseEnv::start("tap-renew").await;
    pass_pool(&env, json!({})).await;
    env.create_lease("ci", json!({ "dynamicSecretRef": { "name": PASS_POOL } }))
        .await;
    let lease = env.wait_for_phase("ci", LeasePhase::Active).await;
    let expires_at = lease.status.clone().unwrap().expires_at;
    let (user, pass) = issued_pass(&env, &lease).await;
    env.annotate("ci", "kms.hanzo.ai/renew", "1").await;
    let declined = env.events("NotForAccessPass").await;
    assert!(
        declined.iter().any(|note| note.contains("fixed")),
        "{declined:?}"
    );
    let lease = env.lease("ci").await.unwrap();
    assert_eq!(lease.status.unwrap().expires_at, expires_at);
    assert!(env.emulator.pass_is_live(&user, &pass), "the pass runs on");
    // autoRenew and rotation are refused up front.
    env.create_lease(
        "auto",
        json!({ "dynamicSecretRef": { "name": PASS_POOL }, "autoRenew": true }),
    )
    .await;
    let auto = env.wait_for_phase("auto", LeasePhase::Failed).await;
    assert_eq!(ready(&auto).0, "NotForAccessPass");
}

#[tokio::test]
async fn taking_a_tap_leases_secret_ends_it() {
    let env = LeaseEnv::start("tap-secret").await;
    pass_pool(&env, json!({})).await;
    env.create_lease("ci", json!({ "dynamicSecretRef": { "name": PASS_POOL } }))
        .await;
    let lease = env.wait_for_phase("ci", LeasePhase::Active).await;
    let (user, pass) = issued_pass(&env, &lease).await;
    let secret = lease.status.unwrap().secret_name.unwrap();
    env.secrets()
        .delete(&secret, &Default::default())
        .await
        .unwrap();
    env.wait_until_gone("ci").await;
    assert!(!env.emulator.pass_is_live(&user, &pass));
    assert_eq!(env.emulator.counters().operation(Operation::CreatePass), 1);
}

#[tokio::test]
async fn a_tap_pool_without_method_removal_is_not_ready() {
    let env = LeaseEnv::start("tap-not-ready").await;
    pass_pool(&env, json!({ "signInMethods": "Keep" })).await;
    let reason = pool_not_ready(&env).await;
    assert_eq!(reason.0, "AccessPassMisconfigured");
    assert!(reason.1.contains("RemoveAddedDuringLease"), "{}", reason.1);

    // With method removal, but an app that may not manage methods.
    env.pools()
        .delete(PASS_POOL, &Default::default())
        .await
        .unwrap();
    env.wait_for("the pool to be gone", || async {
        env.pools()
            .get_opt(PASS_POOL)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    env.emulator.update_app(APP_ID, |app| {
        app.permissions
            .retain(|p| !p.starts_with("UserAuthenticationMethod."));
    });
    pass_pool(&env, json!({})).await;
    let reason = pool_not_ready(&env).await;
    assert_eq!(reason.0, "MethodsPermissionMissing");
    assert!(
        reason.1.contains("UserAuthenticationMethod.ReadWrite.All"),
        "{}",
        reason.1
    );
    env.create_lease("ci", json!({ "dynamicSecretRef": { "name": PASS_POOL } }))
        .await;
    let lease = env.wait_for_phase("ci", LeasePhase::Pending).await;
    assert_eq!(ready(&lease).0, "DynamicSecretNotReady");
    assert_eq!(env.emulator.counters().operation(Operation::CreatePass), 0);
}

/// The pass pool's Ready condition once False: its reason and message.
async fn pool_not_ready(env: &LeaseEnv) -> (String, String) {
    env.wait_for("the pass pool to be not Ready", || async {
        let pool = env.pools().get(PASS_POOL).await.ok()?;
        pool.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "Ready" && c.status == "False")
            .map(|c| (c.reason, c.message))
    })
    .await
}
