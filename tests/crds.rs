//! The CRDs against a real kube-apiserver: they install, accept the examples, reject bad input with
//! messages that name the bad field, and show their documentation and printer columns in kubectl.

use entra_test_support as support;

use std::time::Instant;

use entra_operator::api::{EntraDynamicSecret, EntraLease};
use entra_operator::duration::parse_duration;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};
use support::ControlPlane;
use support::cluster::{CRDS_FILE, install_crds, namespace};

#[test]
fn control_plane_reports_its_version_and_footprint() {
    let control_plane = ControlPlane::shared();
    let version = control_plane.kubectl(&["version", "-o", "json"]);
    assert!(version.status.success(), "kubectl version answers");
    let version: Value = serde_json::from_slice(&version.stdout).unwrap();
    let server = version["serverVersion"]["gitVersion"]
        .as_str()
        .unwrap_or("");
    assert!(
        server.starts_with("v1.36."),
        "a Kubernetes 1.36 API server, got {server:?}"
    );
    let rss_kib: u64 = control_plane.pids().iter().map(|pid| rss_kib(*pid)).sum();
    println!(
        "local control plane: kube-apiserver {server} at {}, ready in {:.1}s, {} MiB RSS (etcd + apiserver + controller-manager)",
        control_plane.server,
        control_plane.startup.as_secs_f64(),
        rss_kib / 1024
    );
}

#[test]
fn committed_crds_match_what_the_binary_prints() {
    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_entra-operator"))
        .arg("crds")
        .output()
        .expect("entra-operator crds runs");
    assert!(printed.status.success());
    let committed = std::fs::read_to_string(CRDS_FILE).expect("crds/ is committed");
    assert!(
        committed == String::from_utf8_lossy(&printed.stdout),
        "crds/entra-operator.yaml is stale: run `make crds` and commit the result"
    );
}

#[test]
fn crds_install_and_become_established() {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let established = control_plane.kubectl(&[
        "get",
        "crd",
        "entraleases.kms.hanzo.ai",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
    ]);
    assert_eq!(String::from_utf8_lossy(&established.stdout), "True");
}

#[tokio::test]
async fn examples_are_accepted() {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let client = control_plane.client().await;
    let ns = namespace(&client, "examples").await;
    for example in ["examples/dynamic-secret.yaml", "examples/lease.yaml"] {
        let path = format!("{}/{example}", env!("CARGO_MANIFEST_DIR"));
        let created = control_plane.kubectl(&["create", "-n", &ns, "-f", &path]);
        assert!(
            created.status.success(),
            "{example} is accepted: {}",
            String::from_utf8_lossy(&created.stderr)
        );
    }
    let leases: Api<EntraLease> = Api::namespaced(client.clone(), &ns);
    let lease = leases
        .get("ci-deploy")
        .await
        .expect("the lease reads back typed");
    assert!(lease.spec.auto_renew);
    let secrets: Api<EntraDynamicSecret> = Api::namespaced(client, &ns);
    let contoso = secrets
        .get("contoso")
        .await
        .expect("the dynamic secret reads back");
    assert_eq!(
        contoso.spec.secret_prefix, "entra",
        "defaults are applied by the schema"
    );
    assert_eq!(contoso.spec.password_length, 32);
    assert!(contoso.spec.revoke_sign_in_sessions);
    assert_eq!(
        contoso
            .spec
            .client_secret_ref
            .as_ref()
            .map(|r| r.key.as_str()),
        Some("clientSecret")
    );
}

fn valid_dynamic_secret() -> Value {
    json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraDynamicSecret",
        "metadata": { "name": "pool" },
        "spec": {
            "tenantId": "8f5e0a4c-3b1d-4c2e-9a7f-1d2e3f4a5b6c",
            "applicationId": "3c9d2b1a-7e6f-4a5b-8c9d-0e1f2a3b4c5d",
            "clientSecretRef": { "name": "entra-app" },
            "users": ["alice@contoso.onmicrosoft.com", "a11ce000-0000-4000-8000-000000000001"],
            "defaultTTL": "1h",
            "maxTTL": "24h"
        }
    })
}

fn valid_lease() -> Value {
    json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraLease",
        "metadata": { "name": "lease" },
        "spec": { "dynamicSecretRef": { "name": "pool" }, "ttl": "30m" }
    })
}

/// Sets `pointer` (a JSON pointer into the object) to `value`, or removes it when `value` is null.
fn with(mut object: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = object.pointer_mut(parent).unwrap().as_object_mut().unwrap();
    if value.is_null() {
        parent.remove(key);
    } else {
        parent.insert(key.to_owned(), value);
    }
    object
}

