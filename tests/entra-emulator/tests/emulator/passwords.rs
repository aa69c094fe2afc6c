//! Password rules as a reset through Graph meets them: each rule is a 400 `Request_BadRequest`
//! that leaves the old password working.

use entra_emulator::sample;
use reqwest::StatusCode;

use crate::{Harness, graph_code};

async fn assert_refused(harness: &Harness, token: &str, password: &str) {
    let response = harness
        .set_password(token, sample::ALICE.id, password)
        .await;
    assert_eq!(
        response.status(),
        StatusCode::BAD_REQUEST,
        "{password:?} was accepted"
    );
    assert_eq!(graph_code(response).await, "Request_BadRequest");
    assert!(
        harness
            .emulator
            .sign_in(sample::ALICE.id, sample::ALICE_INITIAL_PASSWORD)
    );
}

#[tokio::test]
async fn each_password_rule_is_enforced() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    let too_long = format!("aB3#{}", "x".repeat(253));
    for password in [
        "aB3#xyz",          // 7 characters
        too_long.as_str(),  // 257 characters
        "kT7#vQ2m\u{e9}xx", // not ASCII
        "kT7#\tvQ2mxx",     // a control character
        "abcdefgh12",       // two classes
        "ABCDEFGH#$",       // two classes
        "xP@ssw0rd!9",      // banned, after normalisation
        "Welcome-Home9",    // banned
        "Qx#123456zz",      // banned, as typed
        "ALICE-#9yyzz",     // the UPN's local part
    ] {
        assert_refused(&harness, &token, password).await;
    }
}

#[tokio::test]
async fn the_display_name_is_refused_too() {
    let harness = Harness::start().await;
    harness.emulator.update_user(sample::ALICE.id, |alice| {
        alice.display_name = "Alice Wonderland".into()
    });
    let token = harness.token().await;
    assert_refused(&harness, &token, "wonderland-#9Q").await;
}

#[tokio::test]
async fn boundary_passwords_are_accepted() {
    let harness = Harness::start().await;
    let token = harness.token().await;
    let longest = format!("aB3#{}", "x".repeat(252));
    for password in ["aB3#xyzw", longest.as_str(), "three classes only 9"] {
        let response = harness
            .set_password(&token, sample::ALICE.id, password)
            .await;
        assert_eq!(
            response.status(),
            StatusCode::NO_CONTENT,
            "{password:?} was refused"
        );
        assert!(harness.emulator.sign_in(sample::ALICE.id, password));
    }
}
