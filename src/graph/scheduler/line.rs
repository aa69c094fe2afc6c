//! The waiting line: every request waiting for its budgets, in the order they start. Classes
//! come strictly in order; inside a class, namespaces take turns (the n-th waiting request of a
//! namespace goes after every namespace's (n-1)-th), so one namespace's burst cannot delay
//! another's single request.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::time::Instant;

use super::bucket::Bucket;
use super::budgets::Budgets;
use super::pauses::Pauses;
use super::purpose::Class;
use super::scope::{AppInTenant, Limit, Scope};

/// Where a request stands: its class, its turn among its namespace's requests, its arrival.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    class: Class,
    turn: u64,
    arrival: u64,
}

#[derive(Debug)]
pub struct Entry {
    pub who: AppInTenant,
    pub limit: Limit,
    pub units: f64,
    pub namespace: String,
    pub holder: Option<String>,
    pub since: Instant,
    /// When its budgets were taken for it; it then only waits for its caller to send it.
    pub granted: Option<Instant>,
    /// When the caller of a parked request is expected back (`None`: waiting in a worker).
    pub parked_until: Option<Instant>,
}

impl Entry {
    fn counts_against(&self, scope: &Scope) -> bool {
        match scope {
            Scope::AppInTenant(who, limit) => self.who == *who && self.limit == *limit,
            Scope::Tenant(tenant) => self.limit == Limit::Write && self.who.tenant == *tenant,
            Scope::App(app) => self.limit == Limit::Write && self.who.app == *app,
        }
    }
}

/// A parked request whose caller has not come back this long after it was expected is dropped:
/// its lease was deleted or its work went another way.
const ABANDONED_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct Line {
    entries: BTreeMap<Place, Entry>,
    by_holder: HashMap<String, Place>,
    /// Requests waiting per class and namespace, for the next one's turn.
    waiting: HashMap<(Class, String), u64>,
    /// Requests sent and not yet answered, per app in a tenant.
    in_flight: HashMap<AppInTenant, u32>,
    arrivals: u64,
}

/// The bucket of `scope`, refilled to `now` (a new one starts full).
pub fn bucket_of<'b>(
    budgets: &Budgets,
    buckets: &'b mut HashMap<Scope, Bucket>,
    scope: &Scope,
    now: Instant,
) -> &'b mut Bucket {
    let budget = match scope {
        Scope::AppInTenant(_, Limit::Write) => budgets.app_tenant_writes,
        Scope::AppInTenant(_, Limit::Read) => budgets.app_tenant_read_units,
        Scope::Tenant(_) => budgets.tenant_writes,
        Scope::App(_) => budgets.app_writes,
    };
    let bucket = buckets
        .entry(scope.clone())
        .or_insert_with(|| Bucket::full(budget, now));
    bucket.refill(now);
    bucket
}

/// The budgets and pauses a line is served from.
pub struct Budget<'a> {
    pub budgets: &'a Budgets,
    pub buckets: &'a mut HashMap<Scope, Bucket>,
    pub pauses: &'a Pauses,
}

impl Budget<'_> {
    pub fn bucket(&mut self, scope: &Scope, now: Instant) -> &mut Bucket {
        bucket_of(self.budgets, self.buckets, scope, now)
    }

    /// What a request of `class` must leave in the bucket of `scope`.
    fn keep(&mut self, scope: &Scope, class: Class, now: Instant) -> f64 {
        let writes = !matches!(scope, Scope::AppInTenant(_, Limit::Read));
        if class.may_spend_reserve() || !writes {
            return 0.0;
        }
        let share = self.budgets.end_reserve;
        self.bucket(scope, now).reserve(share)
    }
}

impl Line {
    /// The place of `holder`'s request, if it has one.
    pub fn place_of(&self, holder: &str) -> Option<Place> {
        self.by_holder.get(holder).copied()
    }

    pub fn get(&self, place: &Place) -> Option<&Entry> {
        self.entries.get(place)
    }

