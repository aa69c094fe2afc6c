//! The noisy-neighbour chaos scenario (issue 23, invariant I8): lifecycles of every kind on the
//! operator's app under a scaled-down write quota, while a neighbour namespace's pool runs on its
//! own app, which Entra throttles with a minute to wait, and churns leases on it. The lifecycles
//! are audited with a lag bound far below the neighbour's pause: its trouble must not reach them.
//! The neighbour's leases end once its app may write again, and are audited then.

use std::cell::Cell;
use std::time::{Duration, Instant};

use entra_emulator::{Bucket, Fault, FaultPlan, Operation, Quota};
use entra_operator::api::EntraDynamicSecret;
use futures::StreamExt;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

use crate::audit::Auditor;
use crate::lab::{self, DOMAIN, Lab, lease_object, user_principal_name};
use crate::scenarios::{
    Driver, ScenarioReport, Sizes, World, audit_while, conclude, drive, mixed_kind, prepare_pool,
};
use crate::tracker::Tracker;

/// The neighbour's own app in the scenario's tenant ([`lab::tenant_with_second_app`]).
pub const NOISY_APP_ID: &str = "5eed0000-0000-4000-8000-00000000a0a0";
/// The write quota per app and tenant, in the emulator and in the operator's flags.
pub const WRITES: (u32, u64) = (60, 15);
/// How late a credential of the healthy app may end: far below the neighbour's 60 s pause.
const LAG_BOUND: Duration = Duration::from_secs(10);
/// The neighbour's users come after the healthy pool's.
const NEIGHBOUR_USERS: std::ops::Range<usize> = 200..256;

/// The operator's extra flags for this scenario: the quota it shares with Entra.
pub fn operator_flags() -> Vec<String> {
    vec![format!(
        "--graph-app-tenant-writes={}/{}s",
        WRITES.0, WRITES.1
    )]
}

/// The neighbour's namespace beside the scenario's.
pub fn neighbour_namespace(namespace: &str) -> String {
    format!("{namespace}-neighbour")
}

