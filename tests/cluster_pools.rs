//! Cluster pools (`ClusterEntraDynamicSecret`) and the credentials that are no secret: the app
//! credential stays in the operator's namespace, and the pool serves the namespaces its selector
//! matches; a certificate signs client assertions; workload identity exchanges a ServiceAccount
//! token the local API server issues and the emulator verifies against the API server's own keys.
//! The operator runs as the chart deploys it, on its own ServiceAccount, watching every namespace;
//! lease users act with the built-in `edit` role of their namespace and nothing else (the chart
//! aggregates the lease editor role into it).
//!
//! One test, so that one operator reconciles the cluster-scoped pools of this binary's control
//! plane; its phases are functions run one after the other.

use entra_test_support as support;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use entra_emulator::{CredentialKind, Emulator, FederatedCredential, sample};
use entra_operator::api::{ClusterEntraDynamicSecret, EntraLease, LeasePhase};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::ControlPlane;
use support::chart::{ChartRelease, edit_user, free_port};
use support::cluster::{client_secret, install_crds, namespace, poll};
use support::lease_env::{APP_ID, CLIENT_SECRET};

const SELECTOR_LABEL: &str = "entra.example.com/leases";
/// The ServiceAccount of the operator's namespace whose tokens the app trusts.
const POOL_IDENTITY: &str = "pool-identity";
const CERTIFICATE: &str = include_str!("../src/graph/testdata/rsa.crt");
const KEY: &str = include_str!("../src/graph/testdata/rsa.key");

struct World {
    control_plane: &'static ControlPlane,
    admin: kube::Client,
    emulator: Emulator,
    operator_namespace: String,
    release: ChartRelease,
    /// Where the operator's own federated token is (what the Azure workload identity webhook
    /// would mount); empty until a phase writes it.
    own_token: PathBuf,
    _dir: tempfile::TempDir,
}

impl World {
    async fn start() -> World {
        let control_plane = ControlPlane::shared();
        install_crds(control_plane);
        let admin = control_plane.client().await;
        // The emulator verifies federated tokens against the API server's keys, over TLS.
        let mut config = entra_emulator::Config::sample();
        config.trusted_issuer_cas =
            vec![std::fs::read_to_string(&control_plane.ca_certificate).unwrap()];
        let emulator = Emulator::start(config).await.expect("the emulator starts");
        let dir = tempfile::tempdir().unwrap();
        let own_token = dir.path().join("azure-identity-token");
        let values = json!({
            "metrics": { "port": free_port() },
            "logFormat": "text",
            // What the webhook injects into a pod labelled for workload identity.
            "extraEnv": [{ "name": "AZURE_FEDERATED_TOKEN_FILE", "value": own_token }],
            "workloadIdentity": { "serviceAccounts": [POOL_IDENTITY, "ghost-identity"] },
            // Issue in the public cloud only.
            "entra": {
                "authorityHost": emulator.base_url(),
                "graphEndpoint": emulator.base_url(),
                "allowedClouds": ["AzurePublic"],
            },
        });
        let release = ChartRelease::start(control_plane, "cluster-op", &values, "operator").await;
        World {
            control_plane,
            admin,
            emulator,
            operator_namespace: release.namespace.clone(),
            release,
            own_token,
            _dir: dir,
        }
    }

    /// Creates a cluster pool serving every namespace over `users` with `credential` (the spec's
    /// credential field or fields).
    async fn cluster_pool(&self, name: &str, users: &[&str], credential: serde_json::Value) {
        let mut spec = json!({
            "tenantId": "contoso.onmicrosoft.com",
            "applicationId": APP_ID,
            "users": users,
            "defaultTTL": "10m",
            "maxTTL": "1h",
            "namespaceSelector": {},
        });
        spec.as_object_mut()
            .unwrap()
            .extend(credential.as_object().unwrap().clone());
        let pool = serde_json::from_value(json!({
            "apiVersion": "kms.hanzo.ai/v1alpha1",
            "kind": "ClusterEntraDynamicSecret",
            "metadata": { "name": name },
            "spec": spec,
        }))
        .unwrap();
        self.cluster_pools()
            .create(&PostParams::default(), &pool)
            .await
            .unwrap();
    }

