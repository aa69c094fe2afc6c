//! A lease's claims read live, found without a LIST: by the names this process created for it
//! and, for a lease older than the process, by what the claim cache shows it holding.

use kube::ResourceExt;

use super::Context;
use crate::api::EntraLease;
use crate::controller::claims::LeaseClaims;

impl Context {
    /// The claims `lease` holds, each read from the API server.
    pub async fn live_claims_of(&self, lease: &EntraLease) -> kube::Result<LeaseClaims> {
        let uid = lease.uid().unwrap_or_default();
        // A lease younger than the process has only claims this process created; an older one
        // may hold claims of an earlier process, which the cache's first full list holds.
        let known = if self
            .claims
            .all_created_here(lease.metadata.creation_timestamp.as_ref())
        {
            Vec::new()
        } else {
            self.cached_claims_where(|claim| claim.is_held_by(Some(&uid)))
        };
        self.claims.held_by(&uid, known).await
    }
}
