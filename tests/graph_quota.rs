//! Graph's quota is shared fairly (invariant I8): a throttled app does not hold the workers other
//! apps' revocations need, expirations go ahead of a burst of issues, and a burst is paced under
//! the write quota instead of meeting it as 429s. Each namespace's lease user acts with its own
//! kubeconfig (the rights that role really has); the emulator throttles as Entra documents. Each
//! test ends with the invariant auditor.

use entra_test_support as support;

use std::time::Duration;

use entra_emulator::{Bucket, Fault, FaultPlan, Operation, Quota};
use entra_operator::api::{EntraLease, LeasePhase};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::DeleteParams;
use serde_json::json;
use support::ControlPlane;
use support::audit::Auditor;
use support::cluster::{install_crds, namespace};
use support::lab::{self, Lab};
use support::teams::{LAG_BOUND, SOON, Team, World};
use support::tracker::Tracker;

/// A second app of the generated tenant (the same secret), allowed to reset passwords like the
/// operator's own.
const NOISY_APP_ID: &str = "5eed0000-0000-4000-8000-00000000a0a0";

fn upns(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(lab::user_principal_name).collect()
}

fn as_strs(names: &[String]) -> Vec<&str> {
    names.iter().map(String::as_str).collect()
}

/// Waits until every lease named in `names` of `team` is Active.
async fn wait_all_active(world: &World, team: &Team, names: &[String], within: Duration) {
    world
        .eventually(
            &format!("{} leases of {} Active", names.len(), team.namespace),
            within,
            || async {
                let phases = team.phases().await;
                let active = phases
                    .iter()
                    .filter(|(name, phase, _, _)| {
                        *phase == LeasePhase::Active && names.contains(name)
                    })
                    .count();
                (active == names.len()).then_some(())
            },
        )
        .await;
}

/// A live lease's user, password and `expiresAt`, as its lease user reads them.
struct Holding {
    name: String,
    username: String,
    password: String,
    expires_at: Timestamp,
}

async fn holding(team: &Team, name: &str) -> Holding {
    let (username, password) = team.credentials(name).await;
    let lease: EntraLease = team.leases().get(name).await.unwrap();
    let expires_at = lease.status.unwrap().expires_at.unwrap().0;
    Holding {
        name: name.to_owned(),
        username,
        password,
        expires_at,
    }
}

/// Watches `held` until every password stops working; returns each one's lag past its
/// `expiresAt` (zero when it died before).
async fn scramble_lags(world: &World, held: &[Holding]) -> Vec<(String, SignedDuration)> {
    let mut lags: Vec<Option<SignedDuration>> = vec![None; held.len()];
    world
        .eventually("every expiring password to stop working", SOON, || {
            let now = Timestamp::now();
            for (lag, holding) in lags.iter_mut().zip(held) {
                if lag.is_none() && !world.emulator.sign_in(&holding.username, &holding.password) {
                    *lag = Some(
                        now.duration_since(holding.expires_at)
                            .max(SignedDuration::ZERO),
                    );
                }
            }
            let done = lags.iter().all(Option::is_some);
            async move { done.then_some(()) }
        })
        .await;
    held.iter()
        .zip(lags)
        .map(|(holding, lag)| (holding.name.clone(), lag.unwrap()))
        .collect()
}

async fn audit(world: &World, lab: &Lab, tracker: &Tracker, graph_back_at: Option<Timestamp>) {
    let mut auditor = Auditor::new(LAG_BOUND);
    auditor.graph_back_at = graph_back_at;
    auditor.final_check(lab, tracker, &world.emulator).await;
    assert!(
        auditor.violations.is_empty(),
        "the auditor found in {}: {:#?}",
        lab.namespace,
        auditor.violations
    );
}

async fn delete_all(team: &Team, names: &[String]) {
    for name in names {
        team.leases()
            .delete(name, &DeleteParams::default())
            .await
            .expect("a lease user may delete its leases");
    }
}

