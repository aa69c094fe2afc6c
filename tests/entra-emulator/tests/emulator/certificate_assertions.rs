//! Client assertions signed with a registered certificate (PS256 + `x5t#S256`, RS256 + `x5t`).

use entra_emulator::{CredentialKind, sample};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    Harness,
    signing::{
        CLIENT_CERT, CLIENT_KEY, CLIENT_X5T, CLIENT_X5T_S256, OTHER_KEY, assertion_form, now, sign,
    },
    token::aad_error,
};

/// The sample tenant with the client certificate registered on the sample app.
async fn harness() -> Harness {
    let harness = Harness::start().await;
    assert!(harness.emulator.update_app(sample::CLIENT_ID, |app| {
        app.certificates = vec![CLIENT_CERT.to_owned()];
    }));
    harness
}

fn token_url(harness: &Harness, tenant: &str) -> String {
    harness.url(&format!("/{tenant}/oauth2/v2.0/token"))
}

/// Claims as MSAL sends them: valid for ten minutes from now, a fresh jti.
fn claims(harness: &Harness) -> Value {
    let now = now();
    json!({
        "aud": token_url(harness, sample::TENANT_ID),
        "iss": sample::CLIENT_ID,
        "sub": sample::CLIENT_ID,
        "jti": uuid::Uuid::new_v4().to_string(),
        "nbf": now,
        "iat": now,
        "exp": now + 600,
    })
}

fn ps256_header() -> Value {
    json!({"alg": "PS256", "typ": "JWT", "x5t#S256": CLIENT_X5T_S256.trim()})
}

async fn request(harness: &Harness, assertion: &str) -> reqwest::Response {
    let scope = harness.scope();
    let form = assertion_form(sample::CLIENT_ID, assertion, &scope);
    harness.request_token(sample::TENANT_ID, &form).await
}

/// The AADSTS answer to an assertion signed with the client key.
async fn refusal(harness: &Harness, header: &Value, claims: &Value) -> (StatusCode, String, u64) {
    aad_error(request(harness, &sign(CLIENT_KEY, header, claims)).await).await
}

fn invalid_client(code: u64) -> (StatusCode, String, u64) {
    (StatusCode::UNAUTHORIZED, "invalid_client".into(), code)
}

#[tokio::test]
async fn ps256_assertion_with_sha256_thumbprint_gets_a_token() {
    let harness = harness().await;
    let assertion = sign(CLIENT_KEY, &ps256_header(), &claims(&harness));
    let response = request(&harness, &assertion).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");

    let counters = harness.emulator.counters();
    assert_eq!(counters.token_requests_with(CredentialKind::Certificate), 1);
    assert_eq!(
        counters.token_requests_with(CredentialKind::ClientSecret),
        0
    );
    let log = serde_json::to_string(&harness.emulator.requests()).unwrap();
    assert!(
        !log.contains(&assertion),
        "the request log holds the assertion"
    );
    assert_eq!(
        harness.emulator.requests()[0].credential,
        Some(CredentialKind::Certificate)
    );
}

#[tokio::test]
async fn rs256_assertion_with_sha1_thumbprint_gets_a_token_by_domain_too() {
    let harness = harness().await;
    let header = json!({"alg": "RS256", "typ": "JWT", "x5t": CLIENT_X5T.trim()});
    let mut claims = claims(&harness);
    claims["aud"] = token_url(&harness, sample::TENANT_DOMAIN).into();
    let assertion = sign(CLIENT_KEY, &header, &claims);
    assert_eq!(request(&harness, &assertion).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_thumbprint_is_700027() {
    let harness = harness().await;
    let header = json!({"alg": "PS256", "x5t#S256": "bm90LWEtcmVnaXN0ZXJlZC1jZXJ0aWZpY2F0ZQ"});
    assert_eq!(
        refusal(&harness, &header, &claims(&harness)).await,
        invalid_client(700027)
    );
}

#[tokio::test]
async fn signature_by_another_key_is_700027() {
    let harness = harness().await;
    let assertion = sign(OTHER_KEY, &ps256_header(), &claims(&harness));
    assert_eq!(
        aad_error(request(&harness, &assertion).await).await,
        invalid_client(700027)
    );
}

#[tokio::test]
async fn audience_other_than_the_token_endpoint_is_700027() {
    let harness = harness().await;
    let mut claims = claims(&harness);
    claims["aud"] = "https://login.microsoftonline.com/contoso/oauth2/v2.0/token".into();
    assert_eq!(
        refusal(&harness, &ps256_header(), &claims).await,
        invalid_client(700027)
    );
}

#[tokio::test]
async fn issuer_other_than_the_client_is_700027() {
    let harness = harness().await;
    let mut claims = claims(&harness);
    claims["iss"] = "00000000-0000-4000-8000-000000000000".into();
    assert_eq!(
        refusal(&harness, &ps256_header(), &claims).await,
        invalid_client(700027)
    );
}

#[tokio::test]
async fn expired_assertion_is_700024() {
    let harness = harness().await;
    let mut claims = claims(&harness);
    claims["nbf"] = (now() - 1200).into();
    claims["exp"] = (now() - 600).into();
    assert_eq!(
        refusal(&harness, &ps256_header(), &claims).await,
        invalid_client(700024)
    );
}

#[tokio::test]
async fn assertion_not_yet_valid_is_700024() {
    let harness = harness().await;
    let mut claims = claims(&harness);
    claims["nbf"] = (now() + 900).into();
    claims["exp"] = (now() + 1500).into();
    assert_eq!(
        refusal(&harness, &ps256_header(), &claims).await,
        invalid_client(700024)
    );
}

#[tokio::test]
async fn assertion_valid_for_more_than_an_hour_is_700024() {
    let harness = harness().await;
    let mut claims = claims(&harness);
    claims["exp"] = (now() + 2 * 3600).into();
    assert_eq!(
        refusal(&harness, &ps256_header(), &claims).await,
        invalid_client(700024)
    );
}

#[tokio::test]
async fn replayed_assertion_is_700027() {
    let harness = harness().await;
    let assertion = sign(CLIENT_KEY, &ps256_header(), &claims(&harness));
    assert_eq!(request(&harness, &assertion).await.status(), StatusCode::OK);
    assert_eq!(
        aad_error(request(&harness, &assertion).await).await,
        invalid_client(700027)
    );
}

#[tokio::test]
async fn certificate_unregistered_at_runtime_no_longer_signs() {
    let harness = harness().await;
    let url = harness.url(&format!("/_emulator/apps/{}", sample::CLIENT_ID));
    let unregister = harness
        .http
        .patch(&url)
        .json(&json!({"certificates": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(unregister.status(), StatusCode::OK);
    assert_eq!(
        refusal(&harness, &ps256_header(), &claims(&harness)).await,
        invalid_client(700027)
    );

    let malformed = harness
        .http
        .patch(&url)
        .json(&json!({"certificates": ["not a certificate"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let register = harness
        .http
        .patch(&url)
        .json(&json!({"certificates": [CLIENT_CERT]}))
        .send()
        .await
        .unwrap();
    let view: Value = register.json().await.unwrap();
    assert_eq!(view["certificateCount"], 1);
    let assertion = sign(CLIENT_KEY, &ps256_header(), &claims(&harness));
    assert_eq!(request(&harness, &assertion).await.status(), StatusCode::OK);
}
