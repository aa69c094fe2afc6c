//! Leader election through a `coordination.k8s.io` Lease: one replica acts, standbys wait and take
//! over when the leader's lease runs out. A replica that loses the lease exits at once, so it can
//! never act alongside the new leader; its pod restarts as a standby.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::metrics::metrics;

pub struct LeaderElection {
    pub namespace: String,
    pub lease_name: String,
    pub identity: String,
    pub lease_duration: Duration,
}

/// Leadership held by this process. Dropping it releases the lease, so that a standby takes over
/// without waiting for it to expire (on a graceful shutdown).
pub struct Leadership {
    channel: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

impl LeaderElection {
    /// Waits until this process holds the lease.
    pub async fn acquire(self, client: Client) -> Result<Leadership, LeaseManagerError> {
        let duration = self.lease_duration.as_secs().max(3);
        let manager = LeaseManagerBuilder::new(client, &self.lease_name)
            .with_namespace(&self.namespace)
            .with_identity(&self.identity)
            .with_duration(duration)
            // Renew when a third of the lease is left: a late renewal never lets it lapse.
            .with_grace(duration / 3)
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
        tracing::info!(lease = %self.lease_name, identity = %self.identity, "became the leader");
        metrics().leader.set(1);
        Ok(Leadership { channel, task })
    }
}

impl Leadership {
    /// Resolves when the lease is lost (another replica took it, or it could not be renewed).
    pub async fn lost(&mut self) {
        while *self.channel.borrow_and_update() {
            if self.channel.changed().await.is_err() {
                break;
            }
        }
        metrics().leader.set(0);
    }

    /// Gives the lease up for a standby to take at once.
    pub async fn release(self) {
        let Leadership { channel, task } = self;
        drop(channel);
        match task.await {
            Ok(Ok(_)) => tracing::info!("released leadership"),
            Ok(Err(error)) => tracing::warn!(%error, "could not release the leader lease"),
            Err(error) => tracing::warn!(%error, "the lease manager task failed"),
        }
        metrics().leader.set(0);
    }
}
