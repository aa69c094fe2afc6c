//! The Graph client against the Entra emulator: every error class, token caching, retries and
//! their bounds, user addressing, password writes, and that no secret reaches Debug or logs.
//! Client assertions (certificate, workload identity) against a stand-in token endpoint.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use entra_emulator::sample::{
    ALICE, ALICE_INITIAL_PASSWORD, BOB, CAROL, CLIENT_ID, CLIENT_SECRET, DAVE_GUEST, ERIN_SYNCED,
    FRANK, GRACE_ADMIN, TENANT_DOMAIN, TENANT_ID,
};
use entra_emulator::{Config, Emulator, Fault, FaultPlan, Operation};
use entra_operator::graph::{
    AppCredentials, AssertionAlgorithm, CertificateCredential, ClientCredential, Cloud,
    EndpointOverrides, Endpoints, FederatedTokenFile, FederatedTokenSource, GraphClient,
    GraphClientConfig, GraphError, NotLeasable, Protection, RetryPolicy, TransientKind,
};
use entra_operator::sensitive::{ExposeSecret, SecretString};
use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;

const RESET_ROLE: &str = "User Administrator";

/// Small budgets so failure paths finish in about a second.
fn fast_config() -> GraphClientConfig {
    GraphClientConfig {
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            max_elapsed: Duration::from_secs(2),
            max_attempts: 8,
        },
        token_expiry_margin: Duration::from_secs(60),
        forbidden_token_min_age: Duration::ZERO,
        budgets: Default::default(),
    }
}

fn client() -> GraphClient {
    GraphClient::new(fast_config()).expect("client builds")
}

async fn emulator() -> Emulator {
    Emulator::start(Config::sample())
        .await
        .expect("emulator starts")
}

fn endpoints(emulator: &Emulator) -> Endpoints {
    let base = emulator.base_url();
    let overrides = EndpointOverrides::parse(Some(&base), Some(&base)).expect("loopback URL");
    Endpoints::resolve(Cloud::AzurePublic, &overrides)
}

fn app_with(emulator: &Emulator, tenant: &str, client_id: &str, secret: &str) -> AppCredentials {
    AppCredentials::with_client_secret(
        endpoints(emulator),
        tenant,
        client_id,
        SecretString::from(secret),
    )
}

fn app(emulator: &Emulator) -> AppCredentials {
    app_with(emulator, TENANT_DOMAIN, CLIENT_ID, CLIENT_SECRET)
}

fn secret(value: &str) -> SecretString {
    SecretString::from(value)
}

// ---- token errors ----

#[tokio::test]
async fn wrong_client_secret_is_invalid_client_secret_and_not_retried() {
    let emulator = emulator().await;
    let wrong = "wrong-secret-value~9876543210";
    let error = client()
        .check_credentials(&app_with(&emulator, TENANT_DOMAIN, CLIENT_ID, wrong))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "InvalidClientSecret");
    assert_eq!(error.metric_label(), "invalid_client_secret");
    assert!(!error.is_transient());
    let diagnostics = error.diagnostics().unwrap();
    assert_eq!(diagnostics.aadsts, Some(7000215));
    assert!(diagnostics.request_id.is_some() && diagnostics.client_request_id.is_some());
    assert_eq!(emulator.counters().token_requests, 1);
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(!shown.contains(wrong), "{shown}");
    }
}

#[tokio::test]
async fn unknown_tenant_is_reported_as_such() {
    let emulator = emulator().await;
    let app = app_with(
        &emulator,
        "fabrikam.onmicrosoft.com",
        CLIENT_ID,
        CLIENT_SECRET,
    );
    let error = client().check_credentials(&app).await.unwrap_err();
    assert_eq!(error.reason(), "UnknownTenant");
    assert_eq!(error.diagnostics().unwrap().aadsts, Some(90002));
    assert_eq!(emulator.counters().token_requests, 1);
}

#[tokio::test]
async fn unknown_application_is_reported_as_such() {
    let emulator = emulator().await;
    let app = app_with(
        &emulator,
        TENANT_ID,
        "00000000-0000-4000-8000-00000000dead",
        CLIENT_SECRET,
    );
    let error = client().check_credentials(&app).await.unwrap_err();
    assert_eq!(error.reason(), "UnknownApplication");
    assert_eq!(error.diagnostics().unwrap().aadsts, Some(700016));
}

#[tokio::test]
async fn tenant_may_be_named_by_guid_or_domain() {
    let emulator = emulator().await;
    let client = client();
    for tenant in [TENANT_ID, TENANT_DOMAIN] {
        let app = app_with(&emulator, tenant, CLIENT_ID, CLIENT_SECRET);
        client.check_credentials(&app).await.unwrap();
    }
}

// ---- Graph errors ----

#[tokio::test]
async fn app_without_role_gets_missing_permission() {
    let emulator = emulator().await;
    emulator.update_app(CLIENT_ID, |app| app.directory_roles.clear());
    let error = client()
        .set_password(&app(&emulator), ALICE.id, &secret("kT7#vQ2m-Lp9xZ"))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "MissingPermission");
    assert!(error.to_string().contains("User Administrator"), "{error}");
    assert_eq!(
        error.diagnostics().unwrap().code.as_deref(),
        Some("Authorization_RequestDenied")
    );
    // The token was new: no second token and no second attempt.
    assert_eq!(emulator.counters().token_requests, 1);
    assert_eq!(emulator.counters().operation(Operation::SetPassword), 1);
}

