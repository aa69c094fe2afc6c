//! The chaos scenarios of `make chaos`, and at smaller sizes of `tests/chaos.rs`: lifecycles driven
//! against the operator while something breaks (the operator, Graph, the API server, a crowd, a
//! hostile tenant), with the auditor checking invariants I1-I5 and I7 during the run and strictly
//! at its end.

use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use entra_emulator::{Emulator, Fault, FaultPlan, Operation};
use entra_operator::api::{LeasePhase, RENEW_ANNOTATION};
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::apiserver::{RestartedApiServer, find_apiserver, restart_apiserver};
use super::audit::{Auditor, REAPER_BOUND, Unguarded};
use super::lab::{
    CLIENT_SECRET_NAME, DECOY_DOMAIN, Lab, OperatorProcess, lease_object, retrying, user_id,
    user_principal_name,
};
use super::tracker::Tracker;

/// How long a driver keeps retrying an API call while the API server is away.
const API_PATIENCE: Duration = Duration::from_secs(90);

/// What one scenario did and found.
#[derive(Debug, Default)]
pub struct ScenarioReport {
    pub name: String,
    /// Lifecycles driven to their end.
    pub lifecycles: usize,
    /// Of those, how many got a credential (a lease deleted while issuing may not).
    pub issued: usize,
    /// Faults injected, by kind: emulator faults, operator kills, API server restarts.
    pub faults: BTreeMap<String, u64>,
    pub violations: Vec<String>,
    /// Leases that failed instead of being issued (not an invariant, but worth a look).
    pub failed_leases: Vec<String>,
    /// Figures worth printing (rates, lags).
    pub notes: Vec<String>,
    pub duration: Duration,
}

impl ScenarioReport {
    pub fn print(&self) {
        println!("== {} ({:.0} s)", self.name, self.duration.as_secs_f64());
        println!(
            "   lifecycles: {} ({} issued)",
            self.lifecycles, self.issued
        );
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!("   faults injected: {}", faults.join(", "));
        for note in &self.notes {
            println!("   {note}");
        }
        if !self.failed_leases.is_empty() {
            println!("   failed leases: {:?}", self.failed_leases);
        }
        println!("   invariant violations: {}", self.violations.len());
        for violation in &self.violations {
            println!("     - {violation}");
        }
    }
}

/// The kube-apiserver of the control plane, and the one this harness started in its place.
pub struct ApiServerHandle {
    pub pid: u32,
    pub restarted: Option<RestartedApiServer>,
}

impl ApiServerHandle {
    pub fn of(control_plane_pids: &[u32]) -> ApiServerHandle {
        ApiServerHandle {
            pid: find_apiserver(control_plane_pids).expect("a kube-apiserver among the pids"),
            restarted: None,
        }
    }
}

/// What a scenario runs against. `lab`'s namespace is the scenario's own and empty.
pub struct World<'a> {
    pub lab: Lab,
    pub emulator: &'a Emulator,
    pub operator: &'a mut dyn OperatorProcess,
}

/// Scenario sizes: `full` for `make chaos`, `subset` for `make test`.
#[derive(Clone, Debug)]
pub struct Sizes {
    pub kill_lifecycles: usize,
    pub kill_concurrency: usize,
    pub kill_every_ms: (u64, u64),
    pub fault_lifecycles: usize,
    pub fault_concurrency: usize,
    pub outage_leases: usize,
    pub outage: Duration,
    /// TTL of the first lease of the outage scenario; the others expire during the outage.
    pub outage_first_ttl: u64,
    pub apiserver_lifecycles: usize,
    pub apiserver_down: Duration,
    pub contention_leases: usize,
    pub contention_users: usize,
    /// Lifecycles of the hostile scenario's churn (a fifth of them stripped, a fifth forged).
    pub hostile_lifecycles: usize,
    pub hostile_concurrency: usize,
    /// Rounds of "operator killed, finalizers stripped, operator started".
    pub hostile_kills: usize,
    /// Pools re-pointed to another tenant or robbed of their client secret (alternately).
    pub hostile_pool_attacks: usize,
    /// Continuous leases rotating while the operator is killed mid-rotation, and for how long.
    pub continuous_leases: usize,
    pub continuous_run: Duration,
    /// Lifecycles on the healthy app while the neighbour's app is throttled.
    pub noisy_lifecycles: usize,
    pub noisy_concurrency: usize,
    /// Leases the neighbour holds when its app is throttled (half as many more are asked for).
    pub noisy_neighbour_leases: usize,
}

impl Sizes {
    pub fn full() -> Sizes {
        Sizes {
            kill_lifecycles: 300,
            kill_concurrency: 12,
            kill_every_ms: (2000, 5000),
            fault_lifecycles: 200,
            fault_concurrency: 12,
            outage_leases: 100,
            outage: Duration::from_secs(60),
            outage_first_ttl: 30,
            apiserver_lifecycles: 80,
            apiserver_down: Duration::from_secs(5),
            contention_leases: 200,
            contention_users: 5,
            hostile_lifecycles: 150,
            hostile_concurrency: 10,
            hostile_kills: 6,
            hostile_pool_attacks: 8,
            continuous_leases: 12,
            continuous_run: Duration::from_secs(90),
            noisy_lifecycles: 200,
            noisy_concurrency: 12,
            noisy_neighbour_leases: 40,
        }
    }

    pub fn subset() -> Sizes {
        Sizes {
            kill_lifecycles: 24,
            kill_concurrency: 6,
            kill_every_ms: (1500, 3000),
            fault_lifecycles: 24,
            fault_concurrency: 6,
            outage_leases: 10,
            outage: Duration::from_secs(15),
            outage_first_ttl: 12,
            apiserver_lifecycles: 16,
            apiserver_down: Duration::from_secs(3),
            contention_leases: 24,
            contention_users: 3,
            hostile_lifecycles: 16,
            hostile_concurrency: 6,
            hostile_kills: 1,
            hostile_pool_attacks: 2,
            continuous_leases: 4,
            continuous_run: Duration::from_secs(30),
            noisy_lifecycles: 24,
            noisy_concurrency: 6,
            noisy_neighbour_leases: 10,
        }
    }
}

