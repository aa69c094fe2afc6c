//! What to do with a lease: a pure function of the lease, its dynamic secret, its Secret and the
//! time. The reconciler fetches these facts, asks [`decide`], and carries the decision out, so the
//! whole lifecycle is testable without a cluster.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

use crate::api::{EntraDynamicSecret, EntraLease, LeasePhase, LeasedUser, RENEW_ANNOTATION};
use crate::duration::parse_duration;

use super::reasons::Reason;

/// The state of the Secret a lease writes its credentials to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretState {
    /// No object of that name.
    Missing,
    /// Owned by this lease, with the data the operator wrote.
    Intact,
    /// Owned by this lease, but its data was changed by someone else.
    Tampered,
    /// An object of that name that this lease does not own: never adopted or overwritten.
    Foreign,
}

/// Everything [`decide`] looks at.
pub struct LeaseFacts<'a> {
    pub lease: &'a EntraLease,
    /// The referenced dynamic secret, if it exists.
    pub pool: Option<&'a EntraDynamicSecret>,
    pub secret: SecretState,
    /// The user whose claim the lease holds, for a lease not yet active: an issue interrupted by
    /// a crash resumes with it.
    pub held: Option<LeasedUser>,
    pub now: Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// The lease reached its end: delete it; revocation runs as its finalizer.
    Expire,
    /// The lease cannot be issued as specified; nothing is issued (and a held credential ends).
    Refuse { reason: Reason, message: String },
    /// The lease waits for something outside it (a dynamic secret, a free user).
    Wait { reason: Reason, message: String },
    /// Claim the first free candidate and issue a password to it.
    Issue {
        candidates: Vec<LeasedUser>,
        ttl: Duration,
        max_ttl: Duration,
    },
    /// The active lease's Secret was deleted or edited: issue a fresh password, restore the Secret.
    Restore { cause: SecretState },
    /// Move `expiresAt` to `expires_at`; `capped` when maxTTL stopped the renewal short.
    Renew {
        expires_at: Timestamp,
        capped: bool,
        /// The renew annotation value this renewal answers, if it was asked for by one.
        request: Option<String>,
    },
    /// Nothing to do until `until` (the expiry or the automatic renewal point).
    Hold { until: Timestamp },
}

/// The lifecycle in one function; see the design's "Lifecycle" section.
pub fn decide(facts: &LeaseFacts<'_>) -> Decision {
    let status = facts.lease.status.as_ref();
    // A lease past its expiry ends, whatever it was doing (a restore cannot extend it).
    if status
        .and_then(|s| s.expires_at.as_ref())
        .is_some_and(|expires_at| facts.now >= expires_at.0)
    {
        return Decision::Expire;
    }
    if status.and_then(|s| s.phase) == Some(LeasePhase::Active) {
        return decide_active(facts);
    }
    decide_issue(facts)
}

fn decide_active(facts: &LeaseFacts<'_>) -> Decision {
    let status = facts
        .lease
        .status
        .as_ref()
        .expect("an active lease has a status");
    let (Some(expires_at), Some(max_expires_at)) = (
        status.expires_at.as_ref().map(|t| t.0),
        status.max_expires_at.as_ref().map(|t| t.0),
    ) else {
        // An active lease without its deadlines was not written by this operator: end it.
        return Decision::Expire;
    };
    if facts.now >= expires_at {
        return Decision::Expire;
    }
    if facts.secret == SecretState::Foreign {
        return Decision::Refuse {
            reason: Reason::SecretConflict,
            message: format!(
                "Secret {} was replaced by one this lease does not own; the credential was ended",
                secret_name(facts)
            ),
        };
    }
    if matches!(facts.secret, SecretState::Missing | SecretState::Tampered) {
        return Decision::Restore {
            cause: facts.secret,
        };
    }
    let ttl = effective_ttl(facts).ok();
    if let Some(request) = pending_renew_request(facts.lease) {
        return match ttl {
            Some(ttl) => renewal(facts.now, ttl, max_expires_at, Some(request)),
            // Without a TTL to renew by (its dynamic secret is gone), record the request only.
            None => Decision::Renew {
                expires_at,
                capped: true,
                request: Some(request),
            },
        };
    }
    if let (true, Some(ttl)) = (facts.lease.spec.auto_renew, ttl)
        && expires_at < max_expires_at
    {
        let renew_at = expires_at - signed(ttl / 3);
        if facts.now >= renew_at {
            return renewal(facts.now, ttl, max_expires_at, None);
        }
        return Decision::Hold { until: renew_at };
    }
    Decision::Hold { until: expires_at }
}

