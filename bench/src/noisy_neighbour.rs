//! The noisy-neighbour phase of `make bench` (issue 23, invariant I8): a pool in another tenant,
//! on its own app, has its leases deleted while Entra throttles that app (every request answered
//! 429 with `Retry-After: 60`), so its revocations wait; meanwhile leases of the healthy app
//! arrive one by one, are issued and expire. Reported: the healthy leases' time to credential and
//! revocation lag. Runs its own emulator and operator in namespaces of its own.

use std::time::{Duration, Instant};

use entra_emulator::{Emulator, Fault, FaultPlan, Operation};
use entra_operator::api::EntraDynamicSecret;
use futures::StreamExt;
use kube::api::{DeleteParams, PostParams};
use serde::Serialize;
use serde_json::{Value, json};

use crate::control_plane::ControlPlane;
use crate::lab::{self, CLIENT_SECRET, Lab, lease_object, user_id, user_principal_name};
use crate::operator::start_phase_operator;
use crate::stats::Percentiles;
use crate::tracker::Tracker;

const NAMESPACE: &str = "bench-neighbour";
const OPERATOR_NAMESPACE: &str = "entra-operator-neighbour";
const NOISY_TENANT_ID: &str = "70157000-0000-4000-8000-0000000000ee";
const NOISY_APP_ID: &str = "70157000-0000-4000-8000-00000000a0a0";
/// The noisy tenant's users are numbered from here (the healthy tenant's from 0).
const NOISY_FIRST_USER: usize = 1_000;
/// The healthy leases' TTL: they expire while the neighbour's revocations wait.
const HEALTHY_TTL: &str = "10s";
const PATIENCE: Duration = Duration::from_secs(300);
/// The healthy leases arrive one by one, this far apart.
const ARRIVAL: Duration = Duration::from_millis(200);

/// How big the phase is.
#[derive(Clone, Debug, Serialize)]
pub struct NeighbourSizes {
    /// The neighbour's leases, all deleted while its app is throttled.
    pub noisy_revocations: usize,
    /// Leases of the healthy app issued (and expiring) meanwhile.
    pub healthy_leases: usize,
}

/// What the phase measured.
#[derive(Debug, Default, Serialize)]
pub struct NeighbourFigures {
    pub sizes: Option<NeighbourSizes>,
    /// The healthy leases: from creation to Active.
    pub time_to_credential_ms: Percentiles,
    /// The healthy leases: from `expiresAt` to the scramble.
    pub revocation_lag_ms: Percentiles,
    /// Requests of the noisy app answered 429 meanwhile.
    pub noisy_refusals: u64,
    /// Whether every noisy revocation ended once its app could write again.
    pub noisy_all_ended: bool,
}

pub async fn measure(
    control_plane: &ControlPlane,
    sizes: NeighbourSizes,
    log: std::path::PathBuf,
) -> NeighbourFigures {
    let emulator = Emulator::start(config(&sizes))
        .await
        .expect("the emulator starts");
    let namespaces = (NAMESPACE, OPERATOR_NAMESPACE);
    let (lab, mut operator) =
        start_phase_operator(control_plane, &emulator, namespaces, 120, &[], log).await;
    lab.create_client_secret().await;
    lab.create_pool("healthy", 0..sizes.healthy_leases, "1h", "2h", true)
        .await;
    let noisy_users = NOISY_FIRST_USER..NOISY_FIRST_USER + sizes.noisy_revocations;
    create_noisy_pool(&lab, noisy_users).await;
    lab.wait_pools_ready(&["healthy".into(), "noisy".into()], PATIENCE)
        .await
        .expect("both pools are ready");
    let tracker = Tracker::start(&lab).await;
    let mut figures = NeighbourFigures::default();

    let noisy: Vec<String> = (0..sizes.noisy_revocations)
        .map(|i| format!("noisy-{i}"))
        .collect();
    create_all(
        &lab,
        &noisy,
        "noisy",
        json!({ "dynamicSecretRef": { "name": "noisy" } }),
    )
    .await;
    for name in &noisy {
        tracker
            .wait_active(name, PATIENCE)
            .await
            .expect("a neighbour's lease is issued");
    }
    let before = emulator.counters();
    emulator.set_app_faults(
        NOISY_APP_ID,
        FaultPlan::random(1.0, [Fault::throttle(Some("60"))]).only(Operation::GRAPH),
    );
    futures::stream::iter(&noisy)
        .for_each_concurrent(16, |name| async {
            lab.leases()
                .delete(name, &DeleteParams::default())
                .await
                .expect("a neighbour's lease is deleted");
        })
        .await;

    let healthy: Vec<String> = (0..sizes.healthy_leases)
        .map(|i| format!("healthy-{i}"))
        .collect();
    // One healthy lease every ARRIVAL: what each one waits is the neighbour's doing, not a
    // burst's queue (the quota phase measures bursts).
    // Each names its own user, so that a user's last password set is its lease's scramble.
    let mut created = Vec::new();
    for (i, name) in healthy.iter().enumerate() {
        let spec = json!({
            "dynamicSecretRef": { "name": "healthy" },
            "ttl": HEALTHY_TTL,
            "user": user_principal_name(i),
        });
        let lease = lease_object(name, "healthy", spec);
        created.push(Instant::now());
        lab.leases()
            .create(&PostParams::default(), &lease)
            .await
            .expect("a healthy lease is created");
        tokio::time::sleep(ARRIVAL).await;
    }
    let mut waits = Vec::new();
    for (name, created) in healthy.iter().zip(created) {
        if let Some(active) = tracker.wait_active(name, PATIENCE).await {
            waits.push(active.saturating_duration_since(created).as_secs_f64() * 1000.0);
        }
    }
    figures.time_to_credential_ms = Percentiles::of(&waits);
    for name in &healthy {
        let _ = tracker.wait_gone(name, PATIENCE).await;
    }
    let mut lags = Vec::new();
    for name in &healthy {
        let Some(track) = tracker.lease(name) else {
            continue;
        };
        let (Some(expires_at), Some(id)) = (track.expires_at, track.user_id) else {
            continue;
        };
        if let Some(scrambled) = emulator
            .user(&id)
            .and_then(|u| u.password_last_set_date_time)
        {
            lags.push((scrambled.as_millisecond() - expires_at.as_millisecond()) as f64);
        }
    }
    figures.revocation_lag_ms = Percentiles::of(&lags);
    let after = emulator.counters();
    figures.noisy_refusals =
        after.faults.values().sum::<u64>() - before.faults.values().sum::<u64>();

    emulator.clear_app_faults(NOISY_APP_ID);
    let mut ended = true;
    for name in &noisy {
        ended &= tracker.wait_gone(name, PATIENCE).await.is_some();
    }
    figures.noisy_all_ended = ended;
    operator.terminate();
    figures.sizes = Some(sizes);
    figures
}

