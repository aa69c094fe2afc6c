//! The Helm chart against a real kube-apiserver: it lints, renders into objects the API server
//! accepts, installs and uninstalls, refuses nonsense values, ships the generated CRDs, hardens the
//! pod, and grants exactly what the operator needs: the operator, run as the chart's Deployment
//! says with the chart's ServiceAccount, completes a lease's whole life, and that identity is
//! refused what the chart does not grant.

use entra_test_support as support;

use entra_emulator::{Config, Emulator, sample};
use entra_operator::api::{EntraDynamicSecret, EntraLease, LeasePhase};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::TokenReview;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    PropagationPolicy,
};
use serde_json::{Value, json};
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};
use support::ControlPlane;
use support::admission::{POLICY_WAIT, refusal_by, until_authorized, until_refused};
use support::chart::{
    CHART_DIR, OperatorPod, chart_operator, client_for, documents, free_port, helm, helm_ok,
    install, only, service_account_kubeconfig, template, uninstall,
};
use support::cluster::{CRDS_FILE, client_secret, install_crds, namespace};
use support::lease_env::{APP_ID, CLIENT_SECRET};

/// Tests that run an operator take turns: an operator watching every namespace would also act on
/// the resources of another test's operator.
static OPERATORS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A release that watches every namespace binds its admission policies in every namespace, and
/// they trust its own operator only: tests that install one hold this exclusively. Tests whose
/// namespaces must be guarded by their own release alone (an operator writing status, a tenant
/// allowed with the policies off) share it. Taken after [`OPERATORS`].
static ADMISSION: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Takes [`ADMISSION`] shared, then waits until no policy of an all-namespace release that has
/// just been uninstalled is in force any more (the API server drops a deleted policy a moment
/// later): a user with every right on kms.hanzo.ai in a namespace of its own, guarded by no
/// release of these tests, writes a lease's status, and a lease created there gets no finalizer.
async fn admission_shared() -> tokio::sync::RwLockReadGuard<'static, ()> {
    let guard = ADMISSION.read().await;
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    static PROBE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let namespace = PROBE.get_or_init(|| {
        let namespace = format!("policy-probe-{}", std::process::id());
        let manifest = json!({ "apiVersion": "v1", "kind": "List", "items": [
            { "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": namespace } },
            { "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
              "metadata": { "name": "entra-everything", "namespace": namespace },
              "rules": [{ "apiGroups": ["kms.hanzo.ai"], "resources": ["*"], "verbs": ["*"] }] },
            { "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
              "metadata": { "name": "policy-probe", "namespace": namespace },
              "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                           "name": "entra-everything" },
              "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                             "name": "policy-probe" }] },
            { "apiVersion": "kms.hanzo.ai/v1alpha1", "kind": "EntraLease",
              "metadata": { "name": "probe", "namespace": namespace },
              "spec": { "dynamicSecretRef": { "name": "pool" } } },
        ]});
        let applied =
            control_plane.kubectl_with_input(&["apply", "-f", "-"], &manifest.to_string());
        assert!(
            applied.status.success(),
            "the policy probe is created: {}",
            String::from_utf8_lossy(&applied.stderr)
        );
        namespace
    });
    // Created as a dry run: admitted and mutated as a create is, and nothing is left.
    let unguarded_lease = json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1", "kind": "EntraLease",
        "metadata": { "name": "unguarded", "namespace": namespace },
        "spec": { "dynamicSecretRef": { "name": "pool" } },
    })
    .to_string();
    let started = Instant::now();
    loop {
        let patched = control_plane.kubectl(&[
            "patch",
            "entralease",
            "probe",
            "--namespace",
            namespace,
            "--subresource=status",
            "--type=merge",
            "--patch",
            r#"{"status":{"phase":"Failed"}}"#,
            "--as=policy-probe",
        ]);
        let created = control_plane.kubectl_with_input(
            &[
                "create",
                "--dry-run=server",
                "--output=jsonpath={.metadata.finalizers}",
                "-f",
                "-",
            ],
            &unguarded_lease,
        );
        if patched.status.success() && created.status.success() && created.stdout.is_empty() {
            return guard;
        }
        assert!(
            started.elapsed() < POLICY_WAIT,
            "a policy of no running test is still in force in {namespace}: status write: {}; \
             a new lease's finalizers: {}{}",
            String::from_utf8_lossy(&patched.stderr),
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn deployment_name(release: &str) -> String {
    format!("{release}-entra-operator")
}

#[test]
fn chart_lints_cleanly() {
    for extra in [
        &[][..],
        &["--set", "watchNamespaces={apps}"][..],
        &["--set", "metrics.grafanaDashboard.enabled=true"][..],
        &["--set", "networkPolicy.enabled=true,crds.keep=false"][..],
    ] {
        let mut args = vec!["lint", "--strict", CHART_DIR];
        args.extend_from_slice(extra);
        let output = helm_ok(&args);
        assert!(output.contains("0 chart(s) failed"), "{output}");
    }
}

#[test]
fn chart_crds_are_the_generated_crds() {
    let generated = std::fs::read(CRDS_FILE).expect("crds/ is committed");
    let chart =
        std::fs::read(format!("{CHART_DIR}/files/crds.yaml")).expect("the chart ships its CRDs");
    assert!(
        chart == generated,
        "charts/entra-operator/files/crds.yaml, which the chart's templates/crds.yaml renders, \
         differs from crds/entra-operator.yaml: run make crds"
    );
}

#[test]
fn chart_app_version_is_the_operator_version() {
    let chart: Value =
        yaml_serde::from_str(&std::fs::read_to_string(format!("{CHART_DIR}/Chart.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        chart["appVersion"],
        env!("CARGO_PKG_VERSION"),
        "the default image tag is the appVersion"
    );
    let rendered = documents(&template("v", "ops", &json!({})));
    let image =
        &only(&rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"];
    assert_eq!(
        image.as_str(),
        Some(concat!(
            "ghcr.io/hanzoai/entra-operator:",
            env!("CARGO_PKG_VERSION")
        ))
    );
}

#[test]
fn rendered_deployment_is_hardened() {
    let rendered = documents(&template("hardened", "ops", &json!({})));
    let deployment = only(&rendered, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2, "a standby by default");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["automountServiceAccountToken"], true,
        "it needs the API"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert!(security["capabilities"].get("add").is_none());
    assert!(security.get("privileged").is_none_or(|p| p == false));

    assert_eq!(
        container["ports"],
        json!([
            { "name": "metrics", "containerPort": 8443, "protocol": "TCP" },
            { "name": "health", "containerPort": 8081, "protocol": "TCP" },
        ]),
        "/metrics on its own HTTPS port, the probes on a plain one"
    );
    for (probe, path) in [("livenessProbe", "/livez"), ("readinessProbe", "/readyz")] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "health", "{probe}");
        assert!(
            container[probe]["httpGet"].get("scheme").is_none(),
            "{probe}: plain HTTP"
        );
    }
    let resources = &container["resources"];
    assert_eq!(resources["requests"]["cpu"], "50m");
    assert_eq!(resources["requests"]["memory"], "64Mi");
    assert_eq!(resources["limits"]["memory"], "128Mi");

    let env: Vec<&str> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|var| var["name"].as_str().unwrap())
        .collect();
    for name in ["POD_NAME", "POD_NAMESPACE", "LEADER_ELECT", "LOG_FORMAT"] {
        assert!(env.contains(&name), "{name} is set: {env:?}");
    }
    let value_of = |name: &str| {
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|var| var["name"] == name)
            .map(|var| var["value"].clone())
    };
    assert_eq!(value_of("LEADER_ELECT"), Some(json!("true")));
    assert_eq!(value_of("LOG_FORMAT"), Some(json!("json")));
    assert!(
        !env.contains(&"WATCH_NAMESPACE"),
        "every namespace by default"
    );
}

#[test]
fn releases_sharing_a_namespace_elect_leaders_apart() {
    let lease_name_of = |release: &str| {
        let rendered = documents(&template(release, "ops", &json!({})));
        let args =
            only(&rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
                .as_array()
                .unwrap()
                .clone();
        args.iter()
            .filter_map(|arg| arg.as_str()?.strip_prefix("--leader-election-lease-name="))
            .map(str::to_owned)
            .next()
            .expect("the lease name is passed")
    };
    assert_eq!(lease_name_of("entra-operator"), "entra-operator-leader");
    assert_eq!(lease_name_of("team-a"), "team-a-entra-operator-leader");
}

#[test]
fn optional_objects_follow_their_values() {
    let defaults = documents(&template("opt", "ops", &json!({})));
    assert!(!defaults.iter().any(|o| o["kind"] == "ServiceMonitor"));
    only(&defaults, "PodDisruptionBudget");

    let rendered = documents(&template(
        "opt",
        "ops",
        &json!({
            "metrics": { "serviceMonitor": { "enabled": true, "labels": { "release": "prom" } } },
            "podDisruptionBudget": { "enabled": false },
            "watchNamespaces": ["apps"],
            "entra": { "graphEndpoint": "https://dod-graph.microsoft.us" },
            "commonLabels": { "team": "identity" },
        }),
    ));
    let monitor = only(&rendered, "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["scheme"], "https");
    assert_eq!(
        monitor["spec"]["endpoints"][0]["honorLabels"], true,
        "a lease's or pool's namespace label is not overwritten by the operator's"
    );
    assert_eq!(monitor["metadata"]["labels"]["release"], "prom");
    assert!(!rendered.iter().any(|o| o["kind"] == "PodDisruptionBudget"));
    // Cluster-wide, a single-namespace install may only read cluster pools and namespaces, and
    // review the callers of /metrics.
    let mut bound: Vec<&Value> = rendered
        .iter()
        .filter(|o| o["kind"] == "ClusterRoleBinding")
        .map(|binding| &binding["roleRef"]["name"])
        .collect();
    bound.sort_by_key(|name| name.as_str());
    assert_eq!(
        bound,
        [
            "opt-entra-operator-cluster-pools",
            "opt-entra-operator-metrics-auth"
        ]
    );
    let cluster_pools = rendered
        .iter()
        .find(|o| {
            o["kind"] == "ClusterRole"
                && o["metadata"]["name"] == "opt-entra-operator-cluster-pools"
        })
        .expect("the cluster pools' ClusterRole");
    let resources: Vec<&Value> = cluster_pools["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rule| rule["resources"].as_array().unwrap())
        .collect();
    assert_eq!(
        resources,
        [
            "clusterentradynamicsecrets",
            "clusterentradynamicsecrets/status",
            "namespaces"
        ]
    );
    let mut cluster_roles: Vec<&Value> = rendered
        .iter()
        .filter(|o| o["kind"] == "ClusterRole" && !is_aggregated(o))
        .map(|role| &role["metadata"]["name"])
        .collect();
    cluster_roles.sort_by_key(|name| name.as_str());
    assert_eq!(
        cluster_roles,
        [
            "opt-entra-operator-cluster-pools",
            "opt-entra-operator-metrics-auth",
            "opt-entra-operator-metrics-reader"
        ],
        "besides them, the only ClusterRoles are the ones aggregated into edit, admin and view"
    );
    // A further release serving its own namespaces leaves cluster pools to the first: the only
    // cluster-wide grant it has is reviewing the callers of its /metrics.
    let further = documents(&template(
        "opt-2",
        "ops",
        &json!({ "watchNamespaces": ["apps-2"], "clusterPools": { "enabled": false } }),
    ));
    assert_eq!(
        only(&further, "ClusterRoleBinding")["roleRef"]["name"],
        "opt-2-entra-operator-metrics-auth"
    );
    let container = &only(&further, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    assert!(
        container["env"]
            .as_array()
            .unwrap()
            .contains(&json!({ "name": "CLUSTER_POOLS", "value": "false" }))
    );
    let roles: Vec<&Value> = rendered.iter().filter(|o| o["kind"] == "Role").collect();
    assert_eq!(
        roles.len(),
        3,
        "one in the watched namespace, one for leases, one for cluster pools' events"
    );
    assert!(roles.iter().any(|r| r["metadata"]["namespace"] == "apps"));
    assert!(roles.iter().any(|r| r["metadata"]["namespace"] == "ops"));
    assert!(
        roles
            .iter()
            .any(|r| r["metadata"]["namespace"] == "default")
    );
    for object in &rendered {
        assert_eq!(object["metadata"]["labels"]["team"], "identity");
    }
    let container = &only(&rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    let env = container["env"].as_array().unwrap();
    assert!(env.contains(&json!({ "name": "WATCH_NAMESPACE", "value": "apps" })));
    assert!(env.contains(&json!({
        "name": "ENTRA_GRAPH_ENDPOINT", "value": "https://dod-graph.microsoft.us"
    })));
}

#[test]
fn workload_restarts_are_granted_only_when_enabled() {
    let grants_apps = |rendered: &[Value]| {
        rendered
            .iter()
            .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
            .flat_map(|role| role["rules"].as_array().cloned().unwrap_or_default())
            .filter(|rule| rule["apiGroups"] == json!(["apps"]))
            .collect::<Vec<Value>>()
    };
    let defaults = documents(&template("restarts", "ops", &json!({})));
    assert!(
        grants_apps(&defaults).is_empty(),
        "off by default: the operator touches no workload"
    );
    let enabled = documents(&template(
        "restarts",
        "ops",
        &json!({ "rolloutRestart": { "enabled": true } }),
    ));
    assert_eq!(
        grants_apps(&enabled),
        [json!({
            "apiGroups": ["apps"],
            "resources": ["deployments", "statefulsets", "daemonsets"],
            "verbs": ["get", "patch"]
        })]
    );
    let per_namespace = documents(&template(
        "restarts",
        "ops",
        &json!({ "rolloutRestart": { "enabled": true }, "watchNamespaces": ["a", "b"] }),
    ));
    assert_eq!(
        grants_apps(&per_namespace).len(),
        2,
        "one rule in the Role of each watched namespace"
    );
}

#[test]
fn every_alert_fires_in_a_promtool_test_and_the_rules_pass_them() {
    let defaults = documents(&template("entra-operator", "ops", &json!({})));
    assert!(
        !defaults.iter().any(|o| o["kind"] == "PrometheusRule"),
        "off by default"
    );
    let enabled = json!({
        "metrics": { "prometheusRule": { "enabled": true, "labels": { "release": "prom" } } },
        "commonAnnotations": { "owner": "identity" },
    });
    let rendered = documents(&template("entra-operator", "ops", &enabled));
    let rule = only(&rendered, "PrometheusRule");
    assert_eq!(rule["metadata"]["labels"]["release"], "prom");
    assert_eq!(rule["metadata"]["annotations"]["owner"], "identity");
    let groups = &rule["spec"]["groups"];
    let alerts: Vec<&str> = groups[0]["rules"]
        .as_array()
        .expect("the rules")
        .iter()
        .filter_map(|rule| rule["alert"].as_str())
        .collect();
    assert!(alerts.len() >= 8, "{alerts:?}");
    let cases_file = support::workspace_dir().join("tests/alerts/entra-operator.test.yaml");
    let cases = std::fs::read_to_string(&cases_file).expect("the promtool cases");
    let parsed: Value = yaml_serde::from_str(&cases).expect("the cases are YAML");
    for alert in &alerts {
        let fires = parsed["tests"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|test| {
                test["alert_rule_test"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .any(|case| {
                case["alertname"] == *alert
                    && case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty())
            });
        assert!(fires, "{alert} has a promtool case in which it fires");
    }
    // The rules exactly as the chart renders them, next to the cases (JSON is YAML).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_json::to_string(&json!({ "groups": groups })).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("entra-operator.test.yaml"), &cases).unwrap();
    let promtool = std::env::var("PROMTOOL_BIN").expect("PROMTOOL_BIN is set by the Makefile");
    let output = std::process::Command::new(promtool)
        .args(["test", "rules", "entra-operator.test.yaml"])
        .current_dir(dir.path())
        .output()
        .expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn grafana_dashboard_is_a_config_map_for_the_sidecar() {
    let defaults = documents(&template("dash", "ops", &json!({})));
    assert!(
        !defaults.iter().any(|o| o["kind"] == "ConfigMap"),
        "off by default"
    );

    let enabled = json!({ "metrics": { "grafanaDashboard": { "enabled": true } } });
    let rendered = documents(&template("dash", "ops", &enabled));
    let config_map = only(&rendered, "ConfigMap");
    let metadata = &config_map["metadata"];
    assert_eq!(metadata["name"], "dash-entra-operator-dashboard");
    assert_eq!(
        metadata["namespace"], "ops",
        "the release namespace by default"
    );
    assert_eq!(metadata["labels"]["grafana_dashboard"], "1");
    assert_eq!(metadata["labels"]["app.kubernetes.io/instance"], "dash");
    let data = config_map["data"].as_object().expect("data");
    assert_eq!(data.len(), 1, "one dashboard: {:?}", data.keys());
    let text = data["entra-operator.json"].as_str().expect("a JSON file");
    let file = std::fs::read_to_string(format!("{CHART_DIR}/dashboards/entra-operator.json"))
        .expect("the chart ships the dashboard");
    assert_eq!(text, file.trim_end(), "the file as it is, untemplated");
    let dashboard: Value = serde_json::from_str(text).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "entra-operator");
    assert_eq!(dashboard["title"], "Entra operator");
    let panels = dashboard["panels"].as_array().expect("panels");
    let queries: Vec<&Value> = panels
        .iter()
        .chain(
            panels
                .iter()
                .flat_map(|p| p["panels"].as_array().into_iter().flatten()),
        )
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .collect();
    assert!(queries.len() >= 20, "{} queries", queries.len());
    for query in queries {
        // Any Grafana's Prometheus, chosen by the variable: no data source uid of ours.
        assert_eq!(query["datasource"]["uid"], "${datasource}", "{query}");
    }

    // Another sidecar label, Grafana's namespace, a folder; common annotations still apply.
    let overridden = documents(&template(
        "dash",
        "ops",
        &json!({
            "metrics": { "grafanaDashboard": {
                "enabled": true,
                "labels": { "grafana_dashboard": null, "dashboards": "entra" },
                "annotations": { "grafana_folder": "Identity" },
                "namespace": "monitoring",
            } },
            "commonAnnotations": { "owner": "identity" },
        }),
    ));
    let metadata = &only(&overridden, "ConfigMap")["metadata"];
    assert_eq!(metadata["namespace"], "monitoring");
    assert_eq!(metadata["labels"]["dashboards"], "entra");
    assert!(metadata["labels"].get("grafana_dashboard").is_none());
    assert_eq!(
        metadata["annotations"],
        json!({ "grafana_folder": "Identity", "owner": "identity" })
    );
}

#[test]
fn values_schema_refuses_nonsense_naming_the_field() {
    let refused = [
        (json!({ "replicaCount": 0 }), "replicaCount"),
        (json!({ "replicaCount": "two" }), "replicaCount"),
        (json!({ "logFormat": "xml" }), "logFormat"),
        (json!({ "logLevel": "loud" }), "logLevel"),
        (
            json!({ "entra": { "graphEndpoint": "http://evil.example" } }),
            "graphEndpoint",
        ),
        (
            json!({ "entra": { "authorityHost": "http://localhost.evil.example" } }),
            "authorityHost",
        ),
        (json!({ "replicas": 3 }), "replicas"),
        (json!({ "leaderElection": { "enable": true } }), "enable"),
        (
            json!({ "watchNamespaces": ["Not_A_Namespace"] }),
            "watchNamespaces",
        ),
        (
            json!({ "metrics": { "grafanaDashboard": { "enable": true } } }),
            "enable",
        ),
        (
            json!({ "metrics": { "grafanaDashboard": { "namespace": "Grafana" } } }),
            "namespace",
        ),
    ];
    for (values, field) in refused {
        let (_dir, file) = support::chart::values_file(&values);
        let output = helm(&["template", "t", CHART_DIR, "-f", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{values} was accepted");
        assert!(
            stderr.contains("schema") && stderr.contains(field),
            "the refusal of {values} names {field}: {stderr}"
        );
    }

    let refused_by_template = helm(&[
        "template",
        "t",
        CHART_DIR,
        "--set",
        "replicaCount=2,leaderElection.enabled=false",
    ]);
    assert!(!refused_by_template.status.success());
    assert!(String::from_utf8_lossy(&refused_by_template.stderr).contains("leaderElection"));

    for accepted in [
        json!({ "entra": { "authorityHost": "https://login.microsoftonline.us",
                           "graphEndpoint": "https://graph.microsoft.us/" } }),
        json!({ "entra": { "graphEndpoint": "http://127.0.0.1:8443" } }),
        json!({ "logLevel": "entra_operator=debug,kube=warn,info" }),
        json!({ "replicaCount": 1, "leaderElection": { "enabled": false } }),
        json!({ "global": { "imageRegistry": "mirror.example" } }),
    ] {
        template("t", "ops", &accepted);
    }
}

#[test]
fn rendered_manifests_pass_server_side_dry_run() {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (operator_ns, watched_ns) = runtime.block_on(async {
        let client = control_plane.client().await;
        (
            namespace(&client, "dry-run").await,
            namespace(&client, "dry-run-apps").await,
        )
    });
    for values in [
        json!({}),
        json!({ "watchNamespaces": [watched_ns] }),
        json!({ "metrics": { "grafanaDashboard": { "enabled": true } } }),
        // The platform knobs, as the API server reads them.
        json!({
            "networkPolicy": {
                "enabled": true,
                "metricsFrom": [{ "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "monitoring" } } }],
                "apiServerTo": [{ "ipBlock": { "cidr": "10.0.0.1/32" } }],
                "extraEgress": [{ "ports": [{ "port": 3128, "protocol": "TCP" }] }],
            },
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 1, "maxUnavailable": 0 } },
            "deploymentAnnotations": { "owner": "identity" },
            "extraArgs": ["--graph-retry-seconds=60"],
            "extraVolumes": [{ "name": "corporate-ca", "configMap": { "name": "corporate-ca" } }],
            "extraVolumeMounts": [{ "name": "corporate-ca", "mountPath": "/etc/ssl/corporate", "readOnly": true }],
            "extraObjects": [{ "apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": { "name": "corporate-ca", "namespace": "{{ .Release.Namespace }}" },
                               "data": { "ca.crt": "-----BEGIN CERTIFICATE-----" } }],
            "serviceAccount": { "automount": true },
        }),
    ] {
        let manifest = template(&operator_ns, &operator_ns, &values);
        let applied =
            control_plane.kubectl_with_input(&["apply", "--dry-run=server", "-f", "-"], &manifest);
        let stdout = String::from_utf8_lossy(&applied.stdout);
        assert!(
            applied.status.success(),
            "the API server accepts the chart with {values}: {}\n{stdout}",
            String::from_utf8_lossy(&applied.stderr)
        );
        assert_eq!(
            stdout.lines().count(),
            documents(&manifest).len(),
            "every object was applied: {stdout}"
        );
    }
}

#[test]
fn install_creates_every_object_and_uninstall_removes_them() {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(control_plane.client());
    let release = runtime.block_on(namespace(&client, "install"));
    // The defaults guard every namespace.
    let _exclusive = ADMISSION.blocking_write();
    install(control_plane, &release, &release, &json!({}));

    let kubeconfig = control_plane.kubeconfig.to_str().unwrap();
    let manifest = helm_ok(&[
        "get",
        "manifest",
        &release,
        "--kubeconfig",
        kubeconfig,
        "--namespace",
        &release,
    ]);
    let mut kinds: Vec<String> = documents(&manifest)
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_owned())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "Deployment",
            "MutatingAdmissionPolicy",
            "MutatingAdmissionPolicyBinding",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
            "ValidatingAdmissionPolicyBinding",
            "ValidatingAdmissionPolicyBinding",
            "ValidatingAdmissionPolicyBinding",
        ]
    );
    let existing = control_plane.kubectl_with_input(&["get", "-f", "-", "-o", "name"], &manifest);
    assert!(
        existing.status.success(),
        "every object exists: {}",
        String::from_utf8_lossy(&existing.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&existing.stdout).lines().count(),
        kinds.len()
    );

    // An upgrade applies a changed value.
    helm_ok(&[
        "upgrade",
        &release,
        CHART_DIR,
        "--kubeconfig",
        kubeconfig,
        "--namespace",
        &release,
        "--reuse-values",
        "--set",
        "replicaCount=3",
        "--wait=hookOnly",
    ]);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &release);
    let deployment = runtime
        .block_on(deployments.get(&deployment_name(&release)))
        .unwrap();
    assert_eq!(deployment.spec.unwrap().replicas, Some(3));

    uninstall(control_plane, &release, &release);
    let remaining = control_plane.kubectl_with_input(
        &["get", "-f", "-", "-o", "name", "--ignore-not-found"],
        &manifest,
    );
    assert!(remaining.status.success());
    assert_eq!(
        String::from_utf8_lossy(&remaining.stdout).trim(),
        "",
        "uninstall removes every object"
    );
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    assert!(
        runtime
            .block_on(crds.get_opt("entraleases.kms.hanzo.ai"))
            .unwrap()
            .is_some(),
        "uninstall keeps the CRDs, and with them every resource"
    );
}

/// The chart's identity may do what the operator needs, and is refused the rest.
#[tokio::test]
async fn chart_identity_is_refused_what_the_chart_does_not_grant() {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let admin = control_plane.client().await;
    // The all-namespace round guards every namespace.
    let _exclusive = ADMISSION.write().await;
    for mode in ["all namespaces", "single namespace", "namespace list"] {
        let single_namespace = mode != "all namespaces";
        let operator_ns = namespace(&admin, "rbac").await;
        let watched_ns = namespace(&admin, "rbac-apps").await;
        let second_ns = namespace(&admin, "rbac-apps-2").await;
        let other_ns = namespace(&admin, "rbac-other").await;
        let values = match mode {
            "all namespaces" => json!({}),
            // The older single-namespace value, still accepted.
            "single namespace" => json!({ "watchNamespaces": [watched_ns] }),
            _ => json!({ "watchNamespaces": [watched_ns, second_ns] }),
        };
        install(control_plane, &operator_ns, &operator_ns, &values);
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let service_account = deployment_name(&operator_ns);
        service_account_kubeconfig(control_plane, &operator_ns, &service_account, &kubeconfig);
        let client = client_for(&kubeconfig).await;

        // Granted: what the operator does.
        let params = ListParams::default();
        let watched: &[&String] = match mode {
            "namespace list" => &[&watched_ns, &second_ns],
            _ => &[&watched_ns],
        };
        for namespace in watched {
            let secrets = Api::<Secret>::namespaced(client.clone(), namespace);
            until_authorized(&format!("{mode}: Secrets in {namespace}"), || {
                secrets.list_metadata(&params)
            })
            .await;
        }
        Api::<EntraLease>::namespaced(client.clone(), &watched_ns)
            .list(&params)
            .await
            .unwrap_or_else(|e| panic!("{mode}: EntraLeases in the watched namespace: {e}"));
        Api::<Lease>::namespaced(client.clone(), &operator_ns)
            .list(&params)
            .await
            .unwrap_or_else(|e| panic!("{mode}: Leases in the operator namespace: {e}"));
        claim_and_credential_copy_round_trip(&client, &operator_ns)
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        reviews_a_metrics_caller(&client)
            .await
            .unwrap_or_else(|e| panic!("{mode}: reviewing a /metrics caller: {e}"));

        // Refused: everything else.
        let config_map: ConfigMap =
            serde_json::from_value(json!({ "metadata": { "name": "probe" } })).unwrap();
        assert_forbidden(
            mode,
            "create a ConfigMap",
            Api::<ConfigMap>::namespaced(client.clone(), &operator_ns)
                .create(&PostParams::default(), &config_map)
                .await,
        );
        assert_forbidden(
            mode,
            "delete a Namespace",
            Api::<Namespace>::all(client.clone())
                .delete(&other_ns, &DeleteParams::default())
                .await,
        );
        assert_forbidden(
            mode,
            "list Leases outside the operator namespace",
            Api::<Lease>::namespaced(client.clone(), &watched_ns)
                .list(&params)
                .await,
        );
        assert_forbidden(
            mode,
            "list CRDs",
            Api::<CustomResourceDefinition>::all(client.clone())
                .list(&params)
                .await,
        );
        operator_writes_only_its_own_secrets(&admin, &client, mode, &operator_ns, &watched_ns)
            .await;
        if single_namespace {
            assert_forbidden(
                mode,
                "list Secrets outside the watched namespace",
                Api::<Secret>::namespaced(client.clone(), &other_ns)
                    .list_metadata(&params)
                    .await,
            );
            assert_forbidden(
                mode,
                "list EntraLeases in every namespace",
                Api::<EntraLease>::all(client.clone()).list(&params).await,
            );
        }
        uninstall(control_plane, &operator_ns, &operator_ns);
    }
}

/// What the operator asks about a caller of /metrics: a TokenReview, and a SubjectAccessReview for
/// `get` on `/metrics`, cluster-scoped in every install mode.
async fn reviews_a_metrics_caller(client: &kube::Client) -> kube::Result<()> {
    let review: TokenReview =
        serde_json::from_value(json!({ "spec": { "token": "not-a-token" } })).unwrap();
    let reviewed = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    assert_ne!(
        reviewed.status.and_then(|status| status.authenticated),
        Some(true),
        "a garbage token is not authenticated"
    );
    let access: SubjectAccessReview = serde_json::from_value(json!({ "spec": {
        "user": "system:anonymous",
        "nonResourceAttributes": { "path": "/metrics", "verb": "get" },
    }}))
    .unwrap();
    let reviewed = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &access)
        .await?;
    assert!(
        !reviewed.status.is_some_and(|status| status.allowed),
        "anonymous may not read /metrics"
    );
    Ok(())
}

/// The operator's identity may write Secrets where it serves, but the chart's admission policy
/// lets it create, change and delete only lease Secrets (its label and an EntraLease controller
/// owner) and its credential copies in its own namespace: nobody else's Secret, whatever RBAC says.
async fn operator_writes_only_its_own_secrets(
    admin: &kube::Client,
    operator: &kube::Client,
    mode: &str,
    operator_ns: &str,
    watched_ns: &str,
) {
    let secret = |name: &str, metadata: Value| -> Secret {
        let mut object = json!({ "metadata": metadata, "stringData": { "k": "v" } });
        object["metadata"]["name"] = json!(name);
        serde_json::from_value(object).unwrap()
    };
    let managed = json!({ "app.kubernetes.io/managed-by": "entra-operator" });
    let lease_owner = json!([{
        "apiVersion": "kms.hanzo.ai/v1alpha1", "kind": "EntraLease", "name": "probe",
        "uid": "00000000-0000-4000-8000-0000000000aa", "controller": true,
    }]);
    let watched = Api::<Secret>::namespaced(operator.clone(), watched_ns);
    let create = |api: &Api<Secret>, object: Secret| {
        let api = api.clone();
        async move { api.create(&PostParams::default(), &object).await }
    };
    // Allowed: a lease Secret.
    create(
        &watched,
        secret(
            "lease-secret-probe",
            json!({ "labels": managed, "ownerReferences": lease_owner }),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{mode}: a lease Secret: {e}"));
    // The garbage collector may be first: the lease it names does not exist.
    match watched
        .delete("lease-secret-probe", &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => panic!("{mode}: deleting a lease Secret: {e}"),
    }
    // Refused: anything else, in the watched namespace or its own (once the new policy is in
    // force).
    let policy = format!("{operator_ns}-entra-operator-operator-secrets");
    until_refused(
        &policy,
        "create an unlabelled Secret",
        &["plain-first"],
        || async {
            let created = create(&watched, secret("plain-first", json!({}))).await;
            if created.is_ok() {
                let _ = watched
                    .delete("plain-first", &DeleteParams::default())
                    .await;
            }
            created.map(drop)
        },
    )
    .await;
    for (what, api, object) in [
        (
            "create an unlabelled Secret",
            &watched,
            secret("plain", json!({})),
        ),
        (
            "create a labelled Secret no lease owns",
            &watched,
            secret("unowned", json!({ "labels": managed })),
        ),
        (
            "create a credential copy outside its namespace",
            &watched,
            secret(
                "copy-elsewhere",
                json!({ "labels": { "kms.hanzo.ai/credential-copy": "true" } }),
            ),
        ),
        (
            "create an unlabelled Secret in its own namespace",
            &Api::<Secret>::namespaced(operator.clone(), operator_ns),
            secret("plain-own", json!({})),
        ),
    ] {
        assert_forbidden(mode, what, create(api, object).await);
    }
    // Someone else's Secret: not to be taken over, changed or deleted.
    Api::<Secret>::namespaced(admin.clone(), watched_ns)
        .create(&PostParams::default(), &secret("bystander", json!({})))
        .await
        .unwrap();
    let take_over = json!({ "metadata": { "labels": managed, "ownerReferences": lease_owner } });
    assert_forbidden(
        mode,
        "take over another Secret",
        watched
            .patch(
                "bystander",
                &PatchParams::default(),
                &Patch::Merge(&take_over),
            )
            .await,
    );
    assert_forbidden(
        mode,
        "delete another Secret",
        watched.delete("bystander", &DeleteParams::default()).await,
    );
}

fn assert_forbidden<T: std::fmt::Debug>(mode: &str, what: &str, result: kube::Result<T>) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{mode}: the chart's identity may not {what}, got {other:?}"),
    }
}

#[tokio::test]
async fn operator_as_the_chart_deploys_it_runs_a_lease_lifecycle() {
    lease_lifecycle_as_the_chart_identity(false).await;
}

#[tokio::test]
async fn namespace_list_install_runs_a_lease_lifecycle() {
    lease_lifecycle_as_the_chart_identity(true).await;
}

/// Installs the chart, then runs the operator exactly as its Deployment says (args, env, the
/// ServiceAccount's identity, leader election on), and walks one lease from issue to revocation.
async fn lease_lifecycle_as_the_chart_identity(single_namespace: bool) {
    let _turn = OPERATORS.lock().await;
    // With the chart's defaults its admission policies are on: an all-namespace release guards
    // every namespace; a single-namespace one must be the only guard of its namespace.
    let (_exclusive, _shared) = if single_namespace {
        (None, Some(admission_shared().await))
    } else {
        (Some(ADMISSION.write().await), None)
    };
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let admin = control_plane.client().await;
    let operator_ns = namespace(&admin, "chart-op").await;
    let app_ns = namespace(&admin, "chart-app").await;
    let emulator = Emulator::start(Config::sample())
        .await
        .expect("the emulator starts");
    let metrics_port = free_port();
    let health_port = free_port();
    // The chart's defaults, except what a test on one machine must change: the Entra endpoints
    // (the emulator) and the ports (tests run in parallel).
    let mut values = json!({
        "entra": { "authorityHost": emulator.base_url(), "graphEndpoint": emulator.base_url() },
        "metrics": { "port": metrics_port },
        "health": { "port": health_port },
    });
    // Namespace-scoped mode serves a list: the app's namespace and a second one, each through a
    // Role of its own and a watch of its own.
    let second_ns = namespace(&admin, "chart-app-2").await;
    if single_namespace {
        values["watchNamespaces"] = json!([app_ns, second_ns]);
        values["logFormat"] = json!("text");
        values["logLevel"] = json!("entra_operator=debug,info");
    }
    let release = operator_ns.clone();
    install(control_plane, &release, &operator_ns, &values);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let deployment = chart_operator(control_plane, &release, &operator_ns, &kubeconfig).await;
    let pod_name = format!("{}-7d4b9c-x2x9z", deployment_name(&release));
    let mut pod = OperatorPod::start(&deployment, &pod_name, &kubeconfig);

    // The probes the kubelet would send; /metrics only for a token the chart authorizes
    // (tests/metrics_auth.rs), none by default.
    entra_operator::tls::install_crypto_provider();
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{health_port}");
    pod.wait_for("/readyz to answer 200", || async {
        let response = http.get(format!("{base}/readyz")).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    let response = http.get(format!("{base}/livez")).send().await.unwrap();
    assert!(response.status().is_success(), "/livez: {response:?}");
    let response = http
        .get(format!("https://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "/metrics without a token");
    let holder = pod
        .wait_for("a holder of the leader-election Lease", || async {
            Api::<Lease>::namespaced(admin.clone(), &operator_ns)
                .get_opt(&format!("{}-leader", deployment_name(&release)))
                .await
                .unwrap()
                .and_then(|lease| lease.spec?.holder_identity)
                .filter(|holder| !holder.is_empty())
        })
        .await;
    assert!(holder.contains(&pod_name), "the leader is {holder:?}");

    // The product flow, with resources created by an administrator.
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &app_ns);
    secrets
        .create(
            &PostParams::default(),
            &client_secret("entra-app", CLIENT_SECRET),
        )
        .await
        .unwrap();
    let pools: Api<EntraDynamicSecret> = Api::namespaced(admin.clone(), &app_ns);
    let pool: EntraDynamicSecret = serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraDynamicSecret",
        "metadata": { "name": "contoso" },
        "spec": {
            "tenantId": "contoso.onmicrosoft.com",
            "applicationId": APP_ID,
            "clientSecretRef": { "name": "entra-app" },
            "users": [sample::ALICE.upn],
            "defaultTTL": "1h",
            "maxTTL": "2h",
        }
    }))
    .unwrap();
    pools.create(&PostParams::default(), &pool).await.unwrap();
    // The same pool in the second namespace, served too.
    Api::<Secret>::namespaced(admin.clone(), &second_ns)
        .create(
            &PostParams::default(),
            &client_secret("entra-app", CLIENT_SECRET),
        )
        .await
        .unwrap();
    let second_pools: Api<EntraDynamicSecret> = Api::namespaced(admin.clone(), &second_ns);
    second_pools
        .create(&PostParams::default(), &pool)
        .await
        .unwrap();
    for pools in [&pools, &second_pools] {
        pod.wait_for("the dynamic secrets to be Ready", || async {
            pools.get_opt("contoso").await.unwrap().filter(|pool| {
                pool.status.as_ref().is_some_and(|status| {
                    status
                        .conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            })
        })
        .await;
    }

    let leases: Api<EntraLease> = Api::namespaced(admin.clone(), &app_ns);
    let lease: EntraLease = serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraLease",
        "metadata": { "name": "ci" },
        "spec": { "dynamicSecretRef": { "name": "contoso" }, "ttl": "30m" }
    }))
    .unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    let active = pod
        .wait_for("the lease to be Active", || async {
            leases.get_opt("ci").await.unwrap().filter(|lease| {
                lease.status.as_ref().and_then(|s| s.phase) == Some(LeasePhase::Active)
            })
        })
        .await;
    let secret_name = active.status.unwrap().secret_name.unwrap();
    let data = secrets.get(&secret_name).await.unwrap().data.unwrap();
    let text = |key: &str| String::from_utf8(data[key].0.clone()).unwrap();
    let (username, password) = (text("username"), text("password"));
    assert_eq!(username, sample::ALICE.upn);
    assert!(
        emulator.sign_in(&username, &password),
        "the issued password works"
    );
    let claims: Api<Lease> = Api::namespaced(admin.clone(), &operator_ns);
    assert!(
        claims
            .get_opt(&format!("entra-user-{}", sample::ALICE.id))
            .await
            .unwrap()
            .is_some(),
        "the user is claimed in the operator's namespace"
    );

    leases.delete("ci", &DeleteParams::default()).await.unwrap();
    pod.wait_for("the lease to be gone", || async {
        leases.get_opt("ci").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(
        !emulator.sign_in(&username, &password),
        "the revoked password no longer works"
    );
    assert!(secrets.get_opt(&secret_name).await.unwrap().is_none());

    let events = Api::<Event>::namespaced(admin.clone(), &app_ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reporting_controller.as_deref() == Some("entra-operator")),
        "the operator recorded Events"
    );

    // Deleting the dynamic secret ends its leases first: the operator deletes them.
    let mut lease = lease;
    lease.metadata.name = Some("teardown".to_owned());
    leases.create(&PostParams::default(), &lease).await.unwrap();
    pod.wait_for("the second lease to be Active", || async {
        leases
            .get_opt("teardown")
            .await
            .unwrap()
            .filter(|lease| lease.status.as_ref().and_then(|s| s.phase) == Some(LeasePhase::Active))
    })
    .await;
    pools
        .delete("contoso", &DeleteParams::default())
        .await
        .unwrap();
    pod.wait_for("the dynamic secret and its lease to be gone", || async {
        let pool_gone = pools.get_opt("contoso").await.unwrap().is_none();
        let lease_gone = leases.get_opt("teardown").await.unwrap().is_none();
        (pool_gone && lease_gone).then_some(())
    })
    .await;

    assert!(pod.is_running(), "still running:\n{}", pod.log_tail());
    let logs = pod.logs();
    assert!(
        !logs.to_ascii_lowercase().contains("forbidden"),
        "the chart's RBAC let the operator do everything it tried:\n{logs}"
    );
    pod.kill();
    uninstall(control_plane, &release, &operator_ns);
}

/// What the operator does in its own namespace: a user claim carrying its finalizer, which it
/// removes, and a copy of an app credential; in every install, also a single-namespace one.
async fn claim_and_credential_copy_round_trip(
    client: &kube::Client,
    operator_ns: &str,
) -> Result<(), String> {
    let labels = json!({
        "app.kubernetes.io/managed-by": "entra-operator",
        "kms.hanzo.ai/credential-copy": "true",
    });
    let claims = Api::<Lease>::namespaced(client.clone(), operator_ns);
    let claim: Lease = serde_json::from_value(json!({
        "metadata": {
            "name": "entra-user-probe",
            "labels": { "app.kubernetes.io/managed-by": "entra-operator" },
            "finalizers": [REVOKE],
        },
        "spec": { "holderIdentity": "probe" },
    }))
    .unwrap();
    let what = |verb: &str, e: kube::Error| format!("{verb} in the operator namespace: {e}");
    claims
        .create(&PostParams::default(), &claim)
        .await
        .map_err(|e| what("create a claim", e))?;
    claims
        .patch(
            "entra-user-probe",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "holderIdentity": "probe-2" } })),
        )
        .await
        .map_err(|e| what("patch a claim", e))?;
    let mut current = claims
        .get("entra-user-probe")
        .await
        .map_err(|e| what("get a claim", e))?;
    current.metadata.finalizers = None;
    claims
        .replace("entra-user-probe", &PostParams::default(), &current)
        .await
        .map_err(|e| what("update a claim (its finalizer removed)", e))?;
    claims
        .delete("entra-user-probe", &DeleteParams::default())
        .await
        .map_err(|e| what("delete a claim", e))?;

    let secrets = Api::<Secret>::namespaced(client.clone(), operator_ns);
    let copy: Secret = serde_json::from_value(json!({
        "metadata": { "name": "credential-copy-probe", "labels": labels },
        "stringData": { "clientSecret": "probe" },
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &copy)
        .await
        .map_err(|e| what("create a credential copy", e))?;
    secrets
        .patch(
            "credential-copy-probe",
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": { "clientSecret": "probe-2" } })),
        )
        .await
        .map_err(|e| what("patch a credential copy", e))?;
    secrets
        .list(&ListParams::default().labels("kms.hanzo.ai/credential-copy=true"))
        .await
        .map_err(|e| what("list credential copies", e))?;
    secrets
        .delete("credential-copy-probe", &DeleteParams::default())
        .await
        .map_err(|e| what("delete a credential copy", e))?;
    Ok(())
}

const REVOKE: &str = "kms.hanzo.ai/revoke";
const END_LEASES: &str = "kms.hanzo.ai/end-leases";

/// A ClusterRole the chart ships to aggregate into the built-in roles.
fn is_aggregated(role: &&Value) -> bool {
    role["metadata"]["labels"]
        .as_object()
        .is_some_and(|labels| {
            labels
                .keys()
                .any(|k| k.starts_with("rbac.authorization.k8s.io/aggregate-to-"))
        })
}

#[test]
fn admission_policies_and_aggregated_roles_follow_their_values() {
    let named = |objects: &[Value], kind: &str| -> Vec<String> {
        let mut names: Vec<String> = objects
            .iter()
            .filter(|o| o["kind"] == kind)
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    let defaults = documents(&template("team-a", "ops", &json!({})));
    let policies = [
        "team-a-entra-operator-claims",
        "team-a-entra-operator-finalizers",
        "team-a-entra-operator-operator-secrets",
        "team-a-entra-operator-status",
    ];
    assert_eq!(named(&defaults, "ValidatingAdmissionPolicy"), policies);
    assert_eq!(
        named(&defaults, "ValidatingAdmissionPolicyBinding"),
        policies
    );
    // The finalizer's policy (tests/chart_values.rs) guards nothing: it adds.
    for kind in ["MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"] {
        assert_eq!(named(&defaults, kind), ["team-a-entra-operator-finalizer"]);
    }
    let secrets_policy = defaults
        .iter()
        .find(|o| o["metadata"]["name"] == "team-a-entra-operator-operator-secrets")
        .unwrap();
    assert_eq!(
        secrets_policy["spec"]["matchConditions"][0]["expression"],
        "request.userInfo.username == \"system:serviceaccount:ops:team-a-entra-operator\"",
        "the Secret policy judges the operator's own requests only"
    );
    for policy in defaults.iter().filter(|o| {
        o["kind"] == "ValidatingAdmissionPolicy"
            && o["metadata"]["name"] != "team-a-entra-operator-operator-secrets"
    }) {
        let text = policy.to_string();
        assert_eq!(policy["spec"]["failurePolicy"], "Fail");
        assert!(
            text.contains("system:serviceaccount:ops:team-a-entra-operator")
                && text.contains("system:masters"),
            "the policy trusts the operator and break-glass: {text}"
        );
    }
    // The claims' binding is the release namespace's alone (tests/chart_values.rs).
    for binding in defaults.iter().filter(|o| {
        o["kind"] == "ValidatingAdmissionPolicyBinding"
            && o["metadata"]["name"] != "team-a-entra-operator-claims"
    }) {
        assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
        assert_eq!(
            binding["spec"]["matchResources"]["namespaceSelector"],
            json!({}),
            "every namespace, as the operator watches"
        );
    }
    let aggregated: Vec<&Value> = defaults
        .iter()
        .filter(|o| o["kind"] == "ClusterRole")
        .filter(is_aggregated)
        .collect();
    assert_eq!(aggregated.len(), 3, "lease editor, pool editor, viewer");
    for role in &aggregated {
        for rule in role["rules"].as_array().unwrap() {
            for resource in rule["resources"].as_array().unwrap() {
                let resource = resource.as_str().unwrap();
                assert!(
                    !resource.contains('/') && resource != "*",
                    "{} grants {resource}",
                    role["metadata"]["name"]
                );
            }
        }
    }
    let aggregates_to = |role: &str| -> Vec<String> {
        let role = aggregated
            .iter()
            .find(|r| r["metadata"]["name"] == role)
            .unwrap_or_else(|| panic!("{role} is rendered"));
        let mut to: Vec<String> = role["metadata"]["labels"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| *v == "true")
            .filter_map(|(k, _)| k.strip_prefix("rbac.authorization.k8s.io/aggregate-to-"))
            .map(str::to_owned)
            .collect();
        to.sort();
        to
    };
    assert_eq!(
        aggregates_to("team-a-entra-operator-lease-editor"),
        ["admin", "edit"]
    );
    assert_eq!(
        aggregates_to("team-a-entra-operator-pool-editor"),
        ["admin"]
    );
    assert_eq!(aggregates_to("team-a-entra-operator-viewer"), ["view"]);

    let single = documents(&template(
        "team-b",
        "ops-b",
        &json!({
            "watchNamespaces": ["apps-b"],
            "admissionPolicies": { "breakGlassGroups": ["platform:breakglass", "system:masters"] },
        }),
    ));
    for binding in single.iter().filter(|o| {
        (o["kind"] == "ValidatingAdmissionPolicyBinding"
            || o["kind"] == "MutatingAdmissionPolicyBinding")
            && o["metadata"]["name"] != "team-b-entra-operator-operator-secrets"
            && o["metadata"]["name"] != "team-b-entra-operator-claims"
    }) {
        assert_eq!(
            binding["spec"]["matchResources"]["namespaceSelector"],
            json!({ "matchLabels": { "kubernetes.io/metadata.name": "apps-b" } }),
            "only the watched namespace"
        );
    }
    let status = single
        .iter()
        .find(|o| o["metadata"]["name"] == "team-b-entra-operator-status")
        .unwrap()
        .to_string();
    assert!(status.contains("platform:breakglass"), "{status}");
    assert!(
        status.contains("system:serviceaccount:ops-b:team-b-entra-operator"),
        "{status}"
    );

    let off = documents(&template(
        "team-c",
        "ops",
        &json!({
            "admissionPolicies": { "enabled": false },
            "rbac": { "aggregateToDefaultRoles": false },
        }),
    ));
    assert!(!off.iter().any(|o| {
        let kind = o["kind"].as_str().unwrap();
        kind.starts_with("ValidatingAdmissionPolicy") || kind.starts_with("MutatingAdmissionPolicy")
    }));
    assert!(
        off.iter()
            .filter(|o| o["kind"] == "ClusterRole")
            .all(|o| !is_aggregated(&o)),
        "no aggregated roles"
    );

    for (values, field) in [
        (
            json!({ "admissionPolicies": { "enabled": "yes" } }),
            "enabled",
        ),
        (
            json!({ "admissionPolicies": { "breakGlassGroups": [""] } }),
            "breakGlassGroups",
        ),
        (
            json!({ "admissionPolicies": { "breakGlassGroup": "x" } }),
            "breakGlassGroup",
        ),
        (json!({ "rbac": { "aggregate": true } }), "aggregate"),
    ] {
        let (_dir, file) = support::chart::values_file(&values);
        let output = helm(&["template", "t", CHART_DIR, "-f", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{values} was accepted");
        assert!(
            stderr.contains("schema") && stderr.contains(field),
            "the refusal of {values} names {field}: {stderr}"
        );
    }
}

/// A release installed for a test, uninstalled when the test ends, also when it fails (a failed
/// test must not leave its policies guarding namespaces for the next one).
struct Installed {
    release: String,
    namespace: String,
}

impl Installed {
    fn new(release: &str, namespace: &str, values: &Value) -> Installed {
        install(ControlPlane::shared(), release, namespace, values);
        Installed {
            release: release.to_owned(),
            namespace: namespace.to_owned(),
        }
    }

    /// The name of the release's objects (and of its ServiceAccount).
    fn full_name(&self) -> String {
        deployment_name(&self.release)
    }

    fn status_policy(&self) -> String {
        format!("{}-status", self.full_name())
    }

    fn finalizers_policy(&self) -> String {
        format!("{}-finalizers", self.full_name())
    }

    /// A client for the release's operator ServiceAccount, as its pods run.
    async fn operator(&self, dir: &Path) -> kube::Client {
        let kubeconfig = dir.join(format!("{}.kubeconfig", self.release));
        service_account_kubeconfig(
            ControlPlane::shared(),
            &self.namespace,
            &self.full_name(),
            &kubeconfig,
        );
        client_for(&kubeconfig).await
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let output = helm(&[
            "uninstall",
            &self.release,
            "--kubeconfig",
            ControlPlane::shared().kubeconfig.to_str().unwrap(),
            "--namespace",
            &self.namespace,
        ]);
        if !output.status.success() && !std::thread::panicking() {
            panic!(
                "helm uninstall {}: {}",
                self.release,
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

/// A ServiceAccount `name` of `namespace`, bound there to ClusterRole `cluster_role` and, when
/// `wildcard`, to a Role granting everything in kms.hanzo.ai (status included, as wildcard roles
/// in real clusters do); a client that authenticates as it.
async fn tenant(
    admin: &kube::Client,
    dir: &Path,
    namespace: &str,
    name: &str,
    cluster_role: &str,
    wildcard: bool,
) -> kube::Client {
    let pp = PostParams::default();
    let account: ServiceAccount =
        serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
    Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
        .create(&pp, &account)
        .await
        .unwrap();
    let bindings = Api::<RoleBinding>::namespaced(admin.clone(), namespace);
    let bind = |role_kind: &str, role: &str| -> RoleBinding {
        serde_json::from_value(json!({
            "metadata": { "name": format!("{name}-{role}") },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role },
            "subjects": [{ "kind": "ServiceAccount", "name": name, "namespace": namespace }],
        }))
        .unwrap()
    };
    bindings
        .create(&pp, &bind("ClusterRole", cluster_role))
        .await
        .unwrap();
    if wildcard {
        let role: Role = serde_json::from_value(json!({
            "metadata": { "name": format!("{name}-entra-everything") },
            "rules": [{ "apiGroups": ["kms.hanzo.ai"], "resources": ["*"], "verbs": ["*"] }],
        }))
        .unwrap();
        Api::<Role>::namespaced(admin.clone(), namespace)
            .create(&pp, &role)
            .await
            .unwrap();
        bindings
            .create(&pp, &bind("Role", &format!("{name}-entra-everything")))
            .await
            .unwrap();
    }
    let kubeconfig = dir.join(format!("{namespace}-{name}.kubeconfig"));
    service_account_kubeconfig(ControlPlane::shared(), namespace, name, &kubeconfig);
    client_for(&kubeconfig).await
}

fn leases_of(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<EntraLease>(&()),
    )
}

fn pools_of(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<EntraDynamicSecret>(&()),
    )
}

/// Creates, as `admin`, an EntraLease `name` carrying the operator's finalizer.
async fn guarded_lease(admin: &kube::Client, namespace: &str, name: &str) -> DynamicObject {
    let lease: EntraLease = serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraLease",
        "metadata": { "name": name, "finalizers": [REVOKE] },
        "spec": { "dynamicSecretRef": { "name": "pool" }, "ttl": "30m" },
    }))
    .unwrap();
    let lease = Api::<EntraLease>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &lease)
        .await
        .unwrap();
    leases_of(admin, namespace)
        .get(&lease.metadata.name.unwrap())
        .await
        .unwrap()
}

/// Creates, as `admin`, an EntraDynamicSecret `name` carrying the operator's finalizer.
async fn guarded_pool(admin: &kube::Client, namespace: &str, name: &str) {
    let pool: EntraDynamicSecret = serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraDynamicSecret",
        "metadata": { "name": name, "finalizers": [END_LEASES] },
        "spec": {
            "tenantId": "contoso.onmicrosoft.com",
            "applicationId": APP_ID,
            "clientSecretRef": { "name": "entra-app" },
            "users": [sample::ALICE.upn],
            "defaultTTL": "1h",
            "maxTTL": "2h",
        }
    }))
    .unwrap();
    Api::<EntraDynamicSecret>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &pool)
        .await
        .unwrap();
}

