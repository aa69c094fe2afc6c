//! Sign-in methods besides the password: listing a user's and removing one (the app needs
//! `UserAuthenticationMethod.ReadWrite.All`).

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use super::client::{GraphClient, GraphRequest};
use super::credentials::AppCredentials;
use super::error::GraphError;
use super::users::{failure, user_url};

/// The `@odata.type` of the password method, which Graph lists and never deletes.
const PASSWORD_TYPE: &str = "#microsoft.graph.passwordAuthenticationMethod";
/// The Graph application permission that removing methods needs.
pub const METHODS_PERMISSION: &str = "UserAuthenticationMethod.ReadWrite.All";

/// One of a user's sign-in methods other than the password. Its details (a phone number, an
/// email address) are never kept: only a digest of them, in its fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignInMethod {
    pub id: String,
    /// What tells this method from a changed one: its id, and for the kinds whose ids Graph
    /// fixes (a phone's, an email's) a digest of the number or address, so that a holder who
    /// changed the number of a phone present before the lease has that phone deleted.
    pub fingerprint: String,
    /// The collection it is deleted from, such as `fido2Methods`.
    collection: String,
}

impl SignInMethod {
    /// The method a Graph `@odata.type` names, with its phone number or email address if it has
    /// one; `None` for the password (or an unreadable type).
    fn with_detail(odata_type: &str, id: String, detail: Option<&str>) -> Option<SignInMethod> {
        if odata_type.eq_ignore_ascii_case(PASSWORD_TYPE) {
            return None;
        }
        let stem = odata_type
            .strip_prefix("#microsoft.graph.")?
            .strip_suffix("AuthenticationMethod")?;
        if stem.is_empty() || !stem.chars().all(|c| c.is_ascii_alphanumeric()) {
            return None;
        }
        let fingerprint = match detail {
            Some(detail) => format!("{id}#{}", digest(detail)),
            None => id.clone(),
        };
        Some(SignInMethod {
            id,
            fingerprint,
            collection: format!("{stem}Methods"),
        })
    }

    /// A Temporary Access Pass by its id.
    pub fn access_pass(id: &str) -> SignInMethod {
        SignInMethod {
            id: id.to_owned(),
            fingerprint: id.to_owned(),
            collection: "temporaryAccessPassMethods".into(),
        }
    }

    /// What kind of method it is, for messages (`fido2`, `phone`, ...).
    pub fn kind(&self) -> &str {
        self.collection.trim_end_matches("Methods")
    }
}

#[derive(Deserialize)]
struct MethodList {
    value: Vec<ListedMethod>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedMethod {
    #[serde(rename = "@odata.type")]
    odata_type: String,
    id: String,
    phone_number: Option<String>,
    email_address: Option<String>,
}

/// The first 16 hex digits of the SHA-256 of a method's detail: enough to see it changed, too
/// little to keep the number or address itself in a claim.
fn digest(detail: &str) -> String {
    let sum = ring::digest::digest(&ring::digest::SHA256, detail.as_bytes());
    sum.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `…/users/{id}/authentication/` followed by `segments` (each escaped as one segment).
pub(super) fn authentication_url(
    app: &AppCredentials,
    user_id: &str,
    segments: &[&str],
) -> Result<Url, GraphError> {
    let mut url = user_url(app, user_id, Some("authentication"))?;
    url.path_segments_mut()
        .map_err(|()| GraphError::Config("the Graph root cannot hold a path".into()))?
        .extend(segments);
    Ok(url)
}

impl GraphClient {
    /// The user's sign-in methods besides the password (needs `UserAuthenticationMethod.Read.All`
    /// or `.ReadWrite.All`).
    pub async fn list_sign_in_methods(
        &self,
        app: &AppCredentials,
        user_id: &str,
    ) -> Result<Vec<SignInMethod>, GraphError> {
        const OPERATION: &str = "list sign-in methods";
        let url = authentication_url(app, user_id, &["methods"])?;
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
        let list: MethodList =
            serde_json::from_slice(&response.body).map_err(|_| GraphError::MalformedResponse {
                operation: OPERATION,
                status: response.status.as_u16(),
                diagnostics: response.graph_diagnostics(),
            })?;
        Ok(list
            .value
            .into_iter()
            .filter_map(|method| {
                let detail = method.phone_number.or(method.email_address);
                SignInMethod::with_detail(&method.odata_type, method.id, detail.as_deref())
            })
            .collect())
    }

    /// Deletes one of the user's methods; one already gone (or a user gone) is no error.
    pub async fn delete_sign_in_method(
        &self,
        app: &AppCredentials,
        user_id: &str,
        method: &SignInMethod,
    ) -> Result<(), GraphError> {
        const OPERATION: &str = "delete a sign-in method";
        let url = authentication_url(app, user_id, &[&method.collection, &method.id])?;
        let request = GraphRequest {
            operation: OPERATION,
            method: Method::DELETE,
            url,
            json_body: None,
        };
        let response = self.call(app, &request).await?;
        match response.status {
            status if status.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Ok(()),
            _ => Err(failure(OPERATION, user_id, &response)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(odata_type: &str, id: String) -> Option<SignInMethod> {
        SignInMethod::with_detail(odata_type, id, None)
    }

    #[test]
    fn each_kind_is_deleted_from_its_collection_and_the_password_never() {
        let fido = of("#microsoft.graph.fido2AuthenticationMethod", "a".into());
        assert_eq!(
            fido.as_ref().map(|m| m.collection.as_str()),
            Some("fido2Methods")
        );
        assert_eq!(fido.map(|m| m.kind().to_owned()), Some("fido2".into()));
        let app = of(
            "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
            "b".into(),
        );
        assert_eq!(
            app.map(|m| m.collection),
            Some("microsoftAuthenticatorMethods".into())
        );
        assert_eq!(of(PASSWORD_TYPE, "c".into()), None);
        assert_eq!(of("#microsoft.graph.x/../y", "d".into()), None);
        assert_eq!(of("phone", "e".into()), None);
    }

    #[test]
    fn a_changed_number_changes_the_fingerprint_not_the_id() {
        let phone = "#microsoft.graph.phoneAuthenticationMethod";
        let id = "3179e48a-750b-4051-897c-87b9720928f7";
        let before = SignInMethod::with_detail(phone, id.into(), Some("+1 555 0100")).unwrap();
        let after = SignInMethod::with_detail(phone, id.into(), Some("+1 555 0199")).unwrap();
        assert_eq!(before.id, after.id);
        assert_ne!(before.fingerprint, after.fingerprint);
        assert!(
            !before.fingerprint.contains("555"),
            "{}",
            before.fingerprint
        );
        let fido = of("#microsoft.graph.fido2AuthenticationMethod", "f".into());
        assert_eq!(fido.map(|m| m.fingerprint), Some("f".into()));
    }
}
