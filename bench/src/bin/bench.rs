//! `make bench`: how fast the operator issues and revokes, what a lease costs the API server and
//! Graph, and what 10,000 active leases cost at rest and across a restart. Prints a summary and
//! writes `bench/results.md` and `bench/results.json`. Figures only: nothing here asserts a timing.
//!
//! `bench [--small] [--fill-only] [--quota-only] [--neighbour-only] [--sign-in-only]
//! [--lifecycle-only] [--users N] [--pool-size N] [--burst N] [--out DIR]`: `--small` runs every
//! phase at a tenth of the size or less (for development), `--fill-only` only the memory and CPU
//! phase, `--quota-only` only the Graph quota phase, `--neighbour-only` only the noisy-neighbour
//! phase, `--sign-in-only` only the Graph cost of each way of ending a lease, `--lifecycle-only`
//! only the API cost of a lifecycle (deleted, and expired), and the other flags
//! change one size; results then go to `target/bench/` unless `--out` says otherwise.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use entra_bench::control_plane::ControlPlane;
use entra_bench::lab::{Lab, lease_object, tenant, user_principal_name};
use entra_bench::noisy_neighbour::{self, NeighbourSizes};
use entra_bench::operator::{OperatorFlags, OperatorRun, Usage, usage_of};
use entra_bench::quota::{self, QuotaSizes};
use entra_bench::results::{self, Cost, Machine, Results};
use entra_bench::rotation;
use entra_bench::setup;
use entra_bench::sign_in_options;
use entra_bench::stats::{ApiRequests, Percentiles, api_requests};
use entra_bench::tracker::{Tracker, credentials};
use entra_emulator::{Counters, Emulator, FaultPlan};
use entra_test_support::oversized;
use futures::StreamExt;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;

const NAMESPACE: &str = "bench";
const OPERATOR_NAMESPACE: &str = "entra-operator";
const GRAPH_RETRY_SECONDS: u64 = 30;
const CONCURRENCY: u16 = 16;
/// Everything from this line of `results.md` on is written by hand and kept by new runs.
const ANALYSIS_MARKER: &str = "<!-- analysis: written by hand, kept by make bench -->";
/// The API resources the operator reads and writes.
const OPERATOR_RESOURCES: [&str; 5] = [
    "entraleases",
    "entradynamicsecrets",
    "secrets",
    "leases",
    "events",
];

/// How big each phase is.
#[derive(Clone, Debug)]
struct Scale {
    users: usize,
    pool_size: usize,
    sequential: usize,
    burst: usize,
    /// TTL of the first burst lease; the others expire over the next `burst_spread` seconds.
    burst_first_ttl: u64,
    burst_spread: u64,
    first_fill: usize,
    full_fill: usize,
    idle_window: Duration,
    baseline_window: Duration,
    /// Leases at the CRD's maximum size, and labelled Secrets of 1 MiB, beside the full fill.
    oversized: usize,
    quota: QuotaSizes,
    /// Sequential lifecycles per option of the sign-in options phase.
    sign_in_lifecycles: usize,
    neighbour: NeighbourSizes,
}

impl Scale {
    fn full() -> Scale {
        Scale {
            users: 10_000,
            pool_size: 250,
            sequential: 50,
            burst: 500,
            burst_first_ttl: 60,
            burst_spread: 50,
            first_fill: 1_000,
            full_fill: 10_000,
            idle_window: Duration::from_secs(120),
            baseline_window: Duration::from_secs(30),
            oversized: 200,
            quota: QuotaSizes::full(),
            sign_in_lifecycles: 20,
            neighbour: NeighbourSizes {
                noisy_revocations: 100,
                healthy_leases: 50,
            },
        }
    }

    fn small() -> Scale {
        Scale {
            users: 600,
            pool_size: 100,
            sequential: 10,
            burst: 50,
            burst_first_ttl: 30,
            burst_spread: 10,
            first_fill: 100,
            full_fill: 600,
            idle_window: Duration::from_secs(20),
            baseline_window: Duration::from_secs(10),
            oversized: 20,
            quota: QuotaSizes::small(),
            sign_in_lifecycles: 5,
            neighbour: NeighbourSizes {
                noisy_revocations: 30,
                healthy_leases: 20,
            },
        }
    }

    fn pools(&self) -> usize {
        self.users.div_ceil(self.pool_size)
    }

    fn pool_of_user(&self, user: usize) -> String {
        format!("pool-{}", user / self.pool_size)
    }
}

