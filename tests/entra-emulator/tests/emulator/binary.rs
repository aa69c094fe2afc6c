//! The `entra-emulator` binary: starts from `examples/tenant.yaml`, prints its URLs, serves,
//! keeps secrets out of its log, and stops on SIGTERM.

use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use entra_emulator::sample;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn example_tenant() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/tenant.yaml")
}

fn emulator_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_entra-emulator"));
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// The first `count` stdout lines, or a panic if they do not come within a few seconds.
fn first_lines(child: &mut Child, count: usize) -> Vec<String> {
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    (0..count)
        .map(|_| {
            receiver
                .recv_timeout(Duration::from_secs(20))
                .expect("the emulator prints its URLs")
        })
        .collect()
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    panic!("the emulator did not stop on SIGTERM");
}

#[tokio::test]
async fn binary_serves_the_example_tenant_and_prints_its_urls() {
    let mut child = emulator_command()
        .arg("--config")
        .arg(example_tenant())
        .env("RUST_LOG", "entra_emulator=trace")
        .spawn()
        .unwrap();
    let lines = first_lines(&mut child, 3);
    let base_url = lines[0]
        .strip_prefix("authority host: ")
        .expect("authority host line")
        .to_owned();
    assert!(base_url.starts_with("http://127.0.0.1:"), "{lines:?}");
    assert_eq!(lines[1], format!("graph endpoint: {base_url}"));
    assert_eq!(
        lines[2],
        format!("listening on {}", base_url.trim_start_matches("http://"))
    );

    let http = crate::http_client().build().unwrap();
    let scope = format!("{base_url}/.default");
    let form = [
        ("client_id", sample::CLIENT_ID),
        ("client_secret", sample::CLIENT_SECRET),
        ("scope", scope.as_str()),
        ("grant_type", "client_credentials"),
    ];
    let token_url = format!("{base_url}/{}/oauth2/v2.0/token", sample::TENANT_DOMAIN);
    let body: Value = http
        .post(token_url)
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let reset = http
        .patch(format!("{base_url}/v1.0/users/{}", sample::BOB.upn))
        .bearer_auth(&token)
        .json(&json!({"passwordProfile": {"password": crate::GOOD_PASSWORD, "forceChangePasswordNextSignIn": false}}))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    let signin = http
        .post(format!("{base_url}/_emulator/signin"))
        .json(&json!({"user": sample::BOB.upn, "password": crate::GOOD_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(signin.json::<Value>().await.unwrap()["ok"], true);

    assert!(terminate(&mut child).success());
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        log.contains("emulated request"),
        "trace logging was on: {log}"
    );
    for secret in [sample::CLIENT_SECRET, crate::GOOD_PASSWORD, token.as_str()] {
        assert!(
            !log.contains(secret),
            "the emulator's log leaks a secret: {log}"
        );
    }
}

#[tokio::test]
async fn binary_refuses_non_loopback_addresses() {
    let output = emulator_command()
        .arg("--config")
        .arg(example_tenant())
        .args(["--bind", "0.0.0.0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("loopback"));
}

#[tokio::test]
async fn binary_reports_a_bad_config() {
    let output = emulator_command()
        .args(["--config", "/nonexistent/tenant.yaml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/tenant.yaml"));
}
