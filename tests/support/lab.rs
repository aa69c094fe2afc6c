//! The world a benchmark or a chaos scenario runs in: a generated Entra tenant, a namespace with
//! the app's client secret and dynamic secrets over ranges of its users, and the operator process.
//!
//! Used by the `bench` and `chaos` binaries, `tests/chaos.rs`, and the auditor of every
//! integration test's [`LeaseEnv`](super::lease_env::LeaseEnv).

use std::future::Future;
use std::ops::Range;
use std::time::{Duration, Instant};

use entra_operator::api::{EntraDynamicSecret, EntraLease};
use k8s_openapi::api::coordination::v1::Lease as Claim;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

pub const TENANT_ID: &str = "8f5e0a4c-3b1d-4c2e-9a7f-1d2e3f4a5b6c";
pub const DOMAIN: &str = "contoso.onmicrosoft.com";
pub const APP_ID: &str = "3c9d2b1a-7e6f-4a5b-8c9d-0e1f2a3b4c5d";
pub const CLIENT_SECRET: &str = "bench-client-secret-value~0123456789";
pub const CLIENT_SECRET_NAME: &str = "entra-app";
/// A second tenant with the same app (id and secret) and none of Contoso's users: a pool
/// re-pointed there gets "user not found" for every pool user.
pub const DECOY_TENANT_ID: &str = "1b2c3d4e-0000-4000-8000-0000000000fa";
pub const DECOY_DOMAIN: &str = "fabrikam.onmicrosoft.com";
/// How long setup calls wait for an API server that is restarting.
const SETUP_PATIENCE: Duration = Duration::from_secs(90);
/// The CRD's `maxItems` for `spec.users`.
pub const MAX_POOL_USERS: usize = 256;

/// Object id of generated user `n`: fixed, so runs are comparable.
pub fn user_id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

pub fn user_principal_name(n: usize) -> String {
    format!("user-{n}@{DOMAIN}")
}

/// A tenant with `users` cloud-only member users `user-N@contoso.onmicrosoft.com` and the
/// operator's app (allowed to reset their passwords).
pub fn tenant(users: usize) -> entra_emulator::Config {
    tenants(users, false)
}

/// [`tenant`], plus Fabrikam ([`DECOY_DOMAIN`]): the same app, no users.
pub fn tenant_with_decoy(users: usize) -> entra_emulator::Config {
    tenants(users, true)
}

/// [`tenant`], plus a second app `app_id` (the same secret) that may reset the users' passwords
/// too: a tenant's own app beside the operator's.
pub fn tenant_with_second_app(users: usize, app_id: &str) -> entra_emulator::Config {
    let mut config = tenant(users);
    let tenant = &mut config.tenants[0];
    let mut second = tenant.app(APP_ID).expect("the operator's app").clone();
    second.client_id = app_id.into();
    second.display_name = "a tenant's own app".into();
    tenant.apps.push(second);
    config
}

/// [`tenant`] as the emulator's JSON configuration, for a bench phase to add tenants to.
pub fn tenant_json(users: usize) -> Value {
    tenants_json(users, false)
}

fn tenants(users: usize, decoy: bool) -> entra_emulator::Config {
    let config = tenants_json(users, decoy);
    // JSON is YAML: the emulator validates the tenant as it would a file.
    entra_emulator::Config::from_yaml_str(&config.to_string()).expect("a valid generated tenant")
}

fn tenants_json(users: usize, decoy: bool) -> Value {
    let users: Vec<Value> = (0..users)
        .map(|n| {
            json!({
                "id": user_id(n),
                "userPrincipalName": user_principal_name(n),
                "displayName": "Bench user",
            })
        })
        .collect();
    let app = json!({
        "clientId": APP_ID,
        "displayName": "entra-operator",
        "secrets": [CLIENT_SECRET],
        "permissions": [
            "User-PasswordProfile.ReadWrite.All",
            "User.ReadWrite.All",
            "UserAuthenticationMethod.ReadWrite.All",
        ],
        "directoryRoles": ["User Administrator"],
    });
    let mut tenants = vec![json!({
        "id": TENANT_ID,
        "domains": [DOMAIN],
        "apps": [app.clone()],
        "users": users,
    })];
    if decoy {
        tenants.push(json!({ "id": DECOY_TENANT_ID, "domains": [DECOY_DOMAIN], "apps": [app] }));
    }
    json!({ "tokenLifetimeSeconds": 3599, "tenants": tenants })
}

/// Stops and starts the operator process: the harness's and the tests' own launchers both fit.
pub trait OperatorProcess {
    /// SIGKILL, as a crash or an evicted pod ends it.
    fn kill(&mut self);
    /// Starts it again (after a kill, or kills it first).
    fn restart(&mut self);
    fn is_running(&mut self) -> bool;
}

/// The namespaces a run works in, and the client it uses.
#[derive(Clone)]
pub struct Lab {
    pub client: kube::Client,
    /// Where the leases, dynamic secrets and Secrets live.
    pub namespace: String,
    /// The operator's namespace, where it keeps its user claims.
    pub claims_namespace: String,
}

impl Lab {
    pub fn leases(&self) -> Api<EntraLease> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn pools(&self) -> Api<EntraDynamicSecret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn claims(&self) -> Api<Claim> {
        Api::namespaced(self.client.clone(), &self.claims_namespace)
    }