#[tokio::test]
async fn user_readwrite_all_alone_cannot_reset_passwords() {
    let emulator = emulator().await;
    emulator.update_app(CLIENT_ID, |app| {
        app.permissions = vec!["User.ReadWrite.All".into()];
    });
    let error = client()
        .set_password(&app(&emulator), ALICE.id, &secret("kT7#vQ2m-Lp9xZ"))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "MissingPermission");
}

#[tokio::test]
async fn protected_admin_target_is_forbidden() {
    let emulator = emulator().await;
    let error = client()
        .set_password(&app(&emulator), GRACE_ADMIN.id, &secret("kT7#vQ2m-Lp9xZ"))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "MissingPermission");
    assert!(
        error.to_string().contains("protected admin role"),
        "{error}"
    );
    assert!(!emulator.sign_in(GRACE_ADMIN.upn, "kT7#vQ2m-Lp9xZ"));
}

// ---- protected users, from their memberships ----

/// The sample app, granted a permission that reads roles and groups in a membership list.
async fn emulator_reading_memberships() -> Emulator {
    let emulator = emulator().await;
    emulator.update_app(CLIENT_ID, |app| {
        app.permissions.push("Directory.Read.All".into());
    });
    emulator
}

#[tokio::test]
async fn an_admin_role_makes_a_user_protected() {
    let emulator = emulator_reading_memberships().await;
    let protection = client()
        .user_protection(&app(&emulator), GRACE_ADMIN.id)
        .await
        .unwrap();
    assert_eq!(protection, Protection::Protected);
    assert_eq!(emulator.counters().graph_writes, 0);
}

#[tokio::test]
async fn a_role_assignable_group_makes_a_user_protected() {
    let emulator = emulator_reading_memberships().await;
    emulator.update_user(BOB.id, |bob| bob.role_assignable_group_member = true);
    let protection = client()
        .user_protection(&app(&emulator), BOB.id)
        .await
        .unwrap();
    assert_eq!(protection, Protection::Protected);
}

#[tokio::test]
async fn roles_a_user_administrator_may_reset_leave_a_user_leasable_across_pages() {
    let emulator = emulator_reading_memberships().await;
    // Three memberships: the emulator pages at two, so the client follows @odata.nextLink.
    emulator.update_user(CAROL.id, |carol| {
        carol.directory_roles = vec![
            "Helpdesk Administrator".into(),
            "Password Administrator".into(),
            "Reports Reader".into(),
        ];
    });
    let client = client();
    let app = app(&emulator);
    assert_eq!(
        client.user_protection(&app, CAROL.id).await.unwrap(),
        Protection::NotProtected
    );
    assert_eq!(emulator.counters().operation(Operation::ListMemberships), 2);
    assert_eq!(
        client.user_protection(&app, ALICE.id).await.unwrap(),
        Protection::NotProtected
    );
    // The admin role on the second page is found there.
    emulator.update_user(CAROL.id, |carol| {
        carol.directory_roles.push("Global Administrator".into());
    });
    assert_eq!(
        client.user_protection(&app, CAROL.id).await.unwrap(),
        Protection::Protected
    );
    // The operation the client would have tried agrees: the reset is refused.
    let error = client
        .set_password(&app, CAROL.id, &secret("kT7#vQ2m-Lp9xZ"))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "MissingPermission");
}

#[tokio::test]
async fn without_a_permission_to_read_memberships_protection_is_unreadable() {
    let emulator = emulator().await;
    let protection = client()
        .user_protection(&app(&emulator), GRACE_ADMIN.id)
        .await
        .unwrap();
    assert_eq!(protection, Protection::Unreadable);
    let counters = emulator.counters();
    assert_eq!(
        counters.operation_status(Operation::ListMemberships, 403),
        1
    );
}

#[tokio::test]
async fn hidden_role_properties_leave_protection_undecided() {
    let emulator = emulator().await;
    // User.Read.All lists memberships, but roles come back with only their type and id.
    emulator.update_app(CLIENT_ID, |app| {
        app.permissions.push("User.Read.All".into())
    });
    let client = client();
    let app = app(&emulator);
    assert_eq!(
        client.user_protection(&app, GRACE_ADMIN.id).await.unwrap(),
        Protection::Undecided
    );
    assert_eq!(
        client.user_protection(&app, ALICE.id).await.unwrap(),
        Protection::NotProtected
    );
}

#[tokio::test]
async fn memberships_of_a_missing_user_are_user_not_found() {
    let emulator = emulator_reading_memberships().await;
    let error = client()
        .user_protection(&app(&emulator), "0000dead-0000-4000-8000-000000000000")
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "UserNotFound");
}

#[tokio::test]
async fn forbidden_on_an_older_token_fetches_a_new_one_once_and_picks_up_the_grant() {
    let emulator = emulator().await;
    let client = client();
    let app = app(&emulator);
    emulator.update_app(CLIENT_ID, |app| app.directory_roles.clear());
    client.check_credentials(&app).await.unwrap();
    emulator.update_app(CLIENT_ID, |app| {
        app.directory_roles = vec![RESET_ROLE.into()];
    });

    client
        .set_password(&app, ALICE.id, &secret("kT7#vQ2m-Lp9xZ"))
        .await
        .unwrap();
    let counters = emulator.counters();
    assert_eq!(counters.token_requests, 2);
    assert_eq!(counters.operation_status(Operation::SetPassword, 403), 1);
    assert_eq!(counters.operation_status(Operation::SetPassword, 204), 1);
    assert!(emulator.sign_in(ALICE.upn, "kT7#vQ2m-Lp9xZ"));
}

