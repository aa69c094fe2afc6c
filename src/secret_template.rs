//! The extra keys of a lease's Secret, rendered from its `spec.template` with MiniJinja: no
//! loader (so no file), no environment, no network, strict about unknown variables, and with a
//! fuel limit so that no template can keep the operator busy. Errors never carry rendered values:
//! they say which key, what kind of error and on which line.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use minijinja::{Environment, ErrorKind, UndefinedBehavior, context};

use crate::api::SecretTemplate;
use crate::sensitive::{ExposeSecret, SecretString};

/// Instructions one key's template may spend: far more than any connection string or config
/// fragment needs, far less than a loop that would stall a reconcile.
const FUEL: u64 = 50_000;

/// What a template can use.
pub struct TemplateValues<'a> {
    pub username: &'a str,
    pub password: &'a SecretString,
    pub user_id: &'a str,
    pub tenant_id: &'a str,
    /// RFC 3339.
    pub max_expires_at: &'a str,
}

/// A template that cannot be rendered: which key and why, never a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the template of key {key} cannot be rendered: {problem}")]
pub struct TemplateError {
    pub key: String,
    pub problem: String,
}

/// The extra keys of `template`, rendered with `values`.
pub fn render(
    template: &SecretTemplate,
    values: &TemplateValues<'_>,
) -> Result<BTreeMap<String, ByteString>, TemplateError> {
    let mut environment = Environment::new();
    environment.set_undefined_behavior(UndefinedBehavior::Strict);
    environment.set_fuel(Some(FUEL));
    // A file's content (a .netrc, a config fragment) keeps its last newline.
    environment.set_keep_trailing_newline(true);
    let context = context! {
        username => values.username,
        password => values.password.expose_secret(),
        userId => values.user_id,
        tenantId => values.tenant_id,
        maxExpiresAt => values.max_expires_at,
    };
    template
        .data
        .iter()
        .map(|(key, source)| {
            let rendered =
                environment
                    .render_str(source, &context)
                    .map_err(|error| TemplateError {
                        key: key.clone(),
                        problem: describe(&error),
                    })?;
            Ok((key.clone(), ByteString(rendered.into_bytes())))
        })
        .collect()
}

/// Checks that every key of `template` renders, with stand-in values: a template that cannot
/// is refused before a user is claimed or a password set.
pub fn check(template: &SecretTemplate) -> Result<(), TemplateError> {
    let password = SecretString::from("stand-in-password");
    let values = TemplateValues {
        username: "user@example.com",
        password: &password,
        user_id: "00000000-0000-0000-0000-000000000000",
        tenant_id: "00000000-0000-0000-0000-000000000000",
        max_expires_at: "2000-01-01T00:00:00Z",
    };
    render(template, &values).map(drop)
}

/// The kind of error and where: a syntax error's detail describes the template's text only; a
/// runtime error's detail may quote what a variable held, so it is left out.
fn describe(error: &minijinja::Error) -> String {
    let line = error
        .line()
        .map_or_else(String::new, |line| format!(" on line {line}"));
    match (error.kind(), error.detail()) {
        (ErrorKind::SyntaxError, Some(detail)) => format!("syntax error{line}: {detail}"),
        (ErrorKind::UndefinedError, _) => format!(
            "an unknown variable{line} (known: username, password, userId, tenantId, \
             maxExpiresAt)"
        ),
        (ErrorKind::OutOfFuel, _) => "it takes too long to render".to_owned(),
        (kind, _) => format!("{kind}{line}"),
    }
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
                "too long",
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

    #[test]
    fn a_good_template_passes_the_check() {
        assert_eq!(
            check(&template(&[("k", "{{ username }}:{{ password }}")])),
            Ok(())
        );
    }
}
