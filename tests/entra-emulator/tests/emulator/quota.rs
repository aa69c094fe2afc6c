//! Entra's throttling as a client meets it: token buckets per app and tenant, per tenant and per
//! app, read resource units, the headers of a 429 and of every answer, per-app fault plans, and
//! what the request log and counters keep of it.

use std::time::{Duration, Instant};

use entra_emulator::{Bucket, Config, Fault, FaultPlan, Operation, Quota, RequestRecord, sample};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::{GOOD_PASSWORD, Harness, graph_code};

/// A second app of Contoso, with the sample app's grants and its own secret.
const OTHER_APP: &str = "0a4e0000-0000-4000-8000-0000000000a2";
/// A third app of Contoso.
const THIRD_APP: &str = "0a4e0000-0000-4000-8000-0000000000a3";
const OTHER_SECRET: &str = "other-app-secret-value~0123456789";
/// Fabrikam: the sample app (same id and secret) and one user, Zoe.
const FABRIKAM: &str = "fab00000-0000-4000-8000-0000000000fa";
const ZOE: &str = "20e00000-0000-4000-8000-00000000020e";

fn tenants() -> Config {
    let app = |client_id: &str, secret: &str| {
        json!({
            "clientId": client_id,
            "secrets": [secret],
            "permissions": ["User-PasswordProfile.ReadWrite.All", "User.ReadWrite.All"],
            "directoryRoles": ["User Administrator"],
        })
    };
    let config = json!({ "tenants": [
        {
            "id": sample::TENANT_ID,
            "domains": [sample::TENANT_DOMAIN],
            "apps": [
                app(sample::CLIENT_ID, sample::CLIENT_SECRET),
                app(OTHER_APP, OTHER_SECRET),
                app(THIRD_APP, OTHER_SECRET),
            ],
            "users": [
                {"id": sample::ALICE.id, "userPrincipalName": sample::ALICE.upn,
                 "displayName": "Alice", "password": sample::ALICE_INITIAL_PASSWORD},
                {"id": sample::BOB.id, "userPrincipalName": sample::BOB.upn, "displayName": "Bob"},
            ],
        },
        {
            "id": FABRIKAM,
            "domains": ["fabrikam.onmicrosoft.com"],
            "apps": [app(sample::CLIENT_ID, sample::CLIENT_SECRET)],
            "users": [{"id": ZOE, "userPrincipalName": "zoe@fabrikam.onmicrosoft.com"}],
        },
    ]});
    Config::from_yaml_str(&config.to_string()).expect("a valid test tenant")
}

async fn start() -> Harness {
    Harness::start_with(tenants()).await
}

/// A token for `client_id` in `tenant`.
async fn token_for(harness: &Harness, tenant: &str, client_id: &str, secret: &str) -> String {
    let scope = harness.scope();
    let form = [
        ("client_id", client_id),
        ("client_secret", secret),
        ("scope", scope.as_str()),
        ("grant_type", "client_credentials"),
    ];
    let response = harness.request_token(tenant, &form).await;
    assert_eq!(response.status(), StatusCode::OK, "token for {client_id}");
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap().to_owned())
}

fn only(quota: Quota) -> Option<Quota> {
    Some(quota)
}

