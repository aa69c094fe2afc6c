//! The product page's flow against a real API server, the Entra emulator and the operator process:
//! configure a pool, lease, renew (capped at maxTTL), revoke, expire.

use entra_test_support as support;

use entra_emulator::sample;
use entra_operator::api::LeasePhase;
use serde_json::json;
use support::lease_env::LeaseEnv;

const POOL_USERS: [&str; 3] = [
    "alice@contoso.onmicrosoft.com",
    "bob@contoso.onmicrosoft.com",
    "carol@contoso.onmicrosoft.com",
];

#[tokio::test]
async fn lease_issues_renews_and_revokes_a_working_credential() {
    let env = LeaseEnv::start("flow").await;
    env.create_pool("contoso", &POOL_USERS, "1h", "2h").await;
    let pool = env.wait_for_ready_pool("contoso").await;
    let status = pool.status.unwrap();
    assert_eq!(status.available, 3);
    assert_eq!(status.users[0].id.as_deref(), Some(sample::ALICE.id));

    env.create_lease(
        "ci",
        json!({ "dynamicSecretRef": { "name": "contoso" }, "ttl": "30m" }),
    )
    .await;
    let lease = env.wait_for_phase("ci", LeasePhase::Active).await;
    let status = lease.status.clone().unwrap();
    let secret_name = status.secret_name.clone().unwrap();
    assert_eq!(secret_name, "entra-ci");
    let (username, password) = env.credentials(&secret_name).await;
    assert_eq!(
        username, "alice@contoso.onmicrosoft.com",
        "the first free user"
    );
    assert!(
        env.emulator.sign_in(&username, &password),
        "the issued password works"
    );
    let issued_at = status.issued_at.unwrap().0;
    let expires_at = status.expires_at.unwrap().0;
    assert_eq!(expires_at.duration_since(issued_at).as_secs(), 30 * 60);
    assert_eq!(
        status
            .max_expires_at
            .unwrap()
            .0
            .duration_since(issued_at)
            .as_secs(),
        2 * 3600
    );

    let listed = env
        .control_plane
        .kubectl(&["get", "entraleases", "-n", &env.namespace]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("alice@contoso.onmicrosoft.com") && listed.contains("Active"),
        "{listed}"
    );

    // Renewal: a later expiry, no Graph call, no change to the Secret's data.
    let writes_before = env.emulator.counters().graph_writes;
    // Times have whole seconds: renewed within the second of the issue, the expiry would not move.
    env.wait_for("the clock to pass the issue's second", || async {
        (k8s_openapi::jiff::Timestamp::now().as_second() > issued_at.as_second()).then_some(())
    })
    .await;
    env.annotate("ci", "kms.hanzo.ai/renew", "first").await;
    let renewed = env
        .wait_for("the first renewal", || async {
            env.lease("ci")
                .await
                .filter(|l| l.status.as_ref().unwrap().renew_count == 1)
        })
        .await;
    let renewed_status = renewed.status.unwrap();
    assert!(
        renewed_status.expires_at.unwrap().0 > expires_at,
        "the expiry moved later"
    );
    assert_eq!(renewed_status.last_renew_request.as_deref(), Some("first"));
    assert_eq!(
        env.credentials(&secret_name).await.1,
        password,
        "renewal keeps the password"
    );
    assert_eq!(
        env.emulator.counters().graph_writes,
        writes_before,
        "renewal makes no Graph write"
    );

    // A renewal past maxTTL is capped at maxExpiresAt, and says so.
    let patch = json!({ "spec": { "ttl": "2h" } });
    env.leases()
        .patch(
            "ci",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    env.annotate("ci", "kms.hanzo.ai/renew", "second").await;
    let capped = env
        .wait_for("the capped renewal", || async {
            env.lease("ci")
                .await
                .filter(|l| l.status.as_ref().unwrap().renew_count == 2)
        })
        .await;
    let capped_status = capped.status.unwrap();
    assert_eq!(
        capped_status.expires_at, capped_status.max_expires_at,
        "capped at maxExpiresAt"
    );
    let ready = capped_status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.reason, "RenewalCapped");
    assert!(
        env.emulator.sign_in(&username, &password),
        "still valid after renewals"
    );

    // Revocation: deleting the lease scrambles the password, removes the Secret, frees the user.
    env.end_lease("ci").await;
    assert!(
        !env.emulator.sign_in(&username, &password),
        "the old password no longer works"
    );
    assert!(
        env.secrets().get_opt(&secret_name).await.unwrap().is_none(),
        "the Secret is gone"
    );
    let alice = env.emulator.user(sample::ALICE.id).unwrap();
    assert!(alice.sign_in_sessions_valid_from_date_time.is_some());
    env.wait_for("alice to be free again", || async {
        let pool = env.pools().get("contoso").await.unwrap();
        (pool.status.unwrap().available == 3).then_some(())
    })
    .await;
}

