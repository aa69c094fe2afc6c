//! Crash windows, deterministic: the emulator holds the one Graph request that ends a step (the
//! password PATCH of an issue, the scramble of a revocation, the disabling of an idle account),
//! the operator is killed while it is held, and the restarted operator must converge with
//! invariants I1 to I3, I7 and I9 intact.
//! `Fault::LostResponse` applies a PATCH and drops its answer, as a network failure after Entra
//! committed would.

use entra_test_support as support;

use std::time::Duration;

use entra_emulator::{Fault, FaultPlan, Operation, sample};
use entra_operator::api::LeasePhase;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use support::lease_env::LeaseEnv;

/// Longer than any test waits: the held request is answered only by the operator's death.
const HELD: Duration = Duration::from_secs(120);

async fn env_with_pool(prefix: &str) -> LeaseEnv {
    let env = LeaseEnv::start(prefix).await;
    env.create_pool("pool", &[sample::ALICE.upn], "1h", "2h")
        .await;
    env.wait_for_ready_pool("pool").await;
    env
}

/// Sets `faults` for password PATCHes only, and returns once all of them were drawn: the last
/// one is the request being held now.
async fn hold_password_patches(env: &LeaseEnv, faults: Vec<Fault>) -> impl Fn() -> bool + '_ {
    env.emulator
        .set_faults(FaultPlan::script(faults).only([Operation::SetPassword]));
    move || env.emulator.faults().script.is_empty()
}

async fn wait_until_drawn(env: &LeaseEnv, drawn: impl Fn() -> bool) {
    env.wait_for("the held password PATCH to arrive", || async {
        drawn().then_some(())
    })
    .await;
}

/// The password in the lease's Secret (`entra-<lease>`), if the Secret exists.
async fn secret_password(env: &LeaseEnv, lease: &str) -> Option<String> {
    let secret = env
        .secrets()
        .get_opt(&format!("entra-{lease}"))
        .await
        .unwrap()?;
    Some(String::from_utf8(secret.data?["password"].0.clone()).unwrap())
}

