//! Recent access decisions, so that a scrape every few seconds does not cost a TokenReview and a
//! SubjectAccessReview each time. Bounded in size and time: a caller with many tokens can neither
//! grow memory nor keep a decision alive once its grant is gone for longer than its TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the API server said about a bearer token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Authenticated, and may `get` `/metrics`.
    Allowed,
    /// Authenticated, but may not.
    Forbidden,
    /// Not a valid token.
    Unauthenticated,
}

impl Access {
    /// How long the decision is kept: an allowed scraper briefly, like controller-runtime's
    /// authenticator (one minute); a refusal shorter, so a fresh grant soon takes effect.
    fn time_to_live(self) -> Duration {
        match self {
            Access::Allowed => Duration::from_secs(60),
            Access::Forbidden | Access::Unauthenticated => Duration::from_secs(10),
        }
    }
}

/// A token's SHA-256: the cache never holds a token itself.
pub type TokenDigest = [u8; 32];

pub fn digest(token: &str) -> TokenDigest {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes long")
}

pub struct DecisionCache {
    capacity: usize,
    decisions: Mutex<HashMap<TokenDigest, (Access, Instant)>>,
}

impl DecisionCache {
    pub fn new(capacity: usize) -> DecisionCache {
        DecisionCache {
            capacity,
            decisions: Mutex::new(HashMap::with_capacity(capacity)),
        }
    }

    /// The decision about `token`, while it has not expired.
    pub fn get(&self, token: &TokenDigest, now: Instant) -> Option<Access> {
        let decisions = self.decisions.lock().unwrap();
        decisions
            .get(token)
            .filter(|(_, expires_at)| *expires_at > now)
            .map(|(access, _)| *access)
    }

    /// Keeps `access` for its time to live. When full, expired decisions go first, then the one
    /// closest to expiry (refusals, with their shorter life, before allowed scrapers).
    pub fn insert(&self, token: TokenDigest, access: Access, now: Instant) {
        let mut decisions = self.decisions.lock().unwrap();
        if decisions.len() >= self.capacity && !decisions.contains_key(&token) {
            decisions.retain(|_, (_, expires_at)| *expires_at > now);
        }
        if decisions.len() >= self.capacity && !decisions.contains_key(&token) {
            let soonest = decisions
                .iter()
                .min_by_key(|(_, (_, expires_at))| *expires_at)
                .map(|(digest, _)| *digest);
            if let Some(soonest) = soonest {
                decisions.remove(&soonest);
            }
        }
        decisions.insert(token, (access, now + access.time_to_live()));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.decisions.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(n: usize) -> TokenDigest {
        digest(&format!("token-{n}"))
    }

    #[test]
    fn a_decision_is_kept_for_its_time_to_live() {
        let cache = DecisionCache::new(4);
        let now = Instant::now();
        cache.insert(token(1), Access::Allowed, now);
        cache.insert(token(2), Access::Forbidden, now);
        assert_eq!(cache.get(&token(1), now), Some(Access::Allowed));
        assert_eq!(
            cache.get(&token(2), now + Duration::from_secs(9)),
            Some(Access::Forbidden)
        );
        assert_eq!(cache.get(&token(2), now + Duration::from_secs(10)), None);
        assert_eq!(
            cache.get(&token(1), now + Duration::from_secs(59)),
            Some(Access::Allowed)
        );
        assert_eq!(cache.get(&token(1), now + Duration::from_secs(60)), None);
        assert_eq!(cache.get(&token(3), now), None);
    }

    #[test]
    fn many_tokens_never_grow_the_cache_past_its_capacity() {
        let cache = DecisionCache::new(8);
        let now = Instant::now();
        for n in 0..1000 {
            cache.insert(token(n), Access::Unauthenticated, now);
        }
        assert_eq!(cache.len(), 8);
    }

    #[test]
    fn refusals_make_room_before_an_allowed_scraper() {
        let cache = DecisionCache::new(2);
        let now = Instant::now();
        cache.insert(token(0), Access::Allowed, now);
        for n in 1..100 {
            cache.insert(token(n), Access::Unauthenticated, now);
        }
        assert_eq!(cache.get(&token(0), now), Some(Access::Allowed));
        assert_eq!(cache.get(&token(99), now), Some(Access::Unauthenticated));
    }

    #[test]
    fn expired_decisions_make_room_first() {
        let cache = DecisionCache::new(2);
        let start = Instant::now();
        cache.insert(token(0), Access::Forbidden, start);
        cache.insert(token(1), Access::Allowed, start);
        let later = start + Duration::from_secs(30);
        cache.insert(token(2), Access::Allowed, later);
        assert_eq!(cache.get(&token(1), later), Some(Access::Allowed));
        assert_eq!(cache.get(&token(2), later), Some(Access::Allowed));
    }
}
