//! Every Graph request waits its turn here: budgets where Entra counts them, pauses where Entra
//! refused, strict priority classes (ending credentials first) and namespaces taking turns inside
//! a class. A request whose caller can come back and whose turn is not soon is parked: its place
//! is kept, and the caller's worker goes on to other work.
//!
//! - `purpose`: the class, namespace and holder a request is for.
//! - `budgets` and `bucket`: Entra's limits as token buckets.
//! - `scope`: which budgets a request counts against; which a refusal names.
//! - `pauses`: scopes that refused, until when.
//! - `line`: the waiting requests in order, and who may start now.

mod bucket;
mod budgets;
mod line;
mod pauses;
mod purpose;
mod scope;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

pub use budgets::{Budget, Budgets};
pub use purpose::{Class, Purpose};
pub use scope::{AppInTenant, Limit};

use bucket::Bucket;
use line::{Entry, Line, Place};
use pauses::Pauses;
use scope::Scope;

/// At most this many requests of one app in one tenant are on the wire at once: an app that does
/// not answer holds that many workers for a request timeout, not all of them. The last slot is
/// kept for ending credentials, so a burst of issues cannot make a revocation wait for the wire.
pub const MAX_IN_FLIGHT_PER_APP: u32 = 4;
/// How long a request whose budgets are taken expects to wait for room on its app's wire: long
/// enough that a caller who can come back parks rather than holding its worker.
const WIRE_WAIT: Duration = Duration::from_secs(1);
/// The longest a request other than an end waits in its worker before it is parked. Workers are
/// shared by every lease: an issue waiting out its budget in one delays whatever lease is due
/// next, expiries included, so only ends may spend worker time waiting (up to the budgets'
/// `inline_wait`).
const INLINE_WAIT_BELOW_END: Duration = Duration::from_millis(50);

/// One request asking for its turn.
pub struct Ticket<'a> {
    pub who: &'a AppInTenant,
    pub limit: Limit,
    pub units: f64,
    pub purpose: &'a Purpose,
    /// The place it held before Entra refused it (a 429): it keeps its turn.
    pub kept: Option<KeptPlace>,
    /// The longest a caller without a holder waits in its worker.
    pub longest_wait: Duration,
}

/// A place in line kept across a refusal.
#[derive(Clone, Copy, Debug)]
pub struct KeptPlace(Place);

/// The request may go out now. Dropping it says it was answered (or failed without an answer).
#[must_use]
pub struct Permit {
    scheduler: Scheduler,
    who: AppInTenant,
    place: Place,
}

impl Permit {
    pub fn place(&self) -> KeptPlace {
        KeptPlace(self.place)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self.scheduler.lock();
        state.line.landed(&self.who);
        drop(state);
        self.scheduler.shared.changed.notify_waiters();
    }
}

/// The request did not start: it waits in line (parked), or its caller would wait too long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotYet {
    /// About when it starts.
    pub ready_in: Duration,
    /// A scope of it is paused because Entra refused (rather than the operator pacing itself).
    pub refused: bool,
}

/// What Entra's answer says about its budgets.
#[derive(Clone, Debug, Default)]
pub struct Answer<'a> {
    pub status: u16,
    /// Answered at all (not a timeout or a broken connection).
    pub answered: bool,
    pub retry_after: Option<Duration>,
    pub throttle_scope: Option<&'a str>,
    pub limit_percentage: Option<f64>,
}

/// Where a request stands after the line was served.
enum Turn {
    Granted { waited: Duration, namespace: String },
    Gone,
    NotYet(NotYet),
    Wait(Duration),
}

/// Shared by every clone.
#[derive(Clone)]
pub struct Scheduler {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Told whenever a request may have become able to start.
    changed: Notify,
}

struct State {
    budgets: Budgets,
    buckets: HashMap<Scope, Bucket>,
    pauses: Pauses,
    line: Line,
}

impl State {
    /// Serves the line as the budgets allow now, and reports its waits.
    fn serve(&mut self, now: Instant) {
        let State {
            budgets,
            buckets,
            pauses,
            line,
        } = self;
        let mut budget = line::Budget {
            budgets,
            buckets,
            pauses,
        };
        line.drop_abandoned(&mut budget, now);
        line.serve(&mut budget, now);
        Line::forget_full(budget.buckets, now);
        let (oldest, parked) = line.waits(now);
        let oldest: Vec<(&str, Duration)> = oldest
            .into_iter()
            .map(|(class, waited)| (class.as_str(), waited))
            .collect();
        crate::metrics::metrics().graph_queue_stands(&oldest, parked);
    }

