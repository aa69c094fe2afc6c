//! The lifecycle's tests, named as the behaviours they hold.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::look_again::{NEXT_STEP_AFTER, ROLLOUT_POLL};
use super::*;
use crate::api::{
    DynamicSecretStatus, EntraDynamicSecret, EntraLease, EntraLeaseSpec, LeasedUser, PoolKind,
    PoolUser, RENEW_ANNOTATION,
};
use crate::controller::claim_record::ClaimRecord;
use crate::controller::claims::{HeldClaim, LeaseClaims};
use crate::controller::deadlines::{LONGEST_SLEEP, earlier, later, until_then};
use crate::controller::pool::Pool;
use crate::controller::reasons::Reason;
use crate::controller::rotation_schedule::Rollouts;
use crate::fixtures::{at, record};
use crate::secret::SecretState;
use crate::secret_types::SecretTypes;

/// A decision in a few words, for comparing what `decide` chose.
fn shape(decision: &Decision) -> String {
    match decision {
        Decision::Expire { .. } => "Expire".into(),
        Decision::EndCredentials { .. } => "EndCredentials".into(),
        Decision::Resume { .. } => "Resume".into(),
        Decision::Retire { .. } => "Retire".into(),
        Decision::Hold { until, .. } => hold(*until),
        Decision::Restore { cause, .. } => format!("Restore {cause:?}"),
        Decision::Renew {
            expires_at,
            capped,
            request,
            ..
        } => renew(*expires_at, *capped, request.clone()),
        other => format!("{other:?}"),
    }
}

fn hold(until: Timestamp) -> String {
    format!("Hold until {}", until.as_second())
}

fn renew(expires_at: Timestamp, capped: bool, request: Option<String>) -> String {
    format!(
        "Renew to {} capped {capped} request {request:?}",
        expires_at.as_second()
    )
}

/// The claims of a lease holding `record` (and a `previous` one).
fn claims_of(record: Option<&ClaimRecord>, previous: Option<&ClaimRecord>) -> LeaseClaims {
    let held = |record: &ClaimRecord| HeldClaim::holding(record.clone());
    LeaseClaims {
        current: record.map(held),
        previous: previous.map(held),
        older: Vec::new(),
    }
}

fn decide_facts(facts: &LeaseFacts<'_>) -> Decision {
    decide(facts)
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
        credential_expires_at: None,
    });
    pool
}

fn lease(spec: impl FnOnce(&mut EntraLeaseSpec)) -> EntraLease {
    let mut lease_spec = crate::fixtures::lease_spec();
    spec(&mut lease_spec);
    EntraLease::new("ci", lease_spec)
}

fn decide_at(
    lease: &EntraLease,
    pool: Option<&EntraDynamicSecret>,
    secret: SecretState,
    now: i64,
) -> Decision {
    decide_with(lease, pool, secret, None, now)
}

fn decide_with(
    lease: &EntraLease,
    pool: Option<&EntraDynamicSecret>,
    secret: SecretState,
    record: Option<&ClaimRecord>,
    now: i64,
) -> Decision {
    let resolved = pool
        .and_then(|p| p.status.as_ref())
        .map(|s| s.users.as_slice());
    let pool = pool.map(|p| Pool::Namespaced(std::sync::Arc::new(p.clone())));
    decide(&LeaseFacts {
        lease,
        pool: pool.as_ref(),
        served: true,
        served_read_live: false,
        secret,
        resolved,
        claims: &claims_of(record, None),
        rollouts: Rollouts::NotTracked,
        secret_types: &SecretTypes::default(),
        rollout_refusal: None,
        rotation_queued: false,
        namespace_holds: 0,
        min_forced_rotation: Duration::ZERO,
        now: at(now),
    })
}

#[test]
fn new_lease_issues_to_the_first_leasable_user_with_the_default_ttl() {
    let pool = pool();
    let decision = decide_at(&lease(|_| {}), Some(&pool), SecretState::Missing, 0);
    let Decision::Issue(issue) = decision else {
        panic!("{decision:?}")
    };
    let Issue {
        candidates,
        ttl,
        max_ttl,
        ..
    } = *issue;
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
fn candidates_come_from_the_operators_resolution_never_the_pool_status() {
    let mut pool = pool();
    // A pool editor writes the status: another user, leasable, and the guest made leasable.
    let forged = pool.status.as_mut().unwrap();
    forged.users[1].problem = None;
    forged.users.push(PoolUser {
        configured: "mallory@contoso.com".into(),
        id: Some("id-mallory".into()),
        user_principal_name: Some("mallory@contoso.com".into()),
        ..PoolUser::default()
    });
    let resolution = [PoolUser {
        configured: "alice@contoso.com".into(),
        id: Some("id-alice".into()),
        user_principal_name: Some("alice@contoso.com".into()),
        ..PoolUser::default()
    }];
    let pool = Pool::Namespaced(std::sync::Arc::new(pool));
    let decide_resolved = |lease: &EntraLease, resolved| {
        decide(&LeaseFacts {
            lease,
            pool: Some(&pool),
            served: true,
            served_read_live: false,
            secret: SecretState::Missing,
            resolved,
            claims: &claims_of(None, None),
            rollouts: Rollouts::NotTracked,
            secret_types: &SecretTypes::default(),
            rollout_refusal: None,
            namespace_holds: 0,
            rotation_queued: false,
            min_forced_rotation: Duration::ZERO,
            now: at(0),
        })
    };
    let Decision::Issue(issue) = decide_resolved(&lease(|_| {}), Some(&resolution)) else {
        panic!("an issue")
    };
    let candidates = issue.candidates;
    let ids: Vec<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["id-alice"]);
    let named = lease(|s| s.user = Some("id-mallory".into()));
    assert!(matches!(
        decide_resolved(&named, Some(&resolution)),
        Decision::Refuse {
            reason: Reason::UserNotInPool,
            ..
        }
    ));
    assert!(
        matches!(
            decide_resolved(&lease(|_| {}), None),
            Decision::Wait {
                reason: Reason::DynamicSecretNotReady,
                ..
            }
        ),
        "nothing is issued before the operator resolved the pool itself"
    );
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
    let mut unconfirmed = record();
    unconfirmed.issued = false;
    for secret in [SecretState::Intact, SecretState::Missing] {
        assert_eq!(
            shape(&decide_with(
                &lease(|_| {}),
                Some(&pool),
                secret,
                Some(&unconfirmed),
                10
            )),
            "Resume"
        );
    }
    assert_eq!(
        shape(&decide_with(
            &lease(|_| {}),
            None,
            SecretState::Intact,
            Some(&unconfirmed),
            10
        )),
        "Resume",
        "the recorded identity needs no pool"
    );
    assert_eq!(
        shape(&decide_with(
            &lease(|_| {}),
            Some(&pool),
            SecretState::Intact,
            Some(&unconfirmed),
            3600
        )),
        "Expire",
        "an unconfirmed credential still ends at its expiry"
    );
}