fn merge(patch: Value) -> Patch<Value> {
    Patch::Merge(patch)
}

async fn patch(api: &Api<DynamicObject>, name: &str, body: Value) -> kube::Result<()> {
    api.patch(name, &PatchParams::default(), &merge(body))
        .await
        .map(drop)
}

async fn patch_status(api: &Api<DynamicObject>, name: &str, body: Value) -> kube::Result<()> {
    api.patch_status(name, &PatchParams::default(), &merge(body))
        .await
        .map(drop)
}

/// Polls `probe` every 100 ms until it holds, at most 60 s.
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !probe().await {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn finalizers(object: &DynamicObject) -> Vec<String> {
    object.metadata.finalizers.clone().unwrap_or_default()
}

/// A release guarding `apps` (watching it alone, or every namespace), a tenant there (edit, plus a wildcard Role on
/// kms.hanzo.ai) and the operator's identity.
struct Guarded {
    installed: Installed,
    apps: String,
    tenant: kube::Client,
    operator: kube::Client,
    _dir: tempfile::TempDir,
}

async fn guarded(admin: &kube::Client, prefix: &str, values: Value) -> Guarded {
    guarded_in(admin, prefix, values, false).await
}

async fn guarded_in(
    admin: &kube::Client,
    prefix: &str,
    values: Value,
    every_namespace: bool,
) -> Guarded {
    install_crds(ControlPlane::shared());
    let operator_ns = namespace(admin, prefix).await;
    let apps = namespace(admin, &format!("{prefix}-apps")).await;
    let mut values = values;
    if !every_namespace {
        values["watchNamespaces"] = json!([apps]);
    }
    let installed = Installed::new(&operator_ns, &operator_ns, &values);
    let dir = tempfile::tempdir().unwrap();
    let tenant = tenant(admin, dir.path(), &apps, "tenant", "edit", true).await;
    let operator = installed.operator(dir.path()).await;
    Guarded {
        installed,
        apps,
        tenant,
        operator,
        _dir: dir,
    }
}

impl Guarded {
    /// Waits until both policies refuse the tenant in `apps`, using a lease of its own.
    async fn wait_for_policies(&self, admin: &kube::Client) {
        guarded_lease(admin, &self.apps, "policy-probe").await;
        let tenant = leases_of(&self.tenant, &self.apps);
        let admin_leases = leases_of(admin, &self.apps);
        until_refused(
            &self.installed.status_policy(),
            "the tenant writes a lease's status",
            &[],
            || {
                patch_status(
                    &tenant,
                    "policy-probe",
                    json!({ "status": { "phase": "Failed" } }),
                )
            },
        )
        .await;
        until_refused(
            &self.installed.finalizers_policy(),
            "the tenant strips a lease's finalizer",
            &[],
            || {
                let (tenant, admin_leases) = (tenant.clone(), admin_leases.clone());
                async move {
                    patch(
                        &admin_leases,
                        "policy-probe",
                        json!({ "metadata": { "finalizers": [REVOKE] } }),
                    )
                    .await
                    .unwrap();
                    patch(
                        &tenant,
                        "policy-probe",
                        json!({ "metadata": { "finalizers": null } }),
                    )
                    .await
                }
            },
        )
        .await;
    }
}

/// The tenant of a namespace, with `edit` and even a wildcard role on kms.hanzo.ai, may neither
/// write status nor remove the operator's finalizers; the operator's ServiceAccount and the
/// break-glass group (the admin is in system:masters) may.
#[tokio::test]
async fn admission_policies_refuse_a_tenant_and_let_the_operator_and_break_glass_through() {
    let _shared = admission_shared().await;
    tenant_refused_operator_and_break_glass_allowed(false).await;
}

/// The same with a release that watches, and guards, every namespace.
#[tokio::test]
async fn admission_policies_of_an_all_namespace_release_refuse_a_tenant() {
    let _exclusive = ADMISSION.write().await;
    tenant_refused_operator_and_break_glass_allowed(true).await;
}

async fn tenant_refused_operator_and_break_glass_allowed(every_namespace: bool) {
    let admin = ControlPlane::shared().client().await;
    let guarded = guarded_in(&admin, "guard", json!({}), every_namespace).await;
    let apps = &guarded.apps;
    let operator_sa = format!(
        "system:serviceaccount:{}:{}",
        guarded.installed.namespace,
        guarded.installed.full_name()
    );
    let who = [operator_sa.as_str(), "system:masters"];
    guarded_lease(&admin, apps, "ci").await;
    guarded_pool(&admin, apps, "pool").await;
    let tenant_leases = leases_of(&guarded.tenant, apps);
    let tenant_pools = pools_of(&guarded.tenant, apps);
    let admin_leases = leases_of(&admin, apps);

    // Status: deadlines, phase, counts.
    let status = guarded.installed.status_policy();
    let message = until_refused(&status, "the tenant moves a lease's deadline", &who, || {
        patch_status(
            &tenant_leases,
            "ci",
            json!({ "status": { "phase": "Active", "expiresAt": "2099-01-01T00:00:00Z" } }),
        )
    })
    .await;
    assert!(
        message.contains("may not write entraleases/status"),
        "{message}"
    );
    until_refused(&status, "the tenant writes a pool's status", &who, || {
        patch_status(
            &tenant_pools,
            "pool",
            json!({ "status": { "available": 7 } }),
        )
    })
    .await;

    // Finalizers: adding one, and removing another than the operator's, stays allowed.
    until_authorized("the tenant adds a finalizer", || {
        patch(
            &tenant_leases,
            "ci",
            json!({ "metadata": { "finalizers": [REVOKE, "example.com/hold"] } }),
        )
    })
    .await;
    until_authorized("the tenant removes its own finalizer", || {
        patch(
            &tenant_leases,
            "ci",
            json!({ "metadata": { "finalizers": [REVOKE] } }),
        )
    })
    .await;
    let finalizers_policy = guarded.installed.finalizers_policy();
    let message = until_refused(
        &finalizers_policy,
        "the tenant strips a lease's finalizer",
        &who,
        || {
            let (tenant, admin) = (tenant_leases.clone(), admin_leases.clone());
            async move {
                patch(
                    &admin,
                    "ci",
                    json!({ "metadata": { "finalizers": [REVOKE] } }),
                )
                .await
                .unwrap();
                patch(&tenant, "ci", json!({ "metadata": { "finalizers": null } })).await
            }
        },
    )
    .await;
    assert!(message.contains(REVOKE), "{message}");
    // The attack: delete, then strip before the operator revoked.
    tenant_leases
        .delete("ci", &DeleteParams::default())
        .await
        .unwrap();
    let result = patch(
        &tenant_leases,
        "ci",
        json!({ "metadata": { "finalizers": [] } }),
    )
    .await;
    assert!(
        refusal_by(&finalizers_policy, &result).is_some(),
        "a deleted lease's finalizer stays: {result:?}"
    );
    let deleting = admin_leases.get("ci").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert_eq!(finalizers(&deleting), [REVOKE]);
    let message = until_refused(
        &finalizers_policy,
        "the tenant strips a pool's finalizer",
        &who,
        || {
            patch(
                &tenant_pools,
                "pool",
                json!({ "metadata": { "finalizers": null } }),
            )
        },
    )
    .await;
    assert!(message.contains(END_LEASES), "{message}");

    // The operator's ServiceAccount may do both.
    let operator_leases = leases_of(&guarded.operator, apps);
    let operator_pools = pools_of(&guarded.operator, apps);
    until_authorized("the operator writes a pool's status", || {
        patch_status(
            &operator_pools,
            "pool",
            json!({ "status": { "available": 1 } }),
        )
    })
    .await;
    until_authorized("the operator writes a lease's status", || {
        patch_status(
            &operator_leases,
            "ci",
            json!({ "status": { "phase": "Revoking" } }),
        )
    })
    .await;
    until_authorized("the operator removes a lease's finalizer", || {
        patch(
            &operator_leases,
            "ci",
            json!({ "metadata": { "finalizers": null } }),
        )
    })
    .await;
    assert!(
        admin_leases.get_opt("ci").await.unwrap().is_none(),
        "the lease is gone"
    );
    until_authorized("the operator removes a pool's finalizer", || {
        patch(
            &operator_pools,
            "pool",
            json!({ "metadata": { "finalizers": null } }),
        )
    })
    .await;

    // Break-glass: the admin is in system:masters.
    guarded_lease(&admin, apps, "stuck").await;
    patch_status(
        &admin_leases,
        "stuck",
        json!({ "status": { "phase": "Failed" } }),
    )
    .await
    .expect("break-glass writes status");
    admin_leases
        .delete("stuck", &DeleteParams::default())
        .await
        .unwrap();
    patch(
        &admin_leases,
        "stuck",
        json!({ "metadata": { "finalizers": null } }),
    )
    .await
    .expect("break-glass removes the finalizer");
    assert!(admin_leases.get_opt("stuck").await.unwrap().is_none());
}

/// The garbage collector (running as its own ServiceAccount) and the namespace controller work
/// under the policies: owned Secrets are collected in background, foreground and orphan deletes,
/// and a namespace goes once the operator removed its finalizers.
#[tokio::test]
async fn admission_policies_leave_the_garbage_collector_and_namespace_controller_alone() {
    let _shared = admission_shared().await;
    let admin = ControlPlane::shared().client().await;
    let guarded = guarded(&admin, "gc", json!({})).await;
    guarded.wait_for_policies(&admin).await;
    let apps = &guarded.apps;
    let admin_leases = leases_of(&admin, apps);
    let operator_leases = leases_of(&guarded.operator, apps);
    let tenant_leases = leases_of(&guarded.tenant, apps);
    let secrets = Api::<Secret>::namespaced(admin.clone(), apps);

    for propagation in [
        PropagationPolicy::Background,
        PropagationPolicy::Foreground,
        PropagationPolicy::Orphan,
    ] {
        let name = format!("{propagation:?}").to_ascii_lowercase();
        let lease = guarded_lease(&admin, apps, &name).await;
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "ownerReferences": [{
                    "apiVersion": "kms.hanzo.ai/v1alpha1",
                    "kind": "EntraLease",
                    "name": name,
                    "uid": lease.metadata.uid.clone().unwrap(),
                    "controller": true,
                    "blockOwnerDeletion": true,
                }],
            },
            "stringData": { "password": "x" },
        }))
        .unwrap();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
        let params = DeleteParams {
            propagation_policy: Some(propagation.clone()),
            ..DeleteParams::default()
        };
        until_authorized("the tenant deletes a lease", || {
            tenant_leases.delete(&name, &params)
        })
        .await;
        match propagation {
            PropagationPolicy::Foreground => {
                eventually(
                    "the collector deletes the dependent, then its own finalizer",
                    || async {
                        let lease = admin_leases.get(&name).await.unwrap();
                        secrets.get_opt(&name).await.unwrap().is_none()
                            && finalizers(&lease) == [REVOKE]
                    },
                )
                .await;
            }
            PropagationPolicy::Orphan => {
                eventually(
                    "the collector orphans the dependent, then drops its finalizer",
                    || async {
                        let lease = admin_leases.get(&name).await.unwrap();
                        let secret = secrets.get(&name).await.unwrap();
                        secret
                            .metadata
                            .owner_references
                            .unwrap_or_default()
                            .is_empty()
                            && finalizers(&lease) == [REVOKE]
                    },
                )
                .await;
            }
            _ => {}
        }
        until_authorized("the operator removes the finalizer", || {
            patch(
                &operator_leases,
                &name,
                json!({ "metadata": { "finalizers": null } }),
            )
        })
        .await;
        eventually("the lease to be gone", || async {
            admin_leases.get_opt(&name).await.unwrap().is_none()
        })
        .await;
        match propagation {
            PropagationPolicy::Orphan => {
                assert!(
                    secrets.get_opt(&name).await.unwrap().is_some(),
                    "orphaned, kept"
                );
            }
            _ => {
                eventually("the owned Secret to be collected", || async {
                    secrets.get_opt(&name).await.unwrap().is_none()
                })
                .await;
            }
        }
    }

    // The namespace controller deletes the leases of a deleted namespace, and the namespace goes
    // once their finalizers are removed. Here by break-glass: in a single-namespace install the
    // operator's Role lives in that namespace, and the namespace controller may delete it first.
    guarded_lease(&admin, apps, "last").await;
    Api::<Namespace>::all(admin.clone())
        .delete(apps, &DeleteParams::default())
        .await
        .unwrap();
    eventually("the namespace controller to delete the leases", || async {
        let leases = admin_leases.list(&ListParams::default()).await.unwrap();
        !leases.items.is_empty()
            && leases
                .items
                .iter()
                .all(|lease| lease.metadata.deletion_timestamp.is_some())
    })
    .await;
    for lease in admin_leases.list(&ListParams::default()).await.unwrap() {
        let name = lease.metadata.name.unwrap();
        patch(
            &admin_leases,
            &name,
            json!({ "metadata": { "finalizers": null } }),
        )
        .await
        .expect("break-glass removes the finalizer in a terminating namespace");
    }
    eventually("the namespace to be gone", || async {
        Api::<Namespace>::all(admin.clone())
            .get_opt(apps)
            .await
            .unwrap()
            .is_none()
    })
    .await;
}