#[tokio::test]
async fn forbidden_twice_is_not_retried_a_third_time() {
    let emulator = emulator().await;
    let client = client();
    let app = app(&emulator);
    client.check_credentials(&app).await.unwrap();
    let error = client
        .set_password(&app, GRACE_ADMIN.id, &secret("kT7#vQ2m-Lp9xZ"))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "MissingPermission");
    let counters = emulator.counters();
    assert_eq!(counters.token_requests, 2);
    assert_eq!(counters.operation(Operation::SetPassword), 2);
}

#[tokio::test]
async fn missing_user_is_user_not_found_after_exactly_one_request() {
    let emulator = emulator().await;
    let client = client();
    let app = app(&emulator);
    client.check_credentials(&app).await.unwrap();
    emulator.reset_counters();

    let error = client
        .get_user(&app, "nobody@contoso.onmicrosoft.com")
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "UserNotFound");
    assert!(error.to_string().contains("nobody@contoso.onmicrosoft.com"));
    let diagnostics = error.diagnostics().unwrap();
    assert!(diagnostics.request_id.is_some());
    let counters = emulator.counters();
    assert_eq!(
        counters.graph_reads, 1,
        "a permanent error is never retried"
    );
    assert_eq!(counters.token_requests, 0);
}

#[tokio::test]
async fn deleted_user_is_user_not_found_on_write() {
    let emulator = emulator().await;
    let client = client();
    let app = app(&emulator);
    assert!(emulator.delete_user(CAROL.id));
    let error = client
        .set_password(&app, CAROL.id, &secret("kT7#vQ2m-Lp9xZ"))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "UserNotFound");
    let error = client
        .revoke_sign_in_sessions(&app, CAROL.id)
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "UserNotFound");
}

#[tokio::test]
async fn guest_and_synced_users_are_not_leasable() {
    let emulator = emulator().await;
    let client = client();
    let app = app(&emulator);

    let dave = client.get_user(&app, DAVE_GUEST.upn).await.unwrap();
    assert_eq!(dave.id, DAVE_GUEST.id);
    assert_eq!(dave.not_leasable(), Some(NotLeasable::Guest));
    assert_eq!(
        dave.ensure_leasable().unwrap_err().reason(),
        "UserNotLeasable"
    );

    let erin = client.get_user(&app, ERIN_SYNCED.id).await.unwrap();
    assert_eq!(erin.not_leasable(), Some(NotLeasable::SyncedFromOnPremises));

    let alice = client.get_user(&app, ALICE.upn).await.unwrap();
    assert_eq!(alice.not_leasable(), None);
    assert_eq!(alice.id, ALICE.id);

    emulator.update_user(BOB.id, |bob| bob.account_enabled = false);
    let bob = client.get_user(&app, BOB.id).await.unwrap();
    assert_eq!(bob.not_leasable(), Some(NotLeasable::Disabled));
}

