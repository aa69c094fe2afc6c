//! `make bench-peer`: the operator beside External Secrets Operator (ESO) on one local control
//! plane, one after the other, with the same sizes: N custom resources, each turned into its own
//! Secret holding a generated password. The Graph emulator answers without added latency, so both
//! measure controller overhead. Writes the peer table into `bench/results.md` (between its
//! markers) and `bench/peer-results.json`. Figures only: nothing here asserts a timing.
//!
//! `peer [--small] [--out DIR]`: `--small` runs at a tenth of the size (for development); its
//! results go to `target/bench/` unless `--out` says otherwise.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use entra_bench::control_plane::ControlPlane;
use entra_bench::lab::{Lab, OperatorProcess, lease_object, tenant, user_principal_name};
use entra_bench::operator::{OperatorFlags, OperatorRun, Usage};
use entra_bench::peer::{self, ESO_VERSION, EsoRun};
use entra_bench::peer_report::{Figures, PeerResults, Scale, markdown, with_peer_section};
use entra_bench::results::{Machine, load_average, machine_cpu_seconds};
use entra_bench::setup;
use entra_bench::stats::{ApiRequests, Percentiles, WRITE_VERBS, api_requests};
use entra_emulator::Emulator;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

const OURS_NAMESPACE: &str = "peer-ours";
const OURS_OPERATOR_NAMESPACE: &str = "peer-entra-operator";
const ESO_NAMESPACE: &str = "peer-eso";
const CONCURRENCY: u16 = 16;
/// How many creations the harness has in flight at once during a burst or a fill.
const CLIENT_PARALLELISM: usize = 32;
const POOL_SIZE: usize = 250;

/// A controller under test: how to ask it for item `i`'s Secret, and its process.
trait Contender {
    fn secret_name(&self, index: usize) -> String;
    async fn create(&self, index: usize);
    fn usage(&self) -> Usage;
    /// Kills and starts the process again; when it was spawned.
    fn restart(&mut self) -> Instant;
}

struct Ours {
    lab: Lab,
    operator: OperatorRun,
}

impl Contender for Ours {
    fn secret_name(&self, index: usize) -> String {
        format!("entra-l-{index}")
    }

    /// Each lease names its own user, as each ExternalSecret has its own Secret: no two
    /// resources compete for one thing (leases taking the first free user are `make bench`'s).
    async fn create(&self, index: usize) {
        let pool = format!("pool-{}", index / POOL_SIZE);
        let spec = json!({ "ttl": "1h", "user": user_principal_name(index) });
        let lease = lease_object(&format!("l-{index}"), &pool, spec);
        self.lab
            .leases()
            .create(&PostParams::default(), &lease)
            .await
            .expect("the lease is created");
    }

    fn usage(&self) -> Usage {
        self.operator.usage().expect("the operator runs")
    }

    fn restart(&mut self) -> Instant {
        self.operator.restart();
        self.operator.spawned_at
    }
}

struct Eso {
    client: kube::Client,
    run: EsoRun,
}

impl Contender for Eso {
    fn secret_name(&self, index: usize) -> String {
        format!("es-{index}")
    }

    async fn create(&self, index: usize) {
        peer::external_secrets(&self.client, ESO_NAMESPACE)
            .create(
                &PostParams::default(),
                &peer::external_secret(&self.secret_name(index)),
            )
            .await
            .expect("the ExternalSecret is created");
    }

    fn usage(&self) -> Usage {
        self.run.usage().expect("ESO runs")
    }

    fn restart(&mut self) -> Instant {
        self.run.restart();
        self.run.spawned_at
    }
}

/// When each Secret of a namespace first held a password, from a watch.
#[derive(Clone)]
struct Arrivals(Arc<Mutex<HashMap<String, Instant>>>);

impl Arrivals {
    fn watch(client: &kube::Client, namespace: &str) -> Arrivals {
        let seen = Arrivals(Arc::new(Mutex::new(HashMap::new())));
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let map = seen.0.clone();
        tokio::spawn(async move {
            let stream = watcher(api, watcher::Config::default()).applied_objects();
            futures::pin_mut!(stream);
            while let Ok(Some(secret)) = stream.try_next().await {
                let holds_password = secret
                    .data
                    .as_ref()
                    .is_some_and(|data| data.contains_key("password"));
                if let (true, Some(name)) = (holds_password, secret.metadata.name) {
                    map.lock().unwrap().entry(name).or_insert_with(Instant::now);
                }
            }
        });
        seen
    }

