//! The chart's knobs, each rendered with `helm template` and read back as objects: what a platform
//! team sets (extra flags, volumes for a corporate CA bundle, annotations, the update strategy, the
//! spread across nodes, a NetworkPolicy, the ServiceMonitor's relabelings, extra objects, the CRDs)
//! lands where it should and nowhere else. Also: the chart's generated docs are current.

use entra_test_support as support;

use std::path::Path;

use serde_json::{Value, json};
use support::chart::{CHART_DIR, documents, helm, helm_ok, only, template, values_file};

fn render(values: Value) -> Vec<Value> {
    documents(&template("knobs", "ops", &values))
}

fn deployment(rendered: &[Value]) -> &Value {
    only(rendered, "Deployment")
}

fn pod(rendered: &[Value]) -> &Value {
    &deployment(rendered)["spec"]["template"]["spec"]
}

fn container(rendered: &[Value]) -> &Value {
    &pod(rendered)["containers"][0]
}

#[test]
fn extra_args_follow_the_charts_own_flags() {
    let args = |rendered: &[Value]| container(rendered)["args"].as_array().unwrap().clone();
    let defaults = args(&render(json!({})));
    let rendered = render(json!({ "extraArgs": ["--graph-retry-seconds=60"] }));
    let extended = args(&rendered);
    assert_eq!(extended.len(), defaults.len() + 1);
    assert_eq!(extended[..defaults.len()], defaults[..]);
    assert_eq!(extended.last(), Some(&json!("--graph-retry-seconds=60")));
}

#[test]
fn a_ca_bundle_mounts_through_extra_volumes_on_a_read_only_root() {
    let defaults = render(json!({}));
    assert!(pod(&defaults).get("volumes").is_none());
    assert!(container(&defaults).get("volumeMounts").is_none());

    let volume = json!({ "name": "corporate-ca", "configMap": { "name": "corporate-ca" } });
    let mount =
        json!({ "name": "corporate-ca", "mountPath": "/etc/ssl/corporate", "readOnly": true });
    let rendered = render(json!({
        "extraVolumes": [volume],
        "extraVolumeMounts": [mount],
        "extraEnv": [{ "name": "SSL_CERT_FILE", "value": "/etc/ssl/corporate/ca.crt" }],
    }));
    assert_eq!(pod(&rendered)["volumes"], json!([volume]));
    assert_eq!(container(&rendered)["volumeMounts"], json!([mount]));
    assert_eq!(
        container(&rendered)["securityContext"]["readOnlyRootFilesystem"],
        true
    );
}