fn main() {
    setup::locate_control_plane();
    entra_operator::tls::install_crypto_provider();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let small = args.iter().any(|a| a == "--small");
    let fill_only = args.iter().any(|a| a == "--fill-only");
    let quota_only = args.iter().any(|a| a == "--quota-only");
    let sign_in_only = args.iter().any(|a| a == "--sign-in-only");
    let neighbour_only = args.iter().any(|a| a == "--neighbour-only");
    let lifecycle_only = args.iter().any(|a| a == "--lifecycle-only");
    let resized = args
        .iter()
        .any(|a| matches!(a.as_str(), "--users" | "--pool-size" | "--burst"));
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            if small
                || resized
                || fill_only
                || quota_only
                || sign_in_only
                || neighbour_only
                || lifecycle_only
            {
                setup::target_dir().join("bench")
            } else {
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            }
        });
    let mut scale = if small { Scale::small() } else { Scale::full() };
    // Overrides for trying one phase at another size: `--users N`, `--pool-size N`, `--burst N`.
    let flag = |name: &str| -> Option<usize> {
        let at = args.iter().position(|a| a == name)?;
        args.get(at + 1)?.parse().ok()
    };
    if let Some(users) = flag("--users") {
        scale.users = users;
        scale.full_fill = users;
        scale.first_fill = scale.first_fill.min(users);
    }
    scale.pool_size = flag("--pool-size").unwrap_or(scale.pool_size);
    scale.burst = flag("--burst").unwrap_or(scale.burst);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let only = if fill_only {
        Only::Fill
    } else if quota_only {
        Only::Quota
    } else if sign_in_only {
        Only::SignIn
    } else if neighbour_only {
        Only::Neighbour
    } else if lifecycle_only {
        Only::Lifecycle
    } else {
        Only::Everything
    };
    let results = runtime.block_on(run(scale, only));
    println!("\n== summary\n{}", results.summary());
    std::fs::create_dir_all(&out).expect("the output directory");
    let json = serde_json::to_string_pretty(&results).expect("results serialise");
    std::fs::write(out.join("results.json"), json + "\n").expect("results.json is written");
    // A hand-written analysis after the marker survives new runs (it says which run it is about).
    // So does the peer section `make bench-peer` wrote.
    let old = std::fs::read_to_string(out.join("results.md")).unwrap_or_default();
    let analysis = old
        .find(ANALYSIS_MARKER)
        .map(|at| old[at..].to_owned())
        .unwrap_or_default();
    let peer = results::peer_section(&old).map_or_else(String::new, |s| s + "\n");
    let markdown = results.markdown() + &peer + &analysis;
    std::fs::write(out.join("results.md"), markdown).expect("results.md is written");
    println!("wrote {}/results.md and results.json", out.display());
}

/// What every phase uses.
struct Bench {
    scale: Scale,
    control_plane: ControlPlane,
    lab: Lab,
    emulator: Emulator,
    operator: OperatorRun,
    tracker: Tracker,
    /// Background API requests per second by (verb, resource), before the operator started.
    background: BTreeMap<(String, String), f64>,
    operator_processes: u32,
    /// CPU seconds of operator processes that have exited.
    past_operator_cpu: f64,
    load_max: f64,
    results: Results,
}

/// Which phases run: all, or one of them (for development).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Only {
    Everything,
    Fill,
    Quota,
    SignIn,
    Neighbour,
    /// The API writes per lifecycle: the sequential leases (deleted) and the expiring burst.
    Lifecycle,
}

async fn run(scale: Scale, only: Only) -> Results {
    let started = Instant::now();
    let machine_cpu_at_start = results::machine_cpu_seconds();
    let mut bench = Bench::start(scale).await;
    match only {
        Only::Fill => bench.fill().await,
        Only::Quota => bench.quota().await,
        Only::SignIn => bench.sign_in_options().await,
        Only::Neighbour => bench.noisy_neighbour().await,
        Only::Lifecycle => {
            bench.sequential().await;
            bench.expiring_burst().await;
        }
        Only::Everything => {}
    }
    if only != Only::Everything {
        return bench.finish(started, machine_cpu_at_start);
    }
    bench.sequential().await;
    bench.burst().await;
    bench.expiring_burst().await;
    bench.continuous().await;
    bench.quota().await;
    bench.noisy_neighbour().await;
    bench.sign_in_options().await;
    bench.fill().await;
    let idle = bench.idle().await;
    bench.restart().await;
    bench.oversized().await;
    bench.background_with_operator_stopped(idle).await;
    bench.finish(started, machine_cpu_at_start)
}

impl Bench {
    async fn start(scale: Scale) -> Bench {
        let machine = Machine::describe();
        let logs = setup::log_dir("bench");
        phase(&format!(
            "starting the control plane; logs in {}",
            logs.display()
        ));
        let control_plane = setup::start_control_plane();
        let client = control_plane.client().await;
        Lab::ensure_namespace(&client, NAMESPACE).await;
        Lab::ensure_namespace(&client, OPERATOR_NAMESPACE).await;
        setup::install_finalizer_policy(&control_plane, OPERATOR_NAMESPACE, &[NAMESPACE]).await;
        let lab = Lab {
            client: client.clone(),
            namespace: NAMESPACE.into(),
            claims_namespace: OPERATOR_NAMESPACE.into(),
        };
        phase(&format!(
            "the API server's background traffic over {:?}",
            scale.baseline_window
        ));
        let before = api_requests(&client).await;
        tokio::time::sleep(scale.baseline_window).await;
        let after = api_requests(&client).await;
        let seconds = scale.baseline_window.as_secs_f64();
        let background = after
            .since(&before)
            .0
            .into_iter()
            .map(|(key, count)| (key, count / seconds))
            .collect();

        let emulator = Emulator::start(tenant(scale.users))
            .await
            .expect("the emulator starts");
        // 50 ms +- 10 ms on every token and Graph request.
        emulator.set_faults(
            FaultPlan::default().with_latency(Duration::from_millis(40), Duration::from_millis(20)),
        );
        let graph_url = emulator.base_url();
        let flags = OperatorFlags {
            kubeconfig: &control_plane.kubeconfig,
            graph_url: &graph_url,
            namespace: Some(NAMESPACE),
            operator_namespace: OPERATOR_NAMESPACE,
            graph_retry_seconds: GRAPH_RETRY_SECONDS,
            concurrency: CONCURRENCY,
            log_level: "info",
            extra_args: &[],
        };
        let operator = OperatorRun::start_ready(&flags, logs.join("operator.log")).await;
        let pools = scale.pools();
        phase(&format!(
            "{pools} dynamic secrets over {} users, resolved through Graph",
            scale.users
        ));
        lab.create_client_secret().await;
        let names: Vec<String> = (0..pools).map(|i| format!("pool-{i}")).collect();
        futures::stream::iter(0..pools)
            .for_each_concurrent(8, |i| {
                let lab = &lab;
                let scale = &scale;
                async move {
                    let users = i * scale.pool_size..((i + 1) * scale.pool_size).min(scale.users);
                    // Pool 0 (the sequential phase) shows the cost without session revocation.
                    lab.create_pool(&format!("pool-{i}"), users, "1h", "24h", i != 0)
                        .await;
                }
            })
            .await;
        let resolving = Instant::now();
        lab.wait_pools_ready(&names, Duration::from_secs(1800))
            .await
            .expect("the dynamic secrets become ready");
        println!(
            "   all {pools} ready after {:.1} s",
            resolving.elapsed().as_secs_f64()
        );
        let tracker = Tracker::start(&lab).await;
        let results = Results {
            machine,
            sizes: results::Sizes {
                users: scale.users,
                dynamic_secrets: pools,
                users_per_dynamic_secret: scale.pool_size,
                sequential_leases: scale.sequential,
                burst_leases: scale.burst,
                burst_expiry_spread_seconds: scale.burst_spread,
                first_fill: scale.first_fill,
                full_fill: scale.full_fill,
                idle_window_seconds: scale.idle_window.as_secs(),
                graph_latency: "50 ms +- 10 ms (uniform 40-60 ms) per request".into(),
                operator_flags: format!(
                    "run --namespace {NAMESPACE} --operator-namespace {OPERATOR_NAMESPACE} \
                     --graph-retry-seconds {GRAPH_RETRY_SECONDS} --concurrency {CONCURRENCY} \
                     --log-level info (release build)"
                ),
            },
            ..Results::default()
        };
        Bench {
            scale,
            control_plane,
            lab,
            emulator,
            operator,
            tracker,
            background,
            operator_processes: 1,
            past_operator_cpu: 0.0,
            load_max: results::load_average(),
            results,
        }
    }

