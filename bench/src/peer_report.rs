//! The peer comparison's figures and how they read in `results.md`: the sizes, what each
//! controller measured, and the table between the peer markers.

use serde::Serialize;

use super::operator::Usage;
use super::peer::ESO_VERSION;
use super::results::{Machine, PEER_BEGIN, PEER_END, peer_section};
use super::stats::Percentiles;

#[derive(Clone, Debug, Serialize)]
pub struct Scale {
    pub sequential: usize,
    pub burst: usize,
    pub first_fill: usize,
    pub full_fill: usize,
    pub idle_seconds: u64,
    pub baseline_seconds: u64,
}

impl Scale {
    pub fn full() -> Scale {
        Scale {
            sequential: 50,
            burst: 500,
            first_fill: 1_000,
            full_fill: 10_000,
            idle_seconds: 120,
            baseline_seconds: 30,
        }
    }

    pub fn small() -> Scale {
        Scale {
            sequential: 10,
            burst: 50,
            first_fill: 100,
            full_fill: 1_000,
            idle_seconds: 20,
            baseline_seconds: 10,
        }
    }
}

/// What one controller measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Figures {
    pub controller: String,
    pub flags: String,
    pub sequential_ms: Percentiles,
    pub burst_ms: Percentiles,
    pub burst_all_seconds: f64,
    /// API requests per Secret in the burst, less the harness's own creates and the background:
    /// accepted writes, reads, and requests refused (conflicts, not found).
    pub writes_per_secret: f64,
    pub reads_per_secret: f64,
    pub refused_per_secret: f64,
    /// Every request of the burst per Secret, by `VERB resource` (a refused one with its code;
    /// the harness's creates and the API server's background included).
    pub burst_requests_per_secret: std::collections::BTreeMap<String, f64>,
    /// Before the first resource: what the process spent starting (the operator's pools'
    /// validation included).
    pub at_start: Usage,
    pub at_first_fill: Usage,
    pub at_full_fill: Usage,
    pub idle_requests_per_minute: f64,
    /// From the restarted process's spawn to the Secret of a resource created right then.
    pub restart_to_new_secret_seconds: f64,
}

#[derive(Serialize)]
pub struct PeerResults {
    pub machine: Machine,
    pub scale: Scale,
    pub ours: Figures,
    pub eso: Figures,
}

/// `results.md` with its peer section replaced (or added before the hand-written analysis).
pub fn with_peer_section(existing: &str, table: &str) -> String {
    let section = format!("{PEER_BEGIN}\n{table}{PEER_END}\n");
    if let Some(old) = peer_section(existing) {
        return existing.replacen(&old, &section, 1);
    }
    match existing.find("<!-- analysis:") {
        Some(at) => format!("{}{section}\n{}", &existing[..at], &existing[at..]),
        None => format!("{existing}\n{section}"),
    }
}

pub fn markdown(results: &PeerResults) -> String {
    let (ours, eso) = (&results.ours, &results.eso);
    let m = &results.machine;
    let s = &results.scale;
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}", a / b)
        } else {
            "-".to_owned()
        }
    };
    let row = |what: &str, a: f64, b: f64, unit: &str| {
        format!(
            "| {what} | {a:.1} {unit} | {b:.1} {unit} | {} |\n",
            ratio(a, b)
        )
    };
    let mut out = format!(
        "## Beside a peer: External Secrets Operator {ESO_VERSION}\n\n\
         One run of `make bench-peer` on {} ({} CPUs, {:.1} GiB, {}), {:.1} min; load average \
         {:.2} at start, {:.2} at end; other processes used {:.0} CPU s meanwhile. Both \
         controllers ran on the same local control plane, ESO first, then its namespace deleted, \
         then the operator. Sizes: {} sequential, a burst of {}, fills to {} and {}, {} s idle. \
         The Entra emulator added no latency, so the operator's figures are controller overhead \
         plus the emulator's own handling.\n\n\
         - entra-operator: `{}`\n- ESO: `{}`\n\n\
         | per managed Secret | entra-operator | ESO | ours / ESO |\n|---|---|---|---|\n",
        m.date,
        m.nproc,
        m.memory_gib,
        m.cpu_model,
        m.run_seconds / 60.0,
        m.load_at_start,
        m.load_at_end,
        m.other_cpu_seconds,
        s.sequential,
        s.burst,
        s.first_fill,
        s.full_fill,
        s.idle_seconds,
        ours.flags,
        eso.flags,
    );
    out += &row(
        &format!("time to Secret, {} sequential, p50", s.sequential),
        ours.sequential_ms.p50,
        eso.sequential_ms.p50,
        "ms",
    );
    out += &row(
        "... p99",
        ours.sequential_ms.p99,
        eso.sequential_ms.p99,
        "ms",
    );
    out += &row(
        &format!("time to Secret, burst of {}, p50", s.burst),
        ours.burst_ms.p50,
        eso.burst_ms.p50,
        "ms",
    );
    out += &row("... p99", ours.burst_ms.p99, eso.burst_ms.p99, "ms");
    out += &row(
        "... all Secrets written after",
        ours.burst_all_seconds,
        eso.burst_all_seconds,
        "s",
    );
    out += &row(
        "API writes per Secret (burst)",
        ours.writes_per_secret,
        eso.writes_per_secret,
        "",
    );
    out += &row(
        "API reads per Secret (burst)",
        ours.reads_per_secret,
        eso.reads_per_secret,
        "",
    );
    out += &row(
        "API requests refused per Secret (burst: 404, 409)",
        ours.refused_per_secret,
        eso.refused_per_secret,
        "",
    );
    for (fill, a, b) in [
        (s.first_fill, &ours.at_first_fill, &eso.at_first_fill),
        (s.full_fill, &ours.at_full_fill, &eso.at_full_fill),
    ] {
        out += &row(
            &format!("peak RSS at {fill}"),
            a.peak_rss_mib,
            b.peak_rss_mib,
            "MiB",
        );
        out += &row(
            &format!("CPU seconds to reach {fill}"),
            a.cpu_seconds,
            b.cpu_seconds,
            "s",
        );
        out += &row(
            "... of which for the resources (less the start)",
            a.cpu_seconds - ours.at_start.cpu_seconds,
            b.cpu_seconds - eso.at_start.cpu_seconds,
            "s",
        );
    }
    out += &row(
        &format!("idle API requests per minute at {}", s.full_fill),
        ours.idle_requests_per_minute,
        eso.idle_requests_per_minute,
        "",
    );
    out += &row(
        &format!("restart to a new Secret with {}", s.full_fill),
        ours.restart_to_new_secret_seconds,
        eso.restart_to_new_secret_seconds,
        "s",
    );
    out
}