#[tokio::test]
async fn app_tenant_writes_are_refused_at_the_limit_and_refill() {
    let harness = start().await;
    let token = harness.token().await;
    harness.emulator.set_quota(only(Quota {
        app_tenant_writes: Some(Bucket::new(3, Duration::from_millis(3000))),
        ..Quota::default()
    }));
    for _ in 0..3 {
        let response = harness.revoke(&token, sample::BOB.id).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let refused = harness
        .set_password(&token, sample::ALICE.id, GOOD_PASSWORD)
        .await;
    let refused_at = Instant::now();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "retry-after").as_deref(), Some("1"));
    assert_eq!(
        header(&refused, "x-ms-throttle-scope").unwrap(),
        format!(
            "Tenant_Application/Write/{}/{}",
            sample::CLIENT_ID,
            sample::TENANT_ID
        )
    );
    assert_eq!(
        header(&refused, "x-ms-throttle-information").as_deref(),
        Some("WriteLimitExceeded")
    );
    assert!(refused.headers().contains_key("request-id"));
    assert_eq!(graph_code(refused).await, "TooManyRequests");
    assert!(
        harness
            .emulator
            .sign_in(sample::ALICE.id, sample::ALICE_INITIAL_PASSWORD),
        "a refused write has no effect"
    );

    // One token is back within the Retry-After second; poll rather than sleep it all.
    let passed = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let response = harness.revoke(&token, sample::BOB.id).await;
        if response.status() == StatusCode::OK || refused_at.elapsed() > Duration::from_secs(3) {
            break response;
        }
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    };
    assert_eq!(passed.status(), StatusCode::OK);
    assert!(refused_at.elapsed() < Duration::from_millis(1500));

    let counters = harness.emulator.counters();
    let refusals = counters.quota_throttled();
    assert!(refusals >= 1);
    assert_eq!(
        counters.quota_throttled_for_app(sample::CLIENT_ID),
        refusals
    );
    assert_eq!(counters.quota_throttled_for_app(OTHER_APP), 0);
    assert_eq!(counters.fault("throttle"), 0, "not an injected fault");
    assert_eq!(counters.writes_for_app(sample::CLIENT_ID), 3 + refusals + 1);
}

#[tokio::test]
async fn retry_after_is_whole_seconds_until_a_token_is_back() {
    let harness = start().await;
    let token = harness.token().await;
    harness.emulator.set_quota(only(Quota {
        app_tenant_writes: Some(Bucket::new(1, Duration::from_secs(60))),
        ..Quota::default()
    }));
    assert_eq!(
        harness.revoke(&token, sample::BOB.id).await.status(),
        StatusCode::OK
    );
    let refused = harness.revoke(&token, sample::BOB.id).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "retry-after").as_deref(), Some("60"));
}

#[tokio::test]
async fn token_requests_are_not_counted() {
    let harness = start().await;
    harness.emulator.set_quota(only(Quota {
        app_tenant_writes: Some(Bucket::new(1, Duration::from_secs(60))),
        ..Quota::default()
    }));
    for _ in 0..3 {
        harness.token().await;
    }
    let token = harness.token().await;
    let response = harness.revoke(&token, sample::BOB.id).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_tenant_bucket_spans_every_app_of_the_tenant() {
    let harness = start().await;
    let sample_token = harness.token().await;
    let other_token = token_for(&harness, sample::TENANT_ID, OTHER_APP, OTHER_SECRET).await;
    let zoe_token = token_for(&harness, FABRIKAM, sample::CLIENT_ID, sample::CLIENT_SECRET).await;
    harness.emulator.set_quota(only(Quota {
        tenant_writes: Some(Bucket::new(2, Duration::from_secs(60))),
        ..Quota::default()
    }));
    assert_eq!(
        harness.revoke(&sample_token, sample::BOB.id).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        harness.revoke(&other_token, sample::BOB.id).await.status(),
        StatusCode::OK
    );
    let refused = harness.revoke(&other_token, sample::BOB.id).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&refused, "x-ms-throttle-scope").unwrap(),
        format!("Tenant/Write//{}", sample::TENANT_ID)
    );
    assert_eq!(header(&refused, "retry-after").as_deref(), Some("30"));
    assert_eq!(
        harness.revoke(&zoe_token, ZOE).await.status(),
        StatusCode::OK,
        "another tenant has its own bucket"
    );
    let counters = harness.emulator.counters();
    assert_eq!(counters.quota_throttled_for_app(OTHER_APP), 1);
    assert_eq!(counters.quota_throttled_for_app(sample::CLIENT_ID), 0);
}

#[tokio::test]
async fn the_app_bucket_spans_every_tenant_of_the_app() {
    let harness = start().await;
    let contoso_token = harness.token().await;
    let fabrikam_token =
        token_for(&harness, FABRIKAM, sample::CLIENT_ID, sample::CLIENT_SECRET).await;
    let other_token = token_for(&harness, sample::TENANT_ID, OTHER_APP, OTHER_SECRET).await;
    harness.emulator.set_quota(only(Quota {
        app_writes: Some(Bucket::new(2, Duration::from_secs(10))),
        ..Quota::default()
    }));
    assert_eq!(
        harness
            .revoke(&contoso_token, sample::BOB.id)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        harness.revoke(&fabrikam_token, ZOE).await.status(),
        StatusCode::OK
    );
    let refused = harness.revoke(&contoso_token, sample::BOB.id).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&refused, "x-ms-throttle-scope").unwrap(),
        format!("Application/Write/{}/", sample::CLIENT_ID)
    );
    assert_eq!(header(&refused, "retry-after").as_deref(), Some("5"));
    assert_eq!(
        harness.revoke(&other_token, sample::BOB.id).await.status(),
        StatusCode::OK,
        "another app has its own bucket"
    );
}

