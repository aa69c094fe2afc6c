//! Temporary Access Pass pools and leases: what Graph and the tenant's policy (as the pool states
//! it) allow, checked before anything is claimed or created. A pass's lifetime is fixed when
//! Entra creates it, so a pass lease is neither renewed nor rotated.

use std::time::Duration;

use crate::api::{CredentialType, EntraLeaseSpec, PoolSpec, SignInMethods};
use crate::controller::reasons::Reason;
use crate::duration::{format_duration, parse_duration};

/// Graph's own bounds on a pass's lifetime: 10 minutes to 30 days.
const SHORTEST: Duration = Duration::from_secs(10 * 60);
const LONGEST: Duration = Duration::from_secs(43_200 * 60);

pub fn issues_passes(spec: &PoolSpec) -> bool {
    spec.credential_type == CredentialType::TemporaryAccessPass
}

/// A TTL in whole minutes, as a pass's lifetime: never longer than the TTL.
pub fn lifetime_in_minutes(ttl: Duration) -> u32 {
    u32::try_from(ttl.as_secs() / 60).unwrap_or(u32::MAX)
}

/// The lifetimes the pool says its tenant's policy allows.
fn policy_bounds(spec: &PoolSpec) -> Result<(Duration, Duration), String> {
    let policy = spec.temporary_access_pass.clone().unwrap_or_default();
    let parse = |field: &str, text: &str| {
        parse_duration(text).map_err(|error| format!("temporaryAccessPass.{field}: {error}"))
    };
    Ok((
        parse("minimumLifetime", &policy.minimum_lifetime)?,
        parse("maximumLifetime", &policy.maximum_lifetime)?,
    ))
}

/// Why a pass pool cannot issue as declared, if it cannot.
pub fn pool_problem(spec: &PoolSpec) -> Option<String> {
    if !issues_passes(spec) {
        return None;
    }
    if spec.sign_in_methods == SignInMethods::Keep {
        return Some(
            "credentialType TemporaryAccessPass needs signInMethods RemoveAddedDuringLease: a \
             pass exists to register sign-in methods, and those must end with the lease"
                .into(),
        );
    }
    let (minimum, maximum) = match policy_bounds(spec) {
        Ok(bounds) => bounds,
        Err(message) => return Some(message),
    };
    if minimum < SHORTEST || maximum > LONGEST || minimum > maximum {
        return Some(format!(
            "temporaryAccessPass lifetimes must lie between 10m and 720h (Graph's range), the \
             minimum not above the maximum; they are {} and {}",
            format_duration(minimum),
            format_duration(maximum)
        ));
    }
    let ttls = (
        parse_duration(&spec.default_ttl),
        parse_duration(&spec.max_ttl),
    );
    if let (Ok(default_ttl), Ok(max_ttl)) = ttls {
        if max_ttl > maximum {
            return Some(format!(
                "maxTTL {} is longer than temporaryAccessPass.maximumLifetime {}: no pass \
                 outlives the tenant's policy",
                spec.max_ttl,
                format_duration(maximum)
            ));
        }
        if let Some(problem) = outside(default_ttl, minimum, maximum) {
            return Some(format!("defaultTTL {}: {problem}", spec.default_ttl));
        }
    }
    None
}

/// Why a lease of a pass pool cannot be issued with `ttl`, if it cannot.
pub fn lease_problem(
    pool: &PoolSpec,
    lease: &EntraLeaseSpec,
    ttl: Duration,
) -> Option<(Reason, String)> {
    if !issues_passes(pool) {
        return None;
    }
    if lease.rotates() {
        return Some((
            Reason::NotForAccessPass,
            "a continuous lease (rotation) moves between users' passwords; a Temporary Access \
             Pass pool issues passes whose lifetime Entra fixes: use a Password pool"
                .into(),
        ));
    }
    if lease.auto_renew {
        return Some((
            Reason::NotForAccessPass,
            "autoRenew: a Temporary Access Pass's lifetime is fixed when Entra creates it; \
             create a new lease when it ends"
                .into(),
        ));
    }
    let (minimum, maximum) = policy_bounds(pool).ok()?;
    let lifetime = Duration::from_secs(u64::from(lifetime_in_minutes(ttl)) * 60);
    outside(lifetime, minimum, maximum).map(|problem| {
        (
            Reason::TTLOutsidePassPolicy,
            format!("a pass of {}: {problem}", format_duration(lifetime)),
        )
    })
}

fn outside(lifetime: Duration, minimum: Duration, maximum: Duration) -> Option<String> {
    (lifetime < minimum || lifetime > maximum).then(|| {
        format!(
            "the tenant's Temporary Access Pass policy allows lifetimes of {} to {} \
             (temporaryAccessPass of the dynamic secret; whole minutes)",
            format_duration(minimum),
            format_duration(maximum)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::AccessPassPolicy;

    fn pass_pool() -> PoolSpec {
        let mut spec = crate::fixtures::pool_spec(&["alice@contoso.com"]).pool;
        spec.credential_type = CredentialType::TemporaryAccessPass;
        spec.default_ttl = "1h".into();
        spec.max_ttl = "8h".into();
        spec
    }

    #[test]
    fn a_pass_pool_needs_method_removal_and_ttls_inside_its_policy() {
        assert_eq!(pool_problem(&pass_pool()), None);
        let mut keep = pass_pool();
        keep.sign_in_methods = SignInMethods::Keep;
        assert!(
            pool_problem(&keep)
                .unwrap()
                .contains("RemoveAddedDuringLease")
        );
        let mut long = pass_pool();
        long.max_ttl = "9h".into();
        assert!(pool_problem(&long).unwrap().contains("maxTTL 9h"));
        let mut short_default = pass_pool();
        short_default.default_ttl = "30m".into();
        assert!(
            pool_problem(&short_default)
                .unwrap()
                .contains("defaultTTL 30m")
        );
        let mut below_graph = pass_pool();
        below_graph.temporary_access_pass = Some(AccessPassPolicy {
            minimum_lifetime: "5m".into(),
            ..AccessPassPolicy::default()
        });
        assert!(pool_problem(&below_graph).unwrap().contains("10m and 720h"));
        let password = crate::fixtures::pool_spec(&["alice@contoso.com"]).pool;
        assert_eq!(pool_problem(&password), None);
    }

    #[test]
    fn a_pass_lease_is_neither_renewed_nor_rotated_and_lives_inside_the_policy() {
        let pool = pass_pool();
        let mut lease = crate::fixtures::lease_spec();
        let hour = Duration::from_secs(3600);
        assert_eq!(lease_problem(&pool, &lease, hour), None);
        let (reason, message) = lease_problem(&pool, &lease, hour / 2).unwrap();
        assert_eq!(reason, Reason::TTLOutsidePassPolicy);
        assert!(message.contains("1h to 8h"), "{message}");
        // 8h59s is 8h in whole minutes.
        assert_eq!(
            lease_problem(&pool, &lease, hour * 8 + Duration::from_secs(59)),
            None
        );
        lease.auto_renew = true;
        assert_eq!(
            lease_problem(&pool, &lease, hour).map(|(reason, _)| reason),
            Some(Reason::NotForAccessPass)
        );
        assert_eq!(
            lease_problem(
                &crate::fixtures::pool_spec(&["alice@contoso.com"]).pool,
                &lease,
                hour
            ),
            None
        );
    }
}
