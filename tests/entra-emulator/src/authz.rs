//! Who may do what: application permissions and the directory roles of the app's service
//! principal, both as snapshotted in the token, and the roles that protect a target user.

use crate::{directory::User, token::Grant};

/// What a Graph call wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    ReadUser,
    ResetPassword,
    RevokeSessions,
    SetAccountEnabled,
    /// Listing a user's sign-in methods.
    ReadMethods,
    /// Deleting one of a user's sign-in methods.
    RemoveMethods,
    /// `transitiveMemberOf`: what the roles and groups are shows only with [`may_read_roles`]
    /// and [`may_read_groups`].
    ListMemberships,
}

/// `User-PasswordProfile.ReadWrite.All` covers the password profile only, not reading users
/// (Graph's permission reference lists it for neither reads nor session revocation).
const READ_PERMISSIONS: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
/// Field reports: `User.ReadWrite.All` alone does not reset passwords.
const PASSWORD_PERMISSIONS: &[&str] = &[
    "User-PasswordProfile.ReadWrite.All",
    "Directory.ReadWrite.All",
];
const REVOKE_PERMISSIONS: &[&str] = &[
    "User.RevokeSessions.All",
    "User.ReadWrite.All",
    "Directory.ReadWrite.All",
];
const ENABLE_PERMISSIONS: &[&str] = &[
    "User.EnableDisableAccount.All",
    "User.ReadWrite.All",
    "Directory.ReadWrite.All",
];
const METHOD_READ_PERMISSIONS: &[&str] = &[
    "UserAuthenticationMethod.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
];
const METHOD_WRITE_PERMISSIONS: &[&str] = &["UserAuthenticationMethod.ReadWrite.All"];

/// Graph's permission table for another user's `transitiveMemberOf` (application).
const MEMBERSHIP_PERMISSIONS: &[&str] = &[
    "User.Read.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "Group.Read.All",
    "GroupMember.Read.All",
];
/// Without one of these, directory roles in a membership list show only their type and id.
const ROLE_READ_PERMISSIONS: &[&str] = &[
    "RoleManagement.Read.Directory",
    "RoleManagement.Read.All",
    "RoleManagement.ReadWrite.Directory",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
/// Without one of these, groups in a membership list show only their type and id.
const GROUP_READ_PERMISSIONS: &[&str] = &[
    "GroupMember.Read.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

/// Any admin or reader role lets the app read users, as in Entra.
const READ_ROLES: &[&str] = &[
    "Directory Readers",
    "Global Reader",
    "Helpdesk Administrator",
    "Password Administrator",
    "User Administrator",
    "Authentication Administrator",
    "Privileged Authentication Administrator",
    "Privileged Role Administrator",
    "Global Administrator",
];
const RESET_ROLES: &[&str] = &[
    "User Administrator",
    "Privileged Authentication Administrator",
    "Global Administrator",
];
/// Roles that may reset anyone, including other admins.
const PRIVILEGED_ROLES: &[&str] = &[
    "Privileged Authentication Administrator",
    "Global Administrator",
];
/// The roles a User Administrator may still reset (Microsoft's "who can reset passwords" table);
/// a user holding any other role is protected.
const ROLES_A_USER_ADMIN_MANAGES: &[&str] = &[
    "Directory Readers",
    "Groups Administrator",
    "Guest Inviter",
    "Helpdesk Administrator",
    "Message Center Reader",
    "Password Administrator",
    "Reports Reader",
    "User Administrator",
    "User Experience Success Manager",
    "Usage Summary Reports Reader",
];

/// The app-wide check: does the token carry the permission (and role) the action needs at all?
pub fn may(grant: &Grant, action: Action) -> bool {
    match action {
        Action::ReadUser => {
            holds(&grant.permissions, READ_PERMISSIONS) || holds(&grant.directory_roles, READ_ROLES)
        }
        Action::ResetPassword => {
            holds(&grant.permissions, PASSWORD_PERMISSIONS)
                && holds(&grant.directory_roles, RESET_ROLES)
        }
        Action::RevokeSessions => {
            holds(&grant.permissions, REVOKE_PERMISSIONS)
                && holds(&grant.directory_roles, RESET_ROLES)
        }
        Action::SetAccountEnabled => holds(&grant.permissions, ENABLE_PERMISSIONS),
        Action::ReadMethods => holds(&grant.permissions, METHOD_READ_PERMISSIONS),
        Action::RemoveMethods => holds(&grant.permissions, METHOD_WRITE_PERMISSIONS),
        Action::ListMemberships => holds(&grant.permissions, MEMBERSHIP_PERMISSIONS),
    }
}

/// Whether directory roles in a membership list come with their properties.
pub fn may_read_roles(grant: &Grant) -> bool {
    holds(&grant.permissions, ROLE_READ_PERMISSIONS)
}

/// Whether groups in a membership list come with their properties.
pub fn may_read_groups(grant: &Grant) -> bool {
    holds(&grant.permissions, GROUP_READ_PERMISSIONS)
}

/// The per-user check: sensitive actions on a protected user need a privileged role.
pub fn may_touch(grant: &Grant, action: Action, target: &User) -> bool {
    action == Action::ReadUser
        || !is_protected(target)
        || holds(&grant.directory_roles, PRIVILEGED_ROLES)
}

fn is_protected(user: &User) -> bool {
    user.role_assignable_group_member
        || user
            .directory_roles
            .iter()
            .any(|role| !contains(ROLES_A_USER_ADMIN_MANAGES, role))
}

fn holds(granted: &[String], sufficient: &[&str]) -> bool {
    granted.iter().any(|g| contains(sufficient, g))
}

fn contains(names: &[&str], name: &str) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, sample};

    fn grant(permissions: &[&str], roles: &[&str]) -> Grant {
        Grant::for_test(permissions, roles)
    }

    fn user(id: &str) -> User {
        Config::sample().tenants[0].user(id).unwrap().clone()
    }

    #[test]
    fn password_reset_needs_permission_and_role() {
        let profile = "User-PasswordProfile.ReadWrite.All";
        assert!(may(
            &grant(&[profile], &["User Administrator"]),
            Action::ResetPassword
        ));
        assert!(!may(&grant(&[profile], &[]), Action::ResetPassword));
        assert!(!may(
            &grant(&["User.ReadWrite.All"], &["User Administrator"]),
            Action::ResetPassword
        ));
    }

    #[test]
    fn admins_are_protected_from_user_administrators() {
        let user_admin = grant(
            &["User-PasswordProfile.ReadWrite.All"],
            &["User Administrator"],
        );
        let global_admin = grant(
            &["User-PasswordProfile.ReadWrite.All"],
            &["Global Administrator"],
        );
        let grace = user(sample::GRACE_ADMIN.id);
        assert!(!may_touch(&user_admin, Action::ResetPassword, &grace));
        assert!(may_touch(&global_admin, Action::ResetPassword, &grace));
        assert!(may_touch(&user_admin, Action::ReadUser, &grace));

        let mut helpdesk = user(sample::BOB.id);
        helpdesk.directory_roles = vec!["helpdesk administrator".into()];
        assert!(may_touch(&user_admin, Action::ResetPassword, &helpdesk));
        helpdesk.role_assignable_group_member = true;
        assert!(!may_touch(&user_admin, Action::ResetPassword, &helpdesk));
    }
}