#[test]
fn a_forged_status_changes_no_decision() {
    use crate::api::{LeaseStatus, LeasedUser};
    let pool = pool();
    let record = record();
    let mut forged = lease(|_| {});
    forged.status = Some(LeaseStatus {
        phase: Some(LeasePhase::Active),
        user: Some(LeasedUser {
            user_principal_name: "mallory@contoso.com".into(),
            id: "id-mallory".into(),
        }),
        expires_at: Some(Time(at(99_999))),
        max_expires_at: Some(Time(at(99_999))),
        last_renew_request: Some("1".into()),
        ..LeaseStatus::default()
    });
    forged
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(RENEW_ANNOTATION.into(), "1".into());
    assert_eq!(
        shape(&decide_with(
            &forged,
            Some(&pool),
            SecretState::Intact,
            Some(&record),
            3600
        )),
        "Expire",
        "the recorded expiry holds"
    );
    assert!(
        matches!(
            decide_with(
                &forged,
                Some(&pool),
                SecretState::Intact,
                Some(&record),
                600
            ),
            Decision::Renew { .. }
        ),
        "the renewal request is judged by the record"
    );
    let mut no_status = forged.clone();
    no_status.status = None;
    assert!(matches!(
        decide_with(
            &no_status,
            Some(&pool),
            SecretState::Intact,
            Some(&record),
            600
        ),
        Decision::Renew { .. }
    ));
}

#[test]
fn a_failed_first_attempt_releases_and_a_failed_resumed_one_ends_the_credential() {
    use FailureKind::*;
    let steps = |kind, may_be_set, named_user| {
        after_failed_write(&FailedWrite {
            kind,
            may_be_set,
            nothing_applied: false,
            named_user,
            rotation: false,
        })
    };
    for may_be_set in [false, true] {
        let kept = steps(Transient, may_be_set, false);
        assert_eq!(
            (kept.ending, kept.then),
            (Ending::Keep, Then::Retry),
            "a transient failure keeps the claim: the next attempt resumes"
        );
    }
    // The window of a lost answer: the resumed password may work, so it is scrambled.
    for kind in [UserChangedInEntra, Refused, Permanent] {
        assert_eq!(steps(kind, true, false).ending, Ending::EndCredential);
        assert_eq!(steps(kind, false, false).ending, Ending::Release);
    }
    let refused = steps(Refused, false, false);
    assert_eq!(
        (refused.then, refused.set_aside),
        (Then::TryAnotherUser, true)
    );
    let named = steps(Refused, false, true);
    assert_eq!(
        (named.then, named.set_aside),
        (Then::Fail, false),
        "a named user is not swapped"
    );
    assert_eq!(steps(Permanent, false, false).then, Then::Fail);
    assert!(steps(UserChangedInEntra, false, true).resolve_pool_again);
    assert!(!steps(Refused, false, false).resolve_pool_again);
}

#[test]
fn a_failed_rotation_keeps_the_previous_credential_and_a_failed_user_is_set_aside() {
    use FailureKind::*;
    let steps = |kind, may_be_set| {
        after_failed_write(&FailedWrite {
            kind,
            may_be_set,
            nothing_applied: false,
            named_user: false,
            rotation: true,
        })
    };
    let refused = steps(Refused, false);
    assert_eq!(refused.ending, Ending::ReleaseKeepingPrevious);
    assert_eq!(refused.then, Then::KeepPrevious { soon: true });
    assert!(refused.set_aside, "another user is tried at once");
    let permanent = steps(Permanent, false);
    assert_eq!(permanent.then, Then::KeepPrevious { soon: false });
    assert!(!permanent.set_aside);
    assert_eq!(steps(Transient, false).then, Then::Retry);
    assert_eq!(
        steps(Permanent, true).ending,
        Ending::EndCredential,
        "a resumed rotation's password may work: it is scrambled"
    );
}

#[test]
fn a_resumed_issue_whose_every_write_was_refused_is_released_without_a_scramble() {
    use FailureKind::*;
    // Throttled first, then refused: no password of the claim works, and a scramble with the
    // same app would only be refused again.
    let steps = |kind, nothing_applied, rotation| {
        after_failed_write(&FailedWrite {
            kind,
            may_be_set: true,
            nothing_applied,
            named_user: false,
            rotation,
        })
    };
    let refused = steps(Refused, true, false);
    assert_eq!(refused.ending, Ending::Release);
    assert_eq!(
        (refused.then, refused.set_aside),
        (Then::TryAnotherUser, true)
    );
    assert_eq!(steps(Permanent, true, false).ending, Ending::Release);
    assert_eq!(
        steps(Refused, true, true).ending,
        Ending::ReleaseKeepingPrevious,
        "a rotation goes back to its previous credential alone"
    );
    // A write that may have applied (a 5xx, a lost answer) or one this process did not see (a
    // restart in between): today's rule, scramble then release.
    assert_eq!(steps(Refused, false, false).ending, Ending::EndCredential);
    assert_eq!(steps(Refused, false, true).ending, Ending::EndCredential);
    for nothing_applied in [false, true] {
        assert_eq!(
            steps(Transient, nothing_applied, false).ending,
            Ending::Keep,
            "a throttled write keeps the claim whatever came before"
        );
    }
}