#[tokio::test]
async fn setting_a_guests_password_says_not_leasable_rather_than_rejected() {
    let emulator = emulator().await;
    let client = client();
    let app = app(&emulator);
    for (user, reason) in [
        (DAVE_GUEST.id, NotLeasable::Guest),
        (ERIN_SYNCED.id, NotLeasable::SyncedFromOnPremises),
    ] {
        let error = client
            .set_password(&app, user, &secret("kT7#vQ2m-Lp9xZ"))
            .await
            .unwrap_err();
        match error {
            GraphError::UserNotLeasable { reason: actual, .. } => assert_eq!(actual, reason),
            other => panic!("expected UserNotLeasable, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn weak_password_is_password_rejected() {
    let emulator = emulator().await;
    let error = client()
        .set_password(&app(&emulator), ALICE.id, &secret("Password#2024xyz"))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "PasswordRejected");
    assert!(!error.to_string().contains("Password#2024xyz"));
    assert!(emulator.sign_in(ALICE.upn, ALICE_INITIAL_PASSWORD));
}

#[tokio::test]
async fn outage_exhausts_the_retry_budget_in_bounded_time() {
    let emulator = emulator().await;
    let client = client();
    let app = app(&emulator);
    client.check_credentials(&app).await.unwrap();
    emulator.set_faults(FaultPlan::outage().only(Operation::GRAPH));

    let started = Instant::now();
    let error = client.get_user(&app, ALICE.id).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(error.is_transient());
    assert_eq!(error.reason(), "GraphUnavailable");
    assert_eq!(error.metric_label(), "graph_unavailable");
    match &error {
        GraphError::TransientExhausted { last, attempts, .. } => {
            assert_eq!(last.kind, TransientKind::Unavailable { status: 503 });
            assert!(*attempts >= 2, "{attempts}");
            assert_eq!(
                u64::from(*attempts),
                emulator.counters().operation(Operation::GetUser)
            );
        }
        other => panic!("expected TransientExhausted, got {other:?}"),
    }
    let budget = fast_config().retry.max_elapsed;
    assert!(elapsed < budget + Duration::from_secs(1), "{elapsed:?}");
}

#[tokio::test]
async fn token_endpoint_outage_is_retried_then_reported_transient() {
    let emulator = emulator().await;
    emulator.set_faults(FaultPlan::outage().only([Operation::Token]));
    let error = client()
        .check_credentials(&app(&emulator))
        .await
        .unwrap_err();
    assert!(error.is_transient());
    assert!(emulator.counters().token_requests >= 2);
}

// ---- tokens ----

#[tokio::test]
async fn one_token_serves_many_calls() {
    let emulator = emulator().await;
    let client = client();
    let app = app(&emulator);
    for _ in 0..10 {
        client.get_user(&app, ALICE.id).await.unwrap();
    }
    // A clone shares the cache.
    client.clone().get_user(&app, BOB.id).await.unwrap();
    let counters = emulator.counters();
    assert_eq!(counters.token_requests, 1);
    assert_eq!(counters.graph_reads, 11);
}

#[tokio::test]
async fn concurrent_callers_share_one_token_fetch() {
    let emulator = emulator().await;
    // Slow enough that all 20 ask while the first token fetch is under way; quick enough that
    // 20 calls through the app's 4 in-flight slots fit the test client's retry budget.
    emulator
        .set_faults(FaultPlan::default().with_latency(Duration::from_millis(100), Duration::ZERO));
    let client = client();
    let app = app(&emulator);
    let calls = (0..20).map(|_| client.get_user(&app, ALICE.id));
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    assert_eq!(emulator.counters().token_requests, 1);
}

#[tokio::test]
async fn rotated_secret_gets_its_own_token() {
    let emulator = emulator().await;
    let client = client();
    client.check_credentials(&app(&emulator)).await.unwrap();
    let rotated = "rotated-secret-value~5555";
    emulator.update_app(CLIENT_ID, |app| app.secrets.push(rotated.into()));
    let rotated_app = app_with(&emulator, TENANT_DOMAIN, CLIENT_ID, rotated);
    client.check_credentials(&rotated_app).await.unwrap();
    client.check_credentials(&rotated_app).await.unwrap();
    assert_eq!(emulator.counters().token_requests, 2);
}

#[tokio::test]
async fn unauthorized_drops_the_token_and_retries_once_with_a_new_one() {
    let first = emulator().await;
    let addr = first.addr();
    let client = client();
    let app = app(&first);
    client.check_credentials(&app).await.unwrap();
    // A new emulator on the same address knows nothing of the cached token.
    first.shutdown().await;
    let second = Emulator::start_on(Config::sample(), addr)
        .await
        .expect("restart on the same port");

    client.get_user(&app, ALICE.id).await.unwrap();
    let counters = second.counters();
    assert_eq!(counters.token_requests, 1);
    assert_eq!(counters.operation_status(Operation::GetUser, 401), 1);
    assert_eq!(counters.operation_status(Operation::GetUser, 200), 1);
}

#[tokio::test]
async fn unauthorized_with_a_fresh_token_is_reported_not_looped() {
    let mut config = Config::sample();
    config.token_lifetime_seconds = 0;
    let emulator = Emulator::start(config).await.unwrap();
    let error = client()
        .get_user(&app(&emulator), ALICE.id)
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "AccessTokenRejected");
    let counters = emulator.counters();
    assert_eq!(counters.token_requests, 2);
    assert_eq!(counters.operation_status(Operation::GetUser, 401), 2);
}

// ---- client assertions (certificate, workload identity) ----
// The emulator does not check assertions yet: a stand-in token endpoint records each form.

const TEST_CERT: &[u8] = include_bytes!("../src/graph/testdata/rsa.crt");
const TEST_KEY: &[u8] = include_bytes!("../src/graph/testdata/rsa.key");
const FEDERATED_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.service-account.token";

type Form = Vec<(String, String)>;

/// A token endpoint that records each request's path and form and gives every one `answer`.
struct RecordingTokenEndpoint {
    base_url: String,
    requests: Arc<Mutex<Vec<(String, Form)>>>,
}

impl RecordingTokenEndpoint {
    async fn start(status: u16, answer: &'static str) -> Self {
        let requests: Arc<Mutex<Vec<(String, Form)>>> = Arc::default();
        let recorded = Arc::clone(&requests);
        let router = axum::Router::new().fallback(move |uri: axum::http::Uri, body: String| {
            let form = url::form_urlencoded::parse(body.as_bytes())
                .into_owned()
                .collect();
            recorded.lock().unwrap().push((uri.path().to_owned(), form));
            async move {
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [("content-type", "application/json")],
                    answer,
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { base_url, requests }
    }

    async fn issuing_tokens() -> Self {
        Self::start(
            200,
            r#"{"token_type":"Bearer","expires_in":3599,"access_token":"issued"}"#,
        )
        .await
    }

    fn app(&self, credential: ClientCredential) -> AppCredentials {
        let overrides = EndpointOverrides::parse(Some(&self.base_url), Some(&self.base_url))
            .expect("loopback URL");
        AppCredentials::new(
            Endpoints::resolve(Cloud::AzurePublic, &overrides),
            TENANT_DOMAIN,
            CLIENT_ID,
            credential,
        )
    }

    fn requests(&self) -> Vec<(String, Form)> {
        self.requests.lock().unwrap().clone()
    }
}

fn form_field<'a>(form: &'a Form, name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(field, _)| field == name)
        .map(|(_, value)| value.as_str())
}

fn test_certificate() -> ClientCredential {
    let certificate = CertificateCredential::from_pem(
        TEST_CERT,
        TEST_KEY,
        AssertionAlgorithm::Ps256,
        Timestamp::now(),
    )
    .expect("the test certificate loads");
    ClientCredential::Certificate(Arc::new(certificate))
}

/// A federated source that counts how often it is asked.
#[derive(Debug, Default)]
struct CountingTokenSource {
    calls: AtomicUsize,
}

impl FederatedTokenSource for CountingTokenSource {
    fn identity(&self) -> String {
        "serviceaccount:entra-operator/pool-a".into()
    }

    fn token(&self) -> BoxFuture<'_, Result<SecretString, GraphError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(SecretString::from(FEDERATED_TOKEN)) })
    }
}

#[tokio::test]
async fn certificate_sends_a_signed_assertion_for_the_token_endpoint_instead_of_a_secret() {
    let endpoint = RecordingTokenEndpoint::issuing_tokens().await;
    client()
        .check_credentials(&endpoint.app(test_certificate()))
        .await
        .unwrap();
    let requests = endpoint.requests();
    let [(path, form)] = requests.as_slice() else {
        panic!("one token request: {requests:?}");
    };
    assert_eq!(form_field(form, "client_secret"), None);
    assert_eq!(
        form_field(form, "client_assertion_type"),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert_eq!(form_field(form, "client_id"), Some(CLIENT_ID));
    assert_eq!(form_field(form, "grant_type"), Some("client_credentials"));
    let assertion = form_field(form, "client_assertion").unwrap();
    let parts: Vec<&str> = assertion.split('.').collect();
    assert_eq!(parts.len(), 3, "{assertion}");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[1])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], format!("{}{path}", endpoint.base_url));
    assert_eq!(claims["iss"], CLIENT_ID);
}