    pub fn get_mut(&mut self, place: &Place) -> Option<&mut Entry> {
        self.entries.get_mut(place)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds a request behind every request of its class that came before it from the same
    /// namespace, or at `kept` (a place it held before, when Entra refused it once sent).
    pub fn join(&mut self, class: Class, entry: Entry, kept: Option<Place>) -> Place {
        let place = kept.unwrap_or_else(|| {
            self.arrivals += 1;
            let turn = self
                .waiting
                .get(&(class, entry.namespace.clone()))
                .copied()
                .unwrap_or(0);
            Place {
                class,
                turn,
                arrival: self.arrivals,
            }
        });
        *self
            .waiting
            .entry((class, entry.namespace.clone()))
            .or_default() += 1;
        if let Some(holder) = &entry.holder {
            self.by_holder.insert(holder.clone(), place);
        }
        crate::metrics::metrics().graph_queue_joined(&entry.who.app, class.as_str());
        self.entries.insert(place, entry);
        place
    }

    /// Takes a request out of the line; its budgets go back unless it was sent.
    pub fn leave(&mut self, place: &Place, sent: bool, budget: &mut Budget, now: Instant) {
        let Some(entry) = self.entries.remove(place) else {
            return;
        };
        if let Some(holder) = &entry.holder
            && self.by_holder.get(holder) == Some(place)
        {
            self.by_holder.remove(holder);
        }
        crate::metrics::metrics().graph_queue_left(&entry.who.app, place.class.as_str());
        match entry.granted {
            Some(_) if sent => *self.in_flight.entry(entry.who.clone()).or_default() += 1,
            Some(_) => {
                for scope in Scope::of(&entry.who, entry.limit) {
                    budget.bucket(&scope, now).give_back(entry.units);
                }
            }
            None => self.stop_waiting(place.class, &entry.namespace),
        }
    }

    /// True when `who` may put one more request on the wire.
    pub fn may_send(&self, who: &AppInTenant, max_in_flight: u32) -> bool {
        self.in_flight.get(who).copied().unwrap_or(0) < max_in_flight
    }

    fn stop_waiting(&mut self, class: Class, namespace: &str) {
        let key = (class, namespace.to_owned());
        if let Some(count) = self.waiting.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.waiting.remove(&key);
            }
        }
    }

    /// A sent request was answered (or failed without one): its app may send another.
    pub fn landed(&mut self, who: &AppInTenant) {
        if let Some(count) = self.in_flight.get_mut(who) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.in_flight.remove(who);
            }
        }
    }

    /// Forgets buckets that are full again: a full bucket is what a new one starts as.
    pub fn forget_full(buckets: &mut HashMap<Scope, Bucket>, now: Instant) {
        buckets.retain(|_, bucket| {
            bucket.refill(now);
            !bucket.is_full()
        });
    }

    /// Takes the budgets of every request that may start now, in order. Requests whose scope
    /// is paused or whose budgets are short are passed over; those behind them that count
    /// against other budgets go on (another app's trouble stays in its queue).
    pub fn serve(&mut self, budget: &mut Budget, now: Instant) {
        let mut served = Vec::new();
        for (place, entry) in &self.entries {
            if entry.granted.is_some() {
                continue;
            }
            let scopes = Scope::of(&entry.who, entry.limit);
            let ready = scopes.iter().all(|scope| {
                budget.pauses.remaining(scope, now).is_zero() && {
                    let keep = budget.keep(scope, place.class, now);
                    budget.bucket(scope, now).has(entry.units, keep)
                }
            });
            if ready {
                for scope in &scopes {
                    budget.bucket(scope, now).take(entry.units);
                }
                served.push(*place);
            }
        }
        for place in served {
            if let Some(entry) = self.entries.get_mut(&place) {
                entry.granted = Some(now);
                let namespace = entry.namespace.clone();
                self.stop_waiting(place.class, &namespace);
            }
        }
    }

    /// About how long until the request at `place` starts: the pauses of its scopes, and the
    /// time its budgets take to refill for it and for every request ahead of it on them.
    pub fn estimate(&self, place: &Place, budget: &mut Budget, now: Instant) -> Duration {
        let Some(entry) = self.entries.get(place) else {
            return Duration::ZERO;
        };
        if entry.granted.is_some() {
            return Duration::ZERO;
        }
        Scope::of(&entry.who, entry.limit)
            .iter()
            .map(|scope| {
                let ahead: f64 = self
                    .entries
                    .range(..*place)
                    .filter(|(_, other)| other.granted.is_none() && other.counts_against(scope))
                    .map(|(_, other)| other.units)
                    .sum();
                let keep = budget.keep(scope, place.class, now);
                let refill = budget
                    .bucket(scope, now)
                    .time_until(ahead + entry.units, keep);
                refill.max(budget.pauses.remaining(scope, now))
            })
            .max()
            .unwrap_or_default()
    }

    /// Drops parked requests whose callers did not come back; gives back what they held.
    pub fn drop_abandoned(&mut self, budget: &mut Budget, now: Instant) {
        let abandoned: Vec<Place> = self
            .entries
            .iter()
            .filter(|(_, entry)| {
                entry
                    .parked_until
                    .is_some_and(|until| now.saturating_duration_since(until) > ABANDONED_AFTER)
            })
            .map(|(place, _)| *place)
            .collect();
        for place in abandoned {
            self.leave(&place, false, budget, now);
        }
    }

    /// How long the oldest request of each class has waited, and how many are parked.
    pub fn waits(&self, now: Instant) -> (BTreeMap<Class, Duration>, usize) {
        let mut oldest = BTreeMap::new();
        let mut parked = 0;
        for (place, entry) in &self.entries {
            if entry.parked_until.is_some() {
                parked += 1;
            }
            if entry.granted.is_none() {
                let waited = now.saturating_duration_since(entry.since);
                let longest = oldest.entry(place.class).or_insert(waited);
                *longest = (*longest).max(waited);
            }
        }
        (oldest, parked)
    }
}
