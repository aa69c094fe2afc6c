//! The `jti`s of certificate assertions already used, per app: Entra takes each assertion once.

use std::collections::HashMap;

use crate::jwt::CLOCK_SKEW_SECONDS;

#[derive(Debug, Default)]
pub struct SeenAssertions {
    /// Lowercased client id -> jti -> the assertion's `exp`.
    by_app: HashMap<String, HashMap<String, i64>>,
}

impl SeenAssertions {
    /// Records the jti; false if the app used it before. An entry is kept until its assertion
    /// would be refused as expired anyway, so memory stays bounded by the live assertions.
    pub fn first_use(&mut self, client_id: &str, jti: &str, exp: i64, now: i64) -> bool {
        let seen = self
            .by_app
            .entry(client_id.to_ascii_lowercase())
            .or_default();
        seen.retain(|_, seen_exp| *seen_exp + CLOCK_SKEW_SECONDS > now);
        seen.insert(jti.to_owned(), exp).is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_taken_once_per_app() {
        let mut seen = SeenAssertions::default();
        assert!(seen.first_use("app-a", "j1", 1_000, 500));
        assert!(!seen.first_use("APP-A", "j1", 1_000, 501));
        assert!(seen.first_use("app-b", "j1", 1_000, 502));
    }

    #[test]
    fn expired_entries_are_forgotten() {
        let mut seen = SeenAssertions::default();
        assert!(seen.first_use("app", "j1", 1_000, 500));
        assert!(seen.first_use("app", "j1", 5_000, 1_000 + CLOCK_SKEW_SECONDS));
    }
}
