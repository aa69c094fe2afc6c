//! The Entra ID user a lease holds, in its status and in a continuous lease's previous
//! credential. Its own file, below both `lease` and `rotation`, so that neither imports the other.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The Entra ID user held by a lease.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LeasedUser {
    /// The user's principal name, the username of the credentials.
    pub user_principal_name: String,
    /// The user's object ID.
    pub id: String,
}