#[test]
fn deployment_annotations_and_strategy_apply_to_the_deployment_not_its_pods() {
    let defaults = render(json!({}));
    assert!(deployment(&defaults)["spec"].get("strategy").is_none());
    assert!(
        deployment(&defaults)["metadata"]
            .get("annotations")
            .is_none()
    );

    let strategy =
        json!({ "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 1, "maxUnavailable": 0 } });
    let rendered = render(json!({
        "deploymentAnnotations": { "reloader.stakater.com/auto": "true" },
        "commonAnnotations": { "owner": "identity" },
        "strategy": strategy,
    }));
    let deployment = deployment(&rendered);
    assert_eq!(
        deployment["metadata"]["annotations"],
        json!({ "reloader.stakater.com/auto": "true", "owner": "identity" })
    );
    assert_eq!(deployment["spec"]["strategy"], strategy);
    assert!(
        deployment["spec"]["template"]["metadata"]
            .get("annotations")
            .is_none(),
        "pods are not annotated"
    );
    let service = only(&rendered, "Service");
    assert_eq!(
        service["metadata"]["annotations"],
        json!({ "owner": "identity" })
    );
}

#[test]
fn service_account_does_not_automount_but_the_operator_pod_mounts_its_token() {
    let defaults = render(json!({}));
    assert_eq!(
        only(&defaults, "ServiceAccount")["automountServiceAccountToken"],
        false
    );
    assert_eq!(pod(&defaults)["automountServiceAccountToken"], true);
    let rendered = render(json!({ "serviceAccount": { "automount": true } }));
    assert_eq!(
        only(&rendered, "ServiceAccount")["automountServiceAccountToken"],
        true
    );
}

#[test]
fn replicas_prefer_different_nodes_by_default() {
    let defaults = render(json!({}));
    let selector = &deployment(&defaults)["spec"]["selector"]["matchLabels"];
    assert_eq!(
        pod(&defaults)["topologySpreadConstraints"],
        json!([{
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": { "matchLabels": selector },
            "matchLabelKeys": ["pod-template-hash"],
        }]),
        "a soft spread over the pods' own labels, per rollout"
    );

    let off = render(json!({ "topologySpreadConstraints": [] }));
    assert!(pod(&off).get("topologySpreadConstraints").is_none());

    let zones = json!({
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": { "matchLabels": { "team": "identity" } },
    });
    let custom = render(json!({ "topologySpreadConstraints": [zones] }));
    assert_eq!(
        pod(&custom)["topologySpreadConstraints"],
        json!([zones]),
        "a constraint with its own selector is kept as written"
    );
}

#[test]
fn network_policy_admits_only_metrics_and_reaches_dns_the_api_server_and_entra() {
    let defaults = render(json!({}));
    assert!(!defaults.iter().any(|o| o["kind"] == "NetworkPolicy"));

    let rendered = render(json!({ "networkPolicy": { "enabled": true } }));
    let policy = only(&rendered, "NetworkPolicy");
    let spec = &policy["spec"];
    assert_eq!(
        spec["podSelector"]["matchLabels"],
        deployment(&rendered)["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(
        spec["ingress"],
        json!([{ "ports": [
            { "port": "metrics", "protocol": "TCP" },
            { "port": "health", "protocol": "TCP" },
        ] }]),
        "only the metrics and probes' ports, from anywhere by default"
    );
    assert_eq!(
        spec["egress"],
        json!([
            { "ports": [{ "port": 53, "protocol": "UDP" }, { "port": 53, "protocol": "TCP" }] },
            { "ports": [{ "port": 443, "protocol": "TCP" }, { "port": 6443, "protocol": "TCP" }] },
            { "ports": [{ "port": 443, "protocol": "TCP" }] },
        ])
    );

    let prometheus = json!({ "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "monitoring" } } });
    let dns = json!({ "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "kube-system" } },
                      "podSelector": { "matchLabels": { "k8s-app": "kube-dns" } } });
    let api_server = json!({ "ipBlock": { "cidr": "10.0.0.1/32" } });
    let proxy = json!({ "to": [{ "ipBlock": { "cidr": "10.1.0.0/16" } }], "ports": [{ "port": 3128, "protocol": "TCP" }] });
    let narrowed = render(json!({ "networkPolicy": {
        "enabled": true,
        "metricsFrom": [prometheus],
        "dnsTo": [dns],
        "apiServerTo": [api_server],
        "apiServerPorts": [6443],
        "entraTo": [{ "ipBlock": { "cidr": "10.1.0.0/16" } }],
        "extraEgress": [proxy],
    }}));
    let spec = &only(&narrowed, "NetworkPolicy")["spec"];
    assert_eq!(spec["ingress"][0]["from"], json!([prometheus]));
    assert_eq!(spec["egress"][0]["to"], json!([dns]));
    assert_eq!(spec["egress"][1]["to"], json!([api_server]));
    assert_eq!(
        spec["egress"][1]["ports"],
        json!([{ "port": 6443, "protocol": "TCP" }])
    );
    assert_eq!(
        spec["egress"][2]["to"],
        json!([{ "ipBlock": { "cidr": "10.1.0.0/16" } }])
    );
    assert_eq!(spec["egress"][3], proxy);
    assert_eq!(spec["egress"].as_array().unwrap().len(), 4);
}

#[test]
fn service_monitor_takes_a_namespace_and_relabelings() {
    let defaults = render(json!({ "metrics": { "serviceMonitor": { "enabled": true } } }));
    let monitor = only(&defaults, "ServiceMonitor");
    assert_eq!(monitor["metadata"]["namespace"], "ops");
    assert!(monitor["spec"]["endpoints"][0].get("relabelings").is_none());
    assert!(
        monitor["spec"]["endpoints"][0]
            .get("metricRelabelings")
            .is_none()
    );

    let relabeling = json!({ "targetLabel": "cluster", "replacement": "prod-eu" });
    let dropping = json!({ "sourceLabels": ["__name__"], "regex": "go_.*", "action": "drop" });
    let rendered = render(json!({ "metrics": { "serviceMonitor": {
        "enabled": true,
        "namespace": "monitoring",
        "relabelings": [relabeling],
        "metricRelabelings": [dropping],
    }}}));
    let monitor = only(&rendered, "ServiceMonitor");
    assert_eq!(monitor["metadata"]["namespace"], "monitoring");
    assert_eq!(
        monitor["spec"]["namespaceSelector"]["matchNames"],
        json!(["ops"]),
        "it still scrapes the release namespace"
    );
    assert_eq!(
        monitor["spec"]["endpoints"][0]["relabelings"],
        json!([relabeling])
    );
    assert_eq!(
        monitor["spec"]["endpoints"][0]["metricRelabelings"],
        json!([dropping])
    );
}

#[test]
fn metrics_are_scraped_over_https_with_a_token_the_chart_authorizes() {
    let defaults = render(json!({ "metrics": { "serviceMonitor": { "enabled": true } } }));
    let endpoint = &only(&defaults, "ServiceMonitor")["spec"]["endpoints"][0];
    assert_eq!(endpoint["scheme"], "https");
    assert_eq!(
        endpoint["bearerTokenFile"], "/var/run/secrets/kubernetes.io/serviceaccount/token",
        "Prometheus' own ServiceAccount token"
    );
    assert_eq!(
        endpoint["tlsConfig"],
        json!({ "insecureSkipVerify": true }),
        "the operator's certificate is self-signed by default"
    );
    let readers = |rendered: &[Value]| {
        rendered
            .iter()
            .find(|o| {
                o["kind"] == "ClusterRoleBinding"
                    && o["metadata"]["name"] == "knobs-entra-operator-metrics-reader"
            })
            .cloned()
    };
    assert_eq!(readers(&defaults), None, "nobody reads /metrics by default");
    let reader_role = defaults
        .iter()
        .find(|o| o["metadata"]["name"] == "knobs-entra-operator-metrics-reader")
        .expect("the metrics-reader ClusterRole, for an administrator to bind");
    assert_eq!(
        reader_role["rules"],
        json!([{ "nonResourceURLs": ["/metrics"], "verbs": ["get"] }])
    );

    let ca = json!({ "ca": { "secret": { "name": "metrics-ca", "key": "ca.crt" } }, "serverName": "knobs-entra-operator-metrics.ops.svc" });
    let token =
        json!({ "type": "Bearer", "credentials": { "name": "prometheus-token", "key": "token" } });
    let rendered = render(json!({ "metrics": {
        "reader": { "serviceAccounts": [{ "name": "prometheus-k8s", "namespace": "monitoring" }] },
        "tls": { "secretName": "operator-metrics-tls" },
        "serviceMonitor": { "enabled": true, "tlsConfig": ca, "authorization": token },
    }}));
    assert_eq!(
        readers(&rendered).expect("a binding for the readers")["subjects"],
        json!([{ "kind": "ServiceAccount", "name": "prometheus-k8s", "namespace": "monitoring" }])
    );
    let endpoint = &only(&rendered, "ServiceMonitor")["spec"]["endpoints"][0];
    assert_eq!(endpoint["tlsConfig"], ca);
    assert_eq!(endpoint["authorization"], token);
    assert!(endpoint.get("bearerTokenFile").is_none());
    // The Secret's certificate, mounted where the operator reads it.
    assert_eq!(
        pod(&rendered)["volumes"],
        json!([{ "name": "metrics-tls", "secret": { "secretName": "operator-metrics-tls" } }])
    );
    let mount = json!({ "name": "metrics-tls", "mountPath": "/etc/entra-operator/metrics-tls", "readOnly": true });
    assert_eq!(container(&rendered)["volumeMounts"], json!([mount]));
    let env = container(&rendered)["env"].as_array().unwrap().clone();
    for (name, file) in [
        ("METRICS_CERT_FILE", "tls.crt"),
        ("METRICS_KEY_FILE", "tls.key"),
    ] {
        let value = format!("/etc/entra-operator/metrics-tls/{file}");
        assert!(
            env.contains(&json!({ "name": name, "value": value })),
            "{name}: {env:?}"
        );
    }
}

#[test]
fn extra_objects_render_as_maps_and_templated_strings() {
    let rendered = render(json!({ "extraObjects": [
        { "apiVersion": "v1", "kind": "ConfigMap",
          "metadata": { "name": "corporate-ca", "namespace": "{{ .Release.Namespace }}" },
          "data": { "ca.crt": "-----BEGIN CERTIFICATE-----" } },
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-proxy\n",
    ]}));
    let config_map = only(&rendered, "ConfigMap");
    assert_eq!(config_map["metadata"]["namespace"], "ops");
    assert_eq!(config_map["data"]["ca.crt"], "-----BEGIN CERTIFICATE-----");
    assert_eq!(only(&rendered, "Secret")["metadata"]["name"], "knobs-proxy");
}

fn rendered_crds(values: Value) -> Vec<Value> {
    render(values)
        .into_iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .collect()
}

#[test]
fn crds_render_from_the_generated_types_labelled_and_kept() {
    let rendered = rendered_crds(json!({ "commonAnnotations": { "owner": "identity" } }));
    let generated: Vec<Value> = entra_operator::api::crds()
        .into_iter()
        .map(|crd| serde_json::to_value(crd).unwrap())
        .collect();
    assert_eq!(rendered.len(), generated.len(), "every CRD is templated");
    for (rendered, generated) in rendered.iter().zip(&generated) {
        let name = &generated["metadata"]["name"];
        let labels = &rendered["metadata"]["labels"];
        assert_eq!(
            labels["app.kubernetes.io/part-of"], "entra-operator",
            "{name}"
        );
        assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm", "{name}");
        assert_eq!(labels["app.kubernetes.io/component"], "crds", "{name}");
        assert_eq!(
            rendered["metadata"]["annotations"],
            json!({ "helm.sh/resource-policy": "keep", "owner": "identity" }),
            "{name}"
        );
        let mut bare = rendered.clone();
        bare["metadata"] = json!({ "name": name, "labels": generated["metadata"]["labels"] });
        assert_eq!(
            numbers_as_floats(bare),
            numbers_as_floats(generated.clone()),
            "{name} renders as the Rust types generate it"
        );
    }

    let unkept = rendered_crds(json!({ "crds": { "keep": false } }));
    assert_eq!(unkept.len(), 3);
    assert!(
        unkept
            .iter()
            .all(|crd| crd["metadata"].get("annotations").is_none())
    );
    assert!(rendered_crds(json!({ "crds": { "enabled": false } })).is_empty());
}

/// Helm's YAML round trip writes a schema's `minimum: 16.0` as `16`: the same number.
fn numbers_as_floats(value: Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_floats).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, value)| (key, numbers_as_floats(value)))
                .collect(),
        ),
        other => other,
    }
}

