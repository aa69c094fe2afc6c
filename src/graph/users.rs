//! The user operations the operator needs besides password writes: resolve a pool user, revoke
//! its sessions, enable or disable it; and how a user is addressed and its errors mapped.

use k8s_openapi::jiff::Timestamp;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;
use zeroize::Zeroizing;

use super::client::{GraphClient, GraphRequest};
use super::credentials::AppCredentials;
use super::error::GraphError;
use super::http::RawResponse;
use super::not_leasable::NotLeasable;

/// `$select` of a user read: only what leasing needs, which also lowers the read's throttling cost.
const USER_SELECT: &str =
    "id,userPrincipalName,displayName,accountEnabled,userType,onPremisesSyncEnabled";

/// A user as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphUser {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: Option<String>,
    pub account_enabled: Option<bool>,
    pub user_type: Option<String>,
    pub on_premises_sync_enabled: Option<bool>,
}

impl GraphUser {
    /// Why this user cannot be leased, if it cannot. Unset fields count as the common case
    /// (member, cloud-only, enabled).
    pub fn not_leasable(&self) -> Option<NotLeasable> {
        if self
            .user_type
            .as_deref()
            .is_some_and(|kind| kind.eq_ignore_ascii_case("guest"))
        {
            Some(NotLeasable::Guest)
        } else if self.on_premises_sync_enabled == Some(true) {
            Some(NotLeasable::SyncedFromOnPremises)
        } else if self.account_enabled == Some(false) {
            Some(NotLeasable::Disabled)
        } else {
            None
        }
    }

    /// `Ok` when the user can be leased, else `UserNotLeasable` with the reason.
    pub fn ensure_leasable(&self) -> Result<(), GraphError> {
        match self.not_leasable() {
            None => Ok(()),
            Some(reason) => Err(GraphError::UserNotLeasable {
                user: self.user_principal_name.clone(),
                reason,
            }),
        }
    }
}

impl GraphClient {
    /// Reads a user by object id or UPN (`#EXT#` guest UPNs and `$`-prefixed UPNs included).
    pub async fn get_user(
        &self,
        app: &AppCredentials,
        id_or_upn: &str,
    ) -> Result<GraphUser, GraphError> {
        const OPERATION: &str = "get user";
        let mut url = user_url(app, id_or_upn, None)?;
        // Set raw: `$select` is sent as Graph documents it rather than as `%24select`.
        url.set_query(Some(&format!("$select={USER_SELECT}")));
        let request = GraphRequest {
            operation: OPERATION,
            method: Method::GET,
            url,
            json_body: None,
        };
        let response = self.call(app, &request).await?;
        if !response.status.is_success() {
            return Err(failure(OPERATION, id_or_upn, &response));
        }
        serde_json::from_slice(&response.body).map_err(|_| GraphError::MalformedResponse {
            operation: OPERATION,
            status: response.status.as_u16(),
            diagnostics: response.graph_diagnostics(),
        })
    }

    /// Invalidates the user's refresh tokens and session cookies (effective within minutes).
    pub async fn revoke_sign_in_sessions(
        &self,
        app: &AppCredentials,
        user_id: &str,
    ) -> Result<(), GraphError> {
        const OPERATION: &str = "revoke sign-in sessions";
        let request = GraphRequest {
            operation: OPERATION,
            method: Method::POST,
            url: user_url(app, user_id, Some("revokeSignInSessions"))?,
            json_body: None,
        };
        let response = self.call(app, &request).await?;
        // Documented as 200 `{"value":true}`, but other 2xx answers are known to come back.
        if response.status.is_success() {
            Ok(())
        } else {
            Err(failure(OPERATION, user_id, &response))
        }
    }

    /// When the user's sessions are valid from (`signInSessionsValidFromDateTime`): a session
    /// revocation moves it to its own time.
    pub async fn sessions_valid_from(
        &self,
        app: &AppCredentials,
        user_id: &str,
    ) -> Result<Option<Timestamp>, GraphError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Sessions {
            sign_in_sessions_valid_from_date_time: Option<String>,
        }
        const OPERATION: &str = "read sessions valid from";
        let mut url = user_url(app, user_id, None)?;
        url.set_query(Some("$select=signInSessionsValidFromDateTime"));
        let request = GraphRequest {
            operation: OPERATION,
            method: Method::GET,
            url,
            json_body: None,
        };
        let response = self.call(app, &request).await?;
        if !response.status.is_success() {
            return Err(failure(OPERATION, user_id, &response));
        }
        let malformed = || GraphError::MalformedResponse {
            operation: OPERATION,
            status: response.status.as_u16(),
            diagnostics: response.graph_diagnostics(),
        };
        let sessions: Sessions = serde_json::from_slice(&response.body).map_err(|_| malformed())?;
        sessions
            .sign_in_sessions_valid_from_date_time
            .map(|at| at.parse::<Timestamp>().map_err(|_| malformed()))
            .transpose()
    }

    /// Enables or disables sign-in (needs `User.EnableDisableAccount.All`).
    pub async fn set_account_enabled(
        &self,
        app: &AppCredentials,
        user_id: &str,
        enabled: bool,
    ) -> Result<(), GraphError> {
        const OPERATION: &str = "set account enabled";
        let request = GraphRequest {
            operation: OPERATION,
            method: Method::PATCH,
            url: user_url(app, user_id, None)?,
            json_body: Some(json_bytes(
                &serde_json::json!({ "accountEnabled": enabled }),
            )),
        };
        let response = self.call(app, &request).await?;
        if response.status.is_success() {
            Ok(())
        } else {
            Err(failure(OPERATION, user_id, &response))
        }
    }
}

