//! Which kind of client credential a token request carried, for counters and the request log
//! (never the credential itself).

use serde::{Deserialize, Serialize};

use crate::jwt::Jwt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CredentialKind {
    ClientSecret,
    /// A client assertion signed with the app's certificate (`iss` = client id, or `x5t` set).
    Certificate,
    /// A client assertion issued by someone else: a federated identity credential's token.
    Federated,
    /// A `client_assertion` that is not a JWT.
    MalformedAssertion,
    /// Neither a secret nor an assertion.
    None,
}

impl CredentialKind {
    pub fn of(client_id: &str, secret: Option<&str>, assertion: Option<&str>) -> CredentialKind {
        match (secret, assertion) {
            (Some(_), _) => CredentialKind::ClientSecret,
            (None, Some(assertion)) => match Jwt::parse(assertion) {
                Ok(jwt) if is_certificate_assertion(&jwt, client_id) => CredentialKind::Certificate,
                Ok(_) => CredentialKind::Federated,
                Err(_) => CredentialKind::MalformedAssertion,
            },
            (None, None) => CredentialKind::None,
        }
    }
}

/// An assertion the app signed itself names its certificate or itself; anything else can only
/// be a federated credential's token.
pub fn is_certificate_assertion(jwt: &Jwt, client_id: &str) -> bool {
    jwt.header.x5t.is_some()
        || jwt.header.x5t_s256.is_some()
        || jwt
            .claims
            .iss
            .as_deref()
            .is_some_and(|iss| iss.eq_ignore_ascii_case(client_id))
}
