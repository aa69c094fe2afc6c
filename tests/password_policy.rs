//! Generated passwords meet Entra's password policy for cloud users: checked for 100,000 of them
//! against the rules of `entra-graph.md`, and for a sample by setting them through the emulator.

use std::collections::HashSet;
use std::time::Duration;

use entra_emulator::sample::{ALICE, CLIENT_ID, CLIENT_SECRET, TENANT_DOMAIN};
use entra_emulator::{Config, Emulator, Operation};
use entra_operator::graph::{
    AppCredentials, Cloud, EndpointOverrides, Endpoints, GraphClient, GraphClientConfig,
    RetryPolicy,
};
use entra_operator::password::{PASSWORD_LENGTHS, generate_password};

/// Symbols Microsoft allows in a cloud user's password (space included).
const ALLOWED_SYMBOLS: &str = "@#$%^&*-_!+=[]{}|\\:',.?/`~\"();<> ";

/// Entra's rules: 8 to 256 characters, ASCII letters, digits and allowed symbols only, and at
/// least three of the four classes.
fn meets_entra_policy(password: &str) -> Result<(), String> {
    if !(8..=256).contains(&password.len()) {
        return Err(format!("length {}", password.len()));
    }
    if let Some(c) = password
        .chars()
        .find(|c| !c.is_ascii_alphanumeric() && !ALLOWED_SYMBOLS.contains(*c))
    {
        return Err(format!("character {c:?} is not allowed"));
    }
    let classes = [
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| ALLOWED_SYMBOLS.contains(c)),
    ];
    if classes.iter().filter(|present| **present).count() < 3 {
        return Err("fewer than three character classes".into());
    }
    Ok(())
}

/// Characters that break shell quoting, YAML or connection strings; the generator never uses them.
const AVOIDED: &str = "'\"\\` ";

#[test]
fn a_hundred_thousand_passwords_meet_the_policy_and_never_repeat() {
    let lengths: Vec<usize> = PASSWORD_LENGTHS.collect();
    let mut seen = HashSet::with_capacity(100_000);
    for i in 0..100_000 {
        let length = lengths[i % lengths.len()];
        let password = generate_password(length);
        let text = password.expose();
        assert_eq!(text.len(), length);
        if let Err(problem) = meets_entra_policy(text) {
            panic!("password #{i} breaks the policy: {problem}");
        }
        // All four classes, not just three: the generator guarantees each one.
        assert!(text.chars().any(|c| c.is_ascii_lowercase()));
        assert!(text.chars().any(|c| c.is_ascii_uppercase()));
        assert!(text.chars().any(|c| c.is_ascii_digit()));
        assert!(text.chars().any(|c| ALLOWED_SYMBOLS.contains(c)));
        assert!(!text.chars().any(|c| AVOIDED.contains(c)), "#{i}");
        assert!(seen.insert(text.to_owned()), "password #{i} repeats");
    }
}

#[test]
fn the_checker_refuses_what_entra_refuses() {
    assert!(meets_entra_policy("aB3#xyzw").is_ok());
    assert!(meets_entra_policy("aB3#xyz").is_err(), "too short");
    assert!(
        meets_entra_policy(&format!("aB3#{}", "x".repeat(253))).is_err(),
        "too long"
    );
    assert!(meets_entra_policy("abcdefgh12").is_err(), "two classes");
    assert!(meets_entra_policy("kT7#vQ2mé").is_err(), "not ASCII");
    assert!(
        meets_entra_policy("kT7#\tvQ2m").is_err(),
        "control character"
    );
}

#[tokio::test]
async fn the_emulator_accepts_generated_passwords_and_they_sign_in() {
    let emulator = Emulator::start(Config::sample()).await.unwrap();
    let base = emulator.base_url();
    let overrides = EndpointOverrides::parse(Some(&base), Some(&base)).unwrap();
    let app = AppCredentials::with_client_secret(
        Endpoints::resolve(Cloud::AzurePublic, &overrides),
        TENANT_DOMAIN,
        CLIENT_ID,
        CLIENT_SECRET.into(),
    );
    let client = GraphClient::new(GraphClientConfig {
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            max_elapsed: Duration::from_secs(1),
            max_attempts: 3,
        },
        ..GraphClientConfig::default()
    })
    .unwrap();
    const SAMPLE: u64 = 300;
    for i in 0..SAMPLE as usize {
        let password = generate_password(16 + i % 241);
        // One attempt only: the emulator's complexity check must accept every password.
        if let Err(error) = client.set_password(&app, ALICE.id, &password).await {
            panic!("generated password #{i} was refused: {error}");
        }
        assert!(emulator.sign_in(ALICE.upn, password.expose()));
    }
    assert_eq!(
        emulator.counters().operation(Operation::SetPassword),
        SAMPLE
    );
}