fn json_bytes(body: &serde_json::Value) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(serde_json::to_vec(body).expect("a JSON value serializes"))
}

/// `{graph root}/v1.0/users/{id}[/{action}]`, every segment percent-encoded (`#EXT#` becomes
/// `%23EXT%23`). A UPN starting with `$` would read as an OData system segment, so it is
/// addressed by key instead: `users('$x@y')`, with quotes doubled as OData requires.
pub(super) fn user_url(
    app: &AppCredentials,
    id_or_upn: &str,
    action: Option<&str>,
) -> Result<Url, GraphError> {
    let id_or_upn = id_or_upn.trim();
    if id_or_upn.is_empty() || id_or_upn == "." || id_or_upn == ".." {
        return Err(GraphError::Config(format!(
            "{id_or_upn:?} is not a user id or user principal name"
        )));
    }
    let mut url = app.endpoints().graph_root().clone();
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|()| GraphError::Config("the Graph root cannot hold a path".into()))?;
        segments.pop_if_empty().push("v1.0");
        if id_or_upn.starts_with('$') {
            segments.push(&format!("users('{}')", id_or_upn.replace('\'', "''")));
        } else {
            segments.push("users").push(id_or_upn);
        }
        if let Some(action) = action {
            segments.push(action);
        }
    }
    Ok(url)
}

/// Maps a non-2xx answer to a user operation on status and code.
pub(super) fn failure(operation: &'static str, user: &str, response: &RawResponse) -> GraphError {
    let diagnostics = response.graph_diagnostics();
    match response.status {
        StatusCode::NOT_FOUND
            if diagnostics.code.as_deref() == Some("Request_ResourceNotFound") =>
        {
            GraphError::UserNotFound {
                user: user.to_owned(),
                diagnostics,
            }
        }
        // Graph cannot tell a missing permission or role from a protected target: both are 403.
        StatusCode::FORBIDDEN => GraphError::MissingPermission {
            operation,
            diagnostics,
        },
        StatusCode::UNAUTHORIZED => GraphError::AccessTokenRejected(diagnostics),
        status => GraphError::Unexpected {
            operation,
            status: status.as_u16(),
            diagnostics,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::cloud::{Cloud, EndpointOverrides, Endpoints};
    use crate::sensitive::SecretString;

    fn app() -> AppCredentials {
        AppCredentials::with_client_secret(
            Endpoints::for_cloud(Cloud::AzurePublic),
            "contoso.onmicrosoft.com",
            "app",
            SecretString::from("secret"),
        )
    }

    fn user(user_type: &str, synced: Option<bool>, enabled: Option<bool>) -> GraphUser {
        GraphUser {
            id: "id".into(),
            user_principal_name: "u@contoso.onmicrosoft.com".into(),
            display_name: None,
            account_enabled: enabled,
            user_type: Some(user_type.into()),
            on_premises_sync_enabled: synced,
        }
    }

    #[test]
    fn guest_upns_have_their_hashes_encoded() {
        let url = user_url(
            &app(),
            "dave_fabrikam.com#EXT#@contoso.onmicrosoft.com",
            None,
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://graph.microsoft.com/v1.0/users/dave_fabrikam.com%23EXT%23@contoso.onmicrosoft.com"
        );
    }

    #[test]
    fn dollar_upns_are_addressed_by_key() {
        let url = user_url(&app(), "$admin@contoso.com", Some("revokeSignInSessions")).unwrap();
        assert_eq!(
            url.as_str(),
            "https://graph.microsoft.com/v1.0/users('$admin@contoso.com')/revokeSignInSessions"
        );
        let url = user_url(&app(), "$o'brien@contoso.com", None).unwrap();
        assert!(
            url.as_str().ends_with("users('$o''brien@contoso.com')"),
            "{url}"
        );
    }

    #[test]
    fn path_characters_in_an_identifier_stay_in_one_segment() {
        let url = user_url(&app(), "a/b?c%d", None).unwrap();
        assert_eq!(
            url.as_str(),
            "https://graph.microsoft.com/v1.0/users/a%2Fb%3Fc%25d"
        );
        for bad in ["", " ", ".", ".."] {
            assert!(user_url(&app(), bad, None).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn graph_root_with_a_path_keeps_it() {
        let overrides = EndpointOverrides::parse(None, Some("http://127.0.0.1:9/graph/")).unwrap();
        let app = AppCredentials::with_client_secret(
            Endpoints::resolve(Cloud::AzurePublic, &overrides),
            "t",
            "a",
            SecretString::from("s"),
        );
        let url = user_url(&app, "id-1", None).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9/graph/v1.0/users/id-1");
    }

    #[test]
    fn leasability_follows_type_sync_and_enablement() {
        assert_eq!(user("Member", None, Some(true)).not_leasable(), None);
        assert_eq!(user("Member", Some(false), None).not_leasable(), None);
        assert_eq!(
            user("Guest", None, Some(true)).not_leasable(),
            Some(NotLeasable::Guest)
        );
        assert_eq!(
            user("Member", Some(true), Some(true)).not_leasable(),
            Some(NotLeasable::SyncedFromOnPremises)
        );
        assert_eq!(
            user("Member", None, Some(false)).not_leasable(),
            Some(NotLeasable::Disabled)
        );
        let error = user("Guest", None, None).ensure_leasable().unwrap_err();
        assert_eq!(error.reason(), "UserNotLeasable");
    }
}