async fn wait_all_gone(world: &World, team: &Team, within: Duration) {
    world
        .eventually(
            &format!("every lease of {} gone", team.namespace),
            within,
            || async { team.phases().await.is_empty().then_some(()) },
        )
        .await;
}

#[tokio::test]
async fn a_throttled_app_does_not_delay_other_apps_revocations() {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let admin = control_plane.client().await;
    let (noisy_ns, calm_ns) = (
        namespace(&admin, "noisy").await,
        namespace(&admin, "calm").await,
    );
    let operator_namespace = namespace(&admin, "quota-op").await;
    let world = World::start_with(
        lab::tenant_with_second_app(22, NOISY_APP_ID),
        &[&noisy_ns, &calm_ns],
        operator_namespace,
        vec!["--cluster-pools=false".into()],
    )
    .await;
    let (noisy_lab, calm_lab) = (world.lab(&noisy_ns), world.lab(&calm_ns));
    let noisy_tracker = Tracker::start(&noisy_lab).await;
    let calm_tracker = Tracker::start(&calm_lab).await;
    let noisy = Team::new(&world, noisy_ns.clone()).await;
    let calm = Team::new(&world, calm_ns.clone()).await;

    // A pool editor's pool on its own app, with twenty leases: more than the operator's 16
    // workers. Another namespace's pool is on the operator's app.
    noisy
        .create_pool(
            "own-app",
            NOISY_APP_ID,
            lab::CLIENT_SECRET,
            &as_strs(&upns(0..20)),
        )
        .await;
    calm.create_pool_with(
        "shared-app",
        lab::APP_ID,
        lab::CLIENT_SECRET,
        &as_strs(&upns(20..22)),
        json!({ "defaultTTL": "1m" }),
    )
    .await;
    world.pool_ready(&noisy_ns, "own-app").await;
    world.pool_ready(&calm_ns, "shared-app").await;
    let noisy_leases: Vec<String> = (0..20).map(|i| format!("noisy-{i}")).collect();
    for name in &noisy_leases {
        noisy.lease(name, "EntraDynamicSecret", "own-app").await;
    }
    wait_all_active(&world, &noisy, &noisy_leases, SOON).await;

    // Entra throttles the noisy app: every Graph call answered 429 with a minute to wait.
    world.emulator.set_app_faults(
        NOISY_APP_ID,
        FaultPlan::random(1.0, [Fault::throttle(Some("60"))]).only(Operation::GRAPH),
    );
    delete_all(&noisy, &noisy_leases).await;
    world
        .eventually("the noisy app's first refusals", SOON, || async {
            (world.emulator.counters().fault("throttle") >= 1).then_some(())
        })
        .await;

    // Meanwhile a lease on the healthy app expires: its password ends on time.
    let expiring = calm
        .lease_with(
            "expiring",
            json!({ "dynamicSecretRef": { "name": "shared-app" }, "ttl": "20s" }),
        )
        .await;
    let expiring = expiring.metadata.name.unwrap();
    wait_all_active(&world, &calm, std::slice::from_ref(&expiring), SOON).await;
    let held = holding(&calm, &expiring).await;
    let lags = scramble_lags(&world, std::slice::from_ref(&held)).await;
    let (_, lag) = &lags[0];
    assert!(
        *lag < SignedDuration::try_from(LAG_BOUND).unwrap(),
        "the healthy app's expired lease was scrambled {lag:?} past its expiresAt"
    );
    // The throttled app waits its pause instead of each request retrying on its own: at most
    // the few requests it may have on the wire met the 429 before the pause.
    let refused = world.emulator.counters().fault("throttle");
    assert!(
        refused <= 8,
        "{refused} requests of the throttled app were refused within its 60 s pause"
    );
    assert!(
        !noisy.phases().await.is_empty(),
        "the throttled app's revocations are still waiting for their turn"
    );

    // Entra lets the app write again: its revocations resume after the pause.
    world.emulator.clear_app_faults(NOISY_APP_ID);
    let graph_back_at = Timestamp::now() + SignedDuration::from_secs(60);
    wait_all_gone(&world, &noisy, SOON + Duration::from_secs(60)).await;
    calm.leases()
        .delete(&expiring, &DeleteParams::default())
        .await
        .ok();
    wait_all_gone(&world, &calm, SOON).await;
    audit(&world, &noisy_lab, &noisy_tracker, Some(graph_back_at)).await;
    audit(&world, &calm_lab, &calm_tracker, None).await;
}

