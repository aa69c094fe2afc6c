//! The demo's continuous lease: one rotation onto a second pool user while the Deployment that
//! reads the Secret rolls, and the old password dying only once the new pods are Ready.

use std::time::Duration;

use super::shell::{Kubectl, note};
use super::stack::Stack;
use super::{NAMESPACE, WAIT_TIMEOUT, credentials, lease_field, poll, sign_in, wait};

/// A pool whose credentials live 40 s (a day in real life) and a continuous lease that rotates
/// 20 s before each end, restarting a 2-replica Deployment whose pods take 2 s to become Ready.
const MANIFEST: &str = "\
apiVersion: kms.hanzo.ai/v1alpha1
kind: EntraDynamicSecret
metadata:
  name: contoso-rotating
spec:
  tenantId: contoso.onmicrosoft.com
  applicationId: 3c9d2b1a-7e6f-4a5b-8c9d-0e1f2a3b4c5d
  clientSecretRef:
    name: entra-app
  users: [carol@contoso.onmicrosoft.com, $frank@contoso.onmicrosoft.com]
  defaultTTL: 40s
  maxTTL: 40s
---
apiVersion: kms.hanzo.ai/v1alpha1
kind: EntraLease
metadata:
  name: reports
spec:
  dynamicSecretRef:
    name: contoso-rotating
  rotation:
    enabled: true
    overlap: 20s
  rolloutRestartTargets:
    - kind: Deployment
      name: reports-api
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: reports-api
spec:
  replicas: 2
  strategy:
    rollingUpdate: { maxSurge: 1, maxUnavailable: 0 }
  selector:
    matchLabels: { app: reports-api }
  template:
    metadata:
      labels: { app: reports-api }
      annotations:
        # The fake nodes' stand-in for a readiness probe: Ready 2 s after start.
        pod-ready.stage.kwok.x-k8s.io/delay: 2s
    spec:
      containers:
        - name: api
          image: registry.example.com/reports-api:2.3
          env:
            - name: DB_PASSWORD
              valueFrom: { secretKeyRef: { name: entra-reports, key: password } }
";

pub fn continuous_lease(stack: &mut Stack, kubectl: &Kubectl) -> Result<(), String> {
    super::heading("9. A continuous lease: rotation onto a second user while the Deployment rolls");
    kubectl.show_with_input(&["apply", "-n", NAMESPACE, "-f", "-"], MANIFEST)?;
    wait(
        stack,
        kubectl,
        &[
            "--for=jsonpath={.status.phase}=Active",
            "entralease/reports",
        ],
    )?;
    wait(
        stack,
        kubectl,
        &["--for=condition=Available", "deployment/reports-api"],
    )?;
    kubectl.show(&["get", "entralease", "reports", "-n", NAMESPACE])?;
    note("^ NEXT ROTATION: 20 s before the credential's maxExpiresAt");
    let (first_user, first_password) = credentials(kubectl, "entra-reports")?;
    sign_in(stack, &first_user, &first_password, true)?;

    wait(
        stack,
        kubectl,
        &[
            "--for=jsonpath={.status.credentialGeneration}=2",
            "--timeout=90s",
            "entralease/reports",
        ],
    )?;
    kubectl.show(&[
        "get",
        "secret",
        "entra-reports",
        "-n",
        NAMESPACE,
        "-o",
        r#"go-template={{range $key, $value := .data}}{{if or (eq $key "username") (eq $key "previousUsername")}}{{$key}}: {{$value | base64decode}}{{"\n"}}{{end}}{{end}}"#,
    ])?;
    note("^ the new user under the default keys, the old one under previous* while pods move");
    let (second_user, second_password) = credentials(kubectl, "entra-reports")?;
    sign_in(stack, &second_user, &second_password, true)?;
    sign_in(stack, &first_user, &first_password, true)?;
    kubectl.show(&["get", "pods", "-n", NAMESPACE, "-l", "app=reports-api"])?;

    // The old credential ends once the restarted Deployment's new pods are all Ready.
    stack.check_operator()?;
    poll(Duration::from_secs(60), || {
        lease_field(kubectl, "entralease/reports", "{.status.previous}")
            .is_ok_and(|previous| previous.is_empty())
    })?;
    kubectl.show(&[
        "rollout",
        "status",
        "deployment/reports-api",
        "-n",
        NAMESPACE,
        WAIT_TIMEOUT,
    ])?;
    kubectl.show(&[
        "get",
        "pods",
        "-n",
        NAMESPACE,
        "-l",
        "app=reports-api",
        "-o",
        r#"custom-columns=POD:.metadata.name,READY:.status.conditions[?(@.type=="Ready")].status,CREDENTIAL:.metadata.annotations.kms\.hanzo\.ai/credential-generation"#,
    ])?;
    sign_in(stack, &first_user, &first_password, false)?;
    sign_in(stack, &second_user, &second_password, true)?;
    kubectl.show(&[
        "get",
        "events",
        "-n",
        NAMESPACE,
        "--field-selector",
        "involvedObject.name=reports",
    ])?;
    kubectl.show(&[
        "delete",
        "-n",
        NAMESPACE,
        "entralease/reports",
        "deployment/reports-api",
        "entradynamicsecret/contoso-rotating",
        "--wait",
    ])?;
    Ok(())
}
