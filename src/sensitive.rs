//! Secret material (client secrets, access tokens, passwords) behind a type that cannot be printed.
//!
//! `SecretString` prints as `[redacted]` through both `Debug` and `Display`, implements no `Serialize`
//! (so it cannot slip into a status or an event), and wipes its buffer when dropped. Reading the value
//! takes an explicit `expose()`, which makes every place that handles the plaintext easy to find.

use std::fmt;

use zeroize::Zeroizing;

const REDACTED: &str = "[redacted]";

/// A string whose value is secret: redacted when formatted, zeroized when dropped.
#[derive(Clone, Default)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The plaintext. Call it only where the value leaves the process on purpose (an HTTP body,
    /// a Kubernetes Secret's data).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self::new(value.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

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
    fn debug_and_display_are_redacted() {
        let secret = SecretString::from(VALUE);
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(format!("{secret:#?}"), "[redacted]");
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
            assert!(printed.contains("[redacted]"));
            assert!(printed.contains("app"));
        }
    }

    #[test]
    fn expose_returns_the_value() {
        let secret = SecretString::from(VALUE);
        assert_eq!(secret.expose(), VALUE);
        assert_eq!(secret.len(), VALUE.len());
        assert!(!secret.is_empty());
        assert_eq!(secret.clone().expose(), VALUE);
    }
}
