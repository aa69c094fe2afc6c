//! A user's sign-in methods besides the password, as Graph v1.0 serves them:
//! `GET /users/{id}/authentication/methods` lists them (the password method first) and
//! `DELETE /users/{id}/authentication/{kind}Methods/{methodId}` removes one (204; 404 once gone;
//! the password method cannot be removed). Tests register methods as a holder would, through
//! `Emulator::register_method` or `POST /_emulator/users/{id}/methods`.

use axum::{Json, http::StatusCode, response::IntoResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    access_pass::PassDetails,
    authz::{self, Action},
    graph_request::GraphRequest,
    operation::Operation,
    recording::Reply,
    responses::GraphError,
    users::find_user,
};

/// The id Graph gives every user's password method.
pub const PASSWORD_METHOD_ID: &str = "28c10230-6103-485e-b985-444c60001490";

/// A method a user registered (or an administrator registered for it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignInMethod {
    pub id: String,
    pub kind: MethodKind,
    /// Registered through the test hook, as a lease's holder would (not configured up front).
    #[serde(default)]
    pub by_holder: bool,
    /// A phone's number or an email method's address, listed as `phoneNumber`/`emailAddress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A Temporary Access Pass's code and lifetime: kept by the emulator, never shown again.
    #[serde(skip)]
    pub pass: Option<PassDetails>,
}

/// The kinds of method Graph lists, named as in their collections (`fido2Methods`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MethodKind {
    Fido2,
    MicrosoftAuthenticator,
    Phone,
    SoftwareOath,
    TemporaryAccessPass,
    WindowsHelloForBusiness,
    Email,
}

impl MethodKind {
    pub const ALL: [MethodKind; 7] = [
        MethodKind::Fido2,
        MethodKind::MicrosoftAuthenticator,
        MethodKind::Phone,
        MethodKind::SoftwareOath,
        MethodKind::TemporaryAccessPass,
        MethodKind::WindowsHelloForBusiness,
        MethodKind::Email,
    ];

    fn stem(self) -> &'static str {
        match self {
            MethodKind::Fido2 => "fido2",
            MethodKind::MicrosoftAuthenticator => "microsoftAuthenticator",
            MethodKind::Phone => "phone",
            MethodKind::SoftwareOath => "softwareOath",
            MethodKind::TemporaryAccessPass => "temporaryAccessPass",
            MethodKind::WindowsHelloForBusiness => "windowsHelloForBusiness",
            MethodKind::Email => "email",
        }
    }

    /// `#microsoft.graph.fido2AuthenticationMethod` and so on.
    pub fn odata_type(self) -> String {
        format!("#microsoft.graph.{}AuthenticationMethod", self.stem())
    }

    /// The kind whose collection segment (`fido2Methods`) this is.
    pub fn of_collection(segment: &str) -> Option<MethodKind> {
        let stem = segment.strip_suffix("Methods")?;
        Self::ALL.into_iter().find(|kind| kind.stem() == stem)
    }
}

/// `GET /users/{id}/authentication/methods`.
pub(crate) fn list_methods(request: &GraphRequest, key: &str) -> Reply {
    request.handle(Operation::ListMethods, |state, grant| {
        if !authz::may(grant, Action::ReadMethods) {
            return Err(GraphError::insufficient_privileges());
        }
        let user = find_user(state, grant, key)?;
        if !authz::may_touch(grant, Action::ReadMethods, user) {
            return Err(GraphError::insufficient_privileges());
        }
        let password = json!({
            "@odata.type": "#microsoft.graph.passwordAuthenticationMethod",
            "id": PASSWORD_METHOD_ID,
        });
        let others = user.methods.iter().map(|method| {
            let mut listed = json!({ "@odata.type": method.kind.odata_type(), "id": method.id });
            let detail_name = match method.kind {
                MethodKind::Phone => Some("phoneNumber"),
                MethodKind::Email => Some("emailAddress"),
                _ => None,
            };
            if let (Some(name), Some(detail)) = (detail_name, &method.detail) {
                listed[name] = json!(detail);
            }
            listed
        });
        let context = format!(
            "{}/v1.0/$metadata#users('{}')/authentication/methods",
            request.shared.base_url, user.id
        );
        let value: Vec<_> = std::iter::once(password).chain(others).collect();
        Ok(Json(json!({ "@odata.context": context, "value": value })).into_response())
    })
}

/// `DELETE /users/{id}/authentication/{collection}/{methodId}`.
pub(crate) fn delete_method(
    request: &GraphRequest,
    key: &str,
    collection: &str,
    method_id: &str,
) -> Reply {
    request.handle(Operation::DeleteMethod, |state, grant| {
        if !authz::may(grant, Action::RemoveMethods) {
            return Err(GraphError::insufficient_privileges());
        }
        let user = find_user(state, grant, key)?;
        if !authz::may_touch(grant, Action::RemoveMethods, user) {
            return Err(GraphError::insufficient_privileges());
        }
        if collection == "passwordMethods" {
            return Err(GraphError::bad_request(
                "The password authentication method cannot be deleted.",
            ));
        }
        let Some(kind) = MethodKind::of_collection(collection) else {
            return Err(GraphError::bad_request(format!(
                "Resource not found for the segment '{collection}'."
            )));
        };
        let user = state
            .find_user_mut(Some(&grant.tenant_id), key)
            .expect("user found earlier under the same lock");
        let before = user.methods.len();
        user.methods
            .retain(|method| !(method.kind == kind && method.id.eq_ignore_ascii_case(method_id)));
        if user.methods.len() == before {
            return Err(GraphError::new(
                StatusCode::NOT_FOUND,
                "itemNotFound",
                format!("The authentication method '{method_id}' was not found."),
            ));
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collections_and_types_name_each_kind() {
        for kind in MethodKind::ALL {
            let collection = format!("{}Methods", kind.stem());
            assert_eq!(MethodKind::of_collection(&collection), Some(kind));
            assert!(kind.odata_type().ends_with("AuthenticationMethod"));
        }
        assert_eq!(MethodKind::of_collection("passwordMethods"), None);
        assert_eq!(MethodKind::of_collection("fido2"), None);
    }
}
