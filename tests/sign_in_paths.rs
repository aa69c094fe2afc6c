//! Invariant I9, the end is the end on Entra's side: sign-in methods a holder registers during a
//! lease are deleted at its end (the reaper's included), methods present before it are kept and
//! reported, a pool whose app may not manage methods says so and still issues, and with
//! `disableIdleUsers` accounts are disabled between leases, never enabling one an administrator
//! disabled.

use entra_test_support as support;

use entra_emulator::{MethodKind, Operation, UserType, sample};
use entra_operator::api::LeasePhase;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use support::lease_env::{APP_ID, LeaseEnv};

const METHODS_PERMISSION: &str = "UserAuthenticationMethod.ReadWrite.All";

/// Waits until pool `name` shows `SignInMethodsManaged` with `status`; returns its reason and
/// message.
async fn methods_condition(env: &LeaseEnv, name: &str, status: &str) -> (String, String) {
    env.wait_for(
        &format!("{name}'s SignInMethodsManaged to be {status}"),
        || async {
            let pool = env.pools().get(name).await.unwrap();
            pool.status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "SignInMethodsManaged" && c.status == status)
                .map(|c| (c.reason, c.message))
        },
    )
    .await
}

/// Issues lease `name` of `pool`, waits until it is active, and returns its user's object id.
async fn lease_user(env: &LeaseEnv, name: &str, pool: &str) -> String {
    env.create_lease(name, json!({ "dynamicSecretRef": { "name": pool } }))
        .await;
    let lease = env.wait_for_phase(name, LeasePhase::Active).await;
    lease
        .status
        .unwrap()
        .user
        .expect("an active lease names its user")
        .id
}

