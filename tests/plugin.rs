//! `kubectl entra`, the built plugin binary, driven as its users drive it: a lease user with the
//! namespace's `edit` role (which the chart's aggregated roles extend to leases), a viewer, and
//! the cluster admin, against the local control plane, a running operator and the Entra emulator.

use entra_test_support as support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use entra_operator::api::{ClusterEntraDynamicSecret, EntraDynamicSecret, PoolKind};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::{Value, json};
use support::chart::{documents, edit_user, service_account_kubeconfig, template};
use support::cluster::namespace;
use support::lease_env::LeaseEnv;
use support::{ControlPlane, Operator};

const THREE: [&str; 3] = [
    "alice@contoso.onmicrosoft.com",
    "bob@contoso.onmicrosoft.com",
    "carol@contoso.onmicrosoft.com",
];

/// The plugin as one identity, in one namespace.
struct Plugin {
    kubeconfig: PathBuf,
    namespace: String,
}

impl Plugin {
    async fn run(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-entra"))
            .env_remove("KUBECONFIG")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["-n", &self.namespace])
            .args(args)
            .output()
            .await
            .expect("the plugin runs")
    }

    /// Stdout of a run that must succeed.
    async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "kubectl entra {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Stderr of a run that must fail.
    async fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(
            !output.status.success(),
            "kubectl entra {args:?} should fail: {}{stderr}",
            String::from_utf8_lossy(&output.stdout),
        );
        stderr
    }
}

/// The chart's aggregated roles, so that `edit` and `view` cover this operator's resources as
/// they do in an installation. Once per test binary: two tests applying the same new roles at
/// once race, and one gets AlreadyExists.
fn install_user_roles(control_plane: &ControlPlane) {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| apply_user_roles(control_plane));
}

fn apply_user_roles(control_plane: &ControlPlane) {
    let rendered = documents(&template("plugin", "plugin", &json!({})));
    for role in rendered.iter().filter(|o| {
        o["kind"] == "ClusterRole"
            && o["metadata"]["labels"].as_object().is_some_and(|l| {
                l.keys()
                    .any(|k| k.starts_with("rbac.authorization.k8s.io/aggregate-to"))
            })
    }) {
        let applied = control_plane.kubectl_with_input(&["apply", "-f", "-"], &role.to_string());
        assert!(
            applied.status.success(),
            "{}",
            String::from_utf8_lossy(&applied.stderr)
        );
    }
}

/// Waits until RBAC (after role aggregation) lets `user` of `namespace` do `verb` on `resource`.
async fn wait_for_right(env: &LeaseEnv, user: &str, verb: &str, resource: &str) {
    let who = format!("system:serviceaccount:{}:{user}", env.namespace);
    env.wait_for(
        &format!("{who} to be allowed to {verb} {resource}"),
        || async {
            let answer = env.control_plane.kubectl(&[
                "auth",
                "can-i",
                verb,
                resource,
                "-n",
                &env.namespace,
                "--as",
                &who,
            ]);
            (String::from_utf8_lossy(&answer.stdout).trim() == "yes").then_some(())
        },
    )
    .await
}

/// A lease user: the namespace's `edit` role and nothing else.
async fn lease_user(env: &LeaseEnv, dir: &Path) -> Plugin {
    install_user_roles(env.control_plane);
    let kubeconfig = dir.join("dev.kubeconfig");
    edit_user(env.control_plane, &env.namespace, "dev", "", &kubeconfig).await;
    wait_for_right(env, "dev", "create", "entraleases.kms.hanzo.ai").await;
    Plugin {
        kubeconfig,
        namespace: env.namespace.clone(),
    }
}

