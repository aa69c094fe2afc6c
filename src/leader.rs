//! Leader election through a `coordination.k8s.io` Lease: one replica acts, standbys wait and take
//! over when the leader's lease runs out. A replica that loses the lease exits at once, so it can
//! never act alongside the new leader; its pod restarts as a standby.
//!
//! Fencing: a leader whose renewals fail (API server unreachable, rights revoked) must stop before
//! a standby may take the lease, which is `duration` after the last renewal. The lease manager
//! (kube-lease-manager) does not tell: its watch channel stays `true` while renewals fail, and
//! flips only once it reads another holder, after the standby has taken over. So the leader keeps
//! its own renew deadline, as client-go's `RenewDeadline`: it reads the Lease and, when the Lease
//! has not shown a renewal under its identity for two thirds of the duration, it gives up. A read
//! that fails counts as no renewal, so the deadline holds whatever the API server does.

use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::metrics::metrics;

/// How long a graceful release of the Lease may take before the process exits without it (the
/// Lease then expires on its own).
const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);

pub struct LeaderElection {
    pub namespace: String,
    pub lease_name: String,
    pub identity: String,
    pub lease_duration: Duration,
}

/// When the leader renews and when it gives up, for a lease of `duration` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenewTiming {
    /// The lease duration written to the Lease (at least 3 s).
    pub duration: u64,
    /// The lease manager's `grace`: it renews `duration - grace` after the last renewal, a third
    /// of the way through, and retries failed renewals with a backoff.
    pub grace: u64,
    /// Time since the last renewal after which the leader stops acting: two thirds of the
    /// duration, so it stops a third of the duration before a standby may take over.
    pub renew_deadline: Duration,
    /// How often the leader reads the Lease to see its renewals.
    pub check_period: Duration,
}

impl RenewTiming {
    pub fn for_duration(duration: Duration) -> RenewTiming {
        let duration = duration.as_secs().max(3);
        let renew_after = (duration / 3).max(1);
        let full = Duration::from_secs(duration);
        RenewTiming {
            duration,
            grace: duration - renew_after,
            renew_deadline: full * 2 / 3,
            check_period: (full / 6).max(Duration::from_millis(500)),
        }
    }
}

/// Leadership held by this process. [`Leadership::release`] gives the lease up, so that a standby
/// takes over without waiting for it to expire (on a graceful shutdown).
pub struct Leadership {
    channel: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
    fence: Fence,
}

impl LeaderElection {
    /// Waits until this process holds the lease.
    pub async fn acquire(self, client: Client) -> Result<Leadership, LeaseManagerError> {
        let timing = RenewTiming::for_duration(self.lease_duration);
        let manager = LeaseManagerBuilder::new(client.clone(), &self.lease_name)
            .with_namespace(&self.namespace)
            .with_identity(&self.identity)
            .with_duration(timing.duration)
            // Renew a third of the way through, so that a failed renewal is retried before the
            // renew deadline.
            .with_grace(timing.grace)
            .build()
            .await?;
        let (mut channel, task) = manager.watch().await;
        tracing::info!(lease = %self.lease_name, identity = %self.identity, "waiting for leadership");
        while !*channel.borrow_and_update() {
            if channel.changed().await.is_err() {
                return Err(task.await.map_or_else(
                    |join| LeaseManagerError::InconsistentState(join.to_string()),
                    |result| {
                        result.err().unwrap_or_else(|| {
                            LeaseManagerError::InconsistentState("the lease manager stopped".into())
                        })
                    },
                ));
            }
        }
        // The lease manager reports leadership after its write succeeded: the renewal it made is
        // no older than now.
        let fence = Fence {
            api: Api::namespaced(client, &self.namespace),
            lease_name: self.lease_name.clone(),
            identity: self.identity.clone(),
            timing,
            deadline: Instant::now() + timing.renew_deadline,
        };
        tracing::info!(
            lease = %self.lease_name,
            identity = %self.identity,
            renew_deadline = ?timing.renew_deadline,
            "became the leader"
        );
        metrics().leader.set(1);
        Ok(Leadership {
            channel,
            task,
            fence,
        })
    }
}

impl Leadership {
    /// Resolves when this process must stop acting: the lease is lost (another replica took it),
    /// or it has not been renewed within the renew deadline.
    pub async fn lost(&mut self) {
        let Leadership { channel, fence, .. } = self;
        let reason = tokio::select! {
            () = lease_manager_lost(channel) => "the lease manager no longer holds the lease".to_owned(),
            reason = fence.watch() => reason,
        };
        tracing::error!(%reason, "no longer the leader");
        metrics().leader.set(0);
    }

