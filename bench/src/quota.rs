//! The Graph quota phase of `make bench` (issue 23, invariant I8): a burst of issues against
//! Entra's write quota scaled down so its floor is computable, while other leases expire and a
//! noisy app's revocations are throttled; then a lease user's restore and rotate loops. Runs its
//! own emulator (with the quota on) and its own operator (told the same budget) in namespaces of
//! its own. Figures only: the targets are judged in `results`.

use std::time::{Duration, Instant};

use entra_emulator::{Bucket, Emulator, Fault, FaultPlan, Operation, Quota};
use entra_operator::api::EntraDynamicSecret;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde::Serialize;
use serde_json::json;

use crate::control_plane::ControlPlane;
use crate::lab::{self, APP_ID, DOMAIN, Lab, lease_object, user_principal_name};
use crate::operator::start_phase_operator;
use crate::stats::Percentiles;
use crate::tracker::Tracker;

const NAMESPACE: &str = "bench-quota";
const OPERATOR_NAMESPACE: &str = "entra-operator-quota";
/// A second app of the tenant, allowed to reset passwords, whose pool a noisy tenant runs.
const NOISY_APP_ID: &str = "5eed0000-0000-4000-8000-00000000a0a0";
/// How long the lease user's restore and rotate loops run: longer than the spacing of forced
/// rotations, so that the first one (due a minute after the continuous lease's issue, at the
/// loops' start) and its retirement land inside the run rather than on its edge.
const LOOP_RUN: Duration = Duration::from_secs(90);
/// The operator's spacing of forced rotations in the loop (the chart's default).
const MIN_FORCED_ROTATION: &str = "1m";

/// How big the phase is.
#[derive(Clone, Debug, Serialize)]
pub struct QuotaSizes {
    pub issues: usize,
    pub expiring: usize,
    pub noisy_revocations: usize,
    /// Writes per app and tenant: `capacity` per `window_seconds`, refilled evenly.
    pub capacity: u32,
    pub window_seconds: u64,
}

impl QuotaSizes {
    pub fn full() -> QuotaSizes {
        QuotaSizes {
            issues: 2_000,
            expiring: 200,
            noisy_revocations: 50,
            capacity: 300,
            window_seconds: 15,
        }
    }

    pub fn small() -> QuotaSizes {
        QuotaSizes {
            issues: 300,
            expiring: 40,
            noisy_revocations: 20,
            capacity: 60,
            window_seconds: 15,
        }
    }

    fn rate(&self) -> f64 {
        f64::from(self.capacity) / self.window_seconds as f64
    }
}

/// What the phase measured.
#[derive(Debug, Default, Serialize)]
pub struct QuotaFigures {
    pub sizes: Option<QuotaSizes>,
    /// From `expiresAt` to the scramble, for the leases that expired during the burst.
    pub expiry_lag_ms: Percentiles,
    /// From the burst's first create until its last lease was Active.
    pub burst_seconds: f64,
    /// Writes Entra accepted from the burst's start until its end (issues, and the ends of the
    /// leases that expired meanwhile), and their floor at the quota's rate.
    pub burst_writes: u64,
    pub burst_floor_seconds: f64,
    /// Answers 429 from the quota, and every answered write, over the whole phase.
    pub quota_throttled: u64,
    pub writes: u64,
    /// Requests of the noisy app that met its injected 429 (a 60 s `Retry-After`).
    pub noisy_refusals: u64,
    /// Whether the noisy app's revocations all ended once it could write again.
    pub noisy_all_ended: bool,
    /// Password writes in [`LOOP_RUN`] of a lease user deleting its Secret every 0.5 s.
    pub restore_loop_writes: u64,
    pub restore_loop_deletions: u64,
    /// Password writes in [`LOOP_RUN`] of a lease user asking a continuous lease (overlap 1 s)
    /// to rotate every second.
    pub rotate_loop_writes: u64,
    pub rotate_loop_requests: u64,
    pub loop_seconds: f64,
    pub notes: Vec<String>,
}

