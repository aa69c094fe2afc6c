//! When a continuous lease rotates onto another pool user, and when the credential it rotated
//! away from ends: pure functions of the lease, its two claim records and the time, shared by the
//! lease's decisions and its status.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use crate::api::{DEFAULT_OVERLAP, EntraLease};
use crate::duration::parse_duration;

use super::claim_record::ClaimRecord;
use super::deadlines::{earlier, later};

/// Where the rollouts of a lease's restart targets stand for its current credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rollouts {
    /// The lease restarts nothing (or was not asked): only the overlap ends the previous
    /// credential.
    NotTracked,
    /// Some target has not finished rolling onto the current credential.
    InProgress,
    /// Every target runs pods started for the current credential.
    Complete,
}

/// The overlap of a lease: its own, or the default. `None` for a lease that does not rotate.
pub fn overlap(lease: &EntraLease) -> Option<Result<Duration, String>> {
    let rotation = lease.spec.rotation.as_ref().filter(|r| r.enabled)?;
    let text = rotation.overlap.as_deref().unwrap_or(DEFAULT_OVERLAP);
    Some(parse_duration(text).map_err(|error| format!("rotation.overlap: {error}")))
}

/// When the current credential rotates on its own: `overlap` before its maxExpiresAt, but never
/// sooner than `overlap` after its issue (so a pool whose maxTTL shrank cannot spin).
pub fn rotate_at(current: &ClaimRecord, overlap: Duration) -> Timestamp {
    earlier(current.max_expires_at(), overlap).max(later(current.issued_at.0, overlap))
}

/// When a rotation asked for by the annotation may happen: at most once per overlap, and never
/// more often than the operator's `minimum` (each forced rotation costs Graph writes on the
/// app's shared quota, and any lease user may ask for one).
pub fn forced_rotation_at(
    current: &ClaimRecord,
    overlap: Duration,
    minimum: Duration,
) -> Timestamp {
    later(current.issued_at.0, overlap.max(minimum))
}

/// The spacing of forced rotations when the operator's `minimum` clamps the lease's overlap;
/// `None` for a lease that does not rotate or whose overlap is long enough.
pub fn clamped_forced_rotation_interval(lease: &EntraLease, minimum: Duration) -> Option<Duration> {
    let overlap = overlap(lease)?.ok()?;
    (overlap < minimum).then_some(minimum)
}

/// When the next rotation is due on its own, for the status (a rotate request may bring it
/// forward; the status shows the record, not the request): `None` for a lease that does not
/// rotate.
pub fn next_rotation_at(lease: &EntraLease, current: &ClaimRecord) -> Option<Timestamp> {
    Some(rotate_at(current, overlap(lease)?.ok()?))
}

/// The latest moment the previous credential may live: `overlap` after the current one was
/// issued, and never past its own recorded deadlines. Without a readable overlap (rotation
/// switched off since), its own deadlines decide.
pub fn retire_at(lease: &EntraLease, current: &ClaimRecord, previous: &ClaimRecord) -> Timestamp {
    let own = previous.expires_at().min(previous.max_expires_at());
    match overlap(lease) {
        Some(Ok(overlap)) => own.min(later(current.issued_at.0, overlap)),
        _ => own,
    }
}

/// True when the previous credential ends now: its time is up, or every consumer moved on.
pub fn retire_due(
    lease: &EntraLease,
    current: &ClaimRecord,
    previous: &ClaimRecord,
    rollouts: Rollouts,
    now: Timestamp,
) -> bool {
    rollouts == Rollouts::Complete || now >= retire_at(lease, current, previous)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ROTATE_ANNOTATION, RotationSpec};
    use crate::controller::requests::pending_rotate_request;
    use crate::fixtures::{at, record};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::ResourceExt;

    fn continuous(overlap: &str) -> EntraLease {
        let mut spec = crate::fixtures::lease_spec();
        spec.rotation = Some(RotationSpec {
            enabled: true,
            overlap: Some(overlap.into()),
        });
        EntraLease::new("ci", spec)
    }

    #[test]
    fn a_credential_rotates_one_overlap_before_its_ceiling_but_not_sooner_than_one_after_issue() {
        let current = record(); // issued at 0, maxExpiresAt 7200
        assert_eq!(rotate_at(&current, Duration::from_secs(600)), at(6600));
        assert_eq!(
            rotate_at(&current, Duration::from_secs(5000)),
            at(5000),
            "an overlap longer than half the maxTTL cannot rotate twice in one overlap"
        );
    }

    #[test]
    fn the_previous_credential_ends_at_the_overlap_its_own_deadline_or_when_consumers_moved() {
        let lease = continuous("10m");
        let mut previous = record();
        previous.expires_at = Time(at(7200));
        let mut current = record();
        current.issued_at = Time(at(6600));
        current.generation = 2;
        assert_eq!(retire_at(&lease, &current, &previous), at(7200));
        current.issued_at = Time(at(6000));
        assert_eq!(retire_at(&lease, &current, &previous), at(6600));
        previous.expires_at = Time(at(6300));
        assert_eq!(retire_at(&lease, &current, &previous), at(6300));
        assert!(!retire_due(
            &lease,
            &current,
            &previous,
            Rollouts::InProgress,
            at(6200)
        ));
        assert!(!retire_due(
            &lease,
            &current,
            &previous,
            Rollouts::NotTracked,
            at(6200)
        ));
        assert!(retire_due(
            &lease,
            &current,
            &previous,
            Rollouts::Complete,
            at(6200)
        ));
        assert!(retire_due(
            &lease,
            &current,
            &previous,
            Rollouts::InProgress,
            at(6300)
        ));
    }

    #[test]
    fn a_rotate_request_is_answered_once_and_at_most_once_per_overlap() {
        let mut lease = continuous("10m");
        let mut current = record();
        assert_eq!(next_rotation_at(&lease, &current), Some(at(6600)));
        lease
            .annotations_mut()
            .insert(ROTATE_ANNOTATION.into(), "now".into());
        assert_eq!(
            pending_rotate_request(&lease, &current).as_deref(),
            Some("now")
        );
        assert_eq!(
            forced_rotation_at(&current, Duration::from_secs(600), Duration::from_secs(60)),
            at(600)
        );
        current.last_rotate_request = Some("now".into());
        assert_eq!(pending_rotate_request(&lease, &current), None);
        assert_eq!(next_rotation_at(&lease, &current), Some(at(6600)));
    }

    #[test]
    fn forced_rotations_of_a_short_overlap_are_spaced_by_the_operators_minimum() {
        let current = record(); // issued at 0
        let minute = Duration::from_secs(60);
        assert_eq!(
            forced_rotation_at(&current, Duration::from_secs(1), minute),
            at(60)
        );
        assert_eq!(
            clamped_forced_rotation_interval(&continuous("1s"), minute),
            Some(minute)
        );
        assert_eq!(
            clamped_forced_rotation_interval(&continuous("10m"), minute),
            None
        );
        let plain = EntraLease::new("ci", crate::fixtures::lease_spec());
        assert_eq!(clamped_forced_rotation_interval(&plain, minute), None);
    }

    #[test]
    fn a_lease_without_rotation_has_no_overlap_and_no_next_rotation() {
        let lease = EntraLease::new("ci", crate::fixtures::lease_spec());
        assert!(overlap(&lease).is_none());
        assert_eq!(next_rotation_at(&lease, &record()), None);
        assert!(matches!(overlap(&continuous("soon")), Some(Err(_))));
    }
}