/// With admissionPolicies.enabled=false the same tenant, with the same roles, may write status
/// and strip the finalizer: what refused it above is the policy, not RBAC.
#[tokio::test]
async fn without_admission_policies_the_wildcard_tenant_writes_status() {
    let _shared = admission_shared().await;
    let admin = ControlPlane::shared().client().await;
    let guarded = guarded(
        &admin,
        "noguard",
        json!({ "admissionPolicies": { "enabled": false } }),
    )
    .await;
    let apps = &guarded.apps;
    guarded_lease(&admin, apps, "ci").await;
    guarded_pool(&admin, apps, "pool").await;
    let tenant_leases = leases_of(&guarded.tenant, apps);
    until_authorized("the tenant writes a lease's status", || {
        patch_status(
            &tenant_leases,
            "ci",
            json!({ "status": { "phase": "Failed" } }),
        )
    })
    .await;
    let tenant_pools = pools_of(&guarded.tenant, apps);
    until_authorized("the tenant writes a pool's status", || {
        patch_status(
            &tenant_pools,
            "pool",
            json!({ "status": { "available": 7 } }),
        )
    })
    .await;
    let admin_leases = leases_of(&admin, apps);
    assert_eq!(
        admin_leases.get("ci").await.unwrap().data["status"]["phase"],
        "Failed"
    );
    until_authorized("the tenant strips the finalizer", || {
        patch(
            &tenant_leases,
            "ci",
            json!({ "metadata": { "finalizers": null } }),
        )
    })
    .await;
    assert!(finalizers(&admin_leases.get("ci").await.unwrap()).is_empty());
}

