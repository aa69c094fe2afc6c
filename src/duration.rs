//! Lease durations: Go-style strings such as `90s`, `15m`, `1h30m`, `168h`.
//!
//! This is the syntax Kubernetes and cert-manager use and that CEL's `duration()` parses, which lets
//! the CRD schema compare `defaultTTL` with `maxTTL`. The schema pattern and the parser below accept
//! exactly the same strings: one or more `<digits><unit>` parts with units `h`, `m` and `s`.

use std::fmt;
use std::time::Duration;

/// The JSON-schema pattern for a duration string; [`parse_duration`] accepts the same language.
pub const DURATION_PATTERN: &str = "^([0-9]+(h|m|s))+$";

/// The longest accepted duration string, keeping values far from overflow in Rust and CEL.
pub const DURATION_MAX_LENGTH: u32 = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration is empty")]
    Empty,
    #[error("duration {0:?} is not of the form 1h30m (units h, m, s)")]
    Syntax(String),
    #[error("duration {0:?} is too long")]
    Overflow(String),
    #[error("duration must be greater than zero")]
    Zero,
}

/// Parses a Go-style duration with `h`, `m` and `s` units into a positive [`Duration`].
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let syntax = || DurationError::Syntax(text.to_owned());
    let overflow = || DurationError::Overflow(text.to_owned());
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(syntax());
        }
        let (number, after) = rest.split_at(digits);
        let unit_seconds = match after.bytes().next() {
            Some(b'h') => 3600,
            Some(b'm') => 60,
            Some(b's') => 1,
            _ => return Err(syntax()),
        };
        let value: u64 = number.parse().map_err(|_| overflow())?;
        let seconds = value.checked_mul(unit_seconds).ok_or_else(overflow)?;
        total = total.checked_add(seconds).ok_or_else(overflow)?;
        rest = &after[1..];
    }
    if total == 0 {
        return Err(DurationError::Zero);
    }
    // CEL durations are limited to about 290 years; refuse what it could not compare.
    if total > MAX_SECONDS {
        return Err(overflow());
    }
    Ok(Duration::from_secs(total))
}

/// About 290 years, the largest duration CEL represents (int64 nanoseconds).
const MAX_SECONDS: u64 = (i64::MAX as u64) / 1_000_000_000;

/// Formats a duration in the same syntax, largest units first (`5400s` -> `1h30m`).
pub fn format_duration(duration: Duration) -> String {
    struct Go(u64);
    impl fmt::Display for Go {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let (h, m, s) = (self.0 / 3600, self.0 / 60 % 60, self.0 % 60);
            if h > 0 {
                write!(f, "{h}h")?;
            }
            if m > 0 {
                write!(f, "{m}m")?;
            }
            if s > 0 || self.0 == 0 {
                write!(f, "{s}s")?;
            }
            Ok(())
        }
    }
    Go(duration.as_secs()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_compound_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("168h"), Ok(Duration::from_secs(168 * 3600)));
        assert_eq!(parse_duration("1h1m1s"), Ok(Duration::from_secs(3661)));
        // Go accepts units in any order and repeated; so does CEL, so we do too.
        assert_eq!(parse_duration("30m1h"), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn rejects_what_the_schema_pattern_rejects() {
        for bad in [
            "", "1", "h", "1d", "1.5h", "-1h", "1h ", " 1h", "1H", "1ms", "1us",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn rejects_zero_and_overflow() {
        assert_eq!(parse_duration("0s"), Err(DurationError::Zero));
        assert_eq!(parse_duration("0h0m"), Err(DurationError::Zero));
        assert!(matches!(
            parse_duration("99999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_duration("3000000h"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn formats_largest_units_first() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_secs(0)), "0s");
    }
}
