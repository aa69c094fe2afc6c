//! The `/_emulator/` test endpoints, the counters and the request log.

use entra_emulator::{Counters, FaultPlan, Operation, RequestRecord, UserView, sample};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{GOOD_PASSWORD, Harness};

#[tokio::test]
async fn sign_in_checks_the_current_password_and_account() {
    let harness = Harness::start().await;
    let sign_in = |user: &'static str, password: &'static str| {
        let url = harness.url("/_emulator/signin");
        let request = harness
            .http
            .post(url)
            .json(&json!({"user": user, "password": password}));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    assert_eq!(
        sign_in(sample::ALICE.upn, sample::ALICE_INITIAL_PASSWORD).await,
        json!({"ok": true})
    );
    let wrong = sign_in(sample::ALICE.upn, "Not-Her-Passw0rd").await;
    assert_eq!(wrong["ok"], false);
    assert!(wrong["reason"].is_string());
    assert_eq!(
        sign_in(sample::BOB.id, "anything").await["ok"],
        false,
        "bob has no password"
    );
    assert_eq!(
        sign_in("nobody@contoso.onmicrosoft.com", "x").await["ok"],
        false
    );
}

#[tokio::test]
async fn counters_count_by_kind_operation_status_and_fault() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    harness
        .get(&token, &format!("users/{}", sample::BOB.id))
        .await;
    harness
        .get(&token, "users/nobody@contoso.onmicrosoft.com")
        .await;
    harness
        .set_password(&token, sample::BOB.id, GOOD_PASSWORD)
        .await;
    harness.revoke(&token, sample::BOB.id).await;
    harness
        .emulator
        .set_faults(FaultPlan::script([entra_emulator::Fault::throttle(Some(
            "1",
        ))]));
    harness
        .patch_user(&token, sample::BOB.id, json!({"accountEnabled": false}))
        .await;

    let counters: Counters = harness
        .http
        .get(harness.url("/_emulator/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters, harness.emulator.counters());
    assert_eq!(counters.token_requests, 1);
    assert_eq!(counters.graph_reads, 2);
    assert_eq!(counters.graph_writes, 3);
    assert_eq!(counters.operation(Operation::GetUser), 2);
    assert_eq!(counters.operation_status(Operation::GetUser, 404), 1);
    assert_eq!(counters.operation_status(Operation::SetPassword, 204), 1);
    assert_eq!(
        counters.operation_status(Operation::RevokeSignInSessions, 200),
        1
    );
    assert_eq!(
        counters.operation_status(Operation::SetAccountEnabled, 429),
        1
    );
    assert_eq!(counters.status(200), 3);
    assert_eq!(counters.fault("throttle"), 1);

    let reset = harness
        .http
        .post(harness.url("/_emulator/counters/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(harness.emulator.counters(), Counters::default());
}

#[tokio::test]
async fn the_request_log_has_ids_and_outcomes_but_no_secrets() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    let url = harness.url(&format!("/v1.0/users/{}", sample::ALICE.id));
    let body = json!({"passwordProfile": {"password": GOOD_PASSWORD, "forceChangePasswordNextSignIn": false}});
    harness
        .http
        .patch(url)
        .bearer_auth(&token)
        .header("client-request-id", "cr-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    harness
        .get(
            &token,
            "users/dave_fabrikam.com%23EXT%23@contoso.onmicrosoft.com?$select=id",
        )
        .await;
    harness.emulator.sign_in(sample::ALICE.id, GOOD_PASSWORD);

    let response = harness
        .http
        .get(harness.url("/_emulator/requests"))
        .send()
        .await
        .unwrap();
    let raw = response.text().await.unwrap();
    for secret in [
        GOOD_PASSWORD,
        sample::CLIENT_SECRET,
        token.as_str(),
        sample::ALICE_INITIAL_PASSWORD,
    ] {
        assert!(!raw.contains(secret), "request log leaks a secret: {raw}");
    }
    let records: Vec<RequestRecord> = serde_json::from_str(&raw).unwrap();
    assert_eq!(records, harness.emulator.requests());
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].operation, Some(Operation::Token));
    assert_eq!(records[1].operation, Some(Operation::SetPassword));
    assert_eq!(records[1].status, Some(204));
    assert_eq!(records[1].client_request_id.as_deref(), Some("cr-1"));
    assert_eq!(
        records[2].path,
        "/v1.0/users/dave_fabrikam.com%23EXT%23@contoso.onmicrosoft.com"
    );
    assert_eq!(records[2].query.as_deref(), Some("$select=id"));

    let cleared = harness
        .http
        .delete(harness.url("/_emulator/requests"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    assert!(harness.emulator.requests().is_empty());
}

#[tokio::test]
async fn users_can_be_viewed_changed_and_deleted() {
    let harness = Harness::start().await;
    let url = harness.url("/_emulator/users/dave_fabrikam.com%23EXT%23@contoso.onmicrosoft.com");
    let dave: UserView = harness
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dave.id, sample::DAVE_GUEST.id);
    assert_eq!(dave.tenant_id, sample::TENANT_ID);

    let alice_url = harness.url(&format!("/_emulator/users/{}", sample::ALICE.upn));
    let raw = harness
        .http
        .get(&alice_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !raw.contains(sample::ALICE_INITIAL_PASSWORD),
        "the view never shows the password"
    );
    let changes = json!({"userType": "Guest", "onPremisesSyncEnabled": true, "directoryRoles": ["Global Administrator"], "accountEnabled": false});
    let changed: UserView = harness
        .http
        .patch(&alice_url)
        .json(&changes)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(changed, harness.emulator.user(sample::ALICE.id).unwrap());
    assert!(changed.on_premises_sync_enabled && !changed.account_enabled);
    assert_eq!(changed.directory_roles, ["Global Administrator"]);

    assert_eq!(
        harness
            .http
            .delete(&alice_url)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        harness.http.get(&alice_url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn apps_can_be_changed_over_http() {
    let harness = Harness::start().await;
    let url = harness.url(&format!("/_emulator/apps/{}", sample::CLIENT_ID));
    let response = harness
        .http
        .patch(&url)
        .json(&json!({"permissions": ["User.Read.All"]}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["permissions"], json!(["User.Read.All"]));
    assert!(!body.to_string().contains(sample::CLIENT_SECRET));
    let token = harness.token().await;
    assert_eq!(
        harness
            .set_password(&token, sample::BOB.id, GOOD_PASSWORD)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn fault_plans_are_set_read_and_cleared_over_http() {
    let harness = Harness::start().await;
    let url = harness.url("/_emulator/faults");
    let plan = json!({"rate": 1.0, "kinds": ["unavailable"], "script": [{"kind": "throttle", "retryAfter": "2"}], "operations": ["getUser"]});
    assert_eq!(
        harness
            .http
            .put(&url)
            .json(&plan)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    let read: FaultPlan = harness
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read, harness.emulator.faults());
    assert_eq!(read.operations, [Operation::GetUser]);
    let token = harness.token().await;
    let statuses = [
        harness
            .get(&token, &format!("users/{}", sample::BOB.id))
            .await
            .status(),
        harness
            .get(&token, &format!("users/{}", sample::BOB.id))
            .await
            .status(),
    ];
    assert_eq!(
        statuses,
        [
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::SERVICE_UNAVAILABLE
        ]
    );
    assert_eq!(
        harness.http.delete(&url).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(harness.emulator.faults(), FaultPlan::default());

    let invalid = harness
        .http
        .put(&url)
        .json(&json!({"rate": 2.0, "kinds": ["reset"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
}