#[test]
fn only_answers_that_applied_nothing_count_as_applying_nothing() {
    use crate::graph::{GraphError, TransientFailure, TransientKind};
    let throttled = crate::controller::Error::Graph(GraphError::TransientExhausted {
        operation: "reset a password",
        attempts: 3,
        elapsed: Duration::from_secs(120),
        last: Box::new(TransientFailure {
            kind: TransientKind::Throttled,
            retry_after: Some(Duration::from_secs(60)),
            diagnostics: Default::default(),
        }),
    });
    assert!(applied_nothing(&throttled));
    assert!(applied_nothing(&refused_by_entra()));
    assert!(applied_nothing(
        &crate::controller::Error::PasswordsRejected(3)
    ));
    assert!(
        !applied_nothing(&graph_unavailable()),
        "a 5xx may have applied"
    );
    assert!(
        !applied_nothing(&crate::controller::Error::Stale("the lease's Secret")),
        "a failure around the write may follow an applied one"
    );
}

#[test]
fn a_huge_renew_request_is_kept_by_its_digest_and_still_renews_once() {
    let pool = pool();
    let mut record = record();
    let mut lease = lease(|_| {});
    let huge = "x".repeat(100_000);
    lease
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(RENEW_ANNOTATION.into(), huge);
    let Decision::Renew { request, .. } =
        decide_with(&lease, Some(&pool), SecretState::Intact, Some(&record), 600)
    else {
        panic!("a renewal")
    };
    let request = request.unwrap();
    assert!(
        request.starts_with("sha256:") && request.len() == 71,
        "{request}"
    );
    record.last_renew_request = Some(request);
    assert!(matches!(
        decide_with(&lease, Some(&pool), SecretState::Intact, Some(&record), 600),
        Decision::Hold { .. }
    ));
}

#[test]
fn absurd_durations_give_far_deadlines_and_bounded_sleeps() {
    let far = later(at(0), Duration::from_secs(u64::MAX / 2));
    assert_eq!(far, Timestamp::MAX);
    assert_eq!(
        earlier(at(0), Duration::from_secs(u64::MAX / 2)),
        Timestamp::MIN
    );
    assert_eq!(until_then(far, at(0)), LONGEST_SLEEP);
    assert_eq!(until_then(at(0), at(10)), Duration::ZERO);
    let mut record = record();
    record.expires_at = Time(Timestamp::MAX);
    record.max_expires_at = Time(Timestamp::MAX);
    let lease = lease(|s| s.auto_renew = true);
    let decision = decide_with(&lease, Some(&pool()), SecretState::Intact, Some(&record), 0);
    assert!(matches!(decision, Decision::Hold { .. }), "{decision:?}");
}

#[test]
fn requeues_never_pass_the_held_credential_expiry() {
    let pool = Pool::Namespaced(std::sync::Arc::new(pool()));
    let record = record();
    let lease = lease(|_| {});
    let facts = LeaseFacts {
        lease: &lease,
        pool: Some(&pool),
        served: true,
        served_read_live: false,
        secret: SecretState::Intact,
        resolved: None,
        claims: &claims_of(Some(&record), None),
        rollouts: Rollouts::NotTracked,
        secret_types: &SecretTypes::default(),
        rollout_refusal: None,
        rotation_queued: false,
        namespace_holds: 0,
        min_forced_rotation: Duration::ZERO,
        now: at(3590),
    };
    let wait = Decision::Wait {
        reason: Reason::WaitingForUser,
        message: String::new(),
    };
    let after = look_again_after(&wait, &facts, &Outcome::Settled).unwrap();
    assert!(after <= Duration::from_secs(11), "{after:?}");
    let facts = LeaseFacts {
        claims: &claims_of(None, None),
        ..facts
    };
    assert_eq!(
        look_again_after(&wait, &facts, &Outcome::Settled),
        Some(LOOK_AGAIN_AFTER)
    );
    let expire = Decision::Expire {
        user: None,
        ending: Vec::new(),
    };
    assert_eq!(look_again_after(&expire, &facts, &Outcome::Settled), None);
    assert_eq!(
        look_again_after(&expire, &facts, &Outcome::GoOn),
        Some(NEXT_STEP_AFTER)
    );
    assert_eq!(
        look_again_after(&wait, &facts, &Outcome::IssueRefused),
        Some(RETRY_REFUSED_ISSUE)
    );
}

#[test]
fn an_active_lease_holds_until_its_expiry_then_expires() {
    let pool = pool();
    let lease = lease(|_| {});
    let record = record();
    assert_eq!(
        shape(&decide_with(
            &lease,
            Some(&pool),
            SecretState::Intact,
            Some(&record),
            10
        )),
        hold(at(3600))
    );
    assert_eq!(
        shape(&decide_with(
            &lease,
            Some(&pool),
            SecretState::Intact,
            Some(&record),
            3600
        )),
        "Expire"
    );
    assert_eq!(
        shape(&decide_with(
            &lease,
            None,
            SecretState::Missing,
            Some(&record),
            4000
        )),
        "Expire"
    );
}

#[test]
fn renewal_is_capped_at_max_ttl() {
    let pool = pool();
    let mut record = record();
    let mut lease = lease(|_| {});
    lease
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(RENEW_ANNOTATION.into(), "1".into());
    let mut longer = lease.clone();
    longer.spec.ttl = Some("2h".into());
    assert_eq!(
        shape(&decide_with(
            &lease,
            Some(&pool),
            SecretState::Intact,
            Some(&record),
            600
        )),
        renew(at(4200), false, Some("1".into()))
    );
    assert_eq!(
        shape(&decide_with(
            &longer,
            Some(&pool),
            SecretState::Intact,
            Some(&record),
            600
        )),
        renew(at(7200), true, Some("1".into()))
    );
    record.last_renew_request = Some("1".into());
    assert!(
        matches!(
            decide_with(&lease, Some(&pool), SecretState::Intact, Some(&record), 600),
            Decision::Hold { .. }
        ),
        "each value renews once"
    );
}

#[test]
fn auto_renewal_happens_when_a_third_of_the_ttl_remains() {
    let pool = pool();
    let lease = lease(|s| s.auto_renew = true);
    let mut record = record();
    assert_eq!(
        shape(&decide_with(
            &lease,
            Some(&pool),
            SecretState::Intact,
            Some(&record),
            100
        )),
        hold(at(2400))
    );
    assert_eq!(
        shape(&decide_with(
            &lease,
            Some(&pool),
            SecretState::Intact,
            Some(&record),
            2400
        )),
        renew(at(6000), false, None)
    );
    record.expires_at = Time(at(7200));
    assert_eq!(
        shape(&decide_with(
            &lease,
            Some(&pool),
            SecretState::Intact,
            Some(&record),
            7000
        )),
        hold(at(7200)),
        "no renewal past the ceiling"
    );
}

