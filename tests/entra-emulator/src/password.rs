//! Entra ID's password rules for cloud users, as an admin reset through Graph meets them:
//! length, character set, complexity, a (tiny) banned list with Microsoft-style normalisation,
//! and the user's own names.
//!
//! [`check_password`] is public so that tests outside the emulator ask the same policy that
//! `PATCH /users/{id}` enforces instead of keeping a copy of the rules.

/// Why a password was refused. Graph answers each with 400 `Request_BadRequest`; `Display`
/// names the rule, for test failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejection {
    #[error("the password is not 8 to 256 characters long")]
    Length,
    #[error("the password has a character other than printable ASCII and space")]
    NotPrintableAscii,
    #[error("the password has fewer than three of lowercase, uppercase, digit and symbol")]
    TooFewCharacterClasses,
    #[error("the password contains a banned term (after undoing character substitutions)")]
    Banned,
    #[error("the password contains the user's name")]
    ContainsUserName,
}

impl PasswordRejection {
    /// The message Graph puts in the error body.
    pub(crate) fn message(self) -> &'static str {
        match self {
            PasswordRejection::Length
            | PasswordRejection::NotPrintableAscii
            | PasswordRejection::TooFewCharacterClasses => {
                "The specified password does not comply with password complexity requirements. Please provide a different password."
            }
            PasswordRejection::Banned | PasswordRejection::ContainsUserName => {
                "The password you chose is too easy to guess (banned password list or the user's name). Please provide a different password."
            }
        }
    }
}

const MIN_LENGTH: usize = 8;
const MAX_LENGTH: usize = 256;

/// A stand-in for Microsoft's global banned list. Terms are normalised like the password, so
/// `123456` is found as typed (and as `l2eas6`, one of its substitution spellings).
const BANNED_TERMS: [&str; 6] = [
    "password", "welcome", "qwerty", "letmein", "iloveyou", "123456",
];

/// Names shorter than this are not checked, as a 2-letter name would reject most passwords.
const MIN_CHECKED_NAME_LENGTH: usize = 3;

/// Checks `password` against Entra's policy for a cloud user's admin reset: 8 to 256 printable
/// ASCII characters, at least three of the four character classes, no banned term, and not the
/// user's name (the local part of `user_principal_name`, or `display_name` or any word of it).
/// `None` for `display_name` checks the UPN alone.
///
/// Any password can be refused as banned or as containing the name, so callers that generate
/// passwords must be ready to retry, as with Entra itself.
pub fn check_password(
    password: &str,
    user_principal_name: &str,
    display_name: Option<&str>,
) -> Result<(), PasswordRejection> {
    let length = password.chars().count();
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&length) {
        return Err(PasswordRejection::Length);
    }
    // Every printable ASCII symbol, and space, is on Microsoft's allowed list.
    if !password.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
        return Err(PasswordRejection::NotPrintableAscii);
    }
    if character_classes(password) < 3 {
        return Err(PasswordRejection::TooFewCharacterClasses);
    }
    let normalised = normalise(password);
    if BANNED_TERMS
        .iter()
        .any(|term| normalised.contains(&normalise(term)))
    {
        return Err(PasswordRejection::Banned);
    }
    let lowercase = password.to_ascii_lowercase();
    if user_names(user_principal_name, display_name).any(|name| lowercase.contains(&name)) {
        return Err(PasswordRejection::ContainsUserName);
    }
    Ok(())
}

fn character_classes(password: &str) -> usize {
    let has = |predicate: fn(&char) -> bool| password.chars().any(|c| predicate(&c));
    [
        has(char::is_ascii_lowercase),
        has(char::is_ascii_uppercase),
        has(char::is_ascii_digit),
        has(|c| *c == ' ' || c.is_ascii_punctuation()),
    ]
    .into_iter()
    .filter(|present| *present)
    .count()
}

/// Lower-cases and undoes common character substitutions, so `P@ssw0rd` is `password`.
fn normalise(text: &str) -> String {
    text.chars()
        .map(|c| match c.to_ascii_lowercase() {
            '@' | '4' => 'a',
            '0' => 'o',
            '1' | '|' => 'l',
            '!' => 'i',
            '$' | '5' => 's',
            '3' => 'e',
            '7' => 't',
            other => other,
        })
        .collect()
}

