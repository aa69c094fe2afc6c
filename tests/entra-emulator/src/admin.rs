//! The test-only endpoints under `/_emulator/`: sign-in checks, counters, the request log, users,
//! apps, the fault plans (global and per app) and the throttling quota. No authentication: the
//! emulator only ever listens on loopback.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, patch, post, put},
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    config::validate_credentials,
    directory::{App, UserType},
    faults::FaultPlan,
    federation::FederatedCredential,
    methods::MethodKind,
    quota::Quota,
    state::Shared,
    user_view::UserView,
};

pub fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/signin", post(sign_in))
        .route("/clock", post(advance_clock))
        .route("/counters", get(counters))
        .route("/counters/reset", post(reset_counters))
        .route("/requests", get(requests).delete(clear_requests))
        .route(
            "/users/{user}",
            get(user).patch(update_user).delete(delete_user),
        )
        .route("/users/{user}/methods", post(register_method))
        .route("/apps/{client_id}", patch(update_app))
        .route(
            "/apps/{client_id}/faults",
            put(set_app_faults).get(app_faults).delete(clear_app_faults),
        )
        .route("/faults", put(set_faults).get(faults).delete(clear_faults))
        .route("/quota", put(set_quota).get(quota).delete(clear_quota))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInRequest {
    user: String,
    /// A password to try, or else `method` (the id of a sign-in method the user registered), or
    /// else `temporaryAccessPass`: a pass's code.
    password: Option<String>,
    method: Option<String>,
    #[serde(rename = "temporaryAccessPass")]
    pass: Option<String>,
    tenant: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMethod {
    kind: MethodKind,
}

/// Changes to a user that tests make behind Graph's back (an admin in the portal, a sync run).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UserChanges {
    user_type: Option<UserType>,
    on_premises_sync_enabled: Option<bool>,
    directory_roles: Option<Vec<String>>,
    role_assignable_group_member: Option<bool>,
    account_enabled: Option<bool>,
    display_name: Option<String>,
    user_principal_name: Option<String>,
}

/// Changes to an app: grants, roles and credentials. Each list given replaces the app's list.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AppChanges {
    permissions: Option<Vec<String>>,
    directory_roles: Option<Vec<String>>,
    secrets: Option<Vec<String>>,
    /// PEM certificates.
    certificates: Option<Vec<String>>,
    federated_credentials: Option<Vec<FederatedCredential>>,
}

async fn sign_in(
    State(shared): State<Arc<Shared>>,
    Json(request): Json<SignInRequest>,
) -> Response {
    let mut state = shared.lock();
    let tenant = request.tenant.as_deref();
    let result = match (&request.password, &request.method, &request.pass) {
        (Some(password), None, None) => state.sign_in(tenant, &request.user, password),
        (None, Some(method), None) => state.sign_in_with_method(tenant, &request.user, method),
        (None, None, Some(pass)) => state.sign_in_with_pass(tenant, &request.user, pass),
        _ => return bad_request("give one of password, method or temporaryAccessPass"),
    };
    Json(result).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClockAdvance {
    advance_seconds: u64,
}

/// Moves the emulator's clock ahead (Temporary Access Passes run on it); answers the new time.
async fn advance_clock(
    State(shared): State<Arc<Shared>>,
    Json(advance): Json<ClockAdvance>,
) -> Response {
    let mut state = shared.lock();
    state.clock_ahead += jiff::SignedDuration::from_secs(advance.advance_seconds as i64);
    Json(serde_json::json!({ "now": state.now().to_string() })).into_response()
}

/// Registers a sign-in method on a user, as its holder would during a lease.
async fn register_method(
    State(shared): State<Arc<Shared>>,
    Path(key): Path<String>,
    Json(method): Json<NewMethod>,
) -> Response {
    match shared.lock().register_method(&key, method.kind) {
        Some(method) => (StatusCode::CREATED, Json(method)).into_response(),
        None => not_found("user", &key),
    }
}

async fn counters(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.lock().counters.clone()).into_response()
}

async fn reset_counters(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.lock().counters = Default::default();
    StatusCode::NO_CONTENT
}

async fn requests(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.lock().request_log.records()).into_response()
}

async fn clear_requests(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.lock().request_log.clear();
    StatusCode::NO_CONTENT
}

async fn user(State(shared): State<Arc<Shared>>, Path(key): Path<String>) -> Response {
    let state = shared.lock();
    match state.find_user(None, &key) {
        Some((tenant, user)) => Json(UserView::of(&tenant.id, user)).into_response(),
        None => not_found("user", &key),
    }
}