    fn note_load(&mut self) {
        self.load_max = self.load_max.max(results::load_average());
    }

    /// Leases created one at a time, each waited for, checked and deleted.
    async fn sequential(&mut self) {
        self.note_load();
        phase(&format!("{} sequential leases", self.scale.sequential));
        let api_before = api_requests(&self.lab.client).await;
        let graph_before = self.emulator.counters();
        let window = Instant::now();
        let mut samples = Vec::new();
        for i in 0..self.scale.sequential {
            let name = format!("seq-{i}");
            let lease = lease_object(&name, "pool-0", json!({ "ttl": "1h" }));
            let created = Instant::now();
            self.lab
                .leases()
                .create(&PostParams::default(), &lease)
                .await
                .expect("the lease is created");
            let active = self
                .tracker
                .wait_active(&name, Duration::from_secs(60))
                .await
                .expect("the lease becomes active");
            samples.push(ms(active - created));
            self.check_password(&name).await;
            self.lab
                .leases()
                .delete(&name, &DeleteParams::default())
                .await
                .expect("the lease is deleted");
            self.tracker
                .wait_gone(&name, Duration::from_secs(60))
                .await
                .expect("the lease ends");
        }
        settle().await;
        let harness = BTreeMap::from([
            (
                ("POST".to_owned(), "entraleases".to_owned()),
                self.scale.sequential as f64,
            ),
            (
                ("DELETE".to_owned(), "entraleases".to_owned()),
                self.scale.sequential as f64,
            ),
        ]);
        self.results.cost_deleted = self
            .cost(
                api_before,
                graph_before,
                window,
                self.scale.sequential,
                harness,
            )
            .await;
        self.results.sequential_ms = Percentiles::of(&samples);
        let p = &self.results.sequential_ms;
        println!(
            "   p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms",
            p.p50, p.p95, p.p99
        );
    }

    /// Creates `count` leases at once; returns each one's creation time and the burst's start.
    /// `spec(i)` gives lease `i`'s pool and spec.
    async fn create_burst(
        &self,
        prefix: &str,
        count: usize,
        spec: impl Fn(usize) -> (String, serde_json::Value),
    ) -> (Vec<(String, Instant)>, Instant) {
        let started = Instant::now();
        let created = futures::stream::iter(0..count)
            .map(|i| {
                let name = format!("{prefix}-{i}");
                let (pool, spec) = spec(i);
                let lease = lease_object(&name, &pool, spec);
                let api = self.lab.leases();
                async move {
                    let at = Instant::now();
                    api.create(&PostParams::default(), &lease)
                        .await
                        .expect("the lease is created");
                    (name, at)
                }
            })
            .buffer_unordered(count)
            .collect()
            .await;
        (created, started)
    }

    /// Waits until every lease of a burst has been Active; the time-to-credential samples and
    /// the time from the burst's start until the last one was Active.
    async fn burst_active(
        &mut self,
        created: &[(String, Instant)],
        started: Instant,
    ) -> (Percentiles, Duration) {
        let all = self
            .tracker
            .wait_for(Duration::from_secs(1800), |t| {
                created
                    .iter()
                    .all(|(n, _)| t.leases.get(n).is_some_and(|l| l.active_at.is_some()))
                    .then_some(())
            })
            .await;
        let mut samples = Vec::new();
        let mut last_active = started;
        for (name, at) in created {
            if let Some(active) = self.tracker.lease(name).and_then(|t| t.active_at) {
                samples.push(ms(active - *at));
                last_active = last_active.max(active);
            }
        }
        if all.is_none() {
            self.results.notes.push(format!(
                "only {} of a burst of {} leases became Active within 30 minutes",
                samples.len(),
                created.len()
            ));
        }
        let percentiles = Percentiles::of(&samples);
        let spent = last_active - started;
        println!(
            "   p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms; all active after {:.1} s",
            percentiles.p50,
            percentiles.p95,
            percentiles.p99,
            spent.as_secs_f64()
        );
        (percentiles, spent)
    }

