//! `make demo`: the product page's dashboard flow (configure a dynamic secret, lease, renew,
//! revoke, expire), a continuous lease rotating while a Deployment rolls, then a cluster pool whose app credential is no secret at all (workload
//! identity) serving a team that cannot read any credential, and a Temporary Access Pass that
//! Entra ends by itself, on a local control plane, the Entra emulator and the operator process,
//! narrated with real kubectl output.

use entra_test_support::control_plane;
#[path = "demo/access_pass.rs"]
mod access_pass;
#[path = "demo/continuous.rs"]
mod continuous;
#[path = "demo/shell.rs"]
mod shell;
#[path = "demo/stack.rs"]
mod stack;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use entra_emulator::{FederatedCredential, MethodKind};
use shell::{Kubectl, heading, note};
use stack::{OPERATOR_NAMESPACE, Stack, TENANT_FILE, relative};

const NAMESPACE: &str = "demo";
/// The app registration of examples/tenant.yaml.
const CONTOSO_APP_ID: &str = "3c9d2b1a-7e6f-4a5b-8c9d-0e1f2a3b4c5d";
const WAIT_TIMEOUT: &str = "--timeout=60s";

fn main() -> ExitCode {
    let started = Instant::now();
    if let Err(error) = std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")) {
        eprintln!("demo: the workspace root: {error}");
        return ExitCode::FAILURE;
    }
    let mut stack = match Stack::new() {
        Ok(stack) => stack,
        Err(error) => {
            eprintln!("demo: {error}");
            return ExitCode::FAILURE;
        }
    };
    match tour(&mut stack) {
        Ok(()) => {
            heading("12. Stop everything");
            let data_dir = stack
                .control_plane()
                .kubeconfig
                .parent()
                .map(|d| d.to_owned());
            let operator = stack.stop().unwrap_or_default();
            note(&format!("operator: {operator}"));
            note("Entra emulator and control plane: stopped");
            if let Some(dir) = data_dir.filter(|dir| !dir.exists()) {
                note(&format!("control plane data: {} removed", dir.display()));
            }
            println!(
                "\nThe demo finished in {:.0}s. Operator log: {}",
                started.elapsed().as_secs_f64(),
                relative(&stack.operator_log).display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("\ndemo failed: {error}");
            eprintln!(
                "--- the operator's last log lines ({}) ---\n{}",
                relative(&stack.operator_log).display(),
                stack.operator_log_tail(40)
            );
            stack.stop();
            ExitCode::FAILURE
        }
    }
}

fn tour(stack: &mut Stack) -> Result<(), String> {
    let kubectl = start(stack)?;
    install_operator(stack, &kubectl)?;
    configure(stack, &kubectl)?;
    lease(stack, &kubectl)?;
    renew(stack, &kubectl)?;
    revoke(stack, &kubectl)?;
    expire(stack, &kubectl)?;
    heading("8. Every step is in the leases' Kubernetes events");
    kubectl.show(&["events", "-n", NAMESPACE])?;
    continuous::continuous_lease(stack, &kubectl)?;
    cluster_pool(stack, &kubectl)?;
    access_pass::access_pass_lease(stack, &kubectl)?;
    Ok(())
}

const TEAM: &str = "team-a";
const TEAM_USER: &str = "system:serviceaccount:team-a:dev";
const POOL_IDENTITY: &str = "pool-identity";