async fn update_user(
    State(shared): State<Arc<Shared>>,
    Path(key): Path<String>,
    Json(changes): Json<UserChanges>,
) -> Response {
    let mut state = shared.lock();
    let Some(user) = state.find_user_mut(None, &key) else {
        return not_found("user", &key);
    };
    let UserChanges {
        user_type,
        on_premises_sync_enabled,
        directory_roles,
        role_assignable_group_member,
        account_enabled,
        display_name,
        user_principal_name,
    } = changes;
    set_if_some(&mut user.user_type, user_type);
    set_if_some(&mut user.on_premises_sync_enabled, on_premises_sync_enabled);
    set_if_some(&mut user.directory_roles, directory_roles);
    set_if_some(
        &mut user.role_assignable_group_member,
        role_assignable_group_member,
    );
    set_if_some(&mut user.account_enabled, account_enabled);
    set_if_some(&mut user.display_name, display_name);
    set_if_some(&mut user.user_principal_name, user_principal_name);
    let id = user.id.clone();
    let (tenant, user) = state
        .find_user(None, &id)
        .expect("user changed a moment ago");
    Json(UserView::of(&tenant.id, user)).into_response()
}

async fn delete_user(State(shared): State<Arc<Shared>>, Path(key): Path<String>) -> Response {
    let mut state = shared.lock();
    let removed = state
        .tenants
        .iter_mut()
        .any(|tenant| tenant.remove_user(&key));
    if removed {
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found("user", &key)
    }
}

async fn update_app(
    State(shared): State<Arc<Shared>>,
    Path(client_id): Path<String>,
    Json(changes): Json<AppChanges>,
) -> Response {
    let allow_insecure_issuers = shared.issuer_keys.allow_insecure_issuers();
    let mut state = shared.lock();
    let Some(app) = state
        .tenants
        .iter_mut()
        .find_map(|tenant| tenant.app_mut(&client_id))
    else {
        return not_found("app", &client_id);
    };
    // Changed on a copy, so that a refused change leaves the app as it was.
    let mut changed = app.clone();
    set_if_some(&mut changed.permissions, changes.permissions);
    set_if_some(&mut changed.directory_roles, changes.directory_roles);
    set_if_some(&mut changed.secrets, changes.secrets);
    set_if_some(&mut changed.certificates, changes.certificates);
    set_if_some(
        &mut changed.federated_credentials,
        changes.federated_credentials,
    );
    if let Err(problem) = validate_credentials(&changed, allow_insecure_issuers) {
        return bad_request(&problem);
    }
    *app = changed;
    Json(app_view(app)).into_response()
}

/// An app as tests see it: the secrets stay out.
fn app_view(app: &App) -> serde_json::Value {
    json!({
        "clientId": app.client_id,
        "displayName": app.display_name,
        "permissions": app.permissions,
        "directoryRoles": app.directory_roles,
        "secretCount": app.secrets.len(),
        "certificateCount": app.certificates.len(),
        "federatedCredentials": app.federated_credentials,
    })
}

async fn set_faults(State(shared): State<Arc<Shared>>, Json(plan): Json<FaultPlan>) -> Response {
    if let Err(problem) = plan.validate() {
        return bad_request(&problem);
    }
    shared.lock().faults.set_global(plan);
    StatusCode::NO_CONTENT.into_response()
}

async fn faults(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.lock().faults.global()).into_response()
}

async fn clear_faults(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.lock().faults.set_global(FaultPlan::default());
    StatusCode::NO_CONTENT
}

async fn set_app_faults(
    State(shared): State<Arc<Shared>>,
    Path(client_id): Path<String>,
    Json(plan): Json<FaultPlan>,
) -> Response {
    if let Err(problem) = plan.validate() {
        return bad_request(&problem);
    }
    let mut state = shared.lock();
    if !state.has_app(&client_id) {
        return not_found("app", &client_id);
    }
    state.faults.set_for_app(&client_id, plan);
    StatusCode::NO_CONTENT.into_response()
}

async fn app_faults(State(shared): State<Arc<Shared>>, Path(client_id): Path<String>) -> Response {
    match shared.lock().faults.for_app(&client_id) {
        Some(plan) => Json(plan).into_response(),
        None => not_found("fault plan of app", &client_id),
    }
}

async fn clear_app_faults(
    State(shared): State<Arc<Shared>>,
    Path(client_id): Path<String>,
) -> StatusCode {
    shared.lock().faults.clear_for_app(&client_id);
    StatusCode::NO_CONTENT
}

async fn set_quota(State(shared): State<Arc<Shared>>, Json(quota): Json<Quota>) -> Response {
    if let Err(problem) = quota.validate() {
        return bad_request(&problem);
    }
    shared.lock().quota.set(Some(quota));
    StatusCode::NO_CONTENT.into_response()
}

/// The quota in force, or `null` when throttling is off.
async fn quota(State(shared): State<Arc<Shared>>) -> Response {
    Json(shared.lock().quota.quota()).into_response()
}

async fn clear_quota(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.lock().quota.set(None);
    StatusCode::NO_CONTENT
}

fn set_if_some<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}

fn bad_request(problem: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": problem }))).into_response()
}

fn not_found(kind: &str, key: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": format!("no {kind} {key:?}") })),
    )
        .into_response()
}
