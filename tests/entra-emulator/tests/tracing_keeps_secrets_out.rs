//! The emulator's own tracing output, at its most verbose, never contains a password, a client
//! secret or an access token. A separate test binary, because it installs the global subscriber.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use entra_emulator::{Config, Emulator, sample};
use serde_json::{Value, json};
use tracing_subscriber::{EnvFilter, fmt::MakeWriter};

#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CapturedLog {
    type Writer = CapturedLog;

    fn make_writer(&'a self) -> CapturedLog {
        self.clone()
    }
}

#[tokio::test]
async fn tracing_output_has_no_secrets() {
    let log = CapturedLog::default();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(
            "entra_emulator=trace,tracing_keeps_secrets_out=trace",
        ))
        .with_writer(log.clone())
        .init();

    let emulator = Emulator::start(Config::sample()).await.unwrap();
    let base_url = emulator.base_url();
    // Workspace feature unification gives reqwest `rustls-no-provider`: install ring first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let scope = format!("{base_url}/.default");
    let token_url = format!("{base_url}/{}/oauth2/v2.0/token", sample::TENANT_ID);
    let form = [
        ("client_id", sample::CLIENT_ID),
        ("client_secret", sample::CLIENT_SECRET),
        ("scope", scope.as_str()),
        ("grant_type", "client_credentials"),
    ];
    let body: Value = http
        .post(&token_url)
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let wrong_secret = [
        ("client_secret", "wrong-secret-value~42"),
        form[0],
        form[2],
        form[3],
    ];
    http.post(&token_url)
        .form(&wrong_secret)
        .send()
        .await
        .unwrap();

    let password = "Fresh-Random-Pw#8841";
    let rejected = "P@ssw0rd-rejected-1";
    for attempt in [password, rejected] {
        let body = json!({"passwordProfile": {"password": attempt, "forceChangePasswordNextSignIn": false}});
        http.patch(format!("{base_url}/v1.0/users/{}", sample::BOB.id))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
    }
    http.post(format!("{base_url}/_emulator/signin"))
        .json(&json!({"user": sample::ALICE.id, "password": sample::ALICE_INITIAL_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(emulator.sign_in(sample::BOB.id, password));
    tracing::info!(user = ?emulator.user(sample::BOB.id), "debug output of a user view");
    emulator.update_user(sample::BOB.id, |bob| {
        tracing::info!(?bob, "debug output of a user")
    });
    emulator.update_app(sample::CLIENT_ID, |app| {
        tracing::info!(?app, "debug output of an app")
    });
    emulator.shutdown().await;

    let output = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        output.contains("emulated request"),
        "the emulator did trace: {output}"
    );
    for secret in [
        sample::CLIENT_SECRET,
        "wrong-secret-value~42",
        token.as_str(),
        password,
        rejected,
        sample::ALICE_INITIAL_PASSWORD,
    ] {
        assert!(
            !output.contains(secret),
            "tracing output leaks {secret:?}: {output}"
        );
    }
}
