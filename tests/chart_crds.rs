//! The chart's CRDs through a release's life, on a control plane of their own (this test binary's):
//! a cluster whose CRDs were applied by hand lets Helm adopt them as the README says, `helm upgrade`
//! brings back a field that an older schema lacks (the API server would otherwise prune it), and
//! uninstalling keeps them and every resource.

use entra_test_support as support;

use std::path::Path;
use std::time::{Duration, Instant};

use entra_operator::api::EntraLease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, PostParams};
use serde_json::{Value, json};
use support::chart::{CHART_DIR, documents, helm_ok};
use support::cluster::{CRDS_FILE, namespace};
use support::{ControlPlane, copy_tree};

const LEASES_CRD: &str = "entraleases.kms.hanzo.ai";
const CRD_NAMES: [&str; 3] = [
    "entradynamicsecrets.kms.hanzo.ai",
    "clusterentradynamicsecrets.kms.hanzo.ai",
    LEASES_CRD,
];

/// `helm install` or `helm upgrade` of the chart with `values`, as a platform team runs it.
fn helm_release(
    control_plane: &ControlPlane,
    release: &str,
    values: &Value,
    command: &[&str],
) -> std::process::Output {
    helm_release_of(
        control_plane,
        release,
        Path::new(CHART_DIR),
        values,
        command,
    )
}

/// The same with the chart in `chart`; the release lives in a namespace of its name.
fn helm_release_of(
    control_plane: &ControlPlane,
    release: &str,
    chart: &Path,
    values: &Value,
    command: &[&str],
) -> std::process::Output {
    support::chart::helm_release(control_plane, command, release, release, chart, values)
}

/// Asserts that `output` is a failure whose error says `expected`, for `what`.
fn refused(what: &str, output: std::process::Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains(expected),
        "{what}: {stderr}"
    );
}

fn succeeded(what: &str, output: std::process::Output) {
    assert!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// An EntraLease CRD (as JSON) as an older version would have it: without spec.rotation, and
/// without the validation rules that read it.
fn remove_rotation(crd: &mut Value) {
    let spec = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    spec["properties"]
        .as_object_mut()
        .unwrap()
        .remove("rotation")
        .expect("the current schema has spec.rotation");
    if let Some(rules) = spec["x-kubernetes-validations"].as_array_mut() {
        rules.retain(|rule| !rule.to_string().contains("rotation"));
    }
}

/// A copy of the chart whose CRDs lack spec.rotation, as an older release's would.
fn older_chart() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(Path::new(CHART_DIR), dir.path());
    let crds = std::fs::read_to_string(CRDS_FILE).unwrap();
    let mut older = String::new();
    for mut crd in documents(&crds) {
        if crd["metadata"]["name"] == LEASES_CRD {
            remove_rotation(&mut crd);
        }
        older.push_str("---\n");
        older.push_str(&yaml_serde::to_string(&crd).unwrap());
    }
    std::fs::write(dir.path().join("files/crds.yaml"), older).unwrap();
    dir
}

fn kubectl_ok(control_plane: &ControlPlane, args: &[&str]) -> String {
    let output = control_plane.kubectl(args);
    assert!(
        output.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn leases(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<EntraLease>(&()),
    )
}

/// A continuous lease, created by a client that does not ask for strict field validation (the API
/// server then prunes fields its schema lacks), as read back.
async fn create_continuous_lease(api: &Api<DynamicObject>, name: &str) -> DynamicObject {
    let lease: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraLease",
        "metadata": { "name": name },
        "spec": { "dynamicSecretRef": { "name": "pool" }, "rotation": { "enabled": true } },
    }))
    .unwrap();
    api.create(&PostParams::default(), &lease)
        .await
        .expect("the lease is created")
}

fn rotation_of(lease: &DynamicObject) -> Option<&Value> {
    lease.data["spec"].get("rotation")
}

/// Whether the served schema of EntraLease knows `spec.rotation`.
async fn schema_has_rotation(crds: &Api<CustomResourceDefinition>) -> bool {
    let crd = crds.get(LEASES_CRD).await.expect("the CRD exists");
    let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
    schema["openAPIV3Schema"]["properties"]["spec"]["properties"]
        .get("rotation")
        .is_some()
}

