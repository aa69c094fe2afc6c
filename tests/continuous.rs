//! Continuous leases on the local control plane with fake nodes: a lease rotates onto another
//! pool user before each credential's end while the Deployment that reads its Secret rolls, and
//! the previous credential ends only once the new pods are Ready (or when the overlap runs out).
//! A pod auditor follows every pod: the credential it was started for must work for as long as
//! the pod is Ready.

use entra_test_support as support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use entra_emulator::Config;
use entra_operator::api::{CREDENTIAL_GENERATION_ANNOTATION, EntraLease, LeasePhase};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use support::ControlPlane;
use support::lease_env::LeaseEnv;
use support::node_simulation::rolling_deployment;

const ALICE: &str = "alice@contoso.onmicrosoft.com";
const BOB: &str = "bob@contoso.onmicrosoft.com";
const CAROL: &str = "carol@contoso.onmicrosoft.com";

/// Every test of this binary runs on the control plane with fake nodes (one control plane per
/// test binary).
async fn env(prefix: &str) -> LeaseEnv {
    LeaseEnv::start_on(ControlPlane::shared_with_nodes(), prefix, Config::sample()).await
}

#[tokio::test]
async fn a_continuous_lease_rotates_while_its_deployment_rolls_and_no_ready_pod_holds_a_dead_credential()
 {
    let env = env("continuous").await;
    // Each credential lives 16 s at most and rotates 7 s before that; a 3-replica rollout with
    // pods Ready 1 s after they start fits in the overlap.
    env.create_pool("pool", &[ALICE, BOB, CAROL], "16s", "16s")
        .await;
    env.wait_for_ready_pool("pool").await;
    env.create_lease(
        "svc",
        json!({
            "dynamicSecretRef": { "name": "pool" },
            "rotation": { "enabled": true, "overlap": "7s" },
            "rolloutRestartTargets": [{ "kind": "Deployment", "name": "web" }],
        }),
    )
    .await;
    env.wait_for_phase("svc", LeasePhase::Active).await;
    let deployments = Api::<Deployment>::namespaced(env.client.clone(), &env.namespace);
    let pods = Api::<Pod>::namespaced(env.client.clone(), &env.namespace);
    deployments
        .create(
            &PostParams::default(),
            &deployment("web", "entra-svc", 3, "1s"),
        )
        .await
        .expect("the Deployment is created");

    // Follow the lease through three rotations, judging every Ready pod as it goes.
    let mut judge = PodJudge::default();
    let mut overlaps = Overlaps::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let lease = env.lease("svc").await.expect("the lease lives");
        let status = lease.status.clone().unwrap_or_default();
        overlaps.observe(status.previous.is_some());
        judge.round(&env, &pods).await;
        judge.read_secret(&env, "entra-svc").await;
        if status.credential_generation >= Some(4) && status.previous.is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "three rotations within 120 s; the lease shows {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    assert!(
        judge.violations.is_empty(),
        "Ready pods held dead credentials: {:?}",
        judge.violations
    );
    assert_eq!(
        judge.secret_reads_failed, 0,
        "a consumer re-reading the Secret always found a working credential ({} reads)",
        judge.secret_reads
    );
    assert!(
        judge.ready_pods_judged >= 9,
        "pods of every generation were judged ({} pod rounds)",
        judge.ready_pods_judged
    );
    let web = deployments.get("web").await.unwrap();
    let restarted_for = web
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .and_then(|a| a.get(CREDENTIAL_GENERATION_ANNOTATION).cloned());
    assert_eq!(
        restarted_for.as_deref(),
        Some("4"),
        "the Deployment was restarted for the latest credential"
    );
    // The rollouts finished well inside the 7 s overlap: the previous credential ended as soon
    // as the new pods were Ready, not when the overlap ran out.
    println!("overlaps as seen (s): {:?}", overlaps.lengths());
    assert!(
        overlaps
            .lengths()
            .iter()
            .any(|length| *length < Duration::from_millis(6500)),
        "a previous credential ended once the rollout completed: {:?}",
        overlaps.lengths()
    );
    let users: std::collections::BTreeSet<String> = env
        .tracked()
        .passwords
        .keys()
        .map(|(user, _)| user.to_ascii_lowercase())
        .collect();
    assert!(users.len() >= 2, "the lease moved between users: {users:?}");
    assert_eq!(env.violations().await, Vec::<String>::new());
    env.end_lease("svc").await;
    assert_eq!(env.violations().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_stuck_rollout_still_ends_the_previous_credential_when_the_overlap_runs_out() {
    let env = env("stuck-rollout").await;
    env.create_pool("pool", &[ALICE, BOB], "10s", "10s").await;
    env.wait_for_ready_pool("pool").await;
    // Pods of this Deployment never become Ready, so its rollouts never complete; the
    // StatefulSet is replaced only when someone deletes its pods, so it is refused.
    let deployments = Api::<Deployment>::namespaced(env.client.clone(), &env.namespace);
    deployments
        .create(
            &PostParams::default(),
            &deployment("stuck", "entra-svc", 1, "8760h"),
        )
        .await
        .unwrap();
    let sets = Api::<k8s_openapi::api::apps::v1::StatefulSet>::namespaced(
        env.client.clone(),
        &env.namespace,
    );
    sets.create(&PostParams::default(), &on_delete_stateful_set("db"))
        .await
        .unwrap();
    // A workload that does not read the lease's Secret: the operator does not restart it for
    // whoever may edit the lease.
    deployments
        .create(
            &PostParams::default(),
            &deployment("bystander", "other-secret", 1, "1s"),
        )
        .await
        .unwrap();
    env.create_lease(
        "svc",
        json!({
            "dynamicSecretRef": { "name": "pool" },
            "rotation": { "enabled": true, "overlap": "4s" },
            "rolloutRestartTargets": [
                { "kind": "Deployment", "name": "stuck" },
                { "kind": "StatefulSet", "name": "db" },
                { "kind": "Deployment", "name": "bystander" },
            ],
        }),
    )
    .await;
    let first = env.wait_for_phase("svc", LeasePhase::Active).await;
    let secret = first.status.unwrap().secret_name.unwrap();
    let (first_user, first_password) = env.credentials(&secret).await;

    let rotated = env
        .wait_for("the lease to rotate", || async {
            let status = env.lease("svc").await?.status?;
            (status.credential_generation == Some(2)).then_some(status)
        })
        .await;
    let previous = rotated.previous.clone().unwrap_or_else(|| {
        panic!(
            "the previous credential is shown: {rotated:?}\n{}",
            env.operator.logs()
        )
    });
    assert_eq!(previous.user.user_principal_name, first_user);
    assert!(
        env.emulator.sign_in(&first_user, &first_password),
        "the previous credential works during the overlap"
    );
    let refused = env
        .wait_for("the OnDelete StatefulSet to be refused", || async {
            events_with_reason(&env, "RolloutTargetRefused").await.pop()
        })
        .await;
    assert!(
        refused.contains("StatefulSet/db") && refused.contains("OnDelete"),
        "{refused}"
    );
    assert!(
        refused.contains("Deployment/bystander") && refused.contains("does not use Secret"),
        "{refused}"
    );
    // No rollout completes, so the overlap decides: the previous credential dies by its end.
    let overlap_end = previous.expires_at.0;
    env.wait_for("the previous credential to end", || async {
        (!env.emulator.sign_in(&first_user, &first_password)).then_some(())
    })
    .await;
    let late = k8s_openapi::jiff::Timestamp::now().duration_since(overlap_end);
    assert!(
        late.as_secs_f64() < 5.0,
        "the previous credential ended by the overlap's end (plus lag), {late:?} after it"
    );
    let stuck = deployments.get("stuck").await.unwrap();
    assert_eq!(
        stuck
            .spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.annotations)
            .and_then(|a| a.get(CREDENTIAL_GENERATION_ANNOTATION).cloned())
            .as_deref(),
        Some("2"),
        "the Deployment was restarted even though it never completes"
    );
    assert_eq!(env.violations().await, Vec::<String>::new());
    env.end_lease("svc").await;
    assert_eq!(env.violations().await, Vec::<String>::new());
}

