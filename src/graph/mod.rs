//! Microsoft Graph client: app-only tokens by client credentials, the user operations leasing
//! needs, and the retry and error handling that lets callers see only answers they can act on.
//!
//! - `cloud`: which endpoints a tenant's cloud uses, and operator-level overrides.
//! - `credentials`: an app's identity in a tenant, proven by a secret, a certificate
//!   (`certificate`: signed client assertions) or a federated token (`federated`).
//! - `token`: getting and caching access tokens.
//! - `users`: reading users, revoking sessions, enabling and disabling accounts.
//! - `methods`: sign-in methods besides the password, listed and removed at a lease's end.
//! - `memberships` and `protected_roles`: whether a user's roles and groups keep a User
//!   Administrator from resetting its password.
//! - `passwords`: setting a password, and generating one that Entra accepts.
//! - `scheduler`: every request's turn: Entra's budgets, pauses, priority classes, fair shares.
//! - `retry` and `http`: one attempt, and how long to back off before the next.
//! - `error`: the one error type, with condition reasons and metric labels; the causes it carries
//!   (`certificate_problem`, `not_leasable`) sit below it, with the modules that find them.
//! - `config`: the client's timeouts, retry budget and token lifetimes.

mod access_pass;
mod certificate;
mod certificate_problem;
mod client;
mod cloud;
mod config;
mod credentials;
mod error;
mod federated;
mod http;
mod memberships;
mod methods;
mod not_leasable;
mod passwords;
mod protected_roles;
mod retry;
mod scheduler;
mod token;
mod users;

pub use access_pass::IssuedPass;
pub use certificate::{AssertionAlgorithm, CertificateCredential};
pub use certificate_problem::CertificateProblem;
pub use client::GraphClient;
pub use cloud::{Cloud, EndpointOverrides, Endpoints};
pub use config::GraphClientConfig;
pub use credentials::{AppCredentials, ClientCredential};
pub use error::{Diagnostics, GraphError, QueuedBecause, TransientFailure, TransientKind};
pub use federated::{FederatedTokenFile, FederatedTokenSource};
pub use methods::{METHODS_PERMISSION, SignInMethod};
pub use not_leasable::NotLeasable;
pub use protected_roles::Protection;
pub use retry::RetryPolicy;
pub use scheduler::{Budget, Budgets, Class, Purpose};
pub use users::GraphUser;
