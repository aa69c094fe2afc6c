//! Watches a namespace's leases and managed Secrets, and the operator's claims, and keeps what a
//! benchmark or an auditor needs afterwards: when each lease was first seen Active and when it went
//! away, every password its Secret ever held (a Secret is deleted at revocation, so a later look
//! would miss the passwords that must now be dead), and the last record of every claim with when
//! it was released (a released claim is deleted, and its record with it).
//!
//! The user and deadlines a lease's status shows are kept for the benchmark's figures only: a
//! tenant may write that status, so the auditor takes users and deadlines from the claims.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use entra_operator::api::{EntraLease, LeasePhase};
use entra_operator::controller::claim_record::{ClaimRecord, RECORD_ANNOTATION};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease as Claim;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::lab::Lab;

/// What the tracker knows of one lease, by name (runs never reuse a name).
#[derive(Clone, Debug, Default)]
pub struct LeaseTrack {
    pub uid: Option<String>,
    pub phase: Option<LeasePhase>,
    pub deleting: bool,
    pub first_seen: Option<Instant>,
    /// When a watch event first showed it Active.
    pub active_at: Option<Instant>,
    /// When the watch saw it deleted.
    pub gone_at: Option<Instant>,
    pub user_id: Option<String>,
    pub user_principal_name: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub max_expires_at: Option<Timestamp>,
    pub renew_count: u32,
    /// Every password its Secret held, in any version the watch delivered, by the credential
    /// generation it was written for (a continuous lease has one per rotation) and its user (an
    /// issue refused for one user goes on to another in the same generation), lower case.
    pub passwords: BTreeMap<(u32, String), BTreeSet<String>>,
}

