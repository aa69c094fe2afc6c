//! Per-lease Graph write budgets (invariant I8) that a lease user cannot spend: a Secret deleted
//! in a loop, and rotate requests in a loop, cost a bounded number of password writes. Each attack
//! is made by a lease user with what that role really has (the built-in `edit` role in its
//! namespace plus every right on `entraleases`), counted in the emulator's request log, and ends
//! with the invariant auditor.

use entra_test_support as support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use entra_emulator::{Config, Operation, sample};
use entra_operator::api::{EntraLease, LeasePhase};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use support::ControlPlane;
use support::chart::edit_user;
use support::lease_env::LeaseEnv;

/// How long each attack runs.
const ATTACK: Duration = Duration::from_secs(25);

/// A lease user of the env's namespace: `edit` there, plus every right on `entraleases`.
async fn lease_user(env: &LeaseEnv, dir: &Path) -> kube::Client {
    let namespace = &env.namespace;
    let leases = format!(
        r#"---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{ name: lease-user, namespace: {namespace} }}
rules:
  - apiGroups: [kms.hanzo.ai]
    resources: [entraleases]
    verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: lease-user, namespace: {namespace} }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: Role, name: lease-user }}
subjects: [{{ kind: ServiceAccount, name: dev, namespace: {namespace} }}]
"#
    );
    let kubeconfig = dir.join("dev.kubeconfig");
    let dev = edit_user(env.control_plane, namespace, "dev", &leases, &kubeconfig).await;
    let api: Api<EntraLease> = Api::namespaced(dev.clone(), namespace);
    env.wait_for("the lease user's rights to apply", || async {
        api.list(&Default::default()).await.ok().map(|_| ())
    })
    .await;
    dev
}

/// Creates lease `name` with `spec` as `user`.
async fn create_lease_as(user: &kube::Client, env: &LeaseEnv, name: &str, spec: serde_json::Value) {
    let lease: EntraLease = serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraLease",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .unwrap();
    Api::<EntraLease>::namespaced(user.clone(), &env.namespace)
        .create(&PostParams::default(), &lease)
        .await
        .expect("the lease user creates a lease");
}

/// Password writes (`PATCH` with a password) the emulator answered for `user_ids` so far.
fn password_writes(env: &LeaseEnv, user_ids: &[&str]) -> usize {
    env.emulator
        .requests()
        .iter()
        .filter(|r| r.operation == Some(Operation::SetPassword))
        .filter(|r| user_ids.iter().any(|id| r.path.contains(id)))
        .count()
}

/// The reason of the lease's Ready condition.
fn ready_reason(lease: &EntraLease) -> Option<String> {
    let status = lease.status.as_ref()?;
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
    Some(ready.reason.clone())
}

fn password_of(secret: &Secret) -> Option<String> {
    let data = secret.data.as_ref()?;
    String::from_utf8(data.get("password")?.0.clone()).ok()
}