pub async fn noisy_neighbour(world: &mut World<'_>, sizes: &Sizes) -> ScenarioReport {
    let started = Instant::now();
    let mut report = ScenarioReport {
        name: format!("noisy neighbour under {} writes / {} s", WRITES.0, WRITES.1),
        ..Default::default()
    };
    prepare_pool(world, "healthy", sizes.noisy_concurrency + 4, "4s", "12s").await;
    let neighbour = Lab {
        client: world.lab.client.clone(),
        namespace: neighbour_namespace(&world.lab.namespace),
        claims_namespace: world.lab.claims_namespace.clone(),
    };
    create_neighbour_pool(&neighbour).await;
    let tracker = Tracker::start(&world.lab).await;
    let neighbour_tracker = Tracker::start(&neighbour).await;

    // The neighbour holds leases on its app; then Entra throttles that app for good measure.
    let held: Vec<String> = (0..sizes.noisy_neighbour_leases)
        .map(|i| format!("held-{i}"))
        .collect();
    create_all(&neighbour, &held).await;
    for name in &held {
        if neighbour_tracker
            .wait_active(name, Duration::from_secs(120))
            .await
            .is_none()
        {
            report
                .violations
                .push(format!("the neighbour's {name} was never issued"));
        }
    }
    world.emulator.reset_counters();
    world.emulator.set_quota(Some(Quota {
        app_tenant_writes: Some(Bucket::new(WRITES.0, Duration::from_secs(WRITES.1))),
        ..Quota::default()
    }));
    world.emulator.set_app_faults(
        NOISY_APP_ID,
        FaultPlan::random(1.0, [Fault::throttle(Some("60"))]).only(Operation::GRAPH),
    );
    // Its leases are deleted (revocations that must wait), and more are asked for (issues that
    // must wait), while the healthy app's lifecycles run.
    for name in &held {
        let _ = neighbour
            .leases()
            .delete(name, &DeleteParams::default())
            .await;
    }
    let asked: Vec<String> = (0..sizes.noisy_neighbour_leases / 2)
        .map(|i| format!("asked-{i}"))
        .collect();
    create_all(&neighbour, &asked).await;

    let driver = Driver {
        lab: &world.lab,
        tracker: &tracker,
        pool: "healthy",
        patience: Duration::from_secs(180),
        hostile: None,
    };
    let mut auditor = Auditor::new(LAG_BOUND);
    let done = Cell::new(false);
    let (outcomes, ()) = tokio::join!(
        async {
            let outcomes = drive(
                &driver,
                "healthy",
                sizes.noisy_lifecycles,
                sizes.noisy_concurrency,
                |_| mixed_kind(),
            )
            .await;
            done.set(true);
            outcomes
        },
        audit_while(&mut auditor, &world.lab, world.emulator, &tracker, &done),
    );
    let counters = world.emulator.counters();
    let refused_noisy = counters.fault("throttle");
    let quota_refused = counters.quota_throttled();
    let writes = counters.writes_for_app(lab::APP_ID);
    report.faults.insert("throttled app".into(), refused_noisy);
    report.faults.insert("quota 429".into(), quota_refused);
    report.notes.push(format!(
        "the healthy app: {quota_refused} answers 429 of {writes} writes; the neighbour's app \
         refused {refused_noisy} times with Retry-After 60 s"
    ));

    // The neighbour's app may write again: its revocations end, its issues go on.
    world.emulator.clear_app_faults(NOISY_APP_ID);
    let back = Timestamp::now() + SignedDuration::from_secs(60);
    for name in &asked {
        let _ = neighbour
            .leases()
            .delete(name, &DeleteParams::default())
            .await;
    }
    let all: Vec<&String> = held.iter().chain(&asked).collect();
    let waited = Instant::now();
    let ended = neighbour_tracker
        .wait_for(Duration::from_secs(300), |t| {
            all.iter()
                .all(|n| t.leases.get(*n).is_none_or(|l| l.gone_at.is_some()))
                .then_some(())
        })
        .await;
    match ended {
        Some(()) => report.notes.push(format!(
            "the neighbour's {} leases ended {:.0} s after its app could write again",
            all.len(),
            waited.elapsed().as_secs_f64()
        )),
        None => report.violations.push(
            "the neighbour's leases were not all ended within 300 s of its app writing again"
                .into(),
        ),
    }
    let mut neighbour_auditor = Auditor::new(LAG_BOUND);
    neighbour_auditor.graph_back_at = Some(back);
    neighbour_auditor
        .final_check(&neighbour, &neighbour_tracker, world.emulator)
        .await;
    report.violations.extend(
        neighbour_auditor
            .violations
            .into_iter()
            .map(|v| format!("neighbour: {v}")),
    );
    world.emulator.set_quota(None);
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

/// The neighbour's pool editor: the app's client secret and a pool on its own app.
async fn create_neighbour_pool(neighbour: &Lab) {
    Lab::ensure_namespace(&neighbour.client, &neighbour.namespace).await;
    neighbour.create_client_secret().await;
    let users: Vec<String> = NEIGHBOUR_USERS.map(user_principal_name).collect();
    let pool: EntraDynamicSecret = serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraDynamicSecret",
        "metadata": { "name": "noisy" },
        "spec": {
            "tenantId": DOMAIN,
            "applicationId": NOISY_APP_ID,
            "clientSecretRef": { "name": lab::CLIENT_SECRET_NAME },
            "users": users,
            "defaultTTL": "1h",
            "maxTTL": "2h",
        }
    }))
    .unwrap();
    match neighbour
        .pools()
        .create(&PostParams::default(), &pool)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => panic!("the neighbour's pool: {error}"),
    }
    neighbour
        .wait_pools_ready(&["noisy".to_owned()], Duration::from_secs(120))
        .await
        .expect("the neighbour's pool becomes ready");
}

async fn create_all(lab: &Lab, names: &[String]) {
    futures::stream::iter(names)
        .for_each_concurrent(16, |name| {
            let lease = lease_object(name, "noisy", json!({}));
            let api = lab.leases();
            async move {
                api.create(&PostParams::default(), &lease)
                    .await
                    .expect("the neighbour's lease is created");
            }
        })
        .await;
}
