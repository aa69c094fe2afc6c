//! Revocation needs no tenant's consent, and the operator is nobody's deputy. The operator runs as
//! the chart deploys it, serving one namespace (`watchNamespaces`), so its rights there are a
//! Role and RoleBinding the namespace's admin can delete. Each actor acts with their own
//! kubeconfig: a lease user who may only create `entraleases`, and the namespace's admin (the
//! built-in `admin` role). Each phase ends with the password checked in the emulator, and the test
//! with the invariant auditor.

use entra_test_support as support;

use std::path::Path;
use std::time::Duration;

use entra_emulator::{Config, Emulator, sample};
use entra_operator::api::{EntraLease, LeasePhase};
use entra_operator::controller::claim_name;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};
use support::ControlPlane;
use support::admission::until_authorized;
use support::audit::Auditor;
use support::chart::{ChartRelease, client_for, free_port, service_account_kubeconfig};
use support::cluster::{client_secret, install_crds, namespace, poll};
use support::lab::Lab;
use support::lease_env::{APP_ID, CLIENT_SECRET};
use support::tracker::Tracker;

/// How long past a credential's expiry the reaper may take (its bound) plus Graph and requeues.
const ENDED_WITHIN: Duration = Duration::from_secs(30 + 30);

struct World {
    control_plane: &'static ControlPlane,
    admin: kube::Client,
    emulator: Emulator,
    release: ChartRelease,
    tenant: String,
}

impl World {
    async fn eventually<T, F, Fut>(&self, what: &str, timeout: Duration, probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        poll(what, timeout, probe, || self.release.operator.log_tail()).await
    }

    /// A ServiceAccount of the tenant's namespace with `rules` (a Role) or the built-in
    /// ClusterRole `cluster_role`, as a client with its own kubeconfig.
    async fn actor(&self, name: &str, role: Value, dir: &Path) -> kube::Client {
        let tenant = &self.tenant;
        let role_ref = match role.get("clusterRole") {
            Some(cluster_role) => {
                json!({ "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role })
            }
            None => {
                let role = json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": { "name": name, "namespace": tenant },
                    "rules": role["rules"],
                });
                self.apply(&role);
                json!({ "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name })
            }
        };
        self.apply(&json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": { "name": name, "namespace": tenant },
        }));
        self.apply(&json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": { "name": name, "namespace": tenant },
            "roleRef": role_ref,
            "subjects": [{ "kind": "ServiceAccount", "name": name, "namespace": tenant }],
        }));
        let kubeconfig = dir.join(format!("{name}.kubeconfig"));
        service_account_kubeconfig(self.control_plane, tenant, name, &kubeconfig);
        client_for(&kubeconfig).await
    }

    fn apply(&self, object: &Value) {
        let applied = self
            .control_plane
            .kubectl_with_input(&["apply", "-f", "-"], &object.to_string());
        assert!(
            applied.status.success(),
            "{}",
            String::from_utf8_lossy(&applied.stderr)
        );
    }

    async fn phase(&self, name: &str) -> Option<(LeasePhase, String)> {
        let lease = Api::<EntraLease>::namespaced(self.admin.clone(), &self.tenant)
            .get_opt(name)
            .await
            .ok()??;
        let status = lease.status?;
        let reason = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.reason.clone())
            .unwrap_or_default();
        Some((status.phase?, reason))
    }

    /// The username and password in lease `name`'s Secret, and the Secret's type.
    async fn credentials(&self, name: &str) -> (String, String, String) {
        let lease = Api::<EntraLease>::namespaced(self.admin.clone(), &self.tenant)
            .get(name)
            .await
            .unwrap();
        let secret_name = lease.status.unwrap().secret_name.unwrap();
        let secret = Api::<Secret>::namespaced(self.admin.clone(), &self.tenant)
            .get(&secret_name)
            .await
            .unwrap();
        let data = secret.data.unwrap();
        let text = |key: &str| String::from_utf8(data[key].0.clone()).unwrap();
        (text("username"), text("password"), secret.type_.unwrap())
    }
}

fn lease(name: &str, user: &str, extra: Value) -> EntraLease {
    let mut spec = json!({ "dynamicSecretRef": { "name": "contoso" }, "user": user });
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraLease",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .unwrap()
}

