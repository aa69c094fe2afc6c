//! Several namespaces' actors on one operator, each with its own kubeconfig: a pool editor and a
//! lease user per namespace (ServiceAccounts with the rights those roles really have), the
//! emulator, and an operator process serving just the test's namespaces.

use std::future::Future;
use std::time::Duration;

use entra_emulator::{Config, Emulator, sample};
use entra_operator::api::{EntraDynamicSecret, EntraLease, LeasePhase};
use entra_operator::controller::claim_record::{ClaimRecord, RECORD_ANNOTATION};
use k8s_openapi::api::coordination::v1::Lease as Claim;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

use crate::audit::Auditor;
use crate::chart::{client_for, service_account_kubeconfig};
use crate::cluster::{client_secret, poll};
use crate::lab::Lab;
use crate::tracker::Tracker;
use crate::{ControlPlane, Operator};

/// Far from every time of the mechanisms (a reconcile backoff, the 60 s look-again).
pub const SOON: Duration = Duration::from_secs(90);
/// How long past its deadline a credential may still work (Graph, requeues, a busy machine).
pub const LAG_BOUND: Duration = Duration::from_secs(10);

/// The rights of a pool editor: the built-in `edit` of its namespace (its Secrets) and its
/// dynamic secrets.
pub const POOL_EDITOR_RULES: &str = r#"
- apiGroups: ["kms.hanzo.ai"]
  resources: ["entradynamicsecrets"]
  verbs: ["create", "get", "list", "watch", "patch", "update", "delete"]"#;
/// The rights of a lease user: its leases, and reading the Secrets they create.
pub const LEASE_USER_RULES: &str = r#"
- apiGroups: ["kms.hanzo.ai"]
  resources: ["entraleases"]
  verbs: ["create", "get", "list", "watch", "patch", "delete"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]"#;

pub struct World {
    pub control_plane: &'static ControlPlane,
    pub admin: kube::Client,
    pub emulator: Emulator,
    pub operator: Operator,
    pub operator_namespace: String,
    pub dir: tempfile::TempDir,
}

impl World {
    /// The emulator with `config`, and an operator serving `namespaces` with `flags`.
    pub async fn start(config: Config, namespaces: &[&str], operator_namespace: String) -> World {
        Self::start_with(config, namespaces, operator_namespace, Vec::new()).await
    }

    pub async fn start_with(
        config: Config,
        namespaces: &[&str],
        operator_namespace: String,
        flags: Vec<String>,
    ) -> World {
        let control_plane = ControlPlane::shared();
        let admin = control_plane.client().await;
        let emulator = Emulator::start(config).await.expect("the emulator starts");
        let operator = Operator::start_with(
            control_plane,
            &emulator.base_url(),
            &namespaces.join(","),
            &operator_namespace,
            &format!("team-{operator_namespace}"),
            flags,
        );
        World {
            control_plane,
            admin,
            emulator,
            operator,
            operator_namespace,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub async fn eventually<T, F, Fut>(&self, what: &str, timeout: Duration, probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        poll(what, timeout, probe, || tail(&self.operator.logs())).await
    }

    pub fn apply(&self, yaml: &str) {
        let applied = self
            .control_plane
            .kubectl_with_input(&["apply", "-f", "-"], yaml);
        assert!(
            applied.status.success(),
            "{}",
            String::from_utf8_lossy(&applied.stderr)
        );
    }

    /// ServiceAccount `name` of `namespace` with a Role of `rules` there (and the built-in
    /// ClusterRole `cluster_role`, if any), as a client with its own kubeconfig.
    pub async fn actor(
        &self,
        namespace: &str,
        name: &str,
        rules: &str,
        cluster_role: Option<&str>,
    ) -> kube::Client {
        let mut yaml = format!(
            r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{ name: {name}, namespace: {namespace} }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{ name: {name}, namespace: {namespace} }}
rules:{rules}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: {name}, namespace: {namespace} }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: Role, name: {name} }}
subjects: [{{ kind: ServiceAccount, name: {name}, namespace: {namespace} }}]
"#
        );
        if let Some(role) = cluster_role {
            yaml.push_str(&format!(
                r#"---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: {name}-{role}, namespace: {namespace} }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role} }}
subjects: [{{ kind: ServiceAccount, name: {name}, namespace: {namespace} }}]
"#
            ));
        }
        self.apply(&yaml);
        let kubeconfig = self
            .dir
            .path()
            .join(format!("{namespace}-{name}.kubeconfig"));
        service_account_kubeconfig(self.control_plane, namespace, name, &kubeconfig);
        client_for(&kubeconfig).await
    }

    pub fn lab(&self, namespace: &str) -> Lab {
        Lab {
            client: self.admin.clone(),
            namespace: namespace.to_owned(),
            claims_namespace: self.operator_namespace.clone(),
        }
    }

    pub fn claims(&self) -> Api<Claim> {
        Api::namespaced(self.admin.clone(), &self.operator_namespace)
    }

    /// The records of the claims held by leases of `namespace`.
    pub async fn records_of(&self, namespace: &str) -> Vec<ClaimRecord> {
        let claims = self.claims().list(&ListParams::default()).await.unwrap();
        claims
            .items
            .iter()
            .filter_map(|claim| claim.metadata.annotations.as_ref()?.get(RECORD_ANNOTATION))
            .filter_map(|value| ClaimRecord::from_annotation(value))
            .filter(|record| record.lease.namespace == namespace)
            .collect()
    }

    /// Waits until the namespaced pool `name` of `namespace` is Ready.
    pub async fn pool_ready(&self, namespace: &str, name: &str) -> EntraDynamicSecret {
        let pools = Api::<EntraDynamicSecret>::namespaced(self.admin.clone(), namespace);
        self.eventually(&format!("pool {namespace}/{name} Ready"), SOON, || async {
            let pool = pools.get(name).await.ok()?;
            is_ready(pool.status.as_ref()?.conditions.as_slice()).then_some(pool)
        })
        .await
    }

    pub async fn audit(&self, labs: &[(&Lab, &Tracker)]) {
        for (lab, tracker) in labs {
            let mut auditor = Auditor::new(LAG_BOUND);
            auditor.settled_check(lab, tracker, &self.emulator).await;
            assert!(
                auditor.violations.is_empty(),
                "the auditor found in {}: {:#?}",
                lab.namespace,
                auditor.violations
            );
        }
    }
}

