//! A small `make chaos` inside `make test`: each fault-injection scenario of bench/ at the sizes of
//! `Sizes::subset()`, against the operator binary and the shared control plane of this test
//! binary. A test fails when the auditor finds an invariant violation or a lifecycle that never
//! ends. `make chaos` runs the same scenarios at full size.

use entra_bench::lab::{self, Lab, tenant};
use entra_bench::rotation;
use entra_bench::scenarios::{self, ApiServerHandle, ScenarioReport, Sizes, World};
use entra_emulator::Emulator;
use entra_test_support as support;
use support::cluster::{install_crds, namespace};
use support::{ControlPlane, Operator};

/// The API server restart would pull the cluster from under the other scenarios (an operator
/// starting while it is down exits): it runs alone, the others share.
static CLUSTER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// A namespace, an emulator with a 32-user tenant and an operator of their own.
async fn world(prefix: &str) -> (Lab, Emulator, Operator) {
    world_with(prefix, tenant(32)).await
}

/// [`world`] with the emulator serving `tenants`.
async fn world_with(prefix: &str, tenants: entra_emulator::Config) -> (Lab, Emulator, Operator) {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let client = control_plane.client().await;
    let namespace = namespace(&client, prefix).await;
    let emulator = Emulator::start(tenants).await.expect("the emulator starts");
    let operator = Operator::start(control_plane, &emulator.base_url(), &namespace, &namespace);
    let lab = Lab {
        client,
        namespace: namespace.clone(),
        claims_namespace: namespace,
    };
    (lab, emulator, operator)
}

fn assert_clean(report: &ScenarioReport, operator: &Operator) {
    report.print();
    assert!(report.lifecycles > 0, "the scenario ran lifecycles");
    assert!(
        report.violations.is_empty(),
        "{} found invariant violations: {:#?}\noperator log tail:\n{}",
        report.name,
        report.violations,
        log_tail(operator)
    );
}

fn log_tail(operator: &Operator) -> String {
    let logs = operator.logs();
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[tokio::test]
async fn operator_killed_at_random_keeps_every_invariant() {
    let _shared = CLUSTER.read().await;
    let (lab, emulator, mut operator) = world("chaos-kill").await;
    let mut world = World {
        lab,
        emulator: &emulator,
        operator: &mut operator,
    };
    let report = scenarios::operator_killed(&mut world, &Sizes::subset()).await;
    assert!(
        report.faults["operator SIGKILL"] > 0,
        "the operator was killed"
    );
    assert_clean(&report, &operator);
}

#[tokio::test]
async fn graph_faults_at_twenty_percent_keep_every_invariant() {
    let _shared = CLUSTER.read().await;
    let (lab, emulator, mut operator) = world("chaos-faults").await;
    let mut world = World {
        lab,
        emulator: &emulator,
        operator: &mut operator,
    };
    let report = scenarios::graph_faults(&mut world, &Sizes::subset()).await;
    assert!(
        report.faults.keys().any(|k| k.starts_with("graph")),
        "faults were injected"
    );
    assert_clean(&report, &operator);
}

#[tokio::test]
async fn graph_outage_ends_overdue_leases_once_graph_returns() {
    let _shared = CLUSTER.read().await;
    let (lab, emulator, mut operator) = world("chaos-outage").await;
    let mut world = World {
        lab,
        emulator: &emulator,
        operator: &mut operator,
    };
    let report = scenarios::graph_outage(&mut world, &Sizes::subset()).await;
    assert_clean(&report, &operator);
}

#[tokio::test]
async fn apiserver_restart_loses_nothing() {
    let _alone = CLUSTER.write().await;
    let (lab, emulator, mut operator) = world("chaos-apiserver").await;
    let mut apiserver = ApiServerHandle::of(&ControlPlane::shared().pids());
    let mut world = World {
        lab,
        emulator: &emulator,
        operator: &mut operator,
    };
    let report = scenarios::apiserver_restarted(&mut world, &mut apiserver, &Sizes::subset()).await;
    // The restarted API server serves this binary's control plane until the binary exits (it
    // exits with its parent, like the rest of the control plane).
    std::mem::forget(apiserver);
    assert_clean(&report, &operator);
}

#[tokio::test]
async fn leases_contending_for_a_small_pool_never_share_a_user() {
    let _shared = CLUSTER.read().await;
    let (lab, emulator, mut operator) = world("chaos-contention").await;
    let mut world = World {
        lab,
        emulator: &emulator,
        operator: &mut operator,
    };
    let report = scenarios::contention(&mut world, &Sizes::subset()).await;
    assert_clean(&report, &operator);
}

#[tokio::test]
async fn hostile_tenants_keep_no_password_alive() {
    let _shared = CLUSTER.read().await;
    let (lab, emulator, mut operator) =
        world_with("chaos-hostile", lab::tenant_with_decoy(32)).await;
    let mut world = World {
        lab,
        emulator: &emulator,
        operator: &mut operator,
    };
    let report = scenarios::hostile(&mut world, &Sizes::subset()).await;
    assert_clean(&report, &operator);
}

#[tokio::test]
async fn continuous_leases_survive_the_operator_killed_mid_rotation() {
    let _shared = CLUSTER.read().await;
    let (lab, emulator, mut operator) = world("chaos-continuous").await;
    let mut world = World {
        lab,
        emulator: &emulator,
        operator: &mut operator,
    };
    let report = rotation::continuous_killed(&mut world, &Sizes::subset()).await;
    assert_clean(&report, &operator);
}
