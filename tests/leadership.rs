//! Fencing of the leader: a leader whose renewals fail stops before a standby may take over, and
//! SIGTERM ends the process within the shutdown bound even while Graph calls are being retried.
//! Every wait is on process or API state (exit status, the leader Lease, the emulator's counters).

use entra_test_support as support;

use std::time::{Duration, Instant, SystemTime};

use entra_emulator::{Fault, FaultPlan, Operation};
use entra_operator::api::LeasePhase;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::json;
use support::Operator;
use support::chart::service_account_kubeconfig;
use support::lease_env::LeaseEnv;

/// The operator's default leader Lease name.
const LEADER_LEASE: &str = "entra-operator-leader";
const LEASE_SECONDS: u64 = 6;
/// Two thirds of the lease duration, as `entra_operator::leader::RenewTiming` sets it.
const RENEW_DEADLINE: Duration = Duration::from_secs(4);

const USERS: [&str; 2] = [
    "alice@contoso.onmicrosoft.com",
    "bob@contoso.onmicrosoft.com",
];

fn leader_args(extra: &[String]) -> Vec<String> {
    [
        "--leader-elect".to_owned(),
        format!("--leader-election-lease-duration-seconds={LEASE_SECONDS}"),
    ]
    .into_iter()
    .chain(extra.iter().cloned())
    .collect()
}

/// The holder and the last renewal of the leader Lease, as the API server has them.
async fn leader_lease(leases: &Api<Lease>) -> (Option<String>, Option<SystemTime>) {
    let spec = leases
        .get_opt(LEADER_LEASE)
        .await
        .expect("the leader Lease can be read")
        .and_then(|lease| lease.spec)
        .unwrap_or_default();
    (
        spec.holder_identity,
        spec.renew_time.map(|time| time.0.into()),
    )
}

async fn wait_for_holder(env: &LeaseEnv, leases: &Api<Lease>, holder: &str) {
    env.wait_for(&format!("{holder} to hold the leader Lease"), || async {
        (leader_lease(leases).await.0.as_deref() == Some(holder)).then_some(())
    })
    .await;
}

fn log_tail(operator: &Operator) -> String {
    let logs = operator.logs();
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn kubectl_ok(env: &LeaseEnv, args: &[&str], input: Option<&str>) {
    let output = match input {
        Some(input) => env.control_plane.kubectl_with_input(args, input),
        None => env.control_plane.kubectl(args),
    };
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// ServiceAccount `name` in `namespace` with the rights the chart gives the operator when it
/// watches one namespace (charts/entra-operator/templates/rbac.yaml): its resources, Secrets and
/// Events through Role `operator`, cluster pools and namespaces' labels through a ClusterRole (as the
/// chart grants in every mode), and the coordination Leases of its own namespace (user claims
/// and the leader Lease) through Role `leases`, bound by RoleBinding `leases`.
fn operator_service_account(namespace: &str, name: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{ name: {name}, namespace: {namespace} }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{ name: operator, namespace: {namespace} }}
rules:
  - apiGroups: ["kms.hanzo.ai"]
    resources: ["entradynamicsecrets", "entraleases"]
    verbs: ["get", "list", "watch", "patch", "update", "delete"]
  - apiGroups: ["kms.hanzo.ai"]
    resources: ["entradynamicsecrets/status", "entraleases/status"]
    verbs: ["get", "patch", "update"]
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
  - apiGroups: ["events.k8s.io"]
    resources: ["events"]
    verbs: ["create", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: operator, namespace: {namespace} }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: Role, name: operator }}
subjects: [{{ kind: ServiceAccount, name: {name}, namespace: {namespace} }}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{ name: {namespace}-{name}-cluster-pools }}
rules:
  - apiGroups: ["kms.hanzo.ai"]
    resources: ["clusterentradynamicsecrets"]
    verbs: ["get", "list", "watch", "patch", "update"]
  - apiGroups: ["kms.hanzo.ai"]
    resources: ["clusterentradynamicsecrets/status"]
    verbs: ["get", "patch", "update"]
  - apiGroups: [""]
    resources: ["namespaces"]
    verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{ name: {namespace}-{name}-cluster-pools }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {namespace}-{name}-cluster-pools }}
