//! The sweep of the operator's credential copies: those no claim refers to and no pool uses go,
//! so that a rotated or abandoned app credential is not kept for ever.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::context::Context;

/// How often the credential copies nobody needs are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Deletes, every [`SWEEP_EVERY`], the credential copies no claim refers to and no pool uses.
pub async fn sweep_credential_copies(ctx: Arc<Context>) {
    let mut ticks = tokio::time::interval(SWEEP_EVERY);
    loop {
        ticks.tick().await;
        let referenced: HashSet<String> = ctx
            .claim_cache
            .find(ctx.claims.namespace(), |claim| claim.record.is_some())
            .into_iter()
            .filter_map(|(_, claim)| claim.record?.app.credential.secret_name.clone())
            .collect();
        if let Err(error) = ctx.copies.sweep(&referenced).await {
            tracing::warn!(%error, "could not sweep the credential copies");
        }
    }
}
