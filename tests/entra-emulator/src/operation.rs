//! The operations the emulator tells apart in counters, the request log and fault plans.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Operation {
    /// `POST /{tenant}/oauth2/v2.0/token`
    Token,
    /// `GET /v1.0/users/{id}`
    GetUser,
    /// `PATCH /v1.0/users/{id}` with `passwordProfile.password` (and possibly more)
    SetPassword,
    /// `PATCH /v1.0/users/{id}` with `accountEnabled` and no password
    SetAccountEnabled,
    /// `PATCH /v1.0/users/{id}` with neither: answered 204 with no effect
    UpdateUser,
    /// `POST /v1.0/users/{id}/revokeSignInSessions`
    RevokeSignInSessions,
    /// `GET /v1.0/users/{id}/transitiveMemberOf`
    ListMemberships,
    /// `GET /v1.0/users/{id}/authentication/methods`
    ListMethods,
    /// `DELETE /v1.0/users/{id}/authentication/{kind}Methods/{methodId}`
    DeleteMethod,
    /// `POST /v1.0/users/{id}/authentication/temporaryAccessPassMethods`
    CreatePass,
}

impl Operation {
    /// All Graph operations, e.g. for `FaultPlan::only`.
    pub const GRAPH: [Operation; 9] = [
        Operation::GetUser,
        Operation::SetPassword,
        Operation::SetAccountEnabled,
        Operation::UpdateUser,
        Operation::RevokeSignInSessions,
        Operation::ListMemberships,
        Operation::ListMethods,
        Operation::DeleteMethod,
        Operation::CreatePass,
    ];

    pub fn is_graph(self) -> bool {
        self != Operation::Token
    }
}
