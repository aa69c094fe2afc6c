//! Hostile tenants (invariant I7). Each attack is made by a tenant identity with what a lease user
//! really has: the built-in `edit` role in its namespace plus every right on `entraleases` and
//! `entradynamicsecrets`, their status included (wildcard roles grant that). The operator runs as
//! the chart deploys it, on its own ServiceAccount, watching every namespace. Every attack ends
//! with the leased password checked in the emulator, not only with the objects.
//!
//! One test, so that one operator watches every namespace of this binary's control plane; the
//! attacks run side by side, each in a namespace of its own, and a bystander namespace is served
//! at the end.

use entra_test_support as support;

use std::future::Future;
use std::time::{Duration, Instant};

use entra_emulator::{Config, Emulator};
use entra_operator::api::{EntraLease, LeasePhase};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::ControlPlane;
use support::chart::{CHART_DIR, ChartRelease, edit_user, free_port, helm_ok};
use support::cluster::{client_secret, install_crds, namespace, poll};

const APP_ID: &str = "3c9d2b1a-7e6f-4a5b-8c9d-0e1f2a3b4c5d";
const CLIENT_SECRET: &str = "demo-client-secret-value~0123456789";
/// How long after its lease is gone (or its expiry passed) a password may still work: the
/// reaper's 30 s, plus a Graph call and the watch delays of a loaded 2-core machine.
const DEATH_BOUND: Duration = Duration::from_secs(45);

/// Contoso with ten leasable users, and Fabrikam, which has the same app (id and secret) but none
/// of Contoso's users: a pool re-pointed there would answer "user not found" to a revocation.
fn tenants() -> Config {
    let users: String = (1..=10)
        .map(|n| {
            format!(
                "      - id: 0000{n:04}-0000-4000-8000-000000000000\n        \
                 userPrincipalName: user{n:02}@contoso.onmicrosoft.com\n"
            )
        })
        .collect();
    let app = format!(
        "      - clientId: {APP_ID}\n        secrets: [\"{CLIENT_SECRET}\"]\n        \
         permissions: [User-PasswordProfile.ReadWrite.All, User.ReadWrite.All]\n        \
         directoryRoles: [User Administrator]\n"
    );
    Config::from_yaml_str(&format!(
        "tenants:\n  - id: 8f5e0a4c-3b1d-4c2e-9a7f-1d2e3f4a5b6c\n    \
         domains: [contoso.onmicrosoft.com]\n    apps:\n{app}    users:\n{users}  \
         - id: 1b2c3d4e-0000-4000-8000-0000000000fa\n    domains: [fabrikam.onmicrosoft.com]\n    \
         apps:\n{app}"
    ))
    .expect("the test tenants parse")
}

fn upn(n: u32) -> String {
    format!("user{n:02}@contoso.onmicrosoft.com")
}

/// The operator as the chart installs it, and the emulator it talks to.
struct World {
    control_plane: &'static ControlPlane,
    admin: kube::Client,
    emulator: Emulator,
    release: ChartRelease,
}

impl World {
    async fn start() -> World {
        let control_plane = ControlPlane::shared();
        install_crds(control_plane);
        let admin = control_plane.client().await;
        let emulator = Emulator::start(tenants())
            .await
            .expect("the emulator starts");
        // The admission policies stay off until the end: what holds must hold without them.
        let values = json!({
            "entra": { "authorityHost": emulator.base_url(), "graphEndpoint": emulator.base_url() },
            "metrics": { "port": free_port() },
            "admissionPolicies": { "enabled": false },
            "logFormat": "text",
            "logLevel": "entra_operator=debug,info",
        });
        let release = ChartRelease::start(control_plane, "hostile-op", &values, "operator-a").await;
        World {
            control_plane,
            admin,
            emulator,
            release,
        }
    }

    /// Turns the chart's admission policies on (the release's default).
    fn enable_admission_policies(&self) {
        helm_ok(&[
            "upgrade",
            &self.release.namespace,
            CHART_DIR,
            "--kubeconfig",
            self.control_plane.kubeconfig.to_str().unwrap(),
            "--namespace",
            &self.release.namespace,
            "--reuse-values",
            "--set",
            "admissionPolicies.enabled=true",
        ]);
    }

    /// Stops the operator (as a crash would), and later starts it again.
    fn stop_operator(&mut self) {
        self.release.stop_operator();
    }

    fn start_operator(&mut self) {
        self.release.start_operator("operator-b");
    }

    /// Polls `probe` until it yields a value; fails with `what` and the operator's log tail.
    async fn eventually<T, F, Fut>(&self, what: &str, timeout: Duration, probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        poll(what, timeout, probe, || self.release.operator.log_tail()).await
    }

