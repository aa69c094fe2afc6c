//! Temporary Access Passes: Entra issues the pass and enforces its end
//! (`POST /users/{id}/authentication/temporaryAccessPassMethods`, the app needs
//! `UserAuthenticationMethod.ReadWrite.All`). A pass is a sign-in method like the others, deleted
//! through [`GraphClient::delete_sign_in_method`] or with the methods added during its lease.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

use super::client::{GraphClient, GraphRequest};
use super::credentials::AppCredentials;
use super::error::GraphError;
use super::methods::authentication_url;
use super::users::failure;
use crate::sensitive::SecretString;

/// A pass Entra created: its code is shown this once.
pub struct IssuedPass {
    pub id: String,
    pub code: SecretString,
    pub starts_at: Timestamp,
    pub lifetime_in_minutes: u32,
}

impl IssuedPass {
    /// When Entra ends it.
    pub fn ends_at(&self) -> Timestamp {
        self.starts_at + SignedDuration::from_mins(i64::from(self.lifetime_in_minutes))
    }
}

impl std::fmt::Debug for IssuedPass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedPass")
            .field("id", &self.id)
            .field("code", &self.code)
            .field("starts_at", &self.starts_at)
            .field("lifetime_in_minutes", &self.lifetime_in_minutes)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatedPass {
    id: String,
    temporary_access_pass: String,
    start_date_time: Option<Timestamp>,
    lifetime_in_minutes: u32,
}

impl GraphClient {
    /// Creates a pass for the user, starting now, replacing any pass it had.
    pub async fn create_access_pass(
        &self,
        app: &AppCredentials,
        user_id: &str,
        lifetime_in_minutes: u32,
        usable_once: bool,
    ) -> Result<IssuedPass, GraphError> {
        const OPERATION: &str = "create a temporary access pass";
        let url = authentication_url(app, user_id, &["temporaryAccessPassMethods"])?;
        let body = json!({
            "lifetimeInMinutes": lifetime_in_minutes,
            "isUsableOnce": usable_once,
        });
        let request = GraphRequest {
            operation: OPERATION,
            method: Method::POST,
            url,
            json_body: Some(Zeroizing::new(body.to_string().into_bytes())),
        };
        let asked_at = Timestamp::now();
        let response = self.call(app, &request).await?;
        if !response.status.is_success() {
            return Err(failure(OPERATION, user_id, &response));
        }
        let created: CreatedPass =
            serde_json::from_slice(&response.body).map_err(|_| GraphError::MalformedResponse {
                operation: OPERATION,
                status: response.status.as_u16(),
                diagnostics: response.graph_diagnostics(),
            })?;
        Ok(IssuedPass {
            id: created.id,
            code: SecretString::from(created.temporary_access_pass),
            starts_at: created.start_date_time.unwrap_or(asked_at),
            lifetime_in_minutes: created.lifetime_in_minutes,
        })
    }
}