#[tokio::test]
async fn federated_token_is_read_only_when_an_access_token_is_fetched() {
    let endpoint = RecordingTokenEndpoint::issuing_tokens().await;
    let source = Arc::new(CountingTokenSource::default());
    let app = endpoint.app(ClientCredential::Federated(source.clone()));
    let client = client();
    for _ in 0..3 {
        client.check_credentials(&app).await.unwrap();
    }
    assert_eq!(source.calls.load(Ordering::SeqCst), 1);
    let requests = endpoint.requests();
    assert_eq!(requests.len(), 1);
    let form = &requests[0].1;
    assert_eq!(form_field(form, "client_assertion"), Some(FEDERATED_TOKEN));
    assert_eq!(form_field(form, "client_secret"), None);
}

#[tokio::test]
async fn federated_token_file_is_read_afresh_for_each_token_request() {
    let endpoint = RecordingTokenEndpoint::issuing_tokens().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("azure-identity-token");
    std::fs::write(&path, "first.projected.token").unwrap();
    let app = endpoint.app(ClientCredential::Federated(Arc::new(
        FederatedTokenFile::new(&path),
    )));
    client().check_credentials(&app).await.unwrap();
    std::fs::write(&path, "rotated.projected.token").unwrap();
    // A new client has an empty cache, so it must fetch: with the rotated file.
    client().check_credentials(&app).await.unwrap();
    let assertions: Vec<String> = endpoint
        .requests()
        .iter()
        .filter_map(|(_, form)| form_field(form, "client_assertion").map(str::to_owned))
        .collect();
    assert_eq!(
        assertions,
        ["first.projected.token", "rotated.projected.token"]
    );
}

#[tokio::test]
async fn unmatched_federated_credential_is_reported_as_such_without_the_token() {
    let endpoint = RecordingTokenEndpoint::start(
        400,
        r#"{"error":"invalid_request","error_codes":[70021],"trace_id":"t-1","correlation_id":"c-1"}"#,
    )
    .await;
    let source = Arc::new(CountingTokenSource::default());
    let error = client()
        .check_credentials(&endpoint.app(ClientCredential::Federated(source)))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "FederatedCredentialNotFound");
    assert_eq!(error.metric_label(), "federated_credential_not_found");
    assert!(!error.is_transient());
    assert_eq!(error.diagnostics().unwrap().aadsts, Some(70021));
    assert_eq!(endpoint.requests().len(), 1);
    assert!(
        error.to_string().contains("system:serviceaccount"),
        "{error}"
    );
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(!shown.contains(FEDERATED_TOKEN), "{shown}");
    }
}

#[tokio::test]
async fn refused_certificate_assertion_is_invalid_client_assertion() {
    let endpoint = RecordingTokenEndpoint::start(
        401,
        r#"{"error":"invalid_client","error_codes":[700027],"trace_id":"t-1"}"#,
    )
    .await;
    let error = client()
        .check_credentials(&endpoint.app(test_certificate()))
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "InvalidClientAssertion");
    let assertion = endpoint.requests()[0].1.clone();
    let assertion = form_field(&assertion, "client_assertion")
        .unwrap()
        .to_owned();
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(!shown.contains(&assertion), "{shown}");
    }
}

// ---- retries ----

#[tokio::test]
async fn integer_retry_after_is_honoured() {
    let emulator = emulator().await;
    let client = client();
    let app = app(&emulator);
    client.check_credentials(&app).await.unwrap();
    emulator.set_faults(FaultPlan::script([Fault::throttle(Some("1"))]).only([Operation::GetUser]));
    let started = Instant::now();
    client.get_user(&app, ALICE.id).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(emulator.counters().operation(Operation::GetUser), 2);
}