/// A ServiceAccount `name` of the namespace with the rights `grant` gives it (RBAC objects in
/// YAML; `{sa}` stands for the ServiceAccount as a subject).
async fn user_with(env: &LeaseEnv, dir: &Path, name: &str, grant: &str, probe: &str) -> Plugin {
    install_user_roles(env.control_plane);
    let namespace = &env.namespace;
    let subject = format!("{{ kind: ServiceAccount, name: {name}, namespace: {namespace} }}");
    let rbac = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{ name: {name}, namespace: {namespace} }}\n---\n{}",
        grant.replace("{sa}", &subject).replace("{ns}", namespace)
    );
    let applied = env
        .control_plane
        .kubectl_with_input(&["apply", "-f", "-"], &rbac);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let kubeconfig = dir.join(format!("{name}.kubeconfig"));
    service_account_kubeconfig(env.control_plane, namespace, name, &kubeconfig);
    let (verb, resource) = probe.split_once(' ').unwrap();
    wait_for_right(env, name, verb, resource).await;
    Plugin {
        kubeconfig,
        namespace: namespace.clone(),
    }
}

/// A viewer: the namespace's `view` role.
async fn viewer(env: &LeaseEnv, dir: &Path) -> Plugin {
    let grant = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: viewer-view, namespace: {ns} }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view }
subjects: [{sa}]
"#;
    user_with(env, dir, "viewer", grant, "list entraleases.kms.hanzo.ai").await
}

/// Rights on leases and their Secrets only: not even reading the pools.
async fn lease_only_user(env: &LeaseEnv, dir: &Path) -> Plugin {
    let grant = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: leases-only, namespace: {ns} }
rules:
  - { apiGroups: [kms.hanzo.ai], resources: [entraleases], verbs: [create, get, list, watch, patch, delete] }
  - { apiGroups: [""], resources: [secrets], verbs: [get] }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: leases-only, namespace: {ns} }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: leases-only }
subjects: [{sa}]
"#;
    user_with(env, dir, "leaser", grant, "create entraleases.kms.hanzo.ai").await
}

fn admin(env: &LeaseEnv) -> Plugin {
    Plugin {
        kubeconfig: env.control_plane.kubeconfig.clone(),
        namespace: env.namespace.clone(),
    }
}

