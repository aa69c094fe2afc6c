//! The client-credentials token endpoint and its errors.

use std::time::Duration;

use entra_emulator::{Config, sample};
use reqwest::StatusCode;
use serde_json::Value;

use crate::Harness;

fn form<'a>(scope: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("client_id", sample::CLIENT_ID),
        ("client_secret", secret),
        ("scope", scope),
        ("grant_type", "client_credentials"),
    ]
}

/// Status, `error`, and the AADSTS number, checking the error body has Entra's shape.
pub async fn aad_error(response: reqwest::Response) -> (StatusCode, String, u64) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    let code = body["error_codes"][0].as_u64().unwrap();
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    for field in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
        assert!(body[field].is_string(), "{field} missing in {body}");
    }
    (status, body["error"].as_str().unwrap().to_owned(), code)
}

#[tokio::test]
async fn issues_a_bearer_token_by_tenant_id_or_domain() {
    let harness = Harness::start().await;
    let scope = harness.scope();
    for tenant in [sample::TENANT_ID, sample::TENANT_DOMAIN] {
        let response = harness
            .request_token(tenant, &form(&scope, sample::CLIENT_SECRET))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3599);
        assert_eq!(body["ext_expires_in"], 3599);
        assert!(body["access_token"].as_str().unwrap().len() > 32);
        assert!(body.get("refresh_token").is_none());
    }
}

#[tokio::test]
async fn unknown_tenant_is_invalid_request_90002() {
    let harness = Harness::start().await;
    let scope = harness.scope();
    let response = harness
        .request_token(
            "fabrikam.onmicrosoft.com",
            &form(&scope, sample::CLIENT_SECRET),
        )
        .await;
    assert_eq!(
        aad_error(response).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into(), 90002)
    );
}

#[tokio::test]
async fn unknown_client_is_unauthorized_client_700016() {
    let harness = Harness::start().await;
    let scope = harness.scope();
    let mut fields = form(&scope, sample::CLIENT_SECRET);
    fields[0].1 = "00000000-0000-4000-8000-000000000000";
    let response = harness.request_token(sample::TENANT_ID, &fields).await;
    assert_eq!(
        aad_error(response).await,
        (
            StatusCode::BAD_REQUEST,
            "unauthorized_client".into(),
            700016
        )
    );
}

#[tokio::test]
async fn wrong_secret_is_invalid_client_7000215_with_401() {
    let harness = Harness::start().await;
    let scope = harness.scope();
    // The secret's id pasted instead of its value: the classic mistake.
    let response = harness
        .request_token(sample::TENANT_ID, &form(&scope, "5d2b8e9c-secret-id"))
        .await;
    assert_eq!(
        aad_error(response).await,
        (StatusCode::UNAUTHORIZED, "invalid_client".into(), 7000215)
    );
}

#[tokio::test]
async fn malformed_assertion_is_invalid_request_50027() {
    let harness = Harness::start().await;
    let scope = harness.scope();
    let fields = [
        ("client_id", sample::CLIENT_ID),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", "eyJhbGciOi.eyJzdWIi.c2ln"),
        ("scope", scope.as_str()),
        ("grant_type", "client_credentials"),
    ];
    assert_eq!(
        aad_error(harness.request_token(sample::TENANT_ID, &fields).await).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into(), 50027)
    );
}

#[tokio::test]
async fn other_grant_types_are_unsupported() {
    let harness = Harness::start().await;
    let scope = harness.scope();
    let mut fields = form(&scope, sample::CLIENT_SECRET);
    fields[3].1 = "password";
    let (status, error, _) =
        aad_error(harness.request_token(sample::TENANT_ID, &fields).await).await;
    assert_eq!(
        (status, error.as_str()),
        (StatusCode::BAD_REQUEST, "unsupported_grant_type")
    );
}

#[tokio::test]
async fn scope_must_be_this_graph_root() {
    let harness = Harness::start().await;
    // Another cloud's Graph root: tokens of one cloud do not work in another.
    for scope in [
        "https://graph.microsoft.com/.default",
        harness.emulator.base_url().as_str(),
    ] {
        let response = harness
            .request_token(sample::TENANT_ID, &form(scope, sample::CLIENT_SECRET))
            .await;
        let (status, error, _) = aad_error(response).await;
        assert_eq!(
            (status, error.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_scope")
        );
    }
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let mut config = Config::sample();
    config.token_lifetime_seconds = 1;
    let harness = Harness::start_with(config).await;
    let token = harness.token().await;
    assert_eq!(
        harness
            .get(&token, &format!("users/{}", sample::BOB.id))
            .await
            .status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = harness
        .get(&token, &format!("users/{}", sample::BOB.id))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        crate::graph_code(response).await,
        "InvalidAuthenticationToken"
    );
}

#[tokio::test]
async fn secret_rotation_takes_effect_for_new_tokens() {
    let harness = Harness::start().await;
    let scope = harness.scope();
    harness.emulator.update_app(sample::CLIENT_ID, |app| {
        app.secrets = vec!["rotated~secret".into()]
    });
    let old = harness
        .request_token(sample::TENANT_ID, &form(&scope, sample::CLIENT_SECRET))
        .await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = harness
        .request_token(sample::TENANT_ID, &form(&scope, "rotated~secret"))
        .await;
    assert_eq!(new.status(), StatusCode::OK);
}
