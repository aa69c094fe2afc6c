//! The Secret types a lease's Secret may have. Kubernetes acts on some types by itself (it fills a
//! `kubernetes.io/service-account-token` Secret with a token of the ServiceAccount it names), and
//! other controllers act on others, so a lease user who may only create `entraleases` must not
//! choose any type through the operator: the cluster administrator lists the ones allowed.

use std::fmt;

/// Never allowed, whatever the list says: the API server would mint a token into it for the
/// ServiceAccount its annotation names, with that ServiceAccount's rights. The CRD refuses it
/// too, but a cluster may run older CRDs than its operator.
pub const SERVICE_ACCOUNT_TOKEN: &str = "kubernetes.io/service-account-token";

/// The type of a Secret that names none.
pub const OPAQUE: &str = "Opaque";

/// The list's default: plain data and username/password pairs, which nothing acts on.
pub const DEFAULT_TYPES: &str = "Opaque,kubernetes.io/basic-auth";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretTypes(Vec<String>);

impl SecretTypes {
    /// The allowed types, refusing an empty list, an empty entry and the ServiceAccount token.
    pub fn new(types: impl IntoIterator<Item = String>) -> Result<SecretTypes, String> {
        let mut allowed = Vec::new();
        for kind in types {
            let kind = kind.trim().to_owned();
            if kind.is_empty() {
                return Err("an empty Secret type in the list".into());
            }
            if kind == SERVICE_ACCOUNT_TOKEN {
                return Err(format!(
                    "{SERVICE_ACCOUNT_TOKEN} cannot be allowed: Kubernetes fills such a Secret with \
                     a token of the ServiceAccount it names"
                ));
            }
            if !allowed.contains(&kind) {
                allowed.push(kind);
            }
        }
        if allowed.is_empty() {
            return Err("no Secret type allowed".into());
        }
        Ok(SecretTypes(allowed))
    }

    /// Parses the comma-separated list of the `--lease-secret-types` flag.
    pub fn parse(list: &str) -> Result<SecretTypes, String> {
        SecretTypes::new(list.split(',').map(str::to_owned))
    }

    /// Whether a lease's Secret may have `kind` (`None`: no type asked, so `Opaque`).
    pub fn check(&self, kind: Option<&str>) -> Result<(), SecretTypeRefused> {
        let kind = kind.unwrap_or(OPAQUE);
        if kind != SERVICE_ACCOUNT_TOKEN && self.0.iter().any(|allowed| allowed == kind) {
            return Ok(());
        }
        Err(SecretTypeRefused {
            kind: kind.to_owned(),
            allowed: self.clone(),
        })
    }
}

impl Default for SecretTypes {
    fn default() -> Self {
        SecretTypes::parse(DEFAULT_TYPES).expect("the default list is valid")
    }
}

impl fmt::Display for SecretTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

/// A lease asked for a Secret type the cluster administrator did not allow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "Secret type {kind} is not allowed for lease Secrets here (allowed: {allowed}; the cluster \
     administrator lists them in the chart value leaseSecrets.allowedTypes)"
)]
pub struct SecretTypeRefused {
    pub kind: String,
    pub allowed: SecretTypes,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_allows_opaque_and_basic_auth_and_no_type_means_opaque() {
        let types = SecretTypes::default();
        assert_eq!(types.check(None), Ok(()));
        assert_eq!(types.check(Some("Opaque")), Ok(()));
        assert_eq!(types.check(Some("kubernetes.io/basic-auth")), Ok(()));
        let refused = types
            .check(Some("kubernetes.io/dockerconfigjson"))
            .unwrap_err();
        assert_eq!(refused.kind, "kubernetes.io/dockerconfigjson");
        assert!(
            refused
                .to_string()
                .contains("allowed: Opaque, kubernetes.io/basic-auth")
        );
    }

    #[test]
    fn a_service_account_token_is_never_allowed() {
        assert!(SecretTypes::parse("Opaque,kubernetes.io/service-account-token").is_err());
        // Even a list built around the parser refuses it at the check.
        let forged = SecretTypes(vec![SERVICE_ACCOUNT_TOKEN.to_owned()]);
        assert!(forged.check(Some(SERVICE_ACCOUNT_TOKEN)).is_err());
    }

    #[test]
    fn a_list_must_name_something() {
        assert!(SecretTypes::parse("").is_err());
        assert!(SecretTypes::parse("Opaque,,kubernetes.io/tls").is_err());
        assert_eq!(
            SecretTypes::parse(" Opaque , kubernetes.io/tls,Opaque").unwrap(),
            SecretTypes(vec!["Opaque".into(), "kubernetes.io/tls".into()])
        );
    }
}
