//! `GET /v1.0/users/{id}/transitiveMemberOf`: the user's directory roles (as `directoryRole`
//! objects with their `roleTemplateId`) and, for `roleAssignableGroupMember`, one
//! role-assignable group. As in Graph, roles and groups the app may not read come back with only
//! `@odata.type` and `id`, and the list is paged through `@odata.nextLink`.

use axum::{Json, response::IntoResponse};
use serde_json::{Map, Value, json};

use crate::{
    authz::{self, Action},
    directory::User,
    graph_request::GraphRequest,
    operation::Operation,
    recording::Reply,
    responses::GraphError,
    users::find_user,
};

/// Graph pages at 100; the emulator pages at two, so a client reading a user with more than two
/// memberships must follow `@odata.nextLink`.
const PAGE_SIZE: usize = 2;

/// Built-in roles by display name, with their template IDs (the same in every tenant).
const ROLE_TEMPLATES: &[(&str, &str)] = &[
    (
        "Authentication Administrator",
        "c4e39bd9-1100-46d3-8c65-fb160da0071f",
    ),
    ("Directory Readers", "88d8e3e3-8f55-4a1e-953a-9b9898b8876b"),
    (
        "Global Administrator",
        "62e90394-69f5-4237-9190-012177145e10",
    ),
    ("Global Reader", "f2ef992c-3afb-46b9-b7cf-a126ee74c451"),
    (
        "Groups Administrator",
        "fdd7a751-b60b-444a-984c-02652fe8fa1c",
    ),
    ("Guest Inviter", "95e79109-95c0-4d8e-aee3-d01accf2d47b"),
    (
        "Helpdesk Administrator",
        "729827e3-9c14-49f7-bb1b-9608f156bbb8",
    ),
    (
        "Message Center Reader",
        "790c1fb9-7f7d-4f88-86a1-ef1f95c05c1b",
    ),
    (
        "Password Administrator",
        "966707d0-3269-4727-9be2-8c3a10f19b9d",
    ),
    (
        "Privileged Authentication Administrator",
        "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
    ),
    (
        "Privileged Role Administrator",
        "e8611ab8-c189-46e8-94e1-60213ab1f814",
    ),
    ("Reports Reader", "4a5d8f65-41da-4de4-8968-e035b65339cf"),
    (
        "Security Administrator",
        "194ae4cb-b126-40b2-bd5b-6091b380977d",
    ),
    (
        "Usage Summary Reports Reader",
        "75934031-6c7e-415a-99d7-48dbd49e875e",
    ),
    ("User Administrator", "fe930be7-5e62-47db-91af-98c3a49a38b1"),
    (
        "User Experience Success Manager",
        "27460883-1df1-4691-b032-3b79643e5e63",
    ),
];

/// The role-assignable group every `roleAssignableGroupMember` user is in.
const ROLE_ASSIGNABLE_GROUP_ID: &str = "6a0a5516-0000-4000-8000-00000000a551";

pub fn list_memberships(
    request: &GraphRequest,
    key: &str,
    select: Option<&str>,
    skip_token: Option<&str>,
) -> Reply {
    request.handle(Operation::ListMemberships, |state, grant| {
        if !authz::may(grant, Action::ListMemberships) {
            return Err(GraphError::insufficient_privileges());
        }
        let skip = match skip_token {
            None => 0,
            Some(token) => token
                .parse::<usize>()
                .map_err(|_| GraphError::bad_request("Invalid $skiptoken."))?,
        };
        let user = find_user(state, grant, key)?;
        let readable = Readable {
            roles: authz::may_read_roles(grant),
            groups: authz::may_read_groups(grant),
        };
        let all = memberships(user, readable);
        let page: Vec<Value> = all
            .iter()
            .skip(skip)
            .take(PAGE_SIZE)
            .map(|m| selected(m, select))
            .collect();
        let base_url = &request.shared.base_url;
        let mut body = Map::new();
        body.insert(
            "@odata.context".into(),
            json!(format!("{base_url}/v1.0/$metadata#directoryObjects")),
        );
        body.insert("value".into(), Value::Array(page));
        if skip + PAGE_SIZE < all.len() {
            let select = select.map(|s| format!("$select={s}&")).unwrap_or_default();
            let next = format!(
                "{base_url}/v1.0/users/{}/transitiveMemberOf?{select}$skiptoken={}",
                user.id,
                skip + PAGE_SIZE
            );
            body.insert("@odata.nextLink".into(), json!(next));
        }
        Ok(Json(Value::Object(body)).into_response())
    })
}

