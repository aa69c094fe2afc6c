//! The Helm chart against a real kube-apiserver: it lints, renders into objects the API server
//! accepts, installs and uninstalls, refuses nonsense values, ships the generated CRDs, hardens the
//! pod, and grants exactly what the operator needs: the operator, run as the chart's Deployment
//! says with the chart's ServiceAccount, completes a lease's whole life, and that identity is
//! refused what the chart does not grant.

mod support;

use entra_emulator::{Config, Emulator, sample};
use entra_operator::api::{EntraDynamicSecret, EntraLease, LeasePhase};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};
use support::ControlPlane;
use support::chart::{
    CHART_DIR, OperatorPod, client_for, documents, free_port, helm, helm_ok, install, only,
    service_account_kubeconfig, template, uninstall,
};
use support::cluster::{CRDS_FILE, install_crds, namespace};
use support::lease_env::{APP_ID, CLIENT_SECRET};

/// Tests that run an operator take turns: an operator watching every namespace would also act on
/// the resources of another test's operator.
static OPERATORS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn deployment_name(release: &str) -> String {
    format!("{release}-entra-operator")
}

#[test]
fn chart_lints_cleanly() {
    for extra in [&[][..], &["--set", "watchNamespace=apps"][..]] {
        let mut args = vec!["lint", "--strict", CHART_DIR];
        args.extend_from_slice(extra);
        let output = helm_ok(&args);
        assert!(output.contains("0 chart(s) failed"), "{output}");
    }
}

#[test]
fn chart_crds_are_the_generated_crds() {
    let generated = std::fs::read(CRDS_FILE).expect("crds/ is committed");
    let chart = std::fs::read(format!("{CHART_DIR}/crds/entra-operator.yaml"))
        .expect("the chart ships its CRDs");
    assert!(
        chart == generated,
        "charts/entra-operator/crds/entra-operator.yaml differs from crds/entra-operator.yaml: \
         copy it over (cp crds/entra-operator.yaml charts/entra-operator/crds/)"
    );
}

#[test]
fn chart_app_version_is_the_operator_version() {
    let chart: Value =
        serde_yaml::from_str(&std::fs::read_to_string(format!("{CHART_DIR}/Chart.yaml")).unwrap())
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

    assert_eq!(container["ports"][0]["name"], "metrics");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    for (probe, path) in [("livenessProbe", "/livez"), ("readinessProbe", "/readyz")] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "metrics", "{probe}");
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
            "watchNamespace": "apps",
            "entra": { "graphEndpoint": "https://dod-graph.microsoft.us" },
            "commonLabels": { "team": "identity" },
        }),
    ));
    let monitor = only(&rendered, "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prom");
    assert!(!rendered.iter().any(|o| o["kind"] == "PodDisruptionBudget"));
    assert!(!rendered.iter().any(|o| o["kind"] == "ClusterRole"));
    let roles: Vec<&Value> = rendered.iter().filter(|o| o["kind"] == "Role").collect();
    assert_eq!(
        roles.len(),
        2,
        "one in the watched namespace, one for leases"
    );
    assert!(roles.iter().any(|r| r["metadata"]["namespace"] == "apps"));
    assert!(roles.iter().any(|r| r["metadata"]["namespace"] == "ops"));
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
            json!({ "watchNamespace": "Not_A_Namespace" }),
            "watchNamespace",
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
    for values in [json!({}), json!({ "watchNamespace": watched_ns })] {
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
            "ClusterRoleBinding",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
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
    for single_namespace in [false, true] {
        let operator_ns = namespace(&admin, "rbac").await;
        let watched_ns = namespace(&admin, "rbac-apps").await;
        let other_ns = namespace(&admin, "rbac-other").await;
        let values = if single_namespace {
            json!({ "watchNamespace": watched_ns })
        } else {
            json!({})
        };
        install(control_plane, &operator_ns, &operator_ns, &values);
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let service_account = deployment_name(&operator_ns);
        service_account_kubeconfig(control_plane, &operator_ns, &service_account, &kubeconfig);
        let client = client_for(&kubeconfig).await;
        let mode = if single_namespace {
            "single namespace"
        } else {
            "all namespaces"
        };

        // Granted: what the operator does.
        let params = ListParams::default();
        Api::<Secret>::namespaced(client.clone(), &watched_ns)
            .list_metadata(&params)
            .await
            .unwrap_or_else(|e| panic!("{mode}: Secrets in the watched namespace: {e}"));
        Api::<EntraLease>::namespaced(client.clone(), &watched_ns)
            .list(&params)
            .await
            .unwrap_or_else(|e| panic!("{mode}: EntraLeases in the watched namespace: {e}"));
        Api::<Lease>::namespaced(client.clone(), &operator_ns)
            .list(&params)
            .await
            .unwrap_or_else(|e| panic!("{mode}: Leases in the operator namespace: {e}"));

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
async fn single_namespace_install_runs_a_lease_lifecycle() {
    lease_lifecycle_as_the_chart_identity(true).await;
}

/// Installs the chart, then runs the operator exactly as its Deployment says (args, env, the
/// ServiceAccount's identity, leader election on), and walks one lease from issue to revocation.
async fn lease_lifecycle_as_the_chart_identity(single_namespace: bool) {
    let _turn = OPERATORS.lock().await;
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let admin = control_plane.client().await;
    let operator_ns = namespace(&admin, "chart-op").await;
    let app_ns = namespace(&admin, "chart-app").await;
    let emulator = Emulator::start(Config::sample())
        .await
        .expect("the emulator starts");
    let metrics_port = free_port();
    // The chart's defaults, except what a test on one machine must change: the Entra endpoints
    // (the emulator) and the metrics port (tests run in parallel).
    let mut values = json!({
        "entra": { "authorityHost": emulator.base_url(), "graphEndpoint": emulator.base_url() },
        "metrics": { "port": metrics_port },
    });
    if single_namespace {
        values["watchNamespace"] = json!(app_ns);
        values["logFormat"] = json!("text");
        values["logLevel"] = json!("entra_operator=debug,info");
    }
    let release = operator_ns.clone();
    install(control_plane, &release, &operator_ns, &values);
    let deployment = Api::<Deployment>::namespaced(admin.clone(), &operator_ns)
        .get(&deployment_name(&release))
        .await
        .unwrap();
    let service_account = deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .and_then(|pod| pod.service_account_name.clone())
        .expect("the pod names its ServiceAccount");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    service_account_kubeconfig(control_plane, &operator_ns, &service_account, &kubeconfig);
    let pod_name = format!("{}-7d4b9c-x2x9z", deployment_name(&release));
    let mut pod = OperatorPod::start(&deployment, &pod_name, &kubeconfig);

    // The probes the kubelet would send.
    entra_operator::tls::install_crypto_provider();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{metrics_port}");
    pod.wait_for("/readyz to answer 200", || async {
        let response = http.get(format!("{base}/readyz")).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    for path in ["/livez", "/metrics"] {
        let response = http.get(format!("{base}{path}")).send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {response:?}");
    }
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
    let client_secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "entra-app" },
        "stringData": { "clientSecret": CLIENT_SECRET }
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &client_secret)
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
    pod.wait_for("the dynamic secret to be Ready", || async {
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
