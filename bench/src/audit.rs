//! The invariant auditor: for every password a lease Secret ever held, and for every lease, compares
//! what works on the Entra emulator with what the API server says (leases, claims, Secrets).
//!
//! - I1 one holder: no two live leases issue or hold the same user; an Active lease holds the
//!   claim on its user.
//! - I2 no unknown live password: a password that works is in the current Secret of the live lease
//!   that holds that user; an Active lease's password works.
//! - I3 revocation is not best-effort: a lease that is gone has no working password.
//! - I4 no needless rotation: a lease's Secret only ever held one password.
//! - I5 bounded lifetime: no password works longer than its lease's deadline plus a lag.
//!
//! The cluster changes while it is being read. Some findings are sound as read: a lease that is
//! gone with a working password, or a lease that a fresh read shows unchanged, Active and not
//! being deleted while its password fails or another such lease has its user (only a deleted
//! lease's cleanup may scramble or release). The others (a password working past a deadline or
//! outside the Secret that should hold it) count only when a second look a moment later finds them
//! again. The final audit, with nothing moving, is strict.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use entra_emulator::Emulator;
use entra_operator::api::{EntraLease, LeasePhase};
use entra_operator::controller::claim_name;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;

use super::lab::{Lab, retrying};
use super::tracker::{Tracker, credentials};

const MANAGED: &str = "app.kubernetes.io/managed-by=entra-operator";
/// How long the final audit waits for an API server that is restarting.
const PATIENCE: Duration = Duration::from_secs(90);

pub struct Auditor {
    /// How long past its deadline a credential may still work (Graph latency, requeue, load).
    pub lag_bound: Duration,
    /// Set while Graph is down: deadlines count from when it answers again (I5 says "while Graph
    /// answers").
    pub graph_back_at: Option<Timestamp>,
    /// Confirmed violations, each once.
    pub violations: BTreeSet<String>,
    /// Audit rounds that ran (rounds during an API server outage are skipped).
    pub rounds: usize,
}

impl Auditor {
    pub fn new(lag_bound: Duration) -> Auditor {
        Auditor {
            lag_bound,
            graph_back_at: None,
            violations: BTreeSet::new(),
            rounds: 0,
        }
    }

