//! Workload identity federation: the app proves its identity with a token another issuer signed
//! (a Kubernetes projected service-account token), which Entra checks against the app's
//! federated identity credentials. No secret is stored anywhere.

use std::fmt;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use zeroize::Zeroizing;

use crate::sensitive::SecretString;

use super::error::GraphError;

/// The condition reason of a token file that cannot be read.
pub const FEDERATED_TOKEN_UNAVAILABLE: &str = "FederatedTokenUnavailable";

/// Where federated assertions come from. Asked only when an access token must be requested, so a
/// source may do I/O (read a file, call the TokenRequest API) on every call.
pub trait FederatedTokenSource: Send + Sync + fmt::Debug {
    /// A stable name for the source, which keys the access-token cache: e.g.
    /// `serviceaccount:entra-operator/pool-a` or `file:/var/run/secrets/azure/tokens/token`.
    /// Never the token itself.
    fn identity(&self) -> String;

    /// A fresh assertion (a projected service-account token).
    fn token(&self) -> BoxFuture<'_, Result<SecretString, GraphError>>;
}

/// A token file the kubelet keeps fresh, such as the Azure workload identity webhook's
/// `AZURE_FEDERATED_TOKEN_FILE`. Read anew on every call: the kubelet rotates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FederatedTokenFile {
    path: PathBuf,
}

impl FederatedTokenFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl FederatedTokenSource for FederatedTokenFile {
    fn identity(&self) -> String {
        format!("file:{}", self.path.display())
    }

    fn token(&self) -> BoxFuture<'_, Result<SecretString, GraphError>> {
        Box::pin(async move {
            let path = self.path.display();
            // io errors name the failure (not found, permission denied), never the content.
            let content = Zeroizing::new(tokio::fs::read_to_string(&self.path).await.map_err(
                |error| GraphError::AssertionUnavailable {
                    reason: FEDERATED_TOKEN_UNAVAILABLE,
                    message: format!("cannot read the federated token file {path}: {error}"),
                },
            )?);
            let token = content.trim();
            if token.is_empty() {
                return Err(GraphError::AssertionUnavailable {
                    reason: FEDERATED_TOKEN_UNAVAILABLE,
                    message: format!("the federated token file {path} is empty"),
                });
            }
            Ok(SecretString::from(token))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensitive::ExposeSecret;

    #[tokio::test]
    async fn the_file_is_read_again_on_every_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let source = FederatedTokenFile::new(&path);
        std::fs::write(&path, "first.token.value\n").unwrap();
        assert_eq!(
            source.token().await.unwrap().expose_secret(),
            "first.token.value"
        );
        std::fs::write(&path, "rotated.token.value").unwrap();
        assert_eq!(
            source.token().await.unwrap().expose_secret(),
            "rotated.token.value"
        );
    }

    #[tokio::test]
    async fn missing_or_empty_file_is_a_configuration_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let source = FederatedTokenFile::new(&path);
        let missing = source.token().await.unwrap_err();
        std::fs::write(&path, " \n").unwrap();
        let empty = source.token().await.unwrap_err();
        for error in [missing, empty] {
            assert_eq!(error.reason(), FEDERATED_TOKEN_UNAVAILABLE);
            assert!(
                error.to_string().contains(&path.display().to_string()),
                "{error}"
            );
        }
    }

    #[test]
    fn identity_names_the_path() {
        let source = FederatedTokenFile::new("/var/run/secrets/azure/tokens/azure-identity-token");
        assert_eq!(
            source.identity(),
            "file:/var/run/secrets/azure/tokens/azure-identity-token"
        );
    }
}