#[test]
fn chart_metadata_lists_every_crd() {
    let chart: Value =
        yaml_serde::from_str(&std::fs::read_to_string(format!("{CHART_DIR}/Chart.yaml")).unwrap())
            .unwrap();
    let listed: Vec<Value> = yaml_serde::from_str(
        chart["annotations"]["artifacthub.io/crds"]
            .as_str()
            .expect("Artifact Hub's CRD annotation"),
    )
    .unwrap();
    let mut listed: Vec<&str> = listed
        .iter()
        .map(|crd| crd["name"].as_str().unwrap())
        .collect();
    let mut generated: Vec<String> = entra_operator::api::crds()
        .into_iter()
        .map(|crd| crd.metadata.name.unwrap())
        .collect();
    listed.sort();
    generated.sort();
    assert_eq!(listed, generated);
}

#[test]
fn chart_docs_are_generated_from_the_values_comments() {
    let docs = support::chart_docs::generate(Path::new(CHART_DIR))
        .unwrap_or_else(|problem| panic!("{problem}"));
    let committed = |name: &str| std::fs::read_to_string(format!("{CHART_DIR}/{name}")).unwrap();
    assert!(
        committed("values.schema.json") == docs.schema,
        "values.schema.json's descriptions differ from values.yaml's comments: run make chart-docs"
    );
    assert!(
        committed("README.md") == docs.readme,
        "the chart's README.md differs from values.yaml's comments: run make chart-docs"
    );
    let shown = helm_ok(&["show", "readme", CHART_DIR]);
    for key in [
        "crds.keep",
        "networkPolicy.enabled",
        "extraVolumes",
        "image.repository",
    ] {
        assert!(
            shown.contains(&format!("| `{key}` |")),
            "helm show readme documents {key}"
        );
    }
}

