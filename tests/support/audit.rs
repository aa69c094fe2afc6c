//! The invariant auditor: for every password a lease Secret ever held, and for every claim,
//! compares what works on the Entra emulator with what the operator recorded (the claims in its
//! namespace) and what is live (leases, their Secrets). Users and deadlines come from the claims,
//! never from a lease's status: a tenant may write that status.
//!
//! - I1 one holder: every claim is named after the user it records (so one claim per user), and
//!   no two leases' Secrets hold a working password of one user.
//! - I2 no unknown live password: a password that works is in the Secret of exactly one live
//!   lease, the one whose claim records that user and that Secret; a live lease with an issued,
//!   unexpired claim has a working password in that Secret.
//! - I3 revocation is not best-effort: a lease that went away with its finalizer has no working
//!   password; a released claim's password does not work.
//! - I4 no needless rotation: a lease's Secret only ever held one password.
//! - I5 bounded lifetime: no password works past its claim's recorded deadline plus a lag, and
//!   no claim is still held past its expiry plus the reaper's bound plus the lag.
//! - I9 the end is the end on Entra's side: a released user of a pool that removes methods (and
//!   whose condition says it can) has no method a holder registered; a released user of a pool
//!   that disables idle users is disabled once it was ever leased.
//! - I7 holders cannot keep it: a lease whose finalizer was stripped (the scenario says which)
//!   may leave a working password and its claim behind for at most the reaper's bound plus the
//!   lag; then both must be gone.
//!
//! The cluster changes while it is being read. Some findings are sound as read (the tracker's
//! copy is taken before the lists, and a password is tried after them): a lease that went away
//! through its finalizer with a working password, a released claim whose password works, a
//! stripped lease's password or claim outliving the bound. The others count only when a second
//! look a moment later finds them again. The final audit, with nothing moving, is strict.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use entra_emulator::Emulator;
use entra_operator::api::{EntraLease, LeasePhase, SignInMethods};
use entra_operator::controller::claim_name;
use entra_operator::controller::claim_record::{ClaimRecord, RECORD_ANNOTATION};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::ListParams;

use super::lab::{Lab, retrying};
use super::tracker::{
    Tracker, access_pass, credentials, pending_credentials, previous_credentials,
};

const MANAGED: &str = "app.kubernetes.io/managed-by=entra-operator";
/// Lease Secrets: managed and labelled with their lease (the operator's copies of app
/// credentials carry the managed-by label too, and live where the claims do).
const LEASE_SECRETS: &str = "app.kubernetes.io/managed-by=entra-operator,kms.hanzo.ai/lease";
const LEASE_LABEL: &str = "kms.hanzo.ai/lease";
/// How long the final audit waits for an API server that is restarting.
const PATIENCE: Duration = Duration::from_secs(90);
/// The reaper's bound: a claim whose lease is gone is ended within 30 s of the lease going, and
/// a claim still held 30 s past its expiry is ended (src/controller/reaper.rs, design.md).
pub const REAPER_BOUND: Duration = Duration::from_secs(30);

/// Lease names whose finalizers a scenario stripped: they may go before their revocation, and
/// their claims are the reaper's. Shared between a scenario's drivers and its auditor.
pub type Unguarded = Arc<Mutex<HashSet<String>>>;

pub struct Auditor {
    /// How long past its deadline a credential may still work (Graph latency, requeue, load).
    pub lag_bound: Duration,
    /// Set while Graph is down: deadlines count from when it answers again (I5 says "while Graph
    /// answers").
    pub graph_back_at: Option<Timestamp>,
    /// Leases whose finalizers were stripped.
    pub unguarded: Unguarded,
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
            unguarded: Unguarded::default(),
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

    /// An audit of a cluster that has converged with leases still live (nothing moves while it
    /// reads): every finding counts at once, and every live lease's status shows what its claim
    /// records. Returns false when the cluster could not be read (that is a violation too).
    pub async fn settled_check(
        &mut self,
        lab: &Lab,
        tracker: &Tracker,
        emulator: &Emulator,
    ) -> bool {
        let findings = match self.findings(lab, tracker, emulator, PATIENCE).await {
            Ok(findings) => findings,
            Err(error) => {
                self.violations
                    .insert(format!("the audit could not read the cluster: {error}"));
                return false;
            }
        };
        self.rounds += 1;
        self.violations.extend(findings.sound);
        self.violations.extend(findings.to_confirm);
        match status_findings(lab).await {
            Ok(found) => self.violations.extend(found),
            Err(error) => {
                self.violations
                    .insert(format!("the audit could not read the cluster: {error}"));
                return false;
            }
        }
        match sign_in_path_findings(lab, emulator).await {
            Ok(found) => self.violations.extend(found),
            Err(error) => {
                self.violations
                    .insert(format!("the audit could not read the cluster: {error}"));
                return false;
            }
        }
        true
    }