#[tokio::test]
async fn a_lease_user_leases_renews_and_revokes_from_the_terminal() {
    let env = LeaseEnv::start("plugin").await;
    env.create_pool("pool", &THREE, "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    let dir = tempfile::tempdir().unwrap();
    let dev = lease_user(&env, dir.path()).await;

    let pools = dev.ok(&["pools"]).await;
    let row = pools
        .lines()
        .find(|l| l.starts_with(&format!("{}/pool ", env.namespace)))
        .unwrap_or_else(|| panic!("the pool is listed: {pools}"));
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        columns[1..5],
        ["EntraDynamicSecret", "True", "3", "0"],
        "{pools}"
    );

    // The credentials shown at once; the password only when asked for.
    let shown = dev
        .ok(&["lease", "pool", "--name", "web", "--ttl", "30m"])
        .await;
    let lease = env.lease("web").await.expect("the lease exists");
    let secret = lease.status.unwrap().secret_name.unwrap();
    let (username, password) = env.credentials(&secret).await;
    assert!(env.emulator.sign_in(&username, &password));
    assert!(
        shown.contains(&format!("Username         {username}")),
        "{shown}"
    );
    assert!(shown.contains("Password         (hidden"), "{shown}");
    assert!(!shown.contains(&password), "no password unless asked for");

    let creds: Value = serde_json::from_str(
        &dev.ok(&["creds", "web", "-o", "json", "--show-password"])
            .await,
    )
    .expect("-o json is JSON");
    assert_eq!(creds["username"], username.as_str());
    assert_eq!(creds["password"], password.as_str());
    assert!(creds["expiresAt"].as_str().is_some(), "{creds}");
    let yaml = dev.ok(&["creds", "web", "-o", "yaml"]).await;
    let yaml: Value = yaml_serde::from_str(&yaml).expect("-o yaml is YAML");
    assert_eq!(yaml["username"], username.as_str());
    assert!(yaml.get("password").is_none(), "hidden in YAML too");

    // A file gets the password, readable by its owner only, even if it existed with wider rights.
    let file = dir.path().join("web.env");
    std::fs::write(&file, "old").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let file_arg = file.to_str().unwrap();
    let printed = dev
        .ok(&["creds", "web", "-o", "env", "--output-file", file_arg])
        .await;
    assert!(!printed.contains(&password), "{printed}");
    assert!(!printed.contains("ENTRA_PASSWORD"), "{printed}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(
        written.contains(&format!("ENTRA_USERNAME='{username}'")),
        "{written}"
    );
    assert!(
        written.contains(&format!("ENTRA_PASSWORD='{password}'")),
        "{written}"
    );

    // A symlink planted at the path is replaced, not followed.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep me").unwrap();
    let link = dir.path().join("link.env");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    dev.ok(&[
        "creds",
        "web",
        "-o",
        "env",
        "--output-file",
        link.to_str().unwrap(),
    ])
    .await;
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    let written = std::fs::symlink_metadata(&link).unwrap();
    assert!(written.is_file(), "a regular file replaced the link");
    assert_eq!(written.permissions().mode() & 0o777, 0o600);
    let refused = dev.fails(&["revoke", "web", "-A"]).await;
    assert!(
        refused.contains("applies to `leases` and `pools` only"),
        "{refused}"
    );

    let listed = dev.ok(&["leases"]).await;
    let row = listed
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_else(|| panic!("the lease is listed: {listed}"));
    assert!(
        row.contains(&username) && row.contains("Active"),
        "{listed}"
    );

    let renewed = dev.ok(&["renew", "web"]).await;
    assert!(renewed.contains("renewed: expires"), "{renewed}");
    let status = env.lease("web").await.unwrap().status.unwrap();
    assert!(
        status
            .last_renew_request
            .is_some_and(|r| r.starts_with("kubectl-entra-")),
        "the operator answered the plugin's request"
    );
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.reason, "Renewed");
    let expires = status.expires_at.unwrap().0;
    assert!(
        renewed.contains(&expires.to_string()),
        "the expiry printed is the lease's: {renewed}"
    );

    // A continuous lease shows its next rotation.
    let continuous = dev
        .ok(&[
            "lease",
            "pool",
            "--continuous",
            "--overlap",
            "5m",
            "-o",
            "json",
        ])
        .await;
    let continuous: Value = serde_json::from_str(&continuous).unwrap();
    assert!(
        continuous["nextRotationAt"].as_str().is_some(),
        "{continuous}"
    );
    assert!(continuous.get("password").is_none());
    let generated = continuous["lease"].as_str().unwrap();
    assert!(
        generated.starts_with("pool-"),
        "a generated name: {generated}"
    );

    let revoked = dev.ok(&["revoke", "web", "--wait"]).await;
    assert!(revoked.contains("revoked"), "{revoked}");
    assert!(env.lease("web").await.is_none());
    assert!(
        !env.emulator.sign_in(&username, &password),
        "the password printed is dead after revoke"
    );
    dev.ok(&["revoke", generated, "--wait"]).await;
    assert!(env.violations().await.is_empty());
}