#[tokio::test]
async fn fractional_retry_after_is_honoured() {
    let emulator = emulator().await;
    let client = client();
    let app = app(&emulator);
    client.check_credentials(&app).await.unwrap();
    emulator.set_faults(
        FaultPlan::script([
            Fault::throttle(Some("0.4")),
            Fault::unavailable(Some("0.3")),
        ])
        .only([Operation::GetUser]),
    );
    let started = Instant::now();
    client.get_user(&app, ALICE.id).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(650),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(emulator.counters().operation(Operation::GetUser), 3);
}

#[tokio::test]
async fn throttling_without_retry_after_backs_off_and_succeeds() {
    let emulator = emulator().await;
    let client = client();
    let app = app(&emulator);
    client.check_credentials(&app).await.unwrap();
    emulator.set_faults(
        FaultPlan::script([
            Fault::throttle(None),
            Fault::throttle(None),
            Fault::GatewayTimeout,
            Fault::BadGateway,
            Fault::Internal,
        ])
        .only([Operation::GetUser]),
    );
    let started = Instant::now();
    client.get_user(&app, ALICE.id).await.unwrap();
    // Jittered backoffs of at least half of 20, 40, 80, 160, 200 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(emulator.counters().operation(Operation::GetUser), 6);
}

#[tokio::test]
async fn retry_after_beyond_the_budget_gives_up_at_once_with_the_hint() {
    let emulator = emulator().await;
    let client = client();
    let app = app(&emulator);
    client.check_credentials(&app).await.unwrap();
    emulator
        .set_faults(FaultPlan::script([Fault::throttle(Some("30"))]).only([Operation::GetUser]));
    let started = Instant::now();
    let error = client.get_user(&app, ALICE.id).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(error.metric_label(), "graph_throttled");
}

#[tokio::test]
async fn throttled_token_endpoint_is_retried() {
    let emulator = emulator().await;
    emulator.set_faults(
        FaultPlan::script([Fault::throttle(Some("0.1")), Fault::unavailable(None)])
            .only([Operation::Token]),
    );
    client().check_credentials(&app(&emulator)).await.unwrap();
    assert_eq!(emulator.counters().token_requests, 3);
}

#[tokio::test]
async fn reset_and_timed_out_requests_are_retried() {
    let emulator = emulator().await;
    let client = GraphClient::new(GraphClientConfig {
        request_timeout: Duration::from_millis(300),
        ..fast_config()
    })
    .unwrap();
    let app = app(&emulator);
    client.check_credentials(&app).await.unwrap();
    emulator.set_faults(
        FaultPlan::script([Fault::Reset, Fault::timeout(Duration::from_secs(2))])
            .only([Operation::GetUser]),
    );
    client.get_user(&app, ALICE.id).await.unwrap();
    assert_eq!(emulator.counters().operation(Operation::GetUser), 3);
}

#[tokio::test]
async fn lost_response_to_a_password_write_resends_the_same_password() {
    let emulator = emulator().await;
    let client = client();
    let app = app(&emulator);
    emulator.set_faults(FaultPlan::script([Fault::LostResponse]).only([Operation::SetPassword]));
    // Alice's names are long enough that a random password practically never contains them.
    let password = client
        .set_new_password(&app, ALICE.id, 32, 3)
        .await
        .unwrap();
    assert_eq!(emulator.counters().operation(Operation::SetPassword), 2);
    assert_eq!(emulator.counters().fault("lostResponse"), 1);
    assert!(emulator.sign_in(ALICE.upn, password.expose_secret()));
}

#[tokio::test]
async fn timed_out_password_write_is_retried_with_the_same_password() {
    let emulator = emulator().await;
    let client = GraphClient::new(GraphClientConfig {
        request_timeout: Duration::from_millis(300),
        ..fast_config()
    })
    .unwrap();
    let app = app(&emulator);
    emulator.set_faults(
        FaultPlan::script([Fault::timeout(Duration::from_secs(2)), Fault::LostResponse])
            .only([Operation::SetPassword]),
    );
    let password = secret("kT7#vQ2m-Lp9xZ-4dw");
    client
        .set_password(&app, ALICE.id, &password)
        .await
        .unwrap();
    assert_eq!(emulator.counters().operation(Operation::SetPassword), 3);
    assert!(emulator.sign_in(ALICE.upn, password.expose_secret()));
}

// ---- addressing and success shapes ----

#[tokio::test]
async fn dollar_upn_is_addressed_by_key() {
    let emulator = emulator().await;
    let client = client();
    let app = app(&emulator);
    let frank = client.get_user(&app, FRANK.upn).await.unwrap();
    assert_eq!(frank.id, FRANK.id);
    assert_eq!(frank.user_principal_name, FRANK.upn);
    let password = secret("kT7#vQ2m-Lp9xZ-frk");
    client
        .set_password(&app, FRANK.upn, &password)
        .await
        .unwrap();
    client
        .revoke_sign_in_sessions(&app, FRANK.upn)
        .await
        .unwrap();
    assert!(emulator.sign_in(FRANK.upn, password.expose_secret()));
    let paths: Vec<String> = emulator.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths.iter().any(|path| path.contains("users('$frank@")),
        "{paths:?}"
    );
}