impl QuotaFigures {
    pub fn throttled_percent(&self) -> f64 {
        if self.writes == 0 {
            return 0.0;
        }
        100.0 * self.quota_throttled as f64 / self.writes as f64
    }

    /// Password writes per lease per minute in each loop.
    pub fn loop_writes_per_minute(&self) -> (f64, f64) {
        let minutes = self.loop_seconds / 60.0;
        if minutes <= 0.0 {
            return (0.0, 0.0);
        }
        (
            self.restore_loop_writes as f64 / minutes,
            self.rotate_loop_writes as f64 / minutes,
        )
    }
}

/// Users: the burst's, then the expiring leases', the noisy pool's, and four for the loops.
struct Layout {
    expiring: std::ops::Range<usize>,
    noisy: std::ops::Range<usize>,
    loops: std::ops::Range<usize>,
}

impl Layout {
    fn of(sizes: &QuotaSizes) -> Layout {
        let expiring = sizes.issues..sizes.issues + sizes.expiring;
        let noisy = expiring.end..expiring.end + sizes.noisy_revocations;
        let loops = noisy.end..noisy.end + 4;
        Layout {
            expiring,
            noisy,
            loops,
        }
    }

    fn users(&self) -> usize {
        self.loops.end
    }
}

pub async fn measure(
    control_plane: &ControlPlane,
    sizes: QuotaSizes,
    log: std::path::PathBuf,
) -> QuotaFigures {
    let layout = Layout::of(&sizes);
    let config = lab::tenant_with_second_app(layout.users(), NOISY_APP_ID);
    let emulator = Emulator::start(config).await.expect("the emulator starts");
    emulator.set_faults(
        FaultPlan::default().with_latency(Duration::from_millis(40), Duration::from_millis(20)),
    );
    let extra = vec![
        format!(
            "--graph-app-tenant-writes={}/{}s",
            sizes.capacity, sizes.window_seconds
        ),
        format!("--min-forced-rotation-interval={MIN_FORCED_ROTATION}"),
    ];
    let namespaces = (NAMESPACE, OPERATOR_NAMESPACE);
    let (lab, mut operator) =
        start_phase_operator(control_plane, &emulator, namespaces, 30, &extra, log).await;
    let mut phase = Phase {
        lab,
        emulator,
        sizes,
        layout,
        figures: QuotaFigures::default(),
    };
    phase.create_pools().await;
    let tracker = Tracker::start(&phase.lab).await;
    phase.burst(&tracker).await;
    phase.loops(&tracker).await;
    operator.terminate();
    phase.figures.sizes = Some(phase.sizes.clone());
    phase.figures
}

struct Phase {
    lab: Lab,
    emulator: Emulator,
    sizes: QuotaSizes,
    layout: Layout,
    figures: QuotaFigures,
}

impl Phase {
    async fn create_pools(&self) {
        self.lab.create_client_secret().await;
        let mut names = Vec::new();
        for (i, start) in (0..self.sizes.issues)
            .step_by(lab::MAX_POOL_USERS)
            .enumerate()
        {
            let end = (start + lab::MAX_POOL_USERS).min(self.sizes.issues);
            let name = format!("burst-{i}");
            self.lab
                .create_pool(&name, start..end, "1h", "24h", true)
                .await;
            names.push(name);
        }
        self.lab
            .create_pool("expiring", self.layout.expiring.clone(), "1h", "24h", true)
            .await;
        self.lab
            .create_pool("loops", self.layout.loops.clone(), "1h", "24h", true)
            .await;
        let upns: Vec<String> = self.layout.noisy.clone().map(user_principal_name).collect();
        let noisy: EntraDynamicSecret = serde_json::from_value(json!({
            "apiVersion": "kms.hanzo.ai/v1alpha1",
            "kind": "EntraDynamicSecret",
            "metadata": { "name": "noisy" },
            "spec": {
                "tenantId": DOMAIN,
                "applicationId": NOISY_APP_ID,
                "clientSecretRef": { "name": lab::CLIENT_SECRET_NAME },
                "users": upns,
                "defaultTTL": "1h",
                "maxTTL": "24h",
            }
        }))
        .unwrap();
        self.lab
            .pools()
            .create(&PostParams::default(), &noisy)
            .await
            .expect("the noisy pool is created");
        names.extend(["expiring".into(), "loops".into(), "noisy".into()]);
        self.lab
            .wait_pools_ready(&names, Duration::from_secs(900))
            .await
            .expect("the quota phase's pools become ready");
    }

