//! Injected faults as a client meets them: statuses with Graph's or AAD's bodies, silence,
//! dropped connections, and lost responses whose write did happen.

use std::time::{Duration, Instant};

use entra_emulator::{Fault, FaultPlan, Operation, sample};
use reqwest::StatusCode;
use serde_json::Value;

use crate::{GOOD_PASSWORD, Harness, graph_code};

#[tokio::test]
async fn throttling_carries_each_kind_of_retry_after() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    let faults = [
        Fault::throttle(Some("2")),
        Fault::throttle(Some("0.25")),
        Fault::throttle(None),
    ];
    harness
        .emulator
        .set_faults(FaultPlan::script(faults).only([Operation::SetPassword]));
    for expected in [Some("2"), Some("0.25"), None] {
        let response = harness
            .set_password(&token, sample::ALICE.id, GOOD_PASSWORD)
            .await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(retry_after.as_deref(), expected);
        assert!(response.headers().contains_key("request-id"));
        assert_eq!(graph_code(response).await, "TooManyRequests");
    }
    assert!(
        harness
            .emulator
            .sign_in(sample::ALICE.id, sample::ALICE_INITIAL_PASSWORD),
        "no effect"
    );
    let response = harness
        .set_password(&token, sample::ALICE.id, GOOD_PASSWORD)
        .await;
    assert_eq!(
        response.status(),
        StatusCode::NO_CONTENT,
        "the script is used up"
    );
}

#[tokio::test]
async fn the_token_endpoint_throttles_in_aad_style() {
    let harness = Harness::start().await;
    harness
        .emulator
        .set_faults(FaultPlan::script([Fault::throttle(Some("1"))]).only([Operation::Token]));
    let scope = harness.scope();
    let form = [
        ("client_id", sample::CLIENT_ID),
        ("client_secret", sample::CLIENT_SECRET),
        ("scope", scope.as_str()),
        ("grant_type", "client_credentials"),
    ];
    let response = harness.request_token(sample::TENANT_ID, &form).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].is_string() && body["error_codes"].is_array() && body["trace_id"].is_string()
    );
    harness.token().await;
}

#[tokio::test]
async fn server_errors_answer_their_status() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    let faults = [
        Fault::unavailable(Some("3")),
        Fault::unavailable(None),
        Fault::GatewayTimeout,
        Fault::BadGateway,
        Fault::Internal,
    ];
    harness.emulator.set_faults(FaultPlan::script(faults));
    let expected = [
        (503, Some("3")),
        (503, None),
        (504, None),
        (502, None),
        (500, None),
    ];
    for (status, retry_after) in expected {
        let response = harness
            .get(&token, &format!("users/{}", sample::BOB.id))
            .await;
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            retry_after
        );
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["code"].is_string());
    }
    assert_eq!(
        graph_code(harness.get(&token, "users/nobody@x.com").await).await,
        "Request_ResourceNotFound"
    );
}

#[tokio::test]
async fn an_outage_fails_tokens_and_graph_alike() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    harness.emulator.set_faults(FaultPlan::outage());
    let response = harness
        .get(&token, &format!("users/{}", sample::BOB.id))
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(graph_code(response).await, "serviceNotAvailable");
    let scope = harness.scope();
    let form = [("client_id", sample::CLIENT_ID), ("scope", scope.as_str())];
    let token_response = harness.request_token(sample::TENANT_ID, &form).await;
    assert_eq!(token_response.status(), StatusCode::SERVICE_UNAVAILABLE);
    harness.emulator.clear_faults();
    assert_eq!(
        harness
            .get(&token, &format!("users/{}", sample::BOB.id))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn timeout_holds_until_the_client_gives_up_without_applying_the_write() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    harness
        .emulator
        .set_faults(FaultPlan::script([Fault::timeout(Duration::from_secs(5))]));
    let impatient = crate::http_client()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let url = harness.url(&format!("/v1.0/users/{}", sample::ALICE.id));
    let body = serde_json::json!({"passwordProfile": {"password": GOOD_PASSWORD}});
    let error = impatient
        .patch(url)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert!(
        harness
            .emulator
            .sign_in(sample::ALICE.id, sample::ALICE_INITIAL_PASSWORD)
    );
    assert_eq!(harness.emulator.counters().unanswered, 1);
}

#[tokio::test]
async fn after_the_hold_the_connection_is_dropped() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    harness
        .emulator
        .set_faults(FaultPlan::script([Fault::timeout(Duration::from_millis(
            200,
        ))]));
    let started = Instant::now();
    let url = harness.url(&format!("/v1.0/users/{}", sample::BOB.id));
    let error = harness
        .http
        .get(url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
}

#[tokio::test]
async fn reset_drops_the_connection_without_applying_the_write() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    harness
        .emulator
        .set_faults(FaultPlan::script([Fault::Reset]));
    let url = harness.url(&format!("/v1.0/users/{}", sample::ALICE.id));
    let body = serde_json::json!({"passwordProfile": {"password": GOOD_PASSWORD}});
    let error = harness
        .http
        .patch(url)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap_err();
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    assert!(
        harness
            .emulator
            .sign_in(sample::ALICE.id, sample::ALICE_INITIAL_PASSWORD)
    );
    assert_eq!(
        harness
            .set_password(&token, sample::ALICE.id, GOOD_PASSWORD)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn a_lost_response_still_applies_the_write() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    harness
        .emulator
        .set_faults(FaultPlan::script([Fault::LostResponse]).only([Operation::SetPassword]));
    let url = harness.url(&format!("/v1.0/users/{}", sample::ALICE.id));
    let body = serde_json::json!({"passwordProfile": {"password": GOOD_PASSWORD, "forceChangePasswordNextSignIn": false}});
    let error = harness
        .http
        .patch(url)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap_err();
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    assert!(
        harness.emulator.sign_in(sample::ALICE.id, GOOD_PASSWORD),
        "the write happened"
    );
    let counters = harness.emulator.counters();
    assert_eq!(counters.fault("lostResponse"), 1);
    assert_eq!(counters.unanswered, 1);
}

#[tokio::test]
async fn faults_can_be_limited_to_operations() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    harness
        .emulator
        .set_faults(FaultPlan::outage().only([Operation::RevokeSignInSessions]));
    assert_eq!(
        harness
            .get(&token, &format!("users/{}", sample::BOB.id))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        harness
            .set_password(&token, sample::BOB.id, GOOD_PASSWORD)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        harness.revoke(&token, sample::BOB.id).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn latency_delays_every_request() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    harness.emulator.set_faults(
        FaultPlan::default().with_latency(Duration::from_millis(150), Duration::from_millis(20)),
    );
    let started = Instant::now();
    assert_eq!(
        harness
            .get(&token, &format!("users/{}", sample::BOB.id))
            .await
            .status(),
        StatusCode::OK
    );
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn a_random_plan_mixes_faults_and_successes() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    harness
        .emulator
        .set_faults(FaultPlan::random(0.5, [Fault::Internal]).only(Operation::GRAPH));
    let mut statuses = Vec::new();
    for _ in 0..60 {
        statuses.push(
            harness
                .get(&token, &format!("users/{}", sample::BOB.id))
                .await
                .status()
                .as_u16(),
        );
    }
    assert!(
        statuses.contains(&200) && statuses.contains(&500),
        "{statuses:?}"
    );
    let counters = harness.emulator.counters();
    assert_eq!(counters.fault("internal"), counters.status(500));
}