/// One kind of lease life. The pool of the mixed scenarios has defaultTTL 4s and maxTTL 12s.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    /// Runs out its TTL (2-6 s) and is revoked and deleted by the operator.
    Expire { ttl_seconds: u64 },
    /// Deleted by its owner a moment after it became Active.
    Delete { hold_ms: u64 },
    /// Renewed twice by annotation, then expires (capped by maxTTL).
    Renew,
    /// Renews itself until maxTTL.
    AutoRenew,
    /// Deleted while the operator may still be issuing it.
    DeleteWhileIssuing { after_ms: u64 },
    /// Hostile: deleted a moment after it became Active, and its finalizers stripped at once;
    /// with `strip_first`, also stripped just before the delete, so that the lease is gone before
    /// the operator can act on the deletion (only the reaper can end its credential then).
    Strip { hold_ms: u64, strip_first: bool },
    /// Hostile: its status forged once Active (deadlines far out, another pool user, a phase);
    /// then deleted after `delete_after_ms`, or left to its recorded expiry.
    Forge {
        phase: &'static str,
        other_user: usize,
        delete_after_ms: Option<u64>,
    },
}

const PHASES: [&str; 5] = ["Pending", "Issuing", "Active", "Revoking", "Failed"];

/// The hostile scenario's mix: the usual lives, a fifth stripped and a fifth forged.
fn hostile_kind(rng: &mut StdRng) -> Kind {
    match rng.random_range(0..100) {
        0..24 => Kind::Expire {
            ttl_seconds: rng.random_range(2..=6),
        },
        24..44 => Kind::Delete {
            hold_ms: rng.random_range(0..1500),
        },
        44..52 => Kind::Renew,
        52..56 => Kind::AutoRenew,
        56..60 => Kind::DeleteWhileIssuing {
            after_ms: rng.random_range(0..400),
        },
        60..80 => Kind::Strip {
            hold_ms: rng.random_range(0..1500),
            strip_first: rng.random_bool(0.5),
        },
        _ => Kind::Forge {
            phase: PHASES[rng.random_range(0..PHASES.len())],
            other_user: rng.random_range(0..1000),
            delete_after_ms: rng.random_bool(0.5).then(|| rng.random_range(0..2000)),
        },
    }
}

pub(crate) fn mixed_kind() -> Kind {
    match rand::random_range(0..100) {
        0..35 => Kind::Expire {
            ttl_seconds: rand::random_range(2..=6),
        },
        35..65 => Kind::Delete {
            hold_ms: rand::random_range(0..1500),
        },
        65..80 => Kind::Renew,
        80..88 => Kind::AutoRenew,
        _ => Kind::DeleteWhileIssuing {
            after_ms: rand::random_range(0..400),
        },
    }
}

pub(crate) enum Outcome {
    Ended,
    /// The lease failed; the driver deleted it, and it ended.
    Failed(String),
    /// It did not end in time: a revocation that never finished, or an issue that never did.
    Stuck(String),
}

/// Drives one lifecycle to its end.
pub(crate) struct Driver<'a> {
    pub(crate) lab: &'a Lab,
    pub(crate) tracker: &'a Tracker,
    pub(crate) pool: &'a str,
    /// How long a lease may take to become Active, and then to go away.
    pub(crate) patience: Duration,
    /// The hostile scenario's attack log; `None` elsewhere.
    pub(crate) hostile: Option<&'a Hostility<'a>>,
}