#[tokio::test]
async fn short_lease_expires_on_time_and_is_revoked_and_deleted() {
    let env = LeaseEnv::start("expiry").await;
    env.create_pool("contoso", &POOL_USERS, "1h", "2h").await;
    env.wait_for_ready_pool("contoso").await;
    env.create_lease(
        "brief",
        json!({ "dynamicSecretRef": { "name": "contoso" }, "ttl": "3s" }),
    )
    .await;
    let lease = env.wait_for_phase("brief", LeasePhase::Active).await;
    let (username, password) = env.credentials("entra-brief").await;
    assert!(env.emulator.sign_in(&username, &password));
    let expires_at = lease.status.unwrap().expires_at.unwrap().0;
    env.wait_until_gone("brief").await;
    let gone_at = k8s_openapi::jiff::Timestamp::now();
    assert!(gone_at >= expires_at, "not ended before its expiry");
    let lag = gone_at.duration_since(expires_at).as_secs_f64();
    assert!(lag < 10.0, "ended {lag:.1}s after expiry");
    assert!(
        !env.emulator.sign_in(&username, &password),
        "the expired password no longer works"
    );
    assert!(
        env.secrets()
            .get_opt("entra-brief")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn deleting_a_dynamic_secret_ends_its_leases_first() {
    let env = LeaseEnv::start("teardown").await;
    env.create_pool("contoso", &POOL_USERS, "1h", "2h").await;
    env.wait_for_ready_pool("contoso").await;
    let mut credentials = Vec::new();
    for name in ["one", "two"] {
        env.create_lease(name, json!({ "dynamicSecretRef": { "name": "contoso" } }))
            .await;
        env.wait_for_phase(name, LeasePhase::Active).await;
        credentials.push(env.credentials(&format!("entra-{name}")).await);
    }
    env.pools()
        .delete("contoso", &Default::default())
        .await
        .unwrap();
    env.wait_for("the dynamic secret to be gone", || async {
        env.pools()
            .get_opt("contoso")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    // The pool goes once its claims are released; each lease's own finalizer goes a moment later.
    for name in ["one", "two"] {
        env.wait_until_gone(name).await;
    }
    for (username, password) in credentials {
        assert!(
            !env.emulator.sign_in(&username, &password),
            "{username}'s password is dead"
        );
    }
}

/// The README's rotation: a new client secret goes into the pool's Secret, then the old one is
/// removed from the app. A lease issued with the old one still ends: its claim records the
/// operator's copy of the old value, and the revocation falls back to the copy of the new one.
#[tokio::test]
async fn a_lease_issued_before_a_client_secret_rotation_still_ends() {
    const ROTATED: &str = "rotated-client-secret-value~9876543210";
    let env = LeaseEnv::start("rotation").await;
    env.create_pool("pool", &POOL_USERS, "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    env.create_lease("ci", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    let active = env.wait_for_phase("ci", LeasePhase::Active).await;
    let secret_name = active.status.unwrap().secret_name.unwrap();
    let (username, password) = env.credentials(&secret_name).await;

    env.emulator
        .update_app(sample::CLIENT_ID, |app| app.secrets.push(ROTATED.into()));
    env.create_client_secret(ROTATED).await;
    env.wait_for(
        "the pool to be validated with the rotated secret",
        || async {
            let copies = env
                .secrets()
                .list(&kube::api::ListParams::default().labels("kms.hanzo.ai/credential-copy=true"))
                .await
                .unwrap();
            (copies.items.len() == 2).then_some(())
        },
    )
    .await;
    env.emulator.update_app(sample::CLIENT_ID, |app| {
        app.secrets.retain(|secret| secret == ROTATED)
    });

    env.end_lease("ci").await;
    assert!(
        !env.emulator.sign_in(&username, &password),
        "the lease ended with the rotated credential"
    );
}

/// A namespaced pool whose app proves itself with a certificate (a kubernetes.io/tls Secret of the
/// pool's namespace) instead of a secret: issue, renew and revoke, every token by assertion.
#[tokio::test]
async fn a_certificate_credential_issues_renews_and_revokes() {
    let env = LeaseEnv::start("certificate").await;
    let certificate = include_str!("../src/graph/testdata/rsa.crt");
    let key = include_str!("../src/graph/testdata/rsa.key");
    env.emulator.update_app(sample::CLIENT_ID, |app| {
        app.certificates.push(certificate.to_owned());
        // The secret no longer works: nothing may fall back to it.
        app.secrets.clear();
    });
    let tls: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": { "name": "app-certificate" },
        "type": "kubernetes.io/tls",
        "stringData": { "tls.crt": certificate, "tls.key": key },
    }))
    .unwrap();
    env.secrets()
        .create(&Default::default(), &tls)
        .await
        .unwrap();
    let pool: entra_operator::api::EntraDynamicSecret = serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraDynamicSecret",
        "metadata": { "name": "pool" },
        "spec": {
            "tenantId": sample::TENANT_DOMAIN,
            "applicationId": sample::CLIENT_ID,
            "certificateRef": { "name": "app-certificate", "algorithm": "RS256" },
            "users": [sample::ALICE.upn],
            "defaultTTL": "1h",
            "maxTTL": "2h",
        }
    }))
    .unwrap();
    env.pools()
        .create(&Default::default(), &pool)
        .await
        .unwrap();
    env.wait_for_ready_pool("pool").await;
    env.create_lease("svc", json!({ "dynamicSecretRef": { "name": "pool" } }))
        .await;
    let active = env.wait_for_phase("svc", LeasePhase::Active).await;
    let secret = active.status.unwrap().secret_name.unwrap();
    let (username, password) = env.credentials(&secret).await;
    assert!(env.emulator.sign_in(&username, &password));
    env.annotate("svc", "kms.hanzo.ai/renew", "1").await;
    env.wait_for("the renewal", || async {
        let status = env.lease("svc").await?.status?;
        (status.renew_count == 1).then_some(())
    })
    .await;
    env.end_lease("svc").await;
    assert!(!env.emulator.sign_in(&username, &password));
    let counters = env.emulator.counters();
    assert!(counters.token_requests_with(entra_emulator::CredentialKind::Certificate) > 0);
    assert_eq!(
        counters.token_requests_with(entra_emulator::CredentialKind::ClientSecret),
        0,
        "no token came by client secret"
    );
    assert_eq!(env.violations().await, Vec::<String>::new());
}