#[tokio::test]
async fn the_first_empty_scope_names_the_refusal() {
    let harness = start().await;
    let token = harness.token().await;
    let bucket = Some(Bucket::new(1, Duration::from_secs(60)));
    harness.emulator.set_quota(only(Quota {
        app_tenant_writes: bucket,
        tenant_writes: bucket,
        app_writes: bucket,
        ..Quota::default()
    }));
    harness.revoke(&token, sample::BOB.id).await;
    let refused = harness.revoke(&token, sample::BOB.id).await;
    assert!(
        header(&refused, "x-ms-throttle-scope")
            .unwrap()
            .starts_with("Tenant_Application/Write/")
    );
}

#[tokio::test]
async fn reads_spend_resource_units_and_leave_writes_alone() {
    let harness = start().await;
    let token = harness.token().await;
    harness.emulator.set_quota(only(Quota {
        app_tenant_writes: Some(Bucket::new(1, Duration::from_secs(60))),
        app_tenant_read_units: Some(Bucket::new(4, Duration::from_secs(60))),
        ..Quota::default()
    }));
    let bob = format!("users/{}", sample::BOB.id);
    let full = harness.get(&token, &bob).await;
    assert_eq!(full.status(), StatusCode::OK);
    assert_eq!(header(&full, "x-ms-resource-unit").as_deref(), Some("2"));
    let selected = harness.get(&token, &format!("{bob}?$select=id")).await;
    assert_eq!(
        header(&selected, "x-ms-resource-unit").as_deref(),
        Some("1")
    );
    let last = harness.get(&token, &format!("{bob}?$select=id")).await;
    assert_eq!(last.status(), StatusCode::OK);
    assert_eq!(
        header(&last, "x-ms-throttle-limit-percentage").as_deref(),
        Some("100")
    );
    let refused = harness.get(&token, &format!("{bob}?$select=id")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&refused, "x-ms-throttle-scope").unwrap(),
        format!(
            "Tenant_Application/Read/{}/{}",
            sample::CLIENT_ID,
            sample::TENANT_ID
        )
    );
    assert_eq!(
        header(&refused, "x-ms-throttle-information").as_deref(),
        Some("ReadLimitExceeded")
    );
    assert_eq!(header(&refused, "retry-after").as_deref(), Some("15"));
    let write = harness.revoke(&token, sample::BOB.id).await;
    assert_eq!(
        write.status(),
        StatusCode::OK,
        "writes have their own bucket"
    );
}

#[tokio::test]
async fn every_graph_answer_says_what_it_cost() {
    let harness = start().await;
    let token = harness.token().await;
    let bob = format!("users/{}", sample::BOB.id);
    let cases = [
        (harness.get(&token, &bob).await, "2"),
        (harness.get(&token, &format!("{bob}?$select=id")).await, "1"),
        (
            harness.get(&token, &format!("{bob}?$expand=manager")).await,
            "3",
        ),
        (
            harness
                .get(&token, &format!("{bob}/transitiveMemberOf"))
                .await,
            "2",
        ),
        (harness.get(&token, "users/nobody@x.com").await, "2"),
        (harness.revoke(&token, sample::BOB.id).await, "1"),
        (
            harness
                .set_password(&token, sample::ALICE.id, GOOD_PASSWORD)
                .await,
            "1",
        ),
    ];
    for (response, units) in cases {
        assert_eq!(
            header(&response, "x-ms-resource-unit").as_deref(),
            Some(units),
            "{}",
            response.url()
        );
        assert!(
            !response
                .headers()
                .contains_key("x-ms-throttle-limit-percentage"),
            "no quota, no usage"
        );
    }
    let scope = harness.scope();
    let form = [
        ("client_id", sample::CLIENT_ID),
        ("client_secret", sample::CLIENT_SECRET),
        ("scope", scope.as_str()),
        ("grant_type", "client_credentials"),
    ];
    let token_response = harness.request_token(sample::TENANT_ID, &form).await;
    assert!(!token_response.headers().contains_key("x-ms-resource-unit"));
}