impl Driver<'_> {
    async fn run(&self, name: String, kind: Kind) -> Outcome {
        let spec = match kind {
            Kind::Expire { ttl_seconds } => json!({ "ttl": format!("{ttl_seconds}s") }),
            Kind::Delete { .. } | Kind::DeleteWhileIssuing { .. } | Kind::Strip { .. } => {
                json!({ "ttl": "12s" })
            }
            Kind::Forge {
                delete_after_ms: Some(_),
                ..
            } => json!({ "ttl": "12s" }),
            Kind::Renew | Kind::Forge { .. } => json!({ "ttl": "4s" }),
            Kind::AutoRenew => json!({ "ttl": "3s", "autoRenew": true }),
        };
        if let Err(error) = self.create(lease_object(&name, self.pool, spec)).await {
            return Outcome::Stuck(format!("{name}: not created: {error}"));
        }
        match kind {
            Kind::Expire { .. } | Kind::AutoRenew => {}
            Kind::Delete { hold_ms } => {
                self.tracker.wait_active(&name, self.patience).await;
                tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                self.delete(&name).await;
            }
            Kind::Renew => {
                if self
                    .tracker
                    .wait_active(&name, self.patience)
                    .await
                    .is_some()
                {
                    for request in ["first", "second"] {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        self.renew(&name, request).await;
                    }
                }
            }
            Kind::DeleteWhileIssuing { after_ms } => {
                tokio::time::sleep(Duration::from_millis(after_ms)).await;
                self.delete(&name).await;
            }
            Kind::Strip {
                hold_ms,
                strip_first,
            } => {
                if let Some(hostile) = self.hostile
                    && self
                        .tracker
                        .wait_active(&name, self.patience)
                        .await
                        .is_some()
                {
                    tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                    let credential = self.credential(&name).await;
                    hostile.unguarded.lock().unwrap().insert(name.clone());
                    if strip_first {
                        self.strip_finalizers(&name).await;
                    }
                    self.delete(&name).await;
                    self.strip_finalizers(&name).await;
                    let attacked = Instant::now();
                    let attack = if strip_first {
                        FINALIZER_STRIPPED_FIRST
                    } else {
                        FINALIZER_STRIPPED
                    };
                    hostile.count(attack);
                    if let Some((user, password)) = credential {
                        let bound = hostile.strip_bound;
                        hostile
                            .watch_death(attack, &name, (&user, &password), attacked, bound)
                            .await;
                    }
                }
            }
            Kind::Forge {
                phase,
                other_user,
                delete_after_ms,
            } => {
                if let Some(hostile) = self.hostile
                    && self
                        .tracker
                        .wait_active(&name, self.patience)
                        .await
                        .is_some()
                {
                    let credential = self.credential(&name).await;
                    let other = other_user % hostile.pool_users;
                    self.forge_status(&name, phase, other).await;
                    hostile.count(STATUS_FORGED);
                    let (attack, from) = match delete_after_ms {
                        Some(ms) => {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                            self.delete(&name).await;
                            ("status forged, then the lease deleted", Instant::now())
                        }
                        None => {
                            // The recorded expiry, as the claim says (the status now lies).
                            let deadline = self.recorded_deadline(&name).await;
                            let wait = deadline
                                .map(|d| d.duration_since(Timestamp::now()))
                                .and_then(|d| Duration::try_from(d).ok())
                                .unwrap_or_default();
                            tokio::time::sleep(wait).await;
                            ("status forged, then its recorded expiry", Instant::now())
                        }
                    };
                    if let Some((user, password)) = credential {
                        let bound = hostile.lag_bound;
                        hostile
                            .watch_death(attack, &name, (&user, &password), from, bound)
                            .await;
                    }
                    return self.until_ended_as(&name, false).await;
                }
            }
        }
        self.until_ended(&name).await
    }

    /// The username and password its Secret held, as the tracker saw them.
    async fn credential(&self, name: &str) -> Option<(String, String)> {
        self.tracker
            .wait_for(Duration::from_secs(10), |tracked| {
                tracked
                    .passwords
                    .iter()
                    .find(|(_, (lease, _))| lease.as_str() == name)
                    .map(|(credential, _)| credential.clone())
            })
            .await
    }

    /// The deadline its claim records (not its status, which a tenant may forge).
    async fn recorded_deadline(&self, name: &str) -> Option<Timestamp> {
        let uid = self.tracker.lease(name)?.uid?;
        self.tracker
            .wait_for(Duration::from_secs(10), |tracked| {
                tracked.latest_claim(&uid).map(|claim| claim.deadline())
            })
            .await
    }

    /// Merge-patches `metadata.finalizers` away; the lease may be gone already.
    async fn strip_finalizers(&self, name: &str) {
        let api = self.lab.leases();
        let body = json!({ "metadata": { "finalizers": null } });
        let (params, patch) = (PatchParams::default(), Patch::Merge(&body));
        let _ = retrying(API_PATIENCE, || api.patch(name, &params, &patch)).await;
    }

    /// Writes a status that lies: deadlines far out, another pool user, `phase`.
    async fn forge_status(&self, name: &str, phase: &str, other_user: usize) {
        let api = self.lab.leases();
        let body = json!({ "status": {
            "phase": phase,
            "user": { "userPrincipalName": user_principal_name(other_user), "id": user_id(other_user) },
            "expiresAt": "2099-01-01T00:00:00Z",
            "maxExpiresAt": "2099-01-01T00:00:00Z",
            "lastRenewRequest": "forged",
        } });
        let (params, patch) = (PatchParams::default(), Patch::Merge(&body));
        let _ = retrying(API_PATIENCE, || api.patch_status(name, &params, &patch)).await;
    }

    async fn until_ended(&self, name: &str) -> Outcome {
        self.until_ended_as(name, true).await
    }

    /// Waits until the lease is gone; with `trust_phase`, a lease whose status says Failed is
    /// deleted (a forged status may say Failed: then only its disappearance counts).
    async fn until_ended_as(&self, name: &str, trust_phase: bool) -> Outcome {
        // Issue (if pending) plus the longest life (maxTTL) plus revocation.
        let deadline = Instant::now() + self.patience * 2;
        let ended = loop {
            let slice = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_secs(10));
            let seen = self
                .tracker
                .wait_for(slice, |tracked| {
                    let track = tracked.leases.get(name)?;
                    if track.gone_at.is_some() {
                        Some(None)
                    } else if trust_phase
                        && track.phase == Some(LeasePhase::Failed)
                        && !track.deleting
                    {
                        Some(Some(()))
                    } else {
                        None
                    }
                })
                .await;
            if seen.is_some() || Instant::now() >= deadline {
                break seen;
            }
            // Created and gone while the tracker's watch was down (an API server restart): the
            // tracker never saw it, the API server says it is gone.
            if self.tracker.lease(name).is_none()
                && matches!(self.lab.leases().get_opt(name).await, Ok(None))
            {
                break Some(None);
            }
        };
        match ended {
            Some(None) => Outcome::Ended,
            Some(Some(())) => {
                self.delete(name).await;
                let gone = self.tracker.wait_gone(name, self.patience).await;
                let reason = self.failure_reason(name).await;
                match gone {
                    Some(_) => Outcome::Failed(format!("{name}: {reason}")),
                    None => Outcome::Stuck(format!("{name} failed ({reason}) and never ended")),
                }
            }
            None => {
                let phase = self.tracker.lease(name).and_then(|t| t.phase);
                Outcome::Stuck(format!(
                    "I3/I5: lease {name} did not end within {:?} (phase {phase:?})",
                    self.patience * 2
                ))
            }
        }
    }

    async fn failure_reason(&self, name: &str) -> String {
        let lease = self.lab.leases().get_opt(name).await.ok().flatten();
        lease
            .and_then(|l| l.status)
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
            .map(|c| format!("{}: {}", c.reason, c.message))
            .unwrap_or_else(|| "Failed".into())
    }

    async fn create(&self, lease: entra_operator::api::EntraLease) -> kube::Result<()> {
        let api = self.lab.leases();
        let params = PostParams::default();
        match retrying(API_PATIENCE, || api.create(&params, &lease)).await {
            // A create whose answer was lost in an API server restart, retried.
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn delete(&self, name: &str) {
        let api = self.lab.leases();
        let params = DeleteParams::default();
        let _ = retrying(API_PATIENCE, || api.delete(name, &params)).await;
    }

    async fn renew(&self, name: &str, request: &str) {
        let api = self.lab.leases();
        let body = json!({ "metadata": { "annotations": { RENEW_ANNOTATION: request } } });
        let (params, patch) = (PatchParams::default(), Patch::Merge(&body));
        let _ = retrying(API_PATIENCE, || api.patch(name, &params, &patch)).await;
    }
}

/// Runs `lifecycles` drivers, `concurrency` at once, with `kind` choosing each one's life.
pub(crate) async fn drive(
    driver: &Driver<'_>,
    prefix: &str,
    lifecycles: usize,
    concurrency: usize,
    kind: impl Fn(usize) -> Kind,
) -> Vec<Outcome> {
    futures::stream::iter(0..lifecycles)
        .map(|i| driver.run(format!("{prefix}-{i}"), kind(i)))
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// Audits every few seconds until `done`.
pub(crate) async fn audit_while(
    auditor: &mut Auditor,
    lab: &Lab,
    emulator: &Emulator,
    tracker: &Tracker,
    done: &Cell<bool>,
) {
    while !done.get() {
        auditor.check(lab, tracker, emulator).await;
        for _ in 0..30 {
            if done.get() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Sets up the scenario's dynamic secret over users `0..users` and waits until it is ready.
pub(crate) async fn prepare_pool(
    world: &World<'_>,
    pool: &str,
    users: usize,
    default_ttl: &str,
    max_ttl: &str,
) {
    world.lab.create_client_secret().await;
    world
        .lab
        .create_pool(pool, 0..users, default_ttl, max_ttl, true)
        .await;
    world
        .lab
        .wait_pools_ready(&[pool.to_owned()], Duration::from_secs(120))
        .await
        .expect("the scenario's dynamic secret becomes ready");
}

/// Turns driver outcomes, the audit and the emulator's counters into the report.
pub(crate) async fn conclude(
    report: &mut ScenarioReport,
    outcomes: Vec<Outcome>,
    mut auditor: Auditor,
    (lab, emulator): (&Lab, &Emulator),
    tracker: &Tracker,
    started: Instant,
) {
    report.lifecycles = outcomes.len();
    for outcome in outcomes {
        match outcome {
            Outcome::Ended => {}
            Outcome::Failed(reason) => report.failed_leases.push(reason),
            Outcome::Stuck(reason) => report.violations.push(reason),
        }
    }
    auditor.final_check(lab, tracker, emulator).await;
    report.violations.extend(auditor.violations);
    let tracked = tracker.state();
    report.issued = tracked
        .leases
        .values()
        .filter(|t| t.active_at.is_some())
        .count();
    let counters = emulator.counters();
    for (kind, count) in &counters.faults {
        *report.faults.entry(format!("graph {kind}")).or_default() += count;
    }
    let sets = counters.operation_status(Operation::SetPassword, 204)
        + counters.operation_status(Operation::SetPassword, 202);
    report.notes.push(format!(
        "Graph: {} requests, {} password resets accepted for {} issued lifecycles, {} audit rounds",
        counters.token_requests + counters.graph_reads + counters.graph_writes,
        sets,
        report.issued,
        auditor.rounds
    ));
    report.duration = started.elapsed();
}

/// (1) The operator SIGKILLed at random every few seconds, and restarted, during mixed lifecycles.
pub async fn operator_killed(world: &mut World<'_>, sizes: &Sizes) -> ScenarioReport {
    let started = Instant::now();
    let mut report = ScenarioReport {
        name: "operator SIGKILLed at random".into(),
        ..Default::default()
    };
    let users = sizes.kill_concurrency + 4;
    prepare_pool(world, "kill", users, "4s", "12s").await;
    let World {
        lab,
        emulator,
        operator,
    } = world;
    let (lab, emulator): (&Lab, &Emulator) = (lab, emulator);
    let tracker = Tracker::start(lab).await;
    emulator.reset_counters();
    let mut auditor = Auditor::new(Duration::from_secs(30));
    let driver = Driver {
        lab,
        tracker: &tracker,
        pool: "kill",
        patience: Duration::from_secs(120),
        hostile: None,
    };
    let done = Cell::new(false);
    let kills = Cell::new(0u64);
    let (low, high) = sizes.kill_every_ms;
    let (outcomes, (), ()) = tokio::join!(
        async {
            let outcomes = drive(
                &driver,
                "kill",
                sizes.kill_lifecycles,
                sizes.kill_concurrency,
                |_| mixed_kind(),
            )
            .await;
            done.set(true);
            outcomes
        },
        async {
            while !done.get() {
                let wait = rand::random_range(low..=high);
                sleep_unless(Duration::from_millis(wait), &done).await;
                if done.get() {
                    break;
                }
                operator.kill();
                kills.set(kills.get() + 1);
                operator.restart();
            }
        },
        audit_while(&mut auditor, lab, emulator, &tracker, &done),
    );
    if !operator.is_running() {
        operator.restart();
    }
    report.faults.insert("operator SIGKILL".into(), kills.get());
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

/// (2) 20 % of token and Graph requests fail: 429 with every kind of Retry-After, 503, timeouts,
/// resets, and writes whose response is lost after they took effect.
pub async fn graph_faults(world: &mut World<'_>, sizes: &Sizes) -> ScenarioReport {
    let started = Instant::now();
    let mut report = ScenarioReport {
        name: "Graph faults at 20 %".into(),
        ..Default::default()
    };
    let users = sizes.fault_concurrency + 4;
    prepare_pool(world, "faults", users, "4s", "12s").await;
    let tracker = Tracker::start(&world.lab).await;
    world.emulator.reset_counters();
    world.emulator.set_faults(FaultPlan::random(
        0.2,
        [
            Fault::throttle(Some("1")),
            Fault::throttle(Some("0.25")),
            Fault::throttle(Some("0")),
            Fault::throttle(None),
            Fault::unavailable(None),
            Fault::unavailable(Some("1")),
            Fault::GatewayTimeout,
            Fault::timeout(Duration::from_secs(2)),
            Fault::Reset,
            Fault::LostResponse,
        ],
    ));
    let mut auditor = Auditor::new(Duration::from_secs(60));
    let driver = Driver {
        lab: &world.lab,
        tracker: &tracker,
        pool: "faults",
        patience: Duration::from_secs(180),
        hostile: None,
    };
    let done = Cell::new(false);
    let (outcomes, ()) = tokio::join!(
        async {
            let outcomes = drive(
                &driver,
                "faults",
                sizes.fault_lifecycles,
                sizes.fault_concurrency,
                |_| mixed_kind(),
            )
            .await;
            done.set(true);
            outcomes
        },
        audit_while(&mut auditor, &world.lab, world.emulator, &tracker, &done),
    );
    world.emulator.clear_faults();
    conclude(
        &mut report,
        outcomes,
        auditor,
        (&world.lab, world.emulator),
        &tracker,
        started,
    )
    .await;
    report
}

/// (3) Graph entirely down for a while, across many expiries: every overdue lease is revoked soon
/// after Graph returns, and the operator's retries during the outage stay bounded.
pub async fn graph_outage(world: &mut World<'_>, sizes: &Sizes) -> ScenarioReport {
    let started = Instant::now();
    let mut report = ScenarioReport {
        name: format!("Graph outage of {} s", sizes.outage.as_secs()),
        ..Default::default()
    };
    let count = sizes.outage_leases;
    prepare_pool(world, "outage", count, "1h", "2h").await;
    let tracker = Tracker::start(&world.lab).await;
    let driver = Driver {
        lab: &world.lab,
        tracker: &tracker,
        pool: "outage",
        patience: Duration::from_secs(300),
        hostile: None,
    };
    // TTLs staggered so that the expiries spread over the first three quarters of the outage.
    let spread = sizes.outage.as_secs() * 3 / 4;
    let ttl = |i: usize| sizes.outage_first_ttl + (i as u64 * spread) / count as u64;
    let names: Vec<String> = (0..count).map(|i| format!("outage-{i}")).collect();
    let creating = Instant::now();
    futures::stream::iter(names.iter().enumerate())
        .for_each_concurrent(16, |(i, name)| {
            let lease = lease_object(name, "outage", json!({ "ttl": format!("{}s", ttl(i)) }));
            let driver = &driver;
            async move {
                let _ = driver.create(lease).await;
            }
        })
        .await;
    for name in &names {
        if tracker
            .wait_active(name, Duration::from_secs(120))
            .await
            .is_none()
        {
            report.violations.push(format!("{name} was never issued"));
        }
    }
    let issued_in = creating.elapsed();
    // Graph goes down now, for `outage`.
    world.emulator.reset_counters();
    world.emulator.clear_requests();
    world.emulator.set_faults(FaultPlan::outage());
    let down_at = Timestamp::now();
    let back_at = down_at + k8s_openapi::jiff::SignedDuration::try_from(sizes.outage).unwrap();
    let mut auditor = Auditor::new(Duration::from_secs(30));
    auditor.graph_back_at = Some(back_at);
    let done = Cell::new(false);
    tokio::join!(
        async {
            tokio::time::sleep(sizes.outage).await;
            done.set(true);
        },
        audit_while(&mut auditor, &world.lab, world.emulator, &tracker, &done),
    );
    let during = world.emulator.requests();
    world.emulator.clear_faults();
    let back = Timestamp::now();
    auditor.graph_back_at = Some(back);
    let overdue: Vec<String> = tracker
        .state()
        .leases
        .iter()
        .filter(|(_, t)| t.deadline().is_some_and(|d| d <= back) && t.gone_at.is_none())
        .map(|(name, _)| name.clone())
        .collect();
    let outcomes: Vec<Outcome> = futures::stream::iter(&names)
        .map(|name| driver.until_ended(name))
        .buffer_unordered(count)
        .collect()
        .await;
    // When each overdue lease's password was scrambled, as the emulator recorded it.
    let mut revoked_after: Vec<f64> = Vec::new();
    for name in &overdue {
        let Some(id) = tracker.lease(name).and_then(|t| t.user_id) else {
            continue;
        };
        let Some(set_at) = world
            .emulator
            .user(&id)
            .and_then(|u| u.password_last_set_date_time)
        else {
            continue;
        };
        let lag = set_at.as_millisecond() as f64 / 1000.0 - back.as_millisecond() as f64 / 1000.0;
        revoked_after.push(lag);
    }
    revoked_after.sort_by(f64::total_cmp);
    let slowest = revoked_after.last().copied().unwrap_or(0.0);
    let median = revoked_after
        .get(revoked_after.len() / 2)
        .copied()
        .unwrap_or(0.0);
    let outage_seconds = sizes.outage.as_secs_f64();
    let per_second = during.len() as f64 / outage_seconds;
    let mut buckets: BTreeMap<i64, usize> = BTreeMap::new();
    for record in &during {
        *buckets.entry(record.time.as_second()).or_default() += 1;
    }
    let busiest = buckets.values().copied().max().unwrap_or(0);
    let overdue_in_outage = overdue.len().max(1);
    report.notes.push(format!(
        "{count} leases issued in {:.1} s; {} overdue when Graph returned",
        issued_in.as_secs_f64(),
        overdue.len()
    ));
    report.notes.push(format!(
        "requests during the outage: {} ({per_second:.2}/s, busiest second {busiest}, {:.2} per \
         overdue lease per minute)",
        during.len(),
        during.len() as f64 / overdue_in_outage as f64 / (outage_seconds / 60.0)
    ));
    report.notes.push(format!(
        "overdue leases scrambled after Graph returned: median {median:.1} s, slowest {slowest:.1} s"
    ));
    // Bounded retries: no lease may hammer a dead Graph (at most one request per second each).
    if per_second > overdue_in_outage as f64 + 1.0 {
        report.violations.push(format!(
            "retry storm: {per_second:.1} requests/s during the outage for {} overdue leases",
            overdue.len()
        ));
    }
    if slowest > 60.0 {
        report.violations.push(format!(
            "I5: an overdue lease was scrambled {slowest:.0} s after Graph returned"
        ));
    }
    conclude(
        &mut report,
        outcomes,
        auditor,
        (&world.lab, world.emulator),
        &tracker,
        started,
    )
    .await;
    report
}

/// (4) The API server SIGKILLed and started again mid-run: watches recover, nothing is lost.
pub async fn apiserver_restarted(
    world: &mut World<'_>,
    apiserver: &mut ApiServerHandle,
    sizes: &Sizes,
) -> ScenarioReport {
    let started = Instant::now();
    let mut report = ScenarioReport {
        name: "API server restarted mid-run".into(),
        ..Default::default()
    };
    let concurrency = 8;
    prepare_pool(world, "apiserver", concurrency + 6, "4s", "12s").await;
    let tracker = Tracker::start(&world.lab).await;
    world.emulator.reset_counters();
    let mut auditor = Auditor::new(Duration::from_secs(40));
    let driver = Driver {
        lab: &world.lab,
        tracker: &tracker,
        pool: "apiserver",
        patience: Duration::from_secs(180),
        hostile: None,
    };
    let done = Cell::new(false);
    let restart_after = sizes.apiserver_lifecycles / 3;
    let (outcomes, restart, ()) = tokio::join!(
        async {
            let outcomes = drive(
                &driver,
                "apiserver",
                sizes.apiserver_lifecycles,
                concurrency,
                |_| mixed_kind(),
            )
            .await;
            done.set(true);
            outcomes
        },
        async {
            // Restart once a third of the lifecycles have started.
            tracker
                .wait_for(Duration::from_secs(600), |t| {
                    (t.leases.len() >= restart_after).then_some(())
                })
                .await;
            let pid = apiserver.pid;
            let down = sizes.apiserver_down;
            let restarted = tokio::task::spawn_blocking(move || restart_apiserver(pid, down))
                .await
                .expect("the restart task");
            let restarted_at = Instant::now();
            let answered = retrying(Duration::from_secs(120), || {
                world.lab.client.apiserver_version()
            })
            .await;
            (
                restarted,
                answered.is_ok(),
                restarted_at.elapsed(),
                Instant::now(),
            )
        },
        audit_while(&mut auditor, &world.lab, world.emulator, &tracker, &done),
    );
    let (restarted, answered, took, answered_at) = restart;
    match restarted {
        Ok(server) => {
            apiserver.pid = server.pid();
            apiserver.restarted = Some(server);
            report.faults.insert("kube-apiserver SIGKILL".into(), 1);
            report.notes.push(format!(
                "kube-apiserver down {:?}, answering again {:.1} s after its restart",
                sizes.apiserver_down,
                took.as_secs_f64()
            ));
        }
        Err(error) => report
            .violations
            .push(format!("could not restart kube-apiserver: {error}")),
    }
    if !answered {
        report
            .violations
            .push("kube-apiserver did not answer after its restart".into());
    }
    if !world.operator.is_running() {
        report
            .violations
            .push("the operator exited when the API server went away".into());
        world.operator.restart();
    }
    // New leases after the restart prove that the operator's watches came back.
    let after: Vec<Outcome> = drive(&driver, "after-restart", 4, 4, |_| Kind::Expire {
        ttl_seconds: 2,
    })
    .await;
    let mut outcomes = outcomes;
    outcomes.extend(after);
    let first_issue = tracker
        .state()
        .leases
        .values()
        .filter_map(|t| t.active_at)
        .filter(|at| *at > answered_at)
        .min();
    report.notes.push(match first_issue {
        Some(at) => format!(
            "first lease Active {:.1} s after the API server answered again",
            (at - answered_at).as_secs_f64()
        ),
        None => "no lease became Active after the restart".into(),
    });
    conclude(
        &mut report,
        outcomes,
        auditor,
        (&world.lab, world.emulator),
        &tracker,
        started,
    )
    .await;
    report
}

/// (5) Many leases contending for a small pool: one holder per user at every moment.
pub async fn contention(world: &mut World<'_>, sizes: &Sizes) -> ScenarioReport {
    let started = Instant::now();
    let users = sizes.contention_users;
    let mut report = ScenarioReport {
        name: format!(
            "{} leases contending for {users} users",
            sizes.contention_leases
        ),
        ..Default::default()
    };
    prepare_pool(world, "contention", users, "1s", "1m").await;
    let tracker = Tracker::start(&world.lab).await;
    world.emulator.reset_counters();
    let mut auditor = Auditor::new(Duration::from_secs(30));
    let driver = Driver {
        lab: &world.lab,
        tracker: &tracker,
        pool: "contention",
        patience: Duration::from_secs(600),
        hostile: None,
    };
    let done = Cell::new(false);
    let (outcomes, ()) = tokio::join!(
        async {
            let outcomes = drive(
                &driver,
                "contention",
                sizes.contention_leases,
                sizes.contention_leases,
                |_| Kind::Expire { ttl_seconds: 1 },
            )
            .await;
            done.set(true);
            outcomes
        },
        audit_while(&mut auditor, &world.lab, world.emulator, &tracker, &done),
    );
    let max_active = tracker.state().max_active;
    report.notes.push(format!(
        "at most {max_active} leases were Active at once for {users} users; {:.1} lifecycles/s",
        sizes.contention_leases as f64 / started.elapsed().as_secs_f64()
    ));
    if max_active > users {
        report.violations.push(format!(
            "I1: {max_active} leases were Active at once for {users} users"
        ));
    }
    conclude(
        &mut report,
        outcomes,
        auditor,
        (&world.lab, world.emulator),
        &tracker,
        started,
    )
    .await;
    report
}

const FINALIZER_STRIPPED: &str = "finalizer stripped after delete";
const FINALIZER_STRIPPED_FIRST: &str = "finalizer stripped before and after delete";
const STATUS_FORGED: &str = "status forged";
const POOL_REPOINTED: &str = "pool re-pointed to another tenant, then the lease deleted";
const CLIENT_SECRET_DELETED: &str = "client-secret Secret deleted, then the lease deleted";
const STRIPPED_WHILE_DOWN: &str = "finalizer stripped while the operator was down";

/// What the hostile scenario's drivers and attackers share: which leases lost their finalizers
/// (the auditor reads it), what each attack did to its password, and the bounds.
pub(crate) struct Hostility<'a> {
    emulator: &'a Emulator,
    unguarded: Unguarded,
    /// Users of the churn pool (forged statuses name one of them).
    pool_users: usize,
    /// How long a password may outlive a stripped lease: the reaper's bound plus the lag.
    strip_bound: Duration,
    /// How long a password may outlive a guarded deletion or its recorded expiry.
    lag_bound: Duration,
    /// Attacks made, by kind.
    counts: Mutex<BTreeMap<&'static str, u64>>,
    /// (attack, lease, how long its password kept working after the attack, if it died).
    deaths: Mutex<Vec<(&'static str, String, Option<Duration>)>>,
}

impl Hostility<'_> {
    fn count(&self, attack: &'static str) {
        *self.counts.lock().unwrap().entry(attack).or_default() += 1;
    }

    /// Waits on the emulator until the password no longer signs in, for up to `bound` from
    /// `from`; records how long after `from` it died (`None`: it outlived the bound).
    async fn watch_death(
        &self,
        attack: &'static str,
        lease: &str,
        (user, password): (&str, &str),
        from: Instant,
        bound: Duration,
    ) {
        let died = loop {
            if !self.emulator.sign_in(user, password) {
                break Some(from.elapsed());
            }
            if from.elapsed() > bound {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        self.deaths
            .lock()
            .unwrap()
            .push((attack, lease.to_owned(), died));
    }
}

/// The seed of a scenario's random choices: `CHAOS_SEED`, or a fresh one (printed, so that a
/// run's choices can be replayed).
fn seed() -> u64 {
    std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

/// (6) A hostile tenant among ordinary churn: leases deleted with their finalizers stripped at
/// once, statuses forged (deadlines, user, phase), pools re-pointed at another tenant or robbed of
/// their client secret before a lease of theirs is deleted, finalizers stripped while the
/// operator is down. Every attacked lease's password must stop working within the bound (the
/// reaper's 30 s plus the lag for a stripped finalizer; the lag past a guarded deletion or the
/// recorded expiry), and the auditor judges from the claims, which the tenant cannot touch.
/// Run it with an emulator from `tenant_with_decoy`.
pub async fn hostile(world: &mut World<'_>, sizes: &Sizes) -> ScenarioReport {
    let started = Instant::now();
    let mut report = ScenarioReport {
        name: "hostile tenant among churn".into(),
        ..Default::default()
    };
    let seed = seed();
    println!("   hostile: seed {seed} (CHAOS_SEED={seed} replays these choices)");
    let mut rng = StdRng::seed_from_u64(seed);
    let kinds: Vec<Kind> = (0..sizes.hostile_lifecycles)
        .map(|_| hostile_kind(&mut rng))
        .collect();
    let kill_waits: Vec<(u64, u64)> = (0..sizes.hostile_kills)
        .map(|_| (rng.random_range(3000..=8000), rng.random_range(200..=1500)))
        .collect();
    let attack_waits: Vec<u64> = (0..sizes.hostile_pool_attacks)
        .map(|_| rng.random_range(500..=3000))
        .collect();
    let users = sizes.hostile_concurrency + 4;
    prepare_pool(world, "hostile", users, "4s", "12s").await;
    // One pool of one user per pool attack, so that the churn pool stays as it is.
    let victims: Vec<(String, bool)> = (0..sizes.hostile_pool_attacks)
        .map(|i| (format!("victim-{i}"), i % 2 == 0))
        .collect();
    for (i, (pool, repoint)) in victims.iter().enumerate() {
        let client_secret = if *repoint {
            CLIENT_SECRET_NAME.to_owned()
        } else {
            let name = format!("{pool}-app");
            world.lab.create_client_secret_named(&name).await;
            name
        };
        let user = users + i;
        world
            .lab
            .create_pool_using(pool, user..user + 1, ("10m", "1h"), true, &client_secret)
            .await;
    }
    let pool_names: Vec<String> = victims.iter().map(|(p, _)| p.clone()).collect();
    world
        .lab
        .wait_pools_ready(&pool_names, Duration::from_secs(120))
        .await
        .expect("the victim pools become ready");
    let World {
        lab,
        emulator,
        operator,
    } = world;
    let (lab, emulator): (&Lab, &Emulator) = (lab, emulator);
    let tracker = Tracker::start(lab).await;
    emulator.reset_counters();
    let lag_bound = Duration::from_secs(30);
    let mut auditor = Auditor::new(lag_bound);
    let hostility = Hostility {
        emulator,
        unguarded: auditor.unguarded.clone(),
        pool_users: users,
        strip_bound: REAPER_BOUND + lag_bound,
        lag_bound,
        counts: Mutex::default(),
        deaths: Mutex::default(),
    };
    let driver = Driver {
        lab,
        tracker: &tracker,
        pool: "hostile",
        patience: Duration::from_secs(120),
        hostile: Some(&hostility),
    };
    // Leases whose lives are ordinary: the ones the kill rounds may strip.
    let plain: HashSet<String> = kinds
        .iter()
        .enumerate()
        .filter(|(_, k)| !matches!(k, Kind::Strip { .. } | Kind::Forge { .. }))
        .map(|(i, _)| format!("hostile-{i}"))
        .collect();
    let churn_done = Cell::new(false);
    let done = Cell::new(false);
    let kills = Cell::new(0u64);
    let (outcomes, ()) = tokio::join!(
        async {
            let (mut outcomes, (), victim_outcomes) = tokio::join!(
                async {
                    let outcomes = drive(
                        &driver,
                        "hostile",
                        sizes.hostile_lifecycles,
                        sizes.hostile_concurrency,
                        |i| kinds[i],
                    )
                    .await;
                    churn_done.set(true);
                    outcomes
                },
                // (e) The operator killed, finalizers stripped while it is down, then started.
                async {
                    for (wait, down) in &kill_waits {
                        sleep_unless(Duration::from_millis(*wait), &churn_done).await;
                        if churn_done.get() {
                            break;
                        }
                        let victims: Vec<String> = {
                            let tracked = tracker.state();
                            let unguarded = hostility.unguarded.lock().unwrap();
                            let mut names: Vec<String> = tracked
                                .leases
                                .iter()
                                .filter(|(name, t)| {
                                    plain.contains(*name)
                                        && !unguarded.contains(*name)
                                        && t.phase == Some(LeasePhase::Active)
                                        && !t.deleting
                                        && t.gone_at.is_none()
                                })
                                .map(|(name, _)| name.clone())
                                .collect();
                            names.sort();
                            names.truncate(2);
                            names
                        };
                        let mut credentials = Vec::new();
                        for name in &victims {
                            credentials.push(driver.credential(name).await);
                        }
                        operator.kill();
                        kills.set(kills.get() + 1);
                        for name in &victims {
                            hostility.unguarded.lock().unwrap().insert(name.clone());
                            driver.delete(name).await;
                            driver.strip_finalizers(name).await;
                            hostility.count(STRIPPED_WHILE_DOWN);
                        }
                        tokio::time::sleep(Duration::from_millis(*down)).await;
                        operator.restart();
                        let restarted = Instant::now();
                        for (name, credential) in victims.iter().zip(credentials) {
                            if let Some((user, password)) = credential {
                                hostility
                                    .watch_death(
                                        STRIPPED_WHILE_DOWN,
                                        name,
                                        (&user, &password),
                                        restarted,
                                        hostility.strip_bound,
                                    )
                                    .await;
                            }
                        }
                    }
                },
                // (c), (d) A pool re-pointed at another tenant, or its client secret deleted,
                // then a lease of it deleted.
                async {
                    let mut outcomes = Vec::new();
                    for ((pool, repoint), wait) in victims.iter().zip(&attack_waits) {
                        tokio::time::sleep(Duration::from_millis(*wait)).await;
                        let victim = Driver { pool, ..driver };
                        outcomes.push(victim_attack(&victim, &hostility, pool, *repoint).await);
                    }
                    outcomes
                },
            );
            outcomes.extend(victim_outcomes);
            done.set(true);
            outcomes
        },
        audit_while(&mut auditor, lab, emulator, &tracker, &done),
    );
    if !operator.is_running() {
        report
            .violations
            .push("the operator exited during the hostile run".into());
        operator.restart();
    }
    report.faults.insert("operator SIGKILL".into(), kills.get());
    for (attack, count) in hostility.counts.lock().unwrap().iter() {
        report.faults.insert((*attack).to_owned(), *count);
    }
    let deaths = std::mem::take(&mut *hostility.deaths.lock().unwrap());
    let mut by_attack: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (attack, lease, died) in &deaths {
        match died {
            Some(after) => by_attack
                .entry(attack)
                .or_default()
                .push(after.as_secs_f64()),
            None => report.violations.push(format!(
                "I7: {attack}: lease {lease}'s password still worked past the bound"
            )),
        }
    }
    report.notes.push(format!("seed {seed}"));
    for (attack, mut seconds) in by_attack {
        seconds.sort_by(f64::total_cmp);
        report.notes.push(format!(
            "{attack}: {} passwords dead after median {:.1} s, slowest {:.1} s",
            seconds.len(),
            seconds[seconds.len() / 2],
            seconds[seconds.len() - 1]
        ));
    }
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

/// One pool attack: a lease on `pool` made Active, the pool re-pointed at the decoy tenant (or
/// its client-secret Secret deleted), the lease deleted; its password must die within the lag.
async fn victim_attack(
    driver: &Driver<'_>,
    hostility: &Hostility<'_>,
    pool: &str,
    repoint: bool,
) -> Outcome {
    let name = format!("{pool}-lease");
    let lease = lease_object(&name, pool, json!({ "ttl": "10m" }));
    if let Err(error) = driver.create(lease).await {
        return Outcome::Stuck(format!("{name}: not created: {error}"));
    }
    if driver
        .tracker
        .wait_active(&name, driver.patience)
        .await
        .is_none()
    {
        return driver.until_ended(&name).await;
    }
    let credential = driver.credential(&name).await;
    let attack = if repoint {
        let body = json!({ "spec": { "tenantId": DECOY_DOMAIN } });
        let (api, params, patch) = (
            driver.lab.pools(),
            PatchParams::default(),
            Patch::Merge(&body),
        );
        let _ = retrying(API_PATIENCE, || api.patch(pool, &params, &patch)).await;
        POOL_REPOINTED
    } else {
        let api: Api<k8s_openapi::api::core::v1::Secret> = driver.lab.secrets();
        let secret = format!("{pool}-app");
        let params = DeleteParams::default();
        let _ = retrying(API_PATIENCE, || api.delete(&secret, &params)).await;
        CLIENT_SECRET_DELETED
    };
    hostility.count(attack);
    driver.delete(&name).await;
    let deleted = Instant::now();
    if let Some((user, password)) = credential {
        hostility
            .watch_death(
                attack,
                &name,
                (&user, &password),
                deleted,
                hostility.lag_bound,
            )
            .await;
    }
    driver.until_ended(&name).await
}

pub(crate) async fn sleep_unless(duration: Duration, done: &Cell<bool>) {
    let until = Instant::now() + duration;
    while Instant::now() < until && !done.get() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
