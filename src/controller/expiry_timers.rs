//! Expiries wake the revocation controller as well as the lease controller. Every issue that
//! waits its turn for Graph is requeued on the lease controller, so a burst of them can hold its
//! queue for longer than any credential should outlive its deadline; the revocation controller's
//! queue holds only ends. A lease whose credential runs out is therefore looked at from there
//! too, at its deadline (I5), and the one-actor lock keeps the two apart.

use std::collections::HashMap;
use std::task::Poll;

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use tokio_util::time::{DelayQueue, delay_queue::Key};

use super::deadlines::until_then;
use crate::api::EntraLease;

/// Where a lease's controller says when its credential ends.
#[derive(Clone)]
pub struct ExpiryTimers {
    requests: mpsc::UnboundedSender<(ObjectRef<EntraLease>, Timestamp)>,
}

impl ExpiryTimers {
    /// The timers, and the stream of leases whose deadline came (one per lease and deadline:
    /// a lease told again of the same deadline is not woken twice, one told of a new deadline
    /// is woken at the new one only).
    pub fn new() -> (ExpiryTimers, impl Stream<Item = ObjectRef<EntraLease>>) {
        let (requests, mut incoming) = mpsc::unbounded();
        let mut queue: DelayQueue<ObjectRef<EntraLease>> = DelayQueue::new();
        let mut timers: HashMap<ObjectRef<EntraLease>, (Key, Timestamp)> = HashMap::new();
        let due = futures::stream::poll_fn(move |cx| {
            while let Poll::Ready(Some((lease, deadline))) = incoming.poll_next_unpin(cx) {
                let wait = until_then(deadline, Timestamp::now());
                match timers.get_mut(&lease) {
                    Some((_, known)) if *known == deadline => {}
                    Some((key, known)) => {
                        queue.reset(key, wait);
                        *known = deadline;
                    }
                    None => {
                        let key = queue.insert(lease.clone(), wait);
                        timers.insert(lease, (key, deadline));
                    }
                }
            }
            match queue.poll_expired(cx) {
                Poll::Ready(Some(expired)) => {
                    let lease = expired.into_inner();
                    timers.remove(&lease);
                    Poll::Ready(Some(lease))
                }
                // An empty queue waits for requests, whose channel woke this task's waker.
                Poll::Ready(None) | Poll::Pending => Poll::Pending,
            }
        });
        (ExpiryTimers { requests }, due)
    }

    /// Wakes the revocation controller for `lease` at `deadline`.
    pub fn at(&self, lease: &EntraLease, deadline: Timestamp) {
        let _ = self
            .requests
            .unbounded_send((ObjectRef::from(lease), deadline));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn lease(name: &str) -> EntraLease {
        let mut lease = EntraLease::new(name, crate::fixtures::lease_spec());
        lease.metadata.namespace = Some("team".into());
        lease
    }

    #[tokio::test]
    async fn a_lease_is_woken_once_at_its_latest_deadline() {
        let (timers, due) = ExpiryTimers::new();
        let mut due = Box::pin(due);
        let soon = Timestamp::now() + Duration::from_millis(200);
        let later = Timestamp::now() + Duration::from_millis(400);
        timers.at(&lease("a"), soon);
        timers.at(&lease("a"), soon);
        timers.at(&lease("b"), soon);
        // Renewed before its end: woken at the new one only.
        timers.at(&lease("b"), later);
        let first = tokio::time::timeout(Duration::from_secs(5), due.next()).await;
        assert_eq!(first.unwrap().unwrap().name, "a");
        let second = tokio::time::timeout(Duration::from_secs(5), due.next()).await;
        assert_eq!(second.unwrap().unwrap().name, "b");
        assert!(Timestamp::now() >= later);
        let none = tokio::time::timeout(Duration::from_millis(300), due.next()).await;
        assert!(none.is_err(), "each lease was woken once");
    }
}
