//! Setting a claim's password through its Secret and confirming it in the claim, and what a
//! failed write leaves (as `decide` says): shared by issues, resumes, restores and rotations.

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::{Shell, Step};
use crate::controller::Error;
use crate::controller::app_credential::app_credentials;
use crate::controller::claim_record::ClaimRecord;
use crate::controller::claims::HeldClaim;
use crate::controller::context::IssueWrites;
use crate::controller::credential::{
    KeptCredential, Secrets, create_pass_into_secret, delete_controlled_secret,
    set_password_via_secret, write_credentials,
};
use crate::controller::lease::decide::{
    Ending, FailedWrite, FailureKind, Outcome, Then, after_failed_write, applied_nothing,
};
use crate::controller::lease::messages;
use crate::controller::pool::PoolKey;
use crate::controller::reasons::Reason;
use crate::controller::rotation_schedule::retire_at;
use crate::graph::{AppCredentials, Class, GraphError, Purpose};
use crate::metrics::metrics;
use crate::sensitive::SecretString;

/// A continuous lease's previous credential: its claim, its record, and its password as the
/// Secret holds it (to be written again beside the next one).
pub(super) struct Previous {
    pub claim: HeldClaim,
    pub record: Arc<ClaimRecord>,
    pub password: SecretString,
}

/// One password write.
pub(super) struct Write<'a> {
    pub claim: HeldClaim,
    pub record: &'a ClaimRecord,
    pub app: &'a AppCredentials,
    /// The password to set again (a resumed attempt); a fresh one when `None`.
    pub password: Option<SecretString>,
    /// A password of this claim may already work (a resumed attempt, or the credential a
    /// restore replaces), so a failure for good ends it.
    pub may_be_set: bool,
    /// The reason the status and event give on success.
    pub outcome: Reason,
    /// A continuous lease's previous credential, kept in the Secret beside the new one.
    pub previous: Option<&'a Previous>,
}

impl Write<'_> {
    /// Where the write waits in its app's Graph line.
    fn class(&self) -> Class {
        if self.previous.is_some() {
            Class::Rotate
        } else if self.outcome == Reason::CredentialRestored {
            Class::Restore
        } else {
            Class::Issue
        }
    }
}