#[tokio::test]
async fn tenants_can_neither_keep_a_password_nor_use_the_operators_rights() {
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let admin = control_plane.client().await;
    let tenant = namespace(&admin, "consent-app").await;
    let emulator = Emulator::start(Config::sample())
        .await
        .expect("the emulator starts");
    let values = json!({
        "watchNamespaces": [tenant],
        "entra": { "authorityHost": emulator.base_url(), "graphEndpoint": emulator.base_url() },
        "metrics": { "port": free_port() },
        "logFormat": "text",
    });
    let release = ChartRelease::start(control_plane, "consent-op", &values, "operator").await;
    let world = World {
        control_plane,
        admin: admin.clone(),
        emulator,
        release,
        tenant: tenant.clone(),
    };
    let lab = Lab {
        client: admin.clone(),
        namespace: tenant.clone(),
        claims_namespace: world.release.namespace.clone(),
    };
    let tracker = Tracker::start(&lab).await;
    let dir = tempfile::tempdir().unwrap();

    // The namespace's admin sets up the pool: its app credential and its users.
    let namespace_admin = world
        .actor("ns-admin", json!({ "clusterRole": "admin" }), dir.path())
        .await;
    let secrets = Api::<Secret>::namespaced(namespace_admin.clone(), &tenant);
    let app_secret = client_secret("entra-app", CLIENT_SECRET);
    until_authorized("the admin creates the client secret", || async {
        secrets.create(&PostParams::default(), &app_secret).await
    })
    .await;
    let pool = serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraDynamicSecret",
        "metadata": { "name": "contoso" },
        "spec": {
            "tenantId": "contoso.onmicrosoft.com",
            "applicationId": APP_ID,
            "clientSecretRef": { "name": "entra-app" },
            "users": [sample::ALICE.upn, sample::BOB.upn],
            "defaultTTL": "20s",
            "maxTTL": "1h",
        }
    }))
    .unwrap();
    let pools = Api::<entra_operator::api::EntraDynamicSecret>::namespaced(
        namespace_admin.clone(),
        &tenant,
    );
    until_authorized("the admin creates the pool", || async {
        pools.create(&PostParams::default(), &pool).await
    })
    .await;

    no_deputy(&world, dir.path()).await;
    revocation_without_consent(&world, &namespace_admin).await;

    let mut auditor = Auditor::new(Duration::from_secs(10));
    auditor.final_check(&lab, &tracker, &world.emulator).await;
    assert!(
        auditor.violations.is_empty(),
        "the auditor found: {:#?}",
        auditor.violations
    );
}

/// A lease user who may only create leases gets a Secret of the types the cluster administrator
/// allows (the chart's default: Opaque and kubernetes.io/basic-auth) and of no other.
async fn no_deputy(world: &World, dir: &Path) {
    let rules = json!({ "rules": [{
        "apiGroups": ["kms.hanzo.ai"],
        "resources": ["entraleases"],
        "verbs": ["create", "get", "list", "watch", "delete"],
    }]});
    let lease_user = world.actor("lease-user", rules, dir).await;
    let leases = Api::<EntraLease>::namespaced(lease_user.clone(), &world.tenant);
    let pull_secret = json!({
        "secretName": "registry-pull",
        "template": {
            "type": "kubernetes.io/dockerconfigjson",
            "data": { ".dockerconfigjson": "{\"auths\":{}}" },
        },
    });
    let pull = lease("pull", sample::ALICE.upn, pull_secret);
    until_authorized("the lease user creates a lease", || async {
        leases.create(&PostParams::default(), &pull).await
    })
    .await;
    world
        .eventually(
            "the lease asking for a pull Secret to be refused",
            Duration::from_secs(60),
            || async {
                let (phase, reason) = world.phase("pull").await?;
                (phase == LeasePhase::Failed && reason == "SecretTypeNotAllowed").then_some(())
            },
        )
        .await;
    let secrets = Api::<Secret>::namespaced(world.admin.clone(), &world.tenant);
    assert!(
        secrets.get_opt("registry-pull").await.unwrap().is_none(),
        "no Secret of a type nobody allowed"
    );
    let alice = world.emulator.user(sample::ALICE.upn).unwrap();
    assert_eq!(alice.password_set_count, 0, "nothing was issued");
    assert!(
        world
            .emulator
            .sign_in(sample::ALICE.upn, sample::ALICE_INITIAL_PASSWORD),
        "Alice's password is as it was"
    );
    leases
        .delete("pull", &DeleteParams::default())
        .await
        .unwrap();

    // A type on the list is written as asked.
    let basic_auth = json!({ "template": { "type": "kubernetes.io/basic-auth" } });
    leases
        .create(
            &PostParams::default(),
            &lease("basic", sample::ALICE.upn, basic_auth),
        )
        .await
        .unwrap();
    world
        .eventually(
            "the basic-auth lease to be Active",
            Duration::from_secs(60),
            || async {
                let (phase, _) = world.phase("basic").await?;
                (phase == LeasePhase::Active).then_some(())
            },
        )
        .await;
    let (username, password, kind) = world.credentials("basic").await;
    assert_eq!(kind, "kubernetes.io/basic-auth");
    assert!(world.emulator.sign_in(&username, &password));
    leases
        .delete("basic", &DeleteParams::default())
        .await
        .unwrap();
    world
        .eventually(
            "the basic-auth lease to be gone",
            Duration::from_secs(60),
            || async { world.phase("basic").await.is_none().then_some(()) },
        )
        .await;
    assert!(!world.emulator.sign_in(&username, &password));
}