/// Writes per app and tenant the emulator allows and the operator is told of: `capacity` per
/// `window`, refilled evenly.
fn write_quota(capacity: u32, window: Duration) -> (Quota, String) {
    let quota = Quota {
        app_tenant_writes: Some(Bucket::new(capacity, window)),
        ..Quota::default()
    };
    let flag = format!("--graph-app-tenant-writes={capacity}/{}s", window.as_secs());
    (quota, flag)
}

#[tokio::test]
async fn expiring_leases_are_scrambled_ahead_of_a_burst() {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let admin = control_plane.client().await;
    let (busy_ns, expiring_ns) = (
        namespace(&admin, "burst").await,
        namespace(&admin, "expiring").await,
    );
    let operator_namespace = namespace(&admin, "prio-op").await;
    // Two writes a second: the burst of 100 issues takes about 45 s.
    let (quota, flag) = write_quota(20, Duration::from_secs(10));
    let world = World::start_with(
        lab::tenant(104),
        &[&busy_ns, &expiring_ns],
        operator_namespace,
        vec!["--cluster-pools=false".into(), flag],
    )
    .await;
    let (busy_lab, expiring_lab) = (world.lab(&busy_ns), world.lab(&expiring_ns));
    let busy_tracker = Tracker::start(&busy_lab).await;
    let expiring_tracker = Tracker::start(&expiring_lab).await;
    let busy = Team::new(&world, busy_ns.clone()).await;
    let expiring = Team::new(&world, expiring_ns.clone()).await;
    busy.create_pool(
        "burst",
        lab::APP_ID,
        lab::CLIENT_SECRET,
        &as_strs(&upns(0..100)),
    )
    .await;
    expiring
        .create_pool(
            "short",
            lab::APP_ID,
            lab::CLIENT_SECRET,
            &as_strs(&upns(100..104)),
        )
        .await;
    world.pool_ready(&busy_ns, "burst").await;
    world.pool_ready(&expiring_ns, "short").await;

    // Four leases that expire while the burst is under way.
    let short: Vec<String> = (0..4).map(|i| format!("short-{i}")).collect();
    for name in &short {
        expiring
            .lease_with(
                name,
                json!({ "dynamicSecretRef": { "name": "short" }, "ttl": "25s" }),
            )
            .await;
    }
    wait_all_active(&world, &expiring, &short, SOON).await;
    let mut held = Vec::new();
    for name in &short {
        held.push(holding(&expiring, name).await);
    }
    world.emulator.set_quota(Some(quota));
    let burst: Vec<String> = (0..100).map(|i| format!("burst-{i}")).collect();
    for name in &burst {
        busy.lease(name, "EntraDynamicSecret", "burst").await;
    }

    let lags = scramble_lags(&world, &held).await;
    let issued_by_then = busy
        .phases()
        .await
        .iter()
        .filter(|(_, phase, _, _)| *phase == LeasePhase::Active)
        .count();
    for (name, lag) in &lags {
        assert!(
            *lag < SignedDuration::try_from(LAG_BOUND).unwrap(),
            "{name} was scrambled {lag:?} past its expiresAt, behind the burst"
        );
    }
    assert!(
        issued_by_then < burst.len(),
        "the burst was still under way when the last expiration was scrambled ({issued_by_then} issued)"
    );
    wait_all_active(&world, &busy, &burst, SOON).await;

    delete_all(&busy, &burst).await;
    wait_all_gone(&world, &busy, SOON + SOON).await;
    wait_all_gone(&world, &expiring, SOON).await;
    audit(&world, &busy_lab, &busy_tracker, None).await;
    audit(&world, &expiring_lab, &expiring_tracker, None).await;
}

