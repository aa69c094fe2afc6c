//! The levels of the quota's token buckets, and the verdict on one Graph request: a pure function
//! of the levels, the request and the clock reading it is given, so its tests need no waiting.
//!
//! A write needs one token in each write bucket that applies (app+tenant, tenant, app) and takes
//! one from each, or nothing when any of them has less than one. A read needs its resource units
//! in the app+tenant read bucket. The first scope found short, in that order, names the refusal.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::{
    quota::{Bucket, Quota},
    resource_units::Cost,
};

/// Which bucket, as the first part of `x-ms-throttle-scope` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    TenantApplication,
    Tenant,
    Application,
}

/// Which kind of limit, as the second part of `x-ms-throttle-scope` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    Write,
    Read,
}

impl Limit {
    pub fn of(cost: Cost) -> Limit {
        match cost {
            Cost::Write => Limit::Write,
            Cost::Read { .. } => Limit::Read,
        }
    }
}

/// Why a request is refused, and when the refusing bucket will let it through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub scope: Scope,
    pub limit: Limit,
    /// Whole seconds, at least 1: the time until the bucket holds what the request needs, rounded up.
    pub retry_after_seconds: u64,
}

/// The quota's answer to one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub refusal: Option<Refusal>,
    /// The most used of the buckets that apply, after this request, in whole percent rounded to
    /// the nearest; only when it is 80 or more.
    pub limit_percentage: Option<u8>,
}

/// From this share of a bucket used, responses say how much is used.
const WARN_FROM_PERCENT: u8 = 80;

/// One bucket: the app is empty for the tenant scope, the tenant for the app scope.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    scope: Scope,
    limit: Limit,
    app_id: String,
    tenant_id: String,
}

#[derive(Clone, Copy, Debug)]
struct Level {
    tokens: f64,
    at: Instant,
}

impl Level {
    fn refill(&mut self, bucket: Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        let rate = f64::from(bucket.capacity) / window(bucket).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(bucket.capacity));
        self.at = now.max(self.at);
    }

    fn used_percent(&self, bucket: Bucket) -> u8 {
        let capacity = f64::from(bucket.capacity);
        let used = ((capacity - self.tokens) / capacity * 100.0).round();
        used.clamp(0.0, 100.0) as u8
    }
}

fn window(bucket: Bucket) -> Duration {
    Duration::from_millis(bucket.window_ms.max(1))
}

/// Whole seconds until `bucket` refills `missing` tokens; at least 1.
fn retry_after_seconds(bucket: Bucket, missing: f64) -> u64 {
    let seconds = missing * window(bucket).as_secs_f64() / f64::from(bucket.capacity);
    // A hair below a whole second is that second, not the next one.
    ((seconds - 1e-9).ceil() as u64).max(1)
}

/// The quota in force and the levels of the buckets requests have touched.
#[derive(Debug, Default)]
pub struct TokenBuckets {
    quota: Option<Quota>,
    levels: HashMap<Key, Level>,
}

impl TokenBuckets {
    /// Sets (or with `None` switches off) the quota; every bucket starts full again.
    pub fn set(&mut self, quota: Option<Quota>) {
        self.quota = quota;
        self.levels.clear();
    }

    pub fn quota(&self) -> Option<Quota> {
        self.quota.clone()
    }

    /// Charges one request of `app_id` in `tenant_id`, unless a bucket refuses it.
    pub fn charge(&mut self, app_id: &str, tenant_id: &str, cost: Cost, now: Instant) -> Verdict {
        let Some(quota) = &self.quota else {
            return Verdict::default();
        };
        let buckets = applicable(
            quota,
            &app_id.to_ascii_lowercase(),
            &tenant_id.to_ascii_lowercase(),
            cost,
        );
        let needed = f64::from(cost.units());
        let mut refusal = None;
        for (key, bucket) in &buckets {
            let level = self.levels.entry(key.clone()).or_insert(Level {
                tokens: f64::from(bucket.capacity),
                at: now,
            });
            level.refill(*bucket, now);
            if refusal.is_none() && level.tokens < needed {
                refusal = Some(Refusal {
                    scope: key.scope,
                    limit: key.limit,
                    retry_after_seconds: retry_after_seconds(*bucket, needed - level.tokens),
                });
            }
        }
        if refusal.is_none() {
            for (key, _) in &buckets {
                if let Some(level) = self.levels.get_mut(key) {
                    level.tokens -= needed;
                }
            }
        }
        let limit_percentage = buckets
            .iter()
            .filter_map(|(key, bucket)| Some(self.levels.get(key)?.used_percent(*bucket)))
            .max()
            .filter(|used| *used >= WARN_FROM_PERCENT);
        Verdict {
            refusal,
            limit_percentage,
        }
    }
}