/// Two releases watching different namespaces: each one's policies guard its own namespace, and
/// each operator still removes its finalizers and writes status there.
#[tokio::test]
async fn two_releases_do_not_lock_each_other_out() {
    let _shared = admission_shared().await;
    let admin = ControlPlane::shared().client().await;
    let first = guarded(&admin, "twin-a", json!({})).await;
    let second = guarded(&admin, "twin-b", json!({})).await;
    first.wait_for_policies(&admin).await;
    second.wait_for_policies(&admin).await;
    for guarded in [&first, &second] {
        let apps = &guarded.apps;
        guarded_lease(&admin, apps, "ci").await;
        let operator_leases = leases_of(&guarded.operator, apps);
        until_authorized("the operator writes status in its namespace", || {
            patch_status(
                &operator_leases,
                "ci",
                json!({ "status": { "phase": "Revoking" } }),
            )
        })
        .await;
        leases_of(&admin, apps)
            .delete("ci", &DeleteParams::default())
            .await
            .unwrap();
        until_authorized(
            "the operator removes its finalizer in its namespace",
            || {
                patch(
                    &operator_leases,
                    "ci",
                    json!({ "metadata": { "finalizers": null } }),
                )
            },
        )
        .await;
        assert!(
            leases_of(&admin, apps)
                .get_opt("ci")
                .await
                .unwrap()
                .is_none()
        );
    }
}