#[tokio::test]
async fn guest_upn_hashes_are_percent_encoded() {
    let emulator = emulator().await;
    let dave = client()
        .get_user(&app(&emulator), DAVE_GUEST.upn)
        .await
        .unwrap();
    assert_eq!(dave.user_principal_name, DAVE_GUEST.upn);
    let queries: Vec<Option<String>> = emulator.requests().into_iter().map(|r| r.query).collect();
    assert!(
        queries.iter().flatten().any(|query| query.starts_with(
            "$select=id,userPrincipalName,displayName,accountEnabled,userType,onPremisesSyncEnabled"
        )),
        "{queries:?}"
    );
    let paths: Vec<String> = emulator.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths.iter().any(|path| path.contains("%23EXT%23")),
        "{paths:?}"
    );
}

#[tokio::test]
async fn accepted_202_counts_as_success() {
    let emulator = emulator().await;
    let client = client();
    let app = app(&emulator);
    emulator.set_faults(FaultPlan::random(1.0, [Fault::Accepted202]).only(Operation::GRAPH));
    let alice = client.get_user(&app, ALICE.id).await.unwrap();
    assert_eq!(alice.id, ALICE.id);
    let password = secret("kT7#vQ2m-Lp9xZ-202");
    client
        .set_password(&app, ALICE.id, &password)
        .await
        .unwrap();
    client
        .revoke_sign_in_sessions(&app, ALICE.id)
        .await
        .unwrap();
    assert_eq!(emulator.counters().status(202), 3);
    assert!(emulator.sign_in(ALICE.upn, password.expose_secret()));
}

#[tokio::test]
async fn set_password_replaces_the_password_without_forcing_a_change() {
    let emulator = emulator().await;
    let client = client();
    let app = app(&emulator);
    assert!(emulator.sign_in(ALICE.upn, ALICE_INITIAL_PASSWORD));
    let password = client
        .set_new_password(&app, ALICE.id, 24, 3)
        .await
        .unwrap();
    assert_eq!(password.expose_secret().len(), 24);
    assert!(emulator.sign_in(ALICE.upn, password.expose_secret()));
    assert!(!emulator.sign_in(ALICE.upn, ALICE_INITIAL_PASSWORD));
    let alice = emulator.user(ALICE.id).unwrap();
    assert_eq!(alice.force_change_password_next_sign_in, Some(false));
    assert_eq!(
        alice.force_change_password_next_sign_in_with_mfa,
        Some(false)
    );
    assert!(!alice.must_change_password);
    assert_eq!(alice.password_set_count, 1);
}

#[tokio::test]
async fn generated_passwords_rejected_every_time_end_in_password_rejected() {
    let emulator = emulator().await;
    // Every three-character letter-or-digit word in Bob's name: a 256-character password
    // without such a run is practically impossible, so each attempt is refused.
    let alphanumerics: Vec<char> = ('a'..='z').chain('0'..='9').collect();
    let mut words = Vec::new();
    for a in &alphanumerics {
        for b in &alphanumerics {
            for c in &alphanumerics {
                words.push(format!("{a}{b}{c}"));
            }
        }
    }
    emulator.update_user(BOB.id, |bob| bob.display_name = words.join(" "));
    let error = client()
        .set_new_password(&app(&emulator), BOB.id, 256, 3)
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "PasswordRejected");
    assert_eq!(emulator.counters().operation(Operation::SetPassword), 3);
    assert_eq!(emulator.user(BOB.id).unwrap().password_set_count, 0);
}

#[tokio::test]
async fn generated_password_for_a_guest_is_not_retried() {
    let emulator = emulator().await;
    let error = client()
        .set_new_password(&app(&emulator), DAVE_GUEST.id, 32, 3)
        .await
        .unwrap_err();
    assert_eq!(error.reason(), "UserNotLeasable");
    assert_eq!(emulator.counters().operation(Operation::SetPassword), 1);
}

#[tokio::test]
async fn revoke_sign_in_sessions_moves_the_valid_from_time() {
    let emulator = emulator().await;
    let before = emulator
        .user(ALICE.id)
        .unwrap()
        .sign_in_sessions_valid_from_date_time;
    tokio::time::sleep(Duration::from_millis(10)).await;
    client()
        .revoke_sign_in_sessions(&app(&emulator), ALICE.id)
        .await
        .unwrap();
    let after = emulator
        .user(ALICE.id)
        .unwrap()
        .sign_in_sessions_valid_from_date_time;
    assert!(after > before, "{before:?} -> {after:?}");
}

#[tokio::test]
async fn account_can_be_disabled_and_enabled() {
    let emulator = emulator().await;
    let client = client();
    let app = app(&emulator);
    client
        .set_account_enabled(&app, BOB.id, false)
        .await
        .unwrap();
    assert!(!emulator.user(BOB.id).unwrap().account_enabled);
    client
        .set_account_enabled(&app, BOB.id, true)
        .await
        .unwrap();
    assert!(emulator.user(BOB.id).unwrap().account_enabled);
}

#[tokio::test]
async fn every_request_carries_a_fresh_client_request_id() {
    let emulator = emulator().await;
    let client = client();
    let app = app(&emulator);
    for _ in 0..3 {
        client.get_user(&app, ALICE.id).await.unwrap();
    }
    let ids: Vec<String> = emulator
        .requests()
        .into_iter()
        .map(|r| r.client_request_id.expect("client-request-id sent"))
        .collect();
    assert_eq!(ids.len(), 4);
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len());
    for id in &ids {
        uuid_like(id);
    }
}

fn uuid_like(id: &str) {
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(id.matches('-').count(), 4, "{id}");
}

