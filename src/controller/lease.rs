//! The lease reconciler: fetches the facts, asks [`decide`], and carries the decision out.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};

use super::Error;
use super::claims::{ClaimOutcome, is_not_found};
use super::context::Context;
use super::credential::{delete_owned_secret, end_credential, set_password_via_secret};
use super::lease_decision::{Decision, LeaseFacts, SecretState, credentials_secret_name, decide};
use super::reasons::Reason;
use super::revocation::cleanup;
use super::status::{apply_status, set_condition, whole_seconds};
use crate::api::{EntraDynamicSecret, EntraLease, LeasePhase, LeaseStatus, LeasedUser};
use crate::graph::GraphError;
use crate::metrics::{CappedLabels, metrics};
use crate::secret::{EXPIRES_AT_ANNOTATION, format_time, secret_state};

/// Held by every lease until its credential is revoked (invariant I3).
pub const FINALIZER: &str = "kms.hanzo.ai/revoke";

pub async fn reconcile(lease: Arc<EntraLease>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = lease.namespace().unwrap_or_default();
    let api: Api<EntraLease> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, lease, |event| async {
        match event {
            Finalizer::Apply(lease) => apply(&lease, &api, &ctx).await,
            Finalizer::Cleanup(lease) => cleanup(&lease, &api, &ctx).await,
        }
    })
    .await
    .or_else(gone_is_done)
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

/// How long a lease whose issue Entra refused waits before trying again, unless its spec changes.
const RETRY_REFUSED_ISSUE: Duration = Duration::from_secs(300);
/// How often a waiting lease, or one refused for a Secret it does not own, looks again on its own.
const LOOK_AGAIN_AFTER: Duration = Duration::from_secs(60);

async fn apply(lease: &EntraLease, api: &Api<EntraLease>, ctx: &Context) -> Result<Action, Error> {
    if let Some(wait) = refused_issue_backoff(lease, ctx) {
        return Ok(Action::requeue(wait));
    }
    let pool = ctx.pool_of(lease);
    let namespace = lease.namespace().unwrap_or_default();
    let secret_name = credentials_secret_name(lease, pool.as_deref());
    let secret = secret_state(lease, ctx.secret(&namespace, &secret_name).await?.as_ref());
    let now = Timestamp::now();
    let status = lease.status.as_ref();
    let held = match status.and_then(|s| s.user.clone()) {
        Some(user) => Some(user),
        None => ctx.claims.held_by(lease).await?,
    };
    let facts = LeaseFacts {
        lease,
        pool: pool.as_deref(),
        secret,
        held: held.clone(),
        now,
    };
    let decision = decide(&facts);
    tracing::debug!(lease = %lease.name_any(), ?decision, "decided");
    let shell = Shell {
        lease,
        api,
        ctx,
        now,
    };
    match decision {
        Decision::Expire => shell.expire().await,
        Decision::Refuse { reason, message } => {
            shell.refuse(pool.as_deref(), held, reason, message).await
        }
        Decision::Wait { reason, message } => shell.wait(reason.as_str(), message).await,
        Decision::Issue {
            candidates,
            ttl,
            max_ttl,
        } => {
            let pool = pool.expect("issue decisions have a pool");
            shell
                .issue(&pool, &secret_name, secret, candidates, ttl, max_ttl)
                .await
        }
        Decision::Restore { cause } => {
            let Some(pool) = pool else {
                return Err(Error::RevocationBlocked("dynamic secret missing".into()));
            };
            shell.restore(&pool, &secret_name, cause).await
        }
        Decision::Renew {
            expires_at,
            capped,
            request,
        } => shell.renew(&secret_name, expires_at, capped, request).await,
        Decision::Hold { until } => Ok(requeue_at(until, now)),
    }
}

/// The time left before a lease whose issue Entra refused may try again, if any.
fn refused_issue_backoff(lease: &EntraLease, ctx: &Context) -> Option<Duration> {
    let status = lease.status.as_ref()?;
    if status.phase != Some(LeasePhase::Failed)
        || status.observed_generation != lease.metadata.generation
    {
        return None;
    }
    let retry_at = *ctx
        .issue_retry_at
        .lock()
        .unwrap()
        .get(lease.uid()?.as_str())?;
    retry_at.checked_duration_since(std::time::Instant::now())
}

