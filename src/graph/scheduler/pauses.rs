//! Scopes Entra asked to be left alone (a 429), or that did not answer: nothing of theirs starts
//! before the pause ends. Without a `Retry-After`, pauses grow exponentially with jitter.

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::scope::Scope;

/// Pauses are forgotten this long after they ended.
const REMEMBERED: Duration = Duration::from_secs(600);

#[derive(Debug)]
struct Pause {
    until: Instant,
    /// Refusals in a row, for the next backoff.
    refusals: u32,
}

#[derive(Debug)]
pub struct Pauses {
    by_scope: HashMap<Scope, Pause>,
    /// The first pause without advice, doubled on every further refusal up to `longest`.
    first: Duration,
    longest: Duration,
}

impl Pauses {
    pub fn new(first: Duration, longest: Duration) -> Self {
        Self {
            by_scope: HashMap::new(),
            first,
            longest,
        }
    }

    /// Pauses `scope` for `advice` (Entra's `Retry-After`), or for a jittered backoff that
    /// grows with each refusal in a row.
    pub fn pause(&mut self, scope: Scope, advice: Option<Duration>, now: Instant) -> Duration {
        let pause = self.by_scope.entry(scope).or_insert(Pause {
            until: now,
            refusals: 0,
        });
        pause.refusals = pause.refusals.saturating_add(1);
        let wait = advice.unwrap_or_else(|| backoff(self.first, self.longest, pause.refusals));
        pause.until = pause.until.max(now + wait);
        wait
    }

    /// A request of `scope` was answered: the next refusal starts the backoff anew.
    pub fn answered(&mut self, scope: &Scope, now: Instant) {
        if self
            .by_scope
            .get(scope)
            .is_some_and(|pause| pause.until <= now)
        {
            self.by_scope.remove(scope);
        }
    }

    /// How long `scope` stays paused.
    pub fn remaining(&self, scope: &Scope, now: Instant) -> Duration {
        self.by_scope.get(scope).map_or(Duration::ZERO, |pause| {
            pause.until.saturating_duration_since(now)
        })
    }

    /// Forgets pauses long over whose scopes went quiet.
    pub fn forget_old(&mut self, now: Instant) {
        self.by_scope
            .retain(|_, pause| now.saturating_duration_since(pause.until) < REMEMBERED);
    }
}

/// Uniformly within [half, all] of `first * 2^(refusals-1)`, capped at `longest`.
fn backoff(first: Duration, longest: Duration, refusals: u32) -> Duration {
    let ceiling = first
        .saturating_mul(1 << refusals.saturating_sub(1).min(20))
        .min(longest);
    let half = ceiling / 2;
    let jitter = rand::rng().random_range(0..=(ceiling - half).as_millis() as u64);
    half + Duration::from_millis(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONGEST: Duration = Duration::from_secs(60);

    fn fresh() -> Pauses {
        Pauses::new(Duration::from_secs(1), LONGEST)
    }

    fn scope() -> Scope {
        Scope::Tenant("t".into())
    }

    #[test]
    fn a_pause_follows_advice_and_without_it_grows() {
        let now = Instant::now();
        let mut pauses = fresh();
        pauses.pause(scope(), Some(Duration::from_secs(60)), now);
        assert_eq!(pauses.remaining(&scope(), now), Duration::from_secs(60));
        let mut pauses = fresh();
        let first = pauses.pause(scope(), None, now);
        let second = pauses.pause(scope(), None, now);
        let third = pauses.pause(scope(), None, now);
        assert!(first <= Duration::from_secs(1) && first >= Duration::from_millis(500));
        assert!(second >= Duration::from_secs(1) && second <= Duration::from_secs(2));
        assert!(third >= Duration::from_secs(2) && third <= Duration::from_secs(4));
        for _ in 0..20 {
            pauses.pause(scope(), None, now);
        }
        assert!(pauses.remaining(&scope(), now) <= LONGEST + Duration::from_secs(4));
    }

    #[test]
    fn an_answer_after_the_pause_starts_the_backoff_anew() {
        let now = Instant::now();
        let mut pauses = fresh();
        pauses.pause(scope(), None, now);
        pauses.pause(scope(), None, now);
        let later = now + Duration::from_secs(10);
        pauses.answered(&scope(), later);
        let wait = pauses.pause(scope(), None, later);
        assert!(wait <= Duration::from_secs(1));
    }
}
