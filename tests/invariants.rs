//! The invariants I1-I6 of the design, each with a test that fails when it is broken.

use entra_test_support as support;

use std::time::Duration;

use entra_emulator::{FaultPlan, Operation};
use entra_operator::api::LeasePhase;
use rand::Rng;
use serde_json::json;
use support::lease_env::{CLIENT_SECRET, LeaseEnv};

const THREE: [&str; 3] = [
    "alice@contoso.onmicrosoft.com",
    "bob@contoso.onmicrosoft.com",
    "carol@contoso.onmicrosoft.com",
];

fn lease_spec(ttl: &str) -> serde_json::Value {
    json!({ "dynamicSecretRef": { "name": "pool" }, "ttl": ttl })
}

async fn phase_counts(env: &LeaseEnv) -> (usize, usize) {
    let leases = env.leases().list(&Default::default()).await.unwrap().items;
    let phase = |p| {
        leases
            .iter()
            .filter(|l| l.status.as_ref().and_then(|s| s.phase) == Some(p))
            .count()
    };
    (phase(LeasePhase::Active), phase(LeasePhase::Pending))
}

#[tokio::test]
async fn i1_leases_racing_for_a_small_pool_never_share_a_user() {
    let env = LeaseEnv::start("i1").await;
    env.create_pool("pool", &THREE, "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    let names: Vec<String> = (0..8).map(|i| format!("racer-{i}")).collect();
    let creates = names
        .iter()
        .map(|name| env.create_lease(name, lease_spec("1h")));
    futures::future::join_all(creates).await;
    env.wait_for("3 active and 5 waiting leases", || async {
        (phase_counts(&env).await == (3, 5)).then_some(())
    })
    .await;
    assert_eq!(env.violations().await, Vec::<String>::new());

    // Released users go to the waiting leases at once, still one holder each.
    for lease in env.leases().list(&Default::default()).await.unwrap() {
        if lease.status.and_then(|s| s.phase) == Some(LeasePhase::Active) {
            env.leases()
                .delete(&lease.metadata.name.unwrap(), &Default::default())
                .await
                .unwrap();
        }
    }
    env.wait_for("the next 3 leases to become active", || async {
        (phase_counts(&env).await == (3, 2)).then_some(())
    })
    .await;
    assert_eq!(env.violations().await, Vec::<String>::new());
}

#[tokio::test]
async fn i2_i3_operator_killed_at_random_converges() {
    let mut env = LeaseEnv::start("crash").await;
    env.create_pool("pool", &THREE, "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    let mut random = rand::rng();
    for round in 0..6 {
        // Issue, and kill the operator somewhere in the middle of it.
        let name = format!("round-{round}");
        env.create_lease(&name, lease_spec("1h")).await;
        tokio::time::sleep(Duration::from_millis(random.random_range(0..600))).await;
        env.operator.kill();
        env.operator.restart();
        env.wait_for_phase(&name, LeasePhase::Active).await;
        // Revoke, and kill it again mid-way.
        env.leases()
            .delete(&name, &Default::default())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(random.random_range(0..400))).await;
        env.operator.kill();
        env.operator.restart();
        env.wait_until_gone(&name).await;
    }
    assert!(env.passwords_seen().len() >= 6, "passwords were issued");
    assert_eq!(env.violations().await, Vec::<String>::new());
}

#[tokio::test]
async fn i4_a_restart_with_active_leases_makes_no_graph_write() {
    let mut env = LeaseEnv::start("restart").await;
    env.create_pool("pool", &THREE, "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    for name in ["one", "two", "three"] {
        env.create_lease(name, lease_spec("1h")).await;
    }
    for name in ["one", "two", "three"] {
        env.wait_for_phase(name, LeasePhase::Active).await;
    }
    let before = env.leases().list(&Default::default()).await.unwrap().items;
    env.emulator.reset_counters();
    env.operator.restart();
    // Wait until the restarted process has reconciled every lease (its own counter starts at 0).
    let port = env.operator.metrics_port;
    entra_operator::tls::install_crypto_provider();
    env.wait_for(
        "the restarted operator to reconcile the leases",
        || async move {
            let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let reconciles: f64 = text
                .lines()
                .find(|l| {
                    l.starts_with(r#"entra_reconcile_duration_seconds_count{controller="lease"}"#)
                })?
                .rsplit(' ')
                .next()?
                .parse()
                .ok()?;
            (reconciles >= 3.0).then_some(())
        },
    )
    .await;
    assert_eq!(
        env.emulator.counters().graph_writes,
        0,
        "no Graph write after a restart"
    );
    let after = env.leases().list(&Default::default()).await.unwrap().items;
    let statuses = |leases: &Vec<entra_operator::api::EntraLease>| {
        leases.iter().map(|l| l.status.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        statuses(&before),
        statuses(&after),
        "statuses are untouched"
    );
}

#[tokio::test]
async fn i3_graph_outage_during_expiry_keeps_the_finalizer_until_the_scramble_succeeds() {
    let env = LeaseEnv::start("outage").await;
    env.create_pool("pool", &THREE, "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    env.create_lease("brief", lease_spec("3s")).await;
    env.wait_for_phase("brief", LeasePhase::Active).await;
    let (username, password) = env.credentials("entra-brief").await;
    env.emulator.set_faults(FaultPlan::outage());
    let failing = env
        .wait_for("the revocation to report failing", || async {
            env.lease("brief").await.filter(|lease| {
                lease
                    .status
                    .as_ref()
                    .is_some_and(|s| s.conditions.iter().any(|c| c.reason == "RevocationFailing"))
            })
        })
        .await;
    assert!(
        failing.metadata.deletion_timestamp.is_some(),
        "expired and deleted"
    );
    assert_eq!(failing.status.unwrap().phase, Some(LeasePhase::Revoking));
    assert!(
        env.emulator.sign_in(&username, &password),
        "nothing was scrambled during the outage"
    );
    // The operator keeps trying while Graph is down; two more refused attempts later, the
    // finalizer still holds.
    let refused = || {
        env.emulator
            .counters()
            .operation_status(Operation::SetPassword, 503)
    };
    let seen = refused();
    env.wait_for("two more refused scrambles", || async {
        (refused() >= seen + 2).then_some(())
    })
    .await;
    assert!(
        env.lease("brief").await.is_some(),
        "the finalizer holds during the outage"
    );
    env.emulator.clear_faults();
    env.wait_until_gone("brief").await;
    assert!(
        !env.emulator.sign_in(&username, &password),
        "scrambled once Graph answered"
    );
}

#[tokio::test]
async fn i5_auto_renewal_stops_at_max_ttl() {
    let env = LeaseEnv::start("maxttl").await;
    env.create_pool("pool", &THREE, "3s", "7s").await;
    env.wait_for_ready_pool("pool").await;
    env.create_lease(
        "auto",
        json!({ "dynamicSecretRef": { "name": "pool" }, "autoRenew": true }),
    )
    .await;
    let lease = env.wait_for_phase("auto", LeasePhase::Active).await;
    let status = lease.status.unwrap();
    let max_expires_at = status.max_expires_at.unwrap().0;
    let (username, password) = env.credentials("entra-auto").await;
    let renewed = env
        .wait_for("an automatic renewal", || async {
            env.lease("auto")
                .await
                .filter(|l| l.status.as_ref().unwrap().renew_count >= 1)
        })
        .await;
    assert!(renewed.status.unwrap().expires_at.unwrap().0 <= max_expires_at);
    env.wait_until_gone("auto").await;
    let ended = k8s_openapi::jiff::Timestamp::now();
    let lag = ended.duration_since(max_expires_at).as_secs_f64();
    assert!(lag < 10.0, "ended {lag:.1}s after maxExpiresAt");
    assert!(!env.emulator.sign_in(&username, &password));
}

#[tokio::test]
async fn i6_no_secret_reaches_logs_events_or_status() {
    let env = LeaseEnv::start("leaks").await;
    env.create_pool("pool", &THREE, "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    env.create_lease("one", lease_spec("1h")).await;
    env.wait_for_phase("one", LeasePhase::Active).await;
    env.annotate("one", "kms.hanzo.ai/renew", "1").await;
    env.end_lease("one").await;
    // A wrong client secret travels through the error paths too.
    env.create_client_secret("wrong-secret-value~not-the-right-one")
        .await;
    env.create_pool("broken", &THREE, "1h", "2h").await;
    env.wait_for("the broken pool to report its secret", || async {
        env.pools().get("broken").await.unwrap().status.filter(|s| {
            s.conditions
                .iter()
                .any(|c| c.reason == "InvalidClientSecret")
        })
    })
    .await;

    let events = env
        .control_plane
        .kubectl(&["get", "events", "-n", &env.namespace, "-o", "yaml"]);
    let leases = env
        .control_plane
        .kubectl(&["get", "entra", "-n", &env.namespace, "-o", "yaml"]);
    let haystacks = [
        ("operator log", env.operator.logs()),
        (
            "events",
            String::from_utf8_lossy(&events.stdout).into_owned(),
        ),
        (
            "statuses",
            String::from_utf8_lossy(&leases.stdout).into_owned(),
        ),
    ];
    let mut needles = env.passwords_seen();
    assert!(!needles.is_empty());
    needles.push(CLIENT_SECRET.to_owned());
    needles.push("wrong-secret-value~not-the-right-one".to_owned());
    for (place, text) in &haystacks {
        assert!(text.len() > 100, "{place} has content to scan");
        for needle in &needles {
            assert!(
                !text.contains(needle.as_str()),
                "a secret leaked into the {place}"
            );
        }
    }
    assert!(haystacks[1].1.contains("Issued"), "events were published");
}

#[tokio::test]
async fn i1_a_user_listed_by_two_pools_has_one_holder() {
    let env = LeaseEnv::start("twopools").await;
    env.create_pool("pool", &THREE[..1], "1h", "2h").await;
    env.create_pool(
        "other",
        &["a11ce000-0000-4000-8000-000000000001"],
        "1h",
        "2h",
    )
    .await;
    env.wait_for_ready_pool("pool").await;
    env.wait_for_ready_pool("other").await;
    env.create_lease("first", lease_spec("1h")).await;
    env.wait_for_phase("first", LeasePhase::Active).await;
    env.create_lease("second", json!({ "dynamicSecretRef": { "name": "other" } }))
        .await;
    let waiting = env.wait_for_phase("second", LeasePhase::Pending).await;
    let ready = waiting.status.unwrap().conditions;
    assert!(
        ready.iter().any(|c| c.reason == "WaitingForUser"),
        "{ready:?}"
    );
    env.leases()
        .delete("first", &Default::default())
        .await
        .unwrap();
    env.wait_for_phase("second", LeasePhase::Active).await;
}

/// The auditor every test above relies on finds what a stopped operator leaves behind: a lease
/// gone with its password still working, and a status that no longer shows the claim. Once the
/// operator is back (its reaper, its status rewrite) it finds nothing.
#[tokio::test]
async fn the_auditor_finds_what_a_stopped_operator_leaves_behind() {
    let mut env = LeaseEnv::start("auditor").await;
    env.create_pool("pool", &THREE, "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    for name in ["kept", "forged"] {
        env.create_lease(name, lease_spec("1h")).await;
        env.wait_for_phase(name, LeasePhase::Active).await;
    }
    assert_eq!(env.violations().await, Vec::<String>::new());

    env.operator.kill();
    env.leases()
        .delete("kept", &Default::default())
        .await
        .unwrap();
    let strip = json!({ "metadata": { "finalizers": null } });
    env.leases()
        .patch(
            "kept",
            &Default::default(),
            &kube::api::Patch::Merge(&strip),
        )
        .await
        .unwrap();
    env.wait_until_gone("kept").await;
    let forged = json!({ "status": { "expiresAt": "2099-01-01T00:00:00Z" } });
    env.leases()
        .patch_status(
            "forged",
            &Default::default(),
            &kube::api::Patch::Merge(&forged),
        )
        .await
        .unwrap();
    let found = env.violations().await;
    assert!(
        found
            .iter()
            .any(|v| v.starts_with("I3: lease kept is gone but its password")),
        "a password outliving its lease: {found:?}"
    );
    assert!(
        found
            .iter()
            .any(|v| v.starts_with("lease forged's status shows")),
        "a status that is not the claim's: {found:?}"
    );

    env.operator.restart();
    env.wait_for("the reaper and the status rewrite", || async {
        env.violations().await.is_empty().then_some(())
    })
    .await;
}
