//! The benchmark's figures, the targets they are held against, and their rendering as
//! `bench/results.json` and `bench/results.md`.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::operator::Usage;
use super::stats::Percentiles;

/// The peer section of `results.md`, written by `make bench-peer` and kept by `make bench`.
pub const PEER_BEGIN: &str = "<!-- peer: written by make bench-peer -->";
pub const PEER_END: &str = "<!-- /peer -->";

/// The peer section of an existing `results.md`, with its closing line break, if it has one.
pub fn peer_section(markdown: &str) -> Option<String> {
    let begin = markdown.find(PEER_BEGIN)?;
    let end = markdown.find(PEER_END)? + PEER_END.len();
    Some(format!("{}\n", &markdown[begin..end]))
}

#[derive(Debug, Default, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub memory_gib: f64,
    pub cpu_model: String,
    pub kernel: String,
    pub date: String,
    /// The commit the operator was built from (`make bench` builds it just before the run), and
    /// whether `src/` had uncommitted changes.
    pub operator_source: String,
    /// 1-minute load average when the run started and when it ended.
    pub load_at_start: f64,
    pub load_at_end: f64,
    /// The highest 1-minute load average seen at a phase boundary.
    pub load_max: f64,
    /// CPU seconds other processes (builds, tests of other engineers) used while the run lasted.
    pub other_cpu_seconds: f64,
    pub run_seconds: f64,
}

impl Machine {
    pub fn describe() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let memory_kib: f64 = read("/proc/meminfo")
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0.0);
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, model)| model.trim().to_owned())
            .unwrap_or_default();
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: memory_kib / 1024.0 / 1024.0,
            cpu_model,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            date: k8s_openapi::jiff::Timestamp::now()
                .strftime("%Y-%m-%d %H:%M UTC")
                .to_string(),
            operator_source: operator_source(),
            load_at_start: load_average(),
            ..Machine::default()
        }
    }
}