    /// Waits until the password no longer signs in; returns how long that took.
    async fn password_dies(&self, what: &str, user: &str, password: &str) -> Duration {
        let started = Instant::now();
        self.eventually(what, DEATH_BOUND, || async {
            (!self.emulator.sign_in(user, password)).then_some(())
        })
        .await;
        let took = started.elapsed();
        println!("{what}: the password stopped working after {took:.1?}");
        took
    }
}

/// A namespace whose tenant identity (`mallory`) has `edit` plus every right on the operator's
/// resources, with a pool of one user and an active lease on it.
struct Tenant {
    namespace: String,
    mallory: kube::Client,
    user: String,
    password: String,
    secret_name: String,
}

impl Tenant {
    async fn start(world: &World, prefix: &str, user: u32, ttl: &str) -> Tenant {
        let namespace = namespace(&world.admin, prefix).await;
        // Every right on kms.hanzo.ai, status included, as wildcard roles grant.
        let everything = format!(
            r#"---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{ name: entra-everything, namespace: {namespace} }}
rules:
  - apiGroups: ["kms.hanzo.ai"]
    resources: ["*"]
    verbs: ["*"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{ name: mallory-entra, namespace: {namespace} }}
roleRef: {{ apiGroup: rbac.authorization.k8s.io, kind: Role, name: entra-everything }}
subjects: [{{ kind: ServiceAccount, name: mallory, namespace: {namespace} }}]
"#
        );
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("mallory.kubeconfig");
        let mallory = edit_user(
            world.control_plane,
            &namespace,
            "mallory",
            &everything,
            &kubeconfig,
        )
        .await;

        // Everything below is done by the tenant identity itself.
        let secrets: Api<Secret> = Api::namespaced(mallory.clone(), &namespace);
        secrets
            .create(
                &PostParams::default(),
                &client_secret("entra-app", CLIENT_SECRET),
            )
            .await
            .expect("edit may create Secrets");
        let pools =
            Api::<entra_operator::api::EntraDynamicSecret>::namespaced(mallory.clone(), &namespace);
        let pool = serde_json::from_value(json!({
            "apiVersion": "kms.hanzo.ai/v1alpha1",
            "kind": "EntraDynamicSecret",
            "metadata": { "name": "pool" },
            "spec": {
                "tenantId": "contoso.onmicrosoft.com",
                "applicationId": APP_ID,
                "clientSecretRef": { "name": "entra-app" },
                "users": [upn(user)],
                "defaultTTL": "10m",
                "maxTTL": "1h",
            }
        }))
        .unwrap();
        pools.create(&PostParams::default(), &pool).await.unwrap();
        let lease = serde_json::from_value(json!({
            "apiVersion": "kms.hanzo.ai/v1alpha1",
            "kind": "EntraLease",
            "metadata": { "name": "svc" },
            "spec": { "dynamicSecretRef": { "name": "pool" }, "ttl": ttl }
        }))
        .unwrap();
        let leases: Api<EntraLease> = Api::namespaced(mallory.clone(), &namespace);
        leases.create(&PostParams::default(), &lease).await.unwrap();
        let active = world
            .eventually(
                &format!("the lease in {namespace} to be Active"),
                Duration::from_secs(60),
                || async {
                    leases.get_opt("svc").await.unwrap().filter(|lease| {
                        lease.status.as_ref().and_then(|s| s.phase) == Some(LeasePhase::Active)
                    })
                },
            )
            .await;
        let secret_name = active.status.unwrap().secret_name.unwrap();
        let data = secrets.get(&secret_name).await.unwrap().data.unwrap();
        let password = String::from_utf8(data["password"].0.clone()).unwrap();
        assert!(
            world.emulator.sign_in(&upn(user), &password),
            "the issued password works"
        );
        Tenant {
            namespace,
            mallory,
            user: upn(user),
            password,
            secret_name,
        }
    }

    fn leases(&self) -> Api<EntraLease> {
        Api::namespaced(self.mallory.clone(), &self.namespace)
    }

    /// Deletes the lease as its user would, then waits until its password is dead and it is gone.
    async fn delete_lease(&self, world: &World, what: &str) {
        self.leases()
            .delete("svc", &DeleteParams::default())
            .await
            .unwrap();
        world.password_dies(what, &self.user, &self.password).await;
        world
            .eventually("the lease to be gone", DEATH_BOUND, || self.lease_is_gone())
            .await;
    }

    /// Deletes the lease without waiting, then strips its finalizers: the lease is gone at once.
    async fn delete_and_strip_finalizers(&self) {
        self.leases()
            .delete("svc", &DeleteParams::default())
            .await
            .unwrap();
        self.strip_finalizers().await;
    }

    async fn strip_finalizers(&self) {
        strip_finalizers(&self.leases())
            .await
            .expect("stripping the finalizers");
    }

    async fn forge_status(&self, status: serde_json::Value) {
        forge_status(&self.leases(), status)
            .await
            .expect("the tenant may write the lease's status (RBAC grants it)");
    }

