//! The running emulator: one loopback HTTP/1 server for the token endpoint, Graph and the test
//! endpoints, and the Rust API tests use in-process.
//!
//! The accept loop is our own rather than `axum::serve` so that a fault can drop a connection
//! without any response: each connection task listens for a signal from its handler and, on it,
//! drops the connection (and with it the socket).

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
};

use axum::{
    Router,
    extract::Request,
    http::StatusCode,
    middleware,
    response::{IntoResponse, Response},
    routing::{any, post},
};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::Notify, task::JoinHandle, task::JoinSet};
use tower::ServiceExt;

use crate::{
    admin,
    config::{Config, validate_credentials},
    counters::Counters,
    directory::{App, User},
    error::Error,
    faults::FaultPlan,
    methods::{MethodKind, SignInMethod},
    quota::Quota,
    recording::record_request,
    request_log::RequestRecord,
    responses::{RequestIds, graph_error},
    state::Shared,
    token::issue_token,
    user_view::UserView,
    users,
};

/// Lets a handler have its connection dropped instead of answered.
#[derive(Clone)]
pub struct ConnectionControl(Arc<Notify>);

impl ConnectionControl {
    /// Signals the connection task to drop the connection, and never returns: the connection
    /// task drops this future along with the connection.
    pub async fn drop_now(&self) -> Response {
        self.0.notify_one();
        std::future::pending().await
    }
}