#[tokio::test]
async fn every_refusal_says_what_and_why() {
    let env = LeaseEnv::start("plugin-errors").await;
    env.create_pool("one", &THREE[..1], "1h", "2h").await;
    env.wait_for_ready_pool("one").await;
    let dir = tempfile::tempdir().unwrap();
    let dev = lease_user(&env, dir.path()).await;
    let admin = admin(&env);

    let missing = admin.fails(&["lease", "nosuch"]).await;
    assert!(
        missing.contains("no pool nosuch: no EntraDynamicSecret nosuch in namespace"),
        "{missing}"
    );
    // A lease user may not read cluster pools: told how to name one.
    let unreadable = dev.fails(&["lease", "nosuch"]).await;
    assert!(unreadable.contains("--cluster-pool"), "{unreadable}");

    let over = dev.fails(&["lease", "one", "--ttl", "3h"]).await;
    assert!(
        over.contains("--ttl 3h is over the maxTTL of EntraDynamicSecret one, 2h"),
        "{over}"
    );

    let broken: EntraDynamicSecret = serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraDynamicSecret",
        "metadata": { "name": "broken" },
        "spec": {
            "tenantId": "contoso.onmicrosoft.com",
            "applicationId": "3c9d2b1a-7e6f-4a5b-8c9d-0e1f2a3b4c5d",
            "clientSecretRef": { "name": "no-such-secret" },
            "users": THREE,
            "defaultTTL": "1h",
            "maxTTL": "2h",
        }
    }))
    .unwrap();
    env.pools()
        .create(&PostParams::default(), &broken)
        .await
        .unwrap();
    let reason = env
        .wait_for("the broken pool's reason", || async {
            let status = env.pools().get("broken").await.ok()?.status?;
            let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
            (ready.status == "False").then(|| ready.reason.clone())
        })
        .await;
    let not_ready = dev.fails(&["lease", "broken"]).await;
    assert!(
        not_ready.contains(&format!(
            "EntraDynamicSecret broken is not Ready ({reason})"
        )),
        "{not_ready}"
    );

    // RBAC: which verb on which resource.
    let viewer = viewer(&env, dir.path()).await;
    let denied = viewer.fails(&["lease", "one"]).await;
    assert!(
        denied.contains(&format!(
            "you may not create entraleases in namespace {}",
            env.namespace
        )),
        "{denied}"
    );
    assert!(viewer.ok(&["leases"]).await.contains("No leases"));

    // Someone who may use leases but not read pools still leases a namespace's pool by name.
    let leaser = lease_only_user(&env, dir.path()).await;
    let leased = leaser.ok(&["lease", "one", "--name", "unchecked"]).await;
    assert!(leased.contains("Username"), "{leased}");
    leaser.ok(&["revoke", "unchecked", "--wait"]).await;

    // The only user is taken: the second lease waits, and the timeout says why.
    dev.ok(&["lease", "one", "--name", "first"]).await;
    let waited = dev
        .fails(&["lease", "one", "--name", "second", "--wait", "3s"])
        .await;
    assert!(
        waited
            .contains("timed out after 3s waiting for lease second to be Active; it is Pending ("),
        "{waited}"
    );
    let pending = dev.fails(&["creds", "second"]).await;
    assert!(
        pending.contains("lease second holds no credential: it is Pending"),
        "{pending}"
    );
    let listed = dev.ok(&["leases", "one"]).await;
    let second = listed.lines().find(|l| l.starts_with("second ")).unwrap();
    assert!(second.contains("Pending"), "the reason is listed: {listed}");
    let nothing = dev.fails(&["renew", "nosuch"]).await;
    assert!(
        nothing.contains("no lease nosuch in namespace"),
        "{nothing}"
    );

    // A cluster pool is found by its name; a lease user, who may not read it, says
    // --cluster-pool.
    let cluster_pool = format!("{}-shared", env.namespace);
    let created = env.control_plane.kubectl_with_input(
        &["apply", "-f", "-"],
        &json!({
            "apiVersion": "kms.hanzo.ai/v1alpha1",
            "kind": "ClusterEntraDynamicSecret",
            "metadata": { "name": cluster_pool },
            "spec": {
                "tenantId": "contoso.onmicrosoft.com",
                "applicationId": "3c9d2b1a-7e6f-4a5b-8c9d-0e1f2a3b4c5d",
                "clientSecretRef": { "name": "entra-app" },
                "users": THREE,
                "defaultTTL": "1h",
                "maxTTL": "2h",
                "namespaceSelector": {},
            }
        })
        .to_string(),
    );
    assert!(created.status.success());
    let pools = Api::<ClusterEntraDynamicSecret>::all(env.client.clone());
    env.wait_for("the cluster pool to be Ready", || async {
        let status = pools.get(&cluster_pool).await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (ready.status == "True").then_some(())
    })
    .await;
    let found = admin
        .ok(&["lease", &cluster_pool, "--name", "by-admin"])
        .await;
    assert!(found.contains("Username"), "{found}");
    let lease = env.lease("by-admin").await.expect("the lease was made");
    assert_eq!(
        lease.spec.dynamic_secret_ref.kind,
        PoolKind::ClusterEntraDynamicSecret,
        "found among the cluster pools"
    );
    dev.ok(&[
        "lease",
        &cluster_pool,
        "--cluster-pool",
        "--name",
        "from-cluster",
    ])
    .await;
    let lease = env.lease("from-cluster").await.expect("the lease was made");
    assert_eq!(
        lease.spec.dynamic_secret_ref.kind,
        PoolKind::ClusterEntraDynamicSecret
    );
    // The pool stops serving the namespace: a renewal is answered, declined, and said so.
    let narrowed = env.control_plane.kubectl(&[
        "patch",
        "clusterentradynamicsecret",
        &cluster_pool,
        "--type=merge",
        "-p",
        r#"{"spec":{"namespaceSelector":{"matchLabels":{"nobody":"here"}}}}"#,
    ]);
    assert!(narrowed.status.success());
    let declined = dev.fails(&["renew", "from-cluster"]).await;
    assert!(
        declined.contains("lease from-cluster was not renewed (NamespaceNotSelected"),
        "{declined}"
    );
    for name in ["by-admin", "from-cluster", "second", "first"] {
        dev.ok(&["revoke", name, "--wait"]).await;
    }
    let deleted =
        env.control_plane
            .kubectl(&["delete", "clusterentradynamicsecret", &cluster_pool]);
    assert!(deleted.status.success());
    env.pools()
        .delete("broken", &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn status_finds_the_crds_and_the_leader_and_says_when_none_leads() {
    let env = LeaseEnv::start("plugin-status").await;
    let dir = tempfile::tempdir().unwrap();
    let dev = lease_user(&env, dir.path()).await;
    // A leader-elected operator of its own namespace (watching nothing else), as installed.
    let operator_namespace = namespace(&env.client, "plugin-operator").await;
    let mut leader = Operator::start_with(
        env.control_plane,
        &env.emulator.base_url(),
        &operator_namespace,
        &operator_namespace,
        "leader-one",
        vec![
            "--leader-elect".into(),
            "--leader-election-lease-duration-seconds=4".into(),
        ],
    );
    let admin = admin(&env);
    let status_args = ["status", "--operator-namespace", &operator_namespace];
    let healthy = env
        .wait_for("the plugin to see a leader", || async {
            let output = admin.run(&status_args).await;
            let stdout = String::from_utf8(output.stdout).unwrap();
            (output.status.success() && stdout.contains("leader-one (renewed")).then_some(stdout)
        })
        .await;
    assert_eq!(
        healthy.matches("(matches this plugin)").count(),
        3,
        "all three CRDs, as this plugin knows them: {healthy}"
    );
    assert!(healthy.contains("API server   v1."), "{healthy}");

    // A lease user may not read CRDs or the Lease, but discovery says what is served.
    let as_dev = dev.run(&status_args).await;
    let (stdout, stderr) = (
        String::from_utf8(as_dev.stdout).unwrap(),
        String::from_utf8(as_dev.stderr).unwrap(),
    );
    assert_eq!(stdout.matches("(served: true)").count(), 3, "{stdout}");
    assert!(
        !as_dev.status.success(),
        "an unverified operator is no success"
    );
    assert!(
        stderr.contains("could not verify that an operator runs"),
        "{stderr}"
    );
    // Nothing in a namespace without an operator.
    let nowhere = admin
        .run(&["status", "--operator-namespace", &env.namespace])
        .await;
    assert!(!nowhere.status.success());
    assert!(
        String::from_utf8_lossy(&nowhere.stderr).contains("no running operator found"),
        "{nowhere:?}"
    );

    leader.kill();
    let stale = env
        .wait_for("the plugin to say that nobody leads", || async {
            let output = admin.run(&status_args).await;
            (!output.status.success()).then(|| String::from_utf8(output.stderr).unwrap())
        })
        .await;
    assert!(stale.contains("no replica leads"), "{stale}");
}