#[tokio::test]
async fn limit_percentage_appears_from_eighty_percent_used() {
    let harness = start().await;
    let token = harness.token().await;
    harness.emulator.set_quota(only(Quota {
        app_tenant_writes: Some(Bucket::new(10, Duration::from_secs(3600))),
        ..Quota::default()
    }));
    let mut seen = Vec::new();
    for _ in 0..11 {
        let response = harness.revoke(&token, sample::BOB.id).await;
        seen.push((
            response.status().as_u16(),
            header(&response, "x-ms-throttle-limit-percentage"),
        ));
    }
    let percentage = |p: &str| Some(p.to_owned());
    assert!(
        seen[..7].iter().all(|seen| *seen == (200, None)),
        "{seen:?}"
    );
    assert_eq!(
        seen[7..],
        [
            (200, percentage("80")),
            (200, percentage("90")),
            (200, percentage("100")),
            (429, percentage("100")),
        ]
    );
}

#[tokio::test]
async fn an_apps_own_faults_hit_only_that_app() {
    let harness = start().await;
    let sample_token = harness.token().await;
    let other_token = token_for(&harness, sample::TENANT_ID, OTHER_APP, OTHER_SECRET).await;
    let third_token = token_for(&harness, sample::TENANT_ID, THIRD_APP, OTHER_SECRET).await;
    harness.emulator.set_app_faults(
        OTHER_APP,
        FaultPlan::random(1.0, [Fault::throttle(Some("60"))]),
    );
    harness
        .emulator
        .set_app_faults(THIRD_APP, FaultPlan::random(1.0, [Fault::Reset]));

    let throttled = harness.revoke(&other_token, sample::BOB.id).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&throttled, "retry-after").as_deref(), Some("60"));
    assert_eq!(
        header(&throttled, "x-ms-throttle-scope").unwrap(),
        format!("Tenant_Application/Write/{OTHER_APP}/{}", sample::TENANT_ID)
    );
    assert_eq!(
        header(&throttled, "x-ms-throttle-information").as_deref(),
        Some("WriteLimitExceeded")
    );
    let throttled_read = harness
        .get(&other_token, &format!("users/{}", sample::BOB.id))
        .await;
    assert_eq!(
        header(&throttled_read, "x-ms-throttle-scope").unwrap(),
        format!("Tenant_Application/Read/{OTHER_APP}/{}", sample::TENANT_ID)
    );
    assert_eq!(
        header(&throttled_read, "x-ms-throttle-information").as_deref(),
        Some("ReadLimitExceeded")
    );
    let scope = harness.scope();
    let other_form = [
        ("client_id", OTHER_APP),
        ("client_secret", OTHER_SECRET),
        ("scope", scope.as_str()),
        ("grant_type", "client_credentials"),
    ];
    let token_refused = harness.request_token(sample::TENANT_ID, &other_form).await;
    assert_eq!(
        token_refused.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the token endpoint goes by client_id"
    );

    let unreachable = harness
        .http
        .post(harness.url(&format!(
            "/v1.0/users/{}/revokeSignInSessions",
            sample::BOB.id
        )))
        .bearer_auth(&third_token)
        .send()
        .await;
    assert!(unreachable.is_err(), "the connection is dropped");

    assert_eq!(
        harness.revoke(&sample_token, sample::BOB.id).await.status(),
        StatusCode::OK,
        "other apps go by the global plan"
    );
    harness.token().await;
    let counters = harness.emulator.counters();
    assert_eq!(counters.fault("throttle"), 3);
    assert_eq!(counters.fault("reset"), 1);
    assert_eq!(counters.quota_throttled(), 0);

    harness.emulator.clear_app_faults(OTHER_APP);
    assert_eq!(harness.emulator.app_faults(OTHER_APP), None);
    assert_eq!(
        harness.revoke(&other_token, sample::BOB.id).await.status(),
        StatusCode::OK
    );
    assert!(harness.emulator.app_faults(THIRD_APP).is_some());
}