/// `git log -1` of the workspace, and whether `src/` differs from it.
fn operator_source() -> String {
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(workspace)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(commit) = git(&["log", "-1", "--format=%h %s"]) else {
        return "unknown (not a git checkout)".into();
    };
    match git(&["status", "--porcelain", "--", "src"]) {
        Some(changes) if !changes.is_empty() => format!("{commit} (with uncommitted changes)"),
        _ => commit,
    }
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// CPU seconds used by the whole machine so far (all processes), from /proc/stat.
pub fn machine_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    let fields: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let busy: f64 = fields
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
        .map(|(_, v)| v)
        .sum();
    // SAFETY: sysconf has no preconditions.
    busy / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

#[derive(Debug, Default, Serialize)]
pub struct Sizes {
    pub users: usize,
    pub dynamic_secrets: usize,
    pub users_per_dynamic_secret: usize,
    pub sequential_leases: usize,
    pub burst_leases: usize,
    /// The expiring burst's TTLs spread over this many seconds.
    pub burst_expiry_spread_seconds: u64,
    pub first_fill: usize,
    pub full_fill: usize,
    pub idle_window_seconds: u64,
    pub graph_latency: String,
    pub operator_flags: String,
}

/// What one lease lifecycle cost, averaged over a phase.
#[derive(Debug, Default, Serialize)]
pub struct Cost {
    pub lifecycles: usize,
    /// API writes by the operator per lifecycle (the harness's own and the API server's background
    /// writes subtracted), by `VERB resource`.
    pub api_writes_by_kind: BTreeMap<String, f64>,
    /// Writes the API server accepted.
    pub api_writes: f64,
    pub api_writes_without_events: f64,
    /// Writes it refused (`[4xx]` in the kind): a round trip each, no change.
    pub api_refused_writes: f64,
    /// GET/LIST per lifecycle (the harness's reads included: it reads each Secret once).
    pub api_reads: f64,
    pub graph_writes: f64,
    pub graph_reads: f64,
    pub token_requests: f64,
    pub graph_by_operation: BTreeMap<String, f64>,
}

/// Objects of one kind as the API server serves them.
#[derive(Debug, Default, Serialize)]
pub struct ObjectSize {
    pub objects: usize,
    pub average_bytes: f64,
    pub average_managed_fields_bytes: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Idle {
    pub active_leases: usize,
    pub window_seconds: f64,
    /// API requests per minute above the API server's own background, by `VERB resource`.
    pub api_requests_per_minute_by_kind: BTreeMap<String, f64>,
    pub api_requests_per_minute: f64,
    pub graph_requests_per_minute: f64,
    pub operator_cpu_seconds_per_minute: f64,
    /// Graph user reads over the whole run per pool user: 1 is the first resolution, each
    /// restart and each periodic re-validation of the dynamic secrets adds 1.
    pub graph_user_reads_per_pool_user: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Restart {
    pub active_leases: usize,
    /// From spawning the process to /readyz answering 200.
    pub ready_ms: f64,
    /// From spawning to every lease having been reconciled once.
    pub all_reconciled_ms: Option<f64>,
    pub graph_writes: u64,
    pub graph_reads: u64,
    pub token_requests: u64,
    pub api_writes: f64,
    pub api_writes_by_kind: BTreeMap<String, f64>,
    pub usage: Usage,
}

/// Leases at the CRD's maximum size and labelled Secrets of 1 MiB beside every active lease, and a
/// restart: what the operator's memory peaks at when its first lists read them.
#[derive(Debug, Default, Serialize)]
pub struct Oversized {
    pub leases: usize,
    pub secrets: usize,
    pub lease_annotation_kib: usize,
    pub secret_kib: usize,
    pub active_leases: usize,
    pub ready_ms: f64,
    pub all_reconciled_ms: Option<f64>,
    pub usage: Usage,
}

#[derive(Debug, Default, Serialize)]
pub struct Tokens {
    pub token_requests: u64,
    pub run_minutes: f64,
    pub operator_processes: u32,
    pub token_lifetime_seconds: u64,
}

#[derive(Debug, Serialize)]
pub struct Target {
    pub target: String,
    pub measured: String,
    pub met: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct Results {
    pub machine: Machine,
    pub sizes: Sizes,
    pub sequential_ms: Percentiles,
    pub burst_ms: Percentiles,
    pub burst_all_active_ms: f64,
    pub burst_leases_per_second: f64,
    /// From deleting all of the burst at once until every lease was revoked and gone.
    pub burst_deleted_all_gone_ms: f64,
    /// A burst of the same size whose leases name their users (no walk over the pool).
    pub named_burst_ms: Percentiles,
    pub named_burst_all_active_ms: f64,
    /// Active leases whose Secret's password did not sign in (must be 0).
    pub passwords_not_working: usize,
    pub revocation_lag_ms: Percentiles,
    /// Sequential leases deleted by their owner.
    pub cost_deleted: Cost,
    /// The burst naming its users, ended by expiry.
    pub cost_expired: Cost,
    /// The burst taking the first free user, deleted at once.
    pub cost_burst: Cost,
    pub tokens: Tokens,
    pub idle: Idle,
    pub usage_first_fill: Usage,
    pub usage_full_fill: Usage,
    pub first_fill_seconds: f64,
    pub full_fill_seconds: f64,
    /// Lease reconciles the operator ran during the fill, per lease filled.
    pub fill_lease_reconciles_per_lease: f64,
    pub restart: Restart,
    /// A tenant's largest objects beside the full fill, read by a restarted operator.
    pub oversized: Oversized,
    /// Continuous leases: what their consumers saw, what a rotation costs.
    pub continuous: crate::rotation::ContinuousFigures,
    /// The Graph quota phase: a burst under a scaled-down quota beside expirations.
    pub quota: crate::quota::QuotaFigures,
    /// Another tenant's app throttled while the healthy app's leases come and go.
    pub neighbour: crate::noisy_neighbour::NeighbourFigures,
    /// Graph requests per lifecycle under each way of ending a lease.
    pub sign_in_options: Vec<crate::sign_in_options::OptionCost>,
    /// At the full fill, by kind.
    pub object_sizes: BTreeMap<String, ObjectSize>,
    pub targets: Vec<Target>,
    pub notes: Vec<String>,
}

impl Results {
    /// Holds the figures against the issue's targets.
    pub fn judge(&mut self) {
        let mut targets = Vec::new();
        let mut target = |target: &str, measured: String, met: bool| {
            targets.push(Target {
                target: target.to_owned(),
                measured,
                met,
            })
        };
        target(
            "single lease p99 < 300 ms",
            format!("p99 {:.0} ms", self.sequential_ms.p99),
            self.sequential_ms.p99 < 300.0,
        );
        target(
            &format!(
                "{}-lease burst all active within 5 s",
                self.sizes.burst_leases
            ),
            format!("{:.1} s", self.burst_all_active_ms / 1000.0),
            self.burst_all_active_ms <= 5000.0,
        );
        target(
            "revocation lag p99 < 1 s",
            format!("p99 {:.0} ms", self.revocation_lag_ms.p99),
            self.revocation_lag_ms.p99 < 1000.0,
        );
        let writes = self
            .cost_expired
            .api_writes
            .max(self.cost_deleted.api_writes);
        target(
            "<= 6 API writes per lifecycle",
            format!(
                "{:.1} (expiry) / {:.1} (deletion); without Events {:.1} / {:.1}; plus {:.1} / {:.1} \
                 refused",
                self.cost_expired.api_writes,
                self.cost_deleted.api_writes,
                self.cost_expired.api_writes_without_events,
                self.cost_deleted.api_writes_without_events,
                self.cost_expired.api_refused_writes,
                self.cost_deleted.api_refused_writes
            ),
            writes <= 6.0,
        );
        target(
            "exactly 2 Graph writes per lifecycle",
            format!(
                "{:.2} with revokeSignInSessions true (the default), {:.2} with it false",
                self.cost_expired.graph_writes, self.cost_deleted.graph_writes
            ),
            (self.cost_expired.graph_writes - 2.0).abs() < 0.01,
        );
        let tokens = &self.tokens;
        let per_process =
            tokens.token_requests as f64 / f64::from(tokens.operator_processes.max(1));
        target(
            "1 token request per hour per app",
            format!(
                "{} in {:.0} min over {} operator processes (token lifetime {} s)",
                tokens.token_requests,
                tokens.run_minutes,
                tokens.operator_processes,
                tokens.token_lifetime_seconds
            ),
            per_process <= 1.0 + tokens.run_minutes / 55.0,
        );
        target(
            "no periodic per-lease API traffic when idle",
            format!(
                "{:.1} API requests/min above background with {} active leases",
                self.idle.api_requests_per_minute, self.idle.active_leases
            ),
            self.idle.api_requests_per_minute < 1.0,
        );
        target(
            &format!("< 64 MiB RSS at {} leases", self.sizes.full_fill),
            format!("peak {:.1} MiB", self.usage_full_fill.peak_rss_mib),
            self.usage_full_fill.peak_rss_mib < 64.0,
        );
        let oversized = &self.oversized;
        target(
            &format!(
                "< 128 MiB RSS (the chart's limit) with {} leases at the CRD's maximum size and {} \
                 labelled Secrets of 1 MiB beside {} active leases",
                oversized.leases, oversized.secrets, oversized.active_leases
            ),
            format!("peak {:.1} MiB", oversized.usage.peak_rss_mib),
            oversized.usage.peak_rss_mib < 128.0,
        );
        let continuous = &self.continuous;
        target(
            "continuous leases: consumers never without a working credential",
            format!(
                "{} of {} consumer reads failed, longest gap {:.0} ms ({} rotations)",
                continuous.consumer_reads_failed,
                continuous.consumer_reads,
                continuous.longest_gap_ms,
                continuous.rotations
            ),
            continuous.consumer_reads_failed == 0 && continuous.rotations > 0,
        );
        target(
            "2 Graph writes per rotation plus session revocation",
            format!(
                "{:.2} per rotation {:?}",
                continuous.graph_writes_per_rotation, continuous.graph_writes_by_operation
            ),
            continuous.graph_writes_per_rotation <= 3.01,
        );
        target(
            "zero Graph writes on restart",
            format!("{} writes", self.restart.graph_writes),
            self.restart.graph_writes == 0,
        );
        for (aim, measured, met) in self
            .quota
            .targets()
            .into_iter()
            .chain(self.neighbour.targets())
        {
            target(&aim, measured, met);
        }
        self.targets = targets;
    }

    pub fn summary(&self) -> String {
        let mut out = String::new();
        let s = &self.sequential_ms;
        let b = &self.burst_ms;
        let r = &self.revocation_lag_ms;
        let _ = writeln!(
            out,
            "time to credential, {} sequential: p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms",
            s.count, s.p50, s.p95, s.p99
        );
        let _ = writeln!(
            out,
            "time to credential, burst of {} (first free user): p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms; last active after {:.1} s",
            b.count,
            b.p50,
            b.p95,
            b.p99,
            self.burst_all_active_ms / 1000.0
        );
        let n = &self.named_burst_ms;
        let _ = writeln!(
            out,
            "time to credential, burst naming users: p50 {:.0} ms, p99 {:.0} ms; last active after {:.1} s",
            n.p50,
            n.p99,
            self.named_burst_all_active_ms / 1000.0
        );
        let _ = writeln!(
            out,
            "revocation lag over {}: p50 {:.0} ms, p99 {:.0} ms",
            r.count, r.p50, r.p99
        );
        for (label, cost) in [
            ("expiry", &self.cost_expired),
            ("deletion", &self.cost_deleted),
            ("first-free burst", &self.cost_burst),
        ] {
            let _ = writeln!(
                out,
                "per {label} lifecycle: {:.1} API writes ({:.1} without Events, {:.1} refused), {:.2} Graph writes",
                cost.api_writes,
                cost.api_writes_without_events,
                cost.api_refused_writes,
                cost.graph_writes
            );
        }
        let _ = writeln!(
            out,
            "idle with {} leases: {:.1} API requests/min, {:.1} Graph requests/min",
            self.idle.active_leases,
            self.idle.api_requests_per_minute,
            self.idle.graph_requests_per_minute
        );
        for (count, usage) in [
            (self.sizes.first_fill, &self.usage_first_fill),
            (self.sizes.full_fill, &self.usage_full_fill),
        ] {
            let _ = writeln!(
                out,
                "at {count} active leases: peak RSS {:.1} MiB (now {:.1}), CPU {:.1} s",
                usage.peak_rss_mib, usage.rss_mib, usage.cpu_seconds
            );
        }
        let _ = writeln!(
            out,
            "restart with {} leases: ready in {:.0} ms, all reconciled in {}, {} Graph writes, {} Graph reads",
            self.restart.active_leases,
            self.restart.ready_ms,
            self.restart.all_reconciled_ms.map_or(
                "(not within the wait)".to_owned(),
                |ms| format!("{:.1} s", ms / 1000.0)
            ),
            self.restart.graph_writes,
            self.restart.graph_reads
        );
        for target in &self.targets {
            let _ = writeln!(
                out,
                "[{}] {}: {}",
                if target.met { "met" } else { "NOT MET" },
                target.target,
                target.measured
            );
        }
        out
    }

    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let z = &self.sizes;
        let mut out = String::new();
        let _ = writeln!(out, "# entra-operator benchmark results\n");
        let _ = writeln!(
            out,
            "Written by `make bench` (bench/src/bin/bench.rs); the same figures are in `results.json`.\n"
        );
        let _ = writeln!(out, "## Machine\n");
        let _ = writeln!(out, "| | |\n|---|---|");
        let _ = writeln!(out, "| date | {} |", m.date);
        let _ = writeln!(out, "| operator built from | {} |", m.operator_source);
        let _ = writeln!(out, "| CPUs (`nproc`) | {} |", m.nproc);
        let _ = writeln!(out, "| CPU model | {} |", m.cpu_model);
        let _ = writeln!(out, "| memory | {:.1} GiB |", m.memory_gib);
        let _ = writeln!(out, "| kernel | {} |", m.kernel);
        let _ = writeln!(
            out,
            "| load average (1 min) | {:.2} at start, {:.2} at end, {:.2} highest at a phase boundary |",
            m.load_at_start, m.load_at_end, m.load_max
        );
        let _ = writeln!(out, "| run | {:.1} min |", m.run_seconds / 60.0);
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Everything runs on this one machine: etcd, kube-apiserver and kube-controller-manager, the \
             Entra emulator and the harness (one process), and the operator (release build). {}\n",
            busy_note(m)
        );
        let _ = writeln!(out, "## Setup\n");
        let _ = writeln!(
            out,
            "- Entra emulator: {} users `user-N@contoso.onmicrosoft.com` with fixed object ids, one app; \
             Graph and token latency {}.",
            z.users, z.graph_latency
        );
        let _ = writeln!(
            out,
            "- {} EntraDynamicSecrets of {} users each (the CRD allows at most 256), defaultTTL 1h, \
             maxTTL 24h, revokeSignInSessions true (the default).",
            z.dynamic_secrets, z.users_per_dynamic_secret
        );
        let _ = writeln!(out, "- Operator: `entra-operator {}`.", z.operator_flags);
        let _ = writeln!(
            out,
            "- Phases: {} sequential leases (each created, waited for, deleted); a burst of {} leases \
             taking the first free user, then all deleted at once; a burst of {} leases naming their \
             users, whose TTLs run out over {} s; 6 continuous leases rotating for 40 s, each read by \
             a consumer; restart with no leases, fill to {} and to {} active \
             leases (naming their users); {} s idle; restart with every lease active; {} s with the \
             operator stopped (the API server's own traffic).\n",
            z.sequential_leases,
            z.burst_leases,
            z.burst_leases,
            z.burst_expiry_spread_seconds,
            z.first_fill,
            z.full_fill,
            z.idle_window_seconds,
            z.idle_window_seconds
        );
        let _ = writeln!(out, "## Targets\n");
        let _ = writeln!(out, "| target | measured | |\n|---|---|---|");
        for t in &self.targets {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                t.target,
                t.measured,
                if t.met { "met" } else { "**not met**" }
            );
        }
        let _ = writeln!(out, "\n## Figures\n");
        let _ = writeln!(out, "```\n{}```\n", self.summary());
        let _ = writeln!(
            out,
            "### Time to credential (lease created -> Active, password works)\n"
        );
        let _ = writeln!(
            out,
            "| | count | p50 | p95 | p99 | max |\n|---|---|---|---|---|---|"
        );
        for (label, p) in [
            ("sequential", &self.sequential_ms),
            ("burst", &self.burst_ms),
        ] {
            let _ = writeln!(
                out,
                "| {label} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |",
                p.count, p.p50, p.p95, p.p99, p.max
            );
        }
        let n = &self.named_burst_ms;
        let _ = writeln!(
            out,
            "| burst naming users | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |",
            n.count, n.p50, n.p95, n.p99, n.max
        );
        let _ = writeln!(
            out,
            "\nBurst taking the first free user (`spec.user` empty): the last of {} leases was Active \
             {:.1} s after the burst began ({:.0} leases/s); deleting all of them at once, all were \
             revoked and gone after {:.1} s. Burst naming users (`spec.user`): all Active after \
             {:.1} s. Active leases whose password did not sign in: {}.\n",
            z.burst_leases,
            self.burst_all_active_ms / 1000.0,
            self.burst_leases_per_second,
            self.burst_deleted_all_gone_ms / 1000.0,
            self.named_burst_all_active_ms / 1000.0,
            self.passwords_not_working
        );
        let r = &self.revocation_lag_ms;
        let _ = writeln!(
            out,
            "### Revocation lag (expiresAt -> password scrambled in Entra)\n\n{} leases: p50 {:.0} ms, \
             p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms. `expiresAt` has whole seconds; the scramble \
             time is the emulator's record of the password change.\n",
            r.count, r.p50, r.p95, r.p99, r.max
        );
        let _ = writeln!(out, "### Cost per lifecycle\n");
        let _ = writeln!(
            out,
            "API writes from `apiserver_request_total` (diff over the phase, minus the harness's own \
             writes and the API server's background rate measured before the operator started), \
             Graph requests from the emulator's counters.\n"
        );
        let columns = [
            ("expiry, users named", &self.cost_expired),
            ("deletion, sequential", &self.cost_deleted),
            ("deletion, first-free burst", &self.cost_burst),
        ];
        let _ = write!(out, "| per lifecycle |");
        for (label, cost) in &columns {
            let _ = write!(out, " {label} ({}) |", cost.lifecycles);
        }
        let _ = writeln!(out, "\n|---|---|---|---|");
        let mut kinds: Vec<&String> = columns
            .iter()
            .flat_map(|(_, c)| c.api_writes_by_kind.keys())
            .collect();
        kinds.sort();
        kinds.dedup();
        let row = |out: &mut String, label: &str, value: &dyn Fn(&Cost) -> f64| {
            let _ = write!(out, "| {label} |");
            for (_, cost) in &columns {
                let _ = write!(out, " {:.2} |", value(cost));
            }
            let _ = writeln!(out);
        };
        for kind in kinds {
            row(&mut out, &format!("API {kind}"), &|c| {
                c.api_writes_by_kind.get(kind).copied().unwrap_or(0.0)
            });
        }
        row(&mut out, "**API writes** (accepted)", &|c| c.api_writes);
        row(&mut out, "API writes without Events", &|c| {
            c.api_writes_without_events
        });
        row(
            &mut out,
            "refused writes (4xx: conflicts, not found)",
            &|c| c.api_refused_writes,
        );
        row(&mut out, "API reads (GET/LIST)", &|c| c.api_reads);
        row(&mut out, "**Graph writes**", &|c| c.graph_writes);
        row(&mut out, "Graph reads", &|c| c.graph_reads);
        row(&mut out, "token requests", &|c| c.token_requests);
        let mut operations: Vec<&String> = columns
            .iter()
            .flat_map(|(_, c)| c.graph_by_operation.keys())
            .collect();
        operations.sort();
        operations.dedup();
        for op in operations {
            row(&mut out, &format!("Graph {op}"), &|c| {
                c.graph_by_operation.get(op).copied().unwrap_or(0.0)
            });
        }
        let _ = writeln!(
            out,
            "\nThe sequential leases come from a dynamic secret with revokeSignInSessions false, the \
             bursts from ones with the default (true)."
        );
        let t = &self.tokens;
        let _ = writeln!(
            out,
            "\nToken requests: {} over the {:.0}-minute run, across {} operator processes (each \
             process fetches one token and keeps it until 5 minutes before its {} s lifetime ends, \
             i.e. about one per 55 minutes per app).\n",
            t.token_requests, t.run_minutes, t.operator_processes, t.token_lifetime_seconds
        );
        let i = &self.idle;
        let _ = writeln!(
            out,
            "### Idle with {} active leases ({:.0} s window)\n\n- API requests on the operator's \
             resources (EntraLeases, EntraDynamicSecrets, Secrets, Leases, Events) beyond the same \
             window with the operator stopped: {:.1}/min\n- Graph requests: {:.1}/min\n- operator CPU: \
             {:.2} s/min\n- Graph user reads over the whole run per pool user: {:.2}\n",
            i.active_leases,
            i.window_seconds,
            i.api_requests_per_minute,
            i.graph_requests_per_minute,
            i.operator_cpu_seconds_per_minute,
            i.graph_user_reads_per_pool_user
        );
        if !i.api_requests_per_minute_by_kind.is_empty() {
            let _ = writeln!(out, "| API requests/min when idle | |\n|---|---|");
            for (kind, rate) in &i.api_requests_per_minute_by_kind {
                let _ = writeln!(out, "| {kind} | {rate:.1} |");
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "### Memory and CPU of the operator\n");
        let _ = writeln!(
            out,
            "| active leases | peak RSS (VmHWM) | RSS now | CPU seconds | fill time |\n|---|---|---|---|---|"
        );
        for (count, usage, seconds) in [
            (
                z.first_fill,
                &self.usage_first_fill,
                self.first_fill_seconds,
            ),
            (z.full_fill, &self.usage_full_fill, self.full_fill_seconds),
        ] {
            let _ = writeln!(
                out,
                "| {count} | {:.1} MiB | {:.1} MiB | {:.1} s | {:.0} s |",
                usage.peak_rss_mib, usage.rss_mib, usage.cpu_seconds, seconds
            );
        }
        let o = &self.oversized;
        let _ = writeln!(
            out,
            "| {} + {} leases at the CRD's maximum size ({} KiB of annotations each) and {} \
             labelled Secrets of {} KiB, after a restart | {:.1} MiB | {:.1} MiB | {:.1} s | |",
            o.active_leases,
            o.leases,
            o.lease_annotation_kib,
            o.secrets,
            o.secret_kib,
            o.usage.peak_rss_mib,
            o.usage.rss_mib,
            o.usage.cpu_seconds
        );
        let _ = writeln!(
            out,
            "\nThe operator process was restarted (SIGTERM) with no leases just before the first fill, \
             so both rows count from that start; CPU seconds are user+system since then. It ran {:.0} \
             lease reconciles per lease filled.\n",
            self.fill_lease_reconciles_per_lease
        );
        if !self.object_sizes.is_empty() {
            let _ = writeln!(
                out,
                "What the operator's watches cache, as JSON from the API server at {} leases:\n\n\
                 | kind | objects | average size | of which managedFields |\n|---|---|---|---|",
                z.full_fill
            );
            for (kind, size) in &self.object_sizes {
                let _ = writeln!(
                    out,
                    "| {kind} | {} | {:.0} B | {:.0} B |",
                    size.objects, size.average_bytes, size.average_managed_fields_bytes
                );
            }
            let _ = writeln!(out);
        }
        let c = &self.continuous;
        let _ = writeln!(
            out,
            "### Continuous leases\n\n{} leases rotating every 5 s (maxTTL 8 s, overlap 3 s) for {:.0} s: \
             {} rotations. A consumer per lease read its Secret every 100 ms and signed in with what \
             it found: {} of {} reads failed, longest gap {:.0} ms. Graph writes {:.2} per rotation \
             {:?}: a rotation costs the new password, then the old one's scramble and session \
             revocation once it retires (rotations whose old credential was still live when the \
             window closed count only the first).\n",
            c.leases,
            c.run_seconds,
            c.rotations,
            c.consumer_reads_failed,
            c.consumer_reads,
            c.longest_gap_ms,
            c.graph_writes_per_rotation,
            c.graph_writes_by_operation
        );
        let _ = writeln!(out, "{}", self.quota.markdown());
        let _ = writeln!(
            out,
            "{}",
            crate::sign_in_options::markdown(&self.sign_in_options)
        );
        let rs = &self.restart;
        let _ = writeln!(
            out,
            "### Restart with {} active leases\n\n- ready (/readyz 200) {:.0} ms after the process was \
             spawned\n- every lease reconciled after {}\n- Graph writes {}, Graph reads {}, token \
             requests {}\n- API writes {:.0} {:?}\n- restarted process: peak RSS {:.1} MiB, CPU {:.1} s\n",
            rs.active_leases,
            rs.ready_ms,
            rs.all_reconciled_ms
                .map_or("(not within the wait)".to_owned(), |ms| format!(
                    "{:.1} s",
                    ms / 1000.0
                )),
            rs.graph_writes,
            rs.graph_reads,
            rs.token_requests,
            rs.api_writes,
            rs.api_writes_by_kind,
            rs.usage.peak_rss_mib,
            rs.usage.cpu_seconds
        );
        if !self.notes.is_empty() {
            let _ = writeln!(out, "## Notes\n");
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }
}

fn busy_note(m: &Machine) -> String {
    let share = m.other_cpu_seconds / (m.run_seconds * m.nproc as f64).max(1.0);
    if share > 0.1 || m.load_max > m.nproc as f64 {
        format!(
            "**The machine was busy**: other work (builds and tests of other engineers) used about \
             {:.0} % of its CPU time during the run, so the timings are pessimistic and vary between runs.",
            share * 100.0
        )
    } else {
        "The machine was otherwise quiet during the run.".to_owned()
    }
}