    /// Waits until every lease of `names` is gone; the time that took.
    async fn all_gone(&self, names: &[(String, Instant)], timeout: Duration) -> Option<Duration> {
        let started = Instant::now();
        self.tracker
            .wait_for(timeout, |t| {
                names
                    .iter()
                    .all(|(n, _)| t.leases.get(n).is_some_and(|l| l.gone_at.is_some()))
                    .then_some(())
            })
            .await
            .map(|()| started.elapsed())
    }

    /// Leases created all at once, each taking the first free user of its pool (the common
    /// case); then all deleted at once.
    async fn burst(&mut self) {
        self.note_load();
        let count = self.scale.burst;
        phase(&format!(
            "a burst of {count} leases taking the first free user"
        ));
        let api_before = api_requests(&self.lab.client).await;
        let graph_before = self.emulator.counters();
        let window = Instant::now();
        // Pools 1.. (pool 0 served the sequential phase).
        let per_pool = self.scale.pool_size;
        let (created, started) = self
            .create_burst("burst", count, |i| {
                (format!("pool-{}", 1 + i / per_pool), json!({ "ttl": "1h" }))
            })
            .await;
        let (percentiles, spent) = self.burst_active(&created, started).await;
        self.results.burst_ms = percentiles;
        self.results.burst_all_active_ms = ms(spent);
        self.results.burst_leases_per_second = count as f64 / spent.as_secs_f64();
        self.check_all_passwords().await;
        phase(&format!("deleting the {count} leases at once"));
        let deleting = Instant::now();
        let api = self.lab.leases();
        futures::stream::iter(&created)
            .for_each_concurrent(64, |(name, _)| {
                let api = api.clone();
                async move {
                    api.delete(name, &DeleteParams::default())
                        .await
                        .expect("the lease is deleted");
                }
            })
            .await;
        match self.all_gone(&created, Duration::from_secs(900)).await {
            Some(_) => {
                self.results.burst_deleted_all_gone_ms = ms(deleting.elapsed());
                println!(
                    "   all revoked and gone after {:.1} s",
                    deleting.elapsed().as_secs_f64()
                );
            }
            None => self
                .results
                .notes
                .push("not every deleted burst lease ended within 15 minutes".into()),
        }
        settle().await;
        let harness = BTreeMap::from([
            (("POST".to_owned(), "entraleases".to_owned()), count as f64),
            (
                ("DELETE".to_owned(), "entraleases".to_owned()),
                count as f64,
            ),
        ]);
        self.results.cost_burst = self
            .cost(api_before, graph_before, window, count, harness)
            .await;
    }

    /// A burst whose leases name their users (no walk over the pool for a free one), with TTLs
    /// staggered so that they expire over `burst_spread` seconds: time to credential without the
    /// walk, then the revocation lag and the cost of a lifecycle that ends by expiry.
    /// A burst under a scaled-down Graph quota beside expirations and a throttled app, then a
    /// lease user's restore and rotate loops; with its own emulator and operator.
    async fn quota(&mut self) {
        self.note_load();
        let sizes = self.scale.quota.clone();
        phase(&format!(
            "Graph quota: {} issues under {} writes / {} s",
            sizes.issues, sizes.capacity, sizes.window_seconds
        ));
        let log = setup::log_dir("bench").join("operator-quota.log");
        self.results.quota = quota::measure(&self.control_plane, sizes, log).await;
    }

    /// Another tenant's app throttled with its revocations pending while the healthy app's leases
    /// are issued and expire; with its own emulator and operator.
    async fn noisy_neighbour(&mut self) {
        self.note_load();
        let sizes = self.scale.neighbour.clone();
        phase(&format!(
            "noisy neighbour: {} revocations of a throttled app in another tenant, {} healthy leases",
            sizes.noisy_revocations, sizes.healthy_leases
        ));
        let log = setup::log_dir("bench").join("operator-neighbour.log");
        self.results.neighbour = noisy_neighbour::measure(&self.control_plane, sizes, log).await;
    }

    /// Graph requests per lifecycle under each way of ending a lease (`signInMethods`,
    /// `disableIdleUsers`); with its own emulator and operator.
    async fn sign_in_options(&mut self) {
        self.note_load();
        let lifecycles = self.scale.sign_in_lifecycles;
        phase(&format!(
            "sign-in options: {lifecycles} lifecycles under each way of ending a lease"
        ));
        let log = setup::log_dir("bench").join("operator-sign-in.log");
        self.results.sign_in_options =
            sign_in_options::measure(&self.control_plane, lifecycles, log).await;
    }

    /// Continuous leases rotating every few seconds, each with a consumer reading its Secret.
    async fn continuous(&mut self) {
        self.note_load();
        const LEASES: usize = 6;
        // Leases created together rotate together, and each holds two users during its
        // overlap: two users per lease, and one spare, so that no rotation has to wait.
        const USERS: usize = 2 * LEASES + 1;
        const RUN: Duration = Duration::from_secs(40);
        phase(&format!(
            "{LEASES} continuous leases over {USERS} users rotating for {RUN:?}, read by consumers"
        ));
        let users = self.scale.users - USERS..self.scale.users;
        self.lab
            .create_pool("rotating", users, "8s", "8s", true)
            .await;
        self.lab
            .wait_pools_ready(&["rotating".to_owned()], Duration::from_secs(120))
            .await
            .expect("the rotating pool becomes ready");
        self.results.continuous = rotation::measure_continuous(
            &self.lab,
            &self.emulator,
            &self.tracker,
            "rotating",
            LEASES,
            RUN,
        )
        .await;
        let _ = self
            .lab
            .pools()
            .delete("rotating", &kube::api::DeleteParams::default())
            .await;
    }

