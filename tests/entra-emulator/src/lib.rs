//! A stateful emulator of Entra ID's token endpoint and the Microsoft Graph v1.0 user endpoints
//! (a user's memberships and sign-in methods included),
//! with fault injection, for the operator's tests and demos.
//!
//! One loopback HTTP server answers all of it, so the authority host and the Graph root are both
//! [`Emulator::base_url`], and the token scope is `{base_url}/.default`:
//!
//! ```no_run
//! # async fn demo() -> Result<(), entra_emulator::Error> {
//! use entra_emulator::{Config, Emulator, Fault, FaultPlan, Operation, sample};
//!
//! let emulator = Emulator::start(Config::sample()).await?;
//! let token_url = format!("{}/{}/oauth2/v2.0/token", emulator.base_url(), sample::TENANT_ID);
//! emulator.set_faults(FaultPlan::script([Fault::throttle(Some("2"))]).only([Operation::SetPassword]));
//! // ... drive the client under test ...
//! assert_eq!(emulator.counters().operation(Operation::SetPassword), 2);
//! # Ok(()) }
//! ```
//!
//! Entra's throttling is off unless a test sets a [`Quota`] ([`Emulator::set_quota`]): token
//! buckets per app and tenant, per tenant and per app for writes, and resource units per app and
//! tenant for reads, refusing with Entra's 429 and `x-ms-throttle-*` headers. One app can be given
//! its own [`FaultPlan`] ([`Emulator::set_app_faults`]) while the others keep the global one.
//!
//! Behaviour follows `shared/entra-graph.md`; the test-only endpoints live under `/_emulator/`
//! (listed in the crate's README): `/signin`, `/counters`, `/requests`, `/users/{id}`, `/users/{id}/methods`,
//! `/clock`, `/apps/{clientId}`, `/apps/{clientId}/faults`, `/faults`, `/quota`.
//! The password policy that resets meet is [`check_password`], for tests that check passwords
//! without a server.

mod access_pass;
mod admin;
mod assertion;
mod authz;
mod certificate;
mod config;
mod counters;
mod credential;
mod directory;
mod error;
mod fault_plans;
mod fault_replies;
mod faults;
mod federation;
mod graph_path;
mod graph_request;
mod issuer_keys;
mod jwt;
mod memberships;
mod methods;
mod operation;
mod password;
mod quota;
mod recording;
mod replay;
mod request_log;
mod resource_units;
mod responses;
pub mod sample;
mod server;
mod state;
mod throttle_headers;
mod token;
mod token_buckets;
mod user_json;
mod user_view;
mod users;

pub use access_pass::{PassDetails, PassPolicy};
pub use config::Config;
pub use counters::Counters;
pub use credential::CredentialKind;
pub use directory::{App, Tenant, User, UserType};
pub use error::Error;
pub use faults::{Fault, FaultPlan};
pub use federation::{FederatedCredential, TOKEN_EXCHANGE_AUDIENCE};
pub use methods::{MethodKind, PASSWORD_METHOD_ID, SignInMethod};
pub use operation::Operation;
pub use password::{PasswordRejection, check_password};
pub use quota::{Bucket, Quota};
pub use request_log::RequestRecord;
pub use server::Emulator;
pub use state::SignInResult;
pub use user_view::UserView;