async fn create(client: &kube::Client, ns: &str, object: &Value) -> Result<(), String> {
    let object: DynamicObject = serde_json::from_value(object.clone()).unwrap();
    let types = object.types.clone().unwrap();
    let (group, version) = types.api_version.split_once('/').unwrap();
    let resource = ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: types.api_version.clone(),
        plural: format!("{}s", types.kind.to_lowercase()),
        kind: types.kind,
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(status.message.clone()),
        Err(other) => panic!("unexpected client error: {other}"),
    }
}

#[tokio::test]
async fn invalid_objects_are_rejected_naming_the_bad_field() {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let client = control_plane.client().await;
    let ns = namespace(&client, "invalid").await;
    let eds = valid_dynamic_secret;
    let lease = valid_lease;
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "duration with a day unit",
            with(eds(), "/spec/defaultTTL", json!("1d")),
            &["spec.defaultTTL"],
        ),
        (
            "a fraction of a second",
            with(eds(), "/spec/maxTTL", json!("90.5s")),
            &["spec.maxTTL"],
        ),
        (
            "zero duration",
            with(eds(), "/spec/maxTTL", json!("0s")),
            &["spec.maxTTL", "positive duration"],
        ),
        (
            "defaultTTL over maxTTL",
            with(eds(), "/spec/defaultTTL", json!("48h")),
            &[
                "spec.defaultTTL",
                "defaultTTL must not be longer than maxTTL",
            ],
        ),
        (
            "empty users",
            with(eds(), "/spec/users", json!([])),
            &["spec.users"],
        ),
        (
            "no credential",
            with(eds(), "/spec/clientSecretRef", Value::Null),
            &["set exactly one credential: clientSecretRef or certificateRef"],
        ),
        (
            "two credentials",
            with(
                eds(),
                "/spec/certificateRef",
                json!({ "name": "app-certificate" }),
            ),
            &["set exactly one credential: clientSecretRef or certificateRef"],
        ),
        (
            "workload identity on a namespaced pool",
            with(
                with(eds(), "/spec/clientSecretRef", Value::Null),
                "/spec/workloadIdentity",
                json!({ "serviceAccountName": "pool-identity" }),
            ),
            &[
                "spec.workloadIdentity",
                "workloadIdentity is accepted only on a ClusterEntraDynamicSecret",
                "the built-in edit role may mint tokens",
            ],
        ),
        (
            "certificate with an unknown algorithm",
            with(
                with(eds(), "/spec/clientSecretRef", Value::Null),
                "/spec/certificateRef",
                json!({ "name": "app-certificate", "algorithm": "ES256" }),
            ),
            &["spec.certificateRef.algorithm"],
        ),
        (
            "template replacing a default key",
            with(
                lease(),
                "/spec/template",
                json!({ "data": { "password": "{{ username }}" } }),
            ),
            &["spec.template.data", "may not replace the default keys"],
        ),
        (
            "template asking for a service-account token",
            with(
                lease(),
                "/spec/template",
                json!({ "type": "kubernetes.io/service-account-token" }),
            ),
            &[
                "spec.template.type",
                "would fill such a Secret with a token",
            ],
        ),
        (
            "template data over 16 KiB in all",
            with(
                lease(),
                "/spec/template",
                json!({ "data": { "a": "x".repeat(9000), "b": "y".repeat(9000) } }),
            ),
            &["spec.template.data", "16384 characters of templates in all"],
        ),
        (
            "template annotations over 16 KiB in all",
            with(
                lease(),
                "/spec/template",
                json!({ "annotations": { "a": "x".repeat(4096), "b": "x".repeat(4096),
                                         "c": "x".repeat(4096), "d": "x".repeat(4096) } }),
            ),
            &["spec.template.annotations", "16384 characters in all"],
        ),
        (
            "template taking the operator's label",
            with(
                lease(),
                "/spec/template",
                json!({ "labels": { "kms.hanzo.ai/lease": "other" } }),
            ),
            &["spec.template.labels", "the operator's own"],
        ),
        (
            "lease naming an unknown pool kind",
            with(
                lease(),
                "/spec/dynamicSecretRef",
                json!({ "name": "pool", "kind": "VaultSecret" }),
            ),
            &["spec.dynamicSecretRef.kind"],
        ),
        (
            "duplicate users",
            with(
                eds(),
                "/spec/users",
                json!(["bob@contoso.com", "bob@contoso.com"]),
            ),
            &["spec.users[1]", "Duplicate value"],
        ),
        (
            "user neither UPN nor GUID",
            with(eds(), "/spec/users", json!(["bob"])),
            &["spec.users[0]"],
        ),
        (
            "missing users",
            with(eds(), "/spec/users", Value::Null),
            &["spec.users", "Required value"],
        ),
        (
            "malformed tenant",
            with(eds(), "/spec/tenantId", json!("not a tenant!")),
            &["spec.tenantId"],
        ),
        (
            "malformed application id",
            with(eds(), "/spec/applicationId", json!("1234-abcd")),
            &["spec.applicationId"],
        ),
        (
            "password too short",
            with(eds(), "/spec/passwordLength", json!(8)),
            &["spec.passwordLength"],
        ),
        (
            "password too long",
            with(eds(), "/spec/passwordLength", json!(300)),
            &["spec.passwordLength"],
        ),
        (
            "client secret reference without a name",
            with(
                eds(),
                "/spec/clientSecretRef",
                json!({ "key": "clientSecret" }),
            ),
            &["spec.clientSecretRef.name", "Required value"],
        ),
        (
            "unknown cloud",
            with(eds(), "/spec/cloud", json!("AzureGermany")),
            &["spec.cloud"],
        ),
        (
            "lease ttl not a duration",
            with(lease(), "/spec/ttl", json!("forever")),
            &["spec.ttl"],
        ),
        (
            "lease ttl zero",
            with(lease(), "/spec/ttl", json!("0m")),
            &["spec.ttl", "positive duration"],
        ),
        (
            "lease without a dynamic secret",
            with(lease(), "/spec/dynamicSecretRef", Value::Null),
            &["spec.dynamicSecretRef", "Required value"],
        ),
        (
            "lease secret name not a DNS name",
            with(lease(), "/spec/secretName", json!("Bad_Name")),
            &["spec.secretName"],
        ),
        (
            "lease user neither UPN nor GUID",
            with(lease(), "/spec/user", json!("bob")),
            &["spec.user"],
        ),
        (
            "continuous lease naming its user",
            with(
                with(lease(), "/spec/user", json!("alice@contoso.com")),
                "/spec/rotation",
                json!({ "enabled": true }),
            ),
            &["spec.rotation", "cannot name spec.user"],
        ),
        (
            "rotation overlap not a duration",
            with(
                lease(),
                "/spec/rotation",
                json!({ "enabled": true, "overlap": "a while" }),
            ),
            &["spec.rotation.overlap"],
        ),
        (
            "restart target of another kind",
            with(
                lease(),
                "/spec/rolloutRestartTargets",
                json!([{ "kind": "CronJob", "name": "nightly" }]),
            ),
            &["spec.rolloutRestartTargets[0].kind"],
        ),
        (
            "template data replacing a previous key",
            with(
                lease(),
                "/spec/template",
                json!({ "data": { "previousPassword": "x" } }),
            ),
            &["spec.template.data", "previous*"],
        ),
    ];
    assert!(cases.len() >= 12);
    for (name, object, expected) in &cases {
        let message = create(&client, &ns, object)
            .await
            .expect_err(&format!("{name}: should be rejected"));
        for fragment in *expected {
            assert!(
                message.contains(fragment),
                "{name}: {message:?} should mention {fragment:?}"
            );
        }
    }
    // The valid bases themselves are accepted, so each rejection above is due to its one change.
    create(&client, &ns, &eds())
        .await
        .expect("the valid dynamic secret is accepted");
    create(&client, &ns, &lease())
        .await
        .expect("the valid lease is accepted");
}

