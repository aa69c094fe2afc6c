//! The emulator's configuration: a token lifetime and the tenants to serve, read from YAML.

use std::{collections::HashSet, path::Path};

use serde::Deserialize;

use crate::{
    certificate::{RegisteredCertificate, check_certificate_bundle},
    directory::{App, Tenant},
    error::Error,
    quota::Quota,
};

/// What the emulator serves. See `examples/tenant.yaml` for the format.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// `expires_in` of issued tokens; Entra's usual value is 3599.
    #[serde(default = "default_token_lifetime_seconds")]
    pub token_lifetime_seconds: u64,
    pub tenants: Vec<Tenant>,
    /// CA certificates (PEM) trusted, besides the system roots, when fetching a federated
    /// issuer's discovery document and keys: e.g. a test API server's own CA.
    #[serde(default, rename = "trustedIssuerCAs")]
    pub trusted_issuer_cas: Vec<String>,
    /// Lets federated credentials name plain-`http://` issuers. Entra requires https; tests
    /// with an in-process issuer may turn this on.
    #[serde(default)]
    pub allow_insecure_issuers: bool,
    /// Entra's throttling limits to enforce on Graph requests; none when absent.
    #[serde(default)]
    pub quota: Option<Quota>,
}

fn default_token_lifetime_seconds() -> u64 {
    3599
}

impl Config {
    pub fn from_yaml_str(yaml: &str) -> Result<Config, Error> {
        let config: Config = yaml_serde::from_str(yaml)?;
        config.validate()?;
        Ok(config)
    }