    /// Waits until cluster pool `name` is Ready, or not Ready for `reason`.
    async fn pool_reason(&self, name: &str, reason: &str) {
        self.eventually(&format!("cluster pool {name} to say {reason}"), || async {
            let pool = self.cluster_pools().get(name).await.ok()?;
            pool.status?
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.reason == reason)
                .then_some(())
        })
        .await;
    }

    /// A Secret in the operator's namespace.
    async fn operator_secret(&self, secret: serde_json::Value) {
        let secret: Secret = serde_json::from_value(secret).unwrap();
        Api::<Secret>::namespaced(self.admin.clone(), &self.operator_namespace)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }

    /// `kubectl auth can-i` as the identity of `kubeconfig`.
    fn can_i(&self, kubeconfig: &Path, args: &[&str]) -> String {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--kubeconfig", kubeconfig.to_str().unwrap()]);
        let answer = self.control_plane.kubectl(&all);
        String::from_utf8_lossy(&answer.stdout).trim().to_owned()
    }

    async fn eventually<T, F, Fut>(&self, what: &str, probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        poll(what, Duration::from_secs(60), probe, || {
            self.release.operator.log_tail()
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
        let kubeconfig = dir.join(format!("{namespace}.kubeconfig"));
        let dev = edit_user(self.control_plane, &namespace, "dev", "", &kubeconfig).await;
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

    async fn lease(&self, name: &str, pool: &str, user: &str) {
        let lease = serde_json::from_value(json!({
            "apiVersion": "kms.hanzo.ai/v1alpha1",
            "kind": "EntraLease",
            "metadata": { "name": name },
            "spec": {
                "dynamicSecretRef": { "kind": "ClusterEntraDynamicSecret", "name": pool },
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

    /// Leases from `pool`, waits until Active, checks the password in the emulator, renews,
    /// ends the lease and checks the password is dead.
    async fn lease_round_trip(&self, world: &World, name: &str, pool: &str, user: &str) {
        self.lease(name, pool, user).await;
        world
            .eventually(&format!("lease {name} of {pool} to be Active"), || async {
                let (phase, _) = self.phase(name).await?;
                (phase == LeasePhase::Active).then_some(())
            })
            .await;
        let (username, password, _) = self.credentials(name).await;
        assert!(
            world.emulator.sign_in(&username, &password),
            "{pool}: the password works"
        );
        let renew = json!({ "metadata": { "annotations": { "kms.hanzo.ai/renew": "1" } } });
        self.leases()
            .patch(name, &PatchParams::default(), &Patch::Merge(&renew))
            .await
            .unwrap();
        world
            .eventually(&format!("lease {name} to be renewed"), || async {
                let status = self.leases().get(name).await.ok()?.status?;
                (status.renew_count == 1).then_some(())
            })
            .await;
        self.leases()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
        world
            .eventually(&format!("lease {name} to be gone"), || async {
                self.leases()
                    .get_opt(name)
                    .await
                    .ok()?
                    .is_none()
                    .then_some(())
            })
            .await;
        assert!(
            !world.emulator.sign_in(&username, &password),
            "{pool}: revoked"
        );
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
async fn cluster_pools_serve_selected_namespaces_with_credentials_lease_users_cannot_reach() {
    let world = World::start().await;
    let dir = tempfile::tempdir().unwrap();
    let selected = world.team("team-a", dir.path()).await;
    let other = world.team("team-b", dir.path()).await;
    a_selector_decides_which_namespaces_lease(&world, &selected, &other).await;
    a_deleted_pool_waits_only_for_its_credentials(&world, &selected, &other).await;
    a_certificate_signs_the_apps_assertions(&world, &other).await;
    workload_identity_exchanges_a_service_account_token(&world, &other).await;
}

async fn a_selector_decides_which_namespaces_lease(world: &World, selected: &Team, other: &Team) {
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
    selected.lease("svc", "shared", sample::ALICE.upn).await;
    world
        .eventually("the selected namespace's lease to be Active", || async {
            let (phase, _) = selected.phase("svc").await?;
            (phase == LeasePhase::Active).then_some(())
        })
        .await;
    let (username, password, _) = selected.credentials("svc").await;
    assert_eq!(username, sample::ALICE.upn);
    assert!(world.emulator.sign_in(&username, &password));

    // A namespace the selector does not match is refused, with the reason; labelled, it is
    // served.
    other.lease("svc", "shared", sample::BOB.upn).await;
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
    world
        .eventually("the pool's status to show both users taken", || async {
            let status = world.cluster_pools().get("shared").await.ok()?.status?;
            let holders: Vec<_> = status
                .users
                .iter()
                .filter_map(|u| u.leased_by.clone())
                .collect();
            (status.leased == 2).then_some(holders)
        })
        .await
        .iter()
        .for_each(|holder| assert_eq!(holder, "(another namespace)"));

    // The lease user renews: the deadline moves, the password stays.
    let renew = json!({ "metadata": { "annotations": { "kms.hanzo.ai/renew": "first" } } });
    selected
        .leases()
        .patch("svc", &PatchParams::default(), &Patch::Merge(&renew))
        .await
        .expect("edit may ask for a renewal");
    let active = world
        .eventually("the lease user's renewal", || async {
            let lease = selected.leases().get("svc").await.ok()?;
            (lease.status.as_ref()?.last_renew_request.as_deref() == Some("first")).then_some(lease)
        })
        .await;
    assert_eq!(selected.credentials("svc").await.1, password);

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
    other
        .leases()
        .delete("svc", &DeleteParams::default())
        .await
        .unwrap();
}

/// Deleting a cluster pool ends the credentials issued from it, and waits for nothing else: a
/// lease user of a namespace the pool does not select names it in a lease that carries a
/// finalizer of their own, and the pool goes all the same.
async fn a_deleted_pool_waits_only_for_its_credentials(
    world: &World,
    selected: &Team,
    other: &Team,
) {
    world
        .label_namespace(&selected.namespace, Some("allowed"))
        .await;
    world.label_namespace(&other.namespace, None).await;
    let pool = serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "ClusterEntraDynamicSecret",
        "metadata": { "name": "going" },
        "spec": {
            "tenantId": "contoso.onmicrosoft.com",
            "applicationId": APP_ID,
            "clientSecretRef": { "name": "entra-app" },
            "users": [sample::CAROL.upn],
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
    world.pool_reason("going", "Ready").await;
    selected.lease("held", "going", sample::CAROL.upn).await;
    world
        .eventually("the selected namespace's lease to be Active", || async {
            let (phase, _) = selected.phase("held").await?;
            (phase == LeasePhase::Active).then_some(())
        })
        .await;
    let (username, password, _) = selected.credentials("held").await;
    assert!(world.emulator.sign_in(&username, &password));

    let squatter = serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraLease",
        "metadata": { "name": "squatter", "finalizers": ["example.com/keep"] },
        "spec": { "dynamicSecretRef": { "kind": "ClusterEntraDynamicSecret", "name": "going" } }
    }))
    .unwrap();
    other
        .leases()
        .create(&PostParams::default(), &squatter)
        .await
        .expect("edit may create leases with finalizers of its own");
    world
        .eventually("the unselected namespace's lease to be refused", || async {
            let (phase, reason) = other.phase("squatter").await?;
            (phase == LeasePhase::Failed && reason == "NamespaceNotSelected").then_some(())
        })
        .await;

    world
        .cluster_pools()
        .delete("going", &DeleteParams::default())
        .await
        .unwrap();
    world
        .eventually(
            "the pool and its one credential's lease to be gone",
            || async {
                let pool_gone = world.cluster_pools().get_opt("going").await.ok()?.is_none();
                let lease_gone = selected.leases().get_opt("held").await.ok()?.is_none();
                (pool_gone && lease_gone).then_some(())
            },
        )
        .await;
    assert!(
        !world.emulator.sign_in(&username, &password),
        "the credential issued from the deleted pool ended"
    );
    let squatter = other.leases().get("squatter").await.unwrap();
    assert!(
        squatter.metadata.deletion_timestamp.is_none(),
        "a lease that never held a credential of the pool is not the pool's to delete"
    );
    // Cleaning up takes break glass: the operator's finalizer is on the refused lease too.
    let squatters = Api::<EntraLease>::namespaced(world.admin.clone(), &other.namespace);
    let release = json!({ "metadata": { "finalizers": null } });
    squatters
        .patch("squatter", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    squatters
        .delete("squatter", &DeleteParams::default())
        .await
        .unwrap();
}

/// A certificate in a kubernetes.io/tls Secret of the operator's namespace: issue, revoke, and
/// each way it can be wrong, as the pool's condition.
async fn a_certificate_signs_the_apps_assertions(world: &World, team: &Team) {
    world
        .emulator
        .update_app(APP_ID, |app| app.certificates.push(CERTIFICATE.to_owned()));
    let tls = |name: &str, certificate: &str, key: &str| {
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": { "name": name },
            "type": "kubernetes.io/tls",
            "stringData": { "tls.crt": certificate, "tls.key": key },
        })
    };
    world
        .operator_secret(tls("app-certificate", CERTIFICATE, KEY))
        .await;
    let before = world
        .emulator
        .counters()
        .token_requests_with(CredentialKind::Certificate);
    world
        .cluster_pool(
            "by-certificate",
            &[sample::CAROL.upn],
            json!({ "certificateRef": { "name": "app-certificate" } }),
        )
        .await;
    world.pool_reason("by-certificate", "Ready").await;
    let pool = world.cluster_pools().get("by-certificate").await.unwrap();
    assert_eq!(
        pool.status
            .and_then(|s| s.credential_expires_at)
            .map(|t| t.0.to_string()),
        Some("2098-01-01T00:00:00Z".to_owned()),
        "a certificate's expiry is its notAfter"
    );
    team.lease_round_trip(world, "by-certificate", "by-certificate", sample::CAROL.upn)
        .await;
    assert!(
        world
            .emulator
            .counters()
            .token_requests_with(CredentialKind::Certificate)
            > before,
        "the tokens came by certificate"
    );

    let testdata = |name: &str| {
        std::fs::read_to_string(format!(
            "{}/src/graph/testdata/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let bad = [
        (
            "expired",
            tls("cert-expired", &testdata("expired.crt"), KEY),
            "CertificateExpired",
        ),
        (
            "future",
            tls("cert-future", &testdata("future.crt"), KEY),
            "CertificateNotYetValid",
        ),
        (
            "mismatch",
            tls("cert-mismatch", CERTIFICATE, &testdata("other.key")),
            "CertificateKeyMismatch",
        ),
        (
            "ec",
            tls("cert-ec", &testdata("ec.crt"), &testdata("ec.key")),
            "CertificateKeyUnsupported",
        ),
        // A valid certificate the app never registered: Entra refuses the assertion.
        (
            "unregistered",
            tls("cert-unregistered", &testdata("rotated.crt"), KEY),
            "InvalidClientAssertion",
        ),
        (
            "opaque",
            json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "cert-opaque" },
                "stringData": { "tls.crt": CERTIFICATE, "tls.key": KEY },
            }),
            "CertificateSecretWrongType",
        ),
    ];
    for (case, secret, reason) in bad {
        let secret_name = secret["metadata"]["name"].as_str().unwrap().to_owned();
        world.operator_secret(secret).await;
        let pool = format!("bad-certificate-{case}");
        world
            .cluster_pool(
                &pool,
                &[sample::CAROL.upn],
                json!({ "certificateRef": { "name": secret_name } }),
            )
            .await;
        world.pool_reason(&pool, reason).await;
    }
}

/// Workload identity: the app's federated identity credential trusts a ServiceAccount of the
/// operator's namespace, whose tokens the local API server signs; the emulator fetches the API
/// server's discovery document and keys, as Entra does. The chart lets the operator mint tokens
/// for that ServiceAccount only.
async fn workload_identity_exchanges_a_service_account_token(world: &World, team: &Team) {
    let setup = format!(
        r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{ name: {POOL_IDENTITY}, namespace: {namespace} }}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{ name: not-granted, namespace: {namespace} }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{ name: service-account-issuer-discovery-public }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:service-account-issuer-discovery }}
subjects: [{{ apiGroup: rbac.authorization.k8s.io, kind: Group, name: system:unauthenticated }}]
"#,
        namespace = world.operator_namespace
    );
    let applied = world
        .control_plane
        .kubectl_with_input(&["apply", "-f", "-"], &setup);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    // The operator may mint tokens for the ServiceAccount it was given, and no other.
    let namespace = world.operator_namespace.as_str();
    let can = |service_account: &str| {
        world.can_i(
            &world.release.kubeconfig,
            &[
                "create",
                &format!("serviceaccounts/{service_account}"),
                "--subresource=token",
                "-n",
                namespace,
            ],
        )
    };
    assert_eq!(can(POOL_IDENTITY), "yes");
    assert_eq!(can("not-granted"), "no");
    assert_eq!(can("default"), "no");

    // Not yet trusted by the app: Entra's AADSTS70021.
    world
        .cluster_pool(
            "by-identity",
            &[sample::CAROL.upn],
            json!({ "workloadIdentity": { "serviceAccountName": POOL_IDENTITY } }),
        )
        .await;
    world
        .pool_reason("by-identity", "FederatedCredentialNotFound")
        .await;
    world.emulator.update_app(APP_ID, |app| {
        app.federated_credentials.push(FederatedCredential {
            issuer: format!("{}/", world.control_plane.server),
            subject: format!("system:serviceaccount:{namespace}:{POOL_IDENTITY}"),
            audiences: vec!["api://AzureADTokenExchange".into()],
        })
    });
    // A change of the pool makes the operator look again at once.
    let touch = json!({ "metadata": { "annotations": { "example.com/touched": "1" } } });
    world
        .cluster_pools()
        .patch(
            "by-identity",
            &PatchParams::default(),
            &Patch::Merge(&touch),
        )
        .await
        .unwrap();
    world.pool_reason("by-identity", "Ready").await;
    assert!(
        world
            .emulator
            .counters()
            .token_requests_with(CredentialKind::Federated)
            > 0,
        "the token came by federation"
    );
    team.lease_round_trip(world, "by-identity", "by-identity", sample::CAROL.upn)
        .await;

    // A ServiceAccount the chart did not grant, and one that does not exist.
    world
        .cluster_pool(
            "identity-not-granted",
            &[sample::CAROL.upn],
            json!({ "workloadIdentity": { "serviceAccountName": "not-granted" } }),
        )
        .await;
    world
        .pool_reason("identity-not-granted", "ServiceAccountTokenForbidden")
        .await;
    // Granted but missing.
    world
        .cluster_pool(
            "identity-missing",
            &[sample::CAROL.upn],
            json!({ "workloadIdentity": { "serviceAccountName": "ghost-identity" } }),
        )
        .await;
    world
        .pool_reason("identity-missing", "ServiceAccountNotFound")
        .await;
    // A lease user may mint no token of the operator's namespace.
    assert_eq!(
        world.can_i(
            &team.kubeconfig,
            &[
                "create",
                &format!("serviceaccounts/{POOL_IDENTITY}"),
                "--subresource=token",
                "-n",
                namespace
            ]
        ),
        "no"
    );
    // The operator's own federated token: none mounted yet.
    world
        .cluster_pool(
            "identity-own",
            &[sample::CAROL.upn],
            json!({ "workloadIdentity": {} }),
        )
        .await;
    world
        .pool_reason("identity-own", "FederatedTokenUnavailable")
        .await;
    // Mounted (a token of the operator's own ServiceAccount for the exchange audience, as the
    // webhook's projected volume holds) and trusted by the app: the pool works with it.
    let operator_account = format!("{namespace}-entra-operator");
    let token = world.control_plane.kubectl(&[
        "create",
        "token",
        &operator_account,
        "-n",
        namespace,
        "--audience=api://AzureADTokenExchange",
        "--duration=1h",
    ]);
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    std::fs::write(&world.own_token, &token.stdout).unwrap();
    world.emulator.update_app(APP_ID, |app| {
        app.federated_credentials.push(FederatedCredential {
            issuer: format!("{}/", world.control_plane.server),
            subject: format!("system:serviceaccount:{namespace}:{operator_account}"),
            audiences: vec!["api://AzureADTokenExchange".into()],
        })
    });
    world
        .cluster_pools()
        .patch(
            "identity-own",
            &PatchParams::default(),
            &Patch::Merge(&touch),
        )
        .await
        .unwrap();
    world.pool_reason("identity-own", "Ready").await;
    team.lease_round_trip(world, "identity-own", "identity-own", sample::CAROL.upn)
        .await;
    // A cloud the operator may not issue in (the chart's entra.allowedClouds).
    world
        .cluster_pool(
            "in-china",
            &[sample::CAROL.upn],
            json!({ "clientSecretRef": { "name": "entra-app" }, "cloud": "AzureChina" }),
        )
        .await;
    world.pool_reason("in-china", "CloudNotAllowed").await;
}