#[tokio::test]
async fn a_secret_deleted_in_a_loop_costs_bounded_graph_writes() {
    let env = LeaseEnv::start("budget-restore").await;
    let dir = tempfile::tempdir().unwrap();
    let dev = lease_user(&env, dir.path()).await;
    env.create_pool("pool", &[sample::ALICE.upn], "1h", "2h")
        .await;
    env.wait_for_ready_pool("pool").await;
    create_lease_as(
        &dev,
        &env,
        "mine",
        json!({ "dynamicSecretRef": { "name": "pool" } }),
    )
    .await;
    env.wait_for_phase("mine", LeasePhase::Active).await;
    let (user, issued) = env.credentials("entra-mine").await;
    let before = password_writes(&env, &[sample::ALICE.id]);

    // The lease user deletes the Secret every 0.5 s. Every password it ever held must be dead
    // whenever the lease says its restore waits (I2: the Secret is gone, so is its password).
    let secrets: Api<Secret> = Api::namespaced(dev.clone(), &env.namespace);
    let leases: Api<EntraLease> = Api::namespaced(dev.clone(), &env.namespace);
    let mut seen = BTreeSet::from([issued]);
    let mut deletions = 0;
    let mut waits_seen = 0;
    let started = Instant::now();
    while started.elapsed() < ATTACK {
        if let Some(secret) = secrets.get_opt("entra-mine").await.unwrap() {
            seen.extend(password_of(&secret));
            if secrets
                .delete("entra-mine", &Default::default())
                .await
                .is_ok()
            {
                deletions += 1;
            }
        }
        let lease = leases.get("mine").await.unwrap();
        if ready_reason(&lease).as_deref() == Some("RestoreBackoff") {
            waits_seen += 1;
            for password in &seen {
                assert!(
                    !env.emulator.sign_in(&user, password),
                    "a password of a deleted Secret still works while the restore waits"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let during = password_writes(&env, &[sample::ALICE.id]) - before;
    println!("{deletions} deletions in {ATTACK:?} cost {during} password writes");
    assert!(deletions >= 2, "the Secret came back to be deleted again");
    assert!(waits_seen > 0, "the lease said its restore waits");
    // One restore at once, one scramble ending it when the Secret went again, and nothing more
    // until the 30 s backoff is over (one more restore if a slow machine started it late).
    assert!(
        during <= 3,
        "{during} password writes for {deletions} deletions in {ATTACK:?}"
    );

    // Left alone, the lease is restored once its backoff is over, with a fresh password.
    let restored = env
        .wait_for("the lease to be restored after its backoff", || async {
            let secret = env.secrets().get_opt("entra-mine").await.unwrap()?;
            let password = password_of(&secret)?;
            (!seen.contains(&password) && env.emulator.sign_in(&user, &password))
                .then_some(password)
        })
        .await;
    env.wait_for("the lease to be Ready again", || async {
        let lease = env.lease("mine").await?;
        (ready_reason(&lease).as_deref() == Some("CredentialRestored")).then_some(())
    })
    .await;
    assert!(env.emulator.sign_in(&user, &restored));
    for password in &seen {
        assert!(!env.emulator.sign_in(&user, password));
    }
    let total = password_writes(&env, &[sample::ALICE.id]) - before;
    assert!(total <= 4, "{total} password writes in all");
    assert_eq!(env.violations().await, Vec::<String>::new());
}

#[tokio::test]
async fn rotate_requests_in_a_loop_cost_bounded_graph_writes() {
    let minimum = Duration::from_secs(10);
    let env = LeaseEnv::start_with_flags(
        ControlPlane::shared(),
        "budget-rotate",
        Config::sample(),
        vec![format!(
            "--min-forced-rotation-interval={}s",
            minimum.as_secs()
        )],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dev = lease_user(&env, dir.path()).await;
    let users = [sample::ALICE, sample::BOB, sample::CAROL];
    let upns: Vec<&str> = users.iter().map(|u| u.upn).collect();
    let ids: Vec<&str> = users.iter().map(|u| u.id).collect();
    env.create_pool("pool", &upns, "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    create_lease_as(
        &dev,
        &env,
        "svc",
        json!({
            "dynamicSecretRef": { "name": "pool" },
            "rotation": { "enabled": true, "overlap": "1s" },
        }),
    )
    .await;
    let active = env.wait_for_phase("svc", LeasePhase::Active).await;
    let first_generation = active.status.unwrap().credential_generation.unwrap_or(1);
    let before = password_writes(&env, &ids);

    // A new rotate request every second, as the lease user.
    let leases: Api<EntraLease> = Api::namespaced(dev.clone(), &env.namespace);
    let started = Instant::now();
    let mut requests = 0;
    while started.elapsed() < ATTACK {
        requests += 1;
        let patch = json!({ "metadata": { "annotations": { "kms.hanzo.ai/rotate": format!("r{requests}") } } });
        leases
            .patch("svc", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("the lease user annotates the lease");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let attack = started.elapsed();
    let during = password_writes(&env, &ids) - before;
    let lease = env.lease("svc").await.expect("the lease lives");
    let status = lease.status.unwrap();
    let rotations = status.credential_generation.unwrap_or(1) - first_generation;
    println!(
        "{requests} rotate requests in {attack:?}: {rotations} rotations, {during} password writes"
    );
    // At most one forced rotation per minimum interval (plus one for the edges), each costing two
    // password writes: the next user's, and the scramble of the previous one.
    let allowed = attack.as_secs() / minimum.as_secs() + 1;
    assert!(rotations >= 1, "rotate requests are still answered");
    assert!(
        u64::from(rotations) <= allowed,
        "{rotations} rotations for {requests} requests in {attack:?}"
    );
    assert!(
        during <= usize::try_from(2 * allowed + 1).unwrap(),
        "{during} password writes for {requests} rotate requests in {attack:?}"
    );
    assert_eq!(
        status.forced_rotation_interval.as_deref(),
        Some("10s"),
        "the status says the 1s overlap is clamped"
    );
    assert_eq!(env.violations().await, Vec::<String>::new());
}