    fn bucket(&mut self, scope: &Scope, now: Instant) -> &mut Bucket {
        line::bucket_of(&self.budgets, &mut self.buckets, scope, now)
    }

    fn estimate(&mut self, place: &Place, now: Instant) -> Duration {
        let State {
            budgets,
            buckets,
            pauses,
            line,
        } = self;
        let mut budget = line::Budget {
            budgets,
            buckets,
            pauses,
        };
        line.estimate(place, &mut budget, now)
    }

    fn refused(&self, place: &Place, now: Instant) -> bool {
        self.line.get(place).is_some_and(|entry| {
            Scope::of(&entry.who, entry.limit)
                .iter()
                .any(|scope| !self.pauses.remaining(scope, now).is_zero())
        })
    }

    fn leave(&mut self, place: &Place, sent: bool, now: Instant) {
        let State {
            budgets,
            buckets,
            pauses,
            line,
        } = self;
        let mut budget = line::Budget {
            budgets,
            buckets,
            pauses,
        };
        line.leave(place, sent, &mut budget, now);
    }
}

impl Scheduler {
    /// Pauses without Entra's advice start at `first_pause` and double up to `longest_pause`.
    pub fn new(budgets: Budgets, first_pause: Duration, longest_pause: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    budgets,
                    buckets: HashMap::new(),
                    pauses: Pauses::new(first_pause, longest_pause),
                    line: Line::default(),
                }),
                changed: Notify::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for the request's turn: in the worker while it is soon (or its caller has no
    /// holder to come back), else parked with its place kept, answering [`NotYet`].
    pub async fn admit(&self, ticket: Ticket<'_>) -> Result<Permit, NotYet> {
        let holder_key = ticket
            .purpose
            .holder
            .as_ref()
            .map(|holder| holder_key(holder, ticket.purpose.class, ticket.limit, ticket.who));
        let started = Instant::now();
        let place = {
            let mut state = self.lock();
            let existing = holder_key
                .as_deref()
                .and_then(|key| state.line.place_of(key));
            match existing {
                Some(place) => {
                    if let Some(entry) = state.line.get_mut(&place) {
                        entry.parked_until = None;
                    }
                    place
                }
                None => state.line.join(
                    ticket.purpose.class,
                    Entry {
                        who: ticket.who.clone(),
                        limit: ticket.limit,
                        units: ticket.units,
                        namespace: ticket.purpose.namespace.clone(),
                        holder: holder_key.clone(),
                        since: started,
                        granted: None,
                        parked_until: None,
                    },
                    ticket.kept.map(|kept| kept.0),
                ),
            }
        };
        // Leaves the line if this future is dropped before its turn (a cancelled reconcile).
        let mut waiting = Waiting {
            scheduler: self,
            place,
            parks: holder_key.is_some(),
            done: false,
        };
        loop {
            let changed = self.shared.changed.notified();
            match self.turn(&place, &ticket, started, holder_key.is_some()) {
                Turn::Granted { waited, namespace } => {
                    waiting.done = true;
                    let metrics = crate::metrics::metrics();
                    metrics.graph_queue_waited(ticket.purpose.class.as_str(), waited);
                    if ticket.limit == Limit::Write {
                        metrics.graph_write_for(&namespace);
                    }
                    return Ok(Permit {
                        scheduler: self.clone(),
                        who: ticket.who.clone(),
                        place,
                    });
                }
                Turn::Gone => {
                    // Dropped while its caller was away: it joins again at the back.
                    waiting.done = true;
                    return Box::pin(self.admit(Ticket {
                        kept: None,
                        ..ticket
                    }))
                    .await;
                }
                Turn::NotYet(not_yet) => {
                    waiting.done = true;
                    return Err(not_yet);
                }
                Turn::Wait(ready_in) => {
                    let nap = ready_in.clamp(Duration::from_millis(1), Duration::from_millis(250));
                    tokio::select! {
                        () = changed => {}
                        () = tokio::time::sleep(nap) => {}
                    }
                }
            }
        }
    }

    /// Serves the line and says where the request at `place` stands: started, gone, parked (or
    /// given up), or worth waiting for in the worker.
    fn turn(&self, place: &Place, ticket: &Ticket<'_>, started: Instant, parks: bool) -> Turn {
        let now = Instant::now();
        let mut state = self.lock();
        state.serve(now);
        let Some(entry) = state.line.get(place) else {
            return Turn::Gone;
        };
        let ready_in = if entry.granted.is_some() {
            if state
                .line
                .may_send(&entry.who, wire_slots(ticket.purpose.class))
            {
                let waited = now.saturating_duration_since(entry.since);
                let namespace = entry.namespace.clone();
                state.leave(place, true, now);
                return Turn::Granted { waited, namespace };
            }
            // Its budgets are taken; it goes out once an answer frees room on its app's wire.
            WIRE_WAIT
        } else {
            state.estimate(place, now)
        };
        let refused = state.refused(place, now);
        let waited = now.saturating_duration_since(started);
        let inline_wait = match ticket.purpose.class {
            Class::End => state.budgets.inline_wait,
            _ => state.budgets.inline_wait.min(INLINE_WAIT_BELOW_END),
        };
        if parks && waited + ready_in > inline_wait {
            if let Some(entry) = state.line.get_mut(place) {
                entry.parked_until = Some(now + ready_in);
            }
            return Turn::NotYet(NotYet { ready_in, refused });
        }
        if !parks && waited + ready_in > ticket.longest_wait {
            state.leave(place, false, now);
            return Turn::NotYet(NotYet { ready_in, refused });
        }
        Turn::Wait(ready_in)
    }

    /// Learns from an answer: a 429 pauses the scope it names (and empties its budget as Entra
    /// counts it), no answer or a 5xx pauses the app in its tenant, and a limit percentage
    /// lowers what is left to what Entra says.
    pub fn observe(&self, who: &AppInTenant, limit: Limit, answer: &Answer<'_>) {
        let now = Instant::now();
        let mut state = self.lock();
        let own = Scope::AppInTenant(who.clone(), limit);
        if answer.status == 429 {
            for scope in Scope::named_by(answer.throttle_scope, who, limit) {
                let wait = state.pauses.pause(scope.clone(), answer.retry_after, now);
                let share = state.budgets.end_reserve;
                let bucket = state.bucket(&scope, now);
                let keep = bucket.reserve(share);
                bucket.spent_down_to(keep);
                tracing::debug!(app = %who.app, tenant = %who.tenant, ?scope, wait_ms = wait.as_millis() as u64, "Graph refused: scope paused");
            }
        } else if !answer.answered || matches!(answer.status, 500..=599) {
            state.pauses.pause(own, answer.retry_after, now);
        } else {
            state.pauses.answered(&own, now);
            if let Some(percent) = answer.limit_percentage {
                state.bucket(&own, now).used_at_least(percent);
            }
        }
        state.pauses.forget_old(now);
        drop(state);
        self.shared.changed.notify_waiters();
    }

    /// Requests waiting or parked.
    pub fn waiting(&self) -> usize {
        self.lock().line.len()
    }
}

/// How many requests of an app may be on the wire when one of `class` goes out.
fn wire_slots(class: Class) -> u32 {
    if class.may_spend_reserve() {
        MAX_IN_FLIGHT_PER_APP
    } else {
        MAX_IN_FLIGHT_PER_APP - 1
    }
}

/// A holder's request is known by who holds it, its class, its limit and its app: one request at
/// a time of each.
fn holder_key(holder: &str, class: Class, limit: Limit, who: &AppInTenant) -> String {
    format!("{holder}|{class}|{limit:?}|{}|{}", who.tenant, who.app)
}

/// Takes a request out of the line when its caller stops waiting, unless it was parked.
struct Waiting<'a> {
    scheduler: &'a Scheduler,
    place: Place,
    parks: bool,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let now = Instant::now();
        let mut state = self.scheduler.lock();
        if self.parks {
            if let Some(entry) = state.line.get_mut(&self.place) {
                entry.parked_until = Some(now);
            }
        } else {
            state.leave(&self.place, false, now);
        }
        drop(state);
        self.scheduler.shared.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests;
