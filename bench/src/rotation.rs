//! Continuous leases under fire: leases rotating every few seconds onto other pool users while
//! the operator is SIGKILLed in the middle of rotations (when a lease holds two credentials), then
//! ended. The auditor judges every password their Secrets ever held, under both keys.

use std::cell::Cell;
use std::time::{Duration, Instant};

use entra_emulator::{Emulator, Operation};
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;

use super::audit::Auditor;
use super::lab::{Lab, lease_object, retrying};
use super::scenarios::{
    Outcome, ScenarioReport, Sizes, World, audit_while, conclude, prepare_pool, sleep_unless,
};
use super::tracker::{Tracked, Tracker};

/// Each credential lives 8 s and rotates 3 s before its end.
const MAX_TTL: &str = "8s";
const OVERLAP: &str = "3s";
/// How long a kill waits for a lease to be in the middle of a rotation before it strikes anyway.
const AIM_FOR: Duration = Duration::from_secs(4);

/// (7) Continuous leases rotating while the operator is SIGKILLed mid-rotation.
pub async fn continuous_killed(world: &mut World<'_>, sizes: &Sizes) -> ScenarioReport {
    let started = Instant::now();
    let mut report = ScenarioReport {
        name: "continuous leases, operator SIGKILLed mid-rotation".into(),
        ..Default::default()
    };
    let leases = sizes.continuous_leases;
    // One spare user per two leases: rotations sometimes wait, and sometimes a credential ends
    // unrotated, so every path of a continuous lease is taken.
    prepare_pool(world, "rotating", leases + leases / 2 + 1, MAX_TTL, MAX_TTL).await;
    let World {
        lab,
        emulator,
        operator,
    } = world;
    let (lab, emulator): (&Lab, &Emulator) = (lab, emulator);
    let tracker = Tracker::start(lab).await;
    emulator.reset_counters();
    let mut auditor = Auditor::new(Duration::from_secs(30));
    let names: Vec<String> = (0..leases).map(|i| format!("rotating-{i}")).collect();
    let (api, create, delete) = (lab.leases(), PostParams::default(), DeleteParams::default());
    for name in &names {
        let spec = json!({ "rotation": { "enabled": true, "overlap": OVERLAP } });
        let lease = lease_object(name, "rotating", spec);
        retrying(Duration::from_secs(60), || api.create(&create, &lease))
            .await
            .expect("the continuous lease is created");
    }
    let done = Cell::new(false);
    let kills = Cell::new(0u64);
    let mid_rotation_kills = Cell::new(0u64);
    tokio::join!(
        async {
            tokio::time::sleep(sizes.continuous_run).await;
            done.set(true);
        },
        async {
            while !done.get() {
                sleep_unless(Duration::from_millis(1500), &done).await;
                // Strike when some lease holds two credentials (a rotation under way).
                let aimed = tracker
                    .wait_for(AIM_FOR, |tracked| mid_rotation(tracked).then_some(()))
                    .await
                    .is_some();
                if done.get() {
                    break;
                }
                operator.kill();
                kills.set(kills.get() + 1);
                if aimed {
                    mid_rotation_kills.set(mid_rotation_kills.get() + 1);
                }
                operator.restart();
            }
        },
        audit_while(&mut auditor, lab, emulator, &tracker, &done),
    );
    if !operator.is_running() {
        operator.restart();
    }
    for name in &names {
        let _ = retrying(Duration::from_secs(60), || api.delete(name, &delete)).await;
    }
    let ended = retrying(Duration::from_secs(180), || async {
        let left = api.list(&ListParams::default()).await?;
        if left.items.is_empty() {
            Ok(())
        } else {
            // Not an answer yet: try again until the leases are gone.
            Err(kube::Error::Service(
                format!("{} leases still ending", left.items.len()).into(),
            ))
        }
    })
    .await;
    if let Err(error) = ended {
        report
            .violations
            .push(format!("continuous leases did not end: {error}"));
    }
    report.faults.insert("operator SIGKILL".into(), kills.get());
    report.faults.insert(
        "operator SIGKILL mid-rotation".into(),
        mid_rotation_kills.get(),
    );
    let rotations = rotations(&tracker.state());
    report.notes.push(format!(
        "{rotations} rotations across {leases} continuous leases"
    ));
    if rotations < leases {
        report.violations.push(format!(
            "only {rotations} rotations for {leases} continuous leases in {:?}",
            sizes.continuous_run
        ));
    }
    // Each continuous lease is one lifecycle, driven to its end above.
    let outcomes = names.iter().map(|_| Outcome::Ended).collect();
    conclude(
        &mut report,
        outcomes,
        auditor,
        (lab, emulator),
        &tracker,
        started,
    )
    .await;
    report
}

/// True when a lease holds two unreleased claims: the middle of a rotation.
fn mid_rotation(tracked: &Tracked) -> bool {
    let mut held = std::collections::HashMap::<&str, usize>::new();
    for ((uid, _, _), claim) in &tracked.claims {
        if claim.released_at.is_none() {
            *held.entry(uid.as_str()).or_default() += 1;
        }
    }
    held.values().any(|count| *count >= 2)
}