    /// The audit at the end, when every lease has ended: nothing may be left or still work.
    pub async fn final_check(&mut self, lab: &Lab, tracker: &Tracker, emulator: &Emulator) {
        if !self.settled_check(lab, tracker, emulator).await {
            return;
        }
        let all = ListParams::default();
        let managed = ListParams::default().labels(MANAGED);
        let lease_secrets = ListParams::default().labels(LEASE_SECRETS);
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
        if let Ok(secrets) = retrying(PATIENCE, || secrets.list(&lease_secrets)).await
            && !secrets.items.is_empty()
        {
            self.violations.insert(format!(
                "I3: {} lease Secrets outlived their leases",
                secrets.items.len()
            ));
        }
        if let Ok(claims) = retrying(PATIENCE, || claims.list(&managed)).await {
            let held: Vec<String> = claims
                .items
                .iter()
                .filter(|c| record_of(&c.metadata).is_some())
                .filter_map(|c| c.metadata.name.clone())
                .collect();
            if !held.is_empty() {
                self.violations.insert(format!(
                    "I3/I7: users still claimed with no lease left: {held:?}"
                ));
            }
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
        // The tracker's copy first: every password and every release in it happened before
        // the lists below, and every sign-in is tried after them.
        let tracked = tracker.snapshot();
        let unguarded = self.unguarded.lock().unwrap().clone();
        let listed_at = Instant::now();
        let (all, managed) = (ListParams::default(), ListParams::default().labels(MANAGED));
        let lease_secrets = ListParams::default().labels(LEASE_SECRETS);
        let (lease_api, claims, secrets) = (lab.leases(), lab.claims(), lab.secrets());
        let leases = retrying(patience, || lease_api.list(&all)).await?.items;
        let claims = retrying(patience, || claims.list(&managed)).await?.items;
        let secrets = retrying(patience, || secrets.list(&lease_secrets))
            .await?
            .items;
        let now = Timestamp::now();
        let reaper_bound = REAPER_BOUND + self.lag_bound;
        // Live leases by name, with their uid.
        let live: HashMap<&str, &EntraLease> = leases
            .iter()
            .filter_map(|l| Some((l.metadata.name.as_deref()?, l)))
            .collect();
        let live_with_uid = |name: &str, uid: &str| {
            live.get(name)
                .copied()
                .filter(|l| l.metadata.uid.as_deref() == Some(uid))
        };
        // Lease Secrets: name -> (lease label, every (username, password) it holds: the current
        // credential, and a continuous lease's previous one or pending next one).
        let secret_credentials: HashMap<String, (String, Vec<(String, String)>)> = secrets
            .iter()
            .filter_map(|secret| {
                let lease = secret.metadata.labels.as_ref()?.get(LEASE_LABEL)?.clone();
                let pairs = [
                    credentials(secret),
                    access_pass(secret),
                    previous_credentials(secret),
                    pending_credentials(secret),
                ]
                .into_iter()
                .flatten()
                .collect();
                Some((secret.metadata.name.clone()?, (lease, pairs)))
            })
            .collect();
        // When a deadline counts from: itself, or when Graph answers again.
        let from = |deadline: Timestamp| self.graph_back_at.map_or(deadline, |b| b.max(deadline));
        let past = |at: Timestamp| now.duration_since(at).as_secs_f64();

        // The claims: the operator's record of who holds whom, until when.
        for claim in &claims {
            let name = claim.metadata.name.clone().unwrap_or_default();
            let Some(record) = record_of(&claim.metadata) else {
                // Not a claim (another Lease with the label), or a claim without its record.
                if claim
                    .metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key("kms.hanzo.ai/user-id"))
                {
                    findings
                        .sound
                        .insert(format!("claim {name} has no readable record"));
                }
                continue;
            };
            let user = &record.user.user_principal_name;
            // I1: a claim is named after the user it records, so a user has one claim.
            if claim_name(&record.user.id) != name {
                findings.sound.insert(format!(
                    "I1: claim {name} records user {} ({user})",
                    record.user.id
                ));
            }
            let holder = claim
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref());
            if holder != Some(record.lease.uid.as_str()) {
                findings.sound.insert(format!(
                    "I1: claim {name} is held by {holder:?} but records lease uid {}",
                    record.lease.uid
                ));
            }
            // I5: the reaper ends a claim still held 30 s past its expiry.
            if record.issued {
                let overdue_from = from(record.expires_at() + signed(REAPER_BOUND));
                if past(overdue_from) > self.lag_bound.as_secs_f64() {
                    findings.to_confirm.insert(format!(
                        "I5: the claim on {user} (lease {}) is still held {:.0} s past its \
                         recorded expiry",
                        record.lease.name,
                        past(record.expires_at())
                    ));
                }
            }
            if record.lease.namespace != lab.namespace {
                continue;
            }
            match live_with_uid(&record.lease.name, &record.lease.uid) {
                None => {
                    // I7: a claim outlives its lease by at most the reaper's bound.
                    let gone_at = tracked
                        .leases
                        .get(&record.lease.name)
                        .filter(|t| t.uid.as_deref() == Some(record.lease.uid.as_str()))
                        .and_then(|t| t.gone_at);
                    if let Some(gone_at) = gone_at
                        && listed_at.saturating_duration_since(gone_at) > reaper_bound
                    {
                        findings.sound.insert(format!(
                            "I7: the claim on {user} outlived lease {} by more than {:?}",
                            record.lease.name, reaper_bound
                        ));
                    }
                }
                Some(lease) => {
                    // I2: a live lease with an issued, unexpired claim hands out a working
                    // password, in the Secret its claim records.
                    let unexpired = record.expires_at().min(record.max_expires_at())
                        > now + SignedDuration::from_secs(2);
                    if record.issued && unexpired && lease.metadata.deletion_timestamp.is_none() {
                        let works = secret_credentials.get(&record.secret_name).is_some_and(
                            |(_, pairs)| {
                                pairs.iter().any(|(username, secret)| {
                                    username.eq_ignore_ascii_case(user)
                                        && match record.access_pass {
                                            // Issued: a pass used once still counts.
                                            Some(_) => emulator.pass_is_live(username, secret),
                                            None => emulator.sign_in(username, secret),
                                        }
                                })
                            },
                        );
                        if !works {
                            findings.to_confirm.insert(format!(
                                "I2: lease {} holds an issued claim on {user} but its Secret {} \
                                 has no working password",
                                record.lease.name, record.secret_name
                            ));
                        }
                    }
                }
            }
        }
        let current: HashMap<String, ClaimRecord> = claims
            .iter()
            .filter_map(|c| Some((c.metadata.name.clone()?, record_of(&c.metadata)?)))
            .collect();

