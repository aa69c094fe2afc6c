//! Graph's user endpoints: reading, addressing, permissions, resets and revocation.

use entra_emulator::{Fault, FaultPlan, sample};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{GOOD_PASSWORD, Harness, graph_code};

const SELECT: &str =
    "$select=id,userPrincipalName,displayName,accountEnabled,userType,onPremisesSyncEnabled";

#[tokio::test]
async fn select_returns_exactly_the_selected_properties() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    let response = harness
        .get(
            &token,
            &format!("users/{}?{SELECT}", sample::ERIN_SYNCED.upn),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "@odata.context",
            "accountEnabled",
            "displayName",
            "id",
            "onPremisesSyncEnabled",
            "userPrincipalName",
            "userType"
        ]
    );
    assert_eq!(body["id"], sample::ERIN_SYNCED.id);
    assert_eq!(body["onPremisesSyncEnabled"], true);
    assert_eq!(body["userType"], "Member");
    assert_eq!(body["accountEnabled"], true);
}

#[tokio::test]
async fn default_properties_leave_out_account_state() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    let body: Value = harness
        .get(&token, &format!("users/{}", sample::BOB.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["userPrincipalName"], sample::BOB.upn);
    assert!(
        body.get("accountEnabled").is_none(),
        "Graph's default set has no accountEnabled"
    );
    let cloud_only: Value = harness
        .get(
            &token,
            &format!("users/{}?$select=onPremisesSyncEnabled", sample::BOB.id),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(cloud_only["onPremisesSyncEnabled"], Value::Null);
}

#[tokio::test]
async fn unknown_select_property_is_a_bad_request() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    let response = harness
        .get(
            &token,
            &format!("users/{}?$select=id,shoeSize", sample::BOB.id),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn upns_match_without_case_and_guests_need_percent_encoded_hash() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    let bob = harness
        .get(&token, "users/BOB@Contoso.onmicrosoft.com?$select=id")
        .await;
    assert_eq!(bob.json::<Value>().await.unwrap()["id"], sample::BOB.id);

    let guest = "dave_fabrikam.com%23EXT%23@contoso.onmicrosoft.com";
    let dave: Value = harness
        .get(&token, &format!("users/{guest}?$select=id,userType"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dave["id"], sample::DAVE_GUEST.id);
    assert_eq!(dave["userType"], "Guest");
}

#[tokio::test]
async fn dollar_upns_are_addressed_in_parentheses() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    let response = harness
        .get(&token, "users('$frank@contoso.onmicrosoft.com')?$select=id")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap()["id"],
        sample::FRANK.id
    );
    let encoded = harness
        .get(&token, "users(%27%24frank%40contoso.onmicrosoft.com%27)")
        .await;
    assert_eq!(encoded.status(), StatusCode::OK);
    let plain = harness
        .get(&token, "users/$frank@contoso.onmicrosoft.com")
        .await;
    assert_eq!(plain.status(), StatusCode::BAD_REQUEST);
    let url = harness.url("/v1.0/users('$frank@contoso.onmicrosoft.com')");
    let body = json!({"passwordProfile": {"password": GOOD_PASSWORD, "forceChangePasswordNextSignIn": false}});
    let reset = harness
        .http
        .patch(url)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert!(harness.emulator.sign_in(sample::FRANK.upn, GOOD_PASSWORD));
}

