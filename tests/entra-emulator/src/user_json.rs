//! A user as Graph returns it: the default property set, or exactly the `$select`ed properties.

use serde_json::{Map, Value, json};

use crate::directory::{User, UserType};

/// What Graph v1.0 returns for a user without `$select`. Note: no `accountEnabled`, `userType`
/// or `onPremisesSyncEnabled`; a client that needs them must `$select` them.
const DEFAULT_PROPERTIES: [&str; 11] = [
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

const EXTRA_PROPERTIES: [&str; 4] = [
    "accountEnabled",
    "userType",
    "onPremisesSyncEnabled",
    "signInSessionsValidFromDateTime",
];

/// The properties a `$select` names, in canonical spelling; `None` for the default set. Unknown
/// names fail with the name, as Graph fails with 400.
pub fn parse_select(select: Option<&str>) -> Result<Option<Vec<&'static str>>, String> {
    let Some(select) = select.filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    select
        .split(',')
        .map(str::trim)
        .map(|name| {
            DEFAULT_PROPERTIES
                .iter()
                .chain(&EXTRA_PROPERTIES)
                .find(|known| known.eq_ignore_ascii_case(name))
                .copied()
                .ok_or_else(|| name.to_owned())
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The JSON body of `GET /users/{id}`.
pub fn user_json(user: &User, selected: Option<&[&'static str]>, base_url: &str) -> Value {
    let context = match selected {
        None => format!("{base_url}/v1.0/$metadata#users/$entity"),
        Some(names) => format!(
            "{base_url}/v1.0/$metadata#users({})/$entity",
            names.join(",")
        ),
    };
    let mut body = Map::new();
    body.insert("@odata.context".into(), Value::String(context));
    for name in selected.unwrap_or(&DEFAULT_PROPERTIES) {
        body.insert((*name).to_owned(), property(user, name));
    }
    Value::Object(body)
}

fn property(user: &User, name: &str) -> Value {
    match name {
        "id" => json!(user.id),
        "userPrincipalName" => json!(user.user_principal_name),
        "displayName" => json!(user.display_name),
        "accountEnabled" => json!(user.account_enabled),
        "userType" => json!(match user.user_type {
            UserType::Member => "Member",
            UserType::Guest => "Guest",
        }),
        // Graph answers null, not false, for cloud-only users.
        "onPremisesSyncEnabled" => user
            .on_premises_sync_enabled
            .then_some(true)
            .map_or(Value::Null, Value::Bool),
        "signInSessionsValidFromDateTime" => json!(
            user.sign_in_sessions_valid_from_date_time
                .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        ),
        "businessPhones" => json!([]),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_is_case_insensitive_and_canonicalised() {
        let selected = parse_select(Some("ID, accountenabled")).unwrap().unwrap();
        assert_eq!(selected, ["id", "accountEnabled"]);
        assert_eq!(parse_select(Some("id,shoeSize")), Err("shoeSize".into()));
        assert_eq!(parse_select(None), Ok(None));
    }
}
