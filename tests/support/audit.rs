//! The invariant auditor: compares, for every pool user, what works on the Entra emulator with
//! what the cluster says (leases and their Secrets).

use std::collections::{BTreeMap, BTreeSet};

use entra_operator::api::LeasePhase;

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

/// Invariants I1 to I3 as they can be seen from outside. Returns the violations found.
pub async fn violations(env: &LeaseEnv, seen: &SeenPasswords) -> Vec<String> {
    let mut problems = Vec::new();
    let leases = env.leases().list(&Default::default()).await.unwrap().items;
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