    async fn expiring_burst(&mut self) {
        self.note_load();
        let count = self.scale.burst;
        let per_pool = self.scale.pool_size;
        let first_user = (1 + count.div_ceil(per_pool)) * per_pool;
        phase(&format!("a burst of {count} leases that name their users"));
        let api_before = api_requests(&self.lab.client).await;
        let graph_before = self.emulator.counters();
        let window = Instant::now();
        let (spread, first_ttl) = (self.scale.burst_spread, self.scale.burst_first_ttl);
        let (created, started) = self
            .create_burst("expiring", count, |i| {
                let n = first_user + i;
                let ttl = first_ttl + (i as u64 % spread);
                (
                    format!("pool-{}", n / per_pool),
                    json!({ "ttl": format!("{ttl}s"), "user": user_principal_name(n) }),
                )
            })
            .await;
        let (percentiles, spent) = self.burst_active(&created, started).await;
        self.results.named_burst_ms = percentiles;
        self.results.named_burst_all_active_ms = ms(spent);
        self.check_all_passwords().await;

        phase(&format!("waiting for the {count} leases to expire"));
        if self
            .all_gone(&created, Duration::from_secs(first_ttl + spread + 900))
            .await
            .is_none()
        {
            self.results
                .notes
                .push("not every expiring lease ended within 15 minutes of its expiry".into());
        }
        let mut lags = Vec::new();
        for (name, _) in &created {
            let Some(track) = self.tracker.lease(name) else {
                continue;
            };
            let (Some(expires_at), Some(id)) = (track.expires_at, track.user_id) else {
                continue;
            };
            let Some(scrambled) = self
                .emulator
                .user(&id)
                .and_then(|u| u.password_last_set_date_time)
            else {
                continue;
            };
            lags.push((scrambled.as_millisecond() - expires_at.as_millisecond()) as f64);
        }
        self.results.revocation_lag_ms = Percentiles::of(&lags);
        let r = &self.results.revocation_lag_ms;
        println!(
            "   revocation lag p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            r.p50, r.p99, r.max
        );
        settle().await;
        let harness =
            BTreeMap::from([(("POST".to_owned(), "entraleases".to_owned()), count as f64)]);
        self.results.cost_expired = self
            .cost(api_before, graph_before, window, count, harness)
            .await;
    }

    /// Restarts the operator with no leases, then fills to `first_fill` and `full_fill` active
    /// leases, measuring the process at each.
    async fn fill(&mut self) {
        self.note_load();
        phase("restarting the operator before the fill");
        self.restart_operator().await;
        let first = self.scale.first_fill;
        let full = self.scale.full_fill;
        phase(&format!("filling to {first} active leases"));
        let seconds = self.fill_to(0..first).await;
        self.results.first_fill_seconds = seconds;
        self.results.usage_first_fill = self.operator.usage().unwrap_or_default();
        print_usage(first, &self.results.usage_first_fill, seconds);
        self.note_load();
        phase(&format!("filling to {full} active leases"));
        let seconds = self.fill_to(first..full).await;
        self.results.full_fill_seconds = self.results.first_fill_seconds + seconds;
        self.results.usage_full_fill = self.operator.usage().unwrap_or_default();
        print_usage(
            full,
            &self.results.usage_full_fill,
            self.results.full_fill_seconds,
        );
        // The process started with no leases: its reconciles are the fill's.
        let reconciles = lease_reconciles(&self.operator).await;
        self.results.fill_lease_reconciles_per_lease = reconciles / full as f64;
        println!(
            "   {reconciles:.0} lease reconciles for {full} issues ({:.0} per lease)",
            self.results.fill_lease_reconciles_per_lease
        );
        self.results.object_sizes = self.object_sizes().await;
    }

    /// The average JSON size of the objects the operator caches, and how much of it is
    /// `managedFields`: what its watches hold per lease.
    async fn object_sizes(&self) -> BTreeMap<String, results::ObjectSize> {
        fn measure<K: serde::Serialize + kube::Resource>(items: &[K]) -> results::ObjectSize {
            let mut size = results::ObjectSize {
                objects: items.len(),
                ..Default::default()
            };
            for item in items {
                let bytes = serde_json::to_vec(item).map_or(0, |b| b.len());
                let managed =
                    serde_json::to_vec(&item.meta().managed_fields).map_or(0, |b| b.len());
                size.average_bytes += bytes as f64;
                size.average_managed_fields_bytes += managed as f64;
            }
            let n = items.len().max(1) as f64;
            size.average_bytes /= n;
            size.average_managed_fields_bytes /= n;
            size
        }
        let all = ListParams::default();
        let managed = ListParams::default().labels("app.kubernetes.io/managed-by=entra-operator");
        let mut sizes = BTreeMap::new();
        if let Ok(leases) = self.lab.leases().list(&all).await {
            sizes.insert("EntraLease".to_owned(), measure(&leases.items));
        }
        if let Ok(secrets) = self.lab.secrets().list(&managed).await {
            sizes.insert("lease Secret".to_owned(), measure(&secrets.items));
        }
        if let Ok(claims) = self.lab.claims().list(&managed).await {
            sizes.insert(
                "claim (coordination Lease)".to_owned(),
                measure(&claims.items),
            );
        }
        if let Ok(pools) = self.lab.pools().list(&all).await {
            sizes.insert("EntraDynamicSecret".to_owned(), measure(&pools.items));
        }
        sizes
    }