#[derive(Clone, Copy)]
struct Readable {
    roles: bool,
    groups: bool,
}

/// Every membership with all its properties; those the app may not read have them null.
fn memberships(user: &User, readable: Readable) -> Vec<Value> {
    let mut all: Vec<Value> = user
        .directory_roles
        .iter()
        .map(|name| {
            let template = role_template_id(name);
            // A directoryRole's own id differs from its template's in Graph; derived for stability.
            let id = format!("d1{}", &template[2..]);
            if readable.roles {
                json!({
                    "@odata.type": "#microsoft.graph.directoryRole",
                    "id": id,
                    "displayName": name,
                    "roleTemplateId": template,
                })
            } else {
                hidden("#microsoft.graph.directoryRole", &id)
            }
        })
        .collect();
    if user.role_assignable_group_member {
        all.push(if readable.groups {
            json!({
                "@odata.type": "#microsoft.graph.group",
                "id": ROLE_ASSIGNABLE_GROUP_ID,
                "displayName": "Privileged access",
                "isAssignableToRole": true,
            })
        } else {
            hidden("#microsoft.graph.group", ROLE_ASSIGNABLE_GROUP_ID)
        });
    }
    all
}

/// Graph's "limited information" for a member the app may not read: type and id, the rest null.
fn hidden(odata_type: &str, id: &str) -> Value {
    json!({
        "@odata.type": odata_type,
        "id": id,
        "displayName": null,
        "roleTemplateId": null,
        "isAssignableToRole": null,
    })
}

/// Only the `$select`ed properties, plus `@odata.type` and `id`, which Graph always returns.
fn selected(membership: &Value, select: Option<&str>) -> Value {
    let Some(select) = select.filter(|s| !s.trim().is_empty()) else {
        return membership.clone();
    };
    let Value::Object(all) = membership else {
        return membership.clone();
    };
    let wanted: Vec<&str> = select.split(',').map(str::trim).collect();
    let kept = all
        .iter()
        .filter(|(name, _)| {
            name.starts_with('@')
                || *name == "id"
                || wanted.iter().any(|w| w.eq_ignore_ascii_case(name))
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    Value::Object(kept)
}

/// A built-in role's template ID; a name the emulator does not know stands for a custom role,
/// with a made-up ID that no User Administrator table lists.
fn role_template_id(name: &str) -> String {
    ROLE_TEMPLATES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|(_, id)| (*id).to_owned())
        .unwrap_or_else(|| {
            let hash = name
                .bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            format!("c0570000-0000-4000-8000-0000{hash:08x}")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, sample};

    fn user(id: &str) -> User {
        Config::sample().tenants[0].user(id).unwrap().clone()
    }

    #[test]
    fn roles_carry_their_template_ids_when_readable() {
        let grace = user(sample::GRACE_ADMIN.id);
        let all = memberships(
            &grace,
            Readable {
                roles: true,
                groups: true,
            },
        );
        assert_eq!(all.len(), 1);
        assert_eq!(
            all[0]["roleTemplateId"],
            "62e90394-69f5-4237-9190-012177145e10"
        );
        assert_eq!(all[0]["@odata.type"], "#microsoft.graph.directoryRole");
    }

    #[test]
    fn unreadable_types_show_only_type_and_id() {
        let mut bob = user(sample::BOB.id);
        bob.directory_roles = vec!["Helpdesk Administrator".into()];
        bob.role_assignable_group_member = true;
        let all = memberships(
            &bob,
            Readable {
                roles: false,
                groups: false,
            },
        );
        assert_eq!(all.len(), 2);
        assert!(all[0]["roleTemplateId"].is_null());
        assert!(all[1]["isAssignableToRole"].is_null());
        assert_eq!(all[1]["@odata.type"], "#microsoft.graph.group");
    }

    #[test]
    fn select_keeps_type_and_id() {
        let role =
            json!({ "@odata.type": "t", "id": "i", "displayName": "d", "roleTemplateId": "r" });
        assert_eq!(
            selected(&role, Some("roleTemplateId")),
            json!({ "@odata.type": "t", "id": "i", "roleTemplateId": "r" })
        );
    }

    #[test]
    fn unknown_role_names_get_a_stable_custom_template_id() {
        assert_eq!(role_template_id("Custom A"), role_template_id("Custom A"));
        assert_ne!(role_template_id("Custom A"), role_template_id("Custom B"));
    }
}