/// The UPN's local part, the display name and each word of it, lower-cased, long enough to check.
fn user_names<'a>(
    user_principal_name: &'a str,
    display_name: Option<&'a str>,
) -> impl Iterator<Item = String> + 'a {
    let local_part = user_principal_name.split('@').next().unwrap_or_default();
    let display_name = display_name.unwrap_or_default();
    std::iter::once(local_part)
        .chain(std::iter::once(display_name))
        .chain(display_name.split_whitespace())
        .map(|name| {
            name.trim_matches(|c: char| !c.is_alphanumeric())
                .to_ascii_lowercase()
        })
        .filter(|name| name.len() >= MIN_CHECKED_NAME_LENGTH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(password: &str) -> Result<(), PasswordRejection> {
        check_password(
            password,
            "alice@contoso.onmicrosoft.com",
            Some("Alice Anders"),
        )
    }

    #[test]
    fn a_strong_password_is_accepted() {
        assert_eq!(check("kT7#vQ2m-Lp9xZ"), Ok(()));
        assert_eq!(
            check("three classes only 9"),
            Ok(()),
            "space counts as a symbol"
        );
    }

    #[test]
    fn length_must_be_8_to_256() {
        assert_eq!(check("aB3#xyz"), Err(PasswordRejection::Length));
        assert_eq!(check("aB3#xyzw"), Ok(()));
        let longest = format!("aB3#{}", "x".repeat(252));
        assert_eq!(check(&longest), Ok(()));
        let too_long = format!("{longest}x");
        assert_eq!(check(&too_long), Err(PasswordRejection::Length));
    }

    #[test]
    fn only_printable_ascii_is_allowed() {
        assert_eq!(
            check("kT7#vQ2mé"),
            Err(PasswordRejection::NotPrintableAscii)
        );
        assert_eq!(
            check("kT7#\tvQ2m"),
            Err(PasswordRejection::NotPrintableAscii)
        );
    }

    #[test]
    fn three_of_four_classes_are_required() {
        assert_eq!(
            check("abcdefgh12"),
            Err(PasswordRejection::TooFewCharacterClasses)
        );
        assert_eq!(
            check("ABCDEFGH#$"),
            Err(PasswordRejection::TooFewCharacterClasses)
        );
        assert_eq!(check("abcdEFGH12"), Ok(()));
        assert_eq!(check("abcd#$%12"), Ok(()));
    }

    #[test]
    fn banned_terms_are_refused_after_normalisation() {
        assert_eq!(check("Password#2024"), Err(PasswordRejection::Banned));
        assert_eq!(check("xP@ssw0rd!9"), Err(PasswordRejection::Banned));
        assert_eq!(check("P@$$w0rd-Xy"), Err(PasswordRejection::Banned));
        assert_eq!(check("W3lcome-Home9"), Err(PasswordRejection::Banned));
    }

    #[test]
    fn a_banned_digit_run_is_refused_as_typed() {
        // Normalising only the password turned `123456` into `l2eas6`, which never matched.
        assert_eq!(check("Qx#123456z"), Err(PasswordRejection::Banned));
        assert_eq!(check("123456-Abcd"), Err(PasswordRejection::Banned));
        assert_eq!(check("Abcd-x123456"), Err(PasswordRejection::Banned));
        assert_eq!(check("Qx#12345z6"), Ok(()), "an interrupted run is allowed");
    }

    #[test]
    fn the_users_names_are_refused() {
        assert_eq!(
            check("xxALICE#9yy"),
            Err(PasswordRejection::ContainsUserName)
        );
        assert_eq!(
            check("Anders-7#qz"),
            Err(PasswordRejection::ContainsUserName)
        );
        assert_eq!(
            check_password("bo-Bo-7#qzx", "bo@contoso.onmicrosoft.com", Some("Bo")),
            Ok(()),
            "names under 3 chars are not checked"
        );
    }

    #[test]
    fn without_a_display_name_the_upn_is_still_checked() {
        let check = |password| check_password(password, "alice@contoso.onmicrosoft.com", None);
        assert_eq!(
            check("xxALICE#9yy"),
            Err(PasswordRejection::ContainsUserName)
        );
        assert_eq!(check("Anders-7#qz"), Ok(()));
    }

    #[test]
    fn a_rejection_displays_the_rule_it_broke() {
        assert_eq!(
            PasswordRejection::TooFewCharacterClasses.to_string(),
            "the password has fewer than three of lowercase, uppercase, digit and symbol"
        );
        assert_eq!(
            check("Qx#123456z").unwrap_err().to_string(),
            "the password contains a banned term (after undoing character substitutions)"
        );
    }
}