    fn get(&self, name: &str) -> Option<Instant> {
        self.0.lock().unwrap().get(name).copied()
    }

    /// Waits until every Secret in `names` arrived; their arrival times.
    async fn wait_all(&self, names: &[String], timeout: Duration) -> Vec<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let arrived: Vec<Instant> = names.iter().filter_map(|n| self.get(n)).collect();
            if arrived.len() == names.len() {
                return arrived;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {} Secrets after {timeout:?}",
                arrived.len(),
                names.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Waits until the API server has seen no write for a second (at most 60 s): the controller has
/// finished what the last step asked of it.
async fn settle(client: &kube::Client) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut before = api_requests(client).await;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = api_requests(client).await;
        let writes = now
            .since(&before)
            .total(|verb, _| WRITE_VERBS.contains(&verb));
        if writes == 0.0 {
            return;
        }
        before = now;
    }
}

/// A request a controller makes: not a watch (a long-lived stream, counted once), and on a
/// resource. Requests without one are discovery and /metrics: the harness's, and the
/// kube-controller-manager's periodic discovery, which grows with every CRD installed.
fn controller_request(verb: &str, resource: &str) -> bool {
    verb != "WATCH" && !resource.is_empty()
}

/// The largest counts of `delta`, for the log.
fn print_top(what: &str, delta: &ApiRequests) {
    let mut counts: Vec<_> = delta.0.iter().collect();
    counts.sort_by(|a, b| b.1.total_cmp(a.1));
    let top: Vec<String> = counts
        .iter()
        .take(12)
        .map(|((verb, resource), n)| format!("{verb} {resource} {n}"))
        .collect();
    println!("   {what}: {}", top.join(", "));
}

/// Requests per second by the API server's own clients, with no controller running.
struct Background(f64, f64);

impl Background {
    async fn measure(client: &kube::Client, window: Duration) -> Background {
        let before = api_requests(client).await;
        tokio::time::sleep(window).await;
        let delta = api_requests(client).await.since(&before);
        let seconds = window.as_secs_f64();
        let writes = delta.total(|verb, resource| {
            controller_request(verb, resource) && WRITE_VERBS.contains(&verb)
        }) / seconds;
        let all = delta.total(controller_request) / seconds;
        Background(writes, all - writes)
    }
}

fn phase(text: &str) {
    println!("== {text}");
}

/// Creates items `range` with a bounded number in flight; when each was created.
async fn create_all<C: Contender>(side: &C, range: std::ops::Range<usize>) -> Vec<Instant> {
    futures::stream::iter(range)
        .map(|i| async move {
            side.create(i).await;
            Instant::now()
        })
        .buffered(CLIENT_PARALLELISM)
        .collect()
        .await
}