fn decide_issue(facts: &LeaseFacts<'_>) -> Decision {
    let Some(pool) = facts.pool else {
        return Decision::Wait {
            reason: Reason::DynamicSecretNotFound,
            message: format!(
                "EntraDynamicSecret {} does not exist in this namespace",
                facts.lease.spec.dynamic_secret_ref.name
            ),
        };
    };
    if pool.metadata.deletion_timestamp.is_some() {
        return Decision::Wait {
            reason: Reason::DynamicSecretDeleting,
            message: format!("EntraDynamicSecret {} is being deleted", pool.name_any()),
        };
    }
    let max_ttl = match parse_duration(&pool.spec.max_ttl) {
        Ok(max_ttl) => max_ttl,
        Err(error) => return invalid_pool(format!("maxTTL: {error}")),
    };
    let ttl = match effective_ttl(facts) {
        Ok(ttl) => ttl,
        Err(message) => {
            return Decision::Refuse {
                reason: Reason::InvalidTTL,
                message,
            };
        }
    };
    if ttl > max_ttl {
        return Decision::Refuse {
            reason: Reason::TTLExceedsMax,
            message: format!(
                "ttl {} is longer than the maxTTL {} of EntraDynamicSecret {}",
                facts
                    .lease
                    .spec
                    .ttl
                    .as_deref()
                    .unwrap_or(&pool.spec.default_ttl),
                pool.spec.max_ttl,
                pool.name_any()
            ),
        };
    }
    if let Some(wanted) = &facts.lease.spec.user
        && !pool
            .spec
            .users
            .iter()
            .any(|u| u.eq_ignore_ascii_case(wanted))
        && !resolved_users(pool).any(|u| same_user(u, wanted))
    {
        return Decision::Refuse {
            reason: Reason::UserNotInPool,
            message: format!(
                "user {wanted} is not in the pool of EntraDynamicSecret {}",
                pool.name_any()
            ),
        };
    }
    if facts.secret == SecretState::Foreign {
        return Decision::Refuse {
            reason: Reason::SecretConflict,
            message: format!(
                "Secret {} already exists and is not managed by this lease; choose another \
                 spec.secretName or delete that Secret",
                secret_name(facts)
            ),
        };
    }
    if !pool_is_ready(pool) {
        return Decision::Wait {
            reason: Reason::DynamicSecretNotReady,
            message: format!(
                "EntraDynamicSecret {} is not ready; see its Ready condition",
                pool.name_any()
            ),
        };
    }
    let candidates = candidates(facts, pool);
    if candidates.is_empty() {
        let wanted = facts.lease.spec.user.as_deref();
        return Decision::Refuse {
            reason: Reason::UserNotLeasable,
            message: match wanted {
                Some(user) => {
                    format!("user {user} cannot be leased; see the dynamic secret's status")
                }
                None => format!(
                    "no user of EntraDynamicSecret {} can be leased",
                    pool.name_any()
                ),
            },
        };
    }
    Decision::Issue {
        candidates,
        ttl,
        max_ttl,
    }
}