/// The buckets a request draws on, in the order that picks which one names a refusal.
fn applicable(quota: &Quota, app_id: &str, tenant_id: &str, cost: Cost) -> Vec<(Key, Bucket)> {
    let key = |scope, limit| Key {
        scope,
        limit,
        app_id: if scope == Scope::Tenant { "" } else { app_id }.to_owned(),
        tenant_id: if scope == Scope::Application {
            ""
        } else {
            tenant_id
        }
        .to_owned(),
    };
    let candidates = match cost {
        Cost::Write => vec![
            (
                key(Scope::TenantApplication, Limit::Write),
                quota.app_tenant_writes,
            ),
            (key(Scope::Tenant, Limit::Write), quota.tenant_writes),
            (key(Scope::Application, Limit::Write), quota.app_writes),
        ],
        Cost::Read { .. } => vec![(
            key(Scope::TenantApplication, Limit::Read),
            quota.app_tenant_read_units,
        )],
    };
    candidates
        .into_iter()
        .filter_map(|(key, bucket)| Some((key, bucket?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "app";
    const OTHER_APP: &str = "other-app";
    const TENANT: &str = "tenant";
    const OTHER_TENANT: &str = "other-tenant";

    fn buckets(quota: Quota) -> TokenBuckets {
        let mut buckets = TokenBuckets::default();
        buckets.set(Some(quota));
        buckets
    }

    fn per_second(capacity: u32) -> Option<Bucket> {
        Some(Bucket::new(capacity, Duration::from_secs(1)))
    }

    fn refused_scope(verdict: &Verdict) -> Option<Scope> {
        verdict.refusal.as_ref().map(|refusal| refusal.scope)
    }

    #[test]
    fn without_a_quota_nothing_is_refused_or_reported() {
        let mut buckets = TokenBuckets::default();
        let now = Instant::now();
        for _ in 0..1000 {
            assert_eq!(
                buckets.charge(APP, TENANT, Cost::Write, now),
                Verdict::default()
            );
        }
    }

    #[test]
    fn writes_refuse_at_capacity_and_refill_continuously() {
        let mut buckets = buckets(Quota {
            app_tenant_writes: Some(Bucket::new(3, Duration::from_millis(3000))),
            ..Quota::default()
        });
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(
                buckets.charge(APP, TENANT, Cost::Write, start).refusal,
                None
            );
        }
        let refused = buckets
            .charge(APP, TENANT, Cost::Write, start)
            .refusal
            .unwrap();
        assert_eq!(
            refused,
            Refusal {
                scope: Scope::TenantApplication,
                limit: Limit::Write,
                retry_after_seconds: 1,
            }
        );
        let almost = start + Duration::from_millis(990);
        assert!(
            buckets
                .charge(APP, TENANT, Cost::Write, almost)
                .refusal
                .is_some()
        );
        let refilled = start + Duration::from_millis(1000);
        assert_eq!(
            buckets.charge(APP, TENANT, Cost::Write, refilled).refusal,
            None
        );
        assert!(
            buckets
                .charge(APP, TENANT, Cost::Write, refilled)
                .refusal
                .is_some()
        );
    }

    #[test]
    fn retry_after_is_the_whole_seconds_until_one_token() {
        let mut buckets = buckets(Quota {
            tenant_writes: Some(Bucket::new(2, Duration::from_secs(10))),
            ..Quota::default()
        });
        let start = Instant::now();
        buckets.charge(APP, TENANT, Cost::Write, start);
        buckets.charge(APP, TENANT, Cost::Write, start);
        let mut seconds = |at| {
            let verdict = buckets.charge(APP, TENANT, Cost::Write, at);
            verdict.refusal.unwrap().retry_after_seconds
        };
        assert_eq!(seconds(start), 5);
        assert_eq!(seconds(start + Duration::from_millis(100)), 5);
        assert_eq!(seconds(start + Duration::from_millis(1000)), 4);
        assert_eq!(seconds(start + Duration::from_millis(4999)), 1);
    }

    #[test]
    fn a_refused_write_takes_nothing_from_any_bucket() {
        let mut buckets = buckets(Quota {
            app_tenant_writes: per_second(10),
            tenant_writes: per_second(1),
            ..Quota::default()
        });
        let now = Instant::now();
        assert_eq!(buckets.charge(APP, TENANT, Cost::Write, now).refusal, None);
        for _ in 0..5 {
            let verdict = buckets.charge(APP, TENANT, Cost::Write, now);
            assert_eq!(refused_scope(&verdict), Some(Scope::Tenant));
        }
        // Only the one write that passed used the app+tenant bucket: 10 % of it.
        let key = Key {
            scope: Scope::TenantApplication,
            limit: Limit::Write,
            app_id: APP.into(),
            tenant_id: TENANT.into(),
        };
        assert_eq!(buckets.levels[&key].tokens, 9.0);
    }

    #[test]
    fn each_scope_counts_what_it_spans() {
        let mut buckets = buckets(Quota {
            app_tenant_writes: per_second(2),
            tenant_writes: per_second(3),
            app_writes: per_second(3),
            ..Quota::default()
        });
        let now = Instant::now();
        let mut write = |app, tenant| refused_scope(&buckets.charge(app, tenant, Cost::Write, now));
        assert_eq!(write(APP, TENANT), None);
        assert_eq!(write(APP, TENANT), None);
        assert_eq!(write(APP, TENANT), Some(Scope::TenantApplication));
        assert_eq!(write(OTHER_APP, TENANT), None);
        assert_eq!(write(OTHER_APP, TENANT), Some(Scope::Tenant));
        assert_eq!(write(APP, OTHER_TENANT), None);
        assert_eq!(write(APP, OTHER_TENANT), Some(Scope::Application));
        assert_eq!(write(OTHER_APP, OTHER_TENANT), None);
    }

    #[test]
    fn the_first_empty_scope_in_order_names_the_refusal() {
        let mut buckets = buckets(Quota {
            app_tenant_writes: per_second(1),
            tenant_writes: per_second(1),
            app_writes: per_second(1),
            ..Quota::default()
        });
        let now = Instant::now();
        buckets.charge(APP, TENANT, Cost::Write, now);
        let verdict = buckets.charge(APP, TENANT, Cost::Write, now);
        assert_eq!(refused_scope(&verdict), Some(Scope::TenantApplication));
    }

    #[test]
    fn app_and_tenant_ids_match_whatever_their_case() {
        let mut buckets = buckets(Quota {
            app_tenant_writes: per_second(1),
            ..Quota::default()
        });
        let now = Instant::now();
        buckets.charge("ABC", "DEF", Cost::Write, now);
        assert!(
            buckets
                .charge("abc", "def", Cost::Write, now)
                .refusal
                .is_some()
        );
    }

    #[test]
    fn reads_spend_their_units_in_the_read_bucket_only() {
        let mut buckets = buckets(Quota {
            app_tenant_writes: per_second(1),
            app_tenant_read_units: per_second(5),
            ..Quota::default()
        });
        let now = Instant::now();
        let read = |units| Cost::Read { units };
        assert_eq!(buckets.charge(APP, TENANT, read(3), now).refusal, None);
        assert_eq!(buckets.charge(APP, TENANT, read(2), now).refusal, None);
        let refused = buckets.charge(APP, TENANT, read(1), now).refusal.unwrap();
        assert_eq!(
            (refused.scope, refused.limit),
            (Scope::TenantApplication, Limit::Read)
        );
        assert_eq!(buckets.charge(APP, TENANT, Cost::Write, now).refusal, None);
    }

    #[test]
    fn usage_is_reported_from_eighty_percent() {
        let mut buckets = buckets(Quota {
            app_tenant_writes: Some(Bucket::new(10, Duration::from_secs(3600))),
            app_writes: Some(Bucket::new(100, Duration::from_secs(3600))),
            ..Quota::default()
        });
        let now = Instant::now();
        let reported: Vec<Option<u8>> = (0..11)
            .map(|_| {
                buckets
                    .charge(APP, TENANT, Cost::Write, now)
                    .limit_percentage
            })
            .collect();
        assert_eq!(reported[..7], [None; 7]);
        assert_eq!(reported[7..], [Some(80), Some(90), Some(100), Some(100)]);
    }
}