async fn measure<C: Contender>(
    side: &mut C,
    client: &kube::Client,
    arrivals: &Arrivals,
    scale: &Scale,
    background: &Background,
) -> Figures {
    // Before any resource: the process's start (for the operator, its pools' validation too).
    let mut figures = Figures {
        at_start: side.usage(),
        ..Figures::default()
    };
    phase(&format!("{} sequential", scale.sequential));
    let mut samples = Vec::new();
    for i in 0..scale.sequential {
        let created = Instant::now();
        side.create(i).await;
        let arrived = arrivals
            .wait_all(&[side.secret_name(i)], Duration::from_secs(60))
            .await[0];
        samples.push(arrived.duration_since(created).as_secs_f64() * 1000.0);
    }
    figures.sequential_ms = Percentiles::of(&samples);
    settle(client).await;

    phase(&format!("a burst of {}", scale.burst));
    let range = scale.sequential..scale.sequential + scale.burst;
    let names: Vec<String> = range.clone().map(|i| side.secret_name(i)).collect();
    let before = api_requests(client).await;
    let started = Instant::now();
    let created = create_all(side, range).await;
    let arrived = arrivals.wait_all(&names, Duration::from_secs(600)).await;
    let last = arrived.iter().max().copied().unwrap_or(started);
    figures.burst_all_seconds = last.duration_since(started).as_secs_f64();
    let samples: Vec<f64> = created
        .iter()
        .zip(&arrived)
        .map(|(c, a)| a.saturating_duration_since(*c).as_secs_f64() * 1000.0)
        .collect();
    figures.burst_ms = Percentiles::of(&samples);
    settle(client).await;
    let delta = api_requests(client).await.since(&before);
    print_top("burst requests", &delta);
    let seconds = started.elapsed().as_secs_f64();
    let n = scale.burst as f64;
    // A refused request's resource carries its status code (`secrets [404]`): it is counted apart
    // from the accepted writes and reads.
    let refused = |resource: &str| resource.contains('[');
    let writes = delta.total(|verb, resource| {
        controller_request(verb, resource) && !refused(resource) && WRITE_VERBS.contains(&verb)
    });
    let reads = delta.total(|verb, resource| {
        controller_request(verb, resource) && !refused(resource) && !WRITE_VERBS.contains(&verb)
    });
    let refusals =
        delta.total(|verb, resource| controller_request(verb, resource) && refused(resource));
    // The harness created each resource: one POST each.
    figures.writes_per_secret = (writes - n - background.0 * seconds).max(0.0) / n;
    figures.reads_per_secret = (reads - background.1 * seconds).max(0.0) / n;
    figures.refused_per_secret = refusals / n;
    figures.burst_requests_per_secret = delta
        .0
        .iter()
        .filter(|((verb, resource), _)| controller_request(verb, resource))
        .map(|((verb, resource), count)| (format!("{verb} {resource}"), count / n))
        .collect();

    let mut next = scale.sequential + scale.burst;
    for (fill, at) in [
        (scale.first_fill, &mut figures.at_first_fill),
        (scale.full_fill, &mut figures.at_full_fill),
    ] {
        phase(&format!("filling to {fill}"));
        if next < fill {
            create_all(side, next..fill).await;
            next = fill;
        }
        let names: Vec<String> = (0..fill).map(|i| side.secret_name(i)).collect();
        arrivals.wait_all(&names, Duration::from_secs(3600)).await;
        settle(client).await;
        *at = side.usage();
    }

    phase(&format!("idle for {} s", scale.idle_seconds));
    let before = api_requests(client).await;
    tokio::time::sleep(Duration::from_secs(scale.idle_seconds)).await;
    let delta = api_requests(client).await.since(&before);
    print_top("idle requests", &delta);
    let all = delta.total(controller_request);
    let seconds = scale.idle_seconds as f64;
    figures.idle_requests_per_minute =
        ((all - (background.0 + background.1) * seconds) / seconds * 60.0).max(0.0);

    phase("restart, then one new resource");
    let spawned = side.restart();
    side.create(scale.full_fill).await;
    let arrived = arrivals
        .wait_all(
            &[side.secret_name(scale.full_fill)],
            Duration::from_secs(600),
        )
        .await[0];
    figures.restart_to_new_secret_seconds = arrived.duration_since(spawned).as_secs_f64();
    figures
}