/// Issues lease `svc` and kills the operator once its password PATCH took effect but before it
/// learnt so (the answer was lost, the retry is held). Returns the password now set.
async fn issue_then_crash_after_the_patch(env: &mut LeaseEnv) -> String {
    let drawn = hold_password_patches(env, vec![Fault::LostResponse, Fault::timeout(HELD)]).await;
    env.create_lease("svc", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    wait_until_drawn(env, drawn).await;
    env.operator.kill();
    secret_password(env, "svc")
        .await
        .expect("the Secret exists")
}

/// Restarts the crashed operator with Graph healthy again: the issue resumes with `written`, the
/// password already in the Secret, and every invariant holds.
async fn restart_and_resume(env: &mut LeaseEnv, written: &str) {
    env.emulator.clear_faults();
    env.operator.restart();
    env.wait_for_phase("svc", LeasePhase::Active).await;
    assert_eq!(
        secret_password(env, "svc").await.as_deref(),
        Some(written),
        "the resumed issue sets the password already in the Secret"
    );
    assert!(env.emulator.sign_in(sample::ALICE.upn, written));
    assert_eq!(env.violations().await, Vec::<String>::new());
}

async fn claims(env: &LeaseEnv) -> usize {
    let api: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(env.client.clone(), &env.namespace);
    api.list(&ListParams::default().labels("app.kubernetes.io/managed-by=entra-operator"))
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::test]
async fn a_crash_after_the_secret_write_and_before_the_password_patch_converges() {
    let mut env = env_with_pool("cw-before-patch").await;
    let drawn = hold_password_patches(&env, vec![Fault::timeout(HELD)]).await;
    env.create_lease("svc", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    wait_until_drawn(&env, drawn).await;
    let written = secret_password(&env, "svc")
        .await
        .expect("the Secret is written before the PATCH");
    env.operator.kill();
    assert!(
        !env.emulator.sign_in(sample::ALICE.upn, &written),
        "the held PATCH had no effect: the window is real"
    );
    restart_and_resume(&mut env, &written).await;
}

#[tokio::test]
async fn a_crash_after_the_password_patch_and_before_the_status_write_converges() {
    let mut env = env_with_pool("cw-after-patch").await;
    let written = issue_then_crash_after_the_patch(&mut env).await;
    assert!(
        env.emulator.sign_in(sample::ALICE.upn, &written),
        "the first PATCH took effect: the window is real"
    );
    let lease = env.lease("svc").await.unwrap();
    assert_ne!(
        lease.status.and_then(|s| s.phase),
        Some(LeasePhase::Active),
        "the status was not written yet"
    );
    restart_and_resume(&mut env, &written).await;
}

#[tokio::test]
async fn a_crash_during_revocation_converges() {
    let mut env = env_with_pool("cw-revoke").await;
    env.create_lease("svc", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    env.wait_for_phase("svc", LeasePhase::Active).await;
    let issued = secret_password(&env, "svc").await.unwrap();

    let drawn = hold_password_patches(&env, vec![Fault::timeout(HELD)]).await;
    env.leases()
        .delete("svc", &Default::default())
        .await
        .unwrap();
    wait_until_drawn(&env, drawn).await;
    env.operator.kill();
    assert!(
        env.emulator.sign_in(sample::ALICE.upn, &issued),
        "the held scramble had no effect: the window is real"
    );
    assert_eq!(claims(&env).await, 1, "the claim outlives the crash");

    env.emulator.clear_faults();
    env.operator.restart();
    env.wait_until_gone("svc").await;
    assert!(!env.emulator.sign_in(sample::ALICE.upn, &issued));
    assert_eq!(claims(&env).await, 0, "the user is released");
    assert_eq!(env.violations().await, Vec::<String>::new());
}

/// entra-graph.md's case: the first PATCH took effect but its answer was lost, and the retry after
/// a restart is refused for good (here the user became a protected admin meanwhile). The claim
/// stays and the credential is ended instead of released unscrambled; once Entra allows it again
/// the operator converges.
#[tokio::test]
async fn a_resumed_issue_refused_for_good_keeps_the_claim_until_the_credential_ends() {
    let mut env = env_with_pool("cw-refused").await;
    let written = issue_then_crash_after_the_patch(&mut env).await;
    assert!(env.emulator.sign_in(sample::ALICE.upn, &written));

    env.emulator.clear_faults();
    env.emulator.update_user(sample::ALICE.id, |user| {
        user.directory_roles = vec!["Global Administrator".into()];
    });
    env.emulator.reset_counters();
    env.operator.restart();
    env.wait_for("the resumed PATCH and a scramble to be refused", || async {
        let counters = env.emulator.counters();
        let refused = counters
            .by_operation_and_status
            .get(&Operation::SetPassword)
            .and_then(|by_status| by_status.get(&403))
            .copied()
            .unwrap_or(0);
        (refused >= 2).then_some(())
    })
    .await;
    assert_eq!(
        claims(&env).await,
        1,
        "a password that may work is never released unscrambled"
    );

    // Entra allows it again: the credential ends or the issue completes, and nothing that
    // works is left outside a live lease.
    env.emulator.update_user(sample::ALICE.id, |user| {
        user.directory_roles.clear();
    });
    env.wait_for("the lease to settle", || async {
        let lease = env.lease("svc").await?;
        let phase = lease.status.and_then(|s| s.phase)?;
        matches!(
            phase,
            LeasePhase::Active | LeasePhase::Failed | LeasePhase::Pending
        )
        .then_some(())
    })
    .await;
    env.wait_for("the claim to match the lease", || async {
        let lease = env.lease("svc").await?;
        let active = lease.status.and_then(|s| s.phase) == Some(LeasePhase::Active);
        let claimed = claims(&env).await == 1;
        (active == claimed).then_some(())
    })
    .await;
    assert_eq!(env.violations().await, Vec::<String>::new());
}

/// A Secret deleted again soon after a restore ends the credential before its restore waits:
/// here the scramble took effect but its answer was lost, and the operator died before recording
/// the wait. The restarted operator cannot know the scramble happened: it ends the credential
/// again, waits out the lease's restore backoff (kept in the claim), then restores.
#[tokio::test]
async fn a_crash_while_a_deferred_restore_scrambles_converges() {
    let mut env = env_with_pool("cw-deferred-restore").await;
    env.create_lease("svc", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    env.wait_for_phase("svc", LeasePhase::Active).await;
    let issued = secret_password(&env, "svc").await.unwrap();
    env.secrets()
        .delete("entra-svc", &Default::default())
        .await
        .unwrap();
    let restored = env
        .wait_for("the first restore, at once", || async {
            let password = secret_password(&env, "svc").await?;
            (password != issued && env.emulator.sign_in(sample::ALICE.upn, &password))
                .then_some(password)
        })
        .await;

    let drawn = hold_password_patches(&env, vec![Fault::LostResponse, Fault::timeout(HELD)]).await;
    env.secrets()
        .delete("entra-svc", &Default::default())
        .await
        .unwrap();
    wait_until_drawn(&env, drawn).await;
    env.operator.kill();
    assert!(
        !env.emulator.sign_in(sample::ALICE.upn, &restored),
        "the scramble took effect: the window is real"
    );
    let uid = env.lease("svc").await.unwrap().metadata.uid.unwrap();
    let claim = env.tracked().latest_claim(&uid).cloned().unwrap();
    assert!(
        claim.record.restore_at.is_none(),
        "the wait was not recorded yet"
    );

    env.emulator.clear_faults();
    env.operator.restart();
    env.wait_for("the restore to wait for the lease's backoff", || async {
        let status = env.lease("svc").await?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (ready.reason == "RestoreBackoff").then_some(())
    })
    .await;
    assert!(!env.emulator.sign_in(sample::ALICE.upn, &restored));
    let fresh = env
        .wait_for("the restore after the backoff", || async {
            let password = secret_password(&env, "svc").await?;
            (password != restored && env.emulator.sign_in(sample::ALICE.upn, &password))
                .then_some(password)
        })
        .await;
    assert!(!env.emulator.sign_in(sample::ALICE.upn, &issued));
    assert!(env.emulator.sign_in(sample::ALICE.upn, &fresh));
    assert_eq!(env.violations().await, Vec::<String>::new());
}

/// A pool over Alice that disables idle users, with Alice disabled by the operator after a first
/// lease.
async fn env_with_idle_disabled_alice(prefix: &str) -> LeaseEnv {
    let env = env_with_pool(prefix).await;
    let idle = json!({ "spec": { "disableIdleUsers": true } });
    env.pools()
        .patch("pool", &PatchParams::default(), &Patch::Merge(&idle))
        .await
        .unwrap();
    env.wait_for("the pool to resolve its new generation", || async {
        let pool = env.pools().get("pool").await.ok()?;
        let status = pool.status?;
        (status.observed_generation == pool.metadata.generation).then_some(())
    })
    .await;
    env.create_lease("first", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    env.wait_for_phase("first", LeasePhase::Active).await;
    env.end_lease("first").await;
    assert!(!env.emulator.user(sample::ALICE.id).unwrap().account_enabled);
    env
}

/// The operator's markers of the accounts it disabled.
async fn disabled_markers(env: &LeaseEnv) -> usize {
    let api: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(env.client.clone(), &env.namespace);
    let markers = ListParams::default().labels("kms.hanzo.ai/disabled-user-id");
    api.list(&markers).await.unwrap().items.len()
}

/// Killed with the end's disabling PATCH held (its marker written): the restarted operator
/// disables the account and releases the user.
#[tokio::test]
async fn a_crash_before_an_idle_account_is_disabled_converges() {
    let mut env = env_with_idle_disabled_alice("cw-disable").await;
    env.create_lease("svc", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    env.wait_for_phase("svc", LeasePhase::Active).await;
    assert!(env.emulator.user(sample::ALICE.id).unwrap().account_enabled);
    assert_eq!(
        disabled_markers(&env).await,
        0,
        "the issue removed the marker"
    );

    env.emulator.set_faults(
        FaultPlan::script(vec![Fault::timeout(HELD)]).only([Operation::SetAccountEnabled]),
    );
    env.leases()
        .delete("svc", &Default::default())
        .await
        .unwrap();
    env.wait_for("the held disabling PATCH to arrive", || async {
        env.emulator.faults().script.is_empty().then_some(())
    })
    .await;
    env.operator.kill();
    assert!(
        env.emulator.user(sample::ALICE.id).unwrap().account_enabled,
        "the held PATCH had no effect: the window is real"
    );
    assert_eq!(disabled_markers(&env).await, 1, "the marker came first");
    assert_eq!(claims(&env).await, 1, "the claim outlives the crash");

    env.emulator.clear_faults();
    env.operator.restart();
    env.wait_until_gone("svc").await;
    assert!(!env.emulator.user(sample::ALICE.id).unwrap().account_enabled);
    assert_eq!(claims(&env).await, 0, "the user is released");
    assert_eq!(env.violations().await, Vec::<String>::new());
}

/// Killed with the issue's password PATCH held, the account already enabled for it, and the lease
/// deleted while the operator is down: the restarted operator ends the credential and disables
/// the account again.
#[tokio::test]
async fn a_crash_after_an_account_was_enabled_for_an_issue_converges() {
    let mut env = env_with_idle_disabled_alice("cw-enable").await;
    let drawn = hold_password_patches(&env, vec![Fault::timeout(HELD)]).await;
    env.create_lease("svc", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    wait_until_drawn(&env, drawn).await;
    env.operator.kill();
    assert!(
        env.emulator.user(sample::ALICE.id).unwrap().account_enabled,
        "the account was enabled right before its password: the window is real"
    );
    assert_eq!(disabled_markers(&env).await, 0);
    env.leases()
        .delete("svc", &Default::default())
        .await
        .unwrap();

    env.emulator.clear_faults();
    env.operator.restart();
    env.wait_until_gone("svc").await;
    assert!(
        !env.emulator.user(sample::ALICE.id).unwrap().account_enabled,
        "the account enabled for an issue that ended is disabled again"
    );
    assert_eq!(claims(&env).await, 0, "the user is released");
    assert_eq!(env.violations().await, Vec::<String>::new());
}
