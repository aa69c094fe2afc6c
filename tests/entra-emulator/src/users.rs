//! Graph v1.0 user endpoints: `GET` and `PATCH /users/{id}`, `POST /users/{id}/revokeSignInSessions`
//! (`GET /users/{id}/transitiveMemberOf` is in `memberships`, sign-in methods in `methods`).
//!
//! Each handler checks in Graph's order: token (401), app permission and role (403), the user (404),
//! rights over that user (403), what the user allows (400), then applies the effect atomically.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderMap, Method, StatusCode, Uri, header::AUTHORIZATION},
    response::IntoResponse,
};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::json;

use crate::{
    access_pass::create_pass,
    authz::{self, Action},
    directory::{User, UserType},
    graph_path::{UserAction, parse_user_path},
    graph_request::GraphRequest,
    memberships::list_memberships,
    methods::{delete_method, list_methods},
    operation::Operation,
    password::check_password,
    recording::Reply,
    resource_units::Cost,
    responses::{GraphError, RequestIds},
    state::{Shared, State as EmulatorState},
    token::{Grant, caller},
    user_json::{parse_select, user_json},
};

/// The body of `PATCH /users/{id}` as far as the emulator acts on it; other properties are
/// accepted and ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserPatch {
    password_profile: Option<PasswordProfile>,
    account_enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PasswordProfile {
    password: Option<String>,
    force_change_password_next_sign_in: Option<bool>,
    force_change_password_next_sign_in_with_mfa: Option<bool>,
}

impl UserPatch {
    fn new_password(&self) -> Option<&str> {
        self.password_profile.as_ref()?.password.as_deref()
    }

    fn operation(&self) -> Operation {
        match (self.new_password(), self.account_enabled) {
            (Some(_), _) => Operation::SetPassword,
            (None, Some(_)) => Operation::SetAccountEnabled,
            (None, None) => Operation::UpdateUser,
        }
    }
}

/// Every `/v1.0/...` request: waits the caller's fault-plan latency, prices the request, then
/// hands over by path and method.
pub async fn dispatch(
    State(shared): State<Arc<Shared>>,
    Extension(ids): Extension<RequestIds>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Bytes,
) -> Reply {
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let caller = caller(&shared.lock(), authorization);
    let app_id = caller.as_ref().map(|caller| caller.app_id.as_str());
    let latency = shared.lock().faults.injector(app_id).latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let parameter = |name: &str| {
        query
            .as_ref()
            .ok()
            .and_then(|Query(q)| q.get(name))
            .map(String::as_str)
    };
    let (select, skip_token) = (parameter("$select"), parameter("$skiptoken"));
    let cost = Cost::of(&method, select.is_some(), parameter("$expand").is_some());
    let request = GraphRequest {
        shared: &shared,
        ids: &ids,
        authorization,
        caller: caller.as_ref(),
        cost,
    };
    route(&request, method, uri.path(), select, skip_token, body)
        .with_app(app_id)
        .with_resource_units(cost.units())
}

fn route(
    request: &GraphRequest,
    method: Method,
    path: &str,
    select: Option<&str>,
    skip_token: Option<&str>,
    body: Bytes,
) -> Reply {
    let path = match parse_user_path(path) {
        Ok(path) => path,
        Err(segment) => {
            let message = format!("Resource not found for the segment '{segment}'.");
            let error = GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", message);
            return Reply::new(None, error.into_response(request.ids));
        }
    };
    match (method, path.action) {
        (Method::GET, UserAction::None) => get_user(request, &path.user, select),
        (Method::PATCH, UserAction::None) => patch_user(request, &path.user, &body),
        (Method::POST, UserAction::RevokeSignInSessions) => {
            revoke_sign_in_sessions(request, &path.user)
        }
        (Method::GET, UserAction::TransitiveMemberOf) => {
            list_memberships(request, &path.user, select, skip_token)
        }
        (Method::GET, UserAction::Methods) => list_methods(request, &path.user),
        (Method::DELETE, UserAction::Method { collection, id }) => {
            delete_method(request, &path.user, &collection, &id)
        }
        (Method::POST, UserAction::MethodCollection(collection))
            if collection.eq_ignore_ascii_case("temporaryAccessPassMethods") =>
        {
            create_pass(request, &path.user, &body)
        }
        _ => {
            let message = "Specified HTTP method is not allowed for the request target.";
            let error = GraphError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "Request_BadRequest",
                message,
            );
            Reply::new(None, error.into_response(request.ids))
        }
    }
}