#[test]
fn a_deleted_or_edited_secret_of_an_active_lease_is_restored() {
    let pool = pool();
    let lease = lease(|_| {});
    let record = record();
    for state in [SecretState::Missing, SecretState::Tampered] {
        assert_eq!(
            shape(&decide_with(&lease, Some(&pool), state, Some(&record), 10)),
            format!("Restore {state:?}")
        );
    }
}

#[test]
fn a_pass_lease_is_not_restored_or_renewed() {
    let pool = pool();
    let mut record = record();
    record.access_pass = Some(crate::controller::claim_record::AccessPassRecord {
        lifetime_in_minutes: 60,
        usable_once: false,
        id: Some("pass".into()),
    });
    let mut lease = lease(|_| {});
    for state in [SecretState::Missing, SecretState::Tampered] {
        assert_eq!(
            shape(&decide_with(&lease, Some(&pool), state, Some(&record), 10)),
            "Expire",
            "a pass is shown once: taking its Secret ends the lease"
        );
    }
    lease
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(RENEW_ANNOTATION.into(), "1".into());
    let decision = decide_with(&lease, Some(&pool), SecretState::Intact, Some(&record), 600);
    assert!(
        matches!(
            decision,
            Decision::RenewDeclined {
                reason: Reason::NotForAccessPass,
                ..
            }
        ),
        "{decision:?}"
    );
}

#[test]
fn ttl_edits_never_touch_an_active_credential() {
    let pool = pool();
    let lease = lease(|s| s.ttl = Some("5h".into()));
    assert_eq!(
        shape(&decide_with(
            &lease,
            Some(&pool),
            SecretState::Intact,
            Some(&record()),
            10
        )),
        hold(at(3600))
    );
}

#[test]
fn a_namespace_the_cluster_pool_does_not_select_is_refused_and_an_active_lease_is_not_renewed() {
    let pool = Pool::Namespaced(std::sync::Arc::new(pool()));
    let resolved = pool.status().map(|s| s.users.clone()).unwrap_or_default();
    let lease = lease(|s| s.dynamic_secret_ref.kind = PoolKind::ClusterEntraDynamicSecret);
    let facts = LeaseFacts {
        lease: &lease,
        pool: Some(&pool),
        served: false,
        served_read_live: false,
        secret: SecretState::Missing,
        resolved: Some(&resolved),
        claims: &claims_of(None, None),
        rollouts: Rollouts::NotTracked,
        secret_types: &SecretTypes::default(),
        rollout_refusal: None,
        namespace_holds: 0,
        rotation_queued: false,
        min_forced_rotation: Duration::ZERO,
        now: at(0),
    };
    assert!(matches!(
        decide(&facts),
        Decision::Refuse {
            reason: Reason::NamespaceNotSelected,
            ..
        }
    ));
    let mut asking = lease.clone();
    asking
        .annotations_mut()
        .insert(RENEW_ANNOTATION.into(), "1".into());
    let record = record();
    let active = LeaseFacts {
        lease: &asking,
        secret: SecretState::Intact,
        claims: &claims_of(Some(&record), None),
        rollouts: Rollouts::NotTracked,
        resolved: None,
        ..facts
    };
    assert!(
        matches!(decide(&active), Decision::RenewDeclined { ref request, .. } if request == "1"),
        "a renewal is declined, the credential keeps its deadline"
    );
    let deleted = LeaseFacts {
        secret: SecretState::Missing,
        ..active
    };
    assert_eq!(
        shape(&decide(&deleted)),
        "Expire",
        "no fresh password for a namespace no longer served"
    );
    let mut auto = lease.clone();
    auto.spec.auto_renew = true;
    let auto_facts = LeaseFacts {
        lease: &auto,
        ..active
    };
    assert_eq!(shape(&decide(&auto_facts)), hold(record.expires_at()));
}

#[test]
fn a_template_that_cannot_render_is_refused_before_anything_is_issued() {
    let pool = pool();
    let lease = lease(|s| {
        s.template = Some(crate::api::SecretTemplate {
            data: [("dsn".to_owned(), "{{ expiresAt }}".to_owned())].into(),
            ..Default::default()
        })
    });
    let decision = decide_at(&lease, Some(&pool), SecretState::Missing, 0);
    assert!(
        matches!(
            decision,
            Decision::Refuse {
                reason: Reason::TemplateInvalid,
                ..
            }
        ),
        "{decision:?}"
    );
}

#[test]
fn a_lease_shown_active_past_its_expiry_without_a_claim_is_deleted_not_issued_again() {
    let pool = pool();
    let mut ended = lease(|_| {});
    ended.status = Some(crate::api::LeaseStatus {
        phase: Some(LeasePhase::Active),
        expires_at: Some(Time(at(100))),
        ..Default::default()
    });
    let decision = decide_at(&ended, Some(&pool), SecretState::Intact, 130);
    assert_eq!(shape(&decision), "Expire");
    // Before its expiry, a missing claim is a lease to issue (the status is no record).
    let decision = decide_at(&ended, Some(&pool), SecretState::Intact, 50);
    assert!(matches!(decision, Decision::Issue(_)), "{decision:?}");
}

#[test]
fn a_secret_type_the_administrator_did_not_list_is_refused_before_anything_is_issued() {
    let pool = pool();
    let typed = |kind: &str| {
        lease(|s| {
            s.template = Some(crate::api::SecretTemplate {
                type_: Some(kind.to_owned()),
                ..Default::default()
            })
        })
    };
    for kind in [
        "kubernetes.io/dockerconfigjson",
        crate::secret_types::SERVICE_ACCOUNT_TOKEN,
    ] {
        let decision = decide_at(&typed(kind), Some(&pool), SecretState::Missing, 0);
        let Decision::Refuse {
            reason, message, ..
        } = &decision
        else {
            panic!("{kind}: {decision:?}");
        };
        assert_eq!(*reason, Reason::SecretTypeNotAllowed, "{kind}");
        assert!(message.contains(kind), "{message}");
    }
    let allowed = decide_at(
        &typed("kubernetes.io/basic-auth"),
        Some(&pool),
        SecretState::Missing,
        0,
    );
    assert!(matches!(allowed, Decision::Issue(_)), "{allowed:?}");
}