#[tokio::test]
async fn lease_references_are_immutable() {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let client = control_plane.client().await;
    let ns = namespace(&client, "immutable").await;
    create(
        &client,
        &ns,
        &with(valid_lease(), "/spec/user", json!("bob@contoso.com")),
    )
    .await
    .unwrap();
    for (patch, field) in [
        (
            json!({"spec": {"dynamicSecretRef": {"name": "other"}}}),
            "dynamicSecretRef is immutable",
        ),
        (
            json!({"spec": {"user": "carol@contoso.com"}}),
            "user is immutable",
        ),
    ] {
        let patched = control_plane.kubectl(&[
            "patch",
            "-n",
            &ns,
            "entralease",
            "lease",
            "--type=merge",
            "-p",
            &patch.to_string(),
        ]);
        assert!(!patched.status.success(), "{field}: the change is refused");
        let stderr = String::from_utf8_lossy(&patched.stderr);
        assert!(stderr.contains(field), "{stderr}");
    }
    let ttl_change = control_plane.kubectl(&[
        "patch",
        "-n",
        &ns,
        "entralease",
        "lease",
        "--type=merge",
        "-p",
        r#"{"spec":{"ttl":"45m"}}"#,
    ]);
    assert!(ttl_change.status.success(), "the TTL stays editable");
}