/// The users the lease may claim, in pool order. A lease that already claimed a user (an issue
/// interrupted by a crash or a wait) keeps it, so that the issue resumes instead of holding two.
fn candidates(facts: &LeaseFacts<'_>, pool: &EntraDynamicSecret) -> Vec<LeasedUser> {
    if let Some(held) = &facts.held {
        return vec![held.clone()];
    }
    let wanted = facts.lease.spec.user.as_deref();
    pool.status
        .iter()
        .flat_map(|s| &s.users)
        .filter(|u| u.problem.is_none())
        .filter(|u| wanted.is_none_or(|w| u.configured.eq_ignore_ascii_case(w) || same_user(u, w)))
        .filter_map(|u| {
            Some(LeasedUser {
                id: u.id.clone()?,
                user_principal_name: u.user_principal_name.clone()?,
            })
        })
        .collect()
}

fn resolved_users(pool: &EntraDynamicSecret) -> impl Iterator<Item = &crate::api::PoolUser> {
    pool.status.iter().flat_map(|s| &s.users)
}

fn same_user(user: &crate::api::PoolUser, wanted: &str) -> bool {
    user.id
        .as_deref()
        .is_some_and(|id| id.eq_ignore_ascii_case(wanted))
        || user
            .user_principal_name
            .as_deref()
            .is_some_and(|upn| upn.eq_ignore_ascii_case(wanted))
}

