//! The pool a new lease names: found among both kinds, and checked before the lease is made so
//! that a typo, a broken pool or a TTL over the maximum is said at once rather than after a wait.

use std::time::Duration;

use entra_operator::api::{
    ClusterEntraDynamicSecret, DynamicSecretStatus, EntraDynamicSecret, PoolKind, PoolSpec,
};
use entra_operator::duration::{format_duration, parse_duration};
use kube::Api;

use crate::connect::Target;
use crate::error::{PluginError, Request, in_namespace, is_status};

/// A pool as the lease user may see it.
pub struct PoolView {
    pub kind: PoolKind,
    pub name: String,
    /// None when the user may not read the pool (a cluster pool, for a namespace's lease user):
    /// the lease's own status then says whether it can be issued.
    pub object: Option<(PoolSpec, Option<DynamicSecretStatus>)>,
}

/// Finds `name`: the namespace's EntraDynamicSecret first, then a ClusterEntraDynamicSecret.
/// `cluster` skips the first.
pub async fn find(target: &Target, name: &str, cluster: bool) -> Result<PoolView, PluginError> {
    let scope = in_namespace(&target.namespace);
    if !cluster {
        let api: Api<EntraDynamicSecret> =
            Api::namespaced(target.client.clone(), &target.namespace);
        let request = Request {
            verb: "get",
            resource: "entradynamicsecrets",
            scope: &scope,
        };
        match api.get_opt(name).await {
            Ok(Some(pool)) => {
                return Ok(PoolView {
                    kind: PoolKind::EntraDynamicSecret,
                    name: name.to_owned(),
                    object: Some((pool.spec.pool, pool.status)),
                });
            }
            Ok(None) => {}
            // Without the right to read pools, lease the namespace's pool by the name given;
            // the lease's own status says whether it exists.
            Err(error) if is_status(&error, 403) => {
                return Ok(PoolView {
                    kind: PoolKind::EntraDynamicSecret,
                    name: name.to_owned(),
                    object: None,
                });
            }
            Err(error) => return Err(request.error(error)),
        }
    }
    let api: Api<ClusterEntraDynamicSecret> = Api::all(target.client.clone());
    match api.get_opt(name).await {
        Ok(Some(pool)) => Ok(PoolView {
            kind: PoolKind::ClusterEntraDynamicSecret,
            name: name.to_owned(),
            object: Some((pool.spec.pool, pool.status)),
        }),
        // Lease users usually may not read cluster pools; trust the name they gave.
        Err(error) if cluster && is_status(&error, 403) => Ok(PoolView {
            kind: PoolKind::ClusterEntraDynamicSecret,
            name: name.to_owned(),
            object: None,
        }),
        Err(error) if is_status(&error, 403) => Err(PluginError::NotFound(format!(
            "no EntraDynamicSecret {name} in namespace {}, and you may not read \
             ClusterEntraDynamicSecrets to look for one; if {name} is a cluster pool, pass \
             --cluster-pool",
            target.namespace
        ))),
        Ok(None) if cluster => Err(PluginError::NotFound(format!(
            "no ClusterEntraDynamicSecret {name}; `kubectl entra pools -A` lists the pools"
        ))),
        Ok(None) => Err(PluginError::NotFound(format!(
            "no pool {name}: no EntraDynamicSecret {name} in namespace {} and no \
             ClusterEntraDynamicSecret {name}; `kubectl entra pools` lists the pools",
            target.namespace
        ))),
        Err(error) => Err(Request {
            verb: "get",
            resource: "clusterentradynamicsecrets",
            scope: "the cluster",
        }
        .error(error)),
    }
}

impl PoolView {
    /// Refuses a pool that is not Ready (with its reason) and a TTL over its maxTTL.
    pub fn check(&self, ttl: Option<Duration>) -> Result<(), PluginError> {
        let Some((spec, status)) = &self.object else {
            return Ok(());
        };
        let ready = status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
        match ready {
            Some(ready) if ready.status == "True" => {}
            Some(ready) => {
                return Err(PluginError::PoolNotReady(format!(
                    "{} {} is not Ready ({}): {}",
                    self.kind.as_str(),
                    self.name,
                    ready.reason,
                    ready.message
                )));
            }
            None => {
                return Err(PluginError::PoolNotReady(format!(
                    "{} {} is not Ready yet: the operator has not validated it (is the operator \
                     running? `kubectl entra status`)",
                    self.kind.as_str(),
                    self.name
                )));
            }
        }
        let max = parse_duration(&spec.max_ttl).ok();
        if let (Some(ttl), Some(max)) = (ttl, max)
            && ttl > max
        {
            return Err(PluginError::Usage(format!(
                "--ttl {} is over the maxTTL of {} {}, {}",
                format_duration(ttl),
                self.kind.as_str(),
                self.name,
                spec.max_ttl
            )));
        }
        Ok(())
    }
}