    /// Creates leases `fill-N` for users `range` (each names its user, so that the issue does
    /// not walk the pool for a free one) and waits until they are all Active.
    async fn fill_to(&self, range: std::ops::Range<usize>) -> f64 {
        let started = Instant::now();
        let target = range.end;
        let api = self.lab.leases();
        futures::stream::iter(range)
            .for_each_concurrent(32, |n| {
                let lease = lease_object(
                    &format!("fill-{n}"),
                    &self.scale.pool_of_user(n),
                    json!({ "ttl": "24h", "user": user_principal_name(n) }),
                );
                let api = api.clone();
                async move {
                    api.create(&PostParams::default(), &lease)
                        .await
                        .expect("the lease is created");
                }
            })
            .await;
        let mut last_report = Instant::now();
        let done = self
            .tracker
            .wait_for(Duration::from_secs(3600), |t| {
                if last_report.elapsed() > Duration::from_secs(30) {
                    println!("   {} active", t.active_now());
                    last_report = Instant::now();
                }
                (t.active_now() >= target).then_some(())
            })
            .await;
        assert!(
            done.is_some(),
            "{target} leases became active within an hour"
        );
        started.elapsed().as_secs_f64()
    }

    /// Nothing changes: what does holding the leases cost per minute? Returns the API server's
    /// requests over the window, to be compared with the same window without the operator.
    async fn idle(&mut self) -> (ApiRequests, f64) {
        self.note_load();
        let active = self.tracker.state().active_now();
        phase(&format!(
            "settling, then idle for {:?} with {active} active leases",
            self.scale.idle_window
        ));
        self.wait_until_reconciles_stop().await;
        let api_before = api_requests(&self.lab.client).await;
        let graph_before = self.emulator.counters();
        let cpu_before = self.operator.usage().unwrap_or_default().cpu_seconds;
        let window = Instant::now();
        tokio::time::sleep(self.scale.idle_window).await;
        let api = api_requests(&self.lab.client).await.since(&api_before);
        let seconds = window.elapsed().as_secs_f64();
        let graph = graph_diff(&graph_before, &self.emulator.counters());
        let cpu = self.operator.usage().unwrap_or_default().cpu_seconds - cpu_before;
        let per_minute = 60.0 / seconds;
        let user_reads = self
            .emulator
            .counters()
            .operation(entra_emulator::Operation::GetUser);
        self.results.idle = results::Idle {
            active_leases: active,
            window_seconds: seconds,
            graph_requests_per_minute: graph.all() as f64 * per_minute,
            operator_cpu_seconds_per_minute: cpu * per_minute,
            graph_user_reads_per_pool_user: user_reads as f64 / self.scale.users as f64,
            ..results::Idle::default()
        };
        let i = &self.results.idle;
        println!(
            "   {:.1} Graph requests/min, {:.2} operator CPU s/min",
            i.graph_requests_per_minute, i.operator_cpu_seconds_per_minute
        );
        (api, seconds)
    }

    /// The API server's traffic over the idle window's length with the operator stopped and every
    /// object still there: what the idle window had beyond it is the operator's.
    async fn background_with_operator_stopped(&mut self, (idle, idle_seconds): (ApiRequests, f64)) {
        phase(&format!(
            "the API server's traffic over {:?} with the operator stopped",
            self.scale.idle_window
        ));
        self.past_operator_cpu += self.operator.usage().unwrap_or_default().cpu_seconds;
        self.operator.terminate();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let before = api_requests(&self.lab.client).await;
        let window = Instant::now();
        tokio::time::sleep(self.scale.idle_window).await;
        let background = api_requests(&self.lab.client).await.since(&before);
        let seconds = window.elapsed().as_secs_f64();
        let per_minute = |count: f64, over: f64| count * 60.0 / over;
        let mut by_kind = BTreeMap::new();
        // Only the resources the operator works with: other components (kube-controller-manager)
        // restart their watches at random moments, which short windows cannot average out.
        let operators = |resource: &str| {
            let kind = resource.split(['/', ' ']).next().unwrap_or_default();
            OPERATOR_RESOURCES.contains(&kind)
        };
        for (key, count) in idle
            .0
            .iter()
            .filter(|((_, resource), _)| operators(resource))
        {
            let quiet = background.0.get(key).copied().unwrap_or(0.0);
            let rate = per_minute(*count, idle_seconds) - per_minute(quiet, seconds);
            if rate.abs() >= 0.05 {
                by_kind.insert(format!("{} {}", key.0, key.1), rate);
            }
        }
        let idle_results = &mut self.results.idle;
        // A kind busier with the operator stopped is noise (the API server's own Lease renewals,
        // watch restarts), not a saving: it does not offset the operator's traffic.
        idle_results.api_requests_per_minute = total(by_kind.values().map(|rate| rate.max(0.0)));
        idle_results.api_requests_per_minute_by_kind = by_kind;
        println!(
            "   the operator's idle API traffic: {:.1} requests/min {:?}",
            idle_results.api_requests_per_minute, idle_results.api_requests_per_minute_by_kind
        );
    }

    /// The operator restarted with every lease active: time to ready, and what it writes.
    async fn restart(&mut self) {
        self.note_load();
        let active = self.tracker.state().active_now();
        phase(&format!(
            "restarting the operator with {active} active leases"
        ));
        let api_before = api_requests(&self.lab.client).await;
        let graph_before = self.emulator.counters();
        let window = Instant::now();
        let ready = self.restart_operator().await;
        let all_reconciled = self.wait_until_reconciled(active).await;
        // A moment more for anything the restart would write after its first pass.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let seconds = window.elapsed().as_secs_f64();
        let graph = graph_diff(&graph_before, &self.emulator.counters());
        let api = self.net_of_background(
            &api_requests(&self.lab.client).await.since(&api_before),
            seconds,
            &BTreeMap::new(),
        );
        let writes: BTreeMap<String, f64> = api
            .iter()
            .filter(|((verb, _), _)| entra_bench::stats::WRITE_VERBS.contains(&verb.as_str()))
            .map(|((verb, resource), count)| (format!("{verb} {resource}"), *count))
            .filter(|(_, count)| *count >= 0.5)
            .collect();
        self.results.restart = results::Restart {
            active_leases: active,
            ready_ms: ms(ready),
            all_reconciled_ms: all_reconciled.map(ms),
            graph_writes: graph.writes,
            graph_reads: graph.reads,
            token_requests: graph.tokens,
            api_writes: total(writes.values().copied()),
            api_writes_by_kind: writes,
            usage: self.operator.usage().unwrap_or_default(),
        };
        let r = &self.results.restart;
        println!(
            "   ready after {:.0} ms, all reconciled after {:?}; {} Graph writes, {} Graph reads, {:.0} API writes",
            r.ready_ms, all_reconciled, r.graph_writes, r.graph_reads, r.api_writes
        );
    }

