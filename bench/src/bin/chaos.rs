//! `make chaos`: every fault-injection scenario at full size against the release operator, each
//! printing its lifecycles, the faults injected and the invariant violations found. Exits non-zero
//! when any scenario found a violation.
//!
//! `chaos [--subset] [scenario...]` where a scenario is one of kill, faults, outage, apiserver,
//! contention, hostile, continuous, noisy (default: all); `--subset` runs the sizes of `tests/chaos.rs`.
//! `CHAOS_SEED=<n>` replays the hostile scenario's random choices (each run prints its seed).
//!
//! Each scenario's operator keeps its claims and credential copies in a namespace of its own
//! (`<scenario namespace>-operator`), as the chart deploys it: the scenario's tenant never
//! touches the operator's record.

use std::process::ExitCode;

use entra_bench::lab::{Lab, tenant, tenant_with_decoy, tenant_with_second_app};
use entra_bench::noisy;
use entra_bench::operator::{OperatorFlags, OperatorRun};
use entra_bench::rotation;
use entra_bench::scenarios::{self, ApiServerHandle, ScenarioReport, Sizes, World};
use entra_bench::setup;
use entra_emulator::Emulator;

const SCENARIOS: [&str; 8] = [
    "kill",
    "faults",
    "outage",
    "apiserver",
    "contention",
    "hostile",
    "continuous",
    "noisy",
];

fn main() -> ExitCode {
    setup::locate_control_plane();
    entra_operator::tls::install_crypto_provider();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let subset = args.iter().any(|a| a == "--subset");
    args.retain(|a| a != "--subset");
    if let Some(unknown) = args.iter().find(|a| !SCENARIOS.contains(&a.as_str())) {
        eprintln!("unknown scenario {unknown}; choose from {SCENARIOS:?}");
        return ExitCode::FAILURE;
    }
    let chosen: Vec<&str> = if args.is_empty() {
        SCENARIOS.to_vec()
    } else {
        SCENARIOS
            .iter()
            .copied()
            .filter(|s| args.iter().any(|a| a == s))
            .collect()
    };
    let sizes = if subset {
        Sizes::subset()
    } else {
        Sizes::full()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let reports = runtime.block_on(run(&chosen, &sizes));
    println!("\n== chaos summary");
    let mut violations = 0;
    for report in &reports {
        println!(
            "   {:<40} lifecycles {:>4}  faults {:>5}  violations {}",
            report.name,
            report.lifecycles,
            report.faults.values().sum::<u64>(),
            report.violations.len()
        );
        violations += report.violations.len();
    }
    if violations == 0 {
        ExitCode::SUCCESS
    } else {
        println!("   {violations} invariant violations");
        ExitCode::FAILURE
    }
}

async fn run(chosen: &[&str], sizes: &Sizes) -> Vec<ScenarioReport> {
    let logs = setup::log_dir("chaos");
    println!(
        ">> starting the local control plane; logs in {}",
        logs.display()
    );
    let control_plane = setup::start_control_plane();
    let client = control_plane.client().await;
    let mut apiserver = ApiServerHandle::of(&control_plane.pids());
    let mut reports = Vec::new();
    for name in chosen {
        let namespace = format!("chaos-{name}");
        let operator_namespace = format!("{namespace}-operator");
        Lab::ensure_namespace(&client, &namespace).await;
        Lab::ensure_namespace(&client, &operator_namespace).await;
        let lab = Lab {
            client: client.clone(),
            namespace: namespace.clone(),
            claims_namespace: operator_namespace.clone(),
        };
        // The hostile scenario re-points pools at a second tenant with the same app; the noisy
        // neighbour has an app of its own, and a namespace of its own the operator serves too.
        let (config, served, extra_args) = match *name {
            "hostile" => (tenant_with_decoy(256), namespace.clone(), Vec::new()),
            "noisy" => (
                tenant_with_second_app(256, noisy::NOISY_APP_ID),
                format!("{namespace},{}", noisy::neighbour_namespace(&namespace)),
                noisy::operator_flags(),
            ),
            _ => (tenant(256), namespace.clone(), Vec::new()),
        };
        let emulator = Emulator::start(config).await.expect("the emulator starts");
        let graph_url = emulator.base_url();
        let mut operator = OperatorRun::start(
            &OperatorFlags {
                kubeconfig: &control_plane.kubeconfig,
                graph_url: &graph_url,
                namespace: Some(&served),
                operator_namespace: &operator_namespace,
                graph_retry_seconds: 30,
                concurrency: 16,
                log_level: "info",
                extra_args: &extra_args,
            },
            logs.join(format!("operator-{name}.log")),
        );
        println!(">> scenario {name}");
        let mut world = World {
            lab,
            emulator: &emulator,
            operator: &mut operator,
        };
        let report = match *name {
            "kill" => scenarios::operator_killed(&mut world, sizes).await,
            "faults" => scenarios::graph_faults(&mut world, sizes).await,
            "outage" => scenarios::graph_outage(&mut world, sizes).await,
            "apiserver" => scenarios::apiserver_restarted(&mut world, &mut apiserver, sizes).await,
            "contention" => scenarios::contention(&mut world, sizes).await,
            "continuous" => rotation::continuous_killed(&mut world, sizes).await,
            "noisy" => noisy::noisy_neighbour(&mut world, sizes).await,
            _ => scenarios::hostile(&mut world, sizes).await,
        };
        report.print();
        reports.push(report);
        operator.terminate();
        emulator.shutdown().await;
    }
    // The control plane's directory goes with it: keep the API server's log of the restart.
    if let Some(restarted) = &apiserver.restarted {
        let _ = std::fs::copy(restarted.log(), logs.join("kube-apiserver.log"));
    }
    drop(apiserver);
    reports
}