        // I1: no two leases' Secrets hold a working password of one user.
        let mut working: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (lease, pairs) in secret_credentials.values() {
            for (username, password) in pairs {
                if emulator.sign_in(username, password) {
                    working
                        .entry(username.to_ascii_lowercase())
                        .or_default()
                        .insert(lease.clone());
                }
            }
        }
        for (user, leases) in &working {
            if leases.len() > 1 {
                findings.to_confirm.insert(format!(
                    "I1: the Secrets of leases {leases:?} hold working passwords of {user}"
                ));
            }
        }

        // I2, I3, I5, I7: every password ever handed out belongs to its live holder or is dead.
        for ((username, password), (lease_name, generation)) in &tracked.passwords {
            if !emulator.sign_in(username, password) {
                continue;
            }
            let track = tracked.leases.get(lease_name);
            let uid = track.and_then(|t| t.uid.clone()).unwrap_or_default();
            let key = (uid.clone(), *generation, username.to_ascii_lowercase());
            let claim = tracked.claims.get(&key);
            // I3: a claim is released only after its password was scrambled.
            if let Some(claim) = claim
                && claim.released_at.is_some()
            {
                findings.sound.insert(format!(
                    "I3: the claim of lease {lease_name} on {username} was released but its \
                     password still works"
                ));
            }
            // I5: no password works past its claim's recorded deadline.
            if let Some(claim) = claim {
                let late = past(from(claim.deadline()));
                if late > self.lag_bound.as_secs_f64() {
                    findings.to_confirm.insert(format!(
                        "I5: lease {lease_name}'s password for {username} works {late:.0} s past \
                         its recorded deadline"
                    ));
                }
            }
            match live_with_uid(lease_name, &uid) {
                None => {
                    let seen_before = track
                        .and_then(|t| t.first_seen)
                        .is_some_and(|seen| seen < listed_at);
                    if !seen_before {
                        continue;
                    }
                    if unguarded.contains(lease_name) {
                        // I7: its finalizer was stripped; the reaper has its bound.
                        let gone_at = track.and_then(|t| t.gone_at).unwrap_or(listed_at);
                        if listed_at.saturating_duration_since(gone_at) > reaper_bound {
                            findings.sound.insert(format!(
                                "I7: lease {lease_name} (finalizer stripped) is gone but its \
                                 password for {username} still works after {reaper_bound:?}"
                            ));
                        }
                    } else {
                        // Deleted through its finalizer, which goes only after the scramble.
                        findings.sound.insert(format!(
                            "I3: lease {lease_name} is gone but its password for {username} \
                             still works"
                        ));
                    }
                }
                Some(_) => {
                    // I2: in the Secret of exactly one live lease, the one whose claim records
                    // this user and this Secret.
                    // From the lists, not the tracker: its claim watch may still be catching
                    // up (after an API server restart, say) when the lists already answer.
                    let recorded = current.values().find(|r| {
                        r.lease.uid == uid
                            && r.user.user_principal_name.eq_ignore_ascii_case(username)
                    });
                    let holders: Vec<&String> = secret_credentials
                        .iter()
                        .filter(|(_, (lease, pairs))| {
                            live.contains_key(lease.as_str())
                                && pairs.iter().any(|(user, held)| {
                                    user.eq_ignore_ascii_case(username) && held == password
                                })
                        })
                        .map(|(secret, _)| secret)
                        .collect();
                    let in_recorded_secret = recorded.is_some_and(|r| {
                        r.user.user_principal_name.eq_ignore_ascii_case(username)
                            && holders == [&r.secret_name]
                    });
                    if !in_recorded_secret {
                        findings.to_confirm.insert(format!(
                            "I2: a password of {username} from lease {lease_name} works but is \
                             not in exactly the Secret its claim records (in {holders:?})"
                        ));
                    }
                }
            }
        }
        // I4: a credential's password never changes (a new one is a new generation: a
        // rotation, or a restore of a deleted or edited Secret).
        for (name, track) in &tracked.leases {
            for ((generation, user), passwords) in &track.passwords {
                if passwords.len() > 1 {
                    findings.sound.insert(format!(
                        "I4: lease {name}'s Secret held {} different passwords of {user} for \
                         credential {generation}",
                        passwords.len()
                    ));
                }
            }
        }
        Ok(findings)
    }
}