fn continuous_lease(overlap: &str) -> EntraLease {
    lease(|s| {
        s.rotation = Some(crate::api::RotationSpec {
            enabled: true,
            overlap: Some(overlap.into()),
        })
    })
}

/// The test pool with a second leasable user, carol.
fn pool_with_carol() -> EntraDynamicSecret {
    let mut pool = pool();
    pool.status.as_mut().unwrap().users.push(PoolUser {
        configured: "carol@contoso.com".into(),
        id: Some("id-carol".into()),
        user_principal_name: Some("carol@contoso.com".into()),
        ..PoolUser::default()
    });
    pool
}

fn decide_continuous(
    lease: &EntraLease,
    pool: &EntraDynamicSecret,
    record: &ClaimRecord,
    previous: Option<&ClaimRecord>,
    rollouts: Rollouts,
    now: i64,
) -> Decision {
    let resolved = pool.status.as_ref().map(|s| s.users.as_slice());
    let pool = Pool::Namespaced(std::sync::Arc::new(pool.clone()));
    decide(&LeaseFacts {
        lease,
        pool: Some(&pool),
        served: true,
        served_read_live: false,
        secret: SecretState::Intact,
        resolved,
        claims: &claims_of(Some(record), previous),
        rollouts,
        secret_types: &SecretTypes::default(),
        namespace_holds: 0,
        rollout_refusal: None,
        rotation_queued: false,
        min_forced_rotation: Duration::ZERO,
        now: at(now),
    })
}

#[test]
fn a_continuous_lease_rotates_to_another_user_one_overlap_before_its_ceiling() {
    let lease = continuous_lease("10m");
    let pool = pool_with_carol();
    let mut record = record();
    record.expires_at = Time(at(7200));
    let decide = |now| decide_continuous(&lease, &pool, &record, None, Rollouts::NotTracked, now);
    assert_eq!(shape(&decide(6000)), hold(at(6600)));
    let Decision::Rotate(rotation) = decide(6600) else {
        panic!("a rotation at the ceiling minus the overlap")
    };
    let ids: Vec<&str> = rotation.candidates.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["id-carol"], "never the same user twice in a row");
    assert_eq!(
        shape(&decide(7200)),
        "EndCredentials",
        "not deleted at its end"
    );
    let plain = lease_with_record_at(&pool, &record, 7200);
    assert_eq!(shape(&plain), "Expire");
}

fn lease_with_record_at(pool: &EntraDynamicSecret, record: &ClaimRecord, now: i64) -> Decision {
    decide_with(
        &lease(|_| {}),
        Some(pool),
        SecretState::Intact,
        Some(record),
        now,
    )
}

#[test]
fn a_continuous_lease_renews_itself_up_to_its_ceiling() {
    let lease = continuous_lease("10m");
    let pool = pool_with_carol();
    let record = record(); // expires at 3600, ceiling 7200, TTL 1h
    assert_eq!(
        shape(&decide_continuous(
            &lease,
            &pool,
            &record,
            None,
            Rollouts::NotTracked,
            2400
        )),
        renew(at(6000), false, None)
    );
}

#[test]
fn with_no_other_user_free_a_rotation_waits_and_the_credential_runs_on() {
    let lease = continuous_lease("10m");
    let pool = pool();
    let mut record = record();
    record.expires_at = Time(at(7200));
    assert!(matches!(
        decide_continuous(&lease, &pool, &record, None, Rollouts::NotTracked, 6600),
        Decision::RotationWaiting { .. }
    ));
}

#[test]
fn the_previous_credential_ends_when_rollouts_complete_or_the_overlap_runs_out() {
    let lease = continuous_lease("10m");
    let pool = pool_with_carol();
    let mut previous = record();
    previous.expires_at = Time(at(7200));
    let mut current = record();
    current.user = LeasedUser {
        user_principal_name: "carol@contoso.com".into(),
        id: "id-carol".into(),
    };
    current.generation = 2;
    current.issued_at = Time(at(6600));
    current.expires_at = Time(at(6600 + 3600));
    current.max_expires_at = Time(at(6600 + 7200));
    let decide =
        |rollouts, now| decide_continuous(&lease, &pool, &current, Some(&previous), rollouts, now);
    assert_eq!(
        shape(&decide(Rollouts::InProgress, 6700)),
        hold(at(7200)),
        "held until the overlap ends, and no rotation meanwhile"
    );
    assert_eq!(shape(&decide(Rollouts::Complete, 6700)), "Retire");
    assert_eq!(shape(&decide(Rollouts::InProgress, 7200)), "Retire");
    let pool_arc = Pool::Namespaced(std::sync::Arc::new(pool.clone()));
    let facts = LeaseFacts {
        lease: &lease,
        pool: Some(&pool_arc),
        served: true,
        served_read_live: false,
        secret: SecretState::Intact,
        resolved: None,
        claims: &claims_of(Some(&current), Some(&previous)),
        rollouts: Rollouts::InProgress,
        namespace_holds: 0,
        secret_types: &SecretTypes::default(),
        rollout_refusal: None,
        rotation_queued: false,
        min_forced_rotation: Duration::ZERO,
        now: at(6700),
    };
    assert_eq!(
        look_again_after(&decide_facts(&facts), &facts, &Outcome::Settled),
        Some(ROLLOUT_POLL),
        "rollouts are looked at often while the previous credential waits for them"
    );
}

#[test]
fn a_continuous_lease_that_cannot_rotate_is_refused() {
    let pool = pool_with_carol();
    let too_long = continuous_lease("2h");
    assert!(matches!(
        decide_at(&too_long, Some(&pool), SecretState::Missing, 0),
        Decision::Refuse {
            reason: Reason::InvalidRotation,
            ..
        }
    ));
    let mut named = continuous_lease("10m");
    named.spec.user = Some("alice@contoso.com".into());
    assert!(matches!(
        decide_at(&named, Some(&pool), SecretState::Missing, 0),
        Decision::Refuse {
            reason: Reason::InvalidRotation,
            ..
        }
    ));
    assert!(matches!(
        decide_at(
            &continuous_lease("10m"),
            Some(&pool),
            SecretState::Missing,
            0
        ),
        Decision::Issue(_)
    ));
}

