//! Prometheus metrics. Counters and histograms are updated where things happen; the gauges that
//! describe the current state (leases by phase, expiries, pool users) are computed by a collector
//! from the controllers' caches when `/metrics` is scraped, so they can never drift from the
//! cluster.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GraphRequestLabels {
    pub operation: String,
    /// The HTTP status, or `timeout` / `connection` when no answer came.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub app: String,
    pub class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabels {
    pub class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabels {
    pub namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CappedLabels {
    pub capped: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LeaseLabels {
    pub namespace: String,
    pub lease: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub namespace: String,
    pub dynamic_secret: String,
    /// `available`, `leased` or `unleasable`.
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolCredentialLabels {
    pub namespace: String,
    pub dynamic_secret: String,
}

/// The current state, computed at scrape time from the caches.
#[derive(Default)]
pub struct Snapshot {
    pub leases_by_phase: Vec<(String, i64)>,
    pub lease_expiries: Vec<(LeaseLabels, i64)>,
    pub pool_users: Vec<(PoolLabels, i64)>,
    pub pool_credential_expiries: Vec<(PoolCredentialLabels, i64)>,
}

/// The scheduler's priority classes, as labelled.
const GRAPH_CLASSES: &[&str] = &["end", "rotate", "restore", "issue", "validate"];

type SnapshotSource = Arc<dyn Fn() -> Snapshot + Send + Sync>;

pub struct Metrics {
    registry: Registry,
    pub issues: Counter,
    pub renewals: Family<CappedLabels, Counter>,
    pub revocations: Counter,
    pub rotations: Counter,
    /// From a lease's creation to its first credential.
    pub time_to_credential: Histogram,
    /// From a credential's recorded expiry to its scramble.
    pub revocation_lag: Histogram,
    pub continuous_lease_gaps: Counter,
    pub revocation_failures: Family<ReasonLabels, Counter>,
    /// Ended credentials whose Secret could not be deleted or emptied (their passwords no
    /// longer work).
    pub secrets_left_behind: Counter,
    pub graph_requests: Family<GraphRequestLabels, Counter>,
    pub graph_duration: Family<OperationLabels, Histogram>,
    pub graph_throttle_wait: Counter<f64>,
    pub graph_queue_depth: Family<QueueLabels, Gauge>,
    pub graph_queue_wait: Family<ClassLabels, Histogram>,
    pub graph_queue_oldest: Family<ClassLabels, Gauge<f64, AtomicU64>>,
    pub graph_parked: Gauge,
    pub graph_writes_by_namespace: Family<NamespaceLabels, Counter>,
    pub reconcile_duration: Family<ControllerLabels, Histogram>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub leader: Gauge,
    state: Arc<StateGauges>,
}

/// 50 ms .. ~7 min: from a fast issue to a long wait for a free user.
fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 14))
}

fn latency_histogram() -> Histogram {
    // 5 ms .. ~40 s
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("entra");
        let metrics = Metrics {
            issues: Counter::default(),
            renewals: Family::default(),
            revocations: Counter::default(),
            rotations: Counter::default(),
            time_to_credential: seconds_histogram(),
            revocation_lag: seconds_histogram(),
            continuous_lease_gaps: Counter::default(),
            revocation_failures: Family::default(),
            secrets_left_behind: Counter::default(),
            graph_requests: Family::default(),
            graph_duration: Family::new_with_constructor(latency_histogram),
            graph_throttle_wait: Counter::default(),
            graph_queue_depth: Family::default(),
            graph_queue_wait: Family::new_with_constructor(latency_histogram),
            graph_queue_oldest: Family::default(),
            graph_parked: Gauge::default(),
            graph_writes_by_namespace: Family::default(),
            reconcile_duration: Family::new_with_constructor(latency_histogram),
            reconcile_errors: Family::default(),
            leader: Gauge::default(),
            state: Arc::new(StateGauges::default()),
            registry: Registry::default(),
        };
        let m = &metrics;
        registry.register(
            "lease_issues",
            "Credentials issued to leases (first issues and restores)",
            m.issues.clone(),
        );
        registry.register(
            "lease_renewals",
            "Lease renewals, by whether maxTTL capped them",
            m.renewals.clone(),
        );
        registry.register(
            "lease_revocations",
            "Lease credentials ended (password scrambled, user released)",
            m.revocations.clone(),
        );
        registry.register(
            "lease_rotations",
            "Continuous leases rotated onto another pool user",
            m.rotations.clone(),
        );
        registry.register(
            "lease_time_to_credential_seconds",
            "From a lease's creation to its first credential in the Secret, confirmed by Entra \
             (waits for a free user included)",
            m.time_to_credential.clone(),
        );
        registry.register(
            "lease_revocation_lag_seconds",
            "From a credential's recorded expiry to its password being scrambled",
            m.revocation_lag.clone(),
        );
        registry.register(
            "lease_rotation_gaps",
            "Continuous leases whose credential ended before another user was free to rotate to",
            m.continuous_lease_gaps.clone(),
        );
        registry.register(
            "lease_revocation_failures",
            "Failed attempts to end a lease's credential, retried until they succeed",
            m.revocation_failures.clone(),
        );
        registry.register(
            "lease_secrets_left_behind",
            "Ended credentials whose Secret the operator could not delete or empty (a refusal, \
             an outage): the password in it no longer works, and the user went back to the pool",
            m.secrets_left_behind.clone(),
        );
        registry.register(
            "graph_requests",
            "Microsoft Graph and token requests, by operation and HTTP status",
            m.graph_requests.clone(),
        );
        registry.register(
            "graph_request_duration_seconds",
            "Latency of one Graph or token request attempt",
            m.graph_duration.clone(),
        );
        registry.register(
            "graph_throttle_wait_seconds",
            "Time spent waiting before retrying throttled or failing Graph requests",
            m.graph_throttle_wait.clone(),
        );
        registry.register(
            "graph_queue_depth",
            "Graph requests waiting for their turn, by app (client id) and priority class",
            m.graph_queue_depth.clone(),
        );
        registry.register(
            "graph_queue_wait_seconds",
            "Time a Graph request waited for its turn (budgets, pauses, requests ahead), by class",
            m.graph_queue_wait.clone(),
        );
        registry.register(
            "graph_queue_oldest_wait_seconds",
            "How long the oldest Graph request still waiting has waited, by class",
            m.graph_queue_oldest.clone(),
        );
        registry.register(
            "graph_parked_requests",
            "Graph requests parked in line while their worker went on to other work",
            m.graph_parked.clone(),
        );
        registry.register(
            "graph_writes_by_namespace",
            "Graph writes sent, by the namespace whose share they spent (\"\": the operator's own)",
            m.graph_writes_by_namespace.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles, by kind of error",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "leader",
            "1 when this replica is the active leader",
            m.leader.clone(),
        );
        registry.register_collector(Box::new(m.state.clone()));
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Tells the registry where the current state comes from (the controllers' caches).
    pub fn set_snapshot_source(&self, source: impl Fn() -> Snapshot + Send + Sync + 'static) {
        *self.state.source.write().unwrap() = Some(Arc::new(source));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// The classic Prometheus text format (0.0.4), for scrapers and tools such as `promtool`
    /// that do not speak OpenMetrics.
    pub fn render_classic(&self) -> String {
        openmetrics_to_classic(&self.render())
    }

    pub fn observe_graph(&self, operation: &str, status: &str, elapsed: Duration) {
        let labels = GraphRequestLabels {
            operation: operation.to_owned(),
            status: status.to_owned(),
        };
        self.graph_requests.get_or_create(&labels).inc();
        let operation = OperationLabels {
            operation: operation.to_owned(),
        };
        self.graph_duration
            .get_or_create(&operation)
            .observe(elapsed.as_secs_f64());
    }

    /// A Graph request of `app` joined the line in `class`.
    pub fn graph_queue_joined(&self, app: &str, class: &str) {
        self.graph_queue_depth
            .get_or_create(&QueueLabels {
                app: app.to_owned(),
                class: class.to_owned(),
            })
            .inc();
    }

    /// A Graph request of `app` in `class` left the line (sent or given up).
    pub fn graph_queue_left(&self, app: &str, class: &str) {
        self.graph_queue_depth
            .get_or_create(&QueueLabels {
                app: app.to_owned(),
                class: class.to_owned(),
            })
            .dec();
    }

    /// A Graph request of `class` started after waiting `waited`.
    pub fn graph_queue_waited(&self, class: &str, waited: Duration) {
        self.graph_queue_wait
            .get_or_create(&ClassLabels {
                class: class.to_owned(),
            })
            .observe(waited.as_secs_f64());
    }

    /// The line as it stands: the oldest wait of each class (classes absent wait for nothing),
    /// and the parked requests.
    pub fn graph_queue_stands(&self, oldest: &[(&str, Duration)], parked: usize) {
        for class in GRAPH_CLASSES {
            let waited = oldest
                .iter()
                .find(|(name, _)| name == class)
                .map_or(0.0, |(_, waited)| waited.as_secs_f64());
            self.graph_queue_oldest
                .get_or_create(&ClassLabels {
                    class: (*class).to_owned(),
                })
                .set(waited);
        }
        self.graph_parked.set(parked as i64);
    }

    /// A Graph write was sent for `namespace`.
    pub fn graph_write_for(&self, namespace: &str) {
        self.graph_writes_by_namespace
            .get_or_create(&NamespaceLabels {
                namespace: namespace.to_owned(),
            })
            .inc();
    }

    pub fn observe_reconcile(&self, controller: &str, elapsed: Duration, error_kind: Option<&str>) {
        let labels = ControllerLabels {
            controller: controller.to_owned(),
        };
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if let Some(kind) = error_kind {
            let labels = ErrorLabels {
                controller: controller.to_owned(),
                kind: kind.to_owned(),
            };
            self.reconcile_errors.get_or_create(&labels).inc();
        }
    }
}

/// The gauges that describe the current state, built from a snapshot of the caches at each
/// scrape: nothing to keep in step, and the series of objects that are gone vanish with them.
#[derive(Default)]
struct StateGauges {
    source: RwLock<Option<SnapshotSource>>,
}

impl std::fmt::Debug for StateGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateGauges")
    }
}

impl Collector for StateGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(source) = self.source.read().unwrap().clone() else {
            return Ok(());
        };
        let snapshot = source();
        let leases = gauges(
            snapshot
                .leases_by_phase
                .into_iter()
                .map(|(phase, count)| (PhaseLabels { phase }, count)),
        );
        encode_gauges(&mut encoder, "leases", "Leases by phase", &leases)?;
        encode_gauges(
            &mut encoder,
            "lease_expiry_timestamp_seconds",
            "When each active lease expires unless renewed (Unix time)",
            &gauges(snapshot.lease_expiries),
        )?;
        encode_gauges(
            &mut encoder,
            "pool_users",
            "Pool users of each dynamic secret by state",
            &gauges(snapshot.pool_users),
        )?;
        encode_gauges(
            &mut encoder,
            "pool_credential_expiry_timestamp_seconds",
            "When each dynamic secret's app credential stops working (Unix time): a certificate's \
             notAfter or a client secret's annotated expiry",
            &gauges(snapshot.pool_credential_expiries),
        )
    }
}

