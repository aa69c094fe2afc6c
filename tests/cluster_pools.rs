//! Cluster pools (`ClusterEntraDynamicSecret`): the app credential stays in the operator's
//! namespace, and the pool serves the namespaces its selector matches. The operator runs as the
//! chart deploys it, on its own ServiceAccount, watching every namespace; lease users act with the
//! built-in `edit` role of their namespace and nothing else (the chart aggregates the lease editor
//! role into it).
//!
//! One test, so that one operator reconciles the cluster-scoped pools of this binary's control
//! plane.

use entra_test_support as support;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use entra_emulator::{Emulator, sample};
use entra_operator::api::{ClusterEntraDynamicSecret, EntraLease, LeasePhase};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::ControlPlane;
use support::chart::{
    OperatorPod, chart_operator, client_for, free_port, install, service_account_kubeconfig,
};
use support::cluster::{client_secret, install_crds, namespace, poll};
use support::lease_env::{APP_ID, CLIENT_SECRET};

const SELECTOR_LABEL: &str = "entra.example.com/leases";

struct World {
    control_plane: &'static ControlPlane,
    admin: kube::Client,
    emulator: Emulator,
    operator_namespace: String,
    operator: OperatorPod,
    _dir: tempfile::TempDir,
}

impl World {
    async fn start() -> World {
        let control_plane = ControlPlane::shared();
        install_crds(control_plane);
        let admin = control_plane.client().await;
        let operator_namespace = namespace(&admin, "cluster-op").await;
        let emulator = Emulator::start(entra_emulator::Config::sample())
            .await
            .expect("the emulator starts");
        let values = json!({
            "entra": { "authorityHost": emulator.base_url(), "graphEndpoint": emulator.base_url() },
            "metrics": { "port": free_port() },
            "logFormat": "text",
        });
        install(
            control_plane,
            &operator_namespace,
            &operator_namespace,
            &values,
        );
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("operator.kubeconfig");
        let deployment = chart_operator(
            control_plane,
            &operator_namespace,
            &operator_namespace,
            &kubeconfig,
        )
        .await;
        let operator = OperatorPod::start(&deployment, "operator", &kubeconfig);
        World {
            control_plane,
            admin,
            emulator,
            operator_namespace,
            operator,
            _dir: dir,
        }
    }

    async fn eventually<T, F, Fut>(&self, what: &str, probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        poll(what, Duration::from_secs(60), probe, || {
            self.operator.log_tail()
        })
        .await
    }

    fn cluster_pools(&self) -> Api<ClusterEntraDynamicSecret> {
        Api::all(self.admin.clone())
    }

    async fn label_namespace(&self, name: &str, value: Option<&str>) {
        let patch = json!({ "metadata": { "labels": { SELECTOR_LABEL: value } } });
        Api::<Namespace>::all(self.admin.clone())
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    /// A namespace with a lease user holding the built-in `edit` role only.
    async fn team(&self, prefix: &str, dir: &Path) -> Team {
        let namespace = namespace(&self.admin, prefix).await;
        let rbac = format!(
            r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{ name: dev, namespace: {namespace} }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: dev-edit, namespace: {namespace} }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit }}
subjects: [{{ kind: ServiceAccount, name: dev, namespace: {namespace} }}]
"#
        );
        let applied = self
            .control_plane
            .kubectl_with_input(&["apply", "-f", "-"], &rbac);
        assert!(
            applied.status.success(),
            "{}",
            String::from_utf8_lossy(&applied.stderr)
        );
        let kubeconfig = dir.join(format!("{namespace}.kubeconfig"));
        service_account_kubeconfig(self.control_plane, &namespace, "dev", &kubeconfig);
        let dev = client_for(&kubeconfig).await;
        Team {
            namespace,
            dev,
            kubeconfig,
        }
    }
}

struct Team {
    namespace: String,
    /// The lease user: `edit` in this namespace, nothing else.
    dev: kube::Client,
    kubeconfig: PathBuf,
}

impl Team {
    fn leases(&self) -> Api<EntraLease> {
        Api::namespaced(self.dev.clone(), &self.namespace)
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.dev.clone(), &self.namespace)
    }

    async fn lease(&self, name: &str, user: &str) {
        let lease = serde_json::from_value(json!({
            "apiVersion": "kms.hanzo.ai/v1alpha1",
            "kind": "EntraLease",
            "metadata": { "name": name },
            "spec": {
                "dynamicSecretRef": { "kind": "ClusterEntraDynamicSecret", "name": "shared" },
                "user": user,
                "ttl": "10m",
            }
        }))
        .unwrap();
        self.leases()
            .create(&PostParams::default(), &lease)
            .await
            .expect("edit may create leases");
    }

    async fn phase(&self, name: &str) -> Option<(LeasePhase, String)> {
        let status = self.leases().get(name).await.ok()?.status?;
        let reason = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.reason.clone())
            .unwrap_or_default();
        Some((status.phase?, reason))
    }

    /// The username and password in the lease's Secret, read as the lease user.
    async fn credentials(&self, name: &str) -> (String, String, EntraLease) {
        let lease = self.leases().get(name).await.unwrap();
        let secret_name = lease.status.clone().unwrap().secret_name.unwrap();
        let data = self
            .secrets()
            .get(&secret_name)
            .await
            .unwrap()
            .data
            .unwrap();
        let text = |key: &str| String::from_utf8(data[key].0.clone()).unwrap();
        (text("username"), text("password"), lease)
    }
}