    /// Gives the lease up for a standby to take at once. Bounded: an API server that does not
    /// answer leaves the Lease to expire.
    pub async fn release(self) {
        let Leadership { channel, task, .. } = self;
        drop(channel);
        match tokio::time::timeout(RELEASE_TIMEOUT, task).await {
            Ok(Ok(Ok(_))) => tracing::info!("released leadership"),
            Ok(Ok(Err(error))) => tracing::warn!(%error, "could not release the leader lease"),
            Ok(Err(error)) => tracing::warn!(%error, "the lease manager task failed"),
            Err(_) => tracing::warn!(
                timeout = ?RELEASE_TIMEOUT,
                "the leader lease was not released in time; it expires on its own"
            ),
        }
        metrics().leader.set(0);
    }
}

async fn lease_manager_lost(channel: &mut watch::Receiver<bool>) {
    while *channel.borrow_and_update() {
        if channel.changed().await.is_err() {
            break;
        }
    }
}

/// The renew deadline, kept from what the Lease shows.
struct Fence {
    api: Api<Lease>,
    lease_name: String,
    identity: String,
    timing: RenewTiming,
    /// When this process stops acting unless the Lease shows a later renewal.
    deadline: Instant,
}

impl Fence {
    /// Reads the Lease every check period; returns why this process must stop acting: the Lease
    /// names another holder, or the deadline passed without a renewal seen.
    async fn watch(&mut self) -> String {
        loop {
            let next_check = Instant::now() + self.timing.check_period;
            let read = tokio::select! {
                () = tokio::time::sleep_until(self.deadline) => return self.expired(),
                read = self.api.get(&self.lease_name) => read,
            };
            match read {
                Ok(lease) => {
                    let spec = lease.spec.unwrap_or_default();
                    if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                        return format!(
                            "the leader Lease names {} as its holder",
                            spec.holder_identity.as_deref().unwrap_or("nobody")
                        );
                    }
                    if let Some(renewed) = spec.renew_time {
                        let renewed: SystemTime = renewed.0.into();
                        let left =
                            time_left(renewed, SystemTime::now(), self.timing.renew_deadline);
                        self.deadline = Instant::now() + left;
                    }
                }
                Err(error) => {
                    let left = self.deadline.saturating_duration_since(Instant::now());
                    tracing::warn!(%error, ?left, "could not read the leader Lease; the renew deadline runs on");
                }
            }
            tokio::select! {
                () = tokio::time::sleep_until(self.deadline) => return self.expired(),
                () = tokio::time::sleep_until(next_check) => {}
            }
        }
    }

    fn expired(&self) -> String {
        format!(
            "the leader Lease was not renewed within the renew deadline ({:?} of {} s)",
            self.timing.renew_deadline, self.timing.duration
        )
    }
}

/// Time left before the renew deadline of a renewal made at `renewed` (by this process's clock,
/// which wrote it), seen at `now`.
fn time_left(renewed: SystemTime, now: SystemTime, renew_deadline: Duration) -> Duration {
    (renewed + renew_deadline)
        .duration_since(now)
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_renews_well_before_its_deadline_which_comes_before_expiry() {
        for seconds in 0..=120 {
            let timing = RenewTiming::for_duration(Duration::from_secs(seconds));
            let duration = Duration::from_secs(timing.duration);
            assert!(timing.duration >= 3);
            // kube-lease-manager panics unless 0 < grace < duration.
            assert!(
                timing.grace > 0 && timing.grace < timing.duration,
                "{timing:?}"
            );
            let first_renewal = Duration::from_secs(timing.duration - timing.grace);
            assert!(first_renewal < timing.renew_deadline, "{timing:?}");
            // A standby may take over `duration` after the last renewal: a third of it later.
            assert!(
                timing.renew_deadline + duration / 3 <= duration,
                "{timing:?}"
            );
            // At least one check between a renewal and the deadline.
            assert!(
                first_renewal + timing.check_period < timing.renew_deadline,
                "{timing:?}"
            );
        }
        let default = RenewTiming::for_duration(Duration::from_secs(15));
        assert_eq!(
            (default.grace, default.renew_deadline),
            (10, Duration::from_secs(10))
        );
    }

    #[test]
    fn time_left_counts_from_the_renewal() {
        let renewed = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let deadline = Duration::from_secs(10);
        assert_eq!(time_left(renewed, renewed, deadline), deadline);
        let later = renewed + Duration::from_secs(4);
        assert_eq!(time_left(renewed, later, deadline), Duration::from_secs(6));
        let past = renewed + Duration::from_secs(11);
        assert_eq!(time_left(renewed, past, deadline), Duration::ZERO);
    }
}
