//! The filters a substitution may use: each maps a string to a string at most a known factor
//! longer, so a template's longest output is known before it renders. Filters that take
//! arguments or build lists (`replace`, `indent`, `join`, `batch`, ...) are not among them.

use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    Upper,
    Lower,
    Trim,
    UrlEncode,
    B64Encode,
    ToJson,
}

/// What `urlencode` leaves as it is: the unreserved characters of RFC 3986.
const ENCODED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

impl Filter {
    pub const NAMES: [&'static str; 6] =
        ["upper", "lower", "trim", "urlencode", "b64encode", "tojson"];

    pub fn named(name: &str) -> Option<Filter> {
        Some(match name {
            "upper" => Filter::Upper,
            "lower" => Filter::Lower,
            "trim" => Filter::Trim,
            "urlencode" => Filter::UrlEncode,
            "b64encode" => Filter::B64Encode,
            "tojson" => Filter::ToJson,
            _ => return None,
        })
    }

    pub fn apply(self, value: &str) -> String {
        match self {
            Filter::Upper => value.to_uppercase(),
            Filter::Lower => value.to_lowercase(),
            Filter::Trim => value.trim().to_owned(),
            Filter::UrlEncode => percent_encoding::utf8_percent_encode(value, ENCODED).to_string(),
            Filter::B64Encode => base64::engine::general_purpose::STANDARD.encode(value),
            // A JSON string cannot fail to serialize.
            Filter::ToJson => serde_json::to_string(value).unwrap_or_default(),
        }
    }

    /// The longest output for an input of at most `input` bytes.
    pub fn longest(self, input: usize) -> usize {
        match self {
            // One UTF-8 character changes case into at most three, of at most three times its
            // bytes (for example U+0390 into three two-byte characters).
            Filter::Upper | Filter::Lower => input.saturating_mul(3),
            Filter::Trim => input,
            // Each byte becomes at most %XX.
            Filter::UrlEncode => input.saturating_mul(3),
            // Four characters for every three bytes, padded.
            Filter::B64Encode => input.div_ceil(3).saturating_mul(4),
            // A control character becomes \uXXXX, plus the two quotes.
            Filter::ToJson => input.saturating_mul(6).saturating_add(2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_filter_stays_within_its_bound_on_the_worst_input() {
        let worst = [
            "\u{0390}".repeat(40),
            "\u{1F600}".repeat(20),
            "\u{0001}\"\\".repeat(30),
            "%/?#&=+ ".repeat(10),
            "ß".repeat(50),
            "\u{FB03}".repeat(30),
        ];
        for filter in Filter::NAMES.map(|name| Filter::named(name).unwrap()) {
            for input in &worst {
                let output = filter.apply(input);
                assert!(
                    output.len() <= filter.longest(input.len()),
                    "{filter:?}: {} bytes from {} exceed {}",
                    output.len(),
                    input.len(),
                    filter.longest(input.len())
                );
            }
        }
    }

    #[test]
    fn filters_render_as_their_jinja_namesakes() {
        assert_eq!(Filter::UrlEncode.apply("p@ss w/rd~"), "p%40ss%20w%2Frd~");
        assert_eq!(Filter::B64Encode.apply("alice:p@ss"), "YWxpY2U6cEBzcw==");
        assert_eq!(Filter::ToJson.apply("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(Filter::Upper.apply("alice"), "ALICE");
        assert_eq!(Filter::Trim.apply("  x \n"), "x");
    }
}