    pub fn from_yaml_file(path: impl AsRef<Path>) -> Result<Config, Error> {
        let path = path.as_ref();
        let yaml = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
            path: path.to_owned(),
            source,
        })?;
        Config::from_yaml_str(&yaml)
    }

    /// The sample tenant of `examples/tenant.yaml`; its ids are in [`crate::sample`].
    pub fn sample() -> Config {
        Config::from_yaml_str(include_str!("../../../examples/tenant.yaml"))
            .expect("examples/tenant.yaml is a valid emulator config")
    }

    /// Catches the mistakes a hand-written tenant file tends to have, before any test runs on it.
    fn validate(&self) -> Result<(), Error> {
        let invalid = |message: String| Err(Error::InvalidConfig(message));
        if let Some(quota) = &self.quota
            && let Err(why) = quota.validate()
        {
            return invalid(format!("quota: {why}"));
        }
        for (index, pem) in self.trusted_issuer_cas.iter().enumerate() {
            if let Err(why) = check_certificate_bundle(pem) {
                return invalid(format!("trustedIssuerCAs[{index}] {why}"));
            }
        }
        let mut tenant_names = HashSet::new();
        for tenant in &self.tenants {
            if !is_guid(&tenant.id) {
                return invalid(format!("tenant id {:?} is not a GUID", tenant.id));
            }
            for name in std::iter::once(&tenant.id).chain(&tenant.domains) {
                if !tenant_names.insert(name.to_ascii_lowercase()) {
                    return invalid(format!("tenant name {name:?} is used twice"));
                }
            }
            let mut client_ids = HashSet::new();
            for app in &tenant.apps {
                if !is_guid(&app.client_id) {
                    return invalid(format!("client id {:?} is not a GUID", app.client_id));
                }
                if !client_ids.insert(app.client_id.to_ascii_lowercase()) {
                    return invalid(format!("client id {} is used twice", app.client_id));
                }
                if let Err(why) = validate_credentials(app, self.allow_insecure_issuers) {
                    return invalid(format!("app {}: {why}", app.client_id));
                }
            }
            let mut user_keys = HashSet::new();
            for user in &tenant.users {
                if !is_guid(&user.id) {
                    return invalid(format!("user id {:?} is not a GUID", user.id));
                }
                if !user.user_principal_name.contains('@') {
                    return invalid(format!("UPN {:?} has no domain", user.user_principal_name));
                }
                for key in [&user.id, &user.user_principal_name] {
                    if !user_keys.insert(key.to_ascii_lowercase()) {
                        return invalid(format!(
                            "user {key:?} appears twice in tenant {}",
                            tenant.id
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The certificates and federated credentials of one app, as Entra checks them when they are
/// added; also used by the admin API.
pub fn validate_credentials(app: &App, allow_insecure_issuers: bool) -> Result<(), String> {
    for (index, pem) in app.certificates.iter().enumerate() {
        RegisteredCertificate::from_pem(pem)
            .map_err(|why| format!("certificates[{index}]: {why}"))?;
    }
    let mut issuer_subjects = HashSet::new();
    for (index, credential) in app.federated_credentials.iter().enumerate() {
        credential
            .validate(allow_insecure_issuers)
            .map_err(|why| format!("federatedCredentials[{index}]: {why}"))?;
        if !issuer_subjects.insert((&credential.issuer, &credential.subject)) {
            return Err(format!(
                "federatedCredentials[{index}]: issuer {:?} and subject {:?} are used twice",
                credential.issuer, credential.subject
            ));
        }
    }
    Ok(())
}

fn is_guid(text: &str) -> bool {
    text.len() == 36 && uuid::Uuid::parse_str(text).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_parses_and_has_defaults() {
        let config = Config::sample();
        assert_eq!(config.token_lifetime_seconds, 3599);
        let bob = config.tenants[0]
            .user("BOB@contoso.onmicrosoft.com")
            .unwrap();
        assert!(bob.account_enabled);
        assert!(bob.password.is_none());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error = Config::from_yaml_str("tenants: []\ntokenLifetime: 5\n").unwrap_err();
        assert!(error.to_string().contains("tokenLifetime"), "{error}");
    }

    #[test]
    fn non_guid_ids_are_refused() {
        let yaml = "tenants:\n  - id: contoso\n";
        assert!(matches!(
            Config::from_yaml_str(yaml),
            Err(Error::InvalidConfig(_))
        ));
    }

    const APP_YAML: &str = r#"
tenants:
  - id: 8f5e0a4c-3b1d-4c2e-9a7f-1d2e3f4a5b6c
    apps:
      - clientId: 3c9d2b1a-7e6f-4a5b-8c9d-0e1f2a3b4c5d
"#;

    #[test]
    fn credentials_parse_with_the_default_audience() {
        let cert = include_str!("../testdata/client-cert.pem").replace('\n', "\n            ");
        let yaml = format!(
            "{APP_YAML}        certificates:\n          - |\n            {cert}\n        federatedCredentials:\n          - {{issuer: 'https://127.0.0.1:6443', subject: 'system:serviceaccount:ns:sa'}}\n"
        );
        let config = Config::from_yaml_str(&yaml).unwrap();
        let app = &config.tenants[0].apps[0];
        assert_eq!(app.certificates.len(), 1);
        assert_eq!(
            app.federated_credentials[0].audiences,
            ["api://AzureADTokenExchange"]
        );
    }

    #[test]
    fn a_malformed_certificate_names_its_app() {
        let yaml = format!("{APP_YAML}        certificates: [not-a-pem]\n");
        let error = Config::from_yaml_str(&yaml).unwrap_err().to_string();
        assert!(
            error.contains("app 3c9d2b1a-7e6f-4a5b-8c9d-0e1f2a3b4c5d: certificates[0]"),
            "{error}"
        );
    }

    #[test]
    fn plain_http_issuers_need_the_flag() {
        let credential =
            "        federatedCredentials: [{issuer: 'http://127.0.0.1:1', subject: s}]\n";
        let yaml = format!("{APP_YAML}{credential}");
        let error = Config::from_yaml_str(&yaml).unwrap_err().to_string();
        assert!(error.contains("not an https URL"), "{error}");
        let allowed = format!("allowInsecureIssuers: true\n{yaml}");
        assert!(Config::from_yaml_str(&allowed).is_ok());
    }

    #[test]
    fn a_malformed_trusted_ca_is_refused() {
        let yaml = format!("trustedIssuerCAs: [nope]\n{APP_YAML}");
        let error = Config::from_yaml_str(&yaml).unwrap_err().to_string();
        assert!(error.contains("trustedIssuerCAs[0]"), "{error}");
    }

    #[test]
    fn a_quota_may_be_configured_and_is_checked() {
        let yaml =
            format!("quota:\n  appTenantWrites: {{capacity: 3, windowMs: 1000}}\n{APP_YAML}");
        let quota = Config::from_yaml_str(&yaml).unwrap().quota.unwrap();
        assert_eq!(quota.app_tenant_writes.unwrap().capacity, 3);
        let empty = format!("quota:\n  appWrites: {{capacity: 0, windowMs: 1000}}\n{APP_YAML}");
        let error = Config::from_yaml_str(&empty).unwrap_err().to_string();
        assert!(error.contains("quota: appWrites"), "{error}");
        assert!(Config::sample().quota.is_none());
    }

    #[test]
    fn duplicate_users_are_refused() {
        let yaml = r#"
tenants:
  - id: 8f5e0a4c-3b1d-4c2e-9a7f-1d2e3f4a5b6c
    users:
      - {id: a11ce000-0000-4000-8000-000000000001, userPrincipalName: a@x.com}
      - {id: a11ce000-0000-4000-8000-000000000002, userPrincipalName: A@x.com}
"#;
        assert!(matches!(
            Config::from_yaml_str(yaml),
            Err(Error::InvalidConfig(_))
        ));
    }
}
