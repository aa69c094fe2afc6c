//! What follows an effect that did not go as decided: nobody free to claim, a pool credential
//! Entra will not take, a pool changed under an interrupted issue, a failed password write. Pure,
//! like [`decide`](super::decide), so every path of a lease's life is decided in one place.

use std::sync::Arc;

use super::Decision;
use crate::api::EntraLease;
use crate::controller::Error;
use crate::controller::claim_record::ClaimRecord;
use crate::controller::claims::HeldClaim;
use crate::controller::lease::messages;
use crate::controller::pool::Pool;
use crate::controller::reasons::Reason;
use crate::graph::GraphError;

/// Every candidate of an issue was taken by the time it tried to claim one.
pub fn nobody_free_to_issue(lease: &EntraLease, pool: &Pool) -> Decision {
    Decision::Wait {
        reason: Reason::WaitingForUser,
        message: messages::nobody_free(lease.spec.user.as_deref(), pool),
    }
}

/// A lease of a pool with `maxLeasesPerNamespace` whose namespace's other leases hold `holds`
/// of its users (counted from the claims): at the share, it waits until one of them ends (its
/// namespace's next release wakes it). `None`: room for one more.
pub fn over_namespace_share(lease: &EntraLease, pool: &Pool, holds: u32) -> Option<Decision> {
    let limit = pool.max_leases_per_namespace()?;
    let namespace = lease.metadata.namespace.as_deref().unwrap_or_default();
    (holds >= limit).then(|| Decision::Wait {
        reason: Reason::NamespaceShareExhausted,
        message: messages::namespace_share_exhausted(namespace, pool, limit),
    })
}

/// Every user a rotation could move to was taken: the current credential runs on.
pub fn nobody_free_to_rotate(pool: &Pool, current: Arc<ClaimRecord>) -> Decision {
    Decision::RotationWaiting {
        queue_for: Some(pool.key()),
        message: messages::nobody_free_to_rotate(pool, &current),
        current,
    }
}

/// The pool's certificate ends before a credential issued now could be revoked with it.
pub fn issue_credential_ends_soon() -> Decision {
    Decision::Refuse {
        reason: Reason::CredentialEndsSoon,
        message: messages::CERTIFICATE_ENDS_SOON.to_owned(),
        ending: Vec::new(),
    }
}

/// Reading the pool's credential or getting a token with it failed: Entra's refusals fail the
/// issue for now (permissions and roles can be fixed in Entra without any change here); `None`:
/// the failure passes, and the issue is retried as it is.
pub fn issue_credential_failed(error: &Error) -> Option<Decision> {
    match error {
        Error::Graph(_) if FailureKind::of(error) != FailureKind::Transient => {
            Some(Decision::FailIssue {
                reason: error.reason(),
                message: error.to_string(),
            })
        }
        _ => None,
    }
}

/// A due rotation whose pool's certificate ends too soon: the current credential runs on.
pub fn rotation_credential_ends_soon(pool: &Pool, current: Arc<ClaimRecord>) -> Decision {
    Decision::RotationWaiting {
        queue_for: Some(pool.key()),
        current,
        message: messages::CERTIFICATE_ENDS_SOON_ROTATION.to_owned(),
    }
}

/// A due rotation whose pool's credential failed for good: the current credential runs on;
/// `None`: the failure passes, and the rotation is retried as it is.
pub fn rotation_credential_failed(
    error: &Error,
    pool: &Pool,
    current: Arc<ClaimRecord>,
) -> Option<Decision> {
    (FailureKind::of(error) != FailureKind::Transient).then(|| Decision::RotationWaiting {
        queue_for: Some(pool.key()),
        current,
        message: error.to_string(),
    })
}

/// An interrupted issue whose pool or app changed since its claim was written: nothing is set
/// with what issued it; its credential ends, and the lease is issued again as its pool is now.
pub fn resume_after_pool_changed(claim: HeldClaim) -> Decision {
    Decision::Reissue { claim }
}

/// A restore whose pool or app changed since the issue: no fresh password from what issued it;
/// the credential ends with the lease.
pub fn restore_after_pool_changed(record: &ClaimRecord) -> Decision {
    Decision::Expire {
        user: Some(record.user.user_principal_name.clone()),
        ending: Vec::new(),
    }
}

/// What kind of failure ended an attempt to set a lease's password (or to get the credential
/// ready for one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Worth retrying as is (Graph unavailable, throttled, the API server, a stale copy).
    Transient,
    /// The user is gone from Entra or no longer leasable (disabled, guest, synced).
    UserChangedInEntra,
    /// Entra refused the reset: a protected admin, or the app lacks its role.
    Refused,
    /// Anything else Entra will keep refusing (a bad credential, rejected passwords).
    Permanent,
}

