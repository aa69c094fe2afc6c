//! Graph v1.0 user endpoints: `GET` and `PATCH /users/{id}`, `POST /users/{id}/revokeSignInSessions`.
//!
//! Each handler checks in Graph's order: token (401), app permission and role (403), the user (404),
//! rights over that user (403), what the user allows (400), then applies the effect atomically.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderMap, Method, StatusCode, Uri, header::AUTHORIZATION},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use crate::{
    authz::{self, Action},
    directory::{User, UserType},
    fault_replies::{self, Api},
    graph_path::parse_user_path,
    operation::Operation,
    password::check_password,
    recording::Reply,
    responses::{RequestIds, graph_error, insufficient_privileges},
    state::{Shared, State as EmulatorState},
    token::{Grant, authenticate},
    user_json::{parse_select, user_json},
};

/// A Graph request as the handlers need it.
struct GraphRequest<'a> {
    shared: &'a Shared,
    ids: &'a RequestIds,
    authorization: Option<&'a str>,
}

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

/// Every `/v1.0/...` request: parses the path, then hands over by method.
pub async fn dispatch(
    State(shared): State<Arc<Shared>>,
    Extension(ids): Extension<RequestIds>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Bytes,
) -> Reply {
    let request = GraphRequest {
        shared: &shared,
        ids: &ids,
        authorization: headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()),
    };
    let path = match parse_user_path(uri.path()) {
        Ok(path) => path,
        Err(segment) => {
            let message = format!("Resource not found for the segment '{segment}'.");
            return Reply::new(
                None,
                graph_error(StatusCode::BAD_REQUEST, "BadRequest", &message, &ids),
            );
        }
    };
    let select = query
        .as_ref()
        .ok()
        .and_then(|Query(q)| q.get("$select"))
        .map(String::as_str);
    match (method, path.revoke_sign_in_sessions) {
        (Method::GET, false) => get_user(&request, &path.user, select),
        (Method::PATCH, false) => patch_user(&request, &path.user, &body),
        (Method::POST, true) => revoke_sign_in_sessions(&request, &path.user),
        _ => Reply::new(
            None,
            graph_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
                &ids,
            ),
        ),
    }
}

fn get_user(request: &GraphRequest, key: &str, select: Option<&str>) -> Reply {
    request.handle(Operation::GetUser, |state, grant| {
        if !authz::may(grant, Action::ReadUser) {
            return Err(insufficient_privileges(request.ids));
        }
        let selected = parse_select(select).map_err(|name| {
            let message = format!("Parsing OData Select and Expand failed: Could not find a property named '{name}' on type 'microsoft.graph.user'.");
            graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", &message, request.ids)
        })?;
        let user = find_user(state, grant, key, request.ids)?;
        Ok(Json(user_json(user, selected.as_deref(), &request.shared.base_url)).into_response())
    })
}

