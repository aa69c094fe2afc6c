//! What a lease's status and events say, in one place: the words users read.

use kube::ResourceExt;

use crate::api::EntraLease;
use crate::controller::claim_record::ClaimRecord;
use crate::controller::credential::Ended;
use crate::controller::pool::Pool;
use crate::secret::{SecretState, format_time};
use k8s_openapi::jiff::Timestamp;

pub const CERTIFICATE_ENDS_SOON: &str = "the pool's certificate ends within the hour: nothing is \
     issued that its revocation could not outlive; renew the certificate";

pub const CERTIFICATE_ENDS_SOON_ROTATION: &str =
    "the pool's certificate ends within the hour; the credential runs to its end";

/// Why a lease's namespace is not served by its cluster pool.
pub fn not_served(lease: &EntraLease) -> String {
    format!(
        "ClusterEntraDynamicSecret {} does not serve namespace {} (its namespaceSelector does not \
         match the namespace's labels)",
        lease.spec.dynamic_secret_ref.name,
        lease.namespace().unwrap_or_default()
    )
}

pub fn pass_not_renewed() -> String {
    "not renewed: a Temporary Access Pass's lifetime is fixed when Entra creates it; create a \
     new lease when it ends"
        .into()
}

pub fn nobody_free(named: Option<&str>, pool: &Pool) -> String {
    match named {
        Some(user) => format!("user {user} is leased by another lease; waiting for it"),
        None => format!("every user of {pool} is leased; waiting for one"),
    }
}

pub fn namespace_share_exhausted(namespace: &str, pool: &Pool, limit: u32) -> String {
    format!(
        "the leases of namespace {namespace} hold {limit} users of {pool}, its \
         maxLeasesPerNamespace of {limit}; waiting until one of them ends"
    )
}

pub fn rotation_goes_first(pool: &Pool) -> String {
    format!(
        "a continuous lease of {pool} waits for a user to rotate to and goes first; waiting for \
         another"
    )
}

pub fn nobody_free_to_rotate(pool: &Pool, current: &ClaimRecord) -> String {
    format!(
        "every other user of {pool} is leased; the credential of {} runs until {} and the lease \
         rotates as soon as a user is free",
        current.user.user_principal_name,
        format_time(current.expires_at())
    )
}

pub fn issued(current: &ClaimRecord, previous: Option<(&ClaimRecord, Timestamp)>) -> String {
    match previous {
        Some((previous, retire_at)) => format!(
            "credentials for {} are in Secret {} until {}; the previous ones, for {}, stay under \
             previousUsername and previousPassword until {} at the latest",
            current.user.user_principal_name,
            current.secret_name,
            format_time(current.expires_at()),
            previous.user.user_principal_name,
            format_time(retire_at),
        ),
        None => format!(
            "credentials for {} are in Secret {} until {}",
            current.user.user_principal_name,
            current.secret_name,
            format_time(current.expires_at())
        ),
    }
}

pub fn renewed(expires_at: Timestamp, capped: bool) -> String {
    if capped {
        format!(
            "renewed to {}, the lease's maxTTL; it cannot be renewed further",
            format_time(expires_at)
        )
    } else {
        format!("renewed until {}", format_time(expires_at))
    }
}

pub fn restoring(secret_name: &str, cause: SecretState) -> String {
    let what = if cause == SecretState::Missing {
        "deleted"
    } else {
        "edited"
    };
    format!("Secret {secret_name} was {what}; issuing a fresh password")
}

/// A restore that must wait: the credential was ended meanwhile.
pub fn restore_deferred(secret_name: &str, cause: SecretState, restore_at: Timestamp) -> String {
    let what = if cause == SecretState::Missing {
        "deleted"
    } else {
        "edited"
    };
    format!(
        "Secret {secret_name} was {what} again soon after a restore; the password was scrambled, \
         and a fresh one is issued into a restored Secret at {} (restores of one lease are spaced \
         out)",
        format_time(restore_at)
    )
}

/// The credential waits for its restore.
pub fn restore_waiting(secret_name: &str, restore_at: Timestamp) -> String {
    format!(
        "the password was scrambled after Secret {secret_name} was taken; a fresh one is issued \
         into a restored Secret at {} (restores of one lease are spaced out)",
        format_time(restore_at)
    )
}

pub fn set_aside(user: &str, refused: bool, error: &dyn std::fmt::Display) -> String {
    if refused {
        format!(
            "Entra refused to reset {user} (a protected admin, or the app lacks the role); trying \
             another pool user"
        )
    } else {
        format!("{user} cannot be leased any more ({error}); trying another pool user")
    }
}

pub fn rotation_failed(next: &str, current: &str, error: &dyn std::fmt::Display) -> String {
    format!("rotating to {next} failed ({error}); the credential of {current} stays")
}

pub fn retired(previous: &ClaimRecord, current: &ClaimRecord) -> String {
    format!(
        "the previous credential, for {}, was scrambled and its user released; {} is in Secret {}",
        previous.user.user_principal_name, current.user.user_principal_name, current.secret_name
    )
}

pub fn credential_ended(user: &str) -> String {
    format!(
        "the credential of {user} reached its end before another user was free to rotate to; it \
         was scrambled and the Secret deleted; waiting for a user"
    )
}

pub fn revoked(expired: bool, user: &str, ended: &Ended) -> String {
    let why = if expired {
        "the lease expired"
    } else {
        "the lease was deleted"
    };
    let mut done = format!("{why}: the password of {user} was scrambled");
    if let Some(valid_from) = ended.sessions_valid_from {
        done += &format!(", its sessions revoked (valid from {valid_from})");
    }
    match ended.methods_removed {
        0 => {}
        1 => done += ", 1 sign-in method added during the lease deleted",
        n => done += &format!(", {n} sign-in methods added during the lease deleted"),
    }
    done + " and the user released"
}

pub fn revocation_failing(user: &str, error: &dyn std::fmt::Display) -> String {
    format!("revoking {user} failed, retrying: {error}")
}

pub fn rollouts_restarted(targets: &[String]) -> String {
    format!("restarted {} for the new credential", targets.join(", "))
}