    /// A mid-run audit: sound findings are violations at once, the others when a second look
    /// 1.5 s later finds them again.
    pub async fn check(&mut self, lab: &Lab, tracker: &Tracker, emulator: &Emulator) {
        let Ok(first) = self.findings(lab, tracker, emulator, Duration::ZERO).await else {
            return;
        };
        self.violations.extend(first.sound);
        if first.to_confirm.is_empty() {
            self.rounds += 1;
            return;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let Ok(second) = self.findings(lab, tracker, emulator, Duration::ZERO).await else {
            return;
        };
        self.rounds += 1;
        self.violations.extend(second.sound);
        self.violations
            .extend(first.to_confirm.intersection(&second.to_confirm).cloned());
    }

    /// The audit at the end, when every lease has ended: nothing may be left or still work.
    pub async fn final_check(&mut self, lab: &Lab, tracker: &Tracker, emulator: &Emulator) {
        match self.findings(lab, tracker, emulator, PATIENCE).await {
            Ok(findings) => {
                self.violations.extend(findings.sound);
                self.violations.extend(findings.to_confirm);
            }
            Err(error) => {
                self.violations
                    .insert(format!("final audit could not read the cluster: {error}"));
                return;
            }
        }
        self.rounds += 1;
        let all = ListParams::default();
        let managed = ListParams::default().labels(MANAGED);
        let (leases, secrets, claims) = (lab.leases(), lab.secrets(), lab.claims());
        if let Ok(leases) = retrying(PATIENCE, || leases.list(&all)).await
            && !leases.items.is_empty()
        {
            let names: Vec<String> = leases
                .items
                .iter()
                .filter_map(|l| l.metadata.name.clone())
                .collect();
            self.violations
                .insert(format!("I3: leases never ended: {names:?}"));
        }
        if let Ok(secrets) = retrying(PATIENCE, || secrets.list(&managed)).await
            && !secrets.items.is_empty()
        {
            self.violations.insert(format!(
                "I3: {} lease Secrets outlived their leases",
                secrets.items.len()
            ));
        }
        if let Ok(claims) = retrying(PATIENCE, || claims.list(&managed)).await
            && !claims.items.is_empty()
        {
            self.violations.insert(format!(
                "I3: {} users are still claimed with no lease left",
                claims.items.len()
            ));
        }
    }

    async fn findings(
        &self,
        lab: &Lab,
        tracker: &Tracker,
        emulator: &Emulator,
        patience: Duration,
    ) -> Result<Findings, kube::Error> {
        let mut findings = Findings::default();
        let listed_at = Instant::now();
        let (all, managed) = (ListParams::default(), ListParams::default().labels(MANAGED));
        let (lease_api, claims, secrets) = (lab.leases(), lab.claims(), lab.secrets());
        let leases = retrying(patience, || lease_api.list(&all)).await?.items;
        let claims = retrying(patience, || claims.list(&managed)).await?.items;
        let secrets = retrying(patience, || secrets.list(&managed)).await?.items;
        let now = Timestamp::now();
        let claim_holders: HashMap<String, Option<String>> = claims
            .iter()
            .map(|claim| {
                let holder = claim.spec.as_ref().and_then(|s| s.holder_identity.clone());
                (claim.metadata.name.clone().unwrap_or_default(), holder)
            })
            .collect();
        let secret_credentials: HashMap<String, (String, String)> = secrets
            .iter()
            .filter_map(|secret| Some((secret.metadata.name.clone()?, credentials(secret)?)))
            .collect();
        // Whether a fresh read shows `lease` exactly as listed, and not being deleted: then
        // nothing of the operator's (which only cleans up deleted leases) can explain a finding.
        let unchanged = |lease: &EntraLease| {
            let name = lease.metadata.name.clone().unwrap_or_default();
            let listed = lease.metadata.resource_version.clone();
            let api = lab.leases();
            async move {
                api.get_opt(&name).await.ok().flatten().is_some_and(|now| {
                    now.metadata.deletion_timestamp.is_none()
                        && now.metadata.resource_version == listed
                })
            }
        };

        // I1: one holder among the leases that issue or hold a credential.
        let mut holders: HashMap<String, Vec<&EntraLease>> = HashMap::new();
        for lease in &leases {
            let Some(status) = &lease.status else {
                continue;
            };
            let (Some(user), Some(phase)) = (&status.user, status.phase) else {
                continue;
            };
            let name = lease.metadata.name.clone().unwrap_or_default();
            if lease.metadata.deletion_timestamp.is_some()
                || !matches!(phase, LeasePhase::Issuing | LeasePhase::Active)
            {
                continue;
            }
            holders
                .entry(user.user_principal_name.clone())
                .or_default()
                .push(lease);
            if phase != LeasePhase::Active {
                continue;
            }
            let claim = claim_holders.get(&claim_name(&user.id));
            if claim.is_none_or(|holder| holder.as_deref() != lease.metadata.uid.as_deref())
                && unchanged(lease).await
            {
                findings.sound.insert(format!(
                    "I1: active lease {name} does not hold the claim on {}",
                    user.user_principal_name
                ));
            }
            // I2: an Active lease hands out a working password.
            let secret = status.secret_name.as_deref().unwrap_or_default();
            let works = secret_credentials
                .get(secret)
                .is_some_and(|(username, password)| emulator.sign_in(username, password));
            if !works && unchanged(lease).await {
                findings.sound.insert(format!(
                    "I2: active lease {name} has no working password in Secret {secret}"
                ));
            }
        }
        for (user, candidates) in holders {
            if candidates.len() < 2 {
                continue;
            }
            let mut names = Vec::new();
            for lease in candidates {
                if unchanged(lease).await {
                    names.push(lease.metadata.name.clone().unwrap_or_default());
                }
            }
            if names.len() > 1 {
                names.sort();
                findings
                    .sound
                    .insert(format!("I1: {user} is held by {names:?}"));
            }
        }

        // I2, I3, I5: every password ever handed out either belongs to a live holder or is dead.
        let live: HashMap<&str, &EntraLease> = leases
            .iter()
            .filter_map(|l| Some((l.metadata.name.as_deref()?, l)))
            .collect();
        let tracked = tracker.state();
        for ((username, password), lease_name) in &tracked.passwords {
            if !emulator.sign_in(username, password) {
                continue;
            }
            let track = tracked.leases.get(lease_name);
            let Some(lease) = live.get(lease_name.as_str()) else {
                // Seen before the list was read and not in it: deleted, so its finalizer is gone,
                // which must only happen after the scramble.
                if track
                    .and_then(|t| t.first_seen)
                    .is_some_and(|seen| seen < listed_at)
                {
                    findings.sound.insert(format!(
                        "I3: lease {lease_name} is gone but its password for {username} still works"
                    ));
                }
                continue;
            };
            let status = lease.status.as_ref();
            let holds_user = status
                .and_then(|s| s.user.as_ref())
                .is_some_and(|u| u.user_principal_name.eq_ignore_ascii_case(username));
            let in_secret = status
                .and_then(|s| s.secret_name.as_deref())
                .and_then(|name| secret_credentials.get(name))
                .is_some_and(|(_, current)| current == password);
            if !holds_user || !in_secret {
                findings.to_confirm.insert(format!(
                    "I2: a password of {username} from lease {lease_name} works but is not in \
                     the Secret of the lease holding the user"
                ));
            }
            if let Some(deadline) = track.and_then(|t| t.deadline()) {
                let from = self
                    .graph_back_at
                    .map_or(deadline, |back| back.max(deadline));
                let late = now.duration_since(from).as_secs_f64();
                if late > self.lag_bound.as_secs_f64() {
                    findings.to_confirm.insert(format!(
                        "I5: lease {lease_name}'s password for {username} works past its deadline \
                         plus {:?}",
                        self.lag_bound
                    ));
                }
            }
        }
        // I4: a lease's password never changes.
        for (name, track) in &tracked.leases {
            if track.passwords.len() > 1 {
                findings.sound.insert(format!(
                    "I4: lease {name}'s Secret held {} different passwords",
                    track.passwords.len()
                ));
            }
        }
        Ok(findings)
    }
}

/// What one look at the cluster found.
#[derive(Default)]
struct Findings {
    /// Violations as read.
    sound: BTreeSet<String>,
    /// Violations only if a second look finds them again.
    to_confirm: BTreeSet<String>,
}