/// The namespace's admin deletes the operator's RoleBinding in the namespace while a lease is
/// active: the operator can no longer read, delete or write anything there. The credential ends
/// all the same, from the claim in the operator's namespace, within the reaper's bound; the user
/// goes back to the pool, and the Secret the operator could not delete is reported.
async fn revocation_without_consent(world: &World, namespace_admin: &kube::Client) {
    let leases = Api::<EntraLease>::namespaced(namespace_admin.clone(), &world.tenant);
    leases
        .create(
            &PostParams::default(),
            &lease("held", sample::BOB.upn, json!({})),
        )
        .await
        .unwrap();
    world
        .eventually(
            "the lease to be Active",
            Duration::from_secs(60),
            || async {
                let (phase, _) = world.phase("held").await?;
                (phase == LeasePhase::Active).then_some(())
            },
        )
        .await;
    let (username, password, _) = world.credentials("held").await;
    assert!(world.emulator.sign_in(&username, &password));

    let bindings = Api::<RoleBinding>::namespaced(namespace_admin.clone(), &world.tenant);
    let operator_binding = format!("{}-entra-operator", world.release.namespace);
    let kept = Api::<RoleBinding>::namespaced(world.admin.clone(), &world.tenant)
        .get(&operator_binding)
        .await
        .expect("the chart binds the operator's Role in the served namespace");
    bindings
        .delete(&operator_binding, &DeleteParams::default())
        .await
        .expect("a namespace admin may delete RoleBindings in their namespace");

    world
        .eventually(
            "the password to stop working without the operator's rights in the namespace",
            Duration::from_secs(20) + ENDED_WITHIN,
            || async { (!world.emulator.sign_in(&username, &password)).then_some(()) },
        )
        .await;
    let claims = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(
        world.admin.clone(),
        &world.release.namespace,
    );
    let bob = world.emulator.user(sample::BOB.upn).unwrap();
    world
        .eventually(
            "the user to be released",
            Duration::from_secs(30),
            || async {
                claims
                    .get_opt(&claim_name(&bob.id))
                    .await
                    .ok()?
                    .is_none()
                    .then_some(())
            },
        )
        .await;
    let events = Api::<Event>::namespaced(world.admin.clone(), &world.release.namespace)
        .list(&ListParams::default())
        .await
        .unwrap();
    let left_behind = events
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("SecretLeftBehind"))
        .expect("the Secret the operator could not delete is reported in its namespace");
    let note = left_behind.note.clone().unwrap_or_default();
    assert!(note.contains(&world.tenant), "{note}");
    assert!(!note.contains(&password), "no password in events");
    let logs = world.release.operator.logs();
    assert!(
        logs.contains("could not be deleted or emptied") && !logs.contains(&password),
        "the leftover Secret is logged, the password never"
    );

    // The cluster's administrator restores the binding: the expired lease, still shown Active,
    // is deleted rather than issued again, and its leftover Secret goes with it.
    let mut restored = kept;
    restored.metadata.resource_version = None;
    restored.metadata.uid = None;
    restored.metadata.creation_timestamp = None;
    restored.metadata.managed_fields = None;
    Api::<RoleBinding>::namespaced(world.admin.clone(), &world.tenant)
        .create(&PostParams::default(), &restored)
        .await
        .unwrap();
    world
        .eventually(
            "the expired lease to be deleted",
            Duration::from_secs(120),
            || async { world.phase("held").await.is_none().then_some(()) },
        )
        .await;
    let secrets = Api::<Secret>::namespaced(world.admin.clone(), &world.tenant);
    world
        .eventually(
            "the leftover Secret to go with its lease",
            Duration::from_secs(60),
            || async {
                let left = secrets
                    .list_metadata(&ListParams::default().labels("kms.hanzo.ai/lease=held"))
                    .await
                    .ok()?;
                left.items.is_empty().then_some(())
            },
        )
        .await;
    let bob = world.emulator.user(sample::BOB.upn).unwrap();
    assert_eq!(
        bob.password_set_count, 2,
        "one issue and one scramble: the expired lease was not issued again"
    );
    assert!(!world.emulator.sign_in(&username, &password));
}