fn pool_is_ready(pool: &EntraDynamicSecret) -> bool {
    pool.status.as_ref().is_some_and(|status| {
        status.observed_generation == pool.metadata.generation
            && status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

fn invalid_pool(message: String) -> Decision {
    Decision::Wait {
        reason: Reason::DynamicSecretNotReady,
        message,
    }
}

/// The lease's TTL: its own, or its dynamic secret's default.
fn effective_ttl(facts: &LeaseFacts<'_>) -> Result<Duration, String> {
    let text = match (&facts.lease.spec.ttl, facts.pool) {
        (Some(ttl), _) => ttl.as_str(),
        (None, Some(pool)) => pool.spec.default_ttl.as_str(),
        (None, None) => return Err("no ttl and no dynamic secret to take a default from".into()),
    };
    parse_duration(text).map_err(|error| format!("ttl: {error}"))
}

/// The renew annotation's value when it has not been acted on yet.
pub fn pending_renew_request(lease: &EntraLease) -> Option<String> {
    let requested = lease.annotations().get(RENEW_ANNOTATION)?;
    let handled = lease
        .status
        .as_ref()
        .and_then(|s| s.last_renew_request.as_ref());
    (handled != Some(requested)).then(|| requested.clone())
}

fn renewal(
    now: Timestamp,
    ttl: Duration,
    max_expires_at: Timestamp,
    request: Option<String>,
) -> Decision {
    let wanted = now + signed(ttl);
    Decision::Renew {
        expires_at: wanted.min(max_expires_at),
        capped: wanted > max_expires_at,
        request,
    }
}

fn secret_name(facts: &LeaseFacts<'_>) -> String {
    credentials_secret_name(facts.lease, facts.pool)
}

/// The name of a lease's Secret: the one it was issued to, else `spec.secretName`, else
/// `<secretPrefix>-<lease name>`.
pub fn credentials_secret_name(lease: &EntraLease, pool: Option<&EntraDynamicSecret>) -> String {
    let issued = lease.status.as_ref().and_then(|s| s.secret_name.clone());
    issued
        .or_else(|| lease.spec.secret_name.clone())
        .unwrap_or_else(|| {
            let prefix = pool.map_or("entra", |p| p.spec.secret_prefix.as_str());
            format!("{prefix}-{}", lease.name_any())
        })
}

fn signed(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DynamicSecretStatus, EntraLeaseSpec, LeaseStatus, PoolUser};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn pool() -> EntraDynamicSecret {
        let mut pool = EntraDynamicSecret::new(
            "pool",
            crate::fixtures::pool_spec(&["alice@contoso.com", "bob@contoso.com"]),
        );
        pool.metadata.generation = Some(1);
        let user = |upn: &str, id: &str, problem: Option<&str>| PoolUser {
            configured: upn.into(),
            id: Some(id.into()),
            user_principal_name: Some(upn.into()),
            problem: problem.map(Into::into),
            ..PoolUser::default()
        };
        pool.status = Some(DynamicSecretStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: "Ready".into(),
                message: String::new(),
                observed_generation: Some(1),
                last_transition_time: Time(at(0)),
            }],
            observed_generation: Some(1),
            users: vec![
                user("alice@contoso.com", "id-alice", None),
                user("bob@contoso.com", "id-bob", Some("Guest")),
            ],
            available: 1,
            leased: 0,
        });
        pool
    }

    fn lease(spec: impl FnOnce(&mut EntraLeaseSpec)) -> EntraLease {
        let mut lease_spec = crate::fixtures::lease_spec();
        spec(&mut lease_spec);
        EntraLease::new("ci", lease_spec)
    }

    /// An active lease issued at 0 with a 1h TTL and a 2h max.
    fn active(spec: impl FnOnce(&mut EntraLeaseSpec)) -> EntraLease {
        let mut lease = lease(spec);
        lease.status = Some(LeaseStatus {
            phase: Some(LeasePhase::Active),
            user: Some(LeasedUser {
                user_principal_name: "alice@contoso.com".into(),
                id: "id-alice".into(),
            }),
            secret_name: Some("entra-ci".into()),
            issued_at: Some(Time(at(0))),
            expires_at: Some(Time(at(3600))),
            max_expires_at: Some(Time(at(7200))),
            ..LeaseStatus::default()
        });
        lease
    }

    fn decide_at(
        lease: &EntraLease,
        pool: Option<&EntraDynamicSecret>,
        secret: SecretState,
        now: i64,
    ) -> Decision {
        decide(&LeaseFacts {
            lease,
            pool,
            secret,
            held: None,
            now: at(now),
        })
    }

    #[test]
    fn new_lease_issues_to_the_first_leasable_user_with_the_default_ttl() {
        let pool = pool();
        let decision = decide_at(&lease(|_| {}), Some(&pool), SecretState::Missing, 0);
        let Decision::Issue {
            candidates,
            ttl,
            max_ttl,
        } = decision
        else {
            panic!("{decision:?}")
        };
        assert_eq!(candidates.len(), 1, "the guest is no candidate");
        assert_eq!(candidates[0].id, "id-alice");
        assert_eq!((ttl.as_secs(), max_ttl.as_secs()), (3600, 7200));
    }

    #[test]
    fn ttl_over_max_ttl_is_refused() {
        let pool = pool();
        let decision = decide_at(
            &lease(|s| s.ttl = Some("3h".into())),
            Some(&pool),
            SecretState::Missing,
            0,
        );
        assert!(
            matches!(
                decision,
                Decision::Refuse {
                    reason: Reason::TTLExceedsMax,
                    ..
                }
            ),
            "{decision:?}"
        );
    }

    #[test]
    fn user_outside_the_pool_is_refused_and_unleasable_user_too() {
        let pool = pool();
        let stranger = lease(|s| s.user = Some("eve@contoso.com".into()));
        let guest = lease(|s| s.user = Some("BOB@contoso.com".into()));
        assert!(matches!(
            decide_at(&stranger, Some(&pool), SecretState::Missing, 0),
            Decision::Refuse {
                reason: Reason::UserNotInPool,
                ..
            }
        ));
        assert!(matches!(
            decide_at(&guest, Some(&pool), SecretState::Missing, 0),
            Decision::Refuse {
                reason: Reason::UserNotLeasable,
                ..
            }
        ));
    }

    #[test]
    fn missing_or_unready_pool_waits() {
        let mut pool = pool();
        assert!(matches!(
            decide_at(&lease(|_| {}), None, SecretState::Missing, 0),
            Decision::Wait {
                reason: Reason::DynamicSecretNotFound,
                ..
            }
        ));
        pool.metadata.generation = Some(2);
        assert!(matches!(
            decide_at(&lease(|_| {}), Some(&pool), SecretState::Missing, 0),
            Decision::Wait {
                reason: Reason::DynamicSecretNotReady,
                ..
            }
        ));
    }

    #[test]
    fn a_foreign_secret_is_never_taken() {
        let pool = pool();
        assert!(matches!(
            decide_at(&lease(|_| {}), Some(&pool), SecretState::Foreign, 0),
            Decision::Refuse {
                reason: Reason::SecretConflict,
                ..
            }
        ));
    }

    #[test]
    fn an_interrupted_issue_resumes_with_its_claimed_user() {
        let pool = pool();
        let lease = lease(|_| {});
        let held = LeasedUser {
            user_principal_name: "carol@contoso.com".into(),
            id: "id-carol".into(),
        };
        let facts = LeaseFacts {
            lease: &lease,
            pool: Some(&pool),
            secret: SecretState::Intact,
            held: Some(held),
            now: at(0),
        };
        let Decision::Issue { candidates, .. } = decide(&facts) else {
            panic!()
        };
        assert_eq!(candidates[0].id, "id-carol");
    }

    #[test]
    fn an_active_lease_holds_until_its_expiry_then_expires() {
        let pool = pool();
        let lease = active(|_| {});
        assert_eq!(
            decide_at(&lease, Some(&pool), SecretState::Intact, 10),
            Decision::Hold { until: at(3600) }
        );
        assert_eq!(
            decide_at(&lease, Some(&pool), SecretState::Intact, 3600),
            Decision::Expire
        );
        assert_eq!(
            decide_at(&lease, None, SecretState::Missing, 4000),
            Decision::Expire
        );
    }

    #[test]
    fn renewal_is_capped_at_max_ttl() {
        let pool = pool();
        let mut lease = active(|_| {});
        lease
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(RENEW_ANNOTATION.into(), "1".into());
        let mut longer = lease.clone();
        longer.spec.ttl = Some("2h".into());
        assert_eq!(
            decide_at(&lease, Some(&pool), SecretState::Intact, 600),
            Decision::Renew {
                expires_at: at(4200),
                capped: false,
                request: Some("1".into())
            }
        );
        assert_eq!(
            decide_at(&longer, Some(&pool), SecretState::Intact, 600),
            Decision::Renew {
                expires_at: at(7200),
                capped: true,
                request: Some("1".into())
            }
        );
        lease.status.as_mut().unwrap().last_renew_request = Some("1".into());
        assert!(
            matches!(
                decide_at(&lease, Some(&pool), SecretState::Intact, 600),
                Decision::Hold { .. }
            ),
            "each value renews once"
        );
    }

    #[test]
    fn auto_renewal_happens_when_a_third_of_the_ttl_remains() {
        let pool = pool();
        let lease = active(|s| s.auto_renew = true);
        assert_eq!(
            decide_at(&lease, Some(&pool), SecretState::Intact, 100),
            Decision::Hold { until: at(2400) }
        );
        assert_eq!(
            decide_at(&lease, Some(&pool), SecretState::Intact, 2400),
            Decision::Renew {
                expires_at: at(6000),
                capped: false,
                request: None
            }
        );
        let mut at_ceiling = active(|s| s.auto_renew = true);
        at_ceiling.status.as_mut().unwrap().expires_at = Some(Time(at(7200)));
        assert_eq!(
            decide_at(&at_ceiling, Some(&pool), SecretState::Intact, 7000),
            Decision::Hold { until: at(7200) },
            "no renewal past the ceiling"
        );
    }

    #[test]
    fn a_deleted_or_edited_secret_of_an_active_lease_is_restored() {
        let pool = pool();
        let lease = active(|_| {});
        for state in [SecretState::Missing, SecretState::Tampered] {
            assert_eq!(
                decide_at(&lease, Some(&pool), state, 10),
                Decision::Restore { cause: state }
            );
        }
    }

    #[test]
    fn ttl_edits_never_touch_an_active_credential() {
        let pool = pool();
        let lease = active(|s| s.ttl = Some("5h".into()));
        assert_eq!(
            decide_at(&lease, Some(&pool), SecretState::Intact, 10),
            Decision::Hold { until: at(3600) }
        );
    }
}
