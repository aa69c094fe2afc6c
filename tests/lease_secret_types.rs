//! Lease Secrets have only the types the cluster administrator lists (`leaseSecrets.allowedTypes`):
//! whatever a lease asks for, the chart's `<fullname>-operator-secrets` admission policy refuses
//! the operator's ServiceAccount a lease Secret of another type. Its credential copies keep
//! their own types.

use entra_test_support as support;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use support::ControlPlane;
use support::admission::{refusal_by, until_refused};
use support::chart::{chart_operator, client_for, install, uninstall};
use support::cluster::{install_crds, namespace};

/// With the default list (Opaque and kubernetes.io/basic-auth), the operator may write lease
/// Secrets of those types (an absent type is Opaque), and a credential copy of type
/// kubernetes.io/tls; a lease Secret of type kubernetes.io/dockerconfigjson or
/// kubernetes.io/service-account-token is refused, naming the type and the value.
#[tokio::test]
async fn lease_secrets_only_have_the_listed_types() {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let admin = control_plane.client().await;
    let apps = namespace(&admin, "types-apps").await;
    let operator_ns = namespace(&admin, "types-op").await;
    install(
        control_plane,
        &operator_ns,
        &operator_ns,
        &json!({ "watchNamespaces": [apps] }),
    );
    let policy = format!("{operator_ns}-entra-operator-operator-secrets");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("operator.kubeconfig");
    chart_operator(control_plane, &operator_ns, &operator_ns, &kubeconfig).await;
    let operator = client_for(&kubeconfig).await;
    let lease_secrets = Api::<Secret>::namespaced(operator.clone(), &apps);

    let docker = lease_secret(
        "docker",
        Some("kubernetes.io/dockerconfigjson"),
        json!({ ".dockerconfigjson": r#"{"auths":{}}"# }),
    );
    let message = until_refused(
        &policy,
        "a lease Secret of type kubernetes.io/dockerconfigjson",
        &[
            "Opaque, kubernetes.io/basic-auth",
            "leaseSecrets.allowedTypes",
        ],
        || async {
            let created = lease_secrets.create(&PostParams::default(), &docker).await;
            if created.is_ok() {
                delete(&lease_secrets, "docker").await;
            }
            created.map(drop)
        },
    )
    .await;
    assert!(
        message.contains("of type kubernetes.io/dockerconfigjson"),
        "{message}"
    );
    let mut token = lease_secret(
        "token",
        Some("kubernetes.io/service-account-token"),
        json!({}),
    );
    token.metadata.annotations = Some(
        [(
            "kubernetes.io/service-account.name".to_owned(),
            "default".to_owned(),
        )]
        .into(),
    );
    let result = lease_secrets.create(&PostParams::default(), &token).await;
    assert!(
        refusal_by(&policy, &result).is_some(),
        "a service-account-token lease Secret: {result:?}"
    );

    for (name, type_, data) in [
        ("opaque", Some("Opaque"), json!({ "password": "x" })),
        ("untyped", None, json!({ "password": "x" })),
        (
            "basic-auth",
            Some("kubernetes.io/basic-auth"),
            json!({ "username": "alice", "password": "x" }),
        ),
    ] {
        lease_secrets
            .create(&PostParams::default(), &lease_secret(name, type_, data))
            .await
            .unwrap_or_else(|e| panic!("a lease Secret of type {type_:?}: {e}"));
        delete(&lease_secrets, name).await;
    }

    let copies = Api::<Secret>::namespaced(operator, &operator_ns);
    let copy: Secret = serde_json::from_value(json!({
        "metadata": { "name": "copy-tls", "labels": { "kms.hanzo.ai/credential-copy": "true" } },
        "type": "kubernetes.io/tls",
        "stringData": { "tls.crt": "certificate", "tls.key": "key" },
    }))
    .unwrap();
    copies
        .create(&PostParams::default(), &copy)
        .await
        .expect("a credential copy keeps its type");
    delete(&copies, "copy-tls").await;
    uninstall(control_plane, &operator_ns, &operator_ns);
}

/// A Secret shaped as the operator's lease Secrets are: its managed-by label and an EntraLease
/// controller owner.
fn lease_secret(name: &str, type_: Option<&str>, string_data: Value) -> Secret {
    let mut secret = json!({
        "metadata": {
            "name": name,
            "labels": { "app.kubernetes.io/managed-by": "entra-operator" },
            "ownerReferences": [{
                "apiVersion": "kms.hanzo.ai/v1alpha1", "kind": "EntraLease", "name": "probe",
                "uid": "00000000-0000-4000-8000-0000000000aa", "controller": true,
            }],
        },
        "stringData": string_data,
    });
    if let Some(type_) = type_ {
        secret["type"] = json!(type_);
    }
    serde_json::from_value(secret).unwrap()
}

/// Deletes Secret `name` as the operator; the garbage collector may be first (no lease owns it).
async fn delete(secrets: &Api<Secret>, name: &str) {
    match secrets.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => panic!("the operator deletes {name}: {e}"),
    }
}