#[tokio::test]
async fn a_burst_is_paced_under_the_write_quota() {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let admin = control_plane.client().await;
    let busy_ns = namespace(&admin, "paced").await;
    let operator_namespace = namespace(&admin, "pace-op").await;
    // One write a second, ten at once: Entra's shape, scaled down.
    let (quota, flag) = write_quota(10, Duration::from_secs(10));
    let world = World::start_with(
        lab::tenant(30),
        &[&busy_ns],
        operator_namespace,
        vec!["--cluster-pools=false".into(), flag],
    )
    .await;
    let busy_lab = world.lab(&busy_ns);
    let tracker = Tracker::start(&busy_lab).await;
    let busy = Team::new(&world, busy_ns.clone()).await;
    busy.create_pool(
        "paced",
        lab::APP_ID,
        lab::CLIENT_SECRET,
        &as_strs(&upns(0..30)),
    )
    .await;
    world.pool_ready(&busy_ns, "paced").await;
    world.emulator.set_quota(Some(quota));

    let burst: Vec<String> = (0..30).map(|i| format!("paced-{i}")).collect();
    for name in &burst {
        busy.lease(name, "EntraDynamicSecret", "paced").await;
    }
    wait_all_active(&world, &busy, &burst, SOON).await;
    let counters = world.emulator.counters();
    let writes = counters.writes_for_app(lab::APP_ID);
    let refused = counters.quota_throttled();
    assert!(
        writes >= burst.len() as u64,
        "{writes} writes for the burst"
    );
    assert!(
        refused * 20 < writes,
        "{refused} answers 429 for {writes} writes: 5 % or more"
    );

    world.emulator.set_quota(None);
    delete_all(&busy, &burst).await;
    wait_all_gone(&world, &busy, SOON).await;
    audit(&world, &busy_lab, &tracker, None).await;
}

/// A pool validation that waits its turn in its app's read budget goes on where it stopped: a
/// pool whose users cost more reads than the budget holds at once becomes Ready, each user asked
/// for about once, instead of asking Graph for its first users again on every turn and never
/// finishing (as 41 pools of 250 users under one app did).
#[tokio::test]
async fn a_pool_larger_than_its_apps_read_budget_becomes_ready() {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let admin = control_plane.client().await;
    let wide_ns = namespace(&admin, "wide").await;
    let operator_namespace = namespace(&admin, "wide-op").await;
    // Ten read units at once, two a second: a validation of 30 users and their sign-in methods
    // (about 90 units: a lookup costs 1, a listing 2) waits its turn many times.
    let users = 30;
    let world = World::start_with(
        lab::tenant(users),
        &[&wide_ns],
        operator_namespace,
        vec![
            "--cluster-pools=false".into(),
            "--graph-app-tenant-read-units=10/5s".into(),
        ],
    )
    .await;
    let wide = Team::new(&world, wide_ns.clone()).await;
    let members = upns(0..users);
    wide.create_pool("wide", lab::APP_ID, lab::CLIENT_SECRET, &as_strs(&members))
        .await;
    let pool = world.pool_ready(&wide_ns, "wide").await;
    let status = pool.status.expect("a Ready pool has a status");
    assert_eq!(status.users.len(), users, "every user resolved");
    let counters = world.emulator.counters();
    let lookups = counters.operation(Operation::GetUser);
    let listings = counters.operation(Operation::ListMethods);
    assert!(
        lookups <= 2 * users as u64,
        "{lookups} user lookups for a pool of {users} users"
    );
    assert!(
        listings <= 2 * users as u64,
        "{listings} method listings for a pool of {users} users"
    );
}
