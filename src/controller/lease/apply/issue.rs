//! Issue: getting the pool's credential ready, claiming the first free candidate with a record
//! of what is issued, and setting its password.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use tokio::sync::OwnedMutexGuard;

use super::set_password::Write;
use super::{Shell, Step};
use crate::api::{CredentialType, LeasedUser, PoolSpec};
use crate::controller::Error;
use crate::controller::access_pass::lifetime_in_minutes;
use crate::controller::app_credential::app_credentials;
use crate::controller::claim_record::{
    AccessPassRecord, AppIdentity, ClaimRecord, LeaseIdentity, PoolIdentity,
};
use crate::controller::claims::{ClaimOutcome, HeldClaim};
use crate::controller::deadlines::later;
use crate::controller::kept_credential::PoolCredential;
use crate::controller::lease::decide::{
    Decision, Issue, issue_credential_ends_soon, issue_credential_failed, nobody_free_to_issue,
    over_namespace_share,
};
use crate::controller::pool::Pool;
use crate::controller::reasons::Reason;
use crate::controller::restore_backoff::RestoreBackoff;
use crate::controller::sign_in_methods::methods_at_issue;
use crate::controller::status::whole_seconds;
use crate::graph::{AppCredentials, Class, ClientCredential, Purpose};

/// How long before a certificate's end its leases end: revocation needs a certificate Entra still
/// takes, and a renewed one may come late.
const CERTIFICATE_MARGIN: SignedDuration = SignedDuration::from_hours(1);

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
    /// The lease's restores so far (a rotation carries them on).
    pub restores: Option<RestoreBackoff>,
    /// Where the issue's Graph reads wait in the app's line (an issue's, or a rotation's).
    pub class: Class,
}

impl Shell<'_> {
    pub(super) async fn issue(&self, issue: Issue) -> Result<Step, Error> {
        let prepared = match self.prepare_issue(&issue.pool).await {
            Ok(Some(prepared)) => prepared,
            Ok(None) => return Ok(Step::then(issue_credential_ends_soon())),
            Err(error) => {
                return match issue_credential_failed(&error) {
                    Some(next) => Ok(Step::then(next)),
                    None => Err(error),
                };
            }
        };
        let plan = IssuePlan {
            secret_name: &issue.secret_name,
            ttl: issue.ttl,
            max_ttl: issue.max_ttl,
            generation: issue.generation,
            last_rotate_request: None,
            restores: None,
            class: Class::Issue,
        };
        // With a share per namespace, the count and the claim go together: two issues of one
        // namespace at once must not both see room for one more.
        let share_turn = match issue.namespace_share {
            Some(_) => match self.namespace_share_turn(&issue.pool).await? {
                Ok(turn) => Some(turn),
                Err(wait) => return Ok(Step::then(wait)),
            },
            None => None,
        };
        let claimed = self
            .claim_first(&issue.pool, &prepared, issue.candidates, &plan)
            .await?;
        drop(share_turn);
        let Some((claim, record)) = claimed else {
            return Ok(Step::then(nobody_free_to_issue(self.lease, &issue.pool)));
        };
        // The claim records which user this lease holds: a crash from here on resumes with it.
        self.set_and_confirm(Write {
            claim,
            record: &record,
            app: &prepared.app,
            password: None,
            may_be_set: false,
            outcome: Reason::Issued,
            previous: None,
        })
        .await
    }

    /// This namespace's turn to claim a user of `pool`, to hold until the claim is written; or
    /// what follows when its leases, counted again from the live claims, are at their share.
    async fn namespace_share_turn(
        &self,
        pool: &Pool,
    ) -> Result<Result<OwnedMutexGuard<()>, Decision>, Error> {
        let namespace = self.lease.namespace().unwrap_or_default();
        let turn = self
            .ctx
            .share_locks
            .lock(&format!("{}|{namespace}", pool.key()))
            .await;
        let pool_uid = pool.metadata().uid.clone().unwrap_or_default();
        let uid = self.lease.uid().unwrap_or_default();
        let holds = self
            .ctx
            .claims
            .leases_holding(&namespace, &pool_uid, &uid)
            .await?;
        Ok(match over_namespace_share(self.lease, pool, holds) {
            Some(wait) => Err(wait),
            None => Ok(turn),
        })
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
        let lease_namespace = self.lease.namespace().unwrap_or_default();
        let lease_uid = self.lease.uid().unwrap_or_default();
        let graph =
            self.ctx
                .graph
                .for_purpose(Purpose::new(plan.class, &lease_namespace, &lease_uid));
        for user in candidates {
            // A user the claim cache shows held by another lease is skipped before it costs a
            // Graph read: its release wakes the leases waiting for one.
            if self
                .ctx
                .cached_claim(&user.id)
                .is_some_and(|held| !held.is_held_by(Some(&lease_uid)))
            {
                continue;
            }
            // Read before the claim exists, so the record holds them from its first write on:
            // an earlier holder's end removes its own methods before it releases the user.
            let methods_at_issue = methods_at_issue(&graph, &prepared.app, spec, &user.id).await?;
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
                methods_at_issue,
                access_pass: access_pass_asked(spec, plan.ttl),
                disable_when_idle: spec.disable_idle_users,
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
                restores: plan.restores.clone(),
                restore_at: None,
            };
            if let ClaimOutcome::Claimed(claim) = self.ctx.claims.claim(&record).await? {
                return Ok(Some((claim, record)));
            }
        }
        Ok(None)
    }
}

/// The pass a Temporary Access Pass pool's issue asks Entra for: the TTL in whole minutes.
fn access_pass_asked(spec: &PoolSpec, ttl: Duration) -> Option<AccessPassRecord> {
    (spec.credential_type == CredentialType::TemporaryAccessPass).then(|| AccessPassRecord {
        lifetime_in_minutes: lifetime_in_minutes(ttl),
        usable_once: spec
            .temporary_access_pass
            .as_ref()
            .is_some_and(|policy| policy.usable_once),
        id: None,
    })
}

/// The latest moment a credential issued with `credential` may live, if it ends (a certificate).
fn credential_deadline(credential: &PoolCredential) -> Option<Timestamp> {
    match credential.app.credential() {
        ClientCredential::Certificate(certificate) => {
            Some(certificate.not_after() - CERTIFICATE_MARGIN)
        }
        _ => None,
    }
}
