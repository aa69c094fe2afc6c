//! Running it in production: metrics and probes, leader election between two replicas, graceful
//! shutdown, and `--version`.

use entra_test_support as support;

use std::process::Command;
use std::time::Duration;

use entra_emulator::Operation;
use entra_operator::api::LeasePhase;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use support::Operator;
use support::lease_env::LeaseEnv;

const THREE: [&str; 3] = [
    "alice@contoso.onmicrosoft.com",
    "bob@contoso.onmicrosoft.com",
    "carol@contoso.onmicrosoft.com",
];

async fn get(port: u16, path: &str) -> (u16, String) {
    entra_operator::tls::install_crypto_provider();
    let response = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .expect("the operator's HTTP port answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn metrics_and_probes_follow_the_leases() {
    let env = LeaseEnv::start("metrics").await;
    let port = env.operator.metrics_port;
    env.wait_for("the operator to be ready", || async {
        let answer = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
            .await
            .ok()?;
        (answer.status() == 200).then_some(())
    })
    .await;
    assert_eq!(get(port, "/livez").await.0, 200);
    env.create_pool("pool", &THREE, "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    env.create_lease("one", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    env.wait_for_phase("one", LeasePhase::Active).await;

    let (status, active) = get(port, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        sample(&active, r#"entra_leases{phase="Active"}"#),
        Some(1.0),
        "{active}"
    );
    assert_eq!(sample(&active, "entra_lease_issues_total"), Some(1.0));
    assert_eq!(
        sample(&active, "entra_lease_time_to_credential_seconds_count"),
        Some(1.0),
        "the first issue is timed from the lease's creation"
    );
    assert!(sample(&active, "entra_lease_expiry_timestamp_seconds{").unwrap() > 1.7e9);
    let pool_series = r#"entra_pool_users{namespace=""#;
    assert!(active.contains(pool_series), "{active}");
    assert!(
        sample(
            &active,
            r#"entra_graph_requests_total{operation="set password",status="204"}"#
        ) >= Some(1.0)
    );
    assert!(active.contains("entra_reconcile_duration_seconds_bucket"));
    promtool_accepts(&active);
    let openmetrics = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        openmetrics.ends_with("# EOF\n"),
        "OpenMetrics for scrapers that ask for it"
    );

    env.end_lease("one").await;
    let (_, ended) = get(port, "/metrics").await;
    assert_eq!(sample(&ended, r#"entra_leases{phase="Active"}"#), Some(0.0));
    assert_eq!(sample(&ended, "entra_lease_revocations_total"), Some(1.0));
    assert!(
        !ended.contains("entra_lease_expiry_timestamp_seconds{"),
        "gone leases leave no series"
    );
    assert_eq!(
        sample(&ended, "entra_lease_revocation_lag_seconds_count"),
        Some(0.0),
        "a lease deleted before its expiry has no revocation lag"
    );
    env.create_lease(
        "short",
        json!({ "dynamicSecretRef": { "name": "pool" }, "ttl": "2s" }),
    )
    .await;
    env.wait_for_phase("short", LeasePhase::Active).await;
    env.wait_until_gone("short").await;
    let (_, expired) = get(port, "/metrics").await;
    assert_eq!(
        sample(&expired, "entra_lease_revocation_lag_seconds_count"),
        Some(1.0),
        "an expiry is timed from expiresAt to the scramble"
    );
    assert!(
        sample(&expired, "entra_lease_revocation_lag_seconds_sum") < Some(5.0),
        "{expired}"
    );

    // A client secret's expiry comes from an annotation on its Secret, as its pool's status and
    // a gauge the expiry alerts read; a malformed one is refused by name.
    let secrets = env.secrets();
    let annotate = |value: &'static str| {
        let patch = json!({ "metadata": { "annotations": {
            "kms.hanzo.ai/client-secret-expires-at": value } } });
        let secrets = secrets.clone();
        async move {
            secrets
                .patch("entra-app", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
    };
    annotate("2027-06-30T00:00:00Z").await;
    let series = format!(
        r#"entra_pool_credential_expiry_timestamp_seconds{{namespace="{}",dynamic_secret="pool"}}"#,
        env.namespace
    );
    env.wait_for("the annotated expiry in /metrics", || async {
        let (_, text) = get(port, "/metrics").await;
        (sample(&text, &series) == Some(1_814_313_600.0)).then_some(())
    })
    .await;
    let status = env.pools().get("pool").await.unwrap().status.unwrap();
    assert_eq!(
        status
            .credential_expires_at
            .map(|t| t.0.to_string())
            .as_deref(),
        Some("2027-06-30T00:00:00Z")
    );
    annotate("end of June").await;
    env.wait_for("the malformed expiry to be refused", || async {
        let status = env.pools().get("pool").await.unwrap().status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (ready.reason == "ClientSecretExpiryInvalid").then_some(ready.message.clone())
    })
    .await;
}

/// `promtool check metrics` from the Prometheus project, built by the Makefile.
fn promtool_accepts(metrics: &str) {
    use std::io::Write;
    let promtool = std::env::var("PROMTOOL_BIN").expect("PROMTOOL_BIN is set by the Makefile");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn leader_args() -> Vec<String> {
    vec![
        "--leader-elect".into(),
        "--leader-election-lease-duration-seconds=6".into(),
    ]
}

#[tokio::test]
async fn only_the_leader_acts_and_a_standby_takes_over() {
    let mut env = LeaseEnv::start("leader").await;
    // Replace the default operator by two replicas that elect a leader.
    env.operator.kill();
    let control_plane = env.control_plane;
    let url = env.emulator.base_url();
    let ns = env.namespace.clone();
    let mut first = Operator::start_with(control_plane, &url, &ns, &ns, "first", leader_args());
    env.wait_for("the first replica to lead", || async {
        first.logs().contains("became the leader").then_some(())
    })
    .await;
    let mut second = Operator::start_with(control_plane, &url, &ns, &ns, "second", leader_args());
    env.wait_for("the second replica to stand by", || async {
        second
            .logs()
            .contains("waiting for leadership")
            .then_some(())
    })
    .await;
    env.create_pool("pool", &THREE, "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    env.create_lease("one", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    env.wait_for_phase("one", LeasePhase::Active).await;
    assert!(first.logs().contains("issued"), "the leader issued");
    assert!(
        !second.logs().contains("became the leader"),
        "the standby did not act"
    );
    assert!(
        !second.logs().contains("reconciling"),
        "the standby did not reconcile"
    );

    // The leader dies without releasing its lease: the standby takes over within its duration.
    first.kill();
    let killed = std::time::Instant::now();
    env.wait_for("the standby to take over", || async {
        second.logs().contains("became the leader").then_some(())
    })
    .await;
    let handover = killed.elapsed();
    assert!(
        handover < Duration::from_secs(6 + 6),
        "took over in {handover:?}"
    );
    env.create_lease("two", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    env.wait_for_phase("two", LeasePhase::Active).await;
    assert!(second.is_running());

    // No lease was issued twice, and none is left unrevoked.
    assert_eq!(env.emulator.counters().operation(Operation::SetPassword), 2);
    let credentials = [
        env.credentials("entra-one").await,
        env.credentials("entra-two").await,
    ];
    for name in ["one", "two"] {
        env.leases()
            .delete(name, &Default::default())
            .await
            .unwrap();
        env.wait_until_gone(name).await;
    }
    for (user, password) in credentials {
        assert!(!env.emulator.sign_in(&user, &password));
    }
    drop(first);
    drop(second);
}

#[tokio::test]
async fn sigterm_stops_gracefully_and_releases_leadership() {
    let mut env = LeaseEnv::start("sigterm").await;
    env.operator.kill();
    let control_plane = env.control_plane;
    let url = env.emulator.base_url();
    let ns = env.namespace.clone();
    let slow = leader_args();
    let mut first = Operator::start_with(control_plane, &url, &ns, &ns, "first", slow.clone());
    env.wait_for("the first replica to lead", || async {
        first.logs().contains("became the leader").then_some(())
    })
    .await;
    let second = Operator::start_with(control_plane, &url, &ns, &ns, "second", slow);
    env.wait_for("the second replica to stand by", || async {
        second
            .logs()
            .contains("waiting for leadership")
            .then_some(())
    })
    .await;
    let status = first.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(first.logs().contains("released leadership"));
    let stopped = std::time::Instant::now();
    env.wait_for("the standby to take over", || async {
        second.logs().contains("became the leader").then_some(())
    })
    .await;
    // The standby sleeps until the lease it last saw would expire, then finds it released.
    assert!(
        stopped.elapsed() < Duration::from_secs(6 + 6),
        "handover within the lease duration"
    );
}

#[test]
fn version_flag_prints_the_version() {
    let output = Command::new(env!("CARGO_BIN_EXE_entra-operator"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        text.trim(),
        format!("entra-operator {}", env!("CARGO_PKG_VERSION"))
    );
}