/// A lease user (`edit`, into which the chart's lease editor aggregates, and nothing else) gets
/// every new lease back from the create call already carrying the operator's finalizer: the
/// chart's MutatingAdmissionPolicy adds it, so the operator need not. A lease's own finalizers
/// stay, ours comes once, and a lease created with it passes the finalizers policy untouched.
#[tokio::test]
async fn a_lease_user_s_new_leases_carry_the_revoke_finalizer_from_the_create_call() {
    let _shared = admission_shared().await;
    let admin = ControlPlane::shared().client().await;
    let guarded = guarded(&admin, "finalizer", json!({})).await;
    let apps = &guarded.apps;
    let dir = tempfile::tempdir().unwrap();
    let user = tenant(&admin, dir.path(), apps, "lease-user", "edit", false).await;
    let leases = Api::<EntraLease>::namespaced(user, apps);
    let lease = |name: &str, finalizers: &[&str]| -> EntraLease {
        let mut metadata = json!({ "name": name });
        if !finalizers.is_empty() {
            metadata["finalizers"] = json!(finalizers);
        }
        serde_json::from_value(json!({
            "apiVersion": "kms.hanzo.ai/v1alpha1",
            "kind": "EntraLease",
            "metadata": metadata,
            "spec": { "dynamicSecretRef": { "name": "pool" }, "ttl": "30m" },
        }))
        .unwrap()
    };

    let plain = created_once_the_finalizer_policy_holds(&leases, &lease("plain", &[])).await;
    assert_eq!(plain.metadata.finalizers.unwrap(), [REVOKE]);

    let pp = PostParams::default();
    let held = leases
        .create(&pp, &lease("held", &["example.com/hold"]))
        .await
        .unwrap();
    assert_eq!(
        held.metadata.finalizers.unwrap(),
        ["example.com/hold", REVOKE],
        "the lease's own finalizer stays, ours is added after it"
    );
    let both = leases
        .create(&pp, &lease("both", &["example.com/hold", REVOKE]))
        .await
        .expect("a create carrying the finalizer is admitted");
    assert_eq!(
        both.metadata.finalizers.unwrap(),
        ["example.com/hold", REVOKE],
        "ours, already there, is not added twice"
    );
    let stored = leases_of(&admin, apps).get("plain").await.unwrap();
    assert_eq!(
        finalizers(&stored),
        [REVOKE],
        "what was returned was stored"
    );
}