/// `helm template` with `values` fails, and its error says `reason`.
fn refused(values: Value, reason: &str) {
    let (_dir, file) = values_file(&values);
    let output = helm(&["template", "t", CHART_DIR, "-f", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{values} was accepted");
    assert!(
        stderr.contains(reason),
        "the refusal of {values} says {reason}: {stderr}"
    );
}

#[test]
fn the_pod_stays_hardened_whatever_the_values_say() {
    let rendered = render(json!({ "securityContext": null, "podSecurityContext": null }));
    assert_eq!(
        pod(&rendered)["securityContext"],
        json!({ "runAsNonRoot": true, "seccompProfile": { "type": "RuntimeDefault" } })
    );
    assert_eq!(
        container(&rendered)["securityContext"],
        json!({
            "allowPrivilegeEscalation": false,
            "capabilities": { "drop": ["ALL"] },
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
        })
    );
    for (values, field) in [
        (
            json!({ "securityContext": { "privileged": true } }),
            "privileged",
        ),
        (
            json!({ "securityContext": { "allowPrivilegeEscalation": true } }),
            "allowPrivilegeEscalation",
        ),
        (
            json!({ "securityContext": { "readOnlyRootFilesystem": false } }),
            "readOnlyRootFilesystem",
        ),
        (
            json!({ "securityContext": { "capabilities": { "add": ["NET_ADMIN"] } } }),
            "add",
        ),
        (
            json!({ "securityContext": { "capabilities": { "drop": ["NET_RAW"] } } }),
            "drop",
        ),
        (
            json!({ "podSecurityContext": { "runAsUser": 0 } }),
            "runAsUser",
        ),
        (
            json!({ "podSecurityContext": { "runAsNonRoot": false } }),
            "runAsNonRoot",
        ),
        (
            json!({ "podSecurityContext": { "seccompProfile": { "type": "Unconfined" } } }),
            "seccompProfile",
        ),
    ] {
        refused(values, field);
    }
}

#[test]
fn values_that_would_break_the_pod_or_open_the_network_are_refused_with_a_reason() {
    refused(
        json!({ "networkPolicy": { "enabled": true, "apiServerPorts": null } }),
        "apiServerPorts",
    );
    refused(
        json!({ "networkPolicy": { "enabled": true, "apiServerPorts": [] } }),
        "apiServerPorts",
    );
    refused(
        json!({ "extraArgs": ["--concurrency=4"] }),
        "extraArgs repeats --concurrency, which the chart sets: set concurrency instead",
    );
    refused(
        json!({ "extraArgs": ["--leader-election-lease-name", "x"] }),
        "extraArgs",
    );
    refused(
        json!({ "strategy": { "type": "Recreate", "rollingUpdate": { "maxSurge": 1 } } }),
        "strategy.rollingUpdate applies only to type RollingUpdate",
    );
    refused(json!({ "watchNamespace": "apps" }), "watchNamespace");
    refused(
        json!({ "extraArgs": ["--metrics-secure=false"] }),
        "extraArgs may not set --metrics-secure",
    );
    refused(
        json!({ "extraEnv": [{ "name": "METRICS_SECURE", "value": "false" }] }),
        "extraEnv may not set METRICS_SECURE",
    );
    refused(
        json!({ "metrics": { "port": 9000 }, "health": { "port": 9000 } }),
        "metrics.port and health.port must differ",
    );
}

#[test]
fn a_spread_constraint_keeps_its_own_match_label_keys() {
    let rendered = render(json!({ "topologySpreadConstraints": [{
        "maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "ScheduleAnyway",
        "matchLabelKeys": ["app.kubernetes.io/version"],
    }]}));
    let constraint = &pod(&rendered)["topologySpreadConstraints"][0];
    assert_eq!(
        constraint["matchLabelKeys"],
        json!(["app.kubernetes.io/version"])
    );
    assert_eq!(
        constraint["labelSelector"]["matchLabels"],
        deployment(&rendered)["spec"]["selector"]["matchLabels"]
    );
}

/// The one object of `kind` named `name`.
fn named<'a>(rendered: &'a [Value], kind: &str, name: &str) -> &'a Value {
    rendered
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

#[test]
fn lease_secret_types_reach_the_operator_and_its_secret_policy() {
    let flag = |rendered: &[Value]| -> Vec<Value> {
        container(rendered)["args"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|arg| arg.as_str().unwrap().starts_with("--lease-secret-types"))
            .cloned()
            .collect()
    };
    let type_check = |rendered: &[Value]| -> String {
        let policy = named(
            rendered,
            "ValidatingAdmissionPolicy",
            "knobs-entra-operator-operator-secrets",
        );
        policy["spec"].to_string()
    };
    let defaults = render(json!({}));
    assert_eq!(
        flag(&defaults),
        [json!(
            "--lease-secret-types=Opaque,kubernetes.io/basic-auth"
        )]
    );
    assert!(
        type_check(&defaults)
            .contains(r#"variables.type in [\"Opaque\",\"kubernetes.io/basic-auth\"]"#),
        "{}",
        type_check(&defaults)
    );
    let custom =
        render(json!({ "leaseSecrets": { "allowedTypes": ["Opaque", "kubernetes.io/tls"] } }));
    assert_eq!(
        flag(&custom),
        [json!("--lease-secret-types=Opaque,kubernetes.io/tls")]
    );
    let policy = type_check(&custom);
    assert!(
        policy.contains(r#"variables.type in [\"Opaque\",\"kubernetes.io/tls\"]"#)
            && policy.contains("leaseSecrets.allowedTypes (Opaque, kubernetes.io/tls)"),
        "{policy}"
    );

    refused(
        json!({ "extraArgs": ["--lease-secret-types=kubernetes.io/tls"] }),
        "extraArgs repeats --lease-secret-types, which the chart sets: set leaseSecrets.allowedTypes instead",
    );
    for types in [
        json!(["kubernetes.io/service-account-token"]),
        json!(["Opaque", ""]),
        json!([]),
        json!(["Opaque,kubernetes.io/tls"]),
        json!(["Opaque", "Opaque"]),
    ] {
        refused(
            json!({ "leaseSecrets": { "allowedTypes": types } }),
            "allowedTypes",
        );
    }
}

#[test]
fn claims_policy_is_bound_in_the_release_namespace_and_trusts_the_operator_and_break_glass() {
    let rendered = render(json!({
        "watchNamespaces": ["apps"],
        "admissionPolicies": { "breakGlassGroups": ["platform:break-glass"] },
    }));
    let binding = named(
        &rendered,
        "ValidatingAdmissionPolicyBinding",
        "knobs-entra-operator-claims",
    );
    assert_eq!(binding["spec"]["policyName"], "knobs-entra-operator-claims");
    assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
    assert_eq!(
        binding["spec"]["matchResources"],
        json!({ "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "ops" } } }),
        "the release namespace, not the watched ones"
    );
    let policy = named(
        &rendered,
        "ValidatingAdmissionPolicy",
        "knobs-entra-operator-claims",
    );
    assert_eq!(policy["spec"]["failurePolicy"], "Fail");
    let rules = &policy["spec"]["matchConstraints"]["resourceRules"];
    for (group, resource) in [("coordination.k8s.io", "leases"), ("", "secrets")] {
        assert!(
            rules.as_array().unwrap().iter().any(|rule| {
                rule["apiGroups"] == json!([group])
                    && rule["resources"] == json!([resource])
                    && rule["operations"] == json!(["CREATE", "UPDATE", "DELETE"])
            }),
            "{resource} are matched: {rules}"
        );
    }
    let spec = policy["spec"].to_string();
    for trusted in [
        "system:serviceaccount:ops:knobs-entra-operator",
        "platform:break-glass",
    ] {
        assert!(spec.contains(trusted), "{trusted} is trusted: {spec}");
    }
    let off = render(json!({ "admissionPolicies": { "enabled": false } }));
    assert!(
        !off.iter()
            .any(|o| o["metadata"]["name"] == "knobs-entra-operator-claims")
    );
}

#[test]
fn finalizer_policy_adds_revoke_on_create_in_the_served_namespaces() {
    let mutating = |rendered: &[Value]| -> Vec<String> {
        rendered
            .iter()
            .filter(|o| {
                o["kind"]
                    .as_str()
                    .unwrap()
                    .starts_with("MutatingAdmissionPolicy")
            })
            .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
            .collect()
    };
    let defaults = render(json!({}));
    let policy = named(
        &defaults,
        "MutatingAdmissionPolicy",
        "knobs-entra-operator-finalizer",
    );
    let spec = &policy["spec"];
    assert_eq!(policy["apiVersion"], "admissionregistration.k8s.io/v1");
    assert_eq!(
        spec["failurePolicy"], "Ignore",
        "the operator adds the finalizer when the policy fails: never refuse a lease"
    );
    assert_eq!(spec["reinvocationPolicy"], "Never");
    assert_eq!(
        spec["matchConstraints"]["resourceRules"],
        json!([{
            "apiGroups": ["kms.hanzo.ai"],
            "apiVersions": ["*"],
            "operations": ["CREATE"],
            "resources": ["entraleases"],
        }])
    );
    assert_eq!(spec["mutations"][0]["patchType"], "JSONPatch");
    let patch = spec["mutations"][0]["jsonPatch"]["expression"]
        .as_str()
        .unwrap();
    for path in ["/metadata/finalizers/-", "/metadata/finalizers"] {
        assert!(
            patch.contains(&format!(r#"path: "{path}""#)),
            "{path}: {patch}"
        );
    }
    let binding = named(
        &defaults,
        "MutatingAdmissionPolicyBinding",
        "knobs-entra-operator-finalizer",
    );
    assert_eq!(
        binding["spec"],
        json!({
            "policyName": "knobs-entra-operator-finalizer",
            "matchResources": { "namespaceSelector": {} },
        }),
        "every namespace, as the operator watches"
    );

    let watching = render(json!({ "watchNamespaces": ["apps", "web"] }));
    assert_eq!(
        named(
            &watching,
            "MutatingAdmissionPolicyBinding",
            "knobs-entra-operator-finalizer"
        )["spec"]["matchResources"],
        json!({ "namespaceSelector": { "matchExpressions": [{
            "key": "kubernetes.io/metadata.name", "operator": "In", "values": ["apps", "web"],
        }] } }),
        "the watched namespaces only, as the other tenant policies"
    );

    // Off with the sub-toggle or with every policy, and not rendered for a cluster without
    // MutatingAdmissionPolicy v1 (before 1.36): the operator adds the finalizer itself there.
    for values in [
        json!({ "admissionPolicies": { "addFinalizer": false } }),
        json!({ "admissionPolicies": { "enabled": false } }),
    ] {
        assert_eq!(
            mutating(&render(values.clone())),
            Vec::<String>::new(),
            "{values}"
        );
    }
    let without = render(json!({ "admissionPolicies": { "addFinalizer": false } }));
    assert!(
        without
            .iter()
            .any(|o| o["kind"] == "ValidatingAdmissionPolicy"),
        "the guards stay"
    );
    let rendered_for = |version: &str| -> Vec<Value> {
        documents(&helm_ok(&[
            "template",
            "knobs",
            CHART_DIR,
            "--namespace",
            "ops",
            "--kube-version",
            version,
        ]))
    };
    assert_eq!(mutating(&rendered_for("1.35.4")), Vec::<String>::new());
    assert_eq!(mutating(&rendered_for("1.36.0")).len(), 2);
    refused(
        json!({ "admissionPolicies": { "addFinalizer": "yes" } }),
        "addFinalizer",
    );
}