fn get_user(request: &GraphRequest, key: &str, select: Option<&str>) -> Reply {
    request.handle(Operation::GetUser, |state, grant| {
        if !authz::may(grant, Action::ReadUser) {
            return Err(GraphError::insufficient_privileges());
        }
        let selected = parse_select(select).map_err(|name| {
            GraphError::bad_request(format!(
                "Parsing OData Select and Expand failed: Could not find a property named '{name}' on type 'microsoft.graph.user'."
            ))
        })?;
        let user = find_user(state, grant, key)?;
        let body = user_json(user, selected.as_deref(), &request.shared.base_url);
        Ok(Json(body).into_response())
    })
}

fn patch_user(request: &GraphRequest, key: &str, body: &[u8]) -> Reply {
    let patch: Result<UserPatch, _> = serde_json::from_slice(body);
    let operation = patch
        .as_ref()
        .map_or(Operation::UpdateUser, UserPatch::operation);
    request.handle(operation, |state, grant| {
        let patch = patch.map_err(|error| {
            GraphError::bad_request(format!("Unable to read JSON request payload: {error}"))
        })?;
        let mut actions = Vec::new();
        if patch.new_password().is_some() {
            actions.push(Action::ResetPassword);
        }
        if patch.account_enabled.is_some() {
            actions.push(Action::SetAccountEnabled);
        }
        if !actions.iter().all(|action| authz::may(grant, *action)) {
            return Err(GraphError::insufficient_privileges());
        }
        let user = find_user(state, grant, key)?;
        if !actions
            .iter()
            .all(|action| authz::may_touch(grant, *action, user))
        {
            return Err(GraphError::insufficient_privileges());
        }
        if let Some(password) = patch.new_password() {
            refuse_unsettable_password(user)?;
            check_password(
                password,
                &user.user_principal_name,
                Some(&user.display_name),
            )
            .map_err(|rejection| GraphError::bad_request(rejection.message()))?;
        }
        if patch.account_enabled.is_some() && user.on_premises_sync_enabled {
            return Err(synced_user_error());
        }
        apply(find_user_mut(state, grant, key), patch);
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

fn revoke_sign_in_sessions(request: &GraphRequest, key: &str) -> Reply {
    request.handle(Operation::RevokeSignInSessions, |state, grant| {
        if !authz::may(grant, Action::RevokeSessions) {
            return Err(GraphError::insufficient_privileges());
        }
        let user = find_user(state, grant, key)?;
        if !authz::may_touch(grant, Action::RevokeSessions, user) {
            return Err(GraphError::insufficient_privileges());
        }
        // Documented: revocation does nothing for guests, yet answers success.
        if user.user_type != UserType::Guest {
            find_user_mut(state, grant, key).sign_in_sessions_valid_from_date_time =
                Some(Timestamp::now());
        }
        let context = format!("{}/v1.0/$metadata#Edm.Boolean", request.shared.base_url);
        Ok(Json(json!({ "@odata.context": context, "value": true })).into_response())
    })
}

pub(crate) fn find_user<'s>(
    state: &'s EmulatorState,
    grant: &Grant,
    key: &str,
) -> Result<&'s User, GraphError> {
    let found = state.find_user(Some(&grant.tenant_id), key);
    found.map(|(_, user)| user).ok_or_else(|| {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present."),
        )
    })
}

/// Only after `find_user` succeeded under the same lock, so the user is there.
fn find_user_mut<'s>(state: &'s mut EmulatorState, grant: &Grant, key: &str) -> &'s mut User {
    state
        .find_user_mut(Some(&grant.tenant_id), key)
        .expect("user found earlier under the same lock")
}

/// Guests' and synced users' passwords live with their home directory, not in this tenant.
fn refuse_unsettable_password(user: &User) -> Result<(), GraphError> {
    if user.on_premises_sync_enabled {
        return Err(synced_user_error());
    }
    if user.user_type == UserType::Guest {
        return Err(GraphError::bad_request(
            "The passwordProfile property cannot be used for federated users.",
        ));
    }
    Ok(())
}

fn synced_user_error() -> GraphError {
    GraphError::bad_request(
        "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.",
    )
}

/// A body without `passwordProfile.password` changes no password (nor its flags), as in Graph.
fn apply(user: &mut User, patch: UserPatch) {
    if let Some(profile) = patch.password_profile
        && let Some(password) = profile.password
    {
        user.password = Some(password);
        user.force_change_password_next_sign_in = profile.force_change_password_next_sign_in;
        user.force_change_password_next_sign_in_with_mfa =
            profile.force_change_password_next_sign_in_with_mfa;
        user.password_set_count += 1;
        user.password_last_set_date_time = Some(Timestamp::now());
    }
    if let Some(enabled) = patch.account_enabled {
        user.account_enabled = enabled;
    }
}