#[tokio::test]
async fn an_app_plan_replaces_the_global_one_for_that_app() {
    let harness = start().await;
    let sample_token = harness.token().await;
    let other_token = token_for(&harness, sample::TENANT_ID, OTHER_APP, OTHER_SECRET).await;
    harness.emulator.set_faults(FaultPlan::outage());
    harness
        .emulator
        .set_app_faults(OTHER_APP, FaultPlan::default());
    assert_eq!(
        harness.revoke(&other_token, sample::BOB.id).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        harness.revoke(&sample_token, sample::BOB.id).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn the_log_keeps_app_priority_and_quota_refusals() {
    let harness = start().await;
    let token = harness.token().await;
    harness.emulator.set_quota(only(Quota {
        app_tenant_writes: Some(Bucket::new(1, Duration::from_secs(60))),
        ..Quota::default()
    }));
    let revoke_url = harness.url(&format!(
        "/v1.0/users/{}/revokeSignInSessions",
        sample::BOB.id
    ));
    for priority in ["high", "low"] {
        harness
            .http
            .post(&revoke_url)
            .bearer_auth(&token)
            .header("x-ms-throttle-priority", priority)
            .send()
            .await
            .unwrap();
    }
    harness
        .get(&token, &format!("users/{}", sample::BOB.id))
        .await;
    harness.get("not-a-token", "users/nobody@x.com").await;

    let records = harness.emulator.requests();
    let summary: Vec<_> = records
        .iter()
        .map(|r: &RequestRecord| {
            (
                r.app_id.as_deref(),
                r.throttle_priority.as_deref(),
                r.quota_refused,
                r.status,
            )
        })
        .collect();
    let app = Some(sample::CLIENT_ID);
    assert_eq!(
        summary,
        [
            (app, None, false, Some(200)),
            (app, Some("high"), false, Some(200)),
            (app, Some("low"), true, Some(429)),
            (app, None, false, Some(200)),
            (None, None, false, Some(401)),
        ]
    );
    assert_eq!(records[0].operation, Some(Operation::Token));
}

#[tokio::test]
async fn quota_and_app_faults_are_set_over_http() {
    let harness = start().await;
    let token = harness.token().await;
    let admin = |path: &str| harness.url(&format!("/_emulator{path}"));
    let quota = json!({"appTenantWrites": {"capacity": 1, "windowMs": 60000}});
    let put = harness
        .http
        .put(admin("/quota"))
        .json(&quota)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    let got: Value = harness
        .http
        .get(admin("/quota"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, quota);
    harness.revoke(&token, sample::BOB.id).await;
    assert_eq!(
        harness.revoke(&token, sample::BOB.id).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    let invalid = json!({"appWrites": {"capacity": 0, "windowMs": 1}});
    let refused = harness
        .http
        .put(admin("/quota"))
        .json(&invalid)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let off = harness.http.delete(admin("/quota")).send().await.unwrap();
    assert_eq!(off.status(), StatusCode::NO_CONTENT);
    assert_eq!(harness.emulator.quota(), None);
    assert_eq!(
        harness.revoke(&token, sample::BOB.id).await.status(),
        StatusCode::OK
    );

    let app_faults = admin(&format!("/apps/{}/faults", sample::CLIENT_ID));
    let plan = json!({"script": ["internal"]});
    let put = harness
        .http
        .put(&app_faults)
        .json(&plan)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    let got: FaultPlan = harness
        .http
        .get(&app_faults)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got.script, [Fault::Internal]);
    assert_eq!(
        harness.revoke(&token, sample::BOB.id).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let cleared = harness.http.delete(&app_faults).send().await.unwrap();
    assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
    let gone = harness.http.get(&app_faults).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let unknown = harness
        .http
        .put(admin("/apps/00000000-0000-4000-8000-000000000000/faults"))
        .json(&plan)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
#[should_panic(expected = "no app")]
async fn faults_for_an_unknown_app_are_a_bug_in_the_test() {
    let harness = start().await;
    harness
        .emulator
        .set_app_faults("nobody", FaultPlan::outage());
}
