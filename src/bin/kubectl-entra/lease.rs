//! `kubectl entra lease POOL`: the product page's "New Lease" button. Creates the lease, waits
//! until its credential is issued and prints it.

use std::time::Duration;

use clap::Args;
use entra_operator::api::EntraLease;
use entra_operator::duration::{format_duration, parse_duration};
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::connect::Target;
use crate::error::{PluginError, Request, in_namespace};
use crate::output::{OutputArgs, print_credentials};
use crate::{credentials, parse_wait, pool_lookup, wait};

/// The operator's revocation finalizer, which every lease holds until its credential is revoked.
const REVOKE_FINALIZER: &str = "kms.hanzo.ai/revoke";

#[derive(Args)]
pub struct LeaseArgs {
    /// The pool: an EntraDynamicSecret of the namespace, or a ClusterEntraDynamicSecret.
    pool: String,
    /// How long the credential stays valid (default: the pool's defaultTTL), e.g. 1h or 30m.
    #[arg(long)]
    ttl: Option<String>,
    /// A user of the pool to lease (default: the first free one).
    #[arg(long)]
    user: Option<String>,
    /// Renew automatically when a third of the TTL remains, up to the pool's maxTTL.
    #[arg(long)]
    auto_renew: bool,
    /// A continuous lease: rotate onto another pool user before each credential's maxTTL.
    #[arg(long, conflicts_with = "user")]
    continuous: bool,
    /// With --continuous: how long both credentials stay valid at a rotation (default 10m).
    #[arg(long, requires = "continuous")]
    overlap: Option<String>,
    /// The lease's name (default: the pool's name and a random suffix).
    #[arg(long)]
    name: Option<String>,
    /// The Secret to write the credential to (default: the pool's secretPrefix and the lease's
    /// name).
    #[arg(long)]
    secret_name: Option<String>,
    /// The pool is a ClusterEntraDynamicSecret (needed when you may not read cluster pools).
    #[arg(long)]
    cluster_pool: bool,
    /// How long to wait for the credential.
    #[arg(long, default_value = "60s", value_parser = parse_wait)]
    wait: Duration,
    #[command(flatten)]
    output: OutputArgs,
}

pub async fn run(target: &Target, args: LeaseArgs) -> Result<(), PluginError> {
    let ttl = args
        .ttl
        .as_deref()
        .map(|text| {
            parse_duration(text).map_err(|error| PluginError::Usage(format!("--ttl: {error}")))
        })
        .transpose()?;
    if let Some(overlap) = &args.overlap {
        parse_duration(overlap)
            .map_err(|error| PluginError::Usage(format!("--overlap: {error}")))?;
    }
    let pool = pool_lookup::find(target, &args.pool, args.cluster_pool).await?;
    pool.check(ttl)?;
    let mut spec = json!({
        "dynamicSecretRef": { "kind": pool.kind.as_str(), "name": pool.name },
        "autoRenew": args.auto_renew,
    });
    if let Some(ttl) = ttl {
        spec["ttl"] = json!(format_duration(ttl));
    }
    if let Some(user) = &args.user {
        spec["user"] = json!(user);
    }
    if let Some(secret_name) = &args.secret_name {
        spec["secretName"] = json!(secret_name);
    }
    if args.continuous {
        spec["rotation"] = json!({ "enabled": true });
        if let Some(overlap) = &args.overlap {
            spec["rotation"]["overlap"] = json!(overlap);
        }
    }
    let mut metadata = match &args.name {
        Some(name) => json!({ "name": name }),
        None => json!({ "generateName": format!("{}-", args.pool) }),
    };
    // The operator would add it with a write of its own; the chart's admission policy does the
    // same where it is installed.
    metadata["finalizers"] = json!([REVOKE_FINALIZER]);
    let lease: EntraLease = serde_json::from_value(json!({
        "apiVersion": "kms.hanzo.ai/v1alpha1",
        "kind": "EntraLease",
        "metadata": metadata,
        "spec": spec,
    }))
    .expect("the lease is well-formed");
    let api: Api<EntraLease> = Api::namespaced(target.client.clone(), &target.namespace);
    let scope = in_namespace(&target.namespace);
    let request = Request {
        verb: "create",
        resource: "entraleases",
        scope: &scope,
    };
    let created =
        api.create(&PostParams::default(), &lease)
            .await
            .map_err(|error| match error {
                // The CRD's validation message says what is wrong with the spec.
                kube::Error::Api(status) if status.code == 422 => {
                    PluginError::Usage(format!("the lease was refused: {}", status.message))
                }
                kube::Error::Api(status) if status.code == 409 => PluginError::Usage(format!(
                    "a lease named {} already exists in namespace {}",
                    args.name.as_deref().unwrap_or_default(),
                    target.namespace
                )),
                other => request.error(other),
            })?;
    let name = created.name_any();
    eprintln!(
        "Lease {}/{name} created; waiting up to {} for its credential",
        target.namespace,
        format_duration(args.wait)
    );
    let active = wait::until_active(&api, &name, args.wait).await?;
    let held = credentials::read(target, &active).await?;
    print_credentials(&held, &args.output)
}