fn refused_by_entra() -> crate::controller::Error {
    crate::controller::Error::Graph(crate::graph::GraphError::MissingPermission {
        operation: "reset a password",
        diagnostics: Default::default(),
    })
}

fn graph_unavailable() -> crate::controller::Error {
    use crate::graph::{GraphError, TransientFailure, TransientKind};
    crate::controller::Error::Graph(GraphError::TransientExhausted {
        operation: "reset a password",
        attempts: 3,
        elapsed: Duration::from_secs(120),
        last: Box::new(TransientFailure {
            kind: TransientKind::Unavailable { status: 503 },
            retry_after: None,
            diagnostics: Default::default(),
        }),
    })
}

#[test]
fn an_interrupted_issue_in_a_namespace_no_longer_served_as_read_now_ends_instead_of_resuming() {
    let pool = Pool::Namespaced(std::sync::Arc::new(pool()));
    let lease = lease(|s| s.dynamic_secret_ref.kind = PoolKind::ClusterEntraDynamicSecret);
    let mut unconfirmed = record();
    unconfirmed.issued = false;
    let facts = LeaseFacts {
        lease: &lease,
        pool: Some(&pool),
        served: false,
        served_read_live: false,
        secret: SecretState::Intact,
        resolved: None,
        namespace_holds: 0,
        claims: &claims_of(Some(&unconfirmed), None),
        rollouts: Rollouts::NotTracked,
        rollout_refusal: None,
        rotation_queued: false,
        min_forced_rotation: Duration::ZERO,
        secret_types: &SecretTypes::default(),
        now: at(10),
    };
    let cached = decide(&facts);
    assert_eq!(
        shape(&cached),
        "Resume",
        "the cache may lag a label just added: a resume is decided on the labels read now"
    );
    assert_eq!(cached.needs(), Reads::LiveClaimsAndNamespace);
    let live = LeaseFacts {
        served_read_live: true,
        ..facts
    };
    let decision = decide(&live);
    let Decision::Refuse { reason, ending, .. } = &decision else {
        panic!("{decision:?}")
    };
    assert_eq!(*reason, Reason::NamespaceNotSelected);
    assert_eq!(ending.len(), 1, "the claim it holds ends");
    assert_eq!(decision.needs(), Reads::LiveClaims);
    let gone = LeaseFacts { pool: None, ..live };
    assert_eq!(
        shape(&decide(&gone)),
        "Resume",
        "without its pool, the resume finds the pool changed and issues again"
    );
    let served = LeaseFacts {
        served: true,
        ..live
    };
    assert_eq!(shape(&decide(&served)), "Resume");
    assert_eq!(decide(&served).needs(), Reads::LiveClaimsAndNamespace);
}

#[test]
fn a_new_lease_waits_while_a_continuous_lease_of_its_pool_waits_to_rotate() {
    let pool = Pool::Namespaced(std::sync::Arc::new(pool()));
    let resolved = pool.status().map(|s| s.users.clone()).unwrap_or_default();
    let lease = lease(|_| {});
    let facts = LeaseFacts {
        lease: &lease,
        pool: Some(&pool),
        served: true,
        served_read_live: false,
        secret: SecretState::Missing,
        namespace_holds: 0,
        resolved: Some(&resolved),
        claims: &claims_of(None, None),
        rollouts: Rollouts::NotTracked,
        rollout_refusal: None,
        rotation_queued: true,
        min_forced_rotation: Duration::ZERO,
        secret_types: &SecretTypes::default(),
        now: at(0),
    };
    assert!(matches!(
        decide(&facts),
        Decision::Wait {
            reason: Reason::WaitingForUser,
            ..
        }
    ));
    let first = LeaseFacts {
        rotation_queued: false,
        min_forced_rotation: Duration::ZERO,
        ..facts
    };
    let issue = decide(&first);
    assert!(matches!(issue, Decision::Issue(_)), "{issue:?}");
    assert_eq!(issue.needs(), Reads::LiveClaimsAndNamespace);
}

#[test]
fn what_a_decision_is_taken_on_grows_with_what_it_changes() {
    let pool = pool();
    let record = record();
    let lease = lease(|_| {});
    let at_rest = decide_with(&lease, Some(&pool), SecretState::Intact, Some(&record), 10);
    assert_eq!(at_rest.needs(), Reads::Cached, "{at_rest:?}");
    let expired = decide_with(
        &lease,
        Some(&pool),
        SecretState::Intact,
        Some(&record),
        3600,
    );
    assert_eq!(expired.needs(), Reads::LiveClaims);
    let refused = decide_at(
        &lease_with(|s| s.ttl = Some("3h".into())),
        Some(&pool),
        SecretState::Missing,
        0,
    );
    assert_eq!(
        refused.needs(),
        Reads::Cached,
        "a refusal that ends nothing needs no live read"
    );
}

fn lease_with(spec: impl FnOnce(&mut EntraLeaseSpec)) -> EntraLease {
    lease(spec)
}

#[test]
fn when_every_user_is_taken_an_issue_waits_and_a_rotation_runs_on() {
    let pool = Pool::Namespaced(std::sync::Arc::new(pool()));
    let named = lease(|s| s.user = Some("alice@contoso.com".into()));
    let Decision::Wait { reason, message } = nobody_free_to_issue(&named, &pool) else {
        panic!("a wait")
    };
    assert_eq!(reason, Reason::WaitingForUser);
    assert!(message.contains("alice@contoso.com"), "{message}");
    let current = std::sync::Arc::new(record());
    let Decision::RotationWaiting { queue_for, .. } = nobody_free_to_rotate(&pool, current) else {
        panic!("a rotation wait")
    };
    assert_eq!(
        queue_for,
        Some(pool.key()),
        "it goes first for the next freed user"
    );
}

