//! The extra keys of a lease's Secret, rendered from its `spec.template`. The language is a
//! small subset of Jinja ([`syntax`]): text, and substitutions of five variables through filters
//! that grow a value by a known factor at most. With no loops, no conditions, no repetition and no
//! filter that takes an argument, the longest text a template can render is known from the
//! template alone; a template that could render more than [`KEY_OUTPUT_LIMIT`] bytes for a key, or
//! [`LEASE_OUTPUT_LIMIT`] for all its keys, is refused before any user is claimed. Rendering never
//! allocates more than a small multiple of that. Errors never carry values: they say which key,
//! what kind of error and on which line.

mod filters;
mod syntax;
mod variables;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;

use crate::api::SecretTemplate;
use crate::sensitive::{ExposeSecret, SecretString};
use syntax::{Expression, Part, Template};
use variables::Variable;

/// The most one key of a lease's Secret may render to.
pub const KEY_OUTPUT_LIMIT: usize = 16 * 1024;
/// The most all of a lease's template keys together may render to.
pub const LEASE_OUTPUT_LIMIT: usize = 64 * 1024;

/// What a template can use.
pub struct TemplateValues<'a> {
    pub username: &'a str,
    /// The password, or a Temporary Access Pass when `access_pass` (the other variable is empty).
    pub password: &'a SecretString,
    pub access_pass: bool,
    pub user_id: &'a str,
    pub tenant_id: &'a str,
    /// RFC 3339.
    pub max_expires_at: &'a str,
}

impl TemplateValues<'_> {
    fn value(&self, variable: Variable) -> &str {
        match variable {
            Variable::Username => self.username,
            Variable::Password if self.access_pass => "",
            Variable::Password => self.password.expose_secret(),
            Variable::TemporaryAccessPass if self.access_pass => self.password.expose_secret(),
            Variable::TemporaryAccessPass => "",
            Variable::UserId => self.user_id,
            Variable::TenantId => self.tenant_id,
            Variable::MaxExpiresAt => self.max_expires_at,
        }
    }
}

/// A template that cannot be rendered: which key and why, never a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the template of key {key} cannot be rendered: {problem}")]
pub struct TemplateError {
    pub key: String,
    pub problem: String,
}

/// Each key's parsed template, once the whole template is known to stay within the limits.
fn parse_within_limits(template: &SecretTemplate) -> Result<Vec<(&str, Template)>, TemplateError> {
    let mut total = 0usize;
    template
        .data
        .iter()
        .map(|(key, source)| {
            let refused = |problem: String| TemplateError {
                key: key.clone(),
                problem,
            };
            let parsed = Template::parse(source).map_err(|error| {
                refused(format!(
                    "syntax error on line {}: {}",
                    error.line, error.problem
                ))
            })?;
            let longest = parsed.longest_output();
            if longest > KEY_OUTPUT_LIMIT {
                return Err(refused(format!(
                    "it could render {longest} bytes, over the {KEY_OUTPUT_LIMIT} a key may hold"
                )));
            }
            total = total.saturating_add(longest);
            if total > LEASE_OUTPUT_LIMIT {
                return Err(refused(format!(
                    "with the keys before it, the template could render {total} bytes, over the \
                     {LEASE_OUTPUT_LIMIT} a lease's keys may hold together"
                )));
            }
            Ok((key.as_str(), parsed))
        })
        .collect()
}

/// The extra keys of `template`, rendered with `values`.
pub fn render(
    template: &SecretTemplate,
    values: &TemplateValues<'_>,
) -> Result<BTreeMap<String, ByteString>, TemplateError> {
    parse_within_limits(template)?
        .into_iter()
        .map(|(key, parsed)| {
            let mut rendered = String::new();
            for part in &parsed.0 {
                match part {
                    Part::Text(text) => rendered.push_str(text),
                    Part::Substitution(expression) => {
                        let value =
                            evaluate(expression, values).map_err(|variable| TemplateError {
                                key: key.to_owned(),
                                problem: format!(
                                    "the value of {variable:?} is longer than the {} bytes a \
                                     template may use",
                                    variable.longest()
                                ),
                            })?;
                        rendered.push_str(&value);
                    }
                }
            }
            Ok((key.to_owned(), ByteString(rendered.into_bytes())))
        })
        .collect()
}