fn patch_user(request: &GraphRequest, key: &str, body: &[u8]) -> Reply {
    let patch: Result<UserPatch, _> = serde_json::from_slice(body);
    let operation = patch
        .as_ref()
        .map_or(Operation::UpdateUser, UserPatch::operation);
    request.handle(operation, |state, grant| {
        let patch = patch.map_err(|error| {
            let message = format!("Unable to read JSON request payload: {error}");
            graph_error(
                StatusCode::BAD_REQUEST,
                "Request_BadRequest",
                &message,
                request.ids,
            )
        })?;
        let mut actions = Vec::new();
        if patch.new_password().is_some() {
            actions.push(Action::ResetPassword);
        }
        if patch.account_enabled.is_some() {
            actions.push(Action::SetAccountEnabled);
        }
        if !actions.iter().all(|action| authz::may(grant, *action)) {
            return Err(insufficient_privileges(request.ids));
        }
        let user = find_user(state, grant, key, request.ids)?;
        if !actions
            .iter()
            .all(|action| authz::may_touch(grant, *action, user))
        {
            return Err(insufficient_privileges(request.ids));
        }
        if let Some(password) = patch.new_password() {
            refuse_unsettable_password(user, request.ids)?;
            check_password(password, user).map_err(|rejection| {
                graph_error(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    rejection.message(),
                    request.ids,
                )
            })?;
        }
        if patch.account_enabled.is_some() && user.on_premises_sync_enabled {
            return Err(synced_user_error(request.ids));
        }
        let user = find_user_mut(state, grant, key);
        apply(user, patch);
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

fn revoke_sign_in_sessions(request: &GraphRequest, key: &str) -> Reply {
    request.handle(Operation::RevokeSignInSessions, |state, grant| {
        if !authz::may(grant, Action::RevokeSessions) {
            return Err(insufficient_privileges(request.ids));
        }
        let user = find_user(state, grant, key, request.ids)?;
        if !authz::may_touch(grant, Action::RevokeSessions, user) {
            return Err(insufficient_privileges(request.ids));
        }
        // Documented: revocation does nothing for guests, yet answers success.
        if user.user_type != UserType::Guest {
            find_user_mut(state, grant, key).sign_in_sessions_valid_from_date_time =
                Some(Utc::now());
        }
        let context = format!("{}/v1.0/$metadata#Edm.Boolean", request.shared.base_url);
        Ok(Json(json!({ "@odata.context": context, "value": true })).into_response())
    })
}

impl GraphRequest<'_> {
    /// The steps every Graph operation shares: draw a fault, answer it if it strikes first,
    /// authenticate, run `effect` under the state lock, then let a late fault act on the result.
    fn handle(
        &self,
        operation: Operation,
        effect: impl FnOnce(&mut EmulatorState, &Grant) -> Result<Response, Response>,
    ) -> Reply {
        let fault = self.shared.lock().faults.draw(operation);
        let early = fault_replies::before_effect(
            Api::Graph,
            operation,
            fault.as_ref(),
            self.ids,
            &self.shared.base_url,
        );
        if let Some(reply) = early {
            return reply;
        }
        let response = {
            let mut state = self.shared.lock();
            match authenticate(&state, self.authorization) {
                Ok(grant) => effect(&mut state, &grant).unwrap_or_else(|error| error),
                Err(message) => graph_error(
                    StatusCode::UNAUTHORIZED,
                    "InvalidAuthenticationToken",
                    message,
                    self.ids,
                ),
            }
        };
        fault_replies::after_effect(Api::Graph, operation, fault, response)
    }
}

fn find_user<'s>(
    state: &'s EmulatorState,
    grant: &Grant,
    key: &str,
    ids: &RequestIds,
) -> Result<&'s User, Response> {
    state.find_user(Some(&grant.tenant_id), key).map(|(_, user)| user).ok_or_else(|| {
        let message = format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present.");
        graph_error(StatusCode::NOT_FOUND, "Request_ResourceNotFound", &message, ids)
    })
}

/// Only after `find_user` succeeded under the same lock, so the user is there.
fn find_user_mut<'s>(state: &'s mut EmulatorState, grant: &Grant, key: &str) -> &'s mut User {
    state
        .find_user_mut(Some(&grant.tenant_id), key)
        .expect("user found earlier under the same lock")
}

/// Guests' and synced users' passwords live with their home directory, not in this tenant.
fn refuse_unsettable_password(user: &User, ids: &RequestIds) -> Result<(), Response> {
    if user.on_premises_sync_enabled {
        return Err(synced_user_error(ids));
    }
    if user.user_type == UserType::Guest {
        let message = "The passwordProfile property cannot be used for federated users.";
        return Err(graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            message,
            ids,
        ));
    }
    Ok(())
}

fn synced_user_error(ids: &RequestIds) -> Response {
    let message = "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.";
    graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", message, ids)
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
        user.password_last_set_date_time = Some(Utc::now());
    }
    if let Some(enabled) = patch.account_enabled {
        user.account_enabled = enabled;
    }
}