    /// Creates leases `prefix-0..count` concurrently; their names.
    async fn create(
        &self,
        prefix: &str,
        count: usize,
        spec: impl Fn(usize) -> (String, serde_json::Value),
    ) -> Vec<String> {
        futures::stream::iter(0..count)
            .map(|i| {
                let name = format!("{prefix}-{i}");
                let (pool, spec) = spec(i);
                let lease = lease_object(&name, &pool, spec);
                let api = self.lab.leases();
                async move {
                    api.create(&PostParams::default(), &lease)
                        .await
                        .expect("the lease is created");
                    name
                }
            })
            .buffer_unordered(64)
            .collect()
            .await
    }

    async fn burst(&mut self, tracker: &Tracker) {
        let sizes = self.sizes.clone();
        // The noisy app's leases, issued before the quota is on.
        let noisy = self
            .create("noisy", sizes.noisy_revocations, |_| {
                ("noisy".into(), json!({}))
            })
            .await;
        wait_active(tracker, &noisy).await;
        self.emulator.set_quota(Some(Quota {
            app_tenant_writes: Some(Bucket::new(
                sizes.capacity,
                Duration::from_secs(sizes.window_seconds),
            )),
            ..Quota::default()
        }));
        let before = self.emulator.counters();

        // Leases that expire during the burst, spread over its first three quarters: their
        // issues fit in the full bucket, and each end costs two writes.
        let floor = sizes.issues as f64 / sizes.rate();
        let first_ttl = 40.0;
        let spread = floor * 0.75;
        let expiring = self
            .create("expiring", sizes.expiring, |i| {
                let ttl = first_ttl + spread * i as f64 / sizes.expiring as f64;
                (
                    "expiring".into(),
                    json!({ "ttl": format!("{}s", ttl as u64) }),
                )
            })
            .await;
        wait_active(tracker, &expiring).await;
        // The noisy app is throttled for a minute at a time, and its leases are deleted.
        self.emulator.set_app_faults(
            NOISY_APP_ID,
            FaultPlan::random(1.0, [Fault::throttle(Some("60"))]).only(Operation::GRAPH),
        );
        for name in &noisy {
            self.lab
                .leases()
                .delete(name, &DeleteParams::default())
                .await
                .expect("the noisy lease is deleted");
        }

        println!(
            "   {} issues against {} writes / {} s while {} leases expire and {} revocations of a throttled app wait",
            sizes.issues,
            sizes.capacity,
            sizes.window_seconds,
            sizes.expiring,
            sizes.noisy_revocations
        );
        let started = Instant::now();
        let written_before = self.accepted_writes();
        let per_pool = lab::MAX_POOL_USERS;
        let burst = self
            .create("burst", sizes.issues, |i| {
                (format!("burst-{}", i / per_pool), json!({}))
            })
            .await;
        let last_active = wait_active(tracker, &burst).await;
        self.figures.burst_seconds = (last_active.max(started) - started).as_secs_f64();
        self.figures.burst_writes = self.accepted_writes() - written_before;
        self.figures.burst_floor_seconds = self.figures.burst_writes as f64 / sizes.rate();

        // Every expiring lease ends; their lag from expiresAt to the scramble.
        let gone = tracker
            .wait_for(Duration::from_secs(600), |t| {
                expiring
                    .iter()
                    .all(|n| t.leases.get(n).is_some_and(|l| l.gone_at.is_some()))
                    .then_some(())
            })
            .await;
        if gone.is_none() {
            self.figures
                .notes
                .push("not every expiring lease ended within 10 minutes".into());
        }
        let mut lags = Vec::new();
        for name in &expiring {
            let Some(track) = tracker.lease(name) else {
                continue;
            };
            let (Some(expires_at), Some(id)) = (track.expires_at, track.user_id) else {
                continue;
            };
            if let Some(scrambled) = self
                .emulator
                .user(&id)
                .and_then(|u| u.password_last_set_date_time)
            {
                lags.push((scrambled.as_millisecond() - expires_at.as_millisecond()) as f64);
            }
        }
        self.figures.expiry_lag_ms = Percentiles::of(&lags);

        let after = self.emulator.counters();
        self.figures.quota_throttled = after.quota_throttled() - before.quota_throttled();
        self.figures.writes = after.writes_for_app(APP_ID) - before.writes_for_app(APP_ID);
        self.figures.noisy_refusals = after.fault("throttle") - before.fault("throttle");
        self.emulator.clear_app_faults(NOISY_APP_ID);
        let noisy_gone = tracker
            .wait_for(Duration::from_secs(300), |t| {
                noisy
                    .iter()
                    .all(|n| t.leases.get(n).is_some_and(|l| l.gone_at.is_some()))
                    .then_some(())
            })
            .await;
        self.figures.noisy_all_ended = noisy_gone.is_some();
        let f = &self.figures;
        println!(
            "   expirations scrambled: lag p50 {:.0} ms, p99 {:.0} ms; burst {:.1} s for {} writes (floor {:.1} s); {} answers 429 of {} writes ({:.2} %); noisy app refused {} times",
            f.expiry_lag_ms.p50,
            f.expiry_lag_ms.p99,
            f.burst_seconds,
            f.burst_writes,
            f.burst_floor_seconds,
            f.quota_throttled,
            f.writes,
            f.throttled_percent(),
            f.noisy_refusals,
        );
        futures::stream::iter(&burst)
            .for_each_concurrent(64, |name| {
                let api = self.lab.leases();
                async move {
                    api.delete(name, &DeleteParams::default()).await.ok();
                }
            })
            .await;
        self.emulator.set_quota(None);
        // Their ends come first in the app's line, before any restore or rotation: the loops
        // start once they are done, or they would measure the wait instead of the budgets.
        let drained = tracker
            .wait_for(Duration::from_secs(900), |t| {
                burst
                    .iter()
                    .all(|n| t.leases.get(n).is_some_and(|l| l.gone_at.is_some()))
                    .then_some(())
            })
            .await;
        if drained.is_none() {
            self.figures.notes.push(
                "the burst's leases had not all ended 15 minutes after their deletion".into(),
            );
        }
    }

