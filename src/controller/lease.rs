//! The lease reconciler: fetches the facts, asks [`decide`], and carries the decision out.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};

use super::Error;
use super::app_credential::app_credentials;
use super::claim_record::{AppIdentity, ClaimRecord, LeaseIdentity, PoolIdentity};
use super::claims::{ClaimOutcome, HeldClaim, LeaseClaims, is_not_found};
use super::context::Context;
use super::credential::{
    KeptCredential, annotate_expiry, delete_controlled_secret, end_credential,
    set_password_via_secret,
};
use super::kept_credential::PoolCredential;
use super::lease_decision::{
    Decision, Ending, IssueFailure, IssueFailureKind, LeaseFacts, NEXT_USER_AFTER, SecretState,
    Then, after_issue_failure, credentials_secret_name, decide, later, until_then,
};
use super::lease_rotation::{Previous, Rotation};
use super::lease_status::LeaseStatusWriter;
use super::pool::Pool;
use super::reasons::Reason;
use super::revocation::cleanup;
use super::rollout::restart_and_observe;
use super::rotation_decision::{Rollouts, retire_at};
use super::status::whole_seconds;
use crate::api::{EntraLease, LeasePhase, LeasedUser, PoolKind};
use crate::graph::{AppCredentials, ClientCredential};
use crate::metrics::{CappedLabels, metrics};
use crate::secret::{Held, format_time, held_as, secret_state, stored_password_of};
use crate::sensitive::SecretString;
use k8s_openapi::api::core::v1::Secret;

/// Held by every lease until its credential is revoked (invariant I3).
pub const FINALIZER: &str = "kms.hanzo.ai/revoke";

/// Reconciles a lease that is not being deleted; a deleted one is the revocation controller's.
pub async fn reconcile_live(lease: Arc<EntraLease>, ctx: Arc<Context>) -> Result<Action, Error> {
    if lease.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    reconcile(lease, ctx).await
}

pub async fn reconcile(lease: Arc<EntraLease>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _one_actor = ctx.lease_locks.lock(&lease.uid().unwrap_or_default()).await;
    let namespace = lease.namespace().unwrap_or_default();
    let api: Api<EntraLease> = Api::namespaced(ctx.client.clone(), &namespace);
    // Deleted, our finalizer stripped, and another finalizer keeping the object: kube's helper
    // would leave it alone, but the lease is ending all the same.
    if is_ending_without_our_finalizer(&lease) {
        return cleanup(&lease, &api, &ctx).await;
    }
    finalizer(&api, FINALIZER, lease, |event| async {
        match event {
            Finalizer::Apply(lease) => apply(&lease, &api, &ctx).await,
            Finalizer::Cleanup(lease) => cleanup(&lease, &api, &ctx).await,
        }
    })
    .await
    .or_else(gone_is_done)
}

/// True for a deleted lease whose revocation finalizer someone else removed.
pub fn is_ending_without_our_finalizer(lease: &EntraLease) -> bool {
    lease.metadata.deletion_timestamp.is_some()
        && !lease.finalizers().iter().any(|f| f == FINALIZER)
}

/// An object that vanished while its finalizer was being removed was finished by an earlier run.
pub(super) fn gone_is_done(error: kube::runtime::finalizer::Error<Error>) -> Result<Action, Error> {
    match error {
        kube::runtime::finalizer::Error::RemoveFinalizer(error) if is_not_found(&error) => {
            Ok(Action::await_change())
        }
        error => Err(Error::Finalizer(Box::new(error))),
    }
}

/// How long before a certificate's end its leases end: revocation needs a certificate Entra still
/// takes, and a renewed one may come late.
const CERTIFICATE_MARGIN: SignedDuration = SignedDuration::from_hours(1);

/// The latest moment a credential issued with `credential` may live, if it ends (a certificate).
fn credential_deadline(credential: &PoolCredential) -> Option<Timestamp> {
    match credential.app.credential() {
        ClientCredential::Certificate(certificate) => {
            Some(certificate.not_after() - CERTIFICATE_MARGIN)
        }
        _ => None,
    }
}

/// Whether the lease's pool serves its namespace. A cluster pool that is gone serves nobody (its
/// leases run to their end unrenewed); a namespaced pool that is gone leaves the lease waiting.
fn served(ctx: &Context, lease: &EntraLease, pool: Option<&Pool>) -> bool {
    match pool {
        Some(pool) => ctx.serves(pool, lease),
        None => lease.spec.dynamic_secret_ref.kind == PoolKind::EntraDynamicSecret,
    }
}