impl FailureKind {
    pub fn of(error: &Error) -> FailureKind {
        match error {
            Error::Graph(graph) if graph.is_transient() => FailureKind::Transient,
            Error::Graph(GraphError::UserNotFound { .. } | GraphError::UserNotLeasable { .. }) => {
                FailureKind::UserChangedInEntra
            }
            Error::Graph(GraphError::MissingPermission { .. }) => FailureKind::Refused,
            Error::Graph(_)
            | Error::PasswordsRejected(_)
            | Error::SecretNotOwned(_)
            | Error::Template(_)
            | Error::SecretType(_) => FailureKind::Permanent,
            Error::KubeConflict(_)
            | Error::KubeNotFound(_)
            | Error::KubeForbidden(_)
            | Error::KubeServer(_)
            | Error::ClientSecret(_)
            | Error::Credential { .. }
            | Error::CredentialLost(_)
            | Error::MalformedClaim(_)
            | Error::SignInMethodsRemain(_)
            | Error::SessionsNotRevoked(_)
            | Error::Stale(_)
            | Error::WaitingForLeases(_)
            | Error::Finalizer(_) => FailureKind::Transient,
        }
    }

    /// The user, not the lease or the app, is why it failed: another user may do.
    fn is_the_users(self) -> bool {
        matches!(self, FailureKind::UserChangedInEntra | FailureKind::Refused)
    }
}

/// True when a failed password write surely applied nothing: Entra answered it with a 4xx
/// (throttling included), or every generated password was rejected. A 5xx, a lost answer, or a
/// failure around the write (the Secret, the claim) may have let a password through.
pub fn applied_nothing(error: &Error) -> bool {
    match error {
        Error::Graph(graph) => !graph.may_have_applied(),
        Error::PasswordsRejected(_) => true,
        _ => false,
    }
}

/// The facts about a failed password write.
#[derive(Clone, Copy, Debug)]
pub struct FailedWrite {
    pub kind: FailureKind,
    /// A password of this claim may already work: the attempt re-sent one an earlier attempt
    /// may have set (a lost answer), or the credential it replaces (a restore) was set.
    pub may_be_set: bool,
    /// Every password write of this issue, this one included, was made by this process and
    /// answered without applying anything (a 4xx, throttling included): whatever `may_be_set`
    /// feared, no password of it works.
    pub nothing_applied: bool,
    /// The lease names its user: no other user may be tried instead.
    pub named_user: bool,
    /// The write was a rotation's new credential, beside a previous one that still works.
    pub rotation: bool,
}

/// How the claim of a failed write ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Kept, and the write retried as it is (the next attempt resumes the same password).
    Keep,
    /// A password may work: scramble it (with the claim kept until that succeeds), then release.
    EndCredential,
    /// Entra never took a password: release the user as it is.
    Release,
    /// A rotation's new user never got a password: the Secret goes back to the previous
    /// credential alone, and the new user is released.
    ReleaseKeepingPrevious,
}

/// What the lease does once the claim has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// The failure passes (retried with backoff).
    Retry,
    /// Set the user aside for a while and try another free user at once.
    TryAnotherUser,
    /// Failed with the error's reason; tried again later.
    Fail,
    /// The previous credential stays and the lease waits to rotate; with `soon`, it tries
    /// another user at once (the failed one is set aside).
    KeepPrevious { soon: bool },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailedWriteSteps {
    pub ending: Ending,
    /// The user is set aside for a while for every lease that does not name it.
    pub set_aside: bool,
    /// The pool's users are resolved again (one changed in Entra since), so its status says why.
    pub resolve_pool_again: bool,
    pub then: Then,
}

/// Every crash window of an issue and a rotation ends here: a transient failure keeps the claim,
/// a permanent one after a resumed attempt ends the credential (entra-graph.md: keep the claim
/// and revoke), and only an issue whose every write Entra surely refused releases the user
/// unscrambled (a scramble with an app Entra refuses would never succeed).
pub fn after_failed_write(failure: &FailedWrite) -> FailedWriteSteps {
    let kind = failure.kind;
    let may_be_set = failure.may_be_set && !failure.nothing_applied;
    if kind == FailureKind::Transient {
        return FailedWriteSteps {
            ending: Ending::Keep,
            set_aside: false,
            resolve_pool_again: false,
            then: Then::Retry,
        };
    }
    if failure.rotation && !may_be_set {
        return FailedWriteSteps {
            ending: Ending::ReleaseKeepingPrevious,
            set_aside: kind.is_the_users(),
            resolve_pool_again: false,
            then: Then::KeepPrevious {
                soon: kind.is_the_users(),
            },
        };
    }
    let try_another = kind.is_the_users() && !failure.named_user;
    FailedWriteSteps {
        ending: if may_be_set {
            Ending::EndCredential
        } else {
            Ending::Release
        },
        set_aside: try_another,
        resolve_pool_again: kind == FailureKind::UserChangedInEntra,
        then: if try_another {
            Then::TryAnotherUser
        } else {
            Then::Fail
        },
    }
}
