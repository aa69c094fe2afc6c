//! Lease durations: Go-style strings such as `90s`, `15m`, `1h30m`, `1.5h`, `168h`.
//!
//! This is the syntax Kubernetes and cert-manager use and that CEL's `duration()` parses, which lets
//! the CRD schema compare `defaultTTL` with `maxTTL`. kube's own [`kube::core::Duration`] does the
//! parsing. Around it, the schema pattern: units `h`, `m` and `s`, with fractions of an hour to two
//! decimals and of a minute to one, so that every duration is a whole number of seconds (the times
//! in status have whole seconds) without a CEL rule the API server would find too costly; and the
//! limits the schema's CEL checks too: at least one second, at most what CEL represents.

use std::fmt;
use std::time::Duration;

/// The JSON-schema pattern for a duration string; [`parse_duration`] accepts the same language.
pub const DURATION_PATTERN: &str = "^([0-9]+(\\.[0-9]{1,2})?h|[0-9]+(\\.[0-9])?m|[0-9]+s)+$";

/// The longest accepted duration string, keeping values far from overflow in Rust and CEL.
pub const DURATION_MAX_LENGTH: u32 = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("duration is empty")]
    Empty,
    #[error(
        "duration {0:?} is not of the form 1h30m, 1.5h or 90.5m (units h, m, s; at most two \
         decimals of an hour, one of a minute, none of a second)"
    )]
    Syntax(String),
    #[error("duration {0:?} is too long")]
    Overflow(String),
    #[error("duration must be greater than zero")]
    Zero,
    #[error("duration {0:?} is not a whole number of seconds")]
    SubSecond(String),
}

/// Parses a Go-style duration with `h`, `m` and `s` units into a positive whole number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    // The schema's maxLength; it also bounds the sum kube's parser computes (it panics on overflow).
    if text.len() > DURATION_MAX_LENGTH as usize {
        return Err(DurationError::Overflow(text.to_owned()));
    }
    check_form(text)?;
    let parsed: kube::core::Duration = text
        .parse()
        .map_err(|_| DurationError::Syntax(text.to_owned()))?;
    let nanos = Duration::from(parsed).as_nanos();
    // Fractions go through f64: `2.7h` may come back a few femtoseconds off. Anything within a
    // microsecond of a whole second is that second.
    let seconds = (nanos + 500_000_000) / 1_000_000_000;
    if nanos.abs_diff(seconds * 1_000_000_000) > 1_000 {
        return Err(DurationError::SubSecond(text.to_owned()));
    }
    if seconds == 0 {
        return Err(DurationError::Zero);
    }
    // CEL durations are limited to about 290 years; refuse what it could not compare.
    if seconds > u128::from(MAX_SECONDS) {
        return Err(DurationError::Overflow(text.to_owned()));
    }
    Ok(Duration::from_secs(seconds as u64))
}

/// About 290 years, the largest duration CEL represents (int64 nanoseconds).
const MAX_SECONDS: u64 = (i64::MAX as u64) / 1_000_000_000;

/// At most this many digits before a part's decimal point: larger parts are over
/// [`MAX_SECONDS`] anyway, and kube's parser would overflow (and panic) on them.
const MAX_WHOLE_DIGITS: usize = 10;

/// The schema pattern, checked by hand: one or more `<digits>[.<digits>]<unit>` parts, with at
/// most two decimals for `h`, one for `m` and none for `s` (so always whole seconds).
fn check_form(text: &str) -> Result<(), DurationError> {
    let syntax = || DurationError::Syntax(text.to_owned());
    let mut rest = text;
    while !rest.is_empty() {
        let whole = rest.bytes().take_while(u8::is_ascii_digit).count();
        if whole == 0 {
            return Err(syntax());
        }
        if whole > MAX_WHOLE_DIGITS {
            return Err(DurationError::Overflow(text.to_owned()));
        }
        rest = &rest[whole..];
        let mut decimals = 0;
        if let Some(fraction) = rest.strip_prefix('.') {
            decimals = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if decimals == 0 {
                return Err(syntax());
            }
            rest = &fraction[decimals..];
        }
        let allowed = match rest.bytes().next() {
            Some(b'h') => 2,
            Some(b'm') => 1,
            Some(b's') => 0,
            _ => return Err(syntax()),
        };
        if decimals > allowed {
            return Err(syntax());
        }
        rest = &rest[1..];
    }
    Ok(())
}

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
    fn parses_single_compound_and_fractional_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("168h"), Ok(Duration::from_secs(168 * 3600)));
        assert_eq!(parse_duration("1h1m1s"), Ok(Duration::from_secs(3661)));
        // Go accepts units in any order and repeated; so does CEL, so we do too.
        assert_eq!(parse_duration("30m1h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90.5m"), Ok(Duration::from_secs(5430)));
        assert_eq!(parse_duration("2.7h"), Ok(Duration::from_secs(9720)));
        assert_eq!(parse_duration("2.75h"), Ok(Duration::from_secs(9900)));
        assert_eq!(parse_duration("0.5m"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("0.01h"), Ok(Duration::from_secs(36)));
    }

    #[test]
    fn rejects_what_the_schema_pattern_rejects() {
        for bad in [
            "", "1", "h", "1d", ".5h", "1.h", "-1h", "+1h", "1h ", " 1h", "1H", "1ms", "1us",
            "1ns", "1e3s", "1.5s", "0.5s", "0.01m", "1.001h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn rejects_zero_and_overflow() {
        assert_eq!(parse_duration("0s"), Err(DurationError::Zero));
        assert_eq!(parse_duration("0h0m"), Err(DurationError::Zero));
        assert_eq!(parse_duration("0.0h"), Err(DurationError::Zero));
        let long = "9999999999h".repeat(1000);
        for huge in [
            "99999999999999999999h",
            "3000000h",
            "9999999999.9m",
            long.as_str(),
        ] {
            assert!(
                matches!(parse_duration(huge), Err(DurationError::Overflow(_))),
                "{huge}"
            );
        }
    }

    #[test]
    fn formats_largest_units_first() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_secs(0)), "0s");
    }
}