impl LeaseTrack {
    /// The latest moment its credential may live: `expiresAt`, never past `maxExpiresAt`.
    pub fn deadline(&self) -> Option<Timestamp> {
        match (self.expires_at, self.max_expires_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// What the tracker knows of one claim (the operator's record of one credential), by the uid of
/// the lease it was made for.
#[derive(Clone, Debug)]
pub struct ClaimTrack {
    /// The claim's name (one per user).
    pub name: String,
    /// The last record the watch delivered.
    pub record: ClaimRecord,
    /// When the watch saw the claim deleted (its finalizer goes only after revocation).
    pub released_at: Option<Instant>,
}

impl ClaimTrack {
    /// The recorded deadline of the credential: `expiresAt`, never past `maxExpiresAt`.
    pub fn deadline(&self) -> Timestamp {
        self.record.expires_at().min(self.record.max_expires_at())
    }
}

#[derive(Clone, Default)]
pub struct Tracked {
    pub leases: HashMap<String, LeaseTrack>,
    /// Claims by the uid of the lease they were made for and the credential generation they
    /// record (a continuous lease holds one per credential).
    pub claims: HashMap<ClaimKey, ClaimTrack>,
    /// (username, password) -> the lease name and the credential generation, for every password
    /// a lease Secret ever held.
    pub passwords: HashMap<(String, String), (String, u32)>,
    /// The most leases Active (and not being deleted) at once.
    pub max_active: usize,
    active: HashSet<String>,
}

/// A claim's lease uid, credential generation and user principal name (lower case): an issue
/// refused for one user goes on to another in the same generation.
pub type ClaimKey = (String, u32, String);

impl Tracked {
    pub fn active_now(&self) -> usize {
        self.active.len()
    }

    /// The claim of the lease `uid`'s latest credential.
    pub fn latest_claim(&self, uid: &str) -> Option<&ClaimTrack> {
        self.claims
            .iter()
            .filter(|((lease, _, _), _)| lease == uid)
            .max_by_key(|((_, generation, _), track)| (*generation, track.released_at.is_none()))
            .map(|(_, track)| track)
    }
}

pub struct Tracker {
    state: Arc<Mutex<Tracked>>,
    changed: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl Tracker {
    /// Starts watching `lab`'s namespace; returns once both watches have listed.
    pub async fn start(lab: &Lab) -> Tracker {
        let state = Arc::new(Mutex::new(Tracked::default()));
        let changed = Arc::new(Notify::new());
        let (leases_listed, secrets_listed, claims_listed) = (
            Arc::new(Notify::new()),
            Arc::new(Notify::new()),
            Arc::new(Notify::new()),
        );
        let lease_task = tokio::spawn(watch_leases(
            lab.leases(),
            state.clone(),
            changed.clone(),
            leases_listed.clone(),
        ));
        let secret_task = tokio::spawn(watch_secrets(
            lab.secrets(),
            state.clone(),
            changed.clone(),
            secrets_listed.clone(),
        ));
        let claim_task = tokio::spawn(watch_claims(
            lab.claims(),
            state.clone(),
            changed.clone(),
            claims_listed.clone(),
        ));
        leases_listed.notified().await;
        secrets_listed.notified().await;
        claims_listed.notified().await;
        Tracker {
            state,
            changed,
            tasks: vec![lease_task, secret_task, claim_task],
        }
    }

    pub fn state(&self) -> MutexGuard<'_, Tracked> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of everything tracked so far.
    pub fn snapshot(&self) -> Tracked {
        self.state().clone()
    }

    pub fn lease(&self, name: &str) -> Option<LeaseTrack> {
        self.state().leases.get(name).cloned()
    }

    /// Waits until `probe` answers, re-asking on every watch event; `None` after `timeout`.
    pub async fn wait_for<T>(
        &self,
        timeout: Duration,
        mut probe: impl FnMut(&Tracked) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if let Some(answer) = probe(&self.state()) {
                return Some(answer);
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }

    pub async fn wait_active(&self, name: &str, timeout: Duration) -> Option<Instant> {
        self.wait_for(timeout, |t| t.leases.get(name)?.active_at)
            .await
    }

    pub async fn wait_gone(&self, name: &str, timeout: Duration) -> Option<Instant> {
        self.wait_for(timeout, |t| t.leases.get(name)?.gone_at)
            .await
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn lock(state: &Mutex<Tracked>) -> MutexGuard<'_, Tracked> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

async fn watch_leases(
    api: kube::Api<EntraLease>,
    state: Arc<Mutex<Tracked>>,
    changed: Arc<Notify>,
    listed: Arc<Notify>,
) {
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    // Names seen in the current (re)list: a lease missing from a relist went away unseen.
    let mut listing: Option<HashSet<String>> = None;
    while let Some(event) = events.next().await {
        let Ok(event) = event else { continue };
        let now = Instant::now();
        let mut tracked = lock(&state);
        match event {
            watcher::Event::Init => listing = Some(HashSet::new()),
            watcher::Event::InitApply(lease) => {
                if let Some(listing) = listing.as_mut() {
                    listing.insert(lease.metadata.name.clone().unwrap_or_default());
                }
                observe_lease(&mut tracked, &lease, now);
            }
            watcher::Event::InitDone => {
                let listed_names = listing.take().unwrap_or_default();
                let vanished: Vec<String> = tracked
                    .leases
                    .iter()
                    .filter(|(name, track)| {
                        track.gone_at.is_none() && !listed_names.contains(*name)
                    })
                    .map(|(name, _)| name.clone())
                    .collect();
                for name in vanished {
                    mark_gone(&mut tracked, &name, now);
                }
                listed.notify_one();
            }
            watcher::Event::Apply(lease) => observe_lease(&mut tracked, &lease, now),
            watcher::Event::Delete(lease) => {
                observe_lease(&mut tracked, &lease, now);
                mark_gone(
                    &mut tracked,
                    lease.metadata.name.as_deref().unwrap_or_default(),
                    now,
                );
            }
        }
        drop(tracked);
        changed.notify_waiters();
    }
}

fn observe_lease(tracked: &mut Tracked, lease: &EntraLease, now: Instant) {
    let name = lease.metadata.name.clone().unwrap_or_default();
    let track = tracked.leases.entry(name.clone()).or_default();
    track.uid = lease.metadata.uid.clone();
    track.first_seen.get_or_insert(now);
    track.deleting = lease.metadata.deletion_timestamp.is_some();
    if let Some(status) = &lease.status {
        track.phase = status.phase;
        if let Some(user) = &status.user {
            track.user_id = Some(user.id.to_ascii_lowercase());
            track.user_principal_name = Some(user.user_principal_name.clone());
        }
        if let Some(expires_at) = &status.expires_at {
            track.expires_at = Some(expires_at.0);
        }
        if let Some(max) = &status.max_expires_at {
            track.max_expires_at = Some(max.0);
        }
        track.renew_count = status.renew_count;
        if status.phase == Some(LeasePhase::Active) {
            track.active_at.get_or_insert(now);
        }
    }
    let active = track.phase == Some(LeasePhase::Active) && !track.deleting;
    if active {
        tracked.active.insert(name);
    } else {
        tracked.active.remove(&name);
    }
    tracked.max_active = tracked.max_active.max(tracked.active.len());
}

fn mark_gone(tracked: &mut Tracked, name: &str, now: Instant) {
    tracked.active.remove(name);
    if let Some(track) = tracked.leases.get_mut(name) {
        track.gone_at.get_or_insert(now);
    }
}

async fn watch_claims(
    api: kube::Api<Claim>,
    state: Arc<Mutex<Tracked>>,
    changed: Arc<Notify>,
    listed: Arc<Notify>,
) {
    let config = watcher::Config::default().labels("app.kubernetes.io/managed-by=entra-operator");
    let mut events = watcher(api, config).default_backoff().boxed();
    // The lease uid and generation of each claim in the current (re)list: a claim missing from a relist was
    // released unseen.
    let mut listing: Option<HashSet<ClaimKey>> = None;
    while let Some(event) = events.next().await {
        let Ok(event) = event else { continue };
        let now = Instant::now();
        let mut tracked = lock(&state);
        match event {
            watcher::Event::Init => listing = Some(HashSet::new()),
            watcher::Event::InitApply(claim) => {
                if let (Some(listing), Some(uid)) =
                    (listing.as_mut(), observe_claim(&mut tracked, &claim))
                {
                    listing.insert(uid);
                }
            }
            watcher::Event::InitDone => {
                let listed_keys = listing.take().unwrap_or_default();
                for (key, track) in tracked.claims.iter_mut() {
                    if track.released_at.is_none() && !listed_keys.contains(key) {
                        track.released_at = Some(now);
                    }
                }
                listed.notify_one();
            }
            watcher::Event::Apply(claim) => {
                observe_claim(&mut tracked, &claim);
            }
            watcher::Event::Delete(claim) => {
                if let Some(key) = observe_claim(&mut tracked, &claim)
                    && let Some(track) = tracked.claims.get_mut(&key)
                {
                    track.released_at.get_or_insert(now);
                }
            }
        }
        drop(tracked);
        changed.notify_waiters();
    }
}

/// Keeps the claim's record; returns the lease uid and generation it was made for.
fn observe_claim(tracked: &mut Tracked, claim: &Claim) -> Option<ClaimKey> {
    let record = claim
        .metadata
        .annotations
        .as_ref()?
        .get(RECORD_ANNOTATION)
        .and_then(|value| ClaimRecord::from_annotation(value))?;
    let key = (
        record.lease.uid.clone(),
        record.generation,
        record.user.user_principal_name.to_ascii_lowercase(),
    );
    let name = claim.metadata.name.clone().unwrap_or_default();
    match tracked.claims.get_mut(&key) {
        Some(track) => track.record = record,
        None => {
            tracked.claims.insert(
                key.clone(),
                ClaimTrack {
                    name,
                    record,
                    released_at: None,
                },
            );
        }
    }
    Some(key)
}

async fn watch_secrets(
    api: kube::Api<Secret>,
    state: Arc<Mutex<Tracked>>,
    changed: Arc<Notify>,
    listed: Arc<Notify>,
) {
    let config = watcher::Config::default().labels("app.kubernetes.io/managed-by=entra-operator");
    let mut events = watcher(api, config).default_backoff().boxed();
    while let Some(event) = events.next().await {
        let Ok(event) = event else { continue };
        match event {
            watcher::Event::InitApply(secret)
            | watcher::Event::Apply(secret)
            | watcher::Event::Delete(secret) => observe_secret(&mut lock(&state), &secret),
            watcher::Event::InitDone => listed.notify_one(),
            watcher::Event::Init => {}
        }
        changed.notify_waiters();
    }
}

fn observe_secret(tracked: &mut Tracked, secret: &Secret) {
    let Some(lease) = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get("kms.hanzo.ai/lease"))
    else {
        return;
    };
    let generation = generation_of(secret);
    let pairs = [
        credentials(secret).map(|pair| (pair, generation)),
        previous_credentials(secret).map(|pair| (pair, generation.saturating_sub(1))),
        pending_credentials(secret).map(|pair| (pair, generation + 1)),
    ];
    for ((username, password), generation) in pairs.into_iter().flatten() {
        tracked.passwords.insert(
            (username.clone(), password.clone()),
            (lease.clone(), generation),
        );
        tracked
            .leases
            .entry(lease.clone())
            .or_default()
            .passwords
            .entry((generation, username.to_ascii_lowercase()))
            .or_default()
            .insert(password);
    }
}

/// The credential generation a lease Secret was written for (1 before generations existed).
pub fn generation_of(secret: &Secret) -> u32 {
    secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kms.hanzo.ai/credential-generation"))
        .and_then(|g| g.parse().ok())
        .unwrap_or(1)
}

/// A continuous lease's previous username and password in its Secret, while it has one.
pub fn previous_credentials(secret: &Secret) -> Option<(String, String)> {
    pair(secret, "previousUsername", "previousPassword")
}

/// A rotation's next username and password in its Secret, while Entra is asked to take it.
pub fn pending_credentials(secret: &Secret) -> Option<(String, String)> {
    pair(secret, "pendingUsername", "pendingPassword")
}

/// The username and Temporary Access Pass in a pass lease's Secret.
pub fn access_pass(secret: &Secret) -> Option<(String, String)> {
    pair(secret, "username", "temporaryAccessPass")
}

/// The username and password in a lease Secret.
pub fn credentials(secret: &Secret) -> Option<(String, String)> {
    pair(secret, "username", "password")
}

fn pair(secret: &Secret, username: &str, password: &str) -> Option<(String, String)> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| {
        data.get(key)
            .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned())
    };
    Some((text(username)?, text(password)?))
}