pub fn tail(logs: &str) -> String {
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

pub fn is_ready(conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// A namespace's actors: what a pool editor and a lease user of it do.
pub struct Team {
    pub namespace: String,
    pub pool_editor: kube::Client,
    pub lease_user: kube::Client,
}

impl Team {
    pub async fn new(world: &World, namespace: String) -> Team {
        let pool_editor = world
            .actor(&namespace, "pool-editor", POOL_EDITOR_RULES, Some("edit"))
            .await;
        let lease_user = world
            .actor(&namespace, "lease-user", LEASE_USER_RULES, None)
            .await;
        Team {
            namespace,
            pool_editor,
            lease_user,
        }
    }

    pub fn leases(&self) -> Api<EntraLease> {
        Api::namespaced(self.lease_user.clone(), &self.namespace)
    }

    /// The pool editor creates the app's client secret and a pool over `users` with that app.
    pub async fn create_pool(&self, name: &str, app_id: &str, app_secret: &str, users: &[&str]) {
        self.create_pool_with(name, app_id, app_secret, users, json!({}))
            .await;
    }

    /// [`Team::create_pool`] with `more` merged into the spec (TTLs, options).
    pub async fn create_pool_with(
        &self,
        name: &str,
        app_id: &str,
        app_secret: &str,
        users: &[&str],
        more: Value,
    ) {
        let secret_name = format!("{name}-app");
        Api::<Secret>::namespaced(self.pool_editor.clone(), &self.namespace)
            .create(
                &PostParams::default(),
                &client_secret(&secret_name, app_secret),
            )
            .await
            .expect("edit may create Secrets");
        let mut spec = json!({
            "tenantId": sample::TENANT_DOMAIN,
            "applicationId": app_id,
            "clientSecretRef": { "name": secret_name },
            "users": users,
            "defaultTTL": "10m",
            "maxTTL": "1h",
        });
        if let (Some(spec), Value::Object(more)) = (spec.as_object_mut(), more) {
            spec.extend(more);
        }
        let pool = serde_json::from_value(json!({
            "apiVersion": "kms.hanzo.ai/v1alpha1",
            "kind": "EntraDynamicSecret",
            "metadata": { "name": name },
            "spec": spec,
        }))
        .unwrap();
        Api::<EntraDynamicSecret>::namespaced(self.pool_editor.clone(), &self.namespace)
            .create(&PostParams::default(), &pool)
            .await
            .expect("a pool editor may create pools");
    }

    /// The lease user leases the first free user of `pool` (of `kind`) for ten minutes.
    pub async fn lease(&self, name: &str, kind: &str, pool: &str) -> EntraLease {
        self.lease_with(
            name,
            json!({ "dynamicSecretRef": { "kind": kind, "name": pool }, "ttl": "10m" }),
        )
        .await
    }

    /// The lease user creates lease `name` with `spec`.
    pub async fn lease_with(&self, name: &str, spec: Value) -> EntraLease {
        let lease = serde_json::from_value(json!({
            "apiVersion": "kms.hanzo.ai/v1alpha1",
            "kind": "EntraLease",
            "metadata": { "name": name },
            "spec": spec,
        }))
        .unwrap();
        self.leases()
            .create(&PostParams::default(), &lease)
            .await
            .expect("a lease user may create leases")
    }

    /// Each lease's phase and Ready reason, by name.
    pub async fn phases(&self) -> Vec<(String, LeasePhase, String, String)> {
        let Ok(leases) = self.leases().list(&ListParams::default()).await else {
            return Vec::new();
        };
        leases
            .items
            .into_iter()
            .filter_map(|lease| {
                let name = lease.metadata.name.clone()?;
                let status = lease.status?;
                let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
                let reason = ready.map(|c| c.reason.clone()).unwrap_or_default();
                let message = ready.map(|c| c.message.clone()).unwrap_or_default();
                Some((name, status.phase?, reason, message))
            })
            .collect()
    }

    /// The username and password in lease `name`'s Secret, read as the lease user.
    pub async fn credentials(&self, name: &str) -> (String, String) {
        let lease = self.leases().get(name).await.unwrap();
        let secret_name = lease.status.unwrap().secret_name.unwrap();
        let data = Api::<Secret>::namespaced(self.lease_user.clone(), &self.namespace)
            .get(&secret_name)
            .await
            .unwrap()
            .data
            .unwrap();
        let text = |key: &str| String::from_utf8(data[key].0.clone()).unwrap();
        (text("username"), text("password"))
    }
}