    async fn lease_is_gone(&self) -> Option<()> {
        self.leases()
            .get_opt("svc")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    }
}

async fn strip_finalizers(leases: &Api<EntraLease>) -> kube::Result<()> {
    let patch = json!({ "metadata": { "finalizers": null } });
    match leases
        .patch("svc", &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}

async fn forge_status(leases: &Api<EntraLease>, status: serde_json::Value) -> kube::Result<()> {
    let patch = Patch::Merge(json!({ "status": status }));
    leases
        .patch_status("svc", &PatchParams::default(), &patch)
        .await
        .map(|_| ())
}

/// True when `result` is a refusal by one of the chart's admission policies (not by RBAC).
fn refused_by_policy(result: &kube::Result<()>) -> bool {
    matches!(result, Err(kube::Error::Api(status))
        if status.code == 403 && status.message.contains("entra-operator") && status.message.contains("may not"))
}

#[tokio::test]
async fn a_tenant_with_namespace_rights_cannot_keep_a_leased_password_alive() {
    let mut world = World::start().await;
    let (stripped_while_down, forged, repointed, secret_deleted, namespace_deleted) = tokio::join!(
        Tenant::start(&world, "strip-down", 1, "10m"),
        Tenant::start(&world, "forge", 2, "50s"),
        Tenant::start(&world, "repoint", 3, "10m"),
        Tenant::start(&world, "no-secret", 4, "10m"),
        Tenant::start(&world, "ns-delete", 5, "10m"),
    );
    let (stripped_while_up, crash_attempt) = tokio::join!(
        Tenant::start(&world, "strip-up", 6, "10m"),
        Tenant::start(&world, "crash", 7, "10m"),
    );

    // While the operator is down: the lease deleted and its finalizer stripped (gone before any
    // revocation), and the status forged (deadlines moved out, another user, another phase).
    world.stop_operator();
    stripped_while_down.delete_and_strip_finalizers().await;
    assert!(stripped_while_down.lease_is_gone().await.is_some());
    forged
        .forge_status(json!({
            "phase": "Failed",
            "user": { "userPrincipalName": upn(9), "id": "00000009-0000-4000-8000-000000000000" },
            "expiresAt": "2099-01-01T00:00:00Z",
            "maxExpiresAt": "2099-01-01T00:00:00Z",
            "lastRenewRequest": "forged",
        }))
        .await;
    world.start_operator();

    let reaped_on_start = async {
        world
            .password_dies(
                "finalizer stripped while the operator was down (reaped on start)",
                &stripped_while_down.user,
                &stripped_while_down.password,
            )
            .await;
    };

    let status_forged = async {
        let leases = forged.leases();
        let rewritten = world
            .eventually(
                "the forged status to be rewritten from the claim",
                Duration::from_secs(30),
                || async {
                    leases.get_opt("svc").await.unwrap().filter(|lease| {
                        let status = lease.status.as_ref();
                        status
                            .and_then(|s| s.user.as_ref())
                            .map(|u| &u.user_principal_name)
                            == Some(&forged.user)
                            && status.and_then(|s| s.phase) == Some(LeasePhase::Active)
                    })
                },
            )
            .await;
        let expires_at = rewritten.status.unwrap().expires_at.unwrap().0;
        assert!(
            expires_at.as_second() < 4_000_000_000,
            "the recorded expiry came back, not the forged one: {expires_at}"
        );
        // The credential ends at its recorded expiry, not at the forged one.
        let wait = expires_at.duration_since(k8s_openapi::jiff::Timestamp::now());
        tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;
        world
            .password_dies(
                "status forged (ends at the recorded expiry)",
                &forged.user,
                &forged.password,
            )
            .await;
        world
            .eventually("the expired lease to be deleted", DEATH_BOUND, || {
                forged.lease_is_gone()
            })
            .await;
    };

    let pool_repointed = async {
        let pools = Api::<entra_operator::api::EntraDynamicSecret>::namespaced(
            repointed.mallory.clone(),
            &repointed.namespace,
        );
        let patch = json!({ "spec": { "tenantId": "fabrikam.onmicrosoft.com" } });
        pools
            .patch("pool", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        repointed
            .delete_lease(
                &world,
                "pool re-pointed to another tenant, then the lease deleted",
            )
            .await;
    };

    let client_secret_deleted = async {
        let secrets: Api<Secret> =
            Api::namespaced(secret_deleted.mallory.clone(), &secret_deleted.namespace);
        secrets
            .delete("entra-app", &DeleteParams::default())
            .await
            .unwrap();
        secret_deleted
            .delete_lease(
                &world,
                "client-secret Secret deleted, then the lease deleted",
            )
            .await;
    };

    let namespace_gone = async {
        // Deleting a namespace takes a namespace admin (edit cannot): the admin client does it.
        Api::<Namespace>::all(world.admin.clone())
            .delete(&namespace_deleted.namespace, &DeleteParams::default())
            .await
            .unwrap();
        world
            .password_dies(
                "namespace deleted with an active lease",
                &namespace_deleted.user,
                &namespace_deleted.password,
            )
            .await;
        world
            .eventually(
                "the namespace to be gone",
                Duration::from_secs(90),
                || async {
                    Api::<Namespace>::all(world.admin.clone())
                        .get_opt(&namespace_deleted.namespace)
                        .await
                        .unwrap()
                        .is_none()
                        .then_some(())
                },
            )
            .await;
    };

    let stripped_while_running = async {
        // The finalizer goes first and the delete right after, before the operator can add it
        // back: the lease is gone at once, and only its claim is left.
        stripped_while_up.strip_finalizers().await;
        stripped_while_up
            .leases()
            .delete("svc", &DeleteParams::default())
            .await
            .unwrap();
        stripped_while_up.strip_finalizers().await;
        world
            .eventually("the lease to be gone", Duration::from_secs(10), || {
                stripped_while_up.lease_is_gone()
            })
            .await;
        world
            .password_dies(
                "finalizer stripped while the operator runs",
                &stripped_while_up.user,
                &stripped_while_up.password,
            )
            .await;
    };

    let malformed_status = async {
        // What once hit an `expect`: Active without a user or deadlines, and the Secret gone.
        crash_attempt
            .forge_status(json!({
                "phase": "Active", "user": null, "expiresAt": null, "maxExpiresAt": null
            }))
            .await;
        Api::<Secret>::namespaced(crash_attempt.mallory.clone(), &crash_attempt.namespace)
            .delete(&crash_attempt.secret_name, &DeleteParams::default())
            .await
            .unwrap();
        let secrets: Api<Secret> =
            Api::namespaced(crash_attempt.mallory.clone(), &crash_attempt.namespace);
        let restored = world
            .eventually(
                "the deleted Secret to be restored with a fresh password",
                Duration::from_secs(60),
                || async {
                    let secret = secrets.get_opt(&crash_attempt.secret_name).await.unwrap()?;
                    let password = String::from_utf8(secret.data?["password"].0.clone()).ok()?;
                    // The Secret is written before Entra takes the password: wait for both.
                    let works = world.emulator.sign_in(&crash_attempt.user, &password);
                    (password != crash_attempt.password && works).then_some(password)
                },
            )
            .await;
        assert!(world.emulator.sign_in(&crash_attempt.user, &restored));
        assert!(
            !world
                .emulator
                .sign_in(&crash_attempt.user, &crash_attempt.password)
        );
    };

    tokio::join!(
        reaped_on_start,
        status_forged,
        pool_repointed,
        client_secret_deleted,
        namespace_gone,
        stripped_while_running,
        malformed_status,
    );

    assert!(
        world.release.operator.is_running(),
        "the operator survived every attack:\n{}",
        world.release.operator.log_tail()
    );
    // Other namespaces are still served.
    let bystander = Tenant::start(&world, "bystander", 10, "10m").await;
    assert!(world.emulator.sign_in(&bystander.user, &bystander.password));

    // The second wall: with the chart's admission policies on, the same tenant is refused the
    // status write and the finalizer removal, while the operator and break-glass are not.
    world.enable_admission_policies();
    let guarded = Tenant::start(&world, "guarded", 8, "10m").await;
    let leases = guarded.leases();
    world
        .eventually(
            "the status policy to refuse the tenant",
            Duration::from_secs(30),
            || async {
                let result = forge_status(&leases, json!({ "phase": "Failed" })).await;
                refused_by_policy(&result).then_some(())
            },
        )
        .await;
    world
        .eventually(
            "the finalizer policy to refuse the tenant",
            Duration::from_secs(30),
            || async { refused_by_policy(&strip_finalizers(&leases).await).then_some(()) },
        )
        .await;
    let lease = leases.get("svc").await.unwrap();
    assert_eq!(
        lease.status.and_then(|s| s.phase),
        Some(LeasePhase::Active),
        "nothing the tenant tried took effect"
    );
    // Break-glass: a cluster admin may still strip the finalizer (the README's last resort);
    // the reaper then ends the credential from the claim.
    let as_admin: Api<EntraLease> = Api::namespaced(world.admin.clone(), &guarded.namespace);
    strip_finalizers(&as_admin)
        .await
        .expect("break-glass may remove the finalizer");
    as_admin
        .delete("svc", &DeleteParams::default())
        .await
        .unwrap();
    strip_finalizers(&as_admin)
        .await
        .expect("break-glass may remove the finalizer");
    world
        .password_dies(
            "break-glass finalizer removal under the admission policies",
            &guarded.user,
            &guarded.password,
        )
        .await;
}
