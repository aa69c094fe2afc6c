//! The cluster and namespace to act on, chosen the way kubectl chooses them.

use std::path::PathBuf;

use clap::Args;
use k8s_openapi::NamespaceResourceScope;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, Resource};

use crate::error::{PluginError, in_namespace};

#[derive(Args)]
pub struct KubeArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    context: Option<String>,
    /// The namespace (default: the context's namespace, then "default").
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    /// Every namespace (leases and pools).
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
}

/// Where commands act.
pub struct Target {
    pub client: Client,
    pub namespace: String,
    pub all_namespaces: bool,
}

impl Target {
    /// The API to list `K` with: in the namespace, or in every one with `-A`; and where, for
    /// messages.
    pub fn listing<K>(&self) -> (Api<K>, String)
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        if self.all_namespaces {
            (Api::all(self.client.clone()), "the cluster".to_owned())
        } else {
            (
                Api::namespaced(self.client.clone(), &self.namespace),
                in_namespace(&self.namespace),
            )
        }
    }
}

impl KubeArgs {
    pub async fn connect(self) -> Result<Target, PluginError> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        };
        let config = match (&self.kubeconfig, &self.context) {
            (Some(path), _) => {
                let kubeconfig = Kubeconfig::read_from(path).map_err(|error| {
                    PluginError::Config(format!("kubeconfig {}: {error}", path.display()))
                })?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(config_error)?
            }
            (None, Some(_)) => Config::from_kubeconfig(&options)
                .await
                .map_err(config_error)?,
            (None, None) => Config::infer().await.map_err(config_error)?,
        };
        let namespace = self
            .namespace
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config)
            .map_err(|error| PluginError::Config(format!("cannot build a client: {error}")))?;
        Ok(Target {
            client,
            namespace,
            all_namespaces: self.all_namespaces,
        })
    }
}

fn config_error(error: impl std::fmt::Display) -> PluginError {
    PluginError::Config(error.to_string())
}