/// How long a lease whose issue Entra refused waits before trying again, unless its spec changes.
const RETRY_REFUSED_ISSUE: Duration = Duration::from_secs(300);

async fn apply(lease: &EntraLease, api: &Api<EntraLease>, ctx: &Context) -> Result<Action, Error> {
    if let Some(wait) = refused_issue_backoff(lease, ctx) {
        return Ok(Action::requeue(wait));
    }
    let Some(uid) = lease.uid() else {
        return Ok(Action::await_change());
    };
    let pool = ctx.pool_of(lease);
    // The claim from the cache when the lease's own status points at it; a status without that
    // hint (a new lease, or one someone rewrote) costs one live read.
    let (mut claims, mut live) = match ctx.cached_claims_of(lease, &uid) {
        Some(claims) => (claims, false),
        None => (ctx.claims.held_by(&uid).await?, true),
    };
    loop {
        // More than two claims only by a bug or by hand: the extra ones end at once.
        if live {
            for older in std::mem::take(&mut claims.older) {
                end_credential(ctx, &older).await?;
            }
        }
        let record = claims.current.as_ref().and_then(|c| c.record.as_deref());
        let previous = claims.previous.as_ref().and_then(|c| c.record.as_deref());
        // Only a lease without a credential, or a continuous one that may be due to rotate,
        // chooses among the pool's users: others (every lease after a restart) skip copying the
        // resolution.
        let chooses = record.is_none() || (lease.spec.rotates() && previous.is_none());
        let resolved = match (chooses, pool.as_ref()) {
            (true, Some(pool)) => ctx.resolution_of(pool),
            _ => None,
        };
        let namespace = lease.namespace().unwrap_or_default();
        let secret_name = credentials_secret_name(lease, pool.as_ref(), record);
        let secret = secret_state(lease, ctx.secret(&namespace, &secret_name).await?.as_ref());
        // While a previous credential lives, the restart targets are restarted (once per
        // credential) and their rollouts read: their completion ends it.
        let rollouts = match (record, previous) {
            (Some(record), Some(_)) if record.issued => {
                Some(restart_and_observe(ctx, lease, &record.secret_name, record.generation).await?)
            }
            _ => None,
        };
        let now = Timestamp::now();
        let facts = LeaseFacts {
            lease,
            pool: pool.as_ref(),
            served: served(ctx, lease, pool.as_ref()),
            secret,
            resolved: resolved.as_deref(),
            record,
            previous,
            rollouts: rollouts
                .as_ref()
                .map_or(Rollouts::NotTracked, |report| report.progress),
            secret_types: &ctx.lease_secret_types,
            now,
        };
        let decision = decide(&facts);
        // Graph writes, the expiry and an ending are decided again on a live read of the claim:
        // a cache older than this operator's last write would re-issue, expire over a renewal,
        // or end a user another lease holds by now.
        if !live && decision.needs_live_claim(record.is_some()) {
            claims = ctx.claims.held_by(&uid).await?;
            live = true;
            continue;
        }
        tracing::debug!(lease = %lease.name_any(), ?decision, "decided");
        let look_again = decision.look_again_after(&facts);
        let shell = Shell {
            lease,
            ctx,
            status: LeaseStatusWriter::new(api, lease, now),
            now,
            rollout_refusal: rollouts
                .as_ref()
                .filter(|report| !report.refused.is_empty())
                .map(|report| report.refused.join("; ")),
        };
        if let Some(report) = &rollouts {
            shell.tell_rollouts(report).await;
        }
        let action = shell
            .carry_out(decision, claims, pool.as_ref(), &secret_name, secret)
            .await?;
        return Ok(match look_again {
            Some(after) if action == Action::await_change() => Action::requeue(after),
            _ => action,
        });
    }
}

/// The time left before a lease whose issue Entra refused may try again, if any: none once its
/// spec changed.
fn refused_issue_backoff(lease: &EntraLease, ctx: &Context) -> Option<Duration> {
    ctx.refused_issues
        .wait_left(&lease.uid()?, lease.metadata.generation)
}

/// The pool's credential, ready for an issue.
pub(super) struct Prepared {
    pub app: AppCredentials,
    pub identity: AppIdentity,
    /// The latest a credential issued with it may live (a certificate's end).
    pub latest: Option<Timestamp>,
}

/// What a new claim records beyond the user.
pub(super) struct IssuePlan<'a> {
    pub secret_name: &'a str,
    pub ttl: Duration,
    pub max_ttl: Duration,
    pub generation: u32,
    pub last_rotate_request: Option<String>,
}

