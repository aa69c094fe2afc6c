//! A test's own world: a namespace on the shared control plane, an Entra emulator with the sample
//! tenant, and an operator process watching only that namespace.

use std::future::Future;
use std::time::Duration;

use entra_emulator::{Config, Emulator};
use entra_operator::api::{EntraDynamicSecret, EntraLease, LeasePhase};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use super::audit::Auditor;
use super::cluster::{client_secret, install_crds, namespace, poll};
use super::lab::Lab;
use super::tracker::{Tracked, Tracker};
use super::{ControlPlane, Operator};

pub const APP_ID: &str = "3c9d2b1a-7e6f-4a5b-8c9d-0e1f2a3b4c5d";
pub const CLIENT_SECRET: &str = "demo-client-secret-value~0123456789";
/// How long past its deadline a credential may still work in a test (a requeue, a slow Graph).
const LAG_BOUND: Duration = Duration::from_secs(10);

/// Derefs to its [`Lab`]: the client, the namespace (where the test's operator keeps its claims
/// too) and the APIs of leases, dynamic secrets and Secrets there.
pub struct LeaseEnv {
    pub control_plane: &'static ControlPlane,
    lab: Lab,
    pub emulator: Emulator,
    pub operator: Operator,
    /// Watches the namespace from the start, so the auditor knows every password ever handed out.
    tracker: Tracker,
}

impl LeaseEnv {
    pub async fn start(prefix: &str) -> LeaseEnv {
        Self::start_with(prefix, Config::sample()).await
    }

    pub async fn start_with(prefix: &str, config: Config) -> LeaseEnv {
        Self::start_on(ControlPlane::shared(), prefix, config).await
    }

    /// A world on `control_plane` (the one with fake nodes, for tests whose workloads roll).
    pub async fn start_on(
        control_plane: &'static ControlPlane,
        prefix: &str,
        config: Config,
    ) -> LeaseEnv {
        Self::start_with_flags(control_plane, prefix, config, Vec::new()).await
    }

    /// [`LeaseEnv::start_on`] with extra operator flags (`--flag=value`, replacing a default).
    pub async fn start_with_flags(
        control_plane: &'static ControlPlane,
        prefix: &str,
        config: Config,
        flags: Vec<String>,
    ) -> LeaseEnv {
        install_crds(control_plane);
        let client = control_plane.client().await;
        let namespace = namespace(&client, prefix).await;
        let emulator = Emulator::start(config).await.expect("the emulator starts");
        let operator = Operator::start_with(
            control_plane,
            &emulator.base_url(),
            &namespace,
            &namespace,
            "operator",
            flags,
        );
        let lab = Lab {
            client,
            claims_namespace: namespace.clone(),
            namespace,
        };
        let tracker = Tracker::start(&lab).await;
        let env = LeaseEnv {
            control_plane,
            lab,
            emulator,
            operator,
            tracker,
        };
        env.create_client_secret(CLIENT_SECRET).await;
        env
    }

    /// The invariants (I1 to I5, I7) the auditor finds broken in the converged namespace,
    /// judging every password the namespace's lease Secrets ever held since the test began.
    pub async fn violations(&self) -> Vec<String> {
        let mut auditor = Auditor::new(LAG_BOUND);
        auditor
            .settled_check(&self.lab, &self.tracker, &self.emulator)
            .await;
        auditor.violations.into_iter().collect()
    }

    /// What the tracker has seen since the test began.
    pub fn tracked(&self) -> Tracked {
        self.tracker.snapshot()
    }

    /// Every password the namespace's lease Secrets have held since the test began.
    pub fn passwords_seen(&self) -> Vec<String> {
        let tracked = self.tracker.state();
        tracked.passwords.keys().map(|(_, p)| p.clone()).collect()
    }

    pub async fn create_client_secret(&self, value: &str) {
        let secret = client_secret("entra-app", value);
        let _ = self
            .secrets()
            .delete("entra-app", &DeleteParams::default())
            .await;
        self.secrets()
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }

    /// Creates a dynamic secret over `users` of the sample tenant.
    pub async fn create_pool(&self, name: &str, users: &[&str], default_ttl: &str, max_ttl: &str) {
        let ttls = json!({ "defaultTTL": default_ttl, "maxTTL": max_ttl });
        self.create_pool_with(name, users, ttls).await;
    }

