//! The budgets Entra counts Graph requests against (`entra-graph.md`, "Throttling"), as the
//! operator paces itself: token buckets of a size refilled over a window.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// One limit: `capacity` requests (or resource units) refilled evenly over `window`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    pub capacity: f64,
    pub window: Duration,
}

impl Budget {
    pub const fn new(capacity: u32, window: Duration) -> Self {
        Self {
            capacity: capacity as f64,
            window,
        }
    }

    /// Tokens refilled per second.
    pub fn rate(&self) -> f64 {
        self.capacity / self.window.as_secs_f64().max(0.001)
    }
}

impl FromStr for Budget {
    type Err = String;

    /// `3000/150s`, `18000/5m`: a count, a slash, a duration.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (count, window) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not COUNT/DURATION, e.g. 3000/150s"))?;
        let capacity: u32 = count
            .trim()
            .parse()
            .map_err(|_| format!("{count:?} is not a whole number"))?;
        let window =
            crate::duration::parse_duration(window.trim()).map_err(|error| error.to_string())?;
        if capacity == 0 || window.is_zero() {
            return Err(format!(
                "{text:?}: the count and the duration must be above 0"
            ));
        }
        Ok(Budget::new(capacity, window))
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.capacity, self.window.as_secs_f64())
    }
}

/// Every budget the scheduler keeps, per the scopes Entra counts.
#[derive(Clone, Debug, PartialEq)]
pub struct Budgets {
    /// Writes per app in one tenant: 3,000 per 2 min 30 s.
    pub app_tenant_writes: Budget,
    /// Writes per tenant across all apps: 18,000 per 5 min.
    pub tenant_writes: Budget,
    /// Writes per app across all tenants: 35,000 per 5 min.
    pub app_writes: Budget,
    /// Read resource units per app in one tenant: 3,500 per 10 s (a tenant under 50 users, the
    /// smallest; larger tenants may raise it).
    pub app_tenant_read_units: Budget,
    /// The share of each tenant's and app's write budget only ending credentials may spend, so
    /// that issues and restores that drain a budget leave room for revocations.
    pub end_reserve: f64,
    /// How long a request whose holder can come back may wait in the worker before it is
    /// parked instead.
    pub inline_wait: Duration,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            app_tenant_writes: Budget::new(3_000, Duration::from_secs(150)),
            tenant_writes: Budget::new(18_000, Duration::from_secs(300)),
            app_writes: Budget::new(35_000, Duration::from_secs(300)),
            app_tenant_read_units: Budget::new(3_500, Duration::from_secs(10)),
            end_reserve: 0.1,
            inline_wait: Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_reads_as_count_over_duration() {
        let budget: Budget = "3000/150s".parse().unwrap();
        assert_eq!(budget, Budget::new(3000, Duration::from_secs(150)));
        assert_eq!(budget.rate(), 20.0);
        let budget: Budget = "300/15s".parse().unwrap();
        assert_eq!(budget.rate(), 20.0);
        for wrong in ["3000", "x/1s", "10/", "0/1s", "10/0s", "-1/1s"] {
            assert!(wrong.parse::<Budget>().is_err(), "{wrong} was accepted");
        }
    }
}