/// The value of `expression`, or the variable whose value is longer than the bound the template
/// was judged by (only variables a template uses are held to it).
fn evaluate(expression: &Expression, values: &TemplateValues<'_>) -> Result<String, Variable> {
    Ok(match expression {
        Expression::Variable(variable) => {
            let value = values.value(*variable);
            if value.len() > variable.longest() {
                return Err(*variable);
            }
            value.to_owned()
        }
        Expression::Literal(text) => text.clone(),
        Expression::Join(parts) => parts
            .iter()
            .map(|part| evaluate(part, values))
            .collect::<Result<String, Variable>>()?,
        Expression::Filtered(inner, filter) => filter.apply(&evaluate(inner, values)?),
    })
}

/// Checks that every key of `template` parses and stays within the limits with any values: a
/// template that cannot is refused before a user is claimed or a password set.
pub fn check(template: &SecretTemplate) -> Result<(), TemplateError> {
    parse_within_limits(template).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(data: &[(&str, &str)]) -> SecretTemplate {
        SecretTemplate {
            data: data
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..SecretTemplate::default()
        }
    }

    fn rendered(data: &[(&str, &str)]) -> Result<BTreeMap<String, String>, TemplateError> {
        let password = SecretString::from("p@ss{word}");
        let values = TemplateValues {
            username: "alice@contoso.com",
            password: &password,
            access_pass: false,
            user_id: "id-alice",
            tenant_id: "tenant-1",
            max_expires_at: "2026-12-01T00:00:00Z",
        };
        render(&template(data), &values).map(|data| {
            data.into_iter()
                .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
                .collect()
        })
    }

    #[test]
    fn every_variable_renders() {
        let data = rendered(&[(
            "all",
            "{{ username }} {{ password }} {{ userId }} {{ tenantId }} {{ maxExpiresAt }}",
        )])
        .unwrap();
        assert_eq!(
            data["all"],
            "alice@contoso.com p@ss{word} id-alice tenant-1 2026-12-01T00:00:00Z"
        );
    }

    #[test]
    fn a_connection_string_and_a_netrc_render_as_written() {
        let data = rendered(&[
            (
                "connectionString",
                "Server=db;User Id={{ username }};Password={{ password }};",
            ),
            (
                ".netrc",
                "machine api.example.com login {{ username }} password {{ password }}\n",
            ),
        ])
        .unwrap();
        assert_eq!(
            data["connectionString"],
            "Server=db;User Id=alice@contoso.com;Password=p@ss{word};"
        );
        assert!(data[".netrc"].ends_with("password p@ss{word}\n"));
    }

    #[test]
    fn no_autoescaping_changes_a_password() {
        // A key ending in .html or .json must not get HTML or JSON escaping of the password.
        let data = rendered(&[
            ("page.html", "{{ password }}"),
            ("a.json", "{{ password }}"),
        ])
        .unwrap();
        assert_eq!(data["page.html"], "p@ss{word}");
        assert_eq!(data["a.json"], "p@ss{word}");
    }

    #[test]
    fn bad_templates_say_which_key_and_why_never_a_value() {
        let cases = [
            ("syntax", "{{ username ", "syntax error"),
            ("unknown", "{{ expiresAt }}", "unknown variable"),
            (
                "runtime",
                "{{ password | int }}",
                "the template of key runtime",
            ),
            (
                "loop",
                "{% for i in range(100000) %}{{ password }}{% endfor %}",
                "statements",
            ),
            (
                "include",
                "{% include 'other' %}",
                "the template of key include",
            ),
        ];
        for (key, source, expected) in cases {
            let error = rendered(&[(key, source)]).expect_err(key);
            let message = error.to_string();
            assert!(message.contains(expected), "{key}: {message}");
            assert!(!message.contains("p@ss{word}"), "{key} leaks: {message}");
            assert!(!message.contains("alice"), "{key} leaks: {message}");
            assert!(check(&template(&[(key, source)])).is_err(), "{key}");
        }
    }

    /// Templates that blew the operator's memory up under MiniJinja, or would under any
    /// language with repetition: each is refused up front, by the parser or by the output limit.
    #[test]
    fn templates_that_could_grow_without_bound_are_refused_before_rendering() {
        let chain_of_joins = format!("{{{{ password{} }}}}", " ~ password".repeat(100));
        let many_substitutions = "{{ password | tojson }}".repeat(20);
        let cases = [
            (
                "repetition",
                r#"{% for i in range(12) %}{{ "x" * 100000000 }}{% endfor %}"#,
                "statements",
            ),
            ("multiplication", r#"{{ "x" * 100000000 }}"#, "expected }}"),
            (
                "indent",
                "{{ password | indent(100000000) }}",
                "unknown filter",
            ),
            (
                "nested loops",
                "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
                "statements",
            ),
            (
                "range at its cap",
                "{{ range(100000) | join }}",
                "unknown variable",
            ),
            (
                "a literal list",
                "{{ [password, password, password] | join }}",
                "expected a variable",
            ),
            (
                "a list-building filter",
                "{{ password | list }}",
                "unknown filter",
            ),
            (
                "replace",
                "{{ password | replace('a', 'aaaaaaaa') }}",
                "unknown filter",
            ),
            ("a chain of joins", chain_of_joins.as_str(), "could render"),
            (
                "many substitutions",
                many_substitutions.as_str(),
                "could render",
            ),
        ];
        for (key, source, expected) in cases {
            let error = check(&template(&[(key, source)])).expect_err(key);
            assert!(error.to_string().contains(expected), "{key}: {error}");
            assert!(rendered(&[(key, source)]).is_err(), "{key} renders");
        }
    }

    #[test]
    fn keys_within_their_limit_are_refused_together_beyond_the_leases() {
        // Each key could render 9,230 bytes (a password through tojson twice): one is fine, eight
        // together exceed 64 KiB.
        let key = "{{ password | tojson | tojson }}";
        assert!(check(&template(&[("one", key)])).is_ok());
        let keys: Vec<(String, &str)> = (0..8).map(|i| (format!("k{i}"), key)).collect();
        let keys: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let error = check(&template(&keys)).unwrap_err();
        assert!(error.problem.contains("together"), "{error}");
    }

    #[test]
    fn a_value_longer_than_a_template_may_hold_is_refused_without_quoting_it() {
        let long = "a".repeat(300);
        let password = SecretString::from("p@ss");
        let values = TemplateValues {
            username: &long,
            password: &password,
            access_pass: false,
            user_id: "id",
            tenant_id: "t",
            max_expires_at: "2026-12-01T00:00:00Z",
        };
        let error = render(&template(&[("k", "{{ username }}")]), &values).unwrap_err();
        assert!(error.problem.contains("longer than"), "{error}");
        assert!(!error.to_string().contains(&long));
        // A template that does not use it, or no template, renders.
        assert!(render(&template(&[("k", "{{ password }}")]), &values).is_ok());
        assert!(render(&template(&[]), &values).is_ok());
    }

    #[test]
    fn basic_auth_and_json_fragments_render() {
        let data = rendered(&[
            ("auth", r#"{{ (username ~ ":" ~ password) | b64encode }}"#),
            (
                "config.json",
                r#"{"user": {{ username | tojson }}, "password": {{ password | tojson }}}"#,
            ),
            (
                "url",
                "https://{{ username | urlencode }}:{{ password | urlencode }}@db.example.com",
            ),
        ])
        .unwrap();
        assert_eq!(data["auth"], "YWxpY2VAY29udG9zby5jb206cEBzc3t3b3JkfQ==");
        assert_eq!(
            data["config.json"],
            r#"{"user": "alice@contoso.com", "password": "p@ss{word}"}"#
        );
        assert_eq!(
            data["url"],
            "https://alice%40contoso.com:p%40ss%7Bword%7D@db.example.com"
        );
    }

    #[test]
    fn a_good_template_passes_the_check() {
        assert_eq!(
            check(&template(&[("k", "{{ username }}:{{ password }}")])),
            Ok(())
        );
    }
}