impl Shell<'_> {
    /// Sets the password (Secret first), then records in the claim that Entra confirmed it.
    pub(super) async fn set_and_confirm(&self, write: Write<'_>) -> Result<Step, Error> {
        let kept = write.previous.map(|p| KeptCredential {
            record: &p.record,
            password: &p.password,
        });
        // What this process sees of the issue's writes: a fresh issue (or rotation) starts it.
        let issue = issue_writes(&write);
        if let Some(issue) = &issue
            && !write.may_be_set
        {
            self.ctx.unapplied_writes.first_write(issue);
        }
        if let Err(error) = self.enable_account(&write).await {
            return self.write_failed(&write, issue.as_ref(), error).await;
        }
        let set = match &write.record.access_pass {
            Some(asked) => create_pass_into_secret(
                self.ctx,
                self.lease,
                write.app,
                write.record,
                asked,
                write.class(),
            )
            .await
            .map(Some),
            None => set_password_via_secret(
                self.ctx,
                self.lease,
                write.app,
                write.record,
                write.password.clone(),
                kept.as_ref(),
                write.class(),
            )
            .await
            .map(|()| None),
        };
        let created = match set {
            Ok(created) => created,
            Err(error) => return self.write_failed(&write, issue.as_ref(), error).await,
        };
        if let Some(issue) = &issue {
            self.ctx.unapplied_writes.forget(issue);
        }
        self.ctx.refused_issues.forget(&write.record.lease.uid);
        let mut confirmed = created.unwrap_or_else(|| write.record.clone());
        confirmed.issued = true;
        self.ctx
            .claims
            .update_record(&write.claim, &confirmed)
            .await
            .map_err(Error::stale_on_conflict("the claim"))?;
        let previous = match write.previous {
            Some(previous) => Some(Arc::new(self.shorten_previous(previous, &confirmed).await?)),
            None => None,
        };
        self.tell_issued(&confirmed, previous.as_deref(), write.outcome)
            .await?;
        // The Secret changed under running consumers: restart them (once per credential).
        if confirmed.generation > 1 {
            self.restart_targets(&confirmed).await;
        }
        Ok(Step::Done(Outcome::Active {
            current: Arc::new(confirmed),
            previous,
        }))
    }

    /// A fresh credential's account, disabled by the operator between leases, is enabled right
    /// before its password is set.
    async fn enable_account(&self, write: &Write<'_>) -> Result<(), Error> {
        let record = write.record;
        if record.issued || !record.disable_when_idle {
            return Ok(());
        }
        let graph = self.ctx.graph.for_purpose(Purpose::new(
            write.class(),
            &record.lease.namespace,
            &record.lease.uid,
        ));
        self.ctx
            .idle_accounts
            .enable_if_disabled_here(&graph, write.app, &record.user.id)
            .await
    }

    /// An issue given up without a scramble (no password of it was applied) leaves the account
    /// as the operator found it: disabled, where the pool disables idle users.
    async fn disable_again(&self, record: &ClaimRecord) -> Result<(), Error> {
        if !record.disable_when_idle {
            return Ok(());
        }
        // Disabling is part of ending, so it authenticates as ends do: with the operator's copy
        // of the credential recorded at issue, whatever became of the pool since.
        let ctx = self.ctx;
        let app = ctx
            .copies
            .recorded(&ctx.graph, &ctx.endpoints, record)
            .await?;
        let graph = self.ctx.graph.for_purpose(Purpose::new(
            Class::End,
            &record.lease.namespace,
            &record.lease.uid,
        ));
        match self
            .ctx
            .idle_accounts
            .disable(&graph, &app, &record.user.id)
            .await
        {
            // The app may not disable it: the account stays as it was before the lease (enabled,
            // with a password nobody was given), and the user goes back to the pool.
            Err(Error::Graph(GraphError::MissingPermission { .. })) => Ok(()),
            other => other,
        }
    }

    async fn tell_issued(
        &self,
        confirmed: &ClaimRecord,
        previous: Option<&ClaimRecord>,
        outcome: Reason,
    ) -> Result<(), Error> {
        let reason = if previous.is_some() && outcome == Reason::Issued {
            Reason::Rotated
        } else {
            outcome
        };
        let message = messages::issued(
            confirmed,
            previous.map(|previous| (previous, retire_at(self.lease, confirmed, previous))),
        );
        self.status
            .active(confirmed, previous, reason, message.clone())
            .await?;
        tracing::info!(
            lease = %self.lease.name_any(),
            namespace = %confirmed.lease.namespace,
            user = %confirmed.user.user_principal_name,
            pool = %confirmed.pool.name,
            generation = confirmed.generation,
            issued_at = %confirmed.issued_at.0,
            expires_at = %confirmed.expires_at(),
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
        self.tell(EventType::Normal, reason, "Issue", message).await;
        if previous.is_some() {
            metrics().rotations.inc();
            self.ctx.rotation_done(&confirmed.lease.uid);
        }
        Ok(())
    }

    /// Carries out what [`after_failed_write`] says follows a failed write.
    async fn write_failed(
        &self,
        write: &Write<'_>,
        issue: Option<&IssueWrites>,
        error: Error,
    ) -> Result<Step, Error> {
        let record = write.record;
        let writes = &self.ctx.unapplied_writes;
        if let Some(issue) = issue {
            writes.failed(issue, applied_nothing(&error));
        }
        let failure = FailedWrite {
            kind: FailureKind::of(&error),
            may_be_set: write.may_be_set,
            nothing_applied: issue.is_some_and(|issue| writes.nothing_applied(issue)),
            named_user: self.lease.spec.user.is_some(),
            rotation: write.previous.is_some(),
        };
        let steps = after_failed_write(&failure);
        if steps.ending != Ending::Keep
            && let Some(issue) = issue
        {
            writes.forget(issue);
        }
        match (steps.ending, write.previous) {
            (Ending::Keep, _) => return Err(error),
            (Ending::EndCredential, _) => {
                let live = self.ctx.claims.get(&record.user.id).await?;
                if let Some(live) = live.filter(|c| c.is_held_by(Some(&record.lease.uid))) {
                    self.end_or_report(&live).await?;
                }
            }
            (Ending::Release, _) | (Ending::ReleaseKeepingPrevious, None) => {
                self.disable_again(record).await?;
                let lease = &record.lease;
                delete_controlled_secret(
                    self.ctx,
                    &lease.namespace,
                    &record.secret_name,
                    &lease.uid,
                )
                .await?;
                self.ctx.claims.release(&write.claim).await?;
            }
            (Ending::ReleaseKeepingPrevious, Some(previous)) => {
                self.disable_again(record).await?;
                write_credentials(
                    self.ctx,
                    self.lease,
                    &previous.record,
                    &previous.password,
                    Secrets::Alone,
                )
                .await?;
                self.ctx.claims.release(&write.claim).await?;
            }
        }
        if steps.resolve_pool_again
            && let Some(pool) = self.ctx.pool_of(self.lease)
        {
            // Changed in Entra since the pool resolved it: resolve the pool again (the release
            // above wakes it) so that its status shows why.
            self.ctx.forget_resolution(&pool);
        }
        if steps.set_aside {
            // Set aside for this pool only: another pool's app may well write the user.
            self.ctx
                .forbid(&PoolKey::issued_from(&record.pool), &record.user.id);
        }
        let user = &record.user.user_principal_name;
        match (steps.then, write.previous) {
            (Then::Retry, _) => Err(error),
            (Then::TryAnotherUser, _) => {
                let refused = failure.kind == FailureKind::Refused;
                let message = messages::set_aside(user, refused, &error);
                self.tell(EventType::Warning, error.reason(), "Issue", message)
                    .await;
                Ok(Step::Done(Outcome::GoOn))
            }
            (Then::Fail, _) | (Then::KeepPrevious { .. }, None) => Ok(Step::then(
                crate::controller::lease::decide::Decision::FailIssue {
                    reason: error.reason(),
                    message: error.to_string(),
                },
            )),
            (Then::KeepPrevious { soon }, Some(previous)) => {
                let message = messages::rotation_failed(
                    user,
                    &previous.record.user.user_principal_name,
                    &error,
                );
                self.rotation_waiting(None, &previous.record, message)
                    .await?;
                Ok(Step::Done(if soon {
                    Outcome::GoOn
                } else {
                    Outcome::RotationWaits {
                        expires_at: previous.record.expires_at(),
                    }
                }))
            }
        }
    }

    /// The app credentials a password of `record` is set with: its pool's own, read as an issue
    /// reads them, while the lease still names that pool and the pool the app it was issued
    /// with. `None` otherwise. The operator's copies only end credentials: a copy kept for one
    /// pool never sets a password for another pool sharing its app.
    pub(super) async fn setting_credentials(
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
}

/// The issue a write belongs to, while its credential is not yet confirmed (a restore's is).
fn issue_writes(write: &Write<'_>) -> Option<IssueWrites> {
    (!write.record.issued).then_some(())?;
    Some(IssueWrites {
        claim_name: write.claim.name.clone(),
        claim_uid: write.claim.uid.clone()?,
        generation: write.record.generation,
    })
}