    /// A tenant's largest objects beside every active lease: leases at the CRD's maximum size and
    /// labelled Secrets of 1 MiB, then a restart, so that the operator's first lists read them
    /// all. The peak RSS of that process is what they cost; they are deleted afterwards.
    async fn oversized(&mut self) {
        let count = self.scale.oversized;
        phase(&format!(
            "{count} leases at the CRD's maximum size and {count} labelled Secrets of 1 MiB, then \
             a restart"
        ));
        let leases: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
            self.lab.client.clone(),
            NAMESPACE,
            &kube::api::ApiResource::erase::<entra_operator::api::EntraLease>(&()),
        );
        let secrets = self.lab.secrets();
        futures::stream::iter(0..count)
            .for_each_concurrent(8, |index| {
                let (leases, secrets) = (&leases, &secrets);
                async move {
                    let params = PostParams::default();
                    leases
                        .create(&params, &oversized::largest_lease(index))
                        .await
                        .expect("the largest lease is created");
                    secrets
                        .create(&params, &oversized::labelled_secret(index))
                        .await
                        .expect("a labelled Secret of 1 MiB is created");
                }
            })
            .await;
        let active = self.tracker.state().active_now();
        let ready = self.restart_operator().await;
        let all_reconciled = self.wait_until_reconciled(active + count).await;
        let usage = self.operator.usage().unwrap_or_default();
        self.results.oversized = results::Oversized {
            leases: count,
            secrets: count,
            lease_annotation_kib: oversized::LEASE_ANNOTATION_BYTES / 1024,
            secret_kib: oversized::SECRET_BYTES / 1024,
            active_leases: active,
            ready_ms: ms(ready),
            all_reconciled_ms: all_reconciled.map(ms),
            usage,
        };
        println!(
            "   ready after {:.0} ms, all reconciled after {all_reconciled:?}; peak RSS {:.1} MiB",
            ms(ready),
            usage.peak_rss_mib
        );
        for index in 0..count {
            let _ = leases
                .delete(&format!("big-{index}"), &DeleteParams::default())
                .await;
            let _ = secrets
                .delete(&format!("mimic-{index}"), &DeleteParams::default())
                .await;
        }
        // The operator lets the unissued leases go before the next phase stops it.
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let left = leases
                .list_metadata(&ListParams::default())
                .await
                .map(|list| {
                    list.items
                        .iter()
                        .filter(|lease| kube::ResourceExt::name_any(*lease).starts_with("big-"))
                        .count()
                })
                .unwrap_or(usize::MAX);
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn finish(mut self, started: Instant, machine_cpu_at_start: f64) -> Results {
        self.note_load();
        let run = started.elapsed().as_secs_f64();
        let counters = self.emulator.counters();
        self.results.tokens = results::Tokens {
            token_requests: counters.token_requests,
            run_minutes: run / 60.0,
            operator_processes: self.operator_processes,
            token_lifetime_seconds: 3599,
        };
        // Other work on the machine: all CPU time minus that of this run's own processes.
        let ours: f64 = self
            .control_plane
            .pids()
            .into_iter()
            .chain([std::process::id()])
            .filter_map(usage_of)
            .map(|u| u.cpu_seconds)
            .sum::<f64>()
            + self.past_operator_cpu
            + self.operator.usage().unwrap_or_default().cpu_seconds;
        let machine = &mut self.results.machine;
        machine.run_seconds = run;
        machine.load_at_end = results::load_average();
        machine.load_max = self.load_max;
        machine.other_cpu_seconds =
            (results::machine_cpu_seconds() - machine_cpu_at_start - ours).max(0.0);
        self.results.notes.push(
            "The fill phases name each lease's user (`spec.user`), so that the fill measures the \
             operator's cost per active lease, not claim races between leases that take the first \
             free user (the first-free burst measures those)."
                .into(),
        );
        self.results.judge();
        self.results
    }

    async fn restart_operator(&mut self) -> Duration {
        self.past_operator_cpu += self.operator.usage().unwrap_or_default().cpu_seconds;
        self.operator.terminate();
        entra_bench::lab::OperatorProcess::restart(&mut self.operator);
        self.operator_processes += 1;
        self.operator
            .wait_ready(Duration::from_secs(600))
            .await
            .expect("the restarted operator becomes ready")
    }