#[test]
fn a_pool_credential_entra_refuses_fails_an_issue_and_lets_a_rotation_run_on() {
    let pool = Pool::Namespaced(std::sync::Arc::new(pool()));
    let current = std::sync::Arc::new(record());
    let refused = refused_by_entra();
    assert!(matches!(
        issue_credential_failed(&refused),
        Some(Decision::FailIssue { .. })
    ));
    assert!(matches!(
        rotation_credential_failed(&refused, &pool, current.clone()),
        Some(Decision::RotationWaiting { .. })
    ));
    let unavailable = graph_unavailable();
    assert_eq!(
        issue_credential_failed(&unavailable),
        None,
        "retried as it is"
    );
    assert_eq!(
        rotation_credential_failed(&unavailable, &pool, current.clone()),
        None
    );
    let unreadable = crate::controller::Error::ClientSecret("Secret app not found".into());
    assert_eq!(
        issue_credential_failed(&unreadable),
        None,
        "an unreadable Secret fails the reconcile, not the lease"
    );
    assert_eq!(
        rotation_credential_failed(&unreadable, &pool, current.clone()),
        None
    );
    assert!(matches!(
        issue_credential_ends_soon(),
        Decision::Refuse {
            reason: Reason::CredentialEndsSoon,
            ..
        }
    ));
    assert!(matches!(
        rotation_credential_ends_soon(&pool, current),
        Decision::RotationWaiting { .. }
    ));
}

#[test]
fn a_pool_changed_under_an_interrupted_issue_reissues_and_under_a_restore_ends() {
    let claim = HeldClaim::holding(record());
    assert!(matches!(
        resume_after_pool_changed(claim),
        Decision::Reissue { .. }
    ));
    assert_eq!(shape(&restore_after_pool_changed(&record())), "Expire");
}

#[test]
fn a_hold_carries_why_a_restart_target_will_not_roll_out() {
    let lease = continuous_lease("10m");
    let pool = Pool::Namespaced(std::sync::Arc::new(pool_with_carol()));
    let mut current = record();
    current.generation = 2;
    current.issued_at = Time(at(6600));
    current.expires_at = Time(at(6600 + 3600));
    current.max_expires_at = Time(at(6600 + 7200));
    let mut previous = record();
    previous.expires_at = Time(at(7200));
    let facts = LeaseFacts {
        lease: &lease,
        pool: Some(&pool),
        served: true,
        namespace_holds: 0,
        served_read_live: false,
        secret: SecretState::Intact,
        resolved: None,
        claims: &claims_of(Some(&current), Some(&previous)),
        rollouts: Rollouts::InProgress,
        rollout_refusal: Some("deployment web: forbidden"),
        rotation_queued: false,
        min_forced_rotation: Duration::ZERO,
        secret_types: &SecretTypes::default(),
        now: at(6700),
    };
    let Decision::Hold {
        rollout_refusal, ..
    } = decide(&facts)
    else {
        panic!("a hold")
    };
    assert_eq!(
        rollout_refusal.as_deref(),
        Some("deployment web: forbidden")
    );
}

#[test]
fn an_active_credential_is_looked_at_again_at_its_end_or_when_its_previous_one_retires() {
    let lease = continuous_lease("10m");
    let mut current = record();
    current.issued_at = Time(at(6600));
    current.expires_at = Time(at(10_200));
    let mut previous = record();
    previous.expires_at = Time(at(7200));
    let previous = std::sync::Arc::new(previous);
    let facts = LeaseFacts {
        lease: &lease,
        pool: None,
        namespace_holds: 0,
        served: true,
        served_read_live: false,
        secret: SecretState::Intact,
        resolved: None,
        claims: &claims_of(None, None),
        rollouts: Rollouts::NotTracked,
        rollout_refusal: None,
        rotation_queued: false,
        min_forced_rotation: Duration::ZERO,
        secret_types: &SecretTypes::default(),
        now: at(6600),
    };
    let wait = Decision::Wait {
        reason: Reason::WaitingForUser,
        message: String::new(),
    };
    let alone = Outcome::Active {
        current: std::sync::Arc::new(current.clone()),
        previous: None,
    };
    let after = look_again_after(&wait, &facts, &alone).unwrap();
    assert_eq!(after.as_secs(), 3600, "at its end");
    let rotated = Outcome::Active {
        current: std::sync::Arc::new(current),
        previous: Some(previous),
    };
    let after = look_again_after(&wait, &facts, &rotated).unwrap();
    assert_eq!(
        after.as_secs(),
        600,
        "when the previous one retires, one overlap after the rotation"
    );
    let waits = Outcome::RotationWaits {
        expires_at: at(6610),
    };
    let after = look_again_after(&wait, &facts, &waits).unwrap();
    assert_eq!(after.as_secs(), 10, "never past the credential's end");
}

/// A record whose lease was restored at `last_at` with the next restore `delay` seconds later.
fn restored_at(last_at: i64, delay: u64) -> ClaimRecord {
    let mut record = record();
    record.restores = Some(crate::controller::restore_backoff::RestoreBackoff {
        last_at: Time(at(last_at)),
        delay_seconds: delay,
    });
    record
}

#[test]
fn the_first_restore_of_a_lease_is_at_once_and_recorded_for_the_next() {
    let pool = pool();
    let lease = lease(|_| {});
    let decision = decide_with(
        &lease,
        Some(&pool),
        SecretState::Missing,
        Some(&record()),
        10,
    );
    let Decision::Restore { restores, .. } = decision else {
        panic!("a first restore at once, got {decision:?}")
    };
    assert_eq!(restores.last_at, Time(at(10)));
    assert_eq!(restores.delay_seconds, 30);
}

#[test]
fn a_secret_taken_again_soon_after_a_restore_ends_the_credential_until_its_backoff() {
    let pool = pool();
    let lease = lease(|_| {});
    let record = restored_at(0, 30);
    for state in [SecretState::Missing, SecretState::Tampered] {
        let decision = decide_with(&lease, Some(&pool), state, Some(&record), 10);
        assert!(
            matches!(
                &decision,
                Decision::EndUntilRestore { restore_at, cause, .. }
                    if *restore_at == at(30) && *cause == state
            ),
            "{decision:?}"
        );
        assert_eq!(decision.needs(), Reads::LiveClaims, "ends on a live claim");
    }
    assert!(matches!(
        decide_with(&lease, Some(&pool), SecretState::Missing, Some(&record), 30),
        Decision::Restore { .. }
    ));
}