async fn run_eso(
    control_plane: &ControlPlane,
    client: &kube::Client,
    scale: &Scale,
    background: &Background,
    logs: &std::path::Path,
) -> Figures {
    phase(&format!("External Secrets Operator {ESO_VERSION}"));
    peer::install_crds(control_plane);
    Lab::ensure_namespace(client, ESO_NAMESPACE).await;
    peer::passwords(client, ESO_NAMESPACE)
        .create(&PostParams::default(), &peer::password_generator())
        .await
        .expect("the Password generator");
    let arrivals = Arrivals::watch(client, ESO_NAMESPACE);
    let run = EsoRun::start(
        &control_plane.kubeconfig,
        ESO_NAMESPACE,
        CONCURRENCY,
        logs.join("eso.log"),
    );
    let mut eso = Eso {
        client: client.clone(),
        run,
    };
    let mut figures = measure(&mut eso, client, &arrivals, scale, background).await;
    figures.controller = format!("External Secrets Operator {ESO_VERSION}");
    figures.flags = eso.run.flags();
    // Its resources go, so that the operator's turn starts on an API server as empty as ESO's.
    phase("deleting ESO's namespace");
    let deleted = control_plane.kubectl(&["delete", "namespace", ESO_NAMESPACE, "--timeout=600s"]);
    assert!(
        deleted.status.success(),
        "ESO's namespace is deleted: {}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    eso.run.stop();
    figures
}

async fn run_ours(
    control_plane: &ControlPlane,
    client: &kube::Client,
    scale: &Scale,
    background: &Background,
    logs: &std::path::Path,
) -> Figures {
    phase("entra-operator");
    // One user per resource, in pools of 250, and one more pool for the resource after restart.
    let users = scale.full_fill + POOL_SIZE;
    let emulator = Emulator::start(tenant(users))
        .await
        .expect("the emulator starts");
    Lab::ensure_namespace(client, OURS_NAMESPACE).await;
    Lab::ensure_namespace(client, OURS_OPERATOR_NAMESPACE).await;
    setup::install_finalizer_policy(control_plane, OURS_OPERATOR_NAMESPACE, &[OURS_NAMESPACE])
        .await;
    let lab = Lab {
        client: client.clone(),
        namespace: OURS_NAMESPACE.into(),
        claims_namespace: OURS_OPERATOR_NAMESPACE.into(),
    };
    let arrivals = Arrivals::watch(client, OURS_NAMESPACE);
    let graph_url = emulator.base_url();
    let flags = OperatorFlags {
        kubeconfig: &control_plane.kubeconfig,
        graph_url: &graph_url,
        namespace: Some(OURS_NAMESPACE),
        operator_namespace: OURS_OPERATOR_NAMESPACE,
        graph_retry_seconds: 30,
        concurrency: CONCURRENCY,
        log_level: "info",
        extra_args: &[],
    };
    let operator = OperatorRun::start_ready(&flags, logs.join("operator.log")).await;
    lab.create_client_secret().await;
    let pools = users.div_ceil(POOL_SIZE);
    let names: Vec<String> = (0..pools).map(|i| format!("pool-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let members = i * POOL_SIZE..((i + 1) * POOL_SIZE).min(users);
        lab.create_pool(name, members, "1h", "24h", true).await;
    }
    lab.wait_pools_ready(&names, Duration::from_secs(1800))
        .await
        .expect("the dynamic secrets become ready");
    settle(client).await;
    let mut ours = Ours { lab, operator };
    let mut figures = measure(&mut ours, client, &arrivals, scale, background).await;
    figures.controller = format!("entra-operator {}", env!("CARGO_PKG_VERSION"));
    figures.flags = format!(
        "run --namespace {OURS_NAMESPACE} --operator-namespace {OURS_OPERATOR_NAMESPACE} \
         --concurrency {CONCURRENCY} --log-level info (release build)"
    );
    ours.operator.kill();
    figures
}

fn main() {
    setup::locate_control_plane();
    entra_operator::tls::install_crypto_provider();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let small = args.iter().any(|a| a == "--small");
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            if small {
                setup::target_dir().join("bench")
            } else {
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            }
        });
    assert!(
        peer::is_built(),
        "ESO is not built: run `make bench-peer`, which builds it from tests/peer"
    );
    let scale = if small { Scale::small() } else { Scale::full() };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let results = runtime.block_on(async {
        let started = Instant::now();
        let cpu_at_start = machine_cpu_seconds();
        let mut machine = Machine::describe();
        let logs = setup::log_dir("bench-peer");
        phase(&format!(
            "starting the control plane; logs in {}",
            logs.display()
        ));
        let control_plane = setup::start_control_plane();
        let client = control_plane.client().await;
        phase(&format!(
            "the API server's background traffic over {} s",
            scale.baseline_seconds
        ));
        let background =
            Background::measure(&client, Duration::from_secs(scale.baseline_seconds)).await;
        // ESO first: its namespace can be deleted afterwards (the operator's leases would need
        // their revocations first), so each runs on an API server holding only its own objects.
        let eso = run_eso(&control_plane, &client, &scale, &background, &logs).await;
        let ours = run_ours(&control_plane, &client, &scale, &background, &logs).await;
        machine.load_at_end = load_average();
        machine.run_seconds = started.elapsed().as_secs_f64();
        machine.other_cpu_seconds = (machine_cpu_seconds() - cpu_at_start).max(0.0);
        PeerResults {
            machine,
            scale: scale.clone(),
            ours,
            eso,
        }
    });
    let table = markdown(&results);
    println!("\n{table}");
    std::fs::create_dir_all(&out).expect("the output directory");
    let json = serde_json::to_string_pretty(&results).expect("results serialise");
    std::fs::write(out.join("peer-results.json"), json + "\n").expect("peer-results.json");
    let path = out.join("results.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, with_peer_section(&existing, &table)).expect("results.md");
    println!(
        "wrote {}/results.md (peer section) and peer-results.json",
        out.display()
    );
}
