//! `POST /{tenant}/oauth2/v2.0/token`: the client-credentials grant with a client secret or a
//! client assertion (certificate or federated), with Entra's errors.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Extension, Form, Json,
    extract::{Path, State, rejection::FormRejection},
    http::StatusCode,
    response::IntoResponse,
};
use rand::{Rng, distr::Alphanumeric};
use serde::Deserialize;
use serde_json::json;

use crate::{
    assertion::{check_certificate_assertion, replayed},
    credential::{CredentialKind, is_certificate_assertion},
    directory::App,
    fault_replies::{self, Api},
    federation::check_federated_assertion,
    jwt::Jwt,
    operation::Operation,
    recording::Reply,
    responses::{AadError, RequestIds},
    state::{Shared, State as EmulatorState},
};

/// What an access token stands for. Permissions and roles are a snapshot taken at issue time:
/// as in Entra, grants changed later show only in tokens issued later.
#[derive(Clone, Debug)]
pub struct Grant {
    /// The client id of the app the token was issued to.
    pub app_id: String,
    pub tenant_id: String,
    pub permissions: Vec<String>,
    pub directory_roles: Vec<String>,
    pub expires_at: Instant,
}

impl Grant {
    #[cfg(test)]
    pub fn for_test(permissions: &[&str], roles: &[&str]) -> Grant {
        Grant {
            app_id: String::new(),
            tenant_id: String::new(),
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            directory_roles: roles.iter().map(|r| r.to_string()).collect(),
            expires_at: Instant::now() + Duration::from_secs(60),
        }
    }
}

/// The form fields Entra reads; everything optional so that absence gets Entra's own error.
#[derive(Deserialize)]
pub struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    scope: Option<String>,
}

pub async fn issue_token(
    State(shared): State<Arc<Shared>>,
    Extension(ids): Extension<RequestIds>,
    Path(tenant): Path<String>,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Reply {
    let operation = Operation::Token;
    let credential = form.as_ref().ok().map(|Form(request)| {
        CredentialKind::of(
            request.client_id.as_deref().unwrap_or_default(),
            request.client_secret.as_deref(),
            request.client_assertion.as_deref(),
        )
    });
    let app_id = form
        .as_ref()
        .ok()
        .and_then(|Form(request)| request.client_id.clone());
    let latency = shared.lock().faults.injector(app_id.as_deref()).latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let fault = shared
        .lock()
        .faults
        .injector(app_id.as_deref())
        .draw(operation);
    if let Some(reply) = fault_replies::before_effect(
        Api::Token,
        operation,
        fault.as_ref(),
        &ids,
        &shared.base_url,
        None,
    ) {
        return reply
            .with_credential(credential)
            .with_app(app_id.as_deref());
    }
    let response = match form {
        Ok(Form(request)) => match issue(&shared, &tenant, &request).await {
            Ok(body) => Json(body).into_response(),
            Err(error) => error.into_response(&ids, &shared.base_url),
        },
        Err(rejection) => AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            format!("The request body must be form-encoded ({rejection})."),
        )
        .into_response(&ids, &shared.base_url),
    };
    fault_replies::after_effect(Api::Token, operation, fault, response)
        .with_credential(credential)
        .with_app(app_id.as_deref())
}

/// The tenant and app a request names, copied out of the state so that checking an assertion
/// can await an issuer without holding the lock.
struct Client {
    tenant_id: String,
    /// The token endpoint under each name of the tenant: what an assertion's `aud` may be.
    token_endpoints: Vec<String>,
    app: App,
}

/// Checks the request in Entra's order and stores a new token; returns the JSON body.
async fn issue(
    shared: &Shared,
    tenant_name: &str,
    request: &TokenRequest,
) -> Result<serde_json::Value, AadError> {
    let client = identify_client(&shared.lock(), tenant_name, request, &shared.base_url)?;
    check_credential(shared, &client, request).await?;

    let mut state = shared.lock();
    let grant = grant_for(&client.tenant_id, &client.app, state.token_lifetime);
    let access_token = new_access_token();
    let now = Instant::now();
    state.tokens.retain(|_, g| g.expires_at > now);
    state.tokens.insert(access_token.clone(), grant);

    let seconds = state.token_lifetime.as_secs();
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": seconds,
        "ext_expires_in": seconds,
        "access_token": access_token,
    }))
}

fn identify_client(
    state: &EmulatorState,
    tenant_name: &str,
    request: &TokenRequest,
    base_url: &str,
) -> Result<Client, AadError> {
    check_grant_type(request)?;
    let tenant = state
        .tenants
        .iter()
        .find(|t| t.is_named(tenant_name))
        .ok_or_else(|| unknown_tenant(tenant_name))?;
    let client_id = request
        .client_id
        .as_deref()
        .ok_or_else(|| missing_parameter("'client_id'"))?;
    let app = tenant
        .app(client_id)
        .ok_or_else(|| unknown_app(client_id, &tenant.id))?;
    check_scope(request, base_url)?;
    let token_endpoints = std::iter::once(&tenant.id)
        .chain(&tenant.domains)
        .map(|name| format!("{base_url}/{name}/oauth2/v2.0/token"))
        .collect();
    Ok(Client {
        tenant_id: tenant.id.clone(),
        token_endpoints,
        app: app.clone(),
    })
}