/// Creates `lease` (listing no finalizers) with `leases` until it comes back carrying the
/// operator's finalizer, at most [`POLICY_WAIT`]: the chart's finalizer policy, and the user's
/// fresh RoleBinding, take a moment to be in force. A try without it holds no finalizer, so it
/// is deleted at once and made again.
async fn created_once_the_finalizer_policy_holds(
    leases: &Api<EntraLease>,
    lease: &EntraLease,
) -> EntraLease {
    assert!(lease.metadata.finalizers.iter().flatten().next().is_none());
    let name = lease.metadata.name.clone().unwrap();
    let pp = PostParams::default();
    let started = Instant::now();
    loop {
        let created = until_authorized("the lease user creates a lease", || {
            leases.create(&pp, lease)
        })
        .await;
        if created
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == REVOKE)
        {
            return created;
        }
        assert!(
            started.elapsed() < POLICY_WAIT,
            "the finalizer policy is not in force within {POLICY_WAIT:?}: {:?}",
            created.metadata.finalizers
        );
        leases
            .delete(&name, &DeleteParams::default())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The shipped roles aggregate into the built-ins: edit creates leases, view only reads them,
/// admin also edits pools, and none of them writes status.
#[tokio::test]
async fn aggregated_roles_extend_edit_admin_and_view() {
    let _shared = admission_shared().await;
    let admin = ControlPlane::shared().client().await;
    // No policies, so that a status write is refused by RBAC alone.
    let guarded = guarded(
        &admin,
        "roles",
        json!({ "admissionPolicies": { "enabled": false } }),
    )
    .await;
    let apps = &guarded.apps;
    let dir = tempfile::tempdir().unwrap();
    let editor = tenant(&admin, dir.path(), apps, "editor", "edit", false).await;
    let viewer = tenant(&admin, dir.path(), apps, "viewer", "view", false).await;
    let namespace_admin = tenant(&admin, dir.path(), apps, "owner", "admin", false).await;
    let lease: EntraLease = serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraLease",
        "metadata": { "name": "ci" },
        "spec": { "dynamicSecretRef": { "name": "pool" } },
    }))
    .unwrap();
    let editor_leases = Api::<EntraLease>::namespaced(editor.clone(), apps);
    let pp = PostParams::default();
    until_authorized("edit creates a lease", || editor_leases.create(&pp, &lease)).await;
    let viewer_leases = Api::<EntraLease>::namespaced(viewer.clone(), apps);
    let viewer_pools = Api::<EntraDynamicSecret>::namespaced(viewer.clone(), apps);
    let lp = ListParams::default();
    let listed = until_authorized("view lists leases", || viewer_leases.list(&lp)).await;
    assert_eq!(listed.items.len(), 1);
    until_authorized("view lists pools", || viewer_pools.list(&lp)).await;
    let mut other = lease.clone();
    other.metadata.name = Some("by-viewer".to_owned());
    assert_forbidden(
        "view",
        "create a lease",
        viewer_leases.create(&PostParams::default(), &other).await,
    );
    assert_forbidden(
        "edit",
        "write a lease's status",
        patch_status(
            &leases_of(&editor, apps),
            "ci",
            json!({ "status": { "phase": "Failed" } }),
        )
        .await,
    );
    guarded_pool(&admin, apps, "unused").await;
    assert_forbidden(
        "edit",
        "patch a pool",
        patch(
            &pools_of(&editor, apps),
            "unused",
            json!({ "spec": { "defaultTTL": "2h" } }),
        )
        .await,
    );
    let admin_pools = pools_of(&namespace_admin, apps);
    until_authorized("admin patches a pool", || {
        patch(
            &admin_pools,
            "unused",
            json!({ "spec": { "defaultTTL": "2h" } }),
        )
    })
    .await;
}