    /// Waits until the operator's lease reconcile count reaches `leases` (each lease reconciled
    /// once since the start); the time since the process was spawned.
    async fn wait_until_reconciled(&self, leases: usize) -> Option<Duration> {
        let deadline = Instant::now() + Duration::from_secs(900);
        while Instant::now() < deadline {
            if lease_reconciles(&self.operator).await >= leases as f64 {
                return Some(self.operator.spawned_at.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }

    /// Waits until the operator's reconcile count holds still for 10 s.
    async fn wait_until_reconciles_stop(&self) {
        let mut last = -1.0;
        let deadline = Instant::now() + Duration::from_secs(900);
        while Instant::now() < deadline {
            let now = total_reconciles(&self.operator).await;
            if now == last {
                return;
            }
            last = now;
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    }

    async fn check_password(&mut self, lease: &str) {
        let secret = self
            .lab
            .secrets()
            .get(&format!("entra-{lease}"))
            .await
            .ok()
            .and_then(|s| credentials(&s));
        if !secret.is_some_and(|(user, password)| self.emulator.sign_in(&user, &password)) {
            self.results.passwords_not_working += 1;
        }
    }

    async fn check_all_passwords(&mut self) {
        let secrets = self
            .lab
            .secrets()
            .list(&ListParams::default().labels("app.kubernetes.io/managed-by=entra-operator"))
            .await
            .expect("the lease Secrets list");
        for secret in secrets {
            let works = credentials(&secret)
                .is_some_and(|(user, password)| self.emulator.sign_in(&user, &password));
            if !works {
                self.results.passwords_not_working += 1;
            }
        }
    }

    /// API requests of a window without the API server's background and the harness's writes.
    fn net_of_background(
        &self,
        window: &ApiRequests,
        seconds: f64,
        harness: &BTreeMap<(String, String), f64>,
    ) -> BTreeMap<(String, String), f64> {
        window
            .0
            .iter()
            .map(|(key, count)| {
                let background = self.background.get(key).copied().unwrap_or(0.0) * seconds;
                let own = harness.get(key).copied().unwrap_or(0.0);
                (key.clone(), (count - background - own).max(0.0))
            })
            .filter(|(_, count)| *count > 0.0)
            .collect()
    }

    async fn cost(
        &self,
        api_before: ApiRequests,
        graph_before: Counters,
        window: Instant,
        lifecycles: usize,
        harness: BTreeMap<(String, String), f64>,
    ) -> Cost {
        let seconds = window.elapsed().as_secs_f64();
        let api = api_requests(&self.lab.client).await.since(&api_before);
        let net = self.net_of_background(&api, seconds, &harness);
        let n = lifecycles as f64;
        let api_writes_by_kind: BTreeMap<String, f64> = net
            .iter()
            .filter(|((verb, _), _)| entra_bench::stats::WRITE_VERBS.contains(&verb.as_str()))
            .map(|((verb, resource), count)| (format!("{verb} {resource}"), count / n))
            .filter(|(_, per)| *per >= 0.005)
            .collect();
        let accepted = |kind: &String| !kind.contains(" [");
        let api_writes = total(
            api_writes_by_kind
                .iter()
                .filter(|(kind, _)| accepted(kind))
                .map(|(_, v)| *v),
        );
        let api_refused_writes = total(
            api_writes_by_kind
                .iter()
                .filter(|(kind, _)| !accepted(kind))
                .map(|(_, v)| *v),
        );
        let events = total(
            api_writes_by_kind
                .iter()
                .filter(|(kind, _)| accepted(kind) && kind.ends_with(" events"))
                .map(|(_, v)| *v),
        );
        let api_reads = total(
            net.iter()
                .filter(|((verb, _), _)| matches!(verb.as_str(), "GET" | "LIST"))
                .map(|(_, v)| *v),
        ) / n;
        let counters = self.emulator.counters();
        let graph = graph_diff(&graph_before, &counters);
        let graph_by_operation = counters
            .by_operation
            .iter()
            .map(|(op, count)| {
                let before = graph_before.operation(*op);
                (format!("{op:?}"), (count - before) as f64 / n)
            })
            .filter(|(_, per)| *per > 0.0)
            .collect();
        Cost {
            lifecycles,
            api_writes_by_kind,
            api_writes,
            api_writes_without_events: api_writes - events,
            api_refused_writes,
            api_reads,
            graph_writes: graph.writes as f64 / n,
            graph_reads: graph.reads as f64 / n,
            token_requests: graph.tokens as f64 / n,
            graph_by_operation,
        }
    }
}

struct GraphDiff {
    tokens: u64,
    reads: u64,
    writes: u64,
}

impl GraphDiff {
    fn all(&self) -> u64 {
        self.tokens + self.reads + self.writes
    }
}

fn graph_diff(before: &Counters, after: &Counters) -> GraphDiff {
    GraphDiff {
        tokens: after.token_requests - before.token_requests,
        reads: after.graph_reads - before.graph_reads,
        writes: after.graph_writes - before.graph_writes,
    }
}

/// The sum of the operator's `entra_reconcile_duration_seconds_count` for `controller`, or all.
async fn reconciles(operator: &OperatorRun, controller: Option<&str>) -> f64 {
    let Some(metrics) = operator.scrape().await else {
        return 0.0;
    };
    metrics
        .lines()
        .filter(|l| l.starts_with("entra_reconcile_duration_seconds_count{"))
        .filter(|l| controller.is_none_or(|c| l.contains(&format!("controller=\"{c}\""))))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

async fn lease_reconciles(operator: &OperatorRun) -> f64 {
    reconciles(operator, Some("lease")).await
}

async fn total_reconciles(operator: &OperatorRun) -> f64 {
    reconciles(operator, None).await
}

/// Lets the last watch events and status writes of a phase land before it is measured.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(3)).await;
}

/// A sum that is 0, not -0, when empty.
fn total(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, |sum, v| sum + v)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn phase(what: &str) {
    println!(">> {what}");
}

fn print_usage(leases: usize, usage: &Usage, seconds: f64) {
    println!(
        "   {leases} active after {seconds:.0} s: peak RSS {:.1} MiB, RSS {:.1} MiB, CPU {:.1} s",
        usage.peak_rss_mib, usage.rss_mib, usage.cpu_seconds
    );
}