#[test]
fn a_credential_ended_for_its_restore_waits_without_a_graph_write_then_is_restored() {
    let pool = pool();
    let lease = lease(|_| {});
    let mut record = restored_at(0, 30);
    record.restore_at = Some(Time(at(30)));
    for state in [
        SecretState::Missing,
        SecretState::Tampered,
        SecretState::Intact,
    ] {
        let decision = decide_with(&lease, Some(&pool), state, Some(&record), 20);
        assert!(
            matches!(&decision, Decision::RestoreWaits { restore_at, .. } if *restore_at == at(30)),
            "{decision:?}"
        );
        assert_eq!(
            decision.needs(),
            Reads::LiveClaims,
            "judged on the claim as it is"
        );
    }
    let held = claims_of(Some(&record), None);
    let facts = LeaseFacts {
        lease: &lease,
        pool: None,
        served: true,
        served_read_live: false,
        secret: SecretState::Missing,
        resolved: None,
        claims: &held,
        rollouts: Rollouts::NotTracked,
        secret_types: &SecretTypes::default(),
        rollout_refusal: None,
        rotation_queued: false,
        min_forced_rotation: Duration::ZERO,
        namespace_holds: 0,
        now: at(20),
    };
    let waits = decide_facts(&facts);
    assert_eq!(
        look_again_after(&waits, &facts, &Outcome::Settled),
        Some(until_then(at(30), at(20))),
        "looked at again when the restore is due"
    );
    let restore = decide_with(&lease, Some(&pool), SecretState::Missing, Some(&record), 30);
    let Decision::Restore { restores, .. } = restore else {
        panic!("restored when due, got {restore:?}")
    };
    assert_eq!(
        restores.delay_seconds, 60,
        "the next one waits twice as long"
    );
}

#[test]
fn a_credential_waiting_for_its_restore_still_expires_at_its_end() {
    let pool = pool();
    let lease = lease(|_| {});
    let mut record = restored_at(3500, 300);
    record.restore_at = Some(Time(at(3800)));
    assert_eq!(
        shape(&decide_with(
            &lease,
            Some(&pool),
            SecretState::Missing,
            Some(&record),
            3600
        )),
        "Expire"
    );
}

#[test]
fn rotate_requests_on_a_short_overlap_are_spaced_by_the_operators_minimum() {
    let mut lease = continuous_lease("1s");
    lease
        .annotations_mut()
        .insert(crate::api::ROTATE_ANNOTATION.into(), "now".into());
    let pool = pool_with_carol();
    let pool = Pool::Namespaced(std::sync::Arc::new(pool));
    let resolved = match &pool {
        Pool::Namespaced(p) => p.status.as_ref().map(|s| s.users.as_slice()),
        Pool::Cluster(_) => None,
    };
    let held = claims_of(Some(&record()), None);
    let decide_at = |now| {
        decide(&LeaseFacts {
            lease: &lease,
            pool: Some(&pool),
            served: true,
            served_read_live: false,
            secret: SecretState::Intact,
            resolved,
            claims: &held,
            rollouts: Rollouts::NotTracked,
            secret_types: &SecretTypes::default(),
            rollout_refusal: None,
            rotation_queued: false,
            min_forced_rotation: Duration::from_secs(60),
            namespace_holds: 0,
            now: at(now),
        })
    };
    assert_eq!(
        shape(&decide_at(5)),
        hold(at(60)),
        "not once per 1s overlap"
    );
    assert!(matches!(decide_at(60), Decision::Rotate(_)));
}

/// The test pool (with carol) as a cluster pool whose namespaces may each hold `limit` users.
fn shared_pool(limit: u32) -> Pool {
    let namespaced = pool_with_carol();
    let spec = crate::api::ClusterEntraDynamicSecretSpec {
        pool: namespaced.spec.pool.clone(),
        namespace_selector: Default::default(),
        max_leases_per_namespace: Some(limit),
    };
    let mut pool = crate::api::ClusterEntraDynamicSecret::new("shared", spec);
    pool.metadata.generation = namespaced.metadata.generation;
    pool.status = namespaced.status.clone();
    Pool::Cluster(std::sync::Arc::new(pool))
}

fn decide_sharing(
    lease: &EntraLease,
    pool: &Pool,
    record: Option<&ClaimRecord>,
    namespace_holds: u32,
    now: i64,
) -> Decision {
    let resolved = pool.status().map(|s| s.users.clone()).unwrap_or_default();
    decide(&LeaseFacts {
        lease,
        pool: Some(pool),
        served: true,
        served_read_live: false,
        secret: if record.is_some() {
            SecretState::Intact
        } else {
            SecretState::Missing
        },
        resolved: Some(&resolved),
        claims: &claims_of(record, None),
        rollouts: Rollouts::NotTracked,
        secret_types: &SecretTypes::default(),
        rollout_refusal: None,
        rotation_queued: false,
        min_forced_rotation: Duration::ZERO,
        namespace_holds,
        now: at(now),
    })
}

#[test]
fn a_lease_over_its_namespaces_share_of_a_cluster_pool_waits_with_the_limit_named() {
    let pool = shared_pool(2);
    let mut lease = lease(|s| s.dynamic_secret_ref.kind = PoolKind::ClusterEntraDynamicSecret);
    lease.metadata.namespace = Some("team".into());
    let Decision::Wait { reason, message } = decide_sharing(&lease, &pool, None, 2, 0) else {
        panic!("a wait at the share")
    };
    assert_eq!(reason, Reason::NamespaceShareExhausted);
    assert!(
        message.contains("maxLeasesPerNamespace of 2") && message.contains("team"),
        "{message}"
    );
    let Decision::Issue(issue) = decide_sharing(&lease, &pool, None, 1, 0) else {
        panic!("an issue under the share")
    };
    assert_eq!(
        issue.namespace_share,
        Some(2),
        "the shell counts again from the live claims before it claims"
    );
}

#[test]
fn a_rotation_is_not_held_back_by_its_namespaces_share() {
    // The rotating lease already counts once; its second user for the overlap is beyond the
    // share, or a namespace at its share could never rotate.
    let pool = shared_pool(1);
    let lease = continuous_lease("10m");
    let mut record = record();
    record.expires_at = Time(at(7200));
    let decision = decide_sharing(&lease, &pool, Some(&record), 1, 6600);
    assert!(matches!(decision, Decision::Rotate(_)), "{decision:?}");
}
