//! The administrator's view of a user: everything the emulator knows except the password.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::directory::{User, UserType};
use crate::methods::SignInMethod;

/// A user as `GET /_emulator/users/{id-or-upn}` and `Emulator::user` show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub tenant_id: String,
    pub id: String,
    pub user_principal_name: String,
    pub display_name: String,
    pub account_enabled: bool,
    pub user_type: UserType,
    pub on_premises_sync_enabled: bool,
    pub directory_roles: Vec<String>,
    pub role_assignable_group_member: bool,
    pub has_password: bool,
    pub password_set_count: u64,
    pub password_last_set_date_time: Option<Timestamp>,
    /// As sent with the last password reset; `None` when absent (Graph then forces a change).
    pub force_change_password_next_sign_in: Option<bool>,
    pub force_change_password_next_sign_in_with_mfa: Option<bool>,
    pub must_change_password: bool,
    pub sign_in_sessions_valid_from_date_time: Option<Timestamp>,
    /// Sign-in methods besides the password.
    #[serde(default)]
    pub methods: Vec<SignInMethod>,
}

impl UserView {
    pub(crate) fn of(tenant_id: &str, user: &User) -> UserView {
        UserView {
            tenant_id: tenant_id.to_owned(),
            id: user.id.clone(),
            user_principal_name: user.user_principal_name.clone(),
            display_name: user.display_name.clone(),
            account_enabled: user.account_enabled,
            user_type: user.user_type,
            on_premises_sync_enabled: user.on_premises_sync_enabled,
            directory_roles: user.directory_roles.clone(),
            role_assignable_group_member: user.role_assignable_group_member,
            has_password: user.password.is_some(),
            password_set_count: user.password_set_count,
            password_last_set_date_time: user.password_last_set_date_time,
            force_change_password_next_sign_in: user.force_change_password_next_sign_in,
            force_change_password_next_sign_in_with_mfa: user
                .force_change_password_next_sign_in_with_mfa,
            must_change_password: user.must_change_password(),
            sign_in_sessions_valid_from_date_time: user.sign_in_sessions_valid_from_date_time,
            methods: user.methods.clone(),
        }
    }
}