#[tokio::test]
async fn a_cluster_pool_serves_the_namespaces_it_selects_and_keeps_its_credential_away() {
    let world = World::start().await;
    let dir = tempfile::tempdir().unwrap();
    let selected = world.team("team-a", dir.path()).await;
    let other = world.team("team-b", dir.path()).await;
    world
        .label_namespace(&selected.namespace, Some("allowed"))
        .await;

    // The credential lives in the operator's namespace only. A Secret of the same name in a
    // team namespace, with a value that gets no token, is never read.
    let operator_secrets: Api<Secret> =
        Api::namespaced(world.admin.clone(), &world.operator_namespace);
    operator_secrets
        .create(
            &PostParams::default(),
            &client_secret("entra-app", CLIENT_SECRET),
        )
        .await
        .unwrap();
    selected
        .secrets()
        .create(
            &PostParams::default(),
            &client_secret("entra-app", "wrong-secret-value~not-the-right-one"),
        )
        .await
        .unwrap();
    let pool = serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "ClusterEntraDynamicSecret",
        "metadata": { "name": "shared" },
        "spec": {
            "tenantId": "contoso.onmicrosoft.com",
            "applicationId": APP_ID,
            "clientSecretRef": { "name": "entra-app" },
            "users": [sample::ALICE.upn, sample::BOB.upn],
            "defaultTTL": "10m",
            "maxTTL": "1h",
            "namespaceSelector": { "matchLabels": { SELECTOR_LABEL: "allowed" } },
        }
    }))
    .unwrap();
    world
        .cluster_pools()
        .create(&PostParams::default(), &pool)
        .await
        .unwrap();
    world
        .eventually("the cluster pool to be Ready", || async {
            let pool = world.cluster_pools().get("shared").await.ok()?;
            pool.status?
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(())
        })
        .await;

    // The lease user cannot read the credential, nor anything in the operator's namespace.
    for kubeconfig in [&selected.kubeconfig, &other.kubeconfig] {
        let can = world.control_plane.kubectl(&[
            "auth",
            "can-i",
            "get",
            "secret/entra-app",
            "-n",
            &world.operator_namespace,
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ]);
        assert_eq!(String::from_utf8_lossy(&can.stdout).trim(), "no");
    }
    let denied = Api::<Secret>::namespaced(selected.dev.clone(), &world.operator_namespace)
        .get("entra-app")
        .await;
    assert!(
        matches!(denied, Err(kube::Error::Api(ref status)) if status.code == 403),
        "{denied:?}"
    );

    // A selected namespace leases; the password works.
    selected.lease("svc", sample::ALICE.upn).await;
    world
        .eventually("the selected namespace's lease to be Active", || async {
            let (phase, _) = selected.phase("svc").await?;
            (phase == LeasePhase::Active).then_some(())
        })
        .await;
    let (username, password, active) = selected.credentials("svc").await;
    assert_eq!(username, sample::ALICE.upn);
    assert!(world.emulator.sign_in(&username, &password));

    // A namespace the selector does not match is refused, with the reason; labelled, it is
    // served.
    other.lease("svc", sample::BOB.upn).await;
    world
        .eventually("the other namespace's lease to be refused", || async {
            let (phase, reason) = other.phase("svc").await?;
            (phase == LeasePhase::Failed && reason == "NamespaceNotSelected").then_some(())
        })
        .await;
    assert_eq!(
        world
            .emulator
            .user(sample::BOB.upn)
            .unwrap()
            .password_set_count,
        0,
        "nothing was issued to the refused lease"
    );
    world
        .label_namespace(&other.namespace, Some("allowed"))
        .await;
    world
        .eventually(
            "the newly selected namespace's lease to be Active",
            || async {
                let (phase, _) = other.phase("svc").await?;
                (phase == LeasePhase::Active).then_some(())
            },
        )
        .await;

    // The pool's status names no lease of any namespace: only that users are taken.
    let status = world
        .cluster_pools()
        .get("shared")
        .await
        .unwrap()
        .status
        .unwrap();
    let holders: Vec<_> = status
        .users
        .iter()
        .filter_map(|u| u.leased_by.clone())
        .collect();
    assert_eq!(
        holders,
        ["(another namespace)", "(another namespace)"],
        "both users are shown taken, by no lease's name"
    );

    // A namespace that stops matching keeps its credential to its end, but cannot renew.
    world.label_namespace(&selected.namespace, None).await;
    let patch = json!({ "metadata": { "annotations": { "kms.hanzo.ai/renew": "after-unlabel" } } });
    selected
        .leases()
        .patch("svc", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    world
        .eventually("the renewal to be declined", || async {
            let (phase, reason) = selected.phase("svc").await?;
            (phase == LeasePhase::Active && reason == "NamespaceNotSelected").then_some(())
        })
        .await;
    let (_, still, declined) = selected.credentials("svc").await;
    assert_eq!(still, password, "the credential is unchanged");
    assert_eq!(
        declined.status.unwrap().expires_at,
        active.status.unwrap().expires_at,
        "a declined renewal moves no deadline"
    );
    assert!(world.emulator.sign_in(&username, &still));

    // Ending the lease ends the credential, with the copy in the operator's namespace.
    selected
        .leases()
        .delete("svc", &DeleteParams::default())
        .await
        .unwrap();
    world
        .eventually("the lease to be gone", || async {
            selected
                .leases()
                .get_opt("svc")
                .await
                .ok()?
                .is_none()
                .then_some(())
        })
        .await;
    assert!(!world.emulator.sign_in(&username, &password));
}
