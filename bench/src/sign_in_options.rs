//! The sign-in options phase of `make bench` (issue 24, invariant I9): what each way of ending a
//! lease costs in Graph requests, measured over sequential lifecycles (issue, active, delete,
//! gone) on pools that differ only in `signInMethods`, `disableIdleUsers` and `credentialType`
//! (with each option's time to credential, Temporary Access Passes included). Runs its own
//! emulator and operator in namespaces of its own.

use std::collections::BTreeMap;
use std::time::Duration;

use entra_emulator::{Counters, Emulator, MethodKind};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde::Serialize;
use serde_json::{Value, json};

use crate::control_plane::ControlPlane;
use crate::lab::{self, Lab, lease_object, user_id};
use crate::operator::start_phase_operator;
use crate::stats::Percentiles;
use crate::tracker::Tracker;

const NAMESPACE: &str = "bench-sign-in";
const OPERATOR_NAMESPACE: &str = "entra-operator-sign-in";
const PATIENCE: Duration = Duration::from_secs(60);

/// One way of ending a lease.
struct EndOption {
    label: &'static str,
    spec: Value,
    /// A holder registers a passkey during each lease.
    registers_method: bool,
}

fn options() -> [EndOption; 5] {
    [
        EndOption {
            label: "password and sessions (signInMethods: Keep)",
            spec: json!({ "signInMethods": "Keep" }),
            registers_method: false,
        },
        EndOption {
            label: "methods removed, none added (the default)",
            spec: json!({}),
            registers_method: false,
        },
        EndOption {
            label: "methods removed, a passkey added per lease",
            spec: json!({}),
            registers_method: true,
        },
        EndOption {
            label: "methods removed and disableIdleUsers",
            spec: json!({ "disableIdleUsers": true }),
            registers_method: false,
        },
        EndOption {
            label: "a Temporary Access Pass (credentialType: TemporaryAccessPass)",
            spec: json!({ "credentialType": "TemporaryAccessPass" }),
            registers_method: false,
        },
    ]
}

/// Graph requests per lifecycle under one option.
#[derive(Debug, Default, Serialize)]
pub struct OptionCost {
    pub option: String,
    pub lifecycles: usize,
    pub graph_writes: f64,
    pub graph_reads: f64,
    /// From the lease's creation to its credential, as the tracker saw it.
    pub time_to_credential_ms: Percentiles,
    /// Per lifecycle, by emulator operation.
    pub by_operation: BTreeMap<String, f64>,
}

/// Runs `lifecycles` sequential lifecycles under each option.
pub async fn measure(
    control_plane: &ControlPlane,
    lifecycles: usize,
    log: std::path::PathBuf,
) -> Vec<OptionCost> {
    let options = options();
    let emulator = Emulator::start(lab::tenant(options.len()))
        .await
        .expect("the emulator starts");
    let namespaces = (NAMESPACE, OPERATOR_NAMESPACE);
    let (lab, mut operator) =
        start_phase_operator(control_plane, &emulator, namespaces, 30, &[], log).await;
    lab.create_client_secret().await;
    let tracker = Tracker::start(&lab).await;
    let mut costs = Vec::new();
    for (i, option) in options.iter().enumerate() {
        let pool = format!("option-{i}");
        lab.create_pool(&pool, i..i + 1, "1h", "2h", true).await;
        let patch = json!({ "spec": option.spec });
        lab.pools()
            .patch(&pool, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("the pool takes its option");
        lab.wait_pools_ready(std::slice::from_ref(&pool), PATIENCE)
            .await
            .expect("the pool is ready");
        // One lifecycle first, so that a pool's own reads (its validation) stay out of the count.
        lifecycle(&lab, &emulator, &tracker, &pool, option, usize::MAX).await;
        let before = emulator.counters();
        let mut waits = Vec::with_capacity(lifecycles);
        for n in 0..lifecycles {
            waits.push(lifecycle(&lab, &emulator, &tracker, &pool, option, n).await);
        }
        let mut cost = OptionCost::of(option.label, lifecycles, &before, &emulator.counters());
        cost.time_to_credential_ms = Percentiles::of(&waits);
        println!(
            "   {}: {:.2} Graph writes, {:.2} reads per lifecycle; time to credential p50 {:.0} ms, p99 {:.0} ms",
            cost.option,
            cost.graph_writes,
            cost.graph_reads,
            cost.time_to_credential_ms.p50,
            cost.time_to_credential_ms.p99
        );
        costs.push(cost);
    }
    operator.terminate();
    costs
}

/// One lifecycle; its time to credential in milliseconds.
async fn lifecycle(
    lab: &Lab,
    emulator: &Emulator,
    tracker: &Tracker,
    pool: &str,
    option: &EndOption,
    n: usize,
) -> f64 {
    let name = format!("{pool}-{n}");
    let created = std::time::Instant::now();
    let lease = lease_object(&name, pool, json!({ "dynamicSecretRef": { "name": pool } }));
    lab.leases()
        .create(&PostParams::default(), &lease)
        .await
        .expect("the lease is created");
    tracker
        .wait_active(&name, PATIENCE)
        .await
        .expect("the lease is issued");
    let waited = created.elapsed().as_secs_f64() * 1000.0;
    if option.registers_method {
        let index: usize = pool.trim_start_matches("option-").parse().unwrap_or(0);
        emulator
            .register_method(&user_id(index), MethodKind::Fido2)
            .expect("the pool's user exists");
    }
    lab.leases()
        .delete(&name, &DeleteParams::default())
        .await
        .expect("the lease is deleted");
    tracker
        .wait_gone(&name, PATIENCE)
        .await
        .expect("the lease ends");
    waited
}

impl OptionCost {
    fn of(option: &str, lifecycles: usize, before: &Counters, after: &Counters) -> OptionCost {
        let n = lifecycles as f64;
        let by_operation = after
            .by_operation
            .iter()
            .filter(|(operation, _)| operation.is_graph())
            .map(|(operation, count)| {
                let was = before.by_operation.get(operation).copied().unwrap_or(0);
                (format!("{operation:?}"), (count - was) as f64 / n)
            })
            .filter(|(_, per)| *per > 0.0)
            .collect();
        OptionCost {
            option: option.to_owned(),
            lifecycles,
            graph_writes: (after.graph_writes - before.graph_writes) as f64 / n,
            graph_reads: (after.graph_reads - before.graph_reads) as f64 / n,
            time_to_credential_ms: Percentiles::default(),
            by_operation,
        }
    }
}

/// The section of `results.md`: one row per option.
pub fn markdown(costs: &[OptionCost]) -> String {
    use std::fmt::Write;
    let mut out = String::from(
        "### Graph requests per lifecycle, by sign-in option\n\n\
         Sequential lifecycles (issue, active, delete, gone) on one-user pools that differ only in \
         `signInMethods`, `disableIdleUsers` and `credentialType`; time to credential from the \
         lease's creation to its Secret, as a watch saw it.\n\n\
         | option | lifecycles | Graph writes | Graph reads | time to credential p50 / p99 | by operation |\n|---|---|---|---|---|---|\n",
    );
    for cost in costs {
        let by_operation: Vec<String> = cost
            .by_operation
            .iter()
            .map(|(operation, per)| format!("{operation} {per:.2}"))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | {:.2} | {:.0} / {:.0} ms | {} |",
            cost.option,
            cost.lifecycles,
            cost.graph_writes,
            cost.graph_reads,
            cost.time_to_credential_ms.p50,
            cost.time_to_credential_ms.p99,
            by_operation.join(", ")
        );
    }
    out
}
