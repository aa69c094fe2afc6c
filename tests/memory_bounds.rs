//! One tenant cannot exhaust the operator's memory: a lease user fills a namespace with leases at
//! the CRD's maximum size and labelled Secrets of 1 MiB, the operator starts (its first lists see
//! all of it), serves a new lease, and its peak RSS stays under the chart's memory limit. On a
//! control plane of its own (this test binary's): the namespace holds hundreds of MiB.

use entra_test_support as support;

use entra_bench::operator::usage_of;
use entra_emulator::sample::ALICE;
use entra_operator::api::LeasePhase;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::json;
use support::chart::edit_user;
use support::lease_env::LeaseEnv;
use support::oversized::{labelled_secret, largest_lease};

/// The chart's memory limit (values.yaml, resources.limits.memory).
const CHART_MEMORY_LIMIT_KIB: u64 = 128 * 1024;
/// Leases at the CRD's maximum size, and as many labelled Secrets of 1 MiB.
const COUNT: usize = 200;

/// The most the process's resident memory has been (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let usage = usage_of(pid).expect("the process runs");
    (usage.peak_rss_mib * 1024.0) as u64
}

#[tokio::test]
async fn a_namespace_full_of_the_largest_objects_does_not_exhaust_the_operator() {
    let mut env = LeaseEnv::start("memory").await;
    // What the operator needs to serve one lease in an empty namespace, for comparison.
    env.create_pool("pool", &[ALICE.upn], "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    env.create_lease("first", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    env.wait_for_phase("first", LeasePhase::Active).await;
    let baseline = peak_rss_kib(env.operator.pid().expect("the operator runs"));
    env.end_lease("first").await;
    env.wait_until_gone("first").await;

    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    // A lease user: the built-in edit role, plus creating leases.
    let rbac = format!(
        r#"---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{ name: lease-user, namespace: {namespace} }}
rules: [{{ apiGroups: [kms.hanzo.ai], resources: [entraleases], verbs: [create, get, list] }}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: lease-user, namespace: {namespace} }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: Role, name: lease-user }}
subjects: [{{ kind: ServiceAccount, name: tenant, namespace: {namespace} }}]"#,
        namespace = env.namespace
    );
    let tenant = edit_user(
        env.control_plane,
        &env.namespace,
        "tenant",
        &rbac,
        kubeconfig.path(),
    )
    .await;
    let leases: Api<DynamicObject> = Api::namespaced_with(
        tenant.clone(),
        &env.namespace,
        &kube::api::ApiResource::erase::<entra_operator::api::EntraLease>(&()),
    );
    let secrets: Api<Secret> = Api::namespaced(tenant, &env.namespace);
    futures::stream::iter(0..COUNT)
        .for_each_concurrent(8, |index| {
            let (leases, secrets) = (&leases, &secrets);
            async move {
                let params = PostParams::default();
                leases
                    .create(&params, &largest_lease(index))
                    .await
                    .expect("the lease user creates the largest lease the CRD allows");
                secrets
                    .create(&params, &labelled_secret(index))
                    .await
                    .expect("the lease user creates a labelled Secret of 1 MiB");
            }
        })
        .await;

    // The operator starts with all of it there, and serves a new lease.
    env.operator.restart();
    env.create_lease("served", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    env.wait_for_phase("served", LeasePhase::Active).await;
    // The oversized leases were read too: each says its pool is missing.
    env.wait_for("every large lease judged", || async {
        let pending = env
            .leases()
            .list(&Default::default())
            .await
            .ok()?
            .items
            .into_iter()
            .filter(|lease| {
                lease.status.as_ref().is_some_and(|status| {
                    status
                        .conditions
                        .iter()
                        .any(|condition| condition.reason == "DynamicSecretNotFound")
                })
            })
            .count();
        (pending == COUNT).then_some(())
    })
    .await;

    let pid = env.operator.pid().expect("the operator runs");
    let peak = peak_rss_kib(pid);
    println!(
        "peak RSS of the operator (debug build) with {COUNT} leases at the CRD's maximum size \
         and {COUNT} labelled Secrets of 1 MiB: {:.1} MiB; serving one lease in an empty \
         namespace: {:.1} MiB (limit {} MiB)",
        peak as f64 / 1024.0,
        baseline as f64 / 1024.0,
        CHART_MEMORY_LIMIT_KIB / 1024
    );
    assert!(
        peak < CHART_MEMORY_LIMIT_KIB,
        "the operator's peak RSS, {peak} KiB, reached the chart's limit"
    );
    assert_eq!(env.violations().await, Vec::<String>::new());
}
