//! The invariant auditor: compares, for every pool user, what works on the Entra emulator with
//! what the cluster says (leases and their Secrets).

use std::collections::{BTreeMap, BTreeSet};

use entra_operator::api::LeasePhase;
use k8s_openapi::api::coordination::v1::Lease as Claim;

use super::lease_env::LeaseEnv;

/// Every password ever seen in a lease Secret, per username.
#[derive(Default)]
pub struct SeenPasswords(pub BTreeMap<String, BTreeSet<String>>);

impl SeenPasswords {
    /// Records the passwords currently in the namespace's managed Secrets.
    pub async fn record(&mut self, env: &LeaseEnv) {
        let params =
            kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=entra-operator");
        for secret in env.secrets().list(&params).await.unwrap() {
            let Some(data) = secret.data else { continue };
            let (Some(user), Some(password)) = (data.get("username"), data.get("password")) else {
                continue;
            };
            let user = String::from_utf8_lossy(&user.0).into_owned();
            let password = String::from_utf8_lossy(&password.0).into_owned();
            self.0.entry(user).or_default().insert(password);
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &String> {
        self.0.values().flatten()
    }
}

/// Invariants I1 to I3 and I7 as they can be seen from outside, once the operator has converged:
/// the leases, their Secrets, the claims (the operator's record) and what signs in on the
/// emulator. Returns the violations found.
pub async fn violations(env: &LeaseEnv, seen: &SeenPasswords) -> Vec<String> {
    let mut problems = Vec::new();
    let leases = env.leases().list(&Default::default()).await.unwrap().items;
    // Every claim belongs to a live lease, and the lease's status shows the claimed user.
    let claims: kube::Api<Claim> = kube::Api::namespaced(env.client.clone(), &env.namespace);
    let params =
        kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=entra-operator");
    for claim in claims.list(&params).await.unwrap() {
        let name = claim.metadata.name.clone().unwrap_or_default();
        let holder = claim.spec.as_ref().and_then(|s| s.holder_identity.clone());
        let record: Option<serde_json::Value> = claim
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("kms.hanzo.ai/record"))
            .and_then(|r| serde_json::from_str(r).ok());
        let Some(record) = record else {
            problems.push(format!("claim {name} has no record"));
            continue;
        };
        let lease = leases.iter().find(|l| l.metadata.uid == holder);
        let Some(lease) = lease else {
            problems.push(format!("I7: claim {name} outlived its lease"));
            continue;
        };
        let shown = lease
            .status
            .as_ref()
            .and_then(|s| s.user.as_ref())
            .map(|u| u.id.clone());
        if record["issued"] == true && shown.as_deref() != record["user"]["id"].as_str() {
            problems.push(format!(
                "claim {name} records {}, its lease's status shows {shown:?}",
                record["user"]["id"]
            ));
        }
    }
    let mut holders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut live_password: BTreeMap<String, String> = BTreeMap::new();
    for lease in &leases {
        let Some(status) = &lease.status else {
            continue;
        };
        let Some(user) = &status.user else { continue };
        let name = lease.metadata.name.clone().unwrap_or_default();
        holders
            .entry(user.user_principal_name.clone())
            .or_default()
            .push(name.clone());
        if status.phase == Some(LeasePhase::Active) {
            let secret = status.secret_name.clone().unwrap_or_default();
            let (username, password) = env.credentials(&secret).await;
            if username != user.user_principal_name {
                problems.push(format!(
                    "{name}: Secret names {username}, status {}",
                    user.user_principal_name
                ));
            }
            if !env.emulator.sign_in(&username, &password) {
                problems.push(format!(
                    "I2: active lease {name} holds a password that does not work"
                ));
            }
            live_password.insert(username, password);
        }
    }
    for (user, names) in &holders {
        if names.len() > 1 {
            problems.push(format!("I1: {user} is held by {names:?}"));
        }
    }
    for (user, passwords) in &seen.0 {
        for password in passwords {
            let is_live = live_password.get(user) == Some(password);
            if !is_live && env.emulator.sign_in(user, password) {
                problems.push(format!(
                    "I2/I3: a password of {user} that no live lease holds still works"
                ));
            }
        }
    }
    problems
}
