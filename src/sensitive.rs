//! Secret material (client secrets, access tokens, passwords): secrecy's `SecretString`.
//!
//! Its `Debug` prints `[REDACTED]`, it has no `Display` and, without secrecy's `serde` feature
//! (not enabled here), no `Serialize`, so it cannot slip into a log line, a status or an event; it
//! wipes its buffer when dropped. Reading the value takes an explicit `expose_secret()`, which
//! makes every place that handles the plaintext easy to find.

pub use secrecy::{ExposeSecret, SecretString};

#[cfg(test)]
mod tests {
    use super::*;

    const VALUE: &str = "s3cr3t-V4lue~abc";

    #[derive(Debug)]
    #[allow(dead_code)] // the fields are read only through Debug
    struct Holder {
        name: &'static str,
        secret: SecretString,
        nested: Option<Vec<SecretString>>,
    }

    #[test]
    fn debug_is_redacted() {
        let secret = SecretString::from(VALUE);
        for printed in [format!("{secret:?}"), format!("{secret:#?}")] {
            assert!(!printed.contains(VALUE), "{printed}");
            assert!(printed.contains("REDACTED"), "{printed}");
        }
    }

    #[test]
    fn structs_holding_a_secret_do_not_show_it() {
        let holder = Holder {
            name: "app",
            secret: SecretString::from(VALUE.to_owned()),
            nested: Some(vec![SecretString::from(VALUE)]),
        };
        for printed in [format!("{holder:?}"), format!("{holder:#?}")] {
            assert!(!printed.contains(VALUE), "{printed}");
            assert!(printed.contains("REDACTED"));
            assert!(printed.contains("app"));
        }
    }

    #[test]
    fn expose_secret_returns_the_value() {
        let secret = SecretString::from(VALUE);
        assert_eq!(secret.expose_secret(), VALUE);
        assert_eq!(secret.clone().expose_secret(), VALUE);
    }
}
