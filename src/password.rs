//! Passwords for leased users: random, from the operating system's CSPRNG, and always inside
//! Entra's policy for cloud users (ASCII, at most 256 characters, lowercase, uppercase, digit and
//! symbol all present).
//!
//! The symbols are Microsoft's allowed set without the quote, double quote, backslash, backtick
//! and space, which break shell scripts, YAML and connection strings that embed the password.

use std::ops::RangeInclusive;

use rand::TryRngCore;
use rand::rngs::OsRng;
use rand::seq::{IndexedRandom, SliceRandom};
use zeroize::Zeroizing;

use crate::sensitive::SecretString;

/// The lengths the generator produces; shorter or longer requests are clamped into it.
pub const PASSWORD_LENGTHS: RangeInclusive<usize> = 16..=256;

pub const LOWERCASE: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
pub const UPPERCASE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
pub const DIGITS: &[u8] = b"0123456789";
pub const SYMBOLS: &[u8] = b"@#$%^&*-_!+=[]{}|:,.?/~();<>";

/// A new random password of `length` characters, clamped to [`PASSWORD_LENGTHS`].
///
/// One character of each class goes first, the rest come from all classes together, then a
/// uniform shuffle puts the required characters at random positions. Draws come straight from
/// the operating system's CSPRNG through rand's uniform distributions (no modulo bias).
pub fn generate_password(length: usize) -> SecretString {
    let length = length.clamp(*PASSWORD_LENGTHS.start(), *PASSWORD_LENGTHS.end());
    let alphabet: Vec<u8> = [LOWERCASE, UPPERCASE, DIGITS, SYMBOLS].concat();
    // No generator state outlives the call: every byte is read from the OS when it is drawn.
    let mut random = OsRng.unwrap_err();
    let mut characters = Zeroizing::new(Vec::with_capacity(length));
    for class in [LOWERCASE, UPPERCASE, DIGITS, SYMBOLS] {
        characters.push(*class.choose(&mut random).expect("classes are not empty"));
    }
    while characters.len() < length {
        characters.push(
            *alphabet
                .choose(&mut random)
                .expect("the alphabet is not empty"),
        );
    }
    characters.shuffle(&mut random);
    let text = String::from_utf8(std::mem::take(&mut *characters)).expect("the alphabet is ASCII");
    SecretString::from(text)
}

#[cfg(test)]
mod tests {
    use crate::sensitive::ExposeSecret;
    use std::collections::HashSet;

    use super::*;

    fn classes_present(password: &str) -> [bool; 4] {
        let has = |class: &[u8]| password.bytes().any(|b| class.contains(&b));
        [has(LOWERCASE), has(UPPERCASE), has(DIGITS), has(SYMBOLS)]
    }

    #[test]
    fn every_password_has_all_four_classes_and_only_the_alphabet() {
        for length in [16, 17, 32, 64, 256] {
            for _ in 0..500 {
                let password = generate_password(length);
                let text = password.expose_secret();
                assert_eq!(text.len(), length);
                assert!(text.is_ascii());
                assert_eq!(classes_present(text), [true; 4], "{length}");
                assert!(text.bytes().all(|b| LOWERCASE.contains(&b)
                    || UPPERCASE.contains(&b)
                    || DIGITS.contains(&b)
                    || SYMBOLS.contains(&b)));
            }
        }
    }

    #[test]
    fn lengths_are_clamped_to_the_supported_range() {
        assert_eq!(generate_password(0).expose_secret().len(), 16);
        assert_eq!(generate_password(8).expose_secret().len(), 16);
        assert_eq!(generate_password(257).expose_secret().len(), 256);
        assert_eq!(generate_password(10_000).expose_secret().len(), 256);
    }

    #[test]
    fn symbols_are_microsofts_set_without_quotes_backslash_backtick_and_space() {
        let microsoft: &[u8] = b"@#$%^&*-_!+=[]{}|\\:',.?/`~\"();<> ";
        let removed: &[u8] = b"'\"\\` ";
        let expected: HashSet<u8> = microsoft
            .iter()
            .copied()
            .filter(|b| !removed.contains(b))
            .collect();
        let actual: HashSet<u8> = SYMBOLS.iter().copied().collect();
        assert_eq!(actual, expected);
        assert_eq!(SYMBOLS.len(), expected.len(), "no duplicates in SYMBOLS");
    }

    #[test]
    fn required_characters_are_not_always_in_front() {
        // With a fixed prefix the first character would always be lowercase.
        let first_is_lowercase = (0..200)
            .filter(|_| LOWERCASE.contains(&generate_password(16).expose_secret().as_bytes()[0]))
            .count();
        assert!(first_is_lowercase < 150, "{first_is_lowercase}");
    }

    #[test]
    fn every_character_of_the_alphabet_is_drawn() {
        let alphabet: HashSet<u8> = [LOWERCASE, UPPERCASE, DIGITS, SYMBOLS]
            .concat()
            .into_iter()
            .collect();
        let mut seen = HashSet::new();
        for _ in 0..200 {
            seen.extend(generate_password(64).expose_secret().bytes());
        }
        assert_eq!(seen, alphabet);
    }

    #[test]
    fn debug_output_of_a_password_is_redacted() {
        let password = generate_password(32);
        let printed = format!("{password:?}");
        assert!(printed.contains("REDACTED") && !printed.contains(password.expose_secret()));
    }
}