/// What the users of a settled cluster read: every live lease's status shows what its claim
/// records (user, Secret, deadlines), and no lease shows itself Active without a claim. A tenant
/// may write a status; the operator rewrites it, so a forged one does not survive convergence.
async fn status_findings(lab: &Lab) -> Result<BTreeSet<String>, kube::Error> {
    let (leases, claims) = (lab.leases(), lab.claims());
    let (all, managed) = (ListParams::default(), ListParams::default().labels(MANAGED));
    let leases = retrying(PATIENCE, || leases.list(&all)).await?.items;
    // Each lease's current credential: of a continuous lease's two, the later generation.
    let mut records: HashMap<String, ClaimRecord> = HashMap::new();
    for record in retrying(PATIENCE, || claims.list(&managed))
        .await?
        .items
        .iter()
        .filter_map(|c| record_of(&c.metadata))
    {
        let later = records
            .get(&record.lease.uid)
            .is_none_or(|kept| kept.generation < record.generation);
        if later {
            records.insert(record.lease.uid.clone(), record);
        }
    }
    records.retain(|_, record| record.issued);
    let mut found = BTreeSet::new();
    for lease in leases
        .iter()
        .filter(|l| l.metadata.deletion_timestamp.is_none())
    {
        let name = lease.metadata.name.clone().unwrap_or_default();
        let status = lease.status.clone().unwrap_or_default();
        let record = lease.metadata.uid.as_ref().and_then(|uid| records.get(uid));
        let Some(record) = record else {
            if status.phase == Some(LeasePhase::Active) {
                found.insert(format!("lease {name} shows Active but no claim records it"));
            }
            continue;
        };
        let shown = (
            status.phase,
            status.user.as_ref(),
            status.secret_name.as_deref(),
            status.expires_at.as_ref(),
            status.max_expires_at.as_ref(),
        );
        let recorded = (
            Some(LeasePhase::Active),
            Some(&record.user),
            Some(record.secret_name.as_str()),
            Some(&record.expires_at),
            Some(&record.max_expires_at),
        );
        if shown != recorded {
            found.insert(format!(
                "lease {name}'s status shows {shown:?}, its claim records {recorded:?}"
            ));
        }
    }
    Ok(found)
}