    /// Creates a dynamic secret over `users` of the sample tenant (TTLs 1h and 2h), with
    /// `extra` merged into its spec.
    pub async fn create_pool_with(&self, name: &str, users: &[&str], extra: Value) {
        let mut spec = json!({
            "tenantId": "contoso.onmicrosoft.com",
            "applicationId": APP_ID,
            "clientSecretRef": { "name": "entra-app" },
            "users": users,
            "defaultTTL": "1h",
            "maxTTL": "2h",
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        let pool: EntraDynamicSecret = serde_json::from_value(json!({
            "apiVersion": "kms.hanzo.ai/v1alpha1",
            "kind": "EntraDynamicSecret",
            "metadata": { "name": name },
            "spec": spec,
        }))
        .unwrap();
        self.pools()
            .create(&PostParams::default(), &pool)
            .await
            .unwrap();
    }

    pub async fn create_lease(&self, name: &str, spec: Value) -> EntraLease {
        let lease: EntraLease = serde_json::from_value(json!({
            "apiVersion": "kms.hanzo.ai/v1alpha1",
            "kind": "EntraLease",
            "metadata": { "name": name },
            "spec": spec,
        }))
        .unwrap();
        self.leases()
            .create(&PostParams::default(), &lease)
            .await
            .unwrap()
    }

    pub async fn lease(&self, name: &str) -> Option<EntraLease> {
        self.leases().get_opt(name).await.unwrap()
    }

    pub async fn wait_for_phase(&self, name: &str, phase: LeasePhase) -> EntraLease {
        self.wait_for(&format!("lease {name} to be {phase:?}"), || async {
            self.lease(name)
                .await
                .filter(|l| l.status.as_ref().and_then(|s| s.phase) == Some(phase))
        })
        .await
    }

    pub async fn wait_for_ready_pool(&self, name: &str) -> EntraDynamicSecret {
        self.wait_for(&format!("dynamic secret {name} to be Ready"), || async {
            self.pools().get_opt(name).await.unwrap().filter(|p| {
                p.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            })
        })
        .await
    }

    /// Waits until dynamic secret `pool` shows `problem` for its user configured as `user...`.
    pub async fn wait_for_user_problem(&self, pool: &str, user: &str, problem: &str) {
        let what = format!("{user} to be marked {problem} in dynamic secret {pool}");
        self.wait_for(&what, || async {
            let status = self.pools().get(pool).await.unwrap().status?;
            let listed = status
                .users
                .iter()
                .find(|u| u.configured.starts_with(user))?;
            (listed.problem.as_deref() == Some(problem)).then_some(())
        })
        .await
    }

    /// Deletes lease `name` (its revocation runs as its finalizer) and waits until it is gone.
    pub async fn end_lease(&self, name: &str) {
        self.leases()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
        self.wait_until_gone(name).await;
    }

    pub async fn wait_until_gone(&self, name: &str) {
        self.wait_for(&format!("lease {name} to be gone"), || async {
            self.lease(name).await.is_none().then_some(())
        })
        .await
    }

    /// The username and password in a lease's Secret.
    pub async fn credentials(&self, secret: &str) -> (String, String) {
        let secret = self.secrets().get(secret).await.unwrap();
        let data = secret.data.unwrap();
        let text = |key: &str| String::from_utf8(data[key].0.clone()).unwrap();
        (text("username"), text("password"))
    }

    /// The notes of the namespace's events with `reason`, once there is one.
    pub async fn events(&self, reason: &str) -> Vec<String> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.namespace);
        self.wait_for(&format!("an event {reason}"), || async {
            let notes: Vec<String> = events
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some(reason))
                .filter_map(|e| e.note)
                .collect();
            (!notes.is_empty()).then_some(notes)
        })
        .await
    }

    pub async fn annotate(&self, lease: &str, key: &str, value: &str) {
        let patch = json!({ "metadata": { "annotations": { key: value } } });
        self.leases()
            .patch(lease, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    /// Polls `probe` until it yields a value; fails with `what` and the operator's log after 60 s.
    pub async fn wait_for<T, F, Fut>(&self, what: &str, probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        poll(what, Duration::from_secs(60), probe, || {
            let logs = self.operator.logs();
            let tail: Vec<&str> = logs.lines().rev().take(40).collect();
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        })
        .await
    }
}

impl std::ops::Deref for LeaseEnv {
    type Target = Lab;

    fn deref(&self) -> &Lab {
        &self.lab
    }
}