#[tokio::test]
async fn duration_schema_and_parser_agree() {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let client = control_plane.client().await;
    let ns = namespace(&client, "durations").await;
    let samples = [
        "90s", "15m", "1h30m", "168h", "30m1h", "1h1m1s", "0s", "0h0m", "1d", "1.5h", "90.5m",
        "2.75h", "0.01h", "0.5m", "1.5s", "0.5s", "0.01m", "1.001h", ".5h", "1.h", "-1h", "1H", "",
        "h", "10", "1ms", "1h 30m", "2562047h", "2562048h",
    ];
    for (index, sample) in samples.iter().enumerate() {
        let object = with(
            with(
                valid_lease(),
                "/metadata/name",
                json!(format!("duration-{index}")),
            ),
            "/spec/ttl",
            json!(sample),
        );
        let accepted = create(&client, &ns, &object).await.is_ok();
        assert_eq!(
            accepted,
            parse_duration(sample).is_ok(),
            "{sample:?}: the API server and parse_duration disagree"
        );
    }
}

#[test]
fn kubectl_explain_documents_the_fields() {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    for (field, documented) in [
        ("entralease.spec.ttl", "How long the credentials stay valid"),
        (
            "entralease.spec.dynamicSecretRef.kind",
            "ClusterEntraDynamicSecret",
        ),
        (
            "clusterentradynamicsecret.spec.namespaceSelector",
            "The namespaces whose leases this pool serves",
        ),
        (
            "clusterentradynamicsecret.spec.workloadIdentity.serviceAccountName",
            "short-lived token",
        ),
        (
            "entradynamicsecret.spec.certificateRef.algorithm",
            "x5t#S256",
        ),
    ] {
        let explain = control_plane.kubectl(&["explain", field]);
        let text = String::from_utf8_lossy(&explain.stdout);
        assert!(
            explain.status.success(),
            "{field}: {}",
            String::from_utf8_lossy(&explain.stderr)
        );
        assert!(text.contains(documented), "{field}: {text}");
    }
}

#[tokio::test]
async fn kubectl_get_shows_the_printer_columns() {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let client = control_plane.client().await;
    let ns = namespace(&client, "columns").await;
    create(&client, &ns, &valid_lease()).await.unwrap();
    create(&client, &ns, &valid_dynamic_secret()).await.unwrap();
    let leases = control_plane.kubectl(&["get", "entraleases", "-n", &ns]);
    let header = String::from_utf8_lossy(&leases.stdout);
    let header = header.lines().next().unwrap_or_default();
    for column in [
        "NAME",
        "USER",
        "PHASE",
        "EXPIRES",
        "SECRET",
        "NEXT ROTATION",
        "AGE",
    ] {
        assert!(
            header.contains(column),
            "lease column {column} in {header:?}"
        );
    }
    let pools = control_plane.kubectl(&["get", "eds", "-n", &ns]);
    let header = String::from_utf8_lossy(&pools.stdout);
    let header = header.lines().next().unwrap_or_default();
    for column in ["NAME", "TENANT", "READY", "AVAILABLE", "LEASED", "AGE"] {
        assert!(
            header.contains(column),
            "dynamic secret column {column} in {header:?}"
        );
    }
    let category = control_plane.kubectl(&["get", "entra", "-n", &ns, "-o", "name"]);
    let names = String::from_utf8_lossy(&category.stdout);
    assert!(names.contains("entralease.kms.hanzo.ai/lease"), "{names}");
    assert!(
        names.contains("entradynamicsecret.kms.hanzo.ai/pool"),
        "{names}"
    );
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn control_plane_stops_cleanly() {
    // A private control plane, so stopping it does not disturb the shared one.
    let started = Instant::now();
    let control_plane = ControlPlane::start().expect("a second control plane starts");
    let pids = control_plane.pids();
    let dir = control_plane.kubeconfig.parent().unwrap().to_path_buf();
    println!(
        "a private control plane started in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    control_plane.stop();
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .unwrap_or_default()
                    .contains("State:\tZ"),
            "process {pid} is gone"
        );
    }
    assert!(!dir.exists(), "{} is removed", dir.display());
}