subjects: [{{ kind: ServiceAccount, name: {name}, namespace: {namespace} }}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{ name: leases, namespace: {namespace} }}
rules:
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: leases, namespace: {namespace} }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: Role, name: leases }}
subjects: [{{ kind: ServiceAccount, name: {name}, namespace: {namespace} }}]
"#
    )
}

/// The leader keeps running, but its renewals fail (its rights on Leases are revoked): it exits
/// at its renew deadline, before the Lease expires and the standby takes it.
#[tokio::test]
async fn a_leader_that_cannot_renew_exits_before_the_standby_takes_over() {
    let mut env = LeaseEnv::start("losing").await;
    env.operator.kill();
    let control_plane = env.control_plane;
    let url = env.emulator.base_url();
    let ns = env.namespace.clone();
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &ns);

    // The first replica runs on its own ServiceAccount, with the operator's rights.
    kubectl_ok(
        &env,
        &["apply", "-f", "-"],
        Some(&operator_service_account(&ns, "first")),
    );
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("first.kubeconfig");
    service_account_kubeconfig(control_plane, &ns, "first", &kubeconfig);
    let as_first = leader_args(&[format!("--kubeconfig={}", kubeconfig.display())]);
    let mut first = Operator::start_with(control_plane, &url, &ns, &ns, "first", as_first);
    wait_for_holder(&env, &leases, "first").await;
    // It acts with these rights: the pool becomes Ready.
    env.create_pool("pool", &USERS, "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;

    // The standby runs as the admin; it is ready (waiting) and does not hold the Lease.
    let mut second =
        Operator::start_with(control_plane, &url, &ns, &ns, "second", leader_args(&[]));
    let port = second.health_port;
    env.wait_for("the standby to be ready", || async {
        let answer = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
            .await
            .ok()?;
        (answer.status() == 200).then_some(())
    })
    .await;
    assert_eq!(leader_lease(&leases).await.0.as_deref(), Some("first"));

    // Revoke the first replica's rights on Leases: its renewals now fail with 403, while the
    // process keeps running and its clock keeps going.
    kubectl_ok(&env, &["delete", "rolebinding", "leases", "-n", &ns], None);
    let revoked = Instant::now();

    let mut last_renewal: Option<SystemTime> = None;
    let mut exit: Option<(Instant, SystemTime, std::process::ExitStatus)> = None;
    let mut takeover: Option<(Instant, SystemTime)> = None;
    while exit.is_none() || takeover.is_none() {
        if exit.is_none()
            && let Some(status) = first.exit_status()
        {
            exit = Some((Instant::now(), SystemTime::now(), status));
        }
        if takeover.is_none() {
            let (holder, renewed) = leader_lease(&leases).await;
            match holder.as_deref() {
                Some("first") => last_renewal = renewed,
                Some("second") => takeover = Some((Instant::now(), SystemTime::now())),
                _ => {}
            }
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(60),
            "timed out: first exited {:?}, second took over {:?}\nfirst:\n{}\nsecond:\n{}",
            exit.map(|e| e.2),
            takeover.is_some(),
            log_tail(&first),
            log_tail(&second)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (exited, exited_wall, status) = exit.unwrap();
    let (took_over, took_over_wall) = takeover.unwrap();
    let last_renewal = last_renewal.expect("a renewal by the first replica was seen");
    let since_renewal = |wall: SystemTime| wall.duration_since(last_renewal).unwrap_or_default();
    println!(
        "losing leadership: lease {LEASE_SECONDS} s, renew deadline {RENEW_DEADLINE:?}; \
         after the revocation the old leader exited in {:?} and the standby took over in {:?}; \
         after the last renewal: exit {:?}, takeover {:?}; margin {:?}",
        exited - revoked,
        took_over - revoked,
        since_renewal(exited_wall),
        since_renewal(took_over_wall),
        took_over.saturating_duration_since(exited),
    );
    // Exit status 1 is the fencing exit (a panic would be 101, a graceful stop 0).
    assert_eq!(
        status.code(),
        Some(1),
        "the old leader exits with a failure status so that its pod restarts: {status}"
    );
    assert!(
        first
            .logs()
            .contains("not renewed within the renew deadline"),
        "it stopped for its renew deadline\nfirst:\n{}",
        log_tail(&first)
    );
    assert!(
        exited < took_over,
        "the old leader exited before the standby took over\nfirst:\n{}",
        log_tail(&first)
    );
    // At its deadline, counted from the last renewal it saw (which may be one before the last
    // one made if the revocation came between a renewal and its next read), and before the Lease
    // could expire.
    let exit_after = since_renewal(exited_wall);
    assert!(
        exit_after <= RENEW_DEADLINE + Duration::from_millis(500)
            && exit_after < Duration::from_secs(LEASE_SECONDS),
        "exit {exit_after:?} after the last renewal\nfirst:\n{}",
        log_tail(&first)
    );
    assert!(
        since_renewal(took_over_wall) >= Duration::from_secs(LEASE_SECONDS),
        "the standby took over only once the Lease expired"
    );
    assert!(second.is_running());

    // The new leader acts.
    env.create_lease("one", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    env.wait_for_phase("one", LeasePhase::Active).await;
    drop(second);
}

/// A SIGTERM while a reconcile waits on Graph (a password write Entra holds unanswered, with
/// --graph-retry-seconds=120) ends the process within the shutdown bound; it releases the Lease,
/// and the next leader finishes the issue. (A write refused with a 5xx no longer holds its
/// worker: it is parked while the app's scope is paused.)
#[tokio::test]
async fn sigterm_during_graph_retries_exits_within_the_shutdown_bound() {
    let mut env = LeaseEnv::start("sigterm-retries").await;
    env.operator.kill();
    let control_plane = env.control_plane;
    let url = env.emulator.base_url();
    let ns = env.namespace.clone();
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &ns);
    let bound = Duration::from_secs(5);
    let patient = leader_args(&[
        "--graph-retry-seconds=120".to_owned(),
        format!("--shutdown-timeout-seconds={}", bound.as_secs()),
    ]);
    let mut first = Operator::start_with(control_plane, &url, &ns, &ns, "first", patient.clone());
    wait_for_holder(&env, &leases, "first").await;
    env.create_pool("pool", &USERS, "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;

    // Every password write is now held unanswered for a minute: the issue's reconcile waits on
    // the wire (the emulator counts a request as it draws the fault, before holding it).
    let held = Fault::timeout(Duration::from_secs(60));
    env.emulator
        .set_faults(FaultPlan::random(1.0, [held]).only([Operation::SetPassword]));
    env.create_lease("one", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    env.wait_for("a password write to be on the wire", || async {
        (env.emulator.counters().operation(Operation::SetPassword) >= 1).then_some(())
    })
    .await;

    let signalled = Instant::now();
    let status = first.terminate();
    let took = signalled.elapsed();
    let attempts = env.emulator.counters().operation(Operation::SetPassword);
    println!(
        "SIGTERM with a password write on the wire (--graph-retry-seconds=120, shutdown bound \
         {bound:?}): exited in {took:?} with {status} after {attempts} password attempts"
    );
    assert!(
        took < Duration::from_secs(10),
        "exited in {took:?}\n{}",
        log_tail(&first)
    );
    assert!(
        took >= bound - Duration::from_millis(100),
        "it waited for the in-flight reconcile up to the bound: {took:?}"
    );
    assert!(status.success(), "exit status {status}");
    assert_eq!(leader_lease(&leases).await.0, None, "the Lease is released");
    let phase = env.lease("one").await.and_then(|l| l.status?.phase);
    assert_ne!(phase, Some(LeasePhase::Active), "the issue was interrupted");

    // The next leader finishes the interrupted issue once Graph answers again.
    env.emulator.set_faults(FaultPlan::default());
    let second = Operator::start_with(control_plane, &url, &ns, &ns, "second", patient);
    wait_for_holder(&env, &leases, "second").await;
    env.wait_for_phase("one", LeasePhase::Active).await;
    let (user, password) = env.credentials("entra-one").await;
    assert!(env.emulator.sign_in(&user, &password));
    drop(second);
}
