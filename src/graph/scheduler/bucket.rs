//! A token bucket as Entra keeps one: full at first, refilled evenly, spent one request (or
//! resource unit) at a time. Entra's own view, when it sends one, overrides ours.

use std::time::Duration;

use tokio::time::Instant;

use super::budgets::Budget;

#[derive(Debug)]
pub struct Bucket {
    budget: Budget,
    tokens: f64,
    refilled_at: Instant,
}

impl Bucket {
    pub fn full(budget: Budget, now: Instant) -> Self {
        Self {
            budget,
            tokens: budget.capacity,
            refilled_at: now,
        }
    }

    pub fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        self.tokens =
            (self.tokens + elapsed.as_secs_f64() * self.budget.rate()).min(self.budget.capacity);
        self.refilled_at = now;
    }

    /// Tokens that must stay in the bucket after a request of a class that may not spend the
    /// reserve.
    pub fn reserve(&self, share: f64) -> f64 {
        self.budget.capacity * share
    }

    /// True when `units` can be taken leaving `keep` behind.
    pub fn has(&self, units: f64, keep: f64) -> bool {
        self.tokens - units >= keep - 1e-9
    }

    pub fn is_full(&self) -> bool {
        self.tokens >= self.budget.capacity
    }

    pub fn take(&mut self, units: f64) {
        self.tokens -= units;
    }

    /// Gives back what a request that never went out had taken.
    pub fn give_back(&mut self, units: f64) {
        self.tokens = (self.tokens + units).min(self.budget.capacity);
    }

    /// How long until `needed` tokens (beyond `keep`) are in the bucket.
    pub fn time_until(&self, needed: f64, keep: f64) -> Duration {
        let missing = needed + keep - self.tokens;
        if missing <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(missing / self.budget.rate())
    }

    /// Entra said this share of the limit is used (`x-ms-throttle-limit-percentage`): our count
    /// is never more generous than that.
    pub fn used_at_least(&mut self, percent: f64) {
        let left = self.budget.capacity * (1.0 - percent.clamp(0.0, 100.0) / 100.0);
        self.tokens = self.tokens.min(left);
    }

    /// Entra refused for this scope: whatever we counted, only the reserve `keep` is left, so
    /// that after the pause requests go out at the refill rate (ends may still use the reserve).
    pub fn spent_down_to(&mut self, keep: f64) {
        self.tokens = self.tokens.min(keep);
    }

    #[cfg(test)]
    pub fn used_percent(&self) -> f64 {
        100.0 * (1.0 - self.tokens / self.budget.capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refills_evenly_up_to_its_capacity() {
        let start = Instant::now();
        let mut bucket = Bucket::full(Budget::new(10, Duration::from_secs(10)), start);
        for _ in 0..10 {
            assert!(bucket.has(1.0, 0.0));
            bucket.take(1.0);
        }
        assert!(!bucket.has(1.0, 0.0));
        assert_eq!(bucket.time_until(1.0, 0.0), Duration::from_secs(1));
        bucket.refill(start + Duration::from_millis(2500));
        assert!(bucket.has(2.0, 0.0) && !bucket.has(3.0, 0.0));
        bucket.refill(start + Duration::from_secs(100));
        assert!(bucket.has(10.0, 0.0) && !bucket.has(10.5, 0.0));
    }

    #[test]
    fn the_reserve_is_left_to_those_who_may_spend_it() {
        let mut bucket = Bucket::full(Budget::new(10, Duration::from_secs(10)), Instant::now());
        bucket.take(9.0);
        let keep = bucket.reserve(0.1);
        assert!(!bucket.has(1.0, keep));
        assert!(bucket.has(1.0, 0.0));
    }

    #[test]
    fn entras_view_lowers_ours() {
        let mut bucket = Bucket::full(Budget::new(100, Duration::from_secs(10)), Instant::now());
        bucket.used_at_least(85.0);
        assert!((bucket.used_percent() - 85.0).abs() < 1e-6);
        bucket.used_at_least(10.0);
        assert!((bucket.used_percent() - 85.0).abs() < 1e-6);
        bucket.spent_down_to(10.0);
        assert!(bucket.has(10.0, 0.0) && !bucket.has(1.0, 10.0));
    }
}
