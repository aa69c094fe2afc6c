//! `kubectl entra revoke LEASE`: the product page's "Revoke" button. Deleting the lease ends its
//! credential (the operator's finalizer scrambles the password, revokes sessions and deletes
//! the Secret); `--wait` returns once that is done.

use std::time::Duration;

use clap::Args;
use entra_operator::api::EntraLease;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};

use crate::connect::Target;
use crate::error::{PluginError, Request, in_namespace};
use crate::{credentials, parse_wait, wait};

#[derive(Args)]
pub struct RevokeArgs {
    /// The lease.
    lease: String,
    /// Wait until the password is scrambled and the lease is gone.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "60s", value_parser = parse_wait)]
    timeout: Duration,
}

pub async fn run(target: &Target, args: RevokeArgs) -> Result<(), PluginError> {
    let lease = credentials::get_lease(target, &args.lease).await?;
    let uid = lease.uid().unwrap_or_default();
    let api: Api<EntraLease> = Api::namespaced(target.client.clone(), &target.namespace);
    let scope = in_namespace(&target.namespace);
    let request = Request {
        verb: "delete",
        resource: "entraleases",
        scope: &scope,
    };
    // Only the lease just read: a new lease under the same name is not this one.
    let params = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some(uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&args.lease, &params).await {
        Ok(_) => {}
        Err(error) if crate::error::is_status(&error, 404) => {}
        Err(error) => return Err(request.error(error)),
    }
    if !args.wait {
        println!(
            "Lease {}/{} is being revoked: its password is scrambled and its Secret deleted \
             shortly (--wait waits for it)",
            target.namespace, args.lease
        );
        return Ok(());
    }
    wait::until_deleted(&api, &args.lease, &uid, args.timeout).await?;
    println!(
        "Lease {}/{} revoked: password scrambled, sessions revoked, Secret deleted",
        target.namespace, args.lease
    );
    Ok(())
}
