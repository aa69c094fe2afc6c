//! The directory the emulator serves: tenants, their apps and their users.
//!
//! These types are both the YAML configuration and the live state, so a test that changes a user
//! through `Emulator::update_user` edits exactly what the YAML described.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::access_pass::PassPolicy;
use crate::federation::FederatedCredential;
use crate::methods::SignInMethod;

/// One Entra ID tenant.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tenant {
    /// The tenant GUID.
    pub id: String,
    /// Verified domains; the token URL may name the tenant by any of them.
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub apps: Vec<App>,
    #[serde(default)]
    pub users: Vec<User>,
    /// The authentication methods policy's Temporary Access Pass configuration.
    #[serde(default)]
    pub temporary_access_pass_policy: PassPolicy,
}

/// An app registration with its service principal: credentials, granted application permissions
/// (admin consent) and the directory roles its service principal holds.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct App {
    pub client_id: String,
    #[serde(default)]
    pub display_name: String,
    /// Valid client secret values (not secret ids).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Registered certificates (PEM), whose keys may sign client assertions.
    #[serde(default)]
    pub certificates: Vec<String>,
    /// Federated identity credentials: external tokens this app accepts as client assertions.
    #[serde(default)]
    pub federated_credentials: Vec<FederatedCredential>,
    #[serde(default)]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub directory_roles: Vec<String>,
}

/// `Member` or `Guest`, as Graph's `userType`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum UserType {
    #[default]
    Member,
    Guest,
}

/// A user account. The fields after `password` are kept by the emulator, not configured.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct User {
    pub id: String,
    pub user_principal_name: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default = "enabled")]
    pub account_enabled: bool,
    #[serde(default)]
    pub user_type: UserType,
    #[serde(default)]
    pub on_premises_sync_enabled: bool,
    /// Directory roles held directly, e.g. `Global Administrator`.
    #[serde(default)]
    pub directory_roles: Vec<String>,
    /// Member or owner of a role-assignable group: only privileged admins may reset such users.
    #[serde(default)]
    pub role_assignable_group_member: bool,
    /// Sign-in methods besides the password (configured ones were there before any lease).
    #[serde(default)]
    pub methods: Vec<SignInMethod>,
    /// The current password, if any. Never serialised, logged or shown.
    #[serde(default)]
    pub password: Option<String>,
    /// Tokens issued before this instant are revoked. Defaults to the emulator's start time.
    #[serde(default)]
    pub sign_in_sessions_valid_from_date_time: Option<Timestamp>,
    /// `forceChangePasswordNextSignIn` exactly as sent with the last password reset (None: absent).
    #[serde(skip)]
    pub force_change_password_next_sign_in: Option<bool>,
    /// `forceChangePasswordNextSignInWithMfa` exactly as sent with the last password reset.
    #[serde(skip)]
    pub force_change_password_next_sign_in_with_mfa: Option<bool>,
    /// How many password resets Graph accepted for this user.
    #[serde(skip)]
    pub password_set_count: u64,
    #[serde(skip)]
    pub password_last_set_date_time: Option<Timestamp>,
}

fn enabled() -> bool {
    true
}

impl Tenant {
    /// Whether `name` (a GUID or a verified domain, any case) names this tenant.
    pub fn is_named(&self, name: &str) -> bool {
        self.id.eq_ignore_ascii_case(name)
            || self.domains.iter().any(|d| d.eq_ignore_ascii_case(name))
    }

    pub fn app(&self, client_id: &str) -> Option<&App> {
        self.apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    pub fn app_mut(&mut self, client_id: &str) -> Option<&mut App> {
        self.apps
            .iter_mut()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    pub fn user(&self, id_or_upn: &str) -> Option<&User> {
        self.users.iter().find(|u| u.is_addressed_by(id_or_upn))
    }

    pub fn user_mut(&mut self, id_or_upn: &str) -> Option<&mut User> {
        self.users.iter_mut().find(|u| u.is_addressed_by(id_or_upn))
    }

    /// Removes the user; returns whether it existed.
    pub fn remove_user(&mut self, id_or_upn: &str) -> bool {
        let before = self.users.len();
        self.users.retain(|u| !u.is_addressed_by(id_or_upn));
        self.users.len() != before
    }
}

impl User {
    /// Object ids and UPNs both match without regard to case, as in Graph.
    pub fn is_addressed_by(&self, id_or_upn: &str) -> bool {
        self.id.eq_ignore_ascii_case(id_or_upn)
            || self.user_principal_name.eq_ignore_ascii_case(id_or_upn)
    }

    /// Whether the password would be forced to change at next sign-in. Graph treats an absent
    /// `forceChangePasswordNextSignIn` in a reset as `true`.
    pub fn must_change_password(&self) -> bool {
        if self.password_set_count == 0 {
            return false;
        }
        self.force_change_password_next_sign_in.unwrap_or(true)
            || self
                .force_change_password_next_sign_in_with_mfa
                .unwrap_or(false)
    }
}

/// Secrets stay out of `Debug`, so a test's `{:?}` or a tracing field cannot leak them.
impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("client_id", &self.client_id)
            .field("display_name", &self.display_name)
            .field(
                "secrets",
                &format_args!("<{} redacted>", self.secrets.len()),
            )
            .field(
                "certificates",
                &format_args!("<{} PEM>", self.certificates.len()),
            )
            .field("federated_credentials", &self.federated_credentials)
            .field("permissions", &self.permissions)
            .field("directory_roles", &self.directory_roles)
            .finish()
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("user_principal_name", &self.user_principal_name)
            .field("display_name", &self.display_name)
            .field("account_enabled", &self.account_enabled)
            .field("user_type", &self.user_type)
            .field("on_premises_sync_enabled", &self.on_premises_sync_enabled)
            .field("directory_roles", &self.directory_roles)
            .field(
                "role_assignable_group_member",
                &self.role_assignable_group_member,
            )
            .field("methods", &self.methods)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_set_count", &self.password_set_count)
            .finish_non_exhaustive()
    }
}
