//! Temporary Access Passes: created through Graph inside the tenant's policy, one per user,
//! listed and deleted as methods, and signing in only inside their lifetime on the emulator's
//! clock.

use std::time::Duration;

use entra_emulator::sample;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::{Harness, graph_code};

impl Harness {
    async fn create_pass(&self, token: &str, user: &str, body: Value) -> Response {
        let path = format!("/v1.0/users/{user}/authentication/temporaryAccessPassMethods");
        self.http
            .post(self.url(&path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_pass_signs_in_until_its_lifetime_ends() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    let bob = sample::BOB.id;
    let created = harness
        .create_pass(&token, bob, json!({"lifetimeInMinutes": 60}))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let pass: Value = created.json().await.unwrap();
    let code = pass["temporaryAccessPass"].as_str().unwrap();
    assert_eq!(pass["lifetimeInMinutes"], 60);
    assert_eq!(pass["isUsableOnce"], false);
    assert!(pass["startDateTime"].as_str().is_some());
    let emulator = &harness.emulator;
    assert!(emulator.sign_in_with_pass(bob, code));
    assert!(
        emulator.sign_in_with_pass(bob, code),
        "usable more than once"
    );
    assert!(!emulator.sign_in_with_pass(bob, "not-the-pass"));
    emulator.advance_clock(Duration::from_secs(59 * 60));
    assert!(emulator.sign_in_with_pass(bob, code));
    emulator.advance_clock(Duration::from_secs(60));
    assert!(
        !emulator.sign_in_with_pass(bob, code),
        "ended with its lifetime"
    );
}

#[tokio::test]
async fn a_new_pass_replaces_the_old_and_deleting_it_ends_it() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    let bob = sample::BOB.id;
    let first: Value = harness
        .create_pass(&token, bob, json!({"isUsableOnce": true}))
        .await
        .json()
        .await
        .unwrap();
    let second: Value = harness
        .create_pass(&token, bob, json!({}))
        .await
        .json()
        .await
        .unwrap();
    let emulator = &harness.emulator;
    let (first_code, second_code) = (
        first["temporaryAccessPass"].as_str().unwrap(),
        second["temporaryAccessPass"].as_str().unwrap(),
    );
    assert!(!emulator.sign_in_with_pass(bob, first_code), "replaced");
    assert!(emulator.sign_in_with_pass(bob, second_code));
    let methods: Value = harness
        .get(&token, &format!("users/{bob}/authentication/methods"))
        .await
        .json()
        .await
        .unwrap();
    let passes: Vec<&Value> = methods["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["@odata.type"] == "#microsoft.graph.temporaryAccessPassAuthenticationMethod")
        .collect();
    assert_eq!(passes.len(), 1);
    assert_eq!(passes[0]["id"], second["id"]);
    assert!(passes[0].get("temporaryAccessPass").is_none(), "shown once");
    let id = second["id"].as_str().unwrap();
    let path = format!("/v1.0/users/{bob}/authentication/temporaryAccessPassMethods/{id}");
    let deleted = harness
        .http
        .delete(harness.url(&path))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(!emulator.sign_in_with_pass(bob, second_code));
}

#[tokio::test]
async fn a_pass_usable_once_is_spent_by_its_first_sign_in() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    let bob = sample::BOB.id;
    let pass: Value = harness
        .create_pass(&token, bob, json!({"isUsableOnce": true}))
        .await
        .json()
        .await
        .unwrap();
    let code = pass["temporaryAccessPass"].as_str().unwrap();
    assert!(harness.emulator.sign_in_with_pass(bob, code));
    assert!(!harness.emulator.sign_in_with_pass(bob, code));
}

#[tokio::test]
async fn lifetimes_outside_the_policy_are_refused() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    for minutes in [5, 30, 481, 50_000] {
        let refused = harness
            .create_pass(
                &token,
                sample::BOB.id,
                json!({"lifetimeInMinutes": minutes}),
            )
            .await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{minutes}");
        assert_eq!(graph_code(refused).await, "Request_BadRequest");
    }
}

#[tokio::test]
async fn creating_a_pass_needs_the_methods_permission() {
    let harness = Harness::start().await;
    harness.emulator.update_app(sample::CLIENT_ID, |app| {
        app.permissions
            .retain(|p| p != "UserAuthenticationMethod.ReadWrite.All");
    });
    let token = harness.token().await;
    let refused = harness.create_pass(&token, sample::BOB.id, json!({})).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}
