//! What a template can name, and the longest value each can hold: a template's longest output is
//! judged against these before any value exists, and rendering holds values to them.

/// A variable of a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variable {
    Username,
    Password,
    TemporaryAccessPass,
    UserId,
    TenantId,
    MaxExpiresAt,
}

impl Variable {
    pub const NAMES: [&'static str; 6] = [
        "username",
        "password",
        "temporaryAccessPass",
        "userId",
        "tenantId",
        "maxExpiresAt",
    ];

    pub fn named(name: &str) -> Option<Variable> {
        Some(match name {
            "username" => Variable::Username,
            "password" => Variable::Password,
            "temporaryAccessPass" => Variable::TemporaryAccessPass,
            "userId" => Variable::UserId,
            "tenantId" => Variable::TenantId,
            "maxExpiresAt" => Variable::MaxExpiresAt,
            _ => return None,
        })
    }

    /// The longest value, in bytes: a user principal name (Entra allows 113 characters; pool
    /// entries up to 256), a password of the longest `passwordLength`, an object id, a tenant
    /// (a domain of up to 253), an RFC 3339 time.
    pub fn longest(self) -> usize {
        match self {
            Variable::Username => 256,
            Variable::Password => 256,
            // Entra's passes are 8 to 48 characters.
            Variable::TemporaryAccessPass => 64,
            Variable::UserId => 36,
            Variable::TenantId => 253,
            Variable::MaxExpiresAt => 32,
        }
    }
}