/// Credentials beyond each lease's first: rotations, restores and re-issues after a gap.
fn rotations(tracked: &Tracked) -> usize {
    tracked
        .leases
        .values()
        .map(|lease| {
            lease
                .passwords
                .keys()
                .map(|(generation, _)| *generation)
                .max()
                .unwrap_or(1) as usize
                - 1
        })
        .sum()
}

/// What continuous leases cost and what their consumers see, from one `make bench` phase.
#[derive(Debug, Default, serde::Serialize)]
pub struct ContinuousFigures {
    pub leases: usize,
    pub run_seconds: f64,
    pub rotations: usize,
    /// Consumer reads of a lease's Secret (each about 100 ms apart).
    pub consumer_reads: usize,
    /// Reads whose credential did not sign in, or found no Secret.
    pub consumer_reads_failed: usize,
    /// The longest stretch one consumer went without a working credential.
    pub longest_gap_ms: f64,
    /// Graph writes (password resets, scrambles, session revocations) per rotation.
    pub graph_writes_per_rotation: f64,
    pub graph_writes_by_operation: std::collections::BTreeMap<String, u64>,
}

/// How often a consumer reads its lease's Secret, as a pod with the Secret mounted would see it.
const CONSUMER_EVERY: Duration = Duration::from_millis(100);

/// Runs `leases` continuous leases of `pool` (short-lived credentials, so they rotate often) for
/// `run`, each with a consumer that keeps reading its Secret and signing in with what it finds,
/// then ends them. The figures are what the consumers saw and what Graph was asked.
pub async fn measure_continuous(
    lab: &Lab,
    emulator: &Emulator,
    tracker: &Tracker,
    pool: &str,
    leases: usize,
    run: Duration,
) -> ContinuousFigures {
    let names: Vec<String> = (0..leases).map(|i| format!("continuous-{i}")).collect();
    for name in &names {
        let spec = json!({ "rotation": { "enabled": true, "overlap": OVERLAP } });
        lab.leases()
            .create(&PostParams::default(), &lease_object(name, pool, spec))
            .await
            .expect("the continuous lease is created");
    }
    for name in &names {
        tracker
            .wait_active(name, Duration::from_secs(60))
            .await
            .expect("the continuous lease becomes active");
    }
    let before = emulator.counters();
    let started = Instant::now();
    let consumers = names.iter().map(|name| consume(lab, emulator, name, run));
    let seen: Vec<(usize, usize, Duration)> = futures::future::join_all(consumers).await;
    let after = emulator.counters();
    let run_seconds = started.elapsed().as_secs_f64();
    for name in &names {
        let _ = lab.leases().delete(name, &DeleteParams::default()).await;
    }
    for name in &names {
        let _ = tracker.wait_gone(name, Duration::from_secs(120)).await;
    }
    let rotations = names
        .iter()
        .filter_map(|name| tracker.lease(name))
        .map(|lease| {
            lease
                .passwords
                .keys()
                .map(|(generation, _)| *generation)
                .max()
                .unwrap_or(1) as usize
                - 1
        })
        .sum::<usize>();
    let mut by_operation = std::collections::BTreeMap::new();
    for (operation, count) in &after.by_operation {
        let earlier = before.by_operation.get(operation).copied().unwrap_or(0);
        let write = matches!(
            operation,
            Operation::SetPassword
                | Operation::SetAccountEnabled
                | Operation::UpdateUser
                | Operation::RevokeSignInSessions
        );
        if write && *count > earlier {
            by_operation.insert(format!("{operation:?}"), count - earlier);
        }
    }
    let writes = (after.graph_writes - before.graph_writes) as f64;
    ContinuousFigures {
        leases,
        run_seconds,
        rotations,
        consumer_reads: seen.iter().map(|(reads, _, _)| reads).sum(),
        consumer_reads_failed: seen.iter().map(|(_, failed, _)| failed).sum(),
        longest_gap_ms: seen
            .iter()
            .map(|(_, _, gap)| gap.as_secs_f64() * 1000.0)
            .fold(0.0, f64::max),
        graph_writes_per_rotation: writes / rotations.max(1) as f64,
        graph_writes_by_operation: by_operation,
    }
}

/// One consumer: reads, failed reads, and its longest stretch without a working credential.
async fn consume(
    lab: &Lab,
    emulator: &Emulator,
    lease: &str,
    run: Duration,
) -> (usize, usize, Duration) {
    let secret_name = format!("entra-{lease}");
    let deadline = Instant::now() + run;
    let (mut reads, mut failed) = (0, 0);
    let (mut failing_since, mut longest) = (None::<Instant>, Duration::ZERO);
    while Instant::now() < deadline {
        let secret = lab.secrets().get_opt(&secret_name).await.ok().flatten();
        let works = secret
            .as_ref()
            .and_then(super::tracker::credentials)
            .is_some_and(|(user, password)| emulator.sign_in(&user, &password));
        reads += 1;
        if works {
            if let Some(since) = failing_since.take() {
                longest = longest.max(since.elapsed());
            }
        } else {
            failed += 1;
            failing_since.get_or_insert_with(Instant::now);
        }
        tokio::time::sleep(CONSUMER_EVERY).await;
    }
    if let Some(since) = failing_since {
        longest = longest.max(since.elapsed());
    }
    (reads, failed, longest)
}
