//! Generated passwords meet Entra's password policy for cloud users: 100,000 of them checked with
//! the emulator's own policy ([`entra_emulator::check_password`]), and a sample set through the
//! running emulator, where the user then signs in with them.

use std::collections::HashSet;
use std::time::Duration;

use entra_emulator::sample::{ALICE, CLIENT_ID, CLIENT_SECRET, TENANT_DOMAIN};
use entra_emulator::{Config, Emulator, Operation, PasswordRejection, check_password};
use entra_operator::graph::{
    AppCredentials, Cloud, EndpointOverrides, Endpoints, GraphClient, GraphClientConfig,
    RetryPolicy,
};
use entra_operator::password::{PASSWORD_LENGTHS, generate_password};
use entra_operator::sensitive::ExposeSecret;

/// Characters that break shell quoting, YAML or connection strings; the generator never uses them.
const AVOIDED: &str = "'\"\\` ";

/// How many of the 100,000 may be refused as guessable (banned term or the user's name). Any
/// random password can be, which Entra answers and the operator handles by generating another
/// (`entra-graph.md`). For the sample user Alice about 0.08 are expected per run, nearly all
/// for containing `alice`; more than 3 happens once in about 600,000 runs by chance, while a
/// generator that drifts towards guessable text goes far past it.
const MAX_GUESSABLE: usize = 3;

#[test]
fn a_hundred_thousand_passwords_meet_the_policy_and_never_repeat() {
    let config = Config::sample();
    let alice = config.tenants[0]
        .user(ALICE.id)
        .expect("the sample tenant has Alice");
    let lengths: Vec<usize> = PASSWORD_LENGTHS.collect();
    let mut seen = HashSet::with_capacity(100_000);
    let mut guessable = Vec::new();
    for i in 0..100_000 {
        let length = lengths[i % lengths.len()];
        let password = generate_password(length);
        let text = password.expose_secret();
        assert_eq!(text.len(), length);
        match check_password(text, &alice.user_principal_name, Some(&alice.display_name)) {
            Ok(()) => {}
            Err(rejection @ (PasswordRejection::Banned | PasswordRejection::ContainsUserName)) => {
                guessable.push((i, rejection));
            }
            Err(rejection) => panic!("password #{i} ({length} characters) is refused: {rejection}"),
        }
        // All four classes, not just three: the generator guarantees each one. The policy has
        // allowed only printable ASCII, and each ASCII punctuation character is a Microsoft symbol.
        assert!(text.chars().any(|c| c.is_ascii_lowercase()), "#{i}");
        assert!(text.chars().any(|c| c.is_ascii_uppercase()), "#{i}");
        assert!(text.chars().any(|c| c.is_ascii_digit()), "#{i}");
        assert!(text.chars().any(|c| c.is_ascii_punctuation()), "#{i}");
        assert!(!text.chars().any(|c| AVOIDED.contains(c)), "#{i}");
        assert!(seen.insert(text.to_owned()), "password #{i} repeats");
    }
    assert!(
        guessable.len() <= MAX_GUESSABLE,
        "{} passwords refused as guessable: {guessable:?}",
        guessable.len()
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
        // One attempt only: the complexity rules must accept every password. (A guessable
        // refusal, which the operator would retry, is expected in about 1 run of 5,000.)
        if let Err(error) = client.set_password(&app, ALICE.id, &password).await {
            panic!("generated password #{i} was refused: {error}");
        }
        assert!(emulator.sign_in(ALICE.upn, password.expose_secret()));
    }
    assert_eq!(
        emulator.counters().operation(Operation::SetPassword),
        SAMPLE
    );
}
