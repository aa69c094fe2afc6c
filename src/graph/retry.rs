//! Retrying transient failures inside the client, so callers see only answers they can act on.
//!
//! Throttling (429) waits as long as `Retry-After` says; 5xx, timeouts and broken connections back
//! off exponentially with jitter. Everything is bounded by attempts and by total time: when the
//! next wait would pass the budget the client gives up at once, with the server's hint attached
//! so the caller can requeue for then.

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::error::{GraphError, TransientFailure};

/// How long and how often to retry transient failures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Backoff before the first retry when the server gives no `Retry-After`.
    pub initial_backoff: Duration,
    /// Ceiling of one computed backoff (a server's `Retry-After` may ask for longer).
    pub max_backoff: Duration,
    /// Total time from the first attempt after which no further attempt starts.
    pub max_elapsed: Duration,
    /// Attempts in total, the first included.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_elapsed: Duration::from_secs(120),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The jittered backoff before retry number `retry` (1-based): uniformly within
    /// [half, all] of `initial * 2^(retry-1)`, capped at `max_backoff`.
    fn backoff(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(20);
        let ceiling = self
            .initial_backoff
            .saturating_mul(1 << exponent)
            .min(self.max_backoff);
        let half = ceiling / 2;
        let jitter_nanos = rand::rng().random_range(0..=(ceiling - half).as_nanos() as u64);
        half + Duration::from_nanos(jitter_nanos)
    }
}

/// The outcome of one failed attempt.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Worth another attempt.
    Transient(TransientFailure),
    /// Will fail the same way every time.
    Permanent(GraphError),
}

impl From<GraphError> for Failure {
    fn from(error: GraphError) -> Self {
        Failure::Permanent(error)
    }
}

/// Runs `attempt` (given the 1-based attempt number) until it succeeds, fails permanently, or the
/// policy's budget is spent.
pub(crate) async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    operation: &'static str,
    mut attempt: F,
) -> Result<T, GraphError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let transient = match attempt(attempts).await {
            Ok(value) => return Ok(value),
            Err(Failure::Permanent(error)) => return Err(error),
            Err(Failure::Transient(transient)) => transient,
        };
        let wait = transient
            .retry_after
            .unwrap_or_else(|| policy.backoff(attempts));
        let elapsed = started.elapsed();
        if attempts >= policy.max_attempts || elapsed + wait > policy.max_elapsed {
            tracing::debug!(
                operation,
                attempts,
                elapsed_ms = elapsed.as_millis() as u64,
                failure = %transient,
                "giving up on transient failures"
            );
            return Err(GraphError::TransientExhausted {
                operation,
                attempts,
                elapsed,
                last: Box::new(transient),
            });
        }
        tracing::debug!(
            operation,
            attempt = attempts,
            wait_ms = wait.as_millis() as u64,
            failure = %transient,
            "retrying after a transient failure"
        );
        crate::metrics::metrics()
            .graph_throttle_wait
            .inc_by(wait.as_secs_f64());
        tokio::time::sleep(wait).await;
    }
}

/// Parses `Retry-After`: delay seconds, whole or fractional (`2.128`), or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    // Anything longer is a broken header rather than advice worth following.
    const LONGEST: Duration = Duration::from_secs(3600);
    let value = value.trim();
    let wait = if let Ok(seconds) = value.parse::<f64>() {
        if !seconds.is_finite() || seconds < 0.0 {
            return None;
        }
        Duration::from_secs_f64(seconds.min(LONGEST.as_secs_f64()))
    } else {
        let at = k8s_openapi::jiff::fmt::rfc2822::parse(value)
            .ok()?
            .timestamp();
        let now = k8s_openapi::jiff::Timestamp::now();
        Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(LONGEST))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::graph::error::{Diagnostics, TransientKind};

    fn throttled(retry_after: Option<Duration>) -> Failure {
        Failure::Transient(TransientFailure {
            kind: TransientKind::Throttled,
            retry_after,
            diagnostics: Diagnostics::default(),
        })
    }

    fn quick_policy() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            max_elapsed: Duration::from_secs(10),
            max_attempts: 5,
        }
    }

    #[test]
    fn retry_after_accepts_integers_fractions_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after(" 2.128 "),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("NaN"), None);
        assert_eq!(
            parse_retry_after("99999999"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let policy = quick_policy();
        for _ in 0..100 {
            let first = policy.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = policy.backoff(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let late = policy.backoff(30);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_secs(1));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after_then_succeeds() {
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let result = with_retries(&quick_policy(), "test", |_| async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(throttled(Some(Duration::from_millis(2128)))),
                _ => Ok("done"),
            }
        })
        .await;
        assert_eq!(result.unwrap(), "done");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(started.elapsed() >= Duration::from_millis(2128));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retries(&quick_policy(), "test", |_| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Failure::Permanent(GraphError::Config("broken".into())))
        })
        .await;
        assert_eq!(result.unwrap_err().reason(), "InvalidConfiguration");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retries(&quick_policy(), "test", |_| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(throttled(None))
        })
        .await;
        let error = result.unwrap_err();
        assert!(error.is_transient());
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_once_when_retry_after_exceeds_the_budget() {
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let result: Result<(), _> = with_retries(&quick_policy(), "test", |_| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(throttled(Some(Duration::from_secs(60))))
        })
        .await;
        let error = result.unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(error.retry_after(), Some(Duration::from_secs(60)));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
