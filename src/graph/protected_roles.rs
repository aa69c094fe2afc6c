//! Which users a User Administrator may not reset, judged from their memberships as
//! `GET /users/{id}/transitiveMemberOf` lists them: directory roles and role-assignable groups.

use serde::Deserialize;

/// The directory roles (by role template ID, the same in every tenant) whose holders a User
/// Administrator may still reset: the "User Admin" column of Microsoft's "Who can reset passwords"
/// table (learn.microsoft.com/entra/identity/role-based-access-control/privileged-roles-permissions;
/// template IDs from the "Microsoft Entra built-in roles" page). Any other role, built-in or custom,
/// protects its holder; so does membership or ownership of a role-assignable group.
const ROLES_A_USER_ADMINISTRATOR_MAY_RESET: &[(&str, &str)] = &[
    ("88d8e3e3-8f55-4a1e-953a-9b9898b8876b", "Directory Readers"),
    (
        "fdd7a751-b60b-444a-984c-02652fe8fa1c",
        "Groups Administrator",
    ),
    ("95e79109-95c0-4d8e-aee3-d01accf2d47b", "Guest Inviter"),
    (
        "729827e3-9c14-49f7-bb1b-9608f156bbb8",
        "Helpdesk Administrator",
    ),
    (
        "790c1fb9-7f7d-4f88-86a1-ef1f95c05c1b",
        "Message Center Reader",
    ),
    (
        "966707d0-3269-4727-9be2-8c3a10f19b9d",
        "Password Administrator",
    ),
    ("4a5d8f65-41da-4de4-8968-e035b65339cf", "Reports Reader"),
    ("fe930be7-5e62-47db-91af-98c3a49a38b1", "User Administrator"),
    (
        "27460883-1df1-4691-b032-3b79643e5e63",
        "User Experience Success Manager",
    ),
    (
        "75934031-6c7e-415a-99d7-48dbd49e875e",
        "Usage Summary Reports Reader",
    ),
];

const DIRECTORY_ROLE: &str = "#microsoft.graph.directoryRole";
const GROUP: &str = "#microsoft.graph.group";

/// What a user's memberships say about resetting its password as a User Administrator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// A role other than those above, or a role-assignable group: the reset would answer 403.
    Protected,
    /// No membership that protects the user.
    NotProtected,
    /// Memberships came back without the property that decides (a role's `roleTemplateId`, a
    /// group's `isAssignableToRole`): Graph hides them from apps that may not read that type.
    Undecided,
    /// Graph answered 403: the app may not list memberships at all.
    Unreadable,
}

/// One entry of `transitiveMemberOf`, with only what the decision needs.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Membership {
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
    pub role_template_id: Option<String>,
    pub is_assignable_to_role: Option<bool>,
}

impl Membership {
    /// `Some(true)` when this membership protects the user, `None` when it cannot be told.
    /// Administrative units and other types protect nobody.
    fn protects(&self) -> Option<bool> {
        match self.odata_type.as_deref() {
            Some(DIRECTORY_ROLE) => self
                .role_template_id
                .as_deref()
                .map(|id| !user_administrator_may_reset(id)),
            Some(GROUP) => self.is_assignable_to_role,
            _ => Some(false),
        }
    }
}

fn user_administrator_may_reset(role_template_id: &str) -> bool {
    ROLES_A_USER_ADMINISTRATOR_MAY_RESET
        .iter()
        .any(|(id, _)| id.eq_ignore_ascii_case(role_template_id))
}

/// Protected as soon as one membership protects; undecided when none does but some are hidden.
pub(super) fn protection<'a>(memberships: impl IntoIterator<Item = &'a Membership>) -> Protection {
    let mut hidden = false;
    for membership in memberships {
        match membership.protects() {
            Some(true) => return Protection::Protected,
            Some(false) => {}
            None => hidden = true,
        }
    }
    if hidden {
        Protection::Undecided
    } else {
        Protection::NotProtected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GLOBAL_ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";
    const HELPDESK_ADMINISTRATOR: &str = "729827e3-9c14-49f7-bb1b-9608f156bbb8";

    fn role(template: Option<&str>) -> Membership {
        Membership {
            odata_type: Some(DIRECTORY_ROLE.into()),
            role_template_id: template.map(Into::into),
            is_assignable_to_role: None,
        }
    }

    fn group(assignable: Option<bool>) -> Membership {
        Membership {
            odata_type: Some(GROUP.into()),
            role_template_id: None,
            is_assignable_to_role: assignable,
        }
    }

    fn unit() -> Membership {
        Membership {
            odata_type: Some("#microsoft.graph.administrativeUnit".into()),
            ..Membership::default()
        }
    }

    #[test]
    fn no_memberships_protect_nobody() {
        assert_eq!(protection(&[]), Protection::NotProtected);
        assert_eq!(
            protection(&[group(Some(false)), unit()]),
            Protection::NotProtected
        );
    }

    #[test]
    fn roles_a_user_administrator_may_reset_do_not_protect() {
        assert_eq!(
            protection(&[role(Some(HELPDESK_ADMINISTRATOR))]),
            Protection::NotProtected
        );
        let upper = HELPDESK_ADMINISTRATOR.to_ascii_uppercase();
        assert_eq!(protection(&[role(Some(&upper))]), Protection::NotProtected);
        for (id, _) in ROLES_A_USER_ADMINISTRATOR_MAY_RESET {
            assert_eq!(protection(&[role(Some(id))]), Protection::NotProtected);
        }
    }

    #[test]
    fn any_other_role_protects() {
        assert_eq!(
            protection(&[
                role(Some(HELPDESK_ADMINISTRATOR)),
                role(Some(GLOBAL_ADMINISTRATOR))
            ]),
            Protection::Protected
        );
        let custom_role = "0b1c2d3e-0000-4000-8000-00000000c057";
        assert_eq!(
            protection(&[role(Some(custom_role))]),
            Protection::Protected
        );
    }

    #[test]
    fn a_role_assignable_group_protects() {
        assert_eq!(protection(&[group(Some(true))]), Protection::Protected);
    }

    #[test]
    fn hidden_properties_leave_it_undecided_unless_something_else_protects() {
        assert_eq!(protection(&[role(None)]), Protection::Undecided);
        assert_eq!(protection(&[group(None)]), Protection::Undecided);
        assert_eq!(
            protection(&[role(None), group(Some(true))]),
            Protection::Protected
        );
    }
}
