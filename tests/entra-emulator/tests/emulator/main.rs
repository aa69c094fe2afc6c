//! Behaviour of the emulator over HTTP, as the operator's Graph client sees it.

mod access_passes;
mod admin;
mod binary;
mod certificate_assertions;
mod faults;
mod federated_assertions;
mod graph_users;
mod passwords;
mod quota;
mod signing;
mod token;

use entra_emulator::{Config, Emulator, sample};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

/// A running sample tenant and a client for it.
pub struct Harness {
    pub emulator: Emulator,
    pub http: Client,
}

/// A client builder; installs the TLS provider that workspace feature unification requires.
pub fn http_client() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(Config::sample()).await
    }

    pub async fn start_with(config: Config) -> Harness {
        let emulator = Emulator::start(config).await.expect("emulator starts");
        Harness {
            emulator,
            http: http_client().build().unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emulator.base_url())
    }

    pub fn scope(&self) -> String {
        format!("{}/.default", self.emulator.base_url())
    }

    /// A token request with these form fields.
    pub async fn request_token(&self, tenant: &str, form: &[(&str, &str)]) -> Response {
        let url = self.url(&format!("/{tenant}/oauth2/v2.0/token"));
        self.http
            .post(url)
            .form(form)
            .send()
            .await
            .expect("token request answered")
    }

    /// A token for the sample app.
    pub async fn token(&self) -> String {
        let scope = self.scope();
        let form = [
            ("client_id", sample::CLIENT_ID),
            ("client_secret", sample::CLIENT_SECRET),
            ("scope", scope.as_str()),
            ("grant_type", "client_credentials"),
        ];
        let response = self.request_token(sample::TENANT_ID, &form).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// `GET /v1.0/{path}` with the token.
    pub async fn get(&self, token: &str, path: &str) -> Response {
        self.http
            .get(self.url(&format!("/v1.0/{path}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// `PATCH /v1.0/users/{user}` with the token.
    pub async fn patch_user(&self, token: &str, user: &str, body: Value) -> Response {
        let url = self.url(&format!("/v1.0/users/{user}"));
        self.http
            .patch(url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `PATCH` a password reset the way the operator sends it.
    pub async fn set_password(&self, token: &str, user: &str, password: &str) -> Response {
        let body = json!({"passwordProfile": {
            "password": password,
            "forceChangePasswordNextSignIn": false,
            "forceChangePasswordNextSignInWithMfa": false,
        }});
        self.patch_user(token, user, body).await
    }

    pub async fn revoke(&self, token: &str, user: &str) -> Response {
        let url = self.url(&format!("/v1.0/users/{user}/revokeSignInSessions"));
        self.http.post(url).bearer_auth(token).send().await.unwrap()
    }
}

/// A password that passes every rule for every sample user.
pub const GOOD_PASSWORD: &str = "kT7#vQ2m-Lp9xZ";

/// The Graph error code of a response.
pub async fn graph_code(response: Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