/// The healthy tenant of [`lab::tenant`], and a second tenant with its own app and users.
fn config(sizes: &NeighbourSizes) -> entra_emulator::Config {
    let mut config = lab::tenant_json(sizes.healthy_leases);
    let users: Vec<Value> = (NOISY_FIRST_USER..NOISY_FIRST_USER + sizes.noisy_revocations)
        .map(|n| {
            let upn = format!("user{n}@neighbour.example");
            json!({ "id": user_id(n), "userPrincipalName": upn })
        })
        .collect();
    config["tenants"].as_array_mut().unwrap().push(json!({
        "id": NOISY_TENANT_ID,
        "apps": [{
            "clientId": NOISY_APP_ID,
            "secrets": [CLIENT_SECRET],
            "permissions": ["User-PasswordProfile.ReadWrite.All", "User.ReadWrite.All"],
            "directoryRoles": ["User Administrator"],
        }],
        "users": users,
    }));
    entra_emulator::Config::from_yaml_str(&config.to_string()).expect("a valid tenant")
}

async fn create_noisy_pool(lab: &Lab, users: std::ops::Range<usize>) {
    let ids: Vec<String> = users.map(user_id).collect();
    let pool: EntraDynamicSecret = serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraDynamicSecret",
        "metadata": { "name": "noisy" },
        "spec": {
            "tenantId": NOISY_TENANT_ID,
            "applicationId": NOISY_APP_ID,
            "clientSecretRef": { "name": lab::CLIENT_SECRET_NAME },
            "users": ids,
            "defaultTTL": "1h",
            "maxTTL": "2h",
        }
    }))
    .unwrap();
    lab.pools()
        .create(&PostParams::default(), &pool)
        .await
        .expect("the neighbour's pool is created");
}

async fn create_all(lab: &Lab, names: &[String], pool: &str, spec: Value) {
    // Concurrently: the neighbour's leases only need to be there.
    futures::stream::iter(names)
        .for_each_concurrent(16, |name| {
            let lease = lease_object(name, pool, spec.clone());
            async move {
                lab.leases()
                    .create(&PostParams::default(), &lease)
                    .await
                    .expect("a lease is created");
            }
        })
        .await;
}

impl NeighbourFigures {
    /// The aims, as (target, measured, met); none when the phase did not run.
    pub fn targets(&self) -> Vec<(String, String, bool)> {
        let Some(sizes) = &self.sizes else {
            return Vec::new();
        };
        let (t, l) = (&self.time_to_credential_ms, &self.revocation_lag_ms);
        vec![
            (
                format!(
                    "with another tenant's app throttled and {} of its revocations pending: the \
                     healthy app's revocation lag p99 < 2 s",
                    sizes.noisy_revocations
                ),
                format!(
                    "p99 {:.0} ms over {} leases (max {:.0} ms)",
                    l.p99, l.count, l.max
                ),
                l.count > 0 && l.p99 < 2000.0,
            ),
            (
                "meanwhile, time to credential p99 < 1 s".into(),
                format!(
                    "p99 {:.0} ms over {} leases (max {:.0} ms)",
                    t.p99, t.count, t.max
                ),
                t.count > 0 && t.p99 < 1000.0,
            ),
            (
                "the throttled app's revocations end once it can write again".into(),
                format!(
                    "{} requests refused with Retry-After 60 s, all ended: {}",
                    self.noisy_refusals, self.noisy_all_ended
                ),
                self.noisy_all_ended,
            ),
        ]
    }
}