/// A templated Secret: its type, extra labels and keys rendered from the credential; a
/// renewal leaves its data alone; a template that cannot render is refused before any user is
/// claimed or password set.
#[tokio::test]
async fn a_template_shapes_the_secret_and_a_bad_one_issues_nothing() {
    let env = LeaseEnv::start("template").await;
    env.create_pool("pool", &POOL_USERS, "1h", "2h").await;
    env.wait_for_ready_pool("pool").await;
    env.create_lease(
        "db",
        json!({
            "dynamicSecretRef": { "name": "pool" },
            "user": sample::ALICE.upn,
            "template": {
                "type": "kubernetes.io/basic-auth",
                "labels": { "app": "payments" },
                "data": {
                    "connectionString": "Server=db;User Id={{ username }};Password={{ password }};",
                    ".netrc": "machine db login {{ username }} password {{ password }}\n",
                },
            },
        }),
    )
    .await;
    let active = env.wait_for_phase("db", LeasePhase::Active).await;
    let name = active.status.unwrap().secret_name.unwrap();
    let secret = env.secrets().get(&name).await.unwrap();
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/basic-auth"));
    assert_eq!(secret.metadata.labels.as_ref().unwrap()["app"], "payments");
    let (username, password) = env.credentials(&name).await;
    let data = secret.data.clone().unwrap();
    let text = |key: &str| String::from_utf8(data[key].0.clone()).unwrap();
    assert_eq!(
        text("connectionString"),
        format!("Server=db;User Id={username};Password={password};")
    );
    assert_eq!(
        text(".netrc"),
        format!("machine db login {username} password {password}\n")
    );
    assert!(env.emulator.sign_in(&username, &password));
    env.annotate("db", "kms.hanzo.ai/renew", "1").await;
    env.wait_for("the renewal", || async {
        let status = env.lease("db").await?.status?;
        (status.renew_count == 1).then_some(())
    })
    .await;
    let renewed = env.secrets().get(&name).await.unwrap();
    assert_eq!(renewed.data, secret.data, "a renewal changes no key");

    let writes = env.emulator.counters().graph_writes;
    env.create_lease(
        "broken",
        json!({
            "dynamicSecretRef": { "name": "pool" },
            "template": { "data": { "dsn": "{{ expiresAt }}" } },
        }),
    )
    .await;
    let refused = env.wait_for_phase("broken", LeasePhase::Failed).await;
    let ready = refused
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.reason, "TemplateInvalid");
    assert!(ready.message.contains("dsn"), "{}", ready.message);
    assert_eq!(
        env.emulator.counters().graph_writes,
        writes,
        "nothing was issued"
    );
    assert_eq!(env.violations().await, Vec::<String>::new());
}