/// Creates continuous leases until one is stored as the schema in force says (the API server
/// reloads a changed CRD a moment after the write), deleting the others.
async fn lease_once_schema_is(
    api: &Api<DynamicObject>,
    prefix: &str,
    keeps_rotation: bool,
) -> DynamicObject {
    let started = Instant::now();
    for attempt in 0.. {
        let name = format!("{prefix}-{attempt}");
        let lease = create_continuous_lease(api, &name).await;
        if rotation_of(&lease).is_some() == keeps_rotation {
            return lease;
        }
        api.delete(&name, &DeleteParams::default()).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "spec.rotation is still {} after 60 s",
            if keeps_rotation { "pruned" } else { "kept" }
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    unreachable!()
}

#[tokio::test]
async fn helm_adopts_hand_applied_crds_and_its_upgrade_restores_a_pruned_field() {
    let control_plane = ControlPlane::shared();
    let admin = control_plane.client().await;
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let release = namespace(&admin, "crd-release").await;
    let apps = namespace(&admin, "crd-apps").await;
    let kubeconfig = control_plane.kubeconfig.to_str().unwrap();

    // An install that followed the older README: CRDs applied by hand, a chart without them.
    // Values are given in full each time: with none, `helm upgrade` reuses the last release's.
    kubectl_ok(control_plane, &["apply", "--server-side", "-f", CRDS_FILE]);
    let without_crds = json!({ "crds": { "enabled": false } });
    let with_crds = json!({ "crds": { "enabled": true } });
    succeeded(
        "the first install",
        helm_release(control_plane, &release, &without_crds, &["install"]),
    );
    // Helm does not take over CRDs it did not create unless told to (README, "Upgrade").
    refused(
        "helm does not adopt CRDs it did not create without being told",
        helm_release(control_plane, &release, &with_crds, &["upgrade"]),
        "cannot be imported",
    );
    succeeded(
        "the upgrade that adopts the CRDs",
        helm_release(
            control_plane,
            &release,
            &with_crds,
            &["upgrade", "--take-ownership"],
        ),
    );

    // NOTES finds the CRDs by label; each is the release's and kept when the release goes.
    let listed = kubectl_ok(
        control_plane,
        &[
            "get",
            "crd",
            "-l",
            "app.kubernetes.io/part-of=entra-operator",
            "-o",
            "name",
        ],
    );
    assert_eq!(listed.lines().count(), 3, "{listed}");
    for crd in CRD_NAMES {
        let crd = crds.get(crd).await.unwrap();
        let annotations = crd.metadata.annotations.unwrap_or_default();
        assert_eq!(
            annotations
                .get("helm.sh/resource-policy")
                .map(String::as_str),
            Some("keep")
        );
        assert_eq!(annotations.get("meta.helm.sh/release-name"), Some(&release));
    }

    // A lease that sets spec.rotation under the current schema.
    let api = leases(&admin, &apps);
    let early = lease_once_schema_is(&api, "early", true).await;
    let early_name = early.metadata.name.clone().unwrap();

    // The release goes to a chart whose CRDs lack spec.rotation (an older version, or a rollback
    // to one): the API server prunes the field from a lease that sets it, so a continuous lease
    // silently becomes a plain one.
    // The hand-applied CRDs' field manager still shares the fields Helm took over: the first
    // upgrade that changes a schema stops at the conflict, naming it, until it is forced.
    let older = older_chart();
    refused(
        "the conflict names the hand-applied manager",
        helm_release_of(
            control_plane,
            &release,
            older.path(),
            &with_crds,
            &["upgrade"],
        ),
        r#"conflict with \"kubectl\""#,
    );
    succeeded(
        "the upgrade to an older chart",
        helm_release_of(
            control_plane,
            &release,
            older.path(),
            &with_crds,
            &["upgrade", "--force-conflicts"],
        ),
    );
    assert!(!schema_has_rotation(&crds).await);
    let pruned = lease_once_schema_is(&api, "older", false).await;
    assert!(rotation_of(&pruned).is_none());
    // Reads prune too: the lease created earlier no longer shows the field.
    let early_under_older = api.get(&early_name).await.unwrap();
    assert!(rotation_of(&early_under_older).is_none());

    // `helm upgrade` to the current chart puts the field back, and a lease keeps it.
    succeeded(
        "helm upgrade",
        helm_release(control_plane, &release, &with_crds, &["upgrade"]),
    );
    assert!(
        schema_has_rotation(&crds).await,
        "helm upgrade restored the CRD's schema"
    );
    let kept = lease_once_schema_is(&api, "after", true).await;
    let kept_name = kept.metadata.name.clone().unwrap();
    let read_back = api.get(&kept_name).await.unwrap();
    assert_eq!(rotation_of(&read_back), Some(&json!({ "enabled": true })));
    // Stored data that nobody rewrote meanwhile shows again (a write under the older schema would
    // have dropped it for good: README, "Upgrade").
    let early_after = api.get(&early_name).await.unwrap();
    assert_eq!(rotation_of(&early_after), Some(&json!({ "enabled": true })));

    // Someone else writes an older schema over the release's (kubectl replace, another tool):
    // Helm's server-side apply stops at the conflict instead of silently overwriting it...
    let mut replaced: CustomResourceDefinition = crds.get(LEASES_CRD).await.unwrap();
    let mut as_json = serde_json::to_value(&replaced).unwrap();
    remove_rotation(&mut as_json);
    replaced.spec = serde_json::from_value(as_json["spec"].take()).unwrap();
    crds.replace(LEASES_CRD, &PostParams::default(), &replaced)
        .await
        .expect("the older schema replaces the CRD");
    assert!(!schema_has_rotation(&crds).await);
    refused(
        "an upgrade over someone else's schema names the conflict",
        helm_release(control_plane, &release, &with_crds, &["upgrade"]),
        "conflict",
    );
    // ...and takes it back when told to (README, "Troubleshooting").
    succeeded(
        "helm upgrade --force-conflicts",
        helm_release(
            control_plane,
            &release,
            &with_crds,
            &["upgrade", "--force-conflicts"],
        ),
    );
    assert!(schema_has_rotation(&crds).await);
    let forced = lease_once_schema_is(&api, "forced", true).await;
    assert_eq!(rotation_of(&forced), Some(&json!({ "enabled": true })));

    // Uninstalling keeps the CRDs, and with them every lease.
    helm_ok(&[
        "uninstall",
        &release,
        "--kubeconfig",
        kubeconfig,
        "--namespace",
        &release,
    ]);
    for crd in CRD_NAMES {
        assert!(crds.get_opt(crd).await.unwrap().is_some(), "{crd} is kept");
    }
    assert!(api.get_opt(&kept_name).await.unwrap().is_some());
}