    /// Creates a namespace unless it exists.
    pub async fn ensure_namespace(client: &kube::Client, name: &str) {
        let namespace: Namespace =
            serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
        let api = Api::<Namespace>::all(client.clone());
        let params = PostParams::default();
        match retrying(SETUP_PATIENCE, || api.create(&params, &namespace)).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => panic!("namespace {name}: {error}"),
        }
    }

    /// The app's client secret, as the dynamic secrets reference it.
    pub async fn create_client_secret(&self) {
        self.create_client_secret_named(CLIENT_SECRET_NAME).await;
    }

    /// The app's client secret in a Secret named `name`.
    pub async fn create_client_secret_named(&self, name: &str) {
        let secret = super::cluster::client_secret(name, CLIENT_SECRET);
        let (api, params) = (self.secrets(), PostParams::default());
        match retrying(SETUP_PATIENCE, || api.create(&params, &secret)).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => panic!("the client secret: {error}"),
        }
    }

    /// A dynamic secret over the generated users `users`.
    pub async fn create_pool(
        &self,
        name: &str,
        users: Range<usize>,
        default_ttl: &str,
        max_ttl: &str,
        revoke_sign_in_sessions: bool,
    ) {
        self.create_pool_using(
            name,
            users,
            (default_ttl, max_ttl),
            revoke_sign_in_sessions,
            CLIENT_SECRET_NAME,
        )
        .await;
    }

    /// [`Lab::create_pool`] with the client secret in Secret `client_secret`.
    pub async fn create_pool_using(
        &self,
        name: &str,
        users: Range<usize>,
        (default_ttl, max_ttl): (&str, &str),
        revoke_sign_in_sessions: bool,
        client_secret: &str,
    ) {
        assert!(
            users.len() <= MAX_POOL_USERS,
            "a pool holds at most 256 users"
        );
        let upns: Vec<String> = users.map(user_principal_name).collect();
        let pool: EntraDynamicSecret = serde_json::from_value(json!({
            "apiVersion": "kms.hanzo.ai/v1alpha1",
            "kind": "EntraDynamicSecret",
            "metadata": { "name": name },
            "spec": {
                "tenantId": DOMAIN,
                "applicationId": APP_ID,
                "clientSecretRef": { "name": client_secret },
                "users": upns,
                "defaultTTL": default_ttl,
                "maxTTL": max_ttl,
                "revokeSignInSessions": revoke_sign_in_sessions,
            }
        }))
        .unwrap();
        let (api, params) = (self.pools(), PostParams::default());
        match retrying(SETUP_PATIENCE, || api.create(&params, &pool)).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => panic!("dynamic secret {name}: {error}"),
        }
    }

    /// Waits until every dynamic secret in `names` is Ready with all its users leasable.
    pub async fn wait_pools_ready(
        &self,
        names: &[String],
        timeout: Duration,
    ) -> Result<(), String> {
        let started = Instant::now();
        loop {
            let pools = self.pools().list(&Default::default()).await;
            let ready = pools.map(|list| {
                names
                    .iter()
                    .filter(|name| {
                        list.items.iter().any(|pool| {
                            pool.metadata.name.as_ref() == Some(*name)
                                && pool.status.as_ref().is_some_and(|s| {
                                    s.available as usize + s.leased as usize
                                        == pool.spec.users.len()
                                        && s.conditions
                                            .iter()
                                            .any(|c| c.type_ == "Ready" && c.status == "True")
                                })
                        })
                    })
                    .count()
            });
            if ready.as_ref().is_ok_and(|count| *count == names.len()) {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(format!(
                    "dynamic secrets not ready after {timeout:?} ({ready:?} of {})",
                    names.len()
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// An EntraLease of dynamic secret `pool`; `spec` adds `ttl`, `user`, `autoRenew`.
pub fn lease_object(name: &str, pool: &str, spec: Value) -> EntraLease {
    let mut full = json!({ "dynamicSecretRef": { "name": pool } });
    if let (Some(full), Value::Object(extra)) = (full.as_object_mut(), spec) {
        full.extend(extra);
    }
    serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraLease",
        "metadata": { "name": name },
        "spec": full,
    }))
    .expect("a valid lease")
}

/// Whether an API error is worth another attempt: the API server down or restarting, a
/// timeout, throttling. Conflicts and validation errors are answers.
pub fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        _ => true,
    }
}

/// Runs `call` until it answers something other than a transient error, for up to `timeout`.
/// Drivers use it so that an API server restart delays them instead of failing them.
pub async fn retrying<T, F, Fut>(timeout: Duration, mut call: F) -> kube::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = kube::Result<T>>,
{
    let started = Instant::now();
    loop {
        match call().await {
            Err(error) if is_transient(&error) && started.elapsed() < timeout => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

/// The tests' operator launcher drives the scenarios too (`tests/chaos.rs`).
impl OperatorProcess for super::Operator {
    fn kill(&mut self) {
        super::Operator::kill(self);
    }

    fn restart(&mut self) {
        super::Operator::restart(self);
    }

    fn is_running(&mut self) -> bool {
        super::Operator::is_running(self)
    }
}