#[tokio::test]
async fn unknown_user_is_404_with_graph_error_body_and_ids() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    let url = harness.url("/v1.0/users/nobody@contoso.onmicrosoft.com");
    let response = harness
        .http
        .get(url)
        .bearer_auth(&token)
        .header("client-request-id", "6f1c3c1e-0000-4000-8000-00000000abcd")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let request_id = response.headers()["request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        response.headers()["client-request-id"],
        "6f1c3c1e-0000-4000-8000-00000000abcd"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Request_ResourceNotFound");
    assert_eq!(
        body["error"]["innerError"]["request-id"],
        request_id.as_str()
    );
    assert_eq!(
        body["error"]["innerError"]["client-request-id"],
        "6f1c3c1e-0000-4000-8000-00000000abcd"
    );
    assert!(body["error"]["innerError"]["date"].is_string());

    for response in [
        harness
            .set_password(&token, "nobody@contoso.onmicrosoft.com", GOOD_PASSWORD)
            .await,
        harness
            .revoke(&token, "00000000-0000-4000-8000-000000000000")
            .await,
    ] {
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn graph_answers_ids_even_without_a_client_request_id() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    let response = harness
        .get(&token, &format!("users/{}", sample::BOB.id))
        .await;
    assert!(response.headers().contains_key("request-id"));
    assert!(response.headers().contains_key("client-request-id"));
}

#[tokio::test]
async fn missing_or_unknown_tokens_are_401() {
    let harness = Harness::start().await;
    let url = harness.url(&format!("/v1.0/users/{}", sample::BOB.id));
    let anonymous = harness.http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(graph_code(anonymous).await, "InvalidAuthenticationToken");
    let forged = harness
        .get("emu.forged", &format!("users/{}", sample::BOB.id))
        .await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn reading_needs_a_read_permission_or_role() {
    let harness = Harness::start().await;
    harness.emulator.update_app(sample::CLIENT_ID, |app| {
        app.permissions = vec!["Mail.Send".into()];
        app.directory_roles.clear();
    });
    let token = harness.token().await;
    let response = harness
        .get(&token, &format!("users/{}", sample::BOB.id))
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
    assert_eq!(
        body["error"]["message"],
        "Insufficient privileges to complete the operation."
    );
}

#[tokio::test]
async fn password_reset_changes_the_working_password() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    assert!(
        harness
            .emulator
            .sign_in(sample::ALICE.upn, sample::ALICE_INITIAL_PASSWORD)
    );
    let response = harness
        .set_password(&token, sample::ALICE.id, GOOD_PASSWORD)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.headers()["x-ms-resource-unit"], "1");
    assert!(response.bytes().await.unwrap().is_empty());
    assert!(harness.emulator.sign_in(sample::ALICE.upn, GOOD_PASSWORD));
    assert!(
        !harness
            .emulator
            .sign_in(sample::ALICE.upn, sample::ALICE_INITIAL_PASSWORD)
    );
    let alice = harness.emulator.user(sample::ALICE.id).unwrap();
    assert_eq!(alice.password_set_count, 1);
    assert_eq!(alice.force_change_password_next_sign_in, Some(false));
    assert_eq!(
        alice.force_change_password_next_sign_in_with_mfa,
        Some(false)
    );
    assert!(!alice.must_change_password);
}

#[tokio::test]
async fn a_reset_without_flags_forces_a_change() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    let body = json!({"passwordProfile": {"password": GOOD_PASSWORD}});
    assert_eq!(
        harness
            .patch_user(&token, sample::BOB.id, body)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let bob = harness.emulator.user(sample::BOB.id).unwrap();
    assert_eq!(bob.force_change_password_next_sign_in, None);
    assert!(bob.must_change_password);
}