#[tokio::test]
async fn two_continuous_leases_on_two_users_wait_their_turn_and_a_third_never_cuts_in() {
    let env = env("two-users").await;
    env.create_pool("pool", &[ALICE, BOB], "12s", "12s").await;
    env.wait_for_ready_pool("pool").await;
    let continuous = json!({
        "dynamicSecretRef": { "name": "pool" },
        "rotation": { "enabled": true, "overlap": "4s" },
    });
    env.create_lease("first", continuous.clone()).await;
    env.wait_for_phase("first", LeasePhase::Active).await;
    env.create_lease("second", continuous).await;
    env.wait_for_phase("second", LeasePhase::Active).await;
    // Both users are held: a plain lease waits, and each continuous lease, due to rotate, says
    // that no other user is free.
    env.create_lease("third", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    for name in ["first", "second"] {
        env.wait_for(
            &format!("{name} to wait for a user to rotate to"),
            || async { ready_reason(&env.lease(name).await?).filter(|r| r == "RotationWaiting") },
        )
        .await;
    }
    assert_eq!(
        env.lease("third").await.and_then(|l| l.status?.phase),
        Some(LeasePhase::Pending)
    );
    assert_eq!(env.violations().await, Vec::<String>::new());
    // The first lease goes: its user goes to the lease waiting to rotate, not to the plain one.
    env.end_lease("first").await;
    env.wait_for("second to rotate onto the freed user", || async {
        let status = env.lease("second").await?.status?;
        (status.credential_generation == Some(2) && status.previous.is_some()).then_some(())
    })
    .await;
    assert_eq!(
        env.lease("third").await.and_then(|l| l.status?.phase),
        Some(LeasePhase::Pending),
        "the plain lease did not cut in"
    );
    // The rotated lease's previous user is released when its overlap ends; the plain lease
    // gets it.
    env.wait_for_phase("third", LeasePhase::Active).await;
    assert_eq!(env.violations().await, Vec::<String>::new());
    // Now no user is free for second's next rotation: its credential ends at its maxTTL and
    // it waits like a new lease, then takes the user the plain lease leaves at its expiry.
    env.wait_for("second's credential to end unrotated", || async {
        events_with_reason(&env, "CredentialEnded").await.pop()
    })
    .await;
    env.wait_until_gone("third").await;
    env.wait_for("second to be issued again", || async {
        let status = env.lease("second").await?.status?;
        (status.phase == Some(LeasePhase::Active) && status.credential_generation >= Some(3))
            .then_some(())
    })
    .await;
    assert_eq!(env.violations().await, Vec::<String>::new());
    env.end_lease("second").await;
    assert_eq!(env.violations().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_rotation_can_be_forced_once_per_overlap_and_renewals_restart_nothing() {
    // Forced rotations once per overlap: the operator's minimum spacing (1 min by default) is
    // set below the 3 s overlap here.
    let env = LeaseEnv::start_with_flags(
        ControlPlane::shared_with_nodes(),
        "forced-rotation",
        Config::sample(),
        vec!["--min-forced-rotation-interval=1s".into()],
    )
    .await;
    env.create_pool("pool", &[ALICE, BOB], "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    env.create_lease(
        "svc",
        json!({
            "dynamicSecretRef": { "name": "pool" },
            "rotation": { "enabled": true, "overlap": "3s" },
        }),
    )
    .await;
    let issued = env.wait_for_phase("svc", LeasePhase::Active).await;
    let status = issued.status.unwrap();
    let secret = status.secret_name.clone().unwrap();
    assert!(
        status.next_rotation_at.is_some(),
        "the next rotation is shown"
    );
    let (first_user, first_password) = env.credentials(&secret).await;
    env.annotate("svc", "kms.hanzo.ai/renew", "1").await;
    env.wait_for("the renewal", || async {
        let status = env.lease("svc").await?.status?;
        (status.renew_count == 1).then_some(())
    })
    .await;
    assert_eq!(
        env.credentials(&secret).await,
        (first_user.clone(), first_password.clone()),
        "a renewal changes no data"
    );
    env.annotate("svc", "kms.hanzo.ai/rotate", "now").await;
    let rotated = env
        .wait_for("the forced rotation", || async {
            let status = env.lease("svc").await?.status?;
            (status.credential_generation == Some(2)).then_some(status)
        })
        .await;
    let (user, password) = env.credentials(&secret).await;
    assert_ne!(user, first_user, "a rotation moves to another user");
    assert!(env.emulator.sign_in(&user, &password));
    let secret_data = env.secrets().get(&secret).await.unwrap().data.unwrap();
    let previous_password = String::from_utf8(secret_data["previousPassword"].0.clone()).unwrap();
    assert_eq!(
        previous_password, first_password,
        "the previous credential is kept"
    );
    assert!(env.emulator.sign_in(&first_user, &first_password));
    assert!(rotated.previous.is_some());
    // Without restart targets only the overlap ends it.
    env.wait_for("the previous credential to end", || async {
        let status = env.lease("svc").await?.status?;
        status.previous.is_none().then_some(())
    })
    .await;
    assert!(!env.emulator.sign_in(&first_user, &first_password));
    let data = env.secrets().get(&secret).await.unwrap().data.unwrap();
    assert!(
        !data.contains_key("previousUsername") && !data.contains_key("previousPassword"),
        "the previous keys are gone with the credential"
    );
    // A second request within the overlap of the last rotation waits for it; one request is
    // answered once.
    env.annotate("svc", "kms.hanzo.ai/rotate", "again").await;
    env.wait_for("the second forced rotation", || async {
        let status = env.lease("svc").await?.status?;
        (status.credential_generation == Some(3)).then_some(())
    })
    .await;
    // The claim records the request as answered, so it rotates nothing more.
    let uid = env.lease("svc").await.unwrap().metadata.uid.unwrap();
    let answered = env
        .wait_for("the request to be recorded", || async {
            let claim = env.tracked().latest_claim(&uid)?.clone();
            (claim.record.generation == 3).then_some(claim.record.last_rotate_request)
        })
        .await;
    assert_eq!(
        answered.as_deref(),
        Some("again"),
        "one request, one rotation"
    );
    assert_eq!(env.violations().await, Vec::<String>::new());
    env.end_lease("svc").await;
    assert_eq!(env.violations().await, Vec::<String>::new());
}

/// Judges Ready pods: each holds the credential of the generation it was started for (its
/// template annotation; the first pods, started before any restart, hold the first one), and
/// that credential must work while the pod is Ready and not being deleted.
#[derive(Default)]
struct PodJudge {
    violations: Vec<String>,
    ready_pods_judged: usize,
    /// Reads of the Secret's default keys, as a consumer with the Secret mounted sees them.
    secret_reads: usize,
    secret_reads_failed: usize,
}

impl PodJudge {
    /// Reads the Secret like a consumer and signs in with its default keys.
    async fn read_secret(&mut self, env: &LeaseEnv, name: &str) {
        let secret = env.secrets().get_opt(name).await.ok().flatten();
        let works = secret
            .as_ref()
            .and_then(support::tracker::credentials)
            .is_some_and(|(user, password)| env.emulator.sign_in(&user, &password));
        self.secret_reads += 1;
        if !works {
            self.secret_reads_failed += 1;
        }
    }

    async fn round(&mut self, env: &LeaseEnv, pods: &Api<Pod>) {
        let tracked = env.tracked();
        let mut by_generation: BTreeMap<u32, Vec<(String, String)>> = BTreeMap::new();
        for ((user, password), (_, generation)) in &tracked.passwords {
            by_generation
                .entry(*generation)
                .or_default()
                .push((user.clone(), password.clone()));
        }
        let Ok(listed) = pods.list(&ListParams::default()).await else {
            return;
        };
        for pod in listed.items {
            if pod.metadata.deletion_timestamp.is_some() || !is_ready(&pod) {
                continue;
            }
            let generation = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CREDENTIAL_GENERATION_ANNOTATION))
                .and_then(|g| g.parse().ok())
                .unwrap_or(1u32);
            let Some(credentials) = by_generation.get(&generation) else {
                continue;
            };
            self.ready_pods_judged += 1;
            let works = credentials
                .iter()
                .any(|(user, password)| env.emulator.sign_in(user, password));
            if !works {
                self.violations.push(format!(
                    "pod {} is Ready with the dead credential of generation {generation}",
                    pod.metadata.name.unwrap_or_default()
                ));
            }
        }
    }
}

/// How long each previous credential was shown, from the lease's status.
#[derive(Default)]
struct Overlaps {
    started: Option<Instant>,
    ended: Vec<Duration>,
}

impl Overlaps {
    fn observe(&mut self, previous_shown: bool) {
        match (previous_shown, self.started) {
            (true, None) => self.started = Some(Instant::now()),
            (false, Some(started)) => {
                self.ended.push(started.elapsed());
                self.started = None;
            }
            _ => {}
        }
    }

    fn lengths(&self) -> &[Duration] {
        &self.ended
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

fn ready_reason(lease: &EntraLease) -> Option<String> {
    lease
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.reason.clone())
}

/// The notes of the events with `reason` in the test's namespace.
async fn events_with_reason(env: &LeaseEnv, reason: &str) -> Vec<String> {
    let events = Api::<Event>::namespaced(env.client.clone(), &env.namespace);
    events
        .list(&ListParams::default())
        .await
        .map(|list| {
            list.items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some(reason))
                .filter_map(|e| e.note)
                .collect()
        })
        .unwrap_or_default()
}

/// A Deployment whose pods read Secret `secret` (its password as an environment variable), roll
/// one at a time and become Ready `ready_after` after they start.
fn deployment(name: &str, secret: &str, replicas: i32, ready_after: &str) -> Deployment {
    let mut deployment = rolling_deployment(name, replicas, Some(ready_after));
    let pods = deployment
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut());
    let container = &mut pods.expect("a pod spec").containers[0];
    container.env = Some(vec![
        serde_json::from_value(json!({
            "name": "PASSWORD",
            "valueFrom": { "secretKeyRef": { "name": secret, "key": "password" } }
        }))
        .expect("an environment variable"),
    ]);
    deployment
}

/// A StatefulSet whose pods are replaced only when deleted by hand.
fn on_delete_stateful_set(name: &str) -> k8s_openapi::api::apps::v1::StatefulSet {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": { "matchLabels": { "app": name } },
            "updateStrategy": { "type": "OnDelete" },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": {
                    "containers": [{
                        "name": "app",
                        "image": "registry.invalid/db:1",
                        "envFrom": [{ "secretRef": { "name": "entra-svc" } }]
                    }]
                }
            }
        }
    }))
    .expect("a StatefulSet object")
}