fn check_grant_type(request: &TokenRequest) -> Result<(), AadError> {
    match request.grant_type.as_deref() {
        Some("client_credentials") => Ok(()),
        None => Err(missing_parameter("'grant_type'")),
        Some(other) => Err(AadError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

/// The scope names the resource, and this server is the only Graph it knows.
fn check_scope(request: &TokenRequest, base_url: &str) -> Result<(), AadError> {
    let expected = format!("{base_url}/.default");
    let scope = request.scope.as_deref().unwrap_or_default();
    if scope == expected {
        return Ok(());
    }
    Err(AadError::new(
        StatusCode::BAD_REQUEST,
        "invalid_scope",
        70011,
        format!(
            "The provided value for the input parameter 'scope' is not valid. The scope '{scope}' is not valid; expected '{expected}'."
        ),
    ))
}

/// A secret must be one of the app's secret values; an assertion must be signed by one of its
/// certificates or match one of its federated credentials.
async fn check_credential(
    shared: &Shared,
    client: &Client,
    request: &TokenRequest,
) -> Result<(), AadError> {
    let app = &client.app;
    match (&request.client_secret, &request.client_assertion) {
        (Some(secret), _) if app.secrets.iter().any(|s| s == secret) => Ok(()),
        (Some(_), _) => Err(AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                app.client_id
            ),
        )),
        (None, Some(assertion)) => check_assertion(shared, client, request, assertion).await,
        (None, None) => Err(AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )),
    }
}

async fn check_assertion(
    shared: &Shared,
    client: &Client,
    request: &TokenRequest,
    assertion: &str,
) -> Result<(), AadError> {
    const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
    match request.client_assertion_type.as_deref() {
        Some(JWT_BEARER) => {}
        None => return Err(missing_parameter("'client_assertion_type'")),
        Some(other) => {
            return Err(AadError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                50027,
                format!(
                    "The client_assertion_type '{other}' is not supported; expected '{JWT_BEARER}'."
                ),
            ));
        }
    }
    let jwt = Jwt::parse(assertion).map_err(|why| {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50027,
            format!("JWT token is invalid or malformed: {why}."),
        )
    })?;
    let now = jiff::Timestamp::now().as_second();
    let app = &client.app;
    if !is_certificate_assertion(&jwt, &app.client_id) {
        return check_federated_assertion(&jwt, app, &shared.issuer_keys, now).await;
    }
    let accepted = check_certificate_assertion(&jwt, app, &client.token_endpoints, now)?;
    let first_use =
        shared
            .lock()
            .seen_assertions
            .first_use(&app.client_id, &accepted.jti, accepted.exp, now);
    if first_use {
        Ok(())
    } else {
        Err(replayed(&accepted.jti))
    }
}

fn missing_parameter(name: &str) -> AadError {
    AadError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900144,
        format!("The request body must contain the following parameter: {name}."),
    )
}

fn unknown_tenant(tenant_name: &str) -> AadError {
    AadError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        90002,
        format!(
            "Tenant '{tenant_name}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
        ),
    )
}

fn unknown_app(client_id: &str, tenant_id: &str) -> AadError {
    AadError::new(
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant_id}'. This can happen if the application has not been installed by the administrator of the tenant."
        ),
    )
}

fn grant_for(tenant_id: &str, app: &App, lifetime: Duration) -> Grant {
    Grant {
        app_id: app.client_id.clone(),
        tenant_id: tenant_id.to_owned(),
        permissions: app.permissions.clone(),
        directory_roles: app.directory_roles.clone(),
        expires_at: Instant::now() + lifetime,
    }
}

/// Opaque on purpose: clients must not parse Entra's tokens.
fn new_access_token() -> String {
    let random: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(64)
        .map(char::from)
        .collect();
    format!("emu.{random}")
}

/// The grant of a live token in `Authorization: Bearer <token>`, or why there is none.
pub fn authenticate(
    state: &EmulatorState,
    authorization: Option<&str>,
) -> Result<Grant, &'static str> {
    let token = bearer_token(authorization).ok_or("Access token is empty.")?;
    let grant = state
        .tokens
        .get(token)
        .ok_or("Access token validation failure. Invalid token.")?;
    if grant.expires_at <= Instant::now() {
        return Err("Lifetime validation failed, the token is expired.");
    }
    Ok(grant.clone())
}

/// The app and tenant a bearer token was issued to, expired or not: whom a Graph request's
/// fault plan and request record are for, before the request is authenticated.
pub fn caller(state: &EmulatorState, authorization: Option<&str>) -> Option<Caller> {
    let grant = state.tokens.get(bearer_token(authorization)?)?;
    Some(Caller {
        app_id: grant.app_id.clone(),
        tenant_id: grant.tenant_id.clone(),
    })
}

/// Who sent a Graph request, as its token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub app_id: String,
    pub tenant_id: String,
}

fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    authorization
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|token| !token.is_empty())
}