async fn wait_for_methods_gone(env: &LeaseEnv, user: &str) {
    env.wait_for("the holder's sign-in methods to be deleted", || async {
        let user = env.emulator.user(user)?;
        (!user.methods.iter().any(|m| m.by_holder)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_method_registered_during_a_lease_is_removed_at_its_end() {
    let mut env = LeaseEnv::start("methods-end").await;
    env.create_pool_with("pool", &[sample::ALICE.upn, sample::BOB.upn], json!({}))
        .await;
    let (reason, _) = methods_condition(&env, "pool", "True").await;
    assert_eq!(reason, "RemovedAtLeaseEnd");

    // A holder signs in with the leased password and registers a passkey and the Authenticator.
    let user = lease_user(&env, "ci", "pool").await;
    let passkey = env
        .emulator
        .register_method(&user, MethodKind::Fido2)
        .unwrap();
    let app = env
        .emulator
        .register_method(&user, MethodKind::MicrosoftAuthenticator)
        .unwrap();
    assert!(env.emulator.sign_in_with_method(&user, &passkey.id));
    env.end_lease("ci").await;
    assert!(
        env.emulator.user(&user).unwrap().methods.is_empty(),
        "both methods are deleted before the lease is gone"
    );
    assert!(!env.emulator.sign_in_with_method(&user, &passkey.id));
    assert!(!env.emulator.sign_in_with_method(&user, &app.id));
    let revoked = env.events("Revoked").await;
    assert!(
        revoked.iter().any(|note| note
            .contains("2 sign-in methods added during the lease deleted")
            && note.contains("sessions revoked (valid from")),
        "the event tells what ended: {revoked:?}"
    );

    // The reaper, with the operator killed while the holder stripped the lease's finalizer.
    let user = lease_user(&env, "svc", "pool").await;
    env.emulator
        .register_method(&user, MethodKind::Phone)
        .unwrap();
    env.operator.kill();
    let strip = json!({ "metadata": { "finalizers": null } });
    env.leases()
        .patch("svc", &PatchParams::default(), &Patch::Merge(&strip))
        .await
        .unwrap();
    env.leases()
        .delete("svc", &DeleteParams::default())
        .await
        .unwrap();
    env.wait_until_gone("svc").await;
    env.operator.restart();
    wait_for_methods_gone(&env, &user).await;
    env.wait_for("the reaper to release the user", || async {
        let claims = env.claims().list(&ListParams::default()).await.unwrap();
        claims.items.is_empty().then_some(())
    })
    .await;
    assert_eq!(env.violations().await, Vec::<String>::new());
}

#[tokio::test]
async fn methods_present_before_the_lease_are_kept_and_reported() {
    let env = LeaseEnv::start("methods-kept").await;
    // An administrator registered a phone for Alice before she joined the pool.
    let existing = env
        .emulator
        .register_method(sample::ALICE.id, MethodKind::Phone)
        .unwrap();
    env.emulator.update_user(sample::ALICE.id, |user| {
        user.methods.iter_mut().for_each(|m| m.by_holder = false);
    });
    env.create_pool_with("pool", &[sample::ALICE.upn], json!({}))
        .await;
    methods_condition(&env, "pool", "True").await;
    let pool = env.pools().get("pool").await.unwrap();
    let alice = &pool.status.unwrap().users[0];
    assert_eq!(alice.other_sign_in_methods, Some(1));
    let warned = env.events("OtherSignInMethods").await;
    assert!(
        warned.iter().any(|note| note.contains(sample::ALICE.upn)),
        "a warning names the user: {warned:?}"
    );
    assert!(
        warned.iter().all(|note| !note.contains(&existing.id)),
        "and never the method: {warned:?}"
    );

    let user = lease_user(&env, "ci", "pool").await;
    let added = env
        .emulator
        .register_method(&user, MethodKind::Fido2)
        .unwrap();
    env.end_lease("ci").await;
    let methods = env.emulator.user(&user).unwrap().methods;
    let ids: Vec<&str> = methods.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids,
        [existing.id.as_str()],
        "the method from before the lease stays, the one added during it ({}) is deleted",
        added.id
    );
    assert!(env.emulator.sign_in_with_method(&user, &existing.id));
    assert_eq!(env.violations().await, Vec::<String>::new());
}

/// Graph fixes a phone's id (and an email method's): a holder who changes the number of a phone
/// present before the lease keeps its id, and must not keep the phone.
#[tokio::test]
async fn a_phone_from_before_the_lease_whose_number_the_holder_changed_is_deleted() {
    let env = LeaseEnv::start("methods-phone").await;
    let phone = env
        .emulator
        .register_method(sample::ALICE.id, MethodKind::Phone)
        .unwrap();
    env.emulator.update_user(sample::ALICE.id, |user| {
        for method in &mut user.methods {
            method.by_holder = false;
            method.detail = Some("+1 555 0100".into());
        }
    });
    env.create_pool_with("pool", &[sample::ALICE.upn], json!({}))
        .await;
    methods_condition(&env, "pool", "True").await;

    let user = lease_user(&env, "ci", "pool").await;
    env.emulator.update_user(&user, |user| {
        for method in &mut user.methods {
            method.by_holder = true;
            method.detail = Some("+1 555 0199".into());
        }
    });
    env.end_lease("ci").await;
    assert!(
        env.emulator.user(&user).unwrap().methods.is_empty(),
        "the phone with the holder's number is deleted"
    );
    assert!(!env.emulator.sign_in_with_method(&user, &phone.id));
    assert_eq!(env.violations().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_pool_whose_app_may_not_manage_methods_says_so_and_still_issues() {
    let env = LeaseEnv::start("methods-denied").await;
    env.emulator.update_app(APP_ID, |app| {
        app.permissions.retain(|p| p != METHODS_PERMISSION);
    });
    env.create_pool_with("pool", &[sample::ALICE.upn], json!({}))
        .await;
    let (reason, message) = methods_condition(&env, "pool", "False").await;
    assert_eq!(reason, "MethodsPermissionMissing");
    assert!(message.contains(METHODS_PERMISSION), "{message}");
    env.wait_for_ready_pool("pool").await;

    let user = lease_user(&env, "ci", "pool").await;
    let method = env
        .emulator
        .register_method(&user, MethodKind::Fido2)
        .unwrap();
    env.end_lease("ci").await;
    let after = env.emulator.user(&user).unwrap();
    assert!(
        after.password_set_count >= 2,
        "the password was scrambled at the end all the same"
    );
    assert!(
        env.emulator.sign_in_with_method(&user, &method.id),
        "without the permission the method outlives the lease, as the condition says"
    );

    // With Keep, the condition says so too.
    let keep = json!({ "spec": { "signInMethods": "Keep" } });
    env.pools()
        .patch("pool", &PatchParams::default(), &Patch::Merge(&keep))
        .await
        .unwrap();
    let (reason, message) = env
        .wait_for("the condition to say Keep", || async {
            let pool = env.pools().get("pool").await.unwrap();
            pool.status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "SignInMethodsManaged" && c.reason == "KeptAfterLease")
                .map(|c| (c.reason, c.message))
        })
        .await;
    assert!(message.contains("Keep"), "{message}");
    assert_eq!(reason, "KeptAfterLease");
}

#[tokio::test]
async fn idle_users_are_disabled_between_leases() {
    let env = LeaseEnv::start("idle-disabled").await;
    env.create_pool_with(
        "pool",
        &[sample::ALICE.upn],
        json!({ "disableIdleUsers": true }),
    )
    .await;
    env.wait_for_ready_pool("pool").await;
    for round in ["first", "second"] {
        let user = lease_user(&env, round, "pool").await;
        let (_, password) = env.credentials(&format!("entra-{round}")).await;
        assert!(
            env.emulator.sign_in(&user, &password),
            "the {round} lease's account is enabled and its password works"
        );
        env.end_lease(round).await;
        assert!(
            !env.emulator.user(&user).unwrap().account_enabled,
            "after the {round} lease the account is disabled"
        );
        assert_eq!(env.violations().await, Vec::<String>::new());
    }
}

#[tokio::test]
async fn an_account_an_administrator_disabled_is_never_enabled() {
    let env = LeaseEnv::start("admin-disabled").await;
    env.emulator
        .update_user(sample::BOB.id, |user| user.account_enabled = false);
    env.create_pool_with(
        "pool",
        &[sample::ALICE.upn, sample::BOB.upn],
        json!({ "disableIdleUsers": true }),
    )
    .await;
    env.wait_for_user_problem("pool", sample::BOB.upn, "Disabled")
        .await;
    // Alice's lease ends: she is disabled by the operator, and leasable again; Bob never is.
    let alice = lease_user(&env, "first", "pool").await;
    env.end_lease("first").await;
    assert!(!env.emulator.user(&alice).unwrap().account_enabled);
    let again = lease_user(&env, "second", "pool").await;
    assert_eq!(
        again, alice,
        "the account the operator disabled is leased again"
    );
    assert!(env.emulator.user(&alice).unwrap().account_enabled);
    // Every user is taken now: a third lease waits rather than take Bob.
    env.create_lease("third", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    env.wait_for_phase("third", LeasePhase::Pending).await;
    let bob = env.emulator.user(sample::BOB.id).unwrap();
    assert!(!bob.account_enabled, "Bob stays disabled");
    assert_eq!(bob.password_set_count, 0, "and nobody set his password");
    assert_eq!(env.violations().await, Vec::<String>::new());
}

#[tokio::test]
async fn an_issue_given_up_after_enabling_the_account_disables_it_again() {
    let env = LeaseEnv::start("idle-window").await;
    env.create_pool_with(
        "pool",
        &[sample::ALICE.upn, sample::BOB.upn],
        json!({ "disableIdleUsers": true }),
    )
    .await;
    env.wait_for_ready_pool("pool").await;
    let alice = lease_user(&env, "first", "pool").await;
    assert_eq!(alice, sample::ALICE.id);
    env.end_lease("first").await;
    assert!(!env.emulator.user(&alice).unwrap().account_enabled);
    // Alice became a guest in Entra meanwhile: her account can be enabled, her password not set.
    env.emulator
        .update_user(&alice, |user| user.user_type = UserType::Guest);
    let resets_before = env.emulator.user(&alice).unwrap().password_set_count;

    let user = lease_user(&env, "second", "pool").await;
    assert_eq!(user, sample::BOB.id, "the issue goes on to the next user");
    let toggles = env
        .emulator
        .counters()
        .operation(Operation::SetAccountEnabled);
    assert!(
        toggles >= 3,
        "Alice was disabled, enabled for the issue, and disabled again ({toggles} toggles)"
    );
    let after = env.emulator.user(&alice).unwrap();
    assert!(
        !after.account_enabled,
        "the account enabled for an issue that never set a password is disabled again"
    );
    assert_eq!(after.password_set_count, resets_before);
    assert_eq!(env.violations().await, Vec::<String>::new());
}

/// An app that may reset passwords but not disable accounts: the end is not held up, the account
/// stays enabled with a warning, and no marker is left that would let the operator enable it
/// later (once an administrator disabled it).
#[tokio::test]
async fn an_app_that_may_not_disable_accounts_does_not_hold_ends_up_nor_leave_markers() {
    let env = LeaseEnv::start("idle-denied").await;
    env.emulator.update_app(APP_ID, |app| {
        app.permissions = [
            "User-PasswordProfile.ReadWrite.All",
            "User.Read.All",
            "User.RevokeSessions.All",
            METHODS_PERMISSION,
        ]
        .map(String::from)
        .to_vec();
    });
    env.create_pool_with(
        "pool",
        &[sample::ALICE.upn],
        json!({ "disableIdleUsers": true }),
    )
    .await;
    env.wait_for_ready_pool("pool").await;
    let user = lease_user(&env, "ci", "pool").await;
    let (_, password) = env.credentials("entra-ci").await;
    env.end_lease("ci").await;
    assert!(
        !env.emulator.sign_in(&user, &password),
        "the password was scrambled"
    );
    assert!(env.emulator.user(&user).unwrap().account_enabled);
    let markers: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(env.client.clone(), &env.namespace);
    let listed = markers
        .list(&ListParams::default().labels("kms.hanzo.ai/disabled-user-id"))
        .await
        .unwrap();
    assert!(listed.items.is_empty(), "no marker on an enabled account");
    let warned = env.events("MissingPermission").await;
    assert!(
        warned
            .iter()
            .any(|note| note.contains("could not be disabled")),
        "{warned:?}"
    );
}