/// Carries decisions out for one lease.
pub(super) struct Shell<'a> {
    pub lease: &'a EntraLease,
    pub api: &'a Api<EntraLease>,
    pub ctx: &'a Context,
    pub now: Timestamp,
}

impl Shell<'_> {
    pub fn status(&self) -> LeaseStatus {
        self.lease.status.clone().unwrap_or_default()
    }

    pub async fn write_status(&self, status: &LeaseStatus) -> Result<(), Error> {
        apply_status(self.api, self.lease, self.lease.status.as_ref(), status).await?;
        Ok(())
    }

    pub fn condition(&self, status: &mut LeaseStatus, ready: bool, reason: &str, message: String) {
        status.observed_generation = self.lease.metadata.generation;
        set_condition(
            &mut status.conditions,
            "Ready",
            ready,
            reason,
            message,
            self.lease.metadata.generation,
            self.now,
        );
    }

    /// True when the lease's Ready condition already says `reason`: events fire on changes only.
    fn already(&self, reason: &str) -> bool {
        self.lease
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.reason == reason)
    }

    async fn expire(&self) -> Result<Action, Error> {
        // One event tells the whole ending (Expired, from the finalizer): events are API writes.
        tracing::info!(lease = %self.lease.name_any(), "expired; revoking");
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: self.lease.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.api.delete(&self.lease.name_any(), &params).await {
            Ok(_) => Ok(Action::await_change()),
            Err(error) if is_not_found(&error) => Ok(Action::await_change()),
            Err(error) => Err(error.into()),
        }
    }

    async fn refuse(
        &self,
        pool: Option<&EntraDynamicSecret>,
        held: Option<LeasedUser>,
        reason: Reason,
        message: String,
    ) -> Result<Action, Error> {
        let mut status = self.status();
        if let (Some(user), Some(pool)) = (held, pool) {
            end_credential(self.lease, self.ctx, pool, &user).await?;
            forget_credential(&mut status);
        }
        if !self.already(reason.as_str()) {
            self.ctx
                .publish(
                    self.lease,
                    EventType::Warning,
                    reason.as_str(),
                    "Validate",
                    message.clone(),
                )
                .await;
        }
        status.phase = Some(LeasePhase::Failed);
        self.condition(&mut status, false, reason.as_str(), message);
        self.write_status(&status).await?;
        // A conflicting Secret is not ours to watch: notice its deletion by looking again.
        if reason == Reason::SecretConflict {
            return Ok(Action::requeue(LOOK_AGAIN_AFTER));
        }
        Ok(Action::await_change())
    }

    async fn wait(&self, reason: &str, message: String) -> Result<Action, Error> {
        if !self.already(reason) {
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
        let mut status = self.status();
        status.phase = Some(LeasePhase::Pending);
        self.condition(&mut status, false, reason, message);
        self.write_status(&status).await?;
        // Releases and pool changes wake a waiting lease; this covers what sends no event (a
        // claim whose holder vanished without releasing it).
        Ok(Action::requeue(LOOK_AGAIN_AFTER))
    }

    async fn issue(
        &self,
        pool: &EntraDynamicSecret,
        secret_name: &str,
        secret: SecretState,
        candidates: Vec<LeasedUser>,
        ttl: Duration,
        max_ttl: Duration,
    ) -> Result<Action, Error> {
        let candidates = self
            .ctx
            .without_forbidden(candidates, self.lease.spec.user.is_some());
        let candidates = self.ctx.likely_free_first(candidates, self.lease);
        let mut claimed = None;
        for candidate in candidates {
            if self
                .ctx
                .claims
                .claim(&candidate, self.lease, &pool.name_any())
                .await?
                == ClaimOutcome::Claimed
            {
                claimed = Some(candidate);
                break;
            }
        }
        let Some(leased) = claimed else {
            let message = match &self.lease.spec.user {
                Some(user) => format!("user {user} is leased by another lease; waiting for it"),
                None => format!(
                    "every user of EntraDynamicSecret {} is leased; waiting for one",
                    pool.name_any()
                ),
            };
            return self.wait(Reason::WaitingForUser.as_str(), message).await;
        };
        // The claim records which user this lease holds: a crash from here on resumes with it.
        let mut status = self.status();
        // A Secret left by an interrupted issue holds the password that may already be set: set
        // that same one again, so no working password is ever lost (invariant I2).
        let resumed = match secret {
            SecretState::Intact | SecretState::Tampered => {
                self.ctx.stored_password(self.lease, secret_name).await?
            }
            SecretState::Missing | SecretState::Foreign => None,
        };
        let fresh = status.max_expires_at.is_none();
        let expires_at = match status.expires_at.as_ref() {
            Some(existing) if !fresh => existing.0,
            _ => whole_seconds(self.now) + signed(ttl),
        };
        let outcome = set_password_via_secret(
            self.ctx,
            self.lease,
            pool,
            &leased,
            secret_name,
            resumed,
            expires_at,
        )
        .await;
        if let Err(error) = outcome {
            return self.issue_failed(pool, &leased, secret_name, error).await;
        }
        if fresh {
            let issued_at = whole_seconds(self.now);
            status.issued_at = Some(Time(issued_at));
            status.expires_at = Some(Time(expires_at));
            status.max_expires_at = Some(Time(issued_at + signed(max_ttl)));
        }
        status.phase = Some(LeasePhase::Active);
        status.user = Some(leased.clone());
        status.secret_name = Some(secret_name.to_owned());
        let message = format!(
            "credentials for {} are in Secret {secret_name} until {}",
            leased.user_principal_name,
            format_time(expires_at)
        );
        self.condition(&mut status, true, Reason::Issued.as_str(), message.clone());
        self.write_status(&status).await?;
        let reason = if fresh {
            Reason::Issued
        } else {
            Reason::CredentialRestored
        };
        tracing::info!(lease = %self.lease.name_any(), user = %leased.user_principal_name, %reason, "issued");
        metrics().issues.inc();
        self.ctx
            .publish(
                self.lease,
                EventType::Normal,
                reason.as_str(),
                "Issue",
                message,
            )
            .await;
        Ok(requeue_at(expires_at, self.now))
    }

    /// A permanent Graph failure while issuing: nothing stays issued, the user is released.
    async fn issue_failed(
        &self,
        pool: &EntraDynamicSecret,
        user: &LeasedUser,
        secret_name: &str,
        error: Error,
    ) -> Result<Action, Error> {
        let Error::Graph(graph) = &error else {
            return Err(error);
        };
        // A lease that already had a credential (a restore) keeps its user and retries: its
        // old password may still work, and only a successful scramble may release the user.
        if graph.is_transient() || self.status().issued_at.is_some() {
            return Err(error);
        }
        // The password was never set (Entra refused it), so there is nothing to scramble.
        delete_owned_secret(self.ctx, self.lease, secret_name).await?;
        self.ctx.claims.release(&user.id, self.lease).await?;
        let changed_in_entra = matches!(
            graph,
            GraphError::UserNotFound { .. } | GraphError::UserNotLeasable { .. }
        );
        if changed_in_entra {
            // Changed in Entra since the pool resolved it: resolve the pool again (the release
            // above wakes it) so that its status shows why.
            self.ctx.forget_resolution(pool);
        }
        let refused = matches!(graph, GraphError::MissingPermission { .. });
        if (changed_in_entra || refused) && self.lease.spec.user.is_none() {
            // Likely a protected admin in the pool, or a user changed in Entra: set it aside
            // and try the next free user.
            self.ctx.forbid(&user.id);
            let message = if refused {
                format!(
                    "Entra refused to reset {} (a protected admin, or the app lacks the role); \
                     trying another pool user",
                    user.user_principal_name
                )
            } else {
                format!(
                    "{} cannot be leased any more ({graph}); trying another pool user",
                    user.user_principal_name
                )
            };
            self.ctx
                .publish(
                    self.lease,
                    EventType::Warning,
                    graph.reason(),
                    "Issue",
                    message,
                )
                .await;
            return Ok(Action::requeue(Duration::from_millis(100)));
        }
        let mut status = self.status();
        forget_credential(&mut status);
        status.phase = Some(LeasePhase::Failed);
        let message = graph.to_string();
        self.ctx
            .publish(
                self.lease,
                EventType::Warning,
                graph.reason(),
                "Issue",
                message.clone(),
            )
            .await;
        self.condition(&mut status, false, graph.reason(), message);
        self.write_status(&status).await?;
        // Permissions and roles can be fixed in Entra without any change here: try again later.
        let retry_at = std::time::Instant::now() + RETRY_REFUSED_ISSUE;
        let uid = self.lease.uid().unwrap_or_default();
        self.ctx
            .issue_retry_at
            .lock()
            .unwrap()
            .insert(uid, retry_at);
        Ok(Action::requeue(RETRY_REFUSED_ISSUE))
    }

    /// The active lease's Secret was deleted or edited: a fresh password (which also ends the old
    /// one) goes into a restored Secret. Issuing resumes through the same path as a first issue,
    /// keeping the lease's times.
    async fn restore(
        &self,
        pool: &EntraDynamicSecret,
        secret_name: &str,
        cause: SecretState,
    ) -> Result<Action, Error> {
        let what = if cause == SecretState::Missing {
            "deleted"
        } else {
            "edited"
        };
        self.ctx
            .publish(
                self.lease,
                EventType::Warning,
                Reason::CredentialRestored.as_str(),
                "Restore",
                format!("Secret {secret_name} was {what}; issuing a fresh password"),
            )
            .await;
        let mut status = self.status();
        status.phase = Some(LeasePhase::Issuing);
        self.condition(
            &mut status,
            false,
            Reason::CredentialRestored.as_str(),
            format!("Secret {secret_name} was {what}"),
        );
        self.write_status(&status).await?;
        let user = status.user.clone().expect("an active lease has a user");
        let expires_at = status.expires_at.as_ref().map_or(self.now, |t| t.0);
        if let Err(error) = set_password_via_secret(
            self.ctx,
            self.lease,
            pool,
            &user,
            secret_name,
            None,
            expires_at,
        )
        .await
        {
            return self.issue_failed(pool, &user, secret_name, error).await;
        }
        status.phase = Some(LeasePhase::Active);
        self.condition(
            &mut status,
            true,
            Reason::CredentialRestored.as_str(),
            format!("Secret {secret_name} restored with a fresh password"),
        );
        self.write_status(&status).await?;
        tracing::info!(lease = %self.lease.name_any(), user = %user.user_principal_name, "restored");
        metrics().issues.inc();
        Ok(requeue_at(expires_at, self.now))
    }

    async fn renew(
        &self,
        secret_name: &str,
        expires_at: Timestamp,
        capped: bool,
        request: Option<String>,
    ) -> Result<Action, Error> {
        let mut status = self.status();
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
        if status.expires_at.as_ref().map(|t| t.0) != Some(expires_at) {
            status.renew_count += 1;
            status.last_renewed_at = Some(Time(whole_seconds(self.now)));
            status.expires_at = Some(Time(expires_at));
            self.annotate_expiry(secret_name, expires_at).await?;
        }
        if request.is_some() {
            status.last_renew_request = request;
        }
        self.condition(&mut status, true, reason.as_str(), message.clone());
        self.write_status(&status).await?;
        tracing::info!(lease = %self.lease.name_any(), %reason, expires_at = %format_time(expires_at), "renewed");
        let capped_label = CappedLabels {
            capped: capped.to_string(),
        };
        metrics().renewals.get_or_create(&capped_label).inc();
        self.ctx
            .publish(
                self.lease,
                EventType::Normal,
                reason.as_str(),
                "Renew",
                message,
            )
            .await;
        Ok(requeue_at(expires_at, self.now))
    }

    /// Renewals change the Secret's expiry annotation only, never its data.
    async fn annotate_expiry(&self, secret_name: &str, expires_at: Timestamp) -> Result<(), Error> {
        let namespace = self.lease.namespace().unwrap_or_default();
        let patch = serde_json::json!({
            "metadata": { "annotations": { EXPIRES_AT_ANNOTATION: format_time(expires_at) } }
        });
        let secrets: Api<Secret> = Api::namespaced(self.ctx.client.clone(), &namespace);
        match secrets
            .patch(secret_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

/// Clears what described an issued credential, once it has ended or was never set.
fn forget_credential(status: &mut LeaseStatus) {
    status.user = None;
    status.secret_name = None;
    status.issued_at = None;
    status.expires_at = None;
    status.max_expires_at = None;
}

/// Wake up at `deadline`, a hair after it so that the deadline has passed when the reconcile runs.
fn requeue_at(deadline: Timestamp, now: Timestamp) -> Action {
    let wait = deadline.duration_since(now) + SignedDuration::from_millis(20);
    Action::requeue(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

fn signed(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}