#[tokio::test]
async fn a_body_without_password_answers_204_and_changes_nothing() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    let before = harness.emulator.user(sample::ALICE.id).unwrap();
    for body in [
        json!({"passwordProfile": {"forceChangePasswordNextSignIn": true}}),
        json!({}),
        json!({"passwordProfile": {}}),
    ] {
        assert_eq!(
            harness
                .patch_user(&token, sample::ALICE.id, body)
                .await
                .status(),
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(harness.emulator.user(sample::ALICE.id).unwrap(), before);
    assert!(
        harness
            .emulator
            .sign_in(sample::ALICE.id, sample::ALICE_INITIAL_PASSWORD)
    );
}

#[tokio::test]
async fn user_readwrite_all_alone_cannot_reset_passwords() {
    let harness = Harness::start().await;
    harness.emulator.update_app(sample::CLIENT_ID, |app| {
        app.permissions = vec!["User.ReadWrite.All".into()]
    });
    let token = harness.token().await;
    let response = harness
        .set_password(&token, sample::BOB.id, GOOD_PASSWORD)
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(graph_code(response).await, "Authorization_RequestDenied");
}

#[tokio::test]
async fn password_reset_needs_the_user_administrator_role() {
    let harness = Harness::start().await;
    harness
        .emulator
        .update_app(sample::CLIENT_ID, |app| app.directory_roles.clear());
    let token = harness.token().await;
    assert_eq!(
        harness
            .set_password(&token, sample::BOB.id, GOOD_PASSWORD)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        harness.revoke(&token, sample::BOB.id).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn admins_are_protected_from_a_user_administrator() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    assert_eq!(
        harness
            .set_password(&token, sample::GRACE_ADMIN.id, GOOD_PASSWORD)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        harness
            .revoke(&token, sample::GRACE_ADMIN.id)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let disable = harness
        .patch_user(
            &token,
            sample::GRACE_ADMIN.id,
            json!({"accountEnabled": false}),
        )
        .await;
    assert_eq!(disable.status(), StatusCode::FORBIDDEN);

    // A user who becomes an admin after being pooled is protected from then on.
    harness.emulator.update_user(sample::CAROL.id, |carol| {
        carol.directory_roles = vec!["Privileged Role Administrator".into()]
    });
    assert_eq!(
        harness
            .set_password(&token, sample::CAROL.id, GOOD_PASSWORD)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    harness.emulator.update_user(sample::CAROL.id, |carol| {
        carol.directory_roles.clear();
        carol.role_assignable_group_member = true;
    });
    assert_eq!(
        harness
            .set_password(&token, sample::CAROL.id, GOOD_PASSWORD)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn permissions_are_snapshotted_in_the_token() {
    let harness = Harness::start().await;
    let before = harness.token().await;
    harness.emulator.update_app(sample::CLIENT_ID, |app| {
        app.directory_roles = vec!["Global Administrator".into()]
    });
    let after = harness.token().await;
    let old = harness
        .set_password(&before, sample::GRACE_ADMIN.id, GOOD_PASSWORD)
        .await;
    assert_eq!(
        old.status(),
        StatusCode::FORBIDDEN,
        "the old token still says User Administrator"
    );
    let new = harness
        .set_password(&after, sample::GRACE_ADMIN.id, GOOD_PASSWORD)
        .await;
    assert_eq!(new.status(), StatusCode::NO_CONTENT);

    harness
        .emulator
        .update_app(sample::CLIENT_ID, |app| app.permissions.clear());
    let reset = harness
        .set_password(&after, sample::BOB.id, GOOD_PASSWORD)
        .await;
    assert_eq!(
        reset.status(),
        StatusCode::NO_CONTENT,
        "revoking consent shows only in new tokens"
    );
}

#[tokio::test]
async fn guests_and_synced_users_cannot_get_a_password() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    for user in [sample::DAVE_GUEST.id, sample::ERIN_SYNCED.id] {
        let response = harness.set_password(&token, user, GOOD_PASSWORD).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(graph_code(response).await, "Request_BadRequest");
        assert_eq!(harness.emulator.user(user).unwrap().password_set_count, 0);
    }
}

#[tokio::test]
async fn account_enabled_is_set_with_its_own_permission() {
    let harness = Harness::start().await;
    harness.emulator.update_app(sample::CLIENT_ID, |app| {
        app.permissions = vec!["User.EnableDisableAccount.All".into()]
    });
    let token = harness.token().await;
    let response = harness
        .patch_user(&token, sample::BOB.id, json!({"accountEnabled": false}))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(
        !harness
            .emulator
            .user(sample::BOB.id)
            .unwrap()
            .account_enabled
    );

    harness.emulator.update_app(sample::CLIENT_ID, |app| {
        app.permissions = vec!["User.Read.All".into()]
    });
    let reader = harness.token().await;
    let refused = harness
        .patch_user(&reader, sample::BOB.id, json!({"accountEnabled": true}))
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_disabled_account_cannot_sign_in() {
    let harness = Harness::start().await;
    harness
        .emulator
        .update_user(sample::ALICE.id, |alice| alice.account_enabled = false);
    assert!(
        !harness
            .emulator
            .sign_in(sample::ALICE.id, sample::ALICE_INITIAL_PASSWORD)
    );
}

#[tokio::test]
async fn revoke_sign_in_sessions_moves_the_valid_from_time() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    let before = harness
        .emulator
        .user(sample::BOB.id)
        .unwrap()
        .sign_in_sessions_valid_from_date_time
        .unwrap();
    let response = harness.revoke(&token, sample::BOB.id).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["value"], true);
    assert!(body["@odata.context"].is_string());
    let after = harness
        .emulator
        .user(sample::BOB.id)
        .unwrap()
        .sign_in_sessions_valid_from_date_time
        .unwrap();
    assert!(after > before);
}

#[tokio::test]
async fn revoking_a_guest_succeeds_and_does_nothing() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    let before = harness.emulator.user(sample::DAVE_GUEST.id).unwrap();
    assert_eq!(
        harness.revoke(&token, sample::DAVE_GUEST.id).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        harness.emulator.user(sample::DAVE_GUEST.id).unwrap(),
        before
    );
}

#[tokio::test]
async fn accepted202_fault_is_a_success_with_the_body() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    harness
        .emulator
        .set_faults(FaultPlan::script([Fault::Accepted202, Fault::Accepted202]));
    let response = harness
        .get(&token, &format!("users/{}?$select=id", sample::BOB.id))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        response.json::<Value>().await.unwrap()["id"],
        sample::BOB.id
    );
    assert_eq!(
        harness.revoke(&token, sample::BOB.id).await.status(),
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn a_deleted_user_is_404() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    assert!(harness.emulator.delete_user(sample::CAROL.upn));
    assert_eq!(
        harness
            .set_password(&token, sample::CAROL.id, GOOD_PASSWORD)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert!(harness.emulator.user(sample::CAROL.id).is_none());
}
