//! The Graph client's settings. Its own file, below both `client` and `token` (which each read
//! them), so that neither imports the other.

use std::time::Duration;

use super::retry::RetryPolicy;
use super::scheduler::Budgets;

/// Timeouts, retry budget and token handling. `Default` is for production; tests shrink it.
#[derive(Clone, Debug)]
pub struct GraphClientConfig {
    /// Time for one attempt, from connecting to the last byte of the answer.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    /// A cached token is replaced this long before it expires (at most half its lifetime).
    pub token_expiry_margin: Duration,
    /// A 403 drops the cached token and retries once (role grants show only in new tokens), but
    /// only for a token at least this old: a younger one already carries the current grants.
    pub forbidden_token_min_age: Duration,
    /// Entra's budgets, as the scheduler paces requests to them.
    pub budgets: Budgets,
}

impl Default for GraphClientConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            token_expiry_margin: Duration::from_secs(5 * 60),
            forbidden_token_min_age: Duration::from_secs(60),
            budgets: Budgets::default(),
        }
    }
}