fn gauges<L: Clone + std::hash::Hash + Eq>(
    values: impl IntoIterator<Item = (L, i64)>,
) -> Family<L, Gauge> {
    let family = Family::<L, Gauge>::default();
    for (labels, value) in values {
        family.get_or_create(&labels).set(value);
    }
    family
}

fn encode_gauges<L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    family: &Family<L, Gauge>,
) -> Result<(), std::fmt::Error> {
    family.encode(encoder.encode_descriptor(name, help, None, family.metric_type())?)
}

/// Rewrites OpenMetrics text as the classic format. They differ, for what this registry emits, in
/// three ways: a counter's metadata names its family (`foo`) while its sample is `foo_total`;
/// `# UNIT` lines; and the closing `# EOF`.
fn openmetrics_to_classic(text: &str) -> String {
    let counters: std::collections::HashSet<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let metadata = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|prefix| line.strip_prefix(prefix).map(|rest| (prefix, rest)));
        match metadata {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{suffix} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counters_by_their_samples() {
        let open = "# HELP entra_issues Issued.\n# TYPE entra_issues counter\nentra_issues_total 3\n# HELP entra_leader Leader.\n# TYPE entra_leader gauge\nentra_leader 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_classic(open),
            "# HELP entra_issues_total Issued.\n# TYPE entra_issues_total counter\nentra_issues_total 3\n# HELP entra_leader Leader.\n# TYPE entra_leader gauge\nentra_leader 1\n"
        );
    }

    #[test]
    fn every_metric_is_registered_with_help() {
        let text = metrics().render_classic();
        for name in [
            "entra_lease_issues_total",
            "entra_graph_throttle_wait_seconds_total",
            "entra_leader",
        ] {
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} in {text}"
            );
        }
    }
}