// ---- nothing secret leaks ----

/// A `MakeWriter` collecting everything written into one buffer.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn no_secret_reaches_debug_output_or_logs() {
    let logs = CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_env_filter("trace,entra_emulator=off")
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let emulator = emulator().await;
    let client = GraphClient::new(GraphClientConfig {
        request_timeout: Duration::from_millis(300),
        ..fast_config()
    })
    .unwrap();
    let app = app(&emulator);
    let wrong_secret = "wrong-secret-value~1234567890";
    let weak_password = "Password#2024xyz";
    let mut shown = Vec::new();

    let error = client
        .check_credentials(&app_with(&emulator, TENANT_DOMAIN, CLIENT_ID, wrong_secret))
        .await
        .unwrap_err();
    shown.push(format!("{error:?} {error}"));
    emulator.set_faults(
        FaultPlan::script([
            Fault::LostResponse,
            Fault::timeout(Duration::from_secs(1)),
            Fault::throttle(Some("0.05")),
        ])
        .only([Operation::SetPassword]),
    );
    let password = client
        .set_new_password(&app, CAROL.id, 32, 3)
        .await
        .unwrap();
    let error = client
        .set_password(&app, ALICE.id, &secret(weak_password))
        .await
        .unwrap_err();
    shown.push(format!("{error:?} {error}"));
    let error = client
        .set_password(&app, GRACE_ADMIN.id, &password)
        .await
        .unwrap_err();
    shown.push(format!("{error:?} {error}"));
    shown.push(format!("{client:?} {app:?} {password:?}"));

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("answered"), "the capture works: {logs}");
    shown.push(logs);
    for text in &shown {
        for secret in [
            CLIENT_SECRET,
            wrong_secret,
            weak_password,
            password.expose_secret(),
        ] {
            assert!(!text.contains(secret), "{secret:?} leaked into: {text}");
        }
        // The emulator's access tokens all start with `emu.`.
        assert!(!text.contains("emu."), "a token leaked into: {text}");
    }
}

/// A token endpoint that answers every request with `status` and a body sent in chunks without a
/// Content-Length, so only reading it tells how large it is.
async fn chunked_endpoint(chunk: &'static [u8], chunks: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                            transfer-encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for _ in 0..chunks {
                    let size = format!("{:x}\r\n", chunk.len());
                    let sent = async {
                        stream.write_all(size.as_bytes()).await?;
                        stream.write_all(chunk).await?;
                        stream.write_all(b"\r\n").await
                    };
                    if sent.await.is_err() {
                        return;
                    }
                }
                let _ = stream.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    base_url
}

fn app_at(base_url: &str) -> AppCredentials {
    let overrides = EndpointOverrides::parse(Some(base_url), Some(base_url)).expect("loopback URL");
    AppCredentials::new(
        Endpoints::resolve(Cloud::AzurePublic, &overrides),
        TENANT_DOMAIN,
        CLIENT_ID,
        ClientCredential::Secret(secret(CLIENT_SECRET)),
    )
}

#[tokio::test]
async fn an_answer_over_a_mebibyte_is_refused_by_its_length_without_reading_it() {
    let huge = format!(
        r#"{{"token_type":"Bearer","expires_in":3599,"access_token":"{}"}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let endpoint = RecordingTokenEndpoint::start(200, Box::leak(huge.into_boxed_str())).await;
    let error = client()
        .check_credentials(&endpoint.app(ClientCredential::Secret(secret(CLIENT_SECRET))))
        .await
        .unwrap_err();
    assert!(
        matches!(error, GraphError::MalformedResponse { status: 200, .. }),
        "{error:?}"
    );
    assert_eq!(error.reason(), "UnexpectedGraphResponse");
    assert_eq!(endpoint.requests().len(), 1, "not retried");
}

#[tokio::test]
async fn an_endless_answer_is_cut_at_a_mebibyte() {
    // 64 KiB chunks, 32 MiB in all if it were read to the end.
    static CHUNK: [u8; 64 * 1024] = [b' '; 64 * 1024];
    let base_url = chunked_endpoint(&CHUNK, 512).await;
    let error = client()
        .check_credentials(&app_at(&base_url))
        .await
        .unwrap_err();
    assert!(
        matches!(error, GraphError::MalformedResponse { status: 200, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_small_answer_in_chunks_is_read_whole() {
    static ANSWER: &[u8] = br#"{"token_type":"Bearer","expires_in":3599,"access_token":"issued"}"#;
    let base_url = chunked_endpoint(ANSWER, 1).await;
    client()
        .check_credentials(&app_at(&base_url))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_token_lifetime_near_the_largest_number_is_clamped_not_a_panic() {
    for expires_in in [
        r#"18446744073709551615"#,
        r#""18446744073709551615""#,
        r#"9223372036854775807"#,
    ] {
        let answer = format!(
            r#"{{"token_type":"Bearer","expires_in":{expires_in},"access_token":"issued"}}"#
        );
        let endpoint = RecordingTokenEndpoint::start(200, Box::leak(answer.into_boxed_str())).await;
        let app = endpoint.app(ClientCredential::Secret(secret(CLIENT_SECRET)));
        let client = client();
        client.check_credentials(&app).await.unwrap();
        // The token is cached as any other: a second call asks nothing.
        client.check_credentials(&app).await.unwrap();
        assert_eq!(endpoint.requests().len(), 1, "{expires_in}");
    }
}
