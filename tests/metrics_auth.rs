//! `/metrics` as the chart serves it: HTTPS, and only to callers the API server vouches for. The
//! operator runs on the chart's ServiceAccount and asks the API server about each caller
//! (TokenReview, then SubjectAccessReview for `get` on `/metrics`): the ServiceAccount the values
//! name reads the metrics, any other caller is refused, and the probes answer without a token.

use entra_test_support as support;

use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use serde_json::json;
use support::chart::{ChartRelease, service_account_token};
use support::cluster::{install_crds, namespace, poll};
use support::{ControlPlane, Operator};

/// The answer to `GET url` with `token` as bearer, or `None` when no HTTP answer came.
async fn scrape(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
) -> Option<(StatusCode, String)> {
    let mut request = http.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.ok()?;
    let status = response.status();
    Some((status, response.text().await.ok()?))
}

#[tokio::test]
async fn metrics_answer_only_the_service_account_the_chart_authorizes() {
    entra_operator::tls::install_crypto_provider();
    let control_plane = ControlPlane::shared();
    install_crds(control_plane);
    let admin = control_plane.client().await;
    let monitoring = namespace(&admin, "monitoring").await;
    let accounts = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{ name: prometheus, namespace: {monitoring} }}\n---\n\
         apiVersion: v1\nkind: ServiceAccount\nmetadata: {{ name: intruder, namespace: {monitoring} }}\n"
    );
    let applied = control_plane.kubectl_with_input(&["apply", "-f", "-"], &accounts);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let values = json!({
        "metrics": { "reader": { "serviceAccounts": [{ "name": "prometheus", "namespace": monitoring }] } },
    });
    let release = ChartRelease::start(control_plane, "metrics-op", &values, "operator").await;
    let probes = format!("http://127.0.0.1:{}", release.port("health"));
    let metrics_port = release.port("metrics");
    let metrics = format!("https://127.0.0.1:{metrics_port}/metrics");
    // The certificate is self-signed: what the chart's ServiceMonitor skips verifying.
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();

    // The kubelet's probes: plain HTTP, no token.
    release
        .operator
        .wait_for("/readyz on the probes' port, without a token", || async {
            let (status, _) = scrape(&http, &format!("{probes}/readyz"), None).await?;
            (status == StatusCode::OK).then_some(())
        })
        .await;
    let (status, _) = scrape(&http, &format!("{probes}/livez"), None)
        .await
        .expect("/livez answers");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        scrape(&http, &format!("{probes}/metrics"), None)
            .await
            .map(|(status, _)| status),
        Some(StatusCode::NOT_FOUND),
        "the probes' port does not serve /metrics"
    );

    // Prometheus' ServiceAccount, named in the values, reads the metrics (once the API server's
    // RBAC cache has the chart's bindings).
    let prometheus = service_account_token(control_plane, &monitoring, "prometheus");
    let text = release
        .operator
        .wait_for("/metrics to answer Prometheus' ServiceAccount", || async {
            let (status, text) = scrape(&http, &metrics, Some(&prometheus)).await?;
            (status == StatusCode::OK).then_some(text)
        })
        .await;
    assert!(text.contains("# TYPE entra_leader gauge"), "{text}");

    // Everyone else is refused.
    let intruder = service_account_token(control_plane, &monitoring, "intruder");
    for (who, token, refusal) in [
        ("no token", None, StatusCode::UNAUTHORIZED),
        (
            "a garbage token",
            Some("not-a-token"),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "a ServiceAccount the chart does not authorize",
            Some(intruder.as_str()),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let (status, text) = scrape(&http, &metrics, token)
            .await
            .unwrap_or_else(|| panic!("{who}: an answer"));
        assert_eq!(status, refusal, "{who}: {text}");
        assert!(!text.contains("entra_"), "{who} reads no series: {text}");
    }
    assert!(
        http.get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .send()
            .await
            .is_err(),
        "the metrics port speaks TLS only"
    );
    let logs = release.operator.logs();
    for token in [&prometheus, &intruder] {
        assert!(!logs.contains(token.as_str()), "a token in the logs");
    }
}

/// A certificate and key as PEM, e.g. cert-manager's `tls.crt` and `tls.key`.
fn pem(label: &str, der: &[u8]) -> String {
    let base64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = base64
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

#[tokio::test]
async fn metrics_serve_the_certificate_of_the_files_given() {
    entra_operator::tls::install_crypto_provider();
    let control_plane = ControlPlane::shared();
    let admin = control_plane.client().await;
    let served = namespace(&admin, "metrics-cert").await;
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = pem("CERTIFICATE", generated.cert.der());
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(
        &key,
        pem("PRIVATE KEY", &generated.signing_key.serialize_der()),
    )
    .unwrap();
    let operator = Operator::start_with(
        control_plane,
        "http://127.0.0.1:9",
        &served,
        &served,
        "operator",
        vec![
            "--metrics-secure=true".to_owned(),
            format!("--metrics-cert-file={}", cert.display()),
            format!("--metrics-key-file={}", key.display()),
        ],
    );
    // Only that certificate is trusted, for the name it was made for.
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], operator.metrics_port));
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap()])
        .resolve("localhost", address)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/metrics", operator.metrics_port);
    let status = poll(
        "/metrics over TLS with the given certificate",
        Duration::from_secs(60),
        || async { scrape(&http, &url, None).await.map(|(status, _)| status) },
        || operator.logs(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "secured: a token is needed"
    );
}