    /// Writes Entra accepted from the operator's app (answered, and not refused by the quota).
    fn accepted_writes(&self) -> u64 {
        let counters = self.emulator.counters();
        counters.writes_for_app(APP_ID) - counters.quota_throttled_for_app(APP_ID)
    }

    /// A lease user's loops: the Secret deleted every 0.5 s, and a rotate request every second
    /// on a continuous lease with a 1 s overlap, side by side for [`LOOP_RUN`].
    async fn loops(&mut self, tracker: &Tracker) {
        let restored = self
            .create("restore-loop", 1, |_| ("loops".into(), json!({})))
            .await;
        let rotating = self
            .create("rotate-loop", 1, |_| {
                (
                    "loops".into(),
                    json!({ "rotation": { "enabled": true, "overlap": "1s" } }),
                )
            })
            .await;
        wait_active(tracker, &restored).await;
        wait_active(tracker, &rotating).await;
        let ids: Vec<String> = self.layout.loops.clone().map(lab::user_id).collect();
        let restore_id = tracker.lease(&restored[0]).and_then(|t| t.user_id);
        let password_writes = |emulator: &Emulator, only: Option<&str>| -> u64 {
            emulator
                .requests()
                .iter()
                .filter(|r| r.operation == Some(Operation::SetPassword))
                .filter(|r| match only {
                    Some(id) => r.path.contains(id),
                    None => ids.iter().any(|id| r.path.contains(id.as_str())),
                })
                .count() as u64
        };
        // The request log is a ring: counted from empty, it holds the whole loop.
        self.emulator.clear_requests();
        println!(
            "   a lease user deletes its Secret every 0.5 s and asks for a rotation every second, for {LOOP_RUN:?}"
        );
        let secrets: Api<Secret> = self.lab.secrets();
        let secret_name = format!("entra-{}", restored[0]);
        let started = Instant::now();
        let mut next_rotate = started;
        while started.elapsed() < LOOP_RUN {
            if secrets
                .delete(&secret_name, &DeleteParams::default())
                .await
                .is_ok()
            {
                self.figures.restore_loop_deletions += 1;
            }
            if Instant::now() >= next_rotate {
                self.figures.rotate_loop_requests += 1;
                let patch = json!({ "metadata": { "annotations": {
                    "kms.hanzo.ai/rotate": format!("r{}", self.figures.rotate_loop_requests)
                } } });
                self.lab
                    .leases()
                    .patch(&rotating[0], &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .ok();
                next_rotate += Duration::from_secs(1);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.figures.loop_seconds = started.elapsed().as_secs_f64();
        let restore_writes = password_writes(&self.emulator, restore_id.as_deref());
        let all_writes = password_writes(&self.emulator, None);
        self.figures.restore_loop_writes = restore_writes;
        self.figures.rotate_loop_writes = all_writes.saturating_sub(restore_writes);
        let (restore, rotate) = self.figures.loop_writes_per_minute();
        println!(
            "   restore loop: {} deletions, {restore:.1} password writes per minute; rotate loop: {} requests, {rotate:.1} password writes per minute",
            self.figures.restore_loop_deletions, self.figures.rotate_loop_requests
        );
        for name in restored.iter().chain(&rotating) {
            self.lab
                .leases()
                .delete(name, &DeleteParams::default())
                .await
                .ok();
        }
    }
}

/// Waits until every lease of `names` has been Active; when the last one became Active.
async fn wait_active(tracker: &Tracker, names: &[String]) -> Instant {
    tracker
        .wait_for(Duration::from_secs(1800), |t| {
            names
                .iter()
                .all(|n| t.leases.get(n).is_some_and(|l| l.active_at.is_some()))
                .then_some(())
        })
        .await;
    names
        .iter()
        .filter_map(|n| tracker.lease(n)?.active_at)
        .max()
        .unwrap_or_else(Instant::now)
}

impl QuotaFigures {
    /// The issue's aims, as (target, measured, met); none when the phase did not run.
    pub fn targets(&self) -> Vec<(String, String, bool)> {
        let Some(sizes) = &self.sizes else {
            return Vec::new();
        };
        let quota = format!("{} writes / {} s", sizes.capacity, sizes.window_seconds);
        let (restore, rotate) = self.loop_writes_per_minute();
        // What the budgets allow in the loops' run: a restore at once, then a scramble and a
        // restore per 30 s of backoff; a forced rotation per minute, each a new password and the
        // old one's scramble (one more rotation at the run's edge).
        let seconds = self.loop_seconds as u64;
        let restore_bound = 1 + 2 * (seconds / 30);
        let rotate_bound = 2 * (seconds / 60 + 1);
        vec![
            (
                format!("under a quota of {quota}: expirations scrambled with lag p99 < 2 s"),
                format!(
                    "p99 {:.0} ms over {} leases (max {:.0} ms)",
                    self.expiry_lag_ms.p99, self.expiry_lag_ms.count, self.expiry_lag_ms.max
                ),
                self.expiry_lag_ms.count > 0 && self.expiry_lag_ms.p99 < 2000.0,
            ),
            (
                format!(
                    "a burst of {} issues done within 10 % of its floor (writes / rate)",
                    sizes.issues
                ),
                format!(
                    "{:.1} s for {} writes, floor {:.1} s ({:+.1} %)",
                    self.burst_seconds,
                    self.burst_writes,
                    self.burst_floor_seconds,
                    100.0 * (self.burst_seconds / self.burst_floor_seconds.max(f64::EPSILON) - 1.0)
                ),
                self.burst_seconds <= 1.1 * self.burst_floor_seconds,
            ),
            (
                "answers 429 under 1 % of writes".into(),
                format!(
                    "{} of {} ({:.2} %)",
                    self.quota_throttled,
                    self.writes,
                    self.throttled_percent()
                ),
                self.writes > 0 && self.throttled_percent() < 1.0,
            ),
            (
                "a throttled app's revocations end once it can write again".into(),
                format!(
                    "{} revocations, {} requests refused with Retry-After 60 s, all ended: {}",
                    sizes.noisy_revocations, self.noisy_refusals, self.noisy_all_ended
                ),
                self.noisy_all_ended,
            ),
            (
                "a lease user's loops: a restore at once then at most one per 30 s (each after a \
                 scramble); at most one forced rotation per minute (two writes each)"
                    .into(),
                format!(
                    "restore loop {} writes ({restore:.1}/min, {} deletions, at most {restore_bound}), \
                     rotate loop {} writes ({rotate:.1}/min, {} requests, at most {rotate_bound})",
                    self.restore_loop_writes,
                    self.restore_loop_deletions,
                    self.rotate_loop_writes,
                    self.rotate_loop_requests
                ),
                // The loops were answered (a restore, a rotation), and within their budgets.
                self.restore_loop_writes >= 1
                    && self.rotate_loop_writes >= 2
                    && self.restore_loop_writes <= restore_bound
                    && self.rotate_loop_writes <= rotate_bound,
            ),
        ]
    }

    pub fn markdown(&self) -> String {
        let Some(sizes) = &self.sizes else {
            return String::new();
        };
        let (restore, rotate) = self.loop_writes_per_minute();
        let l = &self.expiry_lag_ms;
        let mut out = format!(
            "### Graph quota\n\nThe emulator's quota: {} writes per {} s per app and tenant, refilled \
             evenly (Entra's shape, scaled down); the operator is told the same budget \
             (`--graph-app-tenant-writes`). {} issues are created at once while {} other leases \
             expire and {} revocations of another app wait out a 429 with `Retry-After: 60`.\n\n\
             - expirations: lag from `expiresAt` to the scramble p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms\n\
             - the burst: last lease Active after {:.1} s; Entra accepted {} writes meanwhile, a \
             floor of {:.1} s at the quota's rate\n\
             - answers 429: {} of {} writes ({:.2} %)\n\
             - the throttled app: {} requests refused, every revocation ended afterwards: {}\n",
            sizes.capacity,
            sizes.window_seconds,
            sizes.issues,
            sizes.expiring,
            sizes.noisy_revocations,
            l.p50,
            l.p99,
            l.max,
            self.burst_seconds,
            self.burst_writes,
            self.burst_floor_seconds,
            self.quota_throttled,
            self.writes,
            self.throttled_percent(),
            self.noisy_refusals,
            self.noisy_all_ended,
        );
        out.push_str(&format!(
            "- a lease user's loops for {:.0} s (forced rotations at most every {MIN_FORCED_ROTATION}): \
             the Secret deleted every 0.5 s ({} deletions) cost {} password writes ({restore:.1} per \
             minute); a rotate request every second on a continuous lease with a 1 s overlap ({} \
             requests) cost {} ({rotate:.1} per minute, two per rotation)\n",
            self.loop_seconds,
            self.restore_loop_deletions,
            self.restore_loop_writes,
            self.rotate_loop_requests,
            self.rotate_loop_writes,
        ));
        for note in &self.notes {
            out.push_str(&format!("- note: {note}\n"));
        }
        out
    }
}