/// A cluster pool with workload identity: the app trusts tokens of a ServiceAccount in the
/// operator's namespace, so no credential exists to steal, and a team with namespace rights
/// leases from it without reaching anything of the operator's.
fn cluster_pool(stack: &mut Stack, kubectl: &Kubectl) -> Result<(), String> {
    heading(
        "10. A cluster pool with workload identity, leased by a team that reaches no credential",
    );
    let setup = format!(
        "\
apiVersion: v1
kind: ServiceAccount
metadata: {{ name: {POOL_IDENTITY}, namespace: {OPERATOR_NAMESPACE} }}
---
# Entra fetches the cluster's service-account issuer keys without credentials.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{ name: service-account-issuer-discovery-public }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:service-account-issuer-discovery }}
subjects: [{{ apiGroup: rbac.authorization.k8s.io, kind: Group, name: system:unauthenticated }}]
---
apiVersion: v1
kind: Namespace
metadata: {{ name: {TEAM}, labels: {{ entra.example.com/leases: allowed }} }}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{ name: dev, namespace: {TEAM} }}
---
# What a lease user has: leases, and the Secrets of its own namespace.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{ name: lease-user, namespace: {TEAM} }}
rules:
  - {{ apiGroups: [kms.hanzo.ai], resources: [entraleases], verbs: [create, get, list, watch, patch, delete] }}
  - {{ apiGroups: [\"\"], resources: [secrets], verbs: [get, list] }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: lease-user, namespace: {TEAM} }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: Role, name: lease-user }}
subjects: [{{ kind: ServiceAccount, name: dev, namespace: {TEAM} }}]
"
    );
    kubectl.show_with_input(&["apply", "-f", "-"], &setup)?;
    let control_plane = stack.control_plane();
    let issuer = format!("{}/", control_plane.server);
    let subject = format!("system:serviceaccount:{OPERATOR_NAMESPACE}:{POOL_IDENTITY}");
    note("Entra side (az ad app federated-credential create): the app trusts that ServiceAccount:");
    note(&format!(
        "  issuer {issuer}, subject {subject}, audience api://AzureADTokenExchange"
    ));
    let app_id = CONTOSO_APP_ID;
    let trusted = stack.emulator().update_app(app_id, |app| {
        app.federated_credentials.push(FederatedCredential {
            issuer: issuer.clone(),
            subject: subject.clone(),
            audiences: vec!["api://AzureADTokenExchange".into()],
        })
    });
    if !trusted {
        return Err(format!("the emulator has no app {app_id}"));
    }
    let pool = format!(
        "\
apiVersion: kms.hanzo.ai/v1alpha1
kind: ClusterEntraDynamicSecret
metadata:
  name: contoso-shared
spec:
  tenantId: contoso.onmicrosoft.com
  applicationId: {app_id}
  workloadIdentity:
    serviceAccountName: {POOL_IDENTITY}
  users: [carol@contoso.onmicrosoft.com]
  defaultTTL: 1h
  maxTTL: 8h
  namespaceSelector:
    matchLabels:
      entra.example.com/leases: allowed
"
    );
    kubectl.show_with_input(&["apply", "-f", "-"], &pool)?;
    stack.check_operator()?;
    kubectl.show(&[
        "wait",
        WAIT_TIMEOUT,
        "--for=condition=Ready",
        "clusterentradynamicsecret/contoso-shared",
    ])?;
    kubectl.show(&["get", "clusterentradynamicsecrets"])?;

    let lease = "\
apiVersion: kms.hanzo.ai/v1alpha1
kind: EntraLease
metadata:
  name: build
spec:
  dynamicSecretRef:
    kind: ClusterEntraDynamicSecret
    name: contoso-shared
  ttl: 30m
";
    kubectl.show_with_input(&["apply", "-n", TEAM, "--as", TEAM_USER, "-f", "-"], lease)?;
    stack.check_operator()?;
    kubectl.show(&[
        "wait",
        "-n",
        TEAM,
        WAIT_TIMEOUT,
        "--for=jsonpath={.status.phase}=Active",
        "entralease/build",
    ])?;
    kubectl.show(&["get", "entraleases", "-n", TEAM, "--as", TEAM_USER])?;
    kubectl.show(&["get", "secrets", "-n", TEAM, "--as", TEAM_USER])?;
    note("^ the team sees its lease's Secret, and nothing that could reset a password:");
    for (verb, resource) in [
        ("get", "secrets"),
        (
            "create",
            &format!("serviceaccounts/{POOL_IDENTITY}") as &str,
        ),
    ] {
        let mut args = vec!["auth", "can-i", verb, resource];
        if verb == "create" {
            args.push("--subresource=token");
        }
        args.extend_from_slice(&["-n", OPERATOR_NAMESPACE, "--as", TEAM_USER]);
        let answer = kubectl.show_failing(&args);
        answer.map_err(|_| format!("the team may {verb} {resource} in {OPERATOR_NAMESPACE}"))?;
    }
    let (username, password) = credentials_in(kubectl, TEAM, "entra-build")?;
    sign_in(stack, &username, &password, true)?;
    kubectl.show(&[
        "delete",
        "entralease",
        "build",
        "-n",
        TEAM,
        "--as",
        TEAM_USER,
        WAIT_TIMEOUT,
    ])?;
    sign_in(stack, &username, &password, false)
}

fn start(stack: &mut Stack) -> Result<Kubectl, String> {
    heading("1. Start a local Kubernetes control plane and the Entra emulator");
    let control_plane = stack.start_control_plane()?;
    note(&format!(
        "etcd, kube-apiserver and kube-controller-manager on {} (ready in {:.1}s)",
        control_plane.server,
        control_plane.startup.as_secs_f64()
    ));
    let kubectl = Kubectl { control_plane };
    kubectl.show(&["version"])?;
    let emulator = stack.start_emulator()?;
    note(&format!(
        "Entra emulator (token endpoint and Microsoft Graph) on {}",
        emulator.base_url()
    ));
    note(&format!(
        "serving the fictitious tenant contoso.onmicrosoft.com of {TENANT_FILE}"
    ));
    Ok(kubectl)
}

fn install_operator(stack: &mut Stack, kubectl: &Kubectl) -> Result<(), String> {
    heading("2. Install the CRDs and start the operator");
    kubectl.show(&["apply", "--server-side", "-f", "crds/entra-operator.yaml"])?;
    kubectl.show(&[
        "wait",
        "--for=condition=Established",
        WAIT_TIMEOUT,
        "crd/entradynamicsecrets.kms.hanzo.ai",
        "crd/entraleases.kms.hanzo.ai",
    ])?;
    // Discovery of new resources lags the Established condition by a moment.
    poll(Duration::from_secs(30), || {
        kubectl.quiet(&["get", "entraleases", "-A"]).is_ok()
    })?;
    kubectl.show(&["create", "namespace", OPERATOR_NAMESPACE])?;
    kubectl.show(&["create", "namespace", NAMESPACE])?;
    let command = stack.start_operator()?;
    println!("$ {command} &");
    note(&format!(
        "the operator logs to {}",
        relative(&stack.operator_log).display()
    ));
    Ok(())
}

fn configure(stack: &mut Stack, kubectl: &Kubectl) -> Result<(), String> {
    heading("3. Configure the dynamic secret: a tenant, an app, a pool of users, TTLs");
    kubectl.show(&[
        "apply",
        "-n",
        NAMESPACE,
        "-f",
        "examples/dynamic-secret.yaml",
    ])?;
    wait(
        stack,
        kubectl,
        &["--for=condition=Ready", "entradynamicsecret/contoso"],
    )?;
    kubectl.show(&["get", "entradynamicsecrets", "-n", NAMESPACE])?;
    kubectl.show(&[
        "get",
        "entradynamicsecret",
        "contoso",
        "-n",
        NAMESPACE,
        "-o",
        r#"jsonpath={range .status.users[*]}{.userPrincipalName}{"\t"}{.id}{"\t"}{.displayName}{"\n"}{end}"#,
    ])?;
    note("^ the pool, each user resolved through Graph to its Entra object id");
    Ok(())
}

fn lease(stack: &mut Stack, kubectl: &Kubectl) -> Result<(), String> {
    heading("4. Lease from the terminal: a pool user, a fresh password, in a Secret");
    note("kubectl entra is this project's kubectl plugin; make demo puts it on kubectl's PATH");
    kubectl.entra(&["pools", "-n", NAMESPACE])?;
    kubectl.entra(&[
        "lease",
        "contoso",
        "-n",
        NAMESPACE,
        "--name",
        "ci-deploy",
        "--ttl",
        "30m",
        "--auto-renew",
    ])?;
    note("^ the password stays off the terminal unless asked for (--show-password, --output-file)");
    kubectl.entra(&[
        "lease",
        "contoso",
        "-n",
        NAMESPACE,
        "--name",
        "bob-debugging",
        "--user",
        "bob@contoso.onmicrosoft.com",
        "--secret-name",
        "bob-credentials",
        "--show-password",
    ])?;
    note("^ a real password of the emulator's fictitious tenant, shown because this is a demo");
    note("the same two leases as YAML, for GitOps: examples/lease.yaml");
    kubectl.entra(&["leases", "-n", NAMESPACE])?;
    kubectl.show(&[
        "get",
        "secret",
        "entra-ci-deploy",
        "-n",
        NAMESPACE,
        "-o",
        r#"go-template={{range $key, $value := .data}}{{$key}}: {{$value | base64decode}}{{"\n"}}{{end}}"#,
    ])?;
    note("^ the Secret that pods mount");
    let (username, password) = credentials(kubectl, "entra-ci-deploy")?;
    sign_in(stack, &username, &password, true)
}

fn renew(stack: &mut Stack, kubectl: &Kubectl) -> Result<(), String> {
    heading("5. Renew: a later expiry, the same password, never past maxTTL");
    // bob-debugging does not renew itself (no --auto-renew), so every renewal below is asked for.
    let lease = "entralease/bob-debugging";
    let password = credentials(kubectl, "bob-credentials")?.1;
    let graph_writes = stack.emulator().counters().graph_writes;
    // Expiry has whole-second precision: let a second pass so the renewal visibly moves it.
    std::thread::sleep(Duration::from_secs(1));
    stack.check_operator()?;
    kubectl.entra(&["renew", "bob-debugging", "-n", NAMESPACE])?;
    if credentials(kubectl, "bob-credentials")?.1 != password {
        return Err("the renewal changed the password".into());
    }
    if stack.emulator().counters().graph_writes != graph_writes {
        return Err("the renewal wrote to Graph".into());
    }
    note("same password, and the emulator saw no Graph write: a renewal is bookkeeping only");

    println!();
    note("Renew by the whole maxTTL (24h): the expiry stops at maxExpiresAt, issuedAt + 24h.");
    kubectl.show(&[
        "patch",
        lease,
        "-n",
        NAMESPACE,
        "--type=merge",
        "-p",
        r#"{"spec":{"ttl":"24h"}}"#,
    ])?;
    kubectl.entra(&["renew", "bob-debugging", "-n", NAMESPACE])?;
    kubectl.show(&[
        "get",
        lease,
        "-n",
        NAMESPACE,
        "-o",
        r#"jsonpath={.status.conditions[?(@.type=="Ready")].reason}: {.status.conditions[?(@.type=="Ready")].message}{"\n"}"#,
    ])?;
    note(
        "kubectl entra renew sets the annotation kms.hanzo.ai/renew to a new value; any client may",
    );
    Ok(())
}

fn revoke(stack: &mut Stack, kubectl: &Kubectl) -> Result<(), String> {
    heading("6. Revoke: end a lease before its time");
    let (username, password) = credentials(kubectl, "bob-credentials")?;
    // The holder signs in and registers a passkey: a way in that no password scramble closes.
    let passkey = stack
        .emulator()
        .register_method(&username, MethodKind::Fido2)
        .ok_or_else(|| format!("no user {username} in the emulator"))?;
    note(&format!(
        "the holder registers a passkey on {username} during the lease (method {})",
        passkey.id
    ));
    sign_in_with_method(stack, &username, &passkey.id, true)?;
    stack.check_operator()?;
    kubectl.entra(&["revoke", "bob-debugging", "-n", NAMESPACE, "--wait"])?;
    sign_in(stack, &username, &password, false)?;
    sign_in_with_method(stack, &username, &passkey.id, false)?;
    kubectl.show_failing(&["get", "secret", "bob-credentials", "-n", NAMESPACE])?;
    kubectl.entra(&["leases", "-n", NAMESPACE])?;
    Ok(())
}

fn expire(stack: &mut Stack, kubectl: &Kubectl) -> Result<(), String> {
    heading("7. Expire: a lease with a 10s TTL ends on its own");
    let manifest = "\
apiVersion: kms.hanzo.ai/v1alpha1
kind: EntraLease
metadata:
  name: short
spec:
  dynamicSecretRef:
    name: contoso
  ttl: 10s
";
    kubectl.show_with_input(&["apply", "-n", NAMESPACE, "-f", "-"], manifest)?;
    wait(
        stack,
        kubectl,
        &["--for=jsonpath={.status.phase}=Active", "entralease/short"],
    )?;
    let (username, password) = credentials(kubectl, "entra-short")?;
    sign_in(stack, &username, &password, true)?;
    let watch = kubectl.watch(&[
        "get",
        "entralease",
        "short",
        "-n",
        NAMESPACE,
        "--watch",
        "--output-watch-events",
    ])?;
    stack.check_operator()?;
    let waited = kubectl.quiet(&[
        "wait",
        "-n",
        NAMESPACE,
        WAIT_TIMEOUT,
        "--for=delete",
        "entralease/short",
    ]);
    watch.stop("DELETED");
    waited?;
    sign_in(stack, &username, &password, false)?;
    kubectl.show_failing(&["get", "secret", "entra-short", "-n", NAMESPACE])?;
    kubectl.show(&["get", "entraleases", "-n", NAMESPACE])?;
    Ok(())
}

/// `kubectl wait -n demo --timeout=60s <args>`, after making sure the operator still runs.
fn wait(stack: &mut Stack, kubectl: &Kubectl, args: &[&str]) -> Result<(), String> {
    stack.check_operator()?;
    let mut command = vec!["wait", "-n", NAMESPACE, WAIT_TIMEOUT];
    command.extend_from_slice(args);
    kubectl.show(&command).map(drop)
}

/// The username and password in a lease's Secret in the demo namespace.
fn credentials(kubectl: &Kubectl, secret: &str) -> Result<(String, String), String> {
    credentials_in(kubectl, NAMESPACE, secret)
}

/// The username and password in a lease's Secret in `namespace`.
fn credentials_in(
    kubectl: &Kubectl,
    namespace: &str,
    secret: &str,
) -> Result<(String, String), String> {
    let key = |key: &str| secret_value(kubectl, namespace, secret, key);
    Ok((key("username")?, key("password")?))
}

/// One key of a Secret in `namespace`, decoded.
fn secret_value(
    kubectl: &Kubectl,
    namespace: &str,
    secret: &str,
    key: &str,
) -> Result<String, String> {
    kubectl.quiet(&[
        "get",
        "secret",
        secret,
        "-n",
        namespace,
        "-o",
        &format!("go-template={{{{.data.{key} | base64decode}}}}"),
    ])
}

fn lease_field(kubectl: &Kubectl, lease: &str, jsonpath: &str) -> Result<String, String> {
    kubectl.quiet(&[
        "get",
        lease,
        "-n",
        NAMESPACE,
        "-o",
        &format!("jsonpath={jsonpath}"),
    ])
}

/// Signs in to the emulator's tenant as `username` and checks the outcome is `expected`.
fn sign_in(stack: &Stack, username: &str, password: &str, expected: bool) -> Result<(), String> {
    let accepted = stack.emulator().sign_in(username, password);
    judge_sign_in(username, "the leased password", accepted, expected)
}

/// Signs in as `username` with its sign-in method `method` and checks the outcome is `expected`.
fn sign_in_with_method(
    stack: &Stack,
    username: &str,
    method: &str,
    expected: bool,
) -> Result<(), String> {
    let accepted = stack.emulator().sign_in_with_method(username, method);
    judge_sign_in(username, "the passkey", accepted, expected)
}

fn judge_sign_in(username: &str, with: &str, accepted: bool, expected: bool) -> Result<(), String> {
    let outcome = if accepted { "accepted" } else { "rejected" };
    note(&format!(
        "Entra emulator: sign-in as {username} with {with} -> {outcome}"
    ));
    if accepted == expected {
        Ok(())
    } else {
        Err(format!(
            "the sign-in as {username} with {with} was {outcome}, expected the opposite"
        ))
    }
}

fn poll(timeout: Duration, mut condition: impl FnMut() -> bool) -> Result<(), String> {
    let started = Instant::now();
    while !condition() {
        if started.elapsed() > timeout {
            return Err(format!("condition not met within {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
