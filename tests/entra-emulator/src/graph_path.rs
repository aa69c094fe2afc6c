//! Reading a Graph user path: `/v1.0/users/{id-or-upn}`, `/v1.0/users('{upn}')`, optionally
//! followed by `/revokeSignInSessions`, `/transitiveMemberOf`, `/authentication/methods` or
//! `/authentication/{kind}Methods/{id}`. Segments are percent-decoded one by one, so `%23` is `#`
//! and `%2F` stays inside its segment.

use percent_encoding::percent_decode_str;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPath {
    /// The decoded object id or UPN.
    pub user: String,
    pub action: UserAction,
}

/// What follows the user in the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserAction {
    /// The user itself.
    None,
    RevokeSignInSessions,
    TransitiveMemberOf,
    /// `authentication/methods`: every sign-in method.
    Methods,
    /// `authentication/{collection}`: the methods of one kind (`temporaryAccessPassMethods`).
    MethodCollection(String),
    /// `authentication/{collection}/{id}`: one method of a kind (`fido2Methods`, ...).
    Method {
        collection: String,
        id: String,
    },
}

/// Parses the path below `/v1.0/`; on failure returns the segment Graph would complain about.
pub fn parse_user_path(raw_path: &str) -> Result<UserPath, String> {
    let rest = raw_path.strip_prefix("/v1.0/").unwrap_or(raw_path);
    let segments: Vec<String> = rest
        .trim_end_matches('/')
        .split('/')
        .map(|segment| percent_decode_str(segment).decode_utf8_lossy().into_owned())
        .collect();
    let (user, action) = match segments.as_slice() {
        [users, key, action @ ..] if users.eq_ignore_ascii_case("users") => {
            (plain_key(key)?, action)
        }
        [users_call, action @ ..] => (parenthesised_key(users_call)?, action),
        [] => return Err(String::new()),
    };
    let action = match action {
        [] => UserAction::None,
        [action] if action.eq_ignore_ascii_case("revokeSignInSessions") => {
            UserAction::RevokeSignInSessions
        }
        [action] if action.eq_ignore_ascii_case("transitiveMemberOf") => {
            UserAction::TransitiveMemberOf
        }
        [authentication, methods]
            if authentication.eq_ignore_ascii_case("authentication")
                && methods.eq_ignore_ascii_case("methods") =>
        {
            UserAction::Methods
        }
        [authentication, collection]
            if authentication.eq_ignore_ascii_case("authentication") && !collection.is_empty() =>
        {
            UserAction::MethodCollection(collection.clone())
        }
        [authentication, collection, id]
            if authentication.eq_ignore_ascii_case("authentication") && !id.is_empty() =>
        {
            UserAction::Method {
                collection: collection.clone(),
                id: id.clone(),
            }
        }
        [other, ..] => return Err(other.clone()),
    };
    Ok(UserPath { user, action })
}

/// `/users/{key}`: a key starting with `$` reads as an OData keyword, so Graph refuses it there.
fn plain_key(key: &str) -> Result<String, String> {
    if key.is_empty() || key.starts_with('$') {
        return Err(key.to_owned());
    }
    Ok(key.to_owned())
}

/// `users('{key}')`, with OData's `''` for a quote inside the key.
fn parenthesised_key(segment: &str) -> Result<String, String> {
    segment
        .strip_prefix("users('")
        .and_then(|s| s.strip_suffix("')"))
        .filter(|key| !key.is_empty())
        .map(|key| key.replace("''", "'"))
        .ok_or_else(|| segment.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(path: &str) -> Result<String, String> {
        parse_user_path(path).map(|p| p.user)
    }

    #[test]
    fn ids_and_upns_are_decoded_per_segment() {
        assert_eq!(
            user("/v1.0/users/a11ce000-0000-4000-8000-000000000001").unwrap(),
            "a11ce000-0000-4000-8000-000000000001"
        );
        assert_eq!(
            user("/v1.0/users/dave_fabrikam.com%23EXT%23%40contoso.com").unwrap(),
            "dave_fabrikam.com#EXT#@contoso.com"
        );
        assert_eq!(user("/v1.0/users/a%2Fb").unwrap(), "a/b");
    }

    #[test]
    fn dollar_upns_need_the_parenthesised_form() {
        assert_eq!(
            user("/v1.0/users('$frank@contoso.com')").unwrap(),
            "$frank@contoso.com"
        );
        assert_eq!(
            user("/v1.0/users(%27%24frank%40contoso.com%27)").unwrap(),
            "$frank@contoso.com"
        );
        assert_eq!(
            user("/v1.0/users('o''neil@contoso.com')").unwrap(),
            "o'neil@contoso.com"
        );
        assert_eq!(
            user("/v1.0/users/$frank@contoso.com"),
            Err("$frank@contoso.com".into())
        );
        assert_eq!(
            user("/v1.0/users/%24frank@contoso.com"),
            Err("$frank@contoso.com".into())
        );
    }

    #[test]
    fn authentication_methods_are_listed_and_addressed_one_by_one() {
        let path = parse_user_path("/v1.0/users/x/authentication/methods").unwrap();
        assert_eq!(path.action, UserAction::Methods);
        let path = parse_user_path("/v1.0/users/x/authentication/fido2Methods/m-1").unwrap();
        assert_eq!(
            path.action,
            UserAction::Method {
                collection: "fido2Methods".into(),
                id: "m-1".into()
            }
        );
        assert!(parse_user_path("/v1.0/users/x/authentication").is_err());
    }

    #[test]
    fn revoke_and_transitive_member_of_are_the_only_actions() {
        let path = parse_user_path("/v1.0/users('$f@x.com')/revokeSignInSessions").unwrap();
        assert_eq!(path.action, UserAction::RevokeSignInSessions);
        let path = parse_user_path("/v1.0/users/x/transitiveMemberOf").unwrap();
        assert_eq!(path.action, UserAction::TransitiveMemberOf);
        assert_eq!(
            parse_user_path("/v1.0/users/x/memberOf"),
            Err("memberOf".into())
        );
        assert_eq!(parse_user_path("/v1.0/groups/x"), Err("groups".into()));
        assert!(parse_user_path("/v1.0/users").is_err());
    }
}