/// A running emulator. Dropping it stops the server; [`Emulator::shutdown`] also waits for that.
pub struct Emulator {
    base_url: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Starts on a free port of 127.0.0.1.
    pub async fn start(config: Config) -> Result<Emulator, Error> {
        Emulator::start_on(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Starts on `addr`, which must be a loopback address (port 0 picks a free port).
    pub async fn start_on(config: Config, addr: SocketAddr) -> Result<Emulator, Error> {
        if !addr.ip().is_loopback() {
            return Err(Error::NotLoopback(addr));
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        let base_url = format!("http://{addr}");
        let shared = Arc::new(Shared::new(config, base_url.clone())?);
        let server = tokio::spawn(accept_connections(listener, router(shared.clone())));
        tracing::info!(%base_url, "entra emulator listening");
        Ok(Emulator {
            base_url,
            addr,
            shared,
            server: Some(server),
        })
    }

    /// `http://127.0.0.1:PORT`, no trailing slash: the authority host and the Graph root.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether `password` is the user's current password and the account is enabled.
    pub fn sign_in(&self, user: &str, password: &str) -> bool {
        self.shared.lock().sign_in(None, user, password).ok
    }

    /// Whether the user's sign-in method `method_id` still exists and the account is enabled.
    pub fn sign_in_with_method(&self, user: &str, method_id: &str) -> bool {
        self.shared
            .lock()
            .sign_in_with_method(None, user, method_id)
            .ok
    }

    /// Whether this Temporary Access Pass signs the user in now, on the emulator's clock (a pass
    /// usable once is spent by a sign-in that works).
    pub fn sign_in_with_pass(&self, user: &str, pass: &str) -> bool {
        self.shared.lock().sign_in_with_pass(None, user, pass).ok
    }

    /// Whether the user holds this pass and it is inside its lifetime, without spending it: an
    /// auditor's look (a pass its holder already used once counts as issued).
    pub fn pass_is_live(&self, user: &str, pass: &str) -> bool {
        let state = self.shared.lock();
        let now = state.now();
        state.find_user(None, user).is_some_and(|(_, user)| {
            user.account_enabled
                && user
                    .methods
                    .iter()
                    .filter_map(|method| method.pass.as_ref())
                    .any(|details| details.code == pass && details.live_at(now))
        })
    }

    /// Moves the emulator's clock ahead: Temporary Access Passes end without a test waiting.
    pub fn advance_clock(&self, by: std::time::Duration) {
        self.shared.lock().clock_ahead += jiff::SignedDuration::try_from(by).unwrap_or_default();
    }

    /// Registers a sign-in method on the user as its holder would; `None` when no such user.
    pub fn register_method(&self, user: &str, kind: MethodKind) -> Option<SignInMethod> {
        self.shared.lock().register_method(user, kind)
    }

    pub fn counters(&self) -> Counters {
        self.shared.lock().counters.clone()
    }

    pub fn reset_counters(&self) {
        self.shared.lock().counters = Counters::default();
    }

    /// Token and Graph requests so far (the newest 10,000), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().request_log.records()
    }

    pub fn clear_requests(&self) {
        self.shared.lock().request_log.clear();
    }

    /// Replaces the global fault plan: the one for every app without a plan of its own.
    /// Panics on an invalid plan (a bug in the test).
    pub fn set_faults(&self, plan: FaultPlan) {
        if let Err(problem) = plan.validate() {
            panic!("invalid fault plan: {problem}");
        }
        self.shared.lock().faults.set_global(plan);
    }

    pub fn clear_faults(&self) {
        self.shared.lock().faults.set_global(FaultPlan::default());
    }

    /// The global fault plan, with the part of its script not consumed yet.
    pub fn faults(&self) -> FaultPlan {
        self.shared.lock().faults.global()
    }

    /// Gives one app (by client id, in any tenant) a fault plan of its own, used instead of the
    /// global plan for its token requests (by `client_id`) and its Graph requests (by the
    /// bearer token's app). Panics on an invalid plan or an unknown app (a bug in the test).
    pub fn set_app_faults(&self, app_client_id: &str, plan: FaultPlan) {
        if let Err(problem) = plan.validate() {
            panic!("invalid fault plan for app {app_client_id}: {problem}");
        }
        let mut state = self.shared.lock();
        if !state.has_app(app_client_id) {
            drop(state);
            panic!("no app {app_client_id} to set faults for");
        }
        state.faults.set_for_app(app_client_id, plan);
    }

    /// Returns the app to the global fault plan.
    pub fn clear_app_faults(&self, app_client_id: &str) {
        self.shared.lock().faults.clear_for_app(app_client_id);
    }

    /// The app's own fault plan, if it has one, with the part of its script not consumed yet.
    pub fn app_faults(&self, app_client_id: &str) -> Option<FaultPlan> {
        self.shared.lock().faults.for_app(app_client_id)
    }

    /// Sets Entra's throttling quota, every bucket full; `None` switches throttling off (the
    /// default). Panics on an invalid quota (a bug in the test).
    pub fn set_quota(&self, quota: Option<Quota>) {
        if let Some(Err(problem)) = quota.as_ref().map(Quota::validate) {
            panic!("invalid quota: {problem}");
        }
        self.shared.lock().quota.set(quota);
    }

    /// The quota in force, if any.
    pub fn quota(&self) -> Option<Quota> {
        self.shared.lock().quota.quota()
    }

    /// The user by object id or UPN, in any tenant.
    pub fn user(&self, id_or_upn: &str) -> Option<UserView> {
        let state = self.shared.lock();
        state
            .find_user(None, id_or_upn)
            .map(|(tenant, user)| UserView::of(&tenant.id, user))
    }

    /// Changes a user behind Graph's back; returns whether the user exists.
    pub fn update_user(&self, id_or_upn: &str, change: impl FnOnce(&mut User)) -> bool {
        let mut state = self.shared.lock();
        state.find_user_mut(None, id_or_upn).map(change).is_some()
    }

    /// Deletes a user, as an admin would in the portal; returns whether it existed.
    pub fn delete_user(&self, id_or_upn: &str) -> bool {
        let mut state = self.shared.lock();
        state
            .tenants
            .iter_mut()
            .any(|tenant| tenant.remove_user(id_or_upn))
    }

    /// Changes an app's permissions, roles or credentials; returns whether the app exists.
    /// Tokens issued before keep the permissions and roles they were issued with. Panics if the
    /// change leaves an invalid credential (a bug in the test), and then changes nothing.
    pub fn update_app(&self, client_id: &str, change: impl FnOnce(&mut App)) -> bool {
        let allow_insecure_issuers = self.shared.issuer_keys.allow_insecure_issuers();
        let mut state = self.shared.lock();
        let Some(app) = state
            .tenants
            .iter_mut()
            .find_map(|tenant| tenant.app_mut(client_id))
        else {
            return false;
        };
        let mut changed = app.clone();
        change(&mut changed);
        if let Err(problem) = validate_credentials(&changed, allow_insecure_issuers) {
            drop(state);
            panic!("invalid change to app {client_id}: {problem}");
        }
        *app = changed;
        true
    }

    /// Stops the server and waits until it no longer listens; open connections are closed.
    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let emulated = Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(issue_token))
        .route("/v1.0/{*path}", any(users::dispatch))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            record_request,
        ));
    Router::new()
        .merge(emulated)
        .nest("/_emulator", admin::router())
        .fallback(unknown_path)
        .with_state(shared)
}

async fn unknown_path(request: Request) -> Response {
    let ids = RequestIds::for_request(request.headers());
    let message = format!(
        "Resource not found for the path '{}'.",
        request.uri().path()
    );
    graph_error(StatusCode::NOT_FOUND, "BadRequest", &message, &ids).into_response()
}

/// Accepts until aborted; aborting also drops (and so closes) every connection in `connections`.
async fn accept_connections(listener: TcpListener, router: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, router.clone()));
                }
                Err(error) => {
                    // Typically out of file descriptors: pause rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, router: Router) {
    let drop_signal = Arc::new(Notify::new());
    let control = ConnectionControl(drop_signal.clone());
    let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(control.clone());
        router.clone().oneshot(request.map(axum::body::Body::new))
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        }
        // Dropping `connection` here closes the socket with no response written.
        () = drop_signal.notified() => {}
    }
}
