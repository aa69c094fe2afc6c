//! `/metrics` on a port of its own, served as controller-runtime serves it: over HTTPS, and only
//! to callers whom the API server authenticates (TokenReview) and authorizes (SubjectAccessReview
//! for `get` on the non-resource URL `/metrics`). The series name every lease, so not every pod
//! may read them. `--metrics-secure=false` serves plain HTTP to anyone: for local development only.

mod auth;
mod certificate;
mod decision_cache;
mod https;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use certificate::{CertificateError, CertificateSource};

use crate::metrics::metrics;
use auth::MetricsAuth;
use decision_cache::Access;

const METRICS_PATH: &str = "/metrics";

/// How `/metrics` is protected.
pub enum Security {
    /// HTTPS with this certificate; callers reviewed by the API server of `client`.
    Secure {
        client: kube::Client,
        certificate: CertificateSource,
    },
    /// Plain HTTP, no authentication: for local development only.
    Insecure,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("binding the metrics address: {0}")]
    Bind(#[from] std::io::Error),
    #[error(transparent)]
    Certificate(#[from] CertificateError),
}

/// Binds `address` and serves `/metrics` until the process ends. Returns the bound address
/// (useful with port 0).
pub async fn serve(address: SocketAddr, security: Security) -> Result<SocketAddr, ServeError> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    match security {
        Security::Secure {
            client,
            certificate,
        } => {
            let tls = certificate::server_config(&certificate)?;
            let app = router(Some(Arc::new(MetricsAuth::new(client))));
            tokio::spawn(https::serve(listener, tls, app));
        }
        Security::Insecure => {
            tracing::warn!(
                "serving /metrics over plain HTTP without authentication (--metrics-secure=false)"
            );
            tokio::spawn(async move {
                if let Err(error) = axum::serve(listener, router(None)).await {
                    tracing::error!(%error, "the metrics server stopped");
                }
            });
        }
    }
    Ok(bound)
}

fn router(auth: Option<Arc<MetricsAuth>>) -> Router {
    Router::new()
        .route(METRICS_PATH, get(scrape))
        .with_state(auth)
}

async fn scrape(State(auth): State<Option<Arc<MetricsAuth>>>, headers: HeaderMap) -> Response {
    if let Some(auth) = auth
        && let Err(refusal) = admit(&auth, &headers).await
    {
        return refusal;
    }
    render_metrics(&headers).into_response()
}

/// 401 without a valid bearer token, 403 for a user without `get` on `/metrics`.
async fn admit(auth: &MetricsAuth, headers: &HeaderMap) -> Result<(), Response> {
    let unauthorized = || {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
            "Unauthorized",
        )
            .into_response()
    };
    let Some(token) = bearer_token(headers) else {
        return Err(unauthorized());
    };
    match auth.check(token, METRICS_PATH).await {
        Ok(Access::Allowed) => Ok(()),
        Ok(Access::Unauthenticated) => Err(unauthorized()),
        Ok(Access::Forbidden) => Err((
            StatusCode::FORBIDDEN,
            "Forbidden: the user may not get /metrics",
        )
            .into_response()),
        Err(error) => {
            tracing::warn!(%error, "could not review a /metrics caller with the API server");
            Err((StatusCode::INTERNAL_SERVER_ERROR, "Authorization error").into_response())
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// OpenMetrics for scrapers that ask for it (Prometheus does), the classic text format otherwise.
fn render_metrics(headers: &HeaderMap) -> impl IntoResponse {
    let accepts_openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    if accepts_openmetrics {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            metrics().render(),
        )
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            metrics().render_classic(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn only_a_bearer_token_is_taken() {
        assert_eq!(
            bearer_token(&with_authorization("Bearer abc.def")),
            Some("abc.def")
        );
        assert_eq!(bearer_token(&with_authorization("bearer abc")), Some("abc"));
        assert_eq!(
            bearer_token(&with_authorization("Basic dXNlcjpwdw==")),
            None
        );
        assert_eq!(bearer_token(&with_authorization("Bearer ")), None);
        assert_eq!(bearer_token(&with_authorization("Bearer")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
