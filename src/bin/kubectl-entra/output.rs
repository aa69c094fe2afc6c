//! How credentials leave the plugin: a summary for people, JSON, YAML or shell variables for
//! scripts. The password reaches the terminal only when asked for; a file gets it with mode 0600.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use entra_operator::sensitive::ExposeSecret;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::credentials::Held;
use crate::error::PluginError;
use crate::table::until;
use entra_operator::secret::credential_key;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Yaml,
    /// Shell variables: ENTRA_USERNAME, ENTRA_PASSWORD, ...
    Env,
}

#[derive(Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Print the password on the terminal too (any format).
    #[arg(long)]
    pub show_password: bool,
    /// Write the credential, password included, to this file (created with mode 0600) in the
    /// chosen format.
    #[arg(long)]
    pub output_file: Option<PathBuf>,
}

const HIDDEN: &str = "(hidden: add --show-password, or --output-file FILE)";

pub fn print_credentials(held: &Held, args: &OutputArgs) -> Result<(), PluginError> {
    if let Some(path) = &args.output_file {
        write_private(path, &render(held, args.format, true))?;
    }
    let mut shown = render(held, args.format, args.show_password);
    if let (Some(path), Format::Text) = (&args.output_file, args.format) {
        shown.push_str(&format!("Written to {} (mode 0600)\n", path.display()));
    }
    print!("{shown}");
    Ok(())
}

fn render(held: &Held, format: Format, with_password: bool) -> String {
    let password = with_password.then(|| held.password.expose_secret());
    match format {
        Format::Text => text(held, password),
        Format::Json => format!("{:#}\n", document(held, password)),
        Format::Yaml => {
            yaml_serde::to_string(&document(held, password)).expect("a JSON value is valid YAML")
        }
        Format::Env => env(held, password),
    }
}

fn text(held: &Held, password: Option<&str>) -> String {
    let mut lines = vec![
        ("Lease", format!("{}/{}", held.namespace, held.lease)),
        ("Username", held.username.clone()),
        (
            if held.access_pass {
                "Access pass"
            } else {
                "Password"
            },
            password.unwrap_or(HIDDEN).to_owned(),
        ),
        ("Expires", when(held.expires_at)),
        ("Renewable until", when(held.max_expires_at)),
    ];
    if held.next_rotation_at.is_some() {
        lines.push(("Next rotation", when(held.next_rotation_at)));
    }
    lines.push(("Secret", held.secret.clone()));
    lines
        .into_iter()
        .map(|(label, value)| format!("{label:<16} {value}\n"))
        .collect()
}

fn when(at: Option<Timestamp>) -> String {
    at.map_or_else(|| "-".to_owned(), |at| format!("{at} ({})", until(at)))
}

fn document(held: &Held, password: Option<&str>) -> Value {
    let mut document = json!({
        "namespace": held.namespace,
        "lease": held.lease,
        "pool": held.pool,
        "secret": held.secret,
        "username": held.username,
        "expiresAt": held.expires_at.map(|t| t.to_string()),
        "maxExpiresAt": held.max_expires_at.map(|t| t.to_string()),
    });
    if let Some(at) = held.next_rotation_at {
        document["nextRotationAt"] = json!(at.to_string());
    }
    if let Some(password) = password {
        document[credential_key(held.access_pass)] = json!(password);
    }
    document
}

fn env(held: &Held, password: Option<&str>) -> String {
    let mut variables = vec![
        ("ENTRA_LEASE", held.lease.clone()),
        ("ENTRA_SECRET", held.secret.clone()),
        ("ENTRA_USERNAME", held.username.clone()),
    ];
    if let Some(password) = password {
        let name = if held.access_pass {
            "ENTRA_TEMPORARY_ACCESS_PASS"
        } else {
            "ENTRA_PASSWORD"
        };
        variables.push((name, password.to_owned()));
    }
    if let Some(at) = held.expires_at {
        variables.push(("ENTRA_EXPIRES_AT", at.to_string()));
    }
    variables
        .into_iter()
        .map(|(name, value)| format!("{name}={}\n", shell_quote(&value)))
        .collect()
}

/// Single quotes, which the shell takes literally; a quote inside is closed, escaped, reopened.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Writes `path` readable by its owner only: a new file (mode 0600, created exclusively) in the
/// same directory, renamed over `path`. A symlink planted at `path` is replaced, not followed, and
/// nobody holding the old file open sees the password.
fn write_private(path: &Path, contents: &str) -> Result<(), PluginError> {
    let failed = |error: std::io::Error| {
        PluginError::Output(format!("cannot write {}: {error}", path.display()))
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(failed)?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(failed)?;
    file.write_all(contents.as_bytes()).map_err(failed)?;
    file.persist(path).map_err(|error| failed(error.error))?;
    Ok(())
}

/// Lists and other non-secret documents, in a script format.
pub fn print_document(value: &Value, format: Format) -> Result<(), PluginError> {
    match format {
        Format::Json => println!("{value:#}"),
        Format::Yaml => print!(
            "{}",
            yaml_serde::to_string(value).expect("a JSON value is valid YAML")
        ),
        Format::Text | Format::Env => {
            return Err(PluginError::Usage(
                "this command prints -o text, json or yaml".to_owned(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use entra_operator::sensitive::SecretString;

    fn held() -> Held {
        Held {
            namespace: "team-a".into(),
            lease: "web".into(),
            pool: "contoso".into(),
            secret: "entra-web".into(),
            username: "alice@contoso.com".into(),
            password: SecretString::from("p4ss'w0rd$"),
            access_pass: false,
            expires_at: Some("2026-11-30T10:00:00Z".parse().unwrap()),
            max_expires_at: None,
            next_rotation_at: None,
        }
    }

    #[test]
    fn the_password_is_printed_only_when_asked_for() {
        for format in [Format::Text, Format::Json, Format::Yaml, Format::Env] {
            let hidden = render(&held(), format, false);
            assert!(!hidden.contains("p4ss"), "{format:?}: {hidden}");
            assert!(hidden.contains("alice@contoso.com"), "{format:?}: {hidden}");
            let shown = render(&held(), format, true);
            assert!(shown.contains("p4ss"), "{format:?}: {shown}");
        }
        assert!(render(&held(), Format::Env, true).contains(r"ENTRA_PASSWORD='p4ss'\''w0rd$'"));
        let json: Value = serde_json::from_str(&render(&held(), Format::Json, true)).unwrap();
        assert_eq!(json["password"], "p4ss'w0rd$");
    }

    #[test]
    fn a_pass_is_printed_as_a_pass_and_only_when_asked_for() {
        let pass = Held {
            password: SecretString::from("Tap-8x2"),
            access_pass: true,
            ..held()
        };
        for format in [Format::Text, Format::Json, Format::Yaml, Format::Env] {
            assert!(
                !render(&pass, format, false).contains("Tap-8x2"),
                "{format:?}"
            );
            assert!(
                render(&pass, format, true).contains("Tap-8x2"),
                "{format:?}"
            );
        }
        assert!(render(&pass, Format::Env, true).contains("ENTRA_TEMPORARY_ACCESS_PASS='Tap-8x2'"));
        assert!(render(&pass, Format::Text, true).contains("Access pass"));
        let json: Value = serde_json::from_str(&render(&pass, Format::Json, true)).unwrap();
        assert_eq!(json["temporaryAccessPass"], "Tap-8x2");
        assert!(json.get("password").is_none());
    }

    #[test]
    fn shell_quoting_survives_quotes_and_dollars() {
        assert_eq!(shell_quote("a'b$c"), r"'a'\''b$c'");
    }
}