/// The claim record in an object's annotations.
/// I9 on the users of the namespace's pools that no claim holds: no sign-in method a holder
/// registered is left where the pool removes them (and says so), and where the pool disables
/// idle users, a user that was ever leased is disabled.
async fn sign_in_path_findings(
    lab: &Lab,
    emulator: &Emulator,
) -> Result<BTreeSet<String>, kube::Error> {
    let (pools, claims) = (lab.pools(), lab.claims());
    let (all, managed) = (ListParams::default(), ListParams::default().labels(MANAGED));
    let pools = retrying(PATIENCE, || pools.list(&all)).await?;
    let claims = retrying(PATIENCE, || claims.list(&managed)).await?;
    let records: Vec<ClaimRecord> = claims
        .items
        .iter()
        .filter_map(|claim| record_of(&claim.metadata))
        .collect();
    let claimed: HashSet<String> = records
        .iter()
        .map(|record| record.user.id.to_ascii_lowercase())
        .collect();
    let mut found = BTreeSet::new();
    // No pass is left that a claim does not record (one being created has no id yet).
    for record in records.iter().filter(|r| r.issued) {
        let recorded = record.access_pass.as_ref().and_then(|p| p.id.as_deref());
        if let Some(user) = emulator.user(&record.user.id)
            && user.methods.iter().any(|m| {
                m.pass.is_some() && recorded.is_none_or(|id| !m.id.eq_ignore_ascii_case(id))
            })
        {
            found.insert(format!(
                "I9: {} holds a Temporary Access Pass its claim does not record",
                user.user_principal_name
            ));
        }
    }
    for pool in &pools.items {
        let Some(status) = &pool.status else {
            continue;
        };
        let removes_methods = pool.spec.pool.sign_in_methods
            == SignInMethods::RemoveAddedDuringLease
            && status
                .conditions
                .iter()
                .any(|c| c.type_ == "SignInMethodsManaged" && c.status == "True");
        let idle = status
            .users
            .iter()
            .filter_map(|user| user.id.as_deref())
            .filter(|id| !claimed.contains(&id.to_ascii_lowercase()));
        for id in idle {
            let Some(user) = emulator.user(id) else {
                continue;
            };
            let upn = &user.user_principal_name;
            if user.methods.iter().any(|m| m.pass.is_some()) {
                found.insert(format!(
                    "I9: {upn} is released, yet a Temporary Access Pass created for a lease is left"
                ));
            }
            if removes_methods && user.methods.iter().any(|m| m.by_holder) {
                found.insert(format!(
                    "I9: {upn} is released, yet a sign-in method registered during its lease is left"
                ));
            }
            if pool.spec.pool.disable_idle_users
                && user.password_set_count > 0
                && user.account_enabled
            {
                found.insert(format!(
                    "I9: {upn} is released from a pool that disables idle users, yet enabled"
                ));
            }
        }
    }
    Ok(found)
}

fn record_of(
    metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<ClaimRecord> {
    let value = metadata.annotations.as_ref()?.get(RECORD_ANNOTATION)?;
    ClaimRecord::from_annotation(value)
}

fn signed(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}

/// What one look at the cluster found.
#[derive(Default)]
struct Findings {
    /// Violations as read.
    sound: BTreeSet<String>,
    /// Violations only if a second look finds them again.
    to_confirm: BTreeSet<String>,
}
