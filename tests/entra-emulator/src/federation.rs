//! Federated identity credentials: an app trusts tokens that an external issuer (here a
//! Kubernetes API server) issues to one subject, for one audience.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::{
    assertion::{invalid_assertion, out_of_time_range},
    directory::App,
    issuer_keys::{IssuerKeys, KeyError},
    jwt::{self, Jwt},
    responses::AadError,
};

/// The only audience Entra's public cloud takes in a federated credential.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// One federated identity credential of an app. Matching is exact and case-sensitive, as Entra's.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FederatedCredential {
    /// The token's `iss`, e.g. `https://127.0.0.1:6443` for a local API server.
    pub issuer: String,
    /// The token's `sub`, e.g. `system:serviceaccount:<namespace>:<name>`.
    pub subject: String,
    #[serde(default = "default_audiences")]
    pub audiences: Vec<String>,
}

fn default_audiences() -> Vec<String> {
    vec![TOKEN_EXCHANGE_AUDIENCE.to_owned()]
}

impl FederatedCredential {
    /// What Entra refuses when the credential is created; `allow_insecure_issuers` lets tests use
    /// a plain-HTTP issuer.
    pub fn validate(&self, allow_insecure_issuers: bool) -> Result<(), String> {
        let https = self.issuer.starts_with("https://");
        let allowed_http = allow_insecure_issuers && self.issuer.starts_with("http://");
        if !(https || allowed_http) {
            return Err(format!(
                "issuer {:?} is not an https URL (set allowInsecureIssuers for plain http in tests)",
                self.issuer
            ));
        }
        if self.subject.is_empty() {
            return Err("subject is empty".into());
        }
        if self.audiences.is_empty() {
            return Err("audiences is empty".into());
        }
        Ok(())
    }
}

/// Finds the app's credential for the token's issuer, subject and audience; then checks the
/// time window and the signature with the issuer's published keys.
pub async fn check_federated_assertion(
    jwt: &Jwt,
    app: &App,
    keys: &IssuerKeys,
    now: i64,
) -> Result<(), AadError> {
    let claims = &jwt.claims;
    let issuer = claims.iss.as_deref().unwrap_or_default();
    let subject = claims.sub.as_deref().unwrap_or_default();
    let matches = |credential: &&FederatedCredential| {
        credential.issuer == issuer
            && credential.subject == subject
            && claims
                .aud
                .as_slice()
                .iter()
                .any(|aud| credential.audiences.contains(aud))
    };
    if !app.federated_credentials.iter().any(|c| matches(&c)) {
        return Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            70021,
            format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{issuer}'. Assertion Subject: '{subject}'. Assertion Audience: '{}'.",
                claims.aud.joined()
            ),
        ));
    }
    jwt::check_time_window(claims, now).map_err(out_of_time_range)?;
    keys.verify(issuer, jwt).await.map_err(|error| match error {
        KeyError::Unreachable(why) => AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50166,
            format!("Request to External OIDC endpoint failed. ({why})"),
        ),
        KeyError::UnknownKey(kid) => AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000272,
            format!(
                "The certificate with identifier '{kid}' used to sign the federated credential could not be found in the metadata of identity provider {issuer}. Please validate that your Identity Provider's metadata exposes the key used to sign the incoming token."
            ),
        ),
        KeyError::BadSignature(why) => {
            invalid_assertion(format!("Client assertion failed signature validation. ({why})"))
        }
    })
}