/// Carries decisions out for one lease.
pub(super) struct Shell<'a> {
    pub(super) lease: &'a EntraLease,
    pub(super) ctx: &'a Context,
    pub(super) status: LeaseStatusWriter<'a>,
    pub(super) now: Timestamp,
    /// Why some restart target will not complete its rollout, while a previous credential waits.
    pub(super) rollout_refusal: Option<String>,
}

impl Shell<'_> {
    async fn carry_out(
        &self,
        decision: Decision,
        claims: LeaseClaims,
        pool: Option<&Pool>,
        secret_name: &str,
        secret: SecretState,
    ) -> Result<Action, Error> {
        let record = claims.current.as_ref().and_then(|c| c.record.clone());
        let previous = claims.previous.clone();
        let previous_record = previous.as_ref().and_then(|c| c.record.clone());
        let kept = previous_record.as_deref();
        if let Decision::Refuse { reason, message } = decision {
            return self.refuse(&claims, reason, message).await;
        }
        if decision == Decision::EndCredentials {
            return self.end_credentials(&claims).await;
        }
        let claim = claims.current;
        match (decision, claim, record) {
            (Decision::Expire, _, record) => self.expire(record.as_deref()).await,
            (
                Decision::Rotate {
                    candidates,
                    ttl,
                    max_ttl,
                    request,
                },
                Some(claim),
                Some(record),
            ) => match pool {
                Some(pool) => {
                    let rotation = Rotation {
                        candidates,
                        ttl,
                        max_ttl,
                        request,
                    };
                    self.rotate(pool, claim, &record, rotation).await
                }
                None => Ok(Action::await_change()),
            },
            (Decision::RotationWaiting { message }, Some(_), Some(record)) => {
                self.rotation_waiting(pool, &record, message).await
            }
            (Decision::Retire, Some(_), Some(record)) => match previous {
                Some(previous) => self.retire(previous, &record).await,
                None => Err(Error::Stale("the lease's claims")),
            },
            (Decision::Wait { reason, message }, ..) => self.wait(reason, message).await,
            (
                Decision::Issue {
                    candidates,
                    ttl,
                    max_ttl,
                },
                _,
                _,
            ) => match pool {
                Some(pool) => {
                    self.issue(pool, secret_name, candidates, ttl, max_ttl)
                        .await
                }
                None => Ok(Action::await_change()),
            },
            (Decision::Resume, Some(claim), Some(record)) => {
                self.resume(claim, &record, previous, secret).await
            }
            (Decision::Restore { cause }, Some(claim), Some(record)) => {
                self.restore(claim, &record, previous, cause).await
            }
            (
                Decision::Renew {
                    expires_at,
                    capped,
                    request,
                },
                Some(claim),
                Some(record),
            ) => {
                self.renew(&claim, &record, kept, expires_at, capped, request)
                    .await
            }
            (Decision::RenewDeclined { request, message }, Some(claim), Some(record)) => {
                self.decline_renewal(&claim, &record, kept, request, message)
                    .await
            }
            (Decision::Hold { .. }, Some(claim), Some(record)) => {
                let refused = Reason::RolloutTargetRefused;
                match &self.rollout_refusal {
                    Some(message) if !self.status.already(refused) => {
                        let message = message.clone();
                        self.status.active(&record, kept, refused, message).await?;
                    }
                    _ => self.status.project(self.ctx, &claim, kept).await?,
                }
                Ok(Action::await_change())
            }
            // Every other pairing means the claim changed under this reconcile: look again.
            _ => Err(Error::Stale("the lease's claim")),
        }
    }

    async fn expire(&self, record: Option<&ClaimRecord>) -> Result<Action, Error> {
        // One event tells the whole ending (Expired, from the finalizer): events are API writes.
        let user = record.map_or("(ended already)", |r| r.user.user_principal_name.as_str());
        tracing::info!(lease = %self.lease.name_any(), user, "expired; revoking");
        // The delete is conditional on the lease being the one judged: an edit since (a renewal
        // request) is judged first.
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: self.lease.uid(),
                resource_version: self.lease.resource_version(),
            }),
            ..DeleteParams::default()
        };
        match self
            .status
            .api()
            .delete(&self.lease.name_any(), &params)
            .await
        {
            Ok(_) => Ok(Action::await_change()),
            Err(error) if is_not_found(&error) => Ok(Action::await_change()),
            Err(error) => Err(Error::stale_on_conflict("the lease")(error)),
        }
    }

    pub(super) async fn refuse(
        &self,
        claims: &LeaseClaims,
        reason: Reason,
        message: String,
    ) -> Result<Action, Error> {
        for claim in claims.all_oldest_first() {
            end_credential(self.ctx, claim).await?;
        }
        if !self.status.already(reason) {
            self.ctx
                .publish(
                    self.lease,
                    EventType::Warning,
                    reason,
                    "Validate",
                    message.clone(),
                )
                .await;
        }
        self.status
            .without_credential(LeasePhase::Failed, false, reason, message)
            .await?;
        Ok(Action::await_change())
    }

    async fn wait(&self, reason: Reason, message: String) -> Result<Action, Error> {
        if !self.status.already(reason) {
            self.ctx
                .publish(
                    self.lease,
                    EventType::Normal,
                    reason,
                    "Wait",
                    message.clone(),
                )
                .await;
        }
        self.status
            .without_credential(LeasePhase::Pending, false, reason, message)
            .await?;
        Ok(Action::await_change())
    }

    async fn issue(
        &self,
        pool: &Pool,
        secret_name: &str,
        candidates: Vec<LeasedUser>,
        ttl: Duration,
        max_ttl: Duration,
    ) -> Result<Action, Error> {
        if let Some(message) = self.not_served_now().await? {
            return self
                .refuse(
                    &LeaseClaims::default(),
                    Reason::NamespaceNotSelected,
                    message,
                )
                .await;
        }
        let uid = self.lease.uid().unwrap_or_default();
        if self.ctx.rotation_goes_first(&pool.key(), &uid) {
            let message = format!(
                "a continuous lease of {pool} waits for a user to rotate to and goes first; \
                 waiting for another"
            );
            return self.wait(Reason::WaitingForUser, message).await;
        }
        let prepared = match self.prepare_issue(pool).await {
            Ok(Some(prepared)) => prepared,
            Ok(None) => {
                let message = "the pool's certificate ends within the hour: nothing is issued \
                               that its revocation could not outlive; renew the certificate"
                    .to_owned();
                return self
                    .refuse(&LeaseClaims::default(), Reason::CredentialEndsSoon, message)
                    .await;
            }
            Err(error @ Error::Graph(_)) => return self.issue_refused(error).await,
            Err(error) => return Err(error),
        };
        // After a continuous lease's credential ended, its next one counts on (the status is
        // only a hint for a counter: what it restarts is the lease's own workloads).
        let generation = self
            .lease
            .status
            .as_ref()
            .and_then(|s| s.credential_generation)
            .unwrap_or(0)
            .saturating_add(1);
        let plan = IssuePlan {
            secret_name,
            ttl,
            max_ttl,
            generation,
            last_rotate_request: None,
        };
        let Some((claim, record)) = self.claim_first(pool, &prepared, candidates, &plan).await?
        else {
            let message = match &self.lease.spec.user {
                Some(user) => format!("user {user} is leased by another lease; waiting for it"),
                None => format!("every user of {pool} is leased; waiting for one"),
            };
            return self.wait(Reason::WaitingForUser, message).await;
        };
        // The claim records which user this lease holds: a crash from here on resumes with it.
        self.set_and_confirm(
            claim,
            &record,
            &prepared.app,
            None,
            false,
            Reason::Issued,
            None,
        )
        .await
    }

    /// Gets the pool's credential ready for an issue: it must get a token before it is copied
    /// for revocation. `None` when its certificate ends too soon to issue anything.
    pub(super) async fn prepare_issue(&self, pool: &Pool) -> Result<Option<Prepared>, Error> {
        let credential = app_credentials(self.ctx, pool).await?;
        let app = credential.app.clone();
        self.ctx.graph.check_credentials(&app).await?;
        let identity = self.ctx.copies.keep(pool.spec().cloud, &credential).await?;
        // No credential outlives what can revoke it: a certificate's end caps the deadlines.
        let latest = credential_deadline(&credential);
        if latest.is_some_and(|latest| latest <= whole_seconds(self.now)) {
            return Ok(None);
        }
        Ok(Some(Prepared {
            app,
            identity,
            latest,
        }))
    }

    /// Claims the first free user of `candidates` for this lease, with the record `plan`
    /// describes; `None` when every one is taken.
    pub(super) async fn claim_first(
        &self,
        pool: &Pool,
        prepared: &Prepared,
        candidates: Vec<LeasedUser>,
        plan: &IssuePlan<'_>,
    ) -> Result<Option<(HeldClaim, ClaimRecord)>, Error> {
        let spec = pool.spec();
        let candidates = self.ctx.likely_free_first(candidates, self.lease);
        let issued_at = whole_seconds(self.now);
        let capped = |deadline: Timestamp| {
            prepared
                .latest
                .map_or(deadline, |latest| deadline.min(latest))
        };
        for user in candidates {
            let record = ClaimRecord {
                lease: LeaseIdentity {
                    namespace: self.lease.namespace().unwrap_or_default(),
                    name: self.lease.name_any(),
                    uid: self.lease.uid().unwrap_or_default(),
                },
                pool: PoolIdentity {
                    kind: pool.kind().as_str().into(),
                    namespace: pool.metadata().namespace.clone().unwrap_or_default(),
                    name: pool.name_any(),
                    uid: pool.metadata().uid.clone().unwrap_or_default(),
                },
                user,
                app: prepared.identity.clone(),
                revoke_sign_in_sessions: spec.revoke_sign_in_sessions,
                password_length: spec.password_length,
                secret_name: plan.secret_name.to_owned(),
                issued: false,
                issued_at: Time(issued_at),
                expires_at: Time(capped(later(issued_at, plan.ttl))),
                max_expires_at: Time(capped(later(issued_at, plan.max_ttl))),
                renew_count: 0,
                last_renewed_at: None,
                last_renew_request: None,
                generation: plan.generation,
                last_rotate_request: plan.last_rotate_request.clone(),
            };
            if let ClaimOutcome::Claimed(claim) = self.ctx.claims.claim(&record).await? {
                return Ok(Some((claim, record)));
            }
        }
        Ok(None)
    }

    /// An issue interrupted after its claim: a Secret left by it holds the password that may
    /// already be set, so that same one is set again and no working password is ever lost (I2).
    /// A rotation interrupted so keeps the previous credential beside it, if the Secret still
    /// holds that; if not, the previous credential ends first (nobody could use it).
    async fn resume(
        &self,
        claim: HeldClaim,
        record: &ClaimRecord,
        previous: Option<HeldClaim>,
        secret: SecretState,
    ) -> Result<Action, Error> {
        if let Some(message) = self.not_served_now().await? {
            let held = LeaseClaims {
                current: Some(claim),
                previous,
                older: Vec::new(),
            };
            return self
                .refuse(&held, Reason::NamespaceNotSelected, message)
                .await;
        }
        let Some(app) = self.setting_credentials(record).await? else {
            // Its pool or app changed under the interrupted issue: that credential ends, and the
            // lease is issued again as its pool is now.
            end_credential(self.ctx, &claim).await?;
            return Ok(Action::requeue(NEXT_USER_AFTER));
        };
        // An edited Secret's password is not necessarily the one that may be set: a fresh one
        // replaces whichever it is.
        let stored = match secret {
            SecretState::Intact => self.ctx.own_secret(self.lease, &record.secret_name).await?,
            SecretState::Tampered | SecretState::Missing | SecretState::Foreign => None,
        };
        // The password of this claim's user, as current or (a rotation) still pending.
        let resumed = stored.as_ref().and_then(|s| {
            let upn = &record.user.user_principal_name;
            matches!(held_as(s, upn), Some(Held::Current | Held::Pending))
                .then(|| stored_password_of(s, upn))
                .flatten()
        });
        let kept = match previous {
            Some(previous) => self.keep_previous(previous, stored.as_ref()).await?,
            None => None,
        };
        // Whatever the Secret holds now, an earlier attempt may have set a password.
        let may_be_set = true;
        self.set_and_confirm(
            claim,
            record,
            &app,
            resumed,
            may_be_set,
            Reason::Issued,
            kept.as_ref(),
        )
        .await
    }

    /// The previous credential with its password from the Secret, to be kept beside the one
    /// being set; ended now when the Secret does not hold it.
    pub(super) async fn keep_previous(
        &self,
        previous: HeldClaim,
        stored: Option<&Secret>,
    ) -> Result<Option<Previous>, Error> {
        let Some(record) = previous.record.clone() else {
            end_credential(self.ctx, &previous).await?;
            return Ok(None);
        };
        let password = stored.and_then(|s| stored_password_of(s, &record.user.user_principal_name));
        match password {
            Some(password) => Ok(Some(Previous {
                claim: previous,
                record,
                password,
            })),
            None => {
                end_credential(self.ctx, &previous).await?;
                Ok(None)
            }
        }
    }

    /// Sets `password` (a fresh one when `None`; Secret first), then records in the claim that
    /// Entra confirmed it. `may_be_set`: a password of this claim may already work (a resumed
    /// attempt, or the credential a restore replaces), so a failure for good ends it.
    /// `previous`: a continuous lease's previous credential, kept in the Secret beside it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn set_and_confirm(
        &self,
        claim: HeldClaim,
        record: &ClaimRecord,
        app: &AppCredentials,
        password: Option<SecretString>,
        may_be_set: bool,
        outcome: Reason,
        previous: Option<&Previous>,
    ) -> Result<Action, Error> {
        let kept = previous.map(|p| KeptCredential {
            record: &p.record,
            password: &p.password,
        });
        if let Err(error) =
            set_password_via_secret(self.ctx, self.lease, app, record, password, kept.as_ref())
                .await
        {
            if let (Some(previous), false) = (previous, may_be_set) {
                return self.rotation_failed(claim, record, previous, error).await;
            }
            return self.issue_failed(claim, record, may_be_set, error).await;
        }
        self.ctx.refused_issues.forget(&record.lease.uid);
        let mut confirmed = record.clone();
        confirmed.issued = true;
        self.ctx
            .claims
            .update_record(&claim, &confirmed)
            .await
            .map_err(Error::stale_on_conflict("the claim"))?;
        let previous = match previous {
            Some(previous) => Some(self.shorten_previous(previous, &confirmed).await?),
            None => None,
        };
        let expires_at = confirmed.expires_at();
        let outcome = if previous.is_some() && outcome == Reason::Issued {
            Reason::Rotated
        } else {
            outcome
        };
        let message = match &previous {
            Some(previous) => format!(
                "credentials for {} are in Secret {} until {}; the previous ones, for {}, stay \
                 under previousUsername and previousPassword until {} at the latest",
                confirmed.user.user_principal_name,
                confirmed.secret_name,
                format_time(expires_at),
                previous.user.user_principal_name,
                format_time(retire_at(self.lease, &confirmed, previous)),
            ),
            None => format!(
                "credentials for {} are in Secret {} until {}",
                confirmed.user.user_principal_name,
                confirmed.secret_name,
                format_time(expires_at)
            ),
        };
        self.status
            .active(&confirmed, previous.as_ref(), outcome, message.clone())
            .await?;
        let reason = outcome;
        tracing::info!(
            lease = %self.lease.name_any(),
            namespace = %confirmed.lease.namespace,
            user = %confirmed.user.user_principal_name,
            pool = %confirmed.pool.name,
            generation = confirmed.generation,
            issued_at = %confirmed.issued_at.0,
            expires_at = %expires_at,
            max_expires_at = %confirmed.max_expires_at.0,
            %reason,
            "issued"
        );
        metrics().issues.inc();
        if confirmed.generation == 1
            && reason == Reason::Issued
            && let Some(created) = &self.lease.metadata.creation_timestamp
        {
            let waited = self.now.duration_since(created.0).as_secs_f64();
            metrics().time_to_credential.observe(waited.max(0.0));
        }
        self.ctx
            .publish(self.lease, EventType::Normal, reason, "Issue", message)
            .await;
        if previous.is_some() {
            metrics().rotations.inc();
            self.ctx.rotation_done(&confirmed.lease.uid);
        }
        // The Secret changed under running consumers: restart them (once per credential).
        if confirmed.generation > 1 && !self.lease.spec.rollout_restart_targets.is_empty() {
            let restarted = restart_and_observe(
                self.ctx,
                self.lease,
                &confirmed.secret_name,
                confirmed.generation,
            )
            .await;
            match restarted {
                Ok(report) => self.tell_rollouts(&report).await,
                Err(error) => {
                    tracing::warn!(lease = %self.lease.name_any(), %error, "restarting the rollout targets failed; retried while the previous credential lives");
                }
            }
        }
        let wake_at = match &previous {
            Some(previous) => expires_at.min(retire_at(self.lease, &confirmed, previous)),
            None => expires_at,
        };
        Ok(Action::requeue(until_then(wake_at, self.now)))
    }

    /// A failure while setting the password. Transient failures retry with the claim kept (the
    /// next attempt resumes). A permanent one after a resumed attempt keeps the claim and ends the
    /// credential, since an earlier attempt's password may have been set (a lost answer); a
    /// permanent one on a first attempt means Entra never took the password: the user is freed.
    async fn issue_failed(
        &self,
        claim: HeldClaim,
        record: &ClaimRecord,
        resumed: bool,
        error: Error,
    ) -> Result<Action, Error> {
        let facts = IssueFailure {
            kind: IssueFailureKind::of(&error),
            resumed,
            named_user: self.lease.spec.user.is_some(),
        };
        let steps = after_issue_failure(&facts);
        let Some(ending) = steps.ending else {
            return Err(error);
        };
        match ending {
            Ending::EndCredential => {
                let live = self.ctx.claims.get(&record.user.id).await?;
                if let Some(live) = live.filter(|c| c.is_held_by(Some(&record.lease.uid))) {
                    end_credential(self.ctx, &live).await?;
                }
            }
            Ending::Release => {
                let lease = &record.lease;
                delete_controlled_secret(
                    self.ctx,
                    &lease.namespace,
                    &record.secret_name,
                    &lease.uid,
                )
                .await?;
                self.ctx.claims.release(&claim).await?;
            }
        }
        let user = &record.user;
        if facts.kind == IssueFailureKind::UserChangedInEntra
            && let Some(pool) = self.ctx.pool_of(self.lease)
        {
            // Changed in Entra since the pool resolved it: resolve the pool again (the release
            // above wakes it) so that its status shows why.
            self.ctx.forget_resolution(&pool);
        }
        match steps.then {
            Then::SetAsideAndTryAnother(after) => {
                self.ctx.forbid(&user.id);
                let message = if facts.kind == IssueFailureKind::Refused {
                    format!(
                        "Entra refused to reset {} (a protected admin, or the app lacks the role); \
                         trying another pool user",
                        user.user_principal_name
                    )
                } else {
                    format!(
                        "{} cannot be leased any more ({error}); trying another pool user",
                        user.user_principal_name
                    )
                };
                self.ctx
                    .publish(
                        self.lease,
                        EventType::Warning,
                        error.reason(),
                        "Issue",
                        message,
                    )
                    .await;
                Ok(Action::requeue(after))
            }
            Then::Fail => self.issue_refused(error).await,
        }
    }

    /// Entra refused the issue for a reason the lease cannot fix: Failed, retried later.
    async fn issue_refused(&self, error: Error) -> Result<Action, Error> {
        if IssueFailureKind::of(&error) == IssueFailureKind::Transient {
            return Err(error);
        }
        let message = error.to_string();
        self.ctx
            .publish(
                self.lease,
                EventType::Warning,
                error.reason(),
                "Issue",
                message.clone(),
            )
            .await;
        self.status
            .without_credential(LeasePhase::Failed, false, error.reason(), message)
            .await?;
        // Permissions and roles can be fixed in Entra without any change here: try again later.
        let retry_at = std::time::Instant::now() + RETRY_REFUSED_ISSUE;
        let uid = self.lease.uid().unwrap_or_default();
        self.ctx
            .refused_issues
            .refused(uid, self.lease.metadata.generation, retry_at);
        Ok(Action::requeue(RETRY_REFUSED_ISSUE))
    }

    /// The active lease's Secret was deleted or edited: a fresh password (which also ends the old
    /// one) goes into a restored Secret, set with the app identity recorded at issue. A previous
    /// credential of a continuous lease ends first: the Secret no longer reliably holds it.
    async fn restore(
        &self,
        claim: HeldClaim,
        record: &ClaimRecord,
        previous: Option<HeldClaim>,
        cause: SecretState,
    ) -> Result<Action, Error> {
        // No fresh password for a namespace the pool stopped serving: the credential ends.
        if self.not_served_now().await?.is_some() {
            return self.expire(Some(record)).await;
        }
        let secret_name = &record.secret_name;
        let what = if cause == SecretState::Missing {
            "deleted"
        } else {
            "edited"
        };
        self.ctx
            .publish(
                self.lease,
                EventType::Warning,
                Reason::CredentialRestored,
                "Restore",
                format!("Secret {secret_name} was {what}; issuing a fresh password"),
            )
            .await;
        let Some(app) = self.setting_credentials(record).await? else {
            // Its pool or app changed since the issue: no fresh password from what issued it.
            return self.expire(Some(record)).await;
        };
        if let Some(previous) = previous {
            end_credential(self.ctx, &previous).await?;
        }
        // Unconfirmed until Entra takes the fresh password: a crash or failure in between
        // resumes it, and never leaves a Secret whose password was not set. A fresh password is
        // a new credential generation (consumers restart for it).
        let mut unconfirmed = record.clone();
        unconfirmed.issued = false;
        unconfirmed.generation = record.generation.saturating_add(1);
        let claim = self
            .ctx
            .claims
            .update_record(&claim, &unconfirmed)
            .await
            .map_err(Error::stale_on_conflict("the claim"))?;
        self.set_and_confirm(
            claim,
            &unconfirmed,
            &app,
            None,
            true,
            Reason::CredentialRestored,
            None,
        )
        .await
    }

    async fn renew(
        &self,
        claim: &HeldClaim,
        record: &ClaimRecord,
        previous: Option<&ClaimRecord>,
        expires_at: Timestamp,
        capped: bool,
        request: Option<String>,
    ) -> Result<Action, Error> {
        let mut renewed = record.clone();
        let moved = renewed.expires_at() != expires_at;
        if moved {
            renewed.renew_count += 1;
            renewed.last_renewed_at = Some(Time(whole_seconds(self.now)));
            renewed.expires_at = Time(expires_at);
        }
        if request.is_some() {
            renewed.last_renew_request = request;
        }
        // The claim first: it is the record, and its precondition stops a renewal judged on a
        // stale copy from being applied twice.
        self.ctx
            .claims
            .update_record(claim, &renewed)
            .await
            .map_err(Error::stale_on_conflict("the claim"))?;
        if moved {
            annotate_expiry(self.ctx, &renewed, expires_at).await?;
        }
        let reason = if capped {
            Reason::RenewalCapped
        } else {
            Reason::Renewed
        };
        let message = if capped {
            format!(
                "renewed to {}, the lease's maxTTL; it cannot be renewed further",
                format_time(expires_at)
            )
        } else {
            format!("renewed until {}", format_time(expires_at))
        };
        self.status
            .active(&renewed, previous, reason, message.clone())
            .await?;
        tracing::info!(lease = %self.lease.name_any(), %reason, expires_at = %format_time(expires_at), "renewed");
        let capped_label = CappedLabels {
            capped: capped.to_string(),
        };
        metrics().renewals.get_or_create(&capped_label).inc();
        self.ctx
            .publish(self.lease, EventType::Normal, reason, "Renew", message)
            .await;
        let wake_at = previous.map_or(expires_at, |previous| {
            expires_at.min(retire_at(self.lease, &renewed, previous))
        });
        Ok(Action::requeue(until_then(wake_at, self.now)))
    }

    /// The app credentials a password of `record` is set with: its pool's own, read as an issue
    /// reads them, while the lease still names that pool and the pool the app it was issued
    /// with. `None` otherwise. The operator's copies only end credentials: a copy kept for one
    /// pool never sets a password for another pool sharing its app.
    async fn setting_credentials(
        &self,
        record: &ClaimRecord,
    ) -> Result<Option<AppCredentials>, Error> {
        let Some(pool) = self
            .ctx
            .pool_of(self.lease)
            .filter(|pool| pool.metadata().uid.as_deref() == Some(record.pool.uid.as_str()))
        else {
            return Ok(None);
        };
        let app = app_credentials(self.ctx, &pool).await?.app;
        let issued_with = &record.app;
        let same = pool.spec().cloud == issued_with.cloud
            && app.tenant().eq_ignore_ascii_case(&issued_with.tenant_id)
            && app
                .client_id()
                .eq_ignore_ascii_case(&issued_with.application_id);
        Ok(same.then_some(app))
    }

    /// Why the lease's cluster pool does not serve its namespace, judged on the namespace's
    /// labels read now; `None` when it does (or the pool is namespaced). Asked before every
    /// password set (issue, resume, restore, rotation): the namespace cache may lag a label
    /// just removed.
    pub(super) async fn not_served_now(&self) -> Result<Option<String>, Error> {
        let Some(pool @ Pool::Cluster(_)) = self.ctx.pool_of(self.lease) else {
            return Ok(None);
        };
        let name = self.lease.namespace().unwrap_or_default();
        let namespace = Api::<Namespace>::all(self.ctx.client.clone())
            .get_metadata_opt(&name)
            .await?;
        let served = namespace
            .is_some_and(|namespace| pool.serves(&namespace.metadata.labels.unwrap_or_default()));
        Ok((!served).then(|| {
            format!("{pool} does not serve namespace {name} (its namespaceSelector does not match)")
        }))
    }

    /// A renewal the pool no longer allows (its selector stopped matching the namespace): the
    /// request is recorded, so it is answered once, and the credential keeps its deadline.
    async fn decline_renewal(
        &self,
        claim: &HeldClaim,
        record: &ClaimRecord,
        previous: Option<&ClaimRecord>,
        request: String,
        message: String,
    ) -> Result<Action, Error> {
        let mut answered = record.clone();
        answered.last_renew_request = Some(request);
        self.ctx
            .claims
            .update_record(claim, &answered)
            .await
            .map_err(Error::stale_on_conflict("the claim"))?;
        let reason = Reason::NamespaceNotSelected;
        self.status
            .active(&answered, previous, reason, message.clone())
            .await?;
        self.ctx
            .publish(self.lease, EventType::Warning, reason, "Renew", message)
            .await;
        Ok(Action::requeue(until_then(record.expires_at(), self.now)))
    }
}
