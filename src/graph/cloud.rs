//! Which Entra cloud a tenant lives in, and the endpoints that follow from it.
//!
//! Authority host, Graph root and token scope are picked together: a token from one cloud does not
//! work in another. Overrides exist for the operator only (flags and environment), never for a custom
//! resource, so a namespace user cannot point the operator's requests at a host of their choosing.

use std::fmt;

use url::{Host, Url};

use super::error::GraphError;
/// The cloud is a field of the custom resource; its endpoints are defined here.
pub use crate::api::Cloud;

impl Cloud {
    /// The cloud's token authority, e.g. `https://login.microsoftonline.com`.
    pub fn authority_host(self) -> &'static str {
        match self {
            Cloud::AzurePublic => "https://login.microsoftonline.com",
            Cloud::AzureUSGovernment => "https://login.microsoftonline.us",
            // Graph's docs also name login.chinacloudapi.cn; both reach the same authority.
            Cloud::AzureChina => "https://login.partner.microsoftonline.cn",
        }
    }

    /// The audience a federated identity credential of the cloud takes, which the exchanged
    /// token must carry (Microsoft's federated identity credential docs: Fairfax and Mooncake
    /// have their own).
    pub fn token_exchange_audience(self) -> &'static str {
        match self {
            Cloud::AzurePublic => "api://AzureADTokenExchange",
            Cloud::AzureUSGovernment => "api://AzureADTokenExchangeUSGov",
            Cloud::AzureChina => "api://AzureADTokenExchangeChina",
        }
    }

    /// The cloud's Microsoft Graph root, e.g. `https://graph.microsoft.com`.
    pub fn graph_root(self) -> &'static str {
        match self {
            Cloud::AzurePublic => "https://graph.microsoft.com",
            Cloud::AzureUSGovernment => "https://graph.microsoft.us",
            Cloud::AzureChina => "https://microsoftgraph.chinacloudapi.cn",
        }
    }
}

impl fmt::Display for Cloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cloud::AzurePublic => "AzurePublic",
            Cloud::AzureUSGovernment => "AzureUSGovernment",
            Cloud::AzureChina => "AzureChina",
        })
    }
}

/// Operator-level replacements for a cloud's authority host and Graph root (flags
/// `--authority-host`/`--graph-endpoint`). Validated on construction: `https`, or `http` to a
/// loopback host only; no credentials, query or fragment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointOverrides {
    authority_host: Option<Url>,
    graph_root: Option<Url>,
}

impl EndpointOverrides {
    /// No overrides: every cloud uses its own endpoints.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn new(authority_host: Option<Url>, graph_root: Option<Url>) -> Result<Self, GraphError> {
        if let Some(url) = &authority_host {
            check_endpoint("authority host", url)?;
        }
        if let Some(url) = &graph_root {
            check_endpoint("Graph endpoint", url)?;
        }
        Ok(Self {
            authority_host,
            graph_root,
        })
    }

    /// Parses the overrides from flag or environment strings; empty strings count as absent.
    pub fn parse(
        authority_host: Option<&str>,
        graph_root: Option<&str>,
    ) -> Result<Self, GraphError> {
        Self::new(
            parse_endpoint("authority host", authority_host)?,
            parse_endpoint("Graph endpoint", graph_root)?,
        )
    }

    pub fn authority_host(&self) -> Option<&Url> {
        self.authority_host.as_ref()
    }

    pub fn graph_root(&self) -> Option<&Url> {
        self.graph_root.as_ref()
    }
}

/// The endpoints one app talks to: where it gets tokens, where it calls Graph, and the scope that
/// makes the token valid there.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Endpoints {
    authority_host: Url,
    graph_root: Url,
    scope: String,
}

impl Endpoints {
    /// The endpoints of `cloud`, with the operator's overrides applied.
    pub fn resolve(cloud: Cloud, overrides: &EndpointOverrides) -> Self {
        let authority_host = overrides
            .authority_host
            .clone()
            .unwrap_or_else(|| builtin_url(cloud.authority_host()));
        let graph_root = overrides
            .graph_root
            .clone()
            .unwrap_or_else(|| builtin_url(cloud.graph_root()));
        let scope = format!("{}/.default", graph_root.as_str().trim_end_matches('/'));
        Self {
            authority_host,
            graph_root,
            scope,
        }
    }

    /// The endpoints of `cloud` without overrides.
    pub fn for_cloud(cloud: Cloud) -> Self {
        Self::resolve(cloud, &EndpointOverrides::none())
    }

    pub fn authority_host(&self) -> &Url {
        &self.authority_host
    }

    pub fn graph_root(&self) -> &Url {
        &self.graph_root
    }

    /// `{graph root}/.default`: every application permission granted to the app.
    pub fn scope(&self) -> &str {
        &self.scope
    }
}

fn builtin_url(value: &'static str) -> Url {
    Url::parse(value).expect("built-in cloud endpoints are valid URLs")
}

fn parse_endpoint(what: &str, value: Option<&str>) -> Result<Option<Url>, GraphError> {
    match value.map(str::trim).filter(|value| !value.is_empty()) {
        None => Ok(None),
        Some(value) => Url::parse(value)
            .map(Some)
            // The value is not echoed: a malformed URL may still carry credentials.
            .map_err(|error| GraphError::Config(format!("{what} is not a valid URL: {error}"))),
    }
}

fn check_endpoint(what: &str, url: &Url) -> Result<(), GraphError> {
    let invalid = |why: &str| Err(GraphError::Config(format!("{what} {url}: {why}")));
    if !url.username().is_empty() || url.password().is_some() {
        // Printing the URL would print the credentials.
        return Err(GraphError::Config(format!(
            "{what}: the URL must not carry credentials"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return invalid("must not have a query or fragment");
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => invalid(
            "plain http is accepted only for loopback hosts (127.0.0.0/8, ::1, localhost); use https",
        ),
        _ => invalid("the scheme must be https"),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cloud_has_a_coherent_triple() {
        let cases = [
            (
                Cloud::AzurePublic,
                "https://login.microsoftonline.com/",
                "https://graph.microsoft.com/.default",
            ),
            (
                Cloud::AzureUSGovernment,
                "https://login.microsoftonline.us/",
                "https://graph.microsoft.us/.default",
            ),
            (
                Cloud::AzureChina,
                "https://login.partner.microsoftonline.cn/",
                "https://microsoftgraph.chinacloudapi.cn/.default",
            ),
        ];
        for (cloud, authority, scope) in cases {
            let endpoints = Endpoints::for_cloud(cloud);
            assert_eq!(endpoints.authority_host().as_str(), authority);
            assert_eq!(endpoints.scope(), scope);
            assert!(scope.starts_with(endpoints.graph_root().as_str()));
        }
    }

    #[test]
    fn default_cloud_is_public_and_serializes_by_name() {
        assert_eq!(Cloud::default(), Cloud::AzurePublic);
        assert_eq!(
            serde_json::to_string(&Cloud::AzureUSGovernment).unwrap(),
            "\"AzureUSGovernment\""
        );
        let parsed: Cloud = serde_json::from_str("\"AzureChina\"").unwrap();
        assert_eq!(parsed, Cloud::AzureChina);
    }

    #[test]
    fn overrides_replace_hosts_and_the_scope_follows_the_graph_root() {
        let overrides = EndpointOverrides::parse(
            Some("http://127.0.0.1:8443"),
            Some("https://dod-graph.microsoft.us"),
        )
        .unwrap();
        let endpoints = Endpoints::resolve(Cloud::AzureUSGovernment, &overrides);
        assert_eq!(
            endpoints.authority_host().as_str(),
            "http://127.0.0.1:8443/"
        );
        assert_eq!(endpoints.scope(), "https://dod-graph.microsoft.us/.default");
    }

    #[test]
    fn plain_http_is_refused_unless_loopback() {
        for accepted in [
            "http://127.0.0.1:1234",
            "http://127.8.9.10",
            "http://[::1]:80",
            "http://localhost:9",
            "https://graph.example.com",
        ] {
            EndpointOverrides::parse(None, Some(accepted)).expect(accepted);
        }
        for refused in [
            "http://graph.example.com",
            "http://10.0.0.1",
            "http://localhost.evil.com",
            "ftp://127.0.0.1",
            "https://graph.example.com/?x=1",
        ] {
            let error = EndpointOverrides::parse(Some(refused), None).unwrap_err();
            assert_eq!(error.reason(), "InvalidConfiguration", "{refused}");
        }
        let error = EndpointOverrides::parse(Some("http://10.0.0.1"), None).unwrap_err();
        assert!(error.to_string().contains("loopback"), "{error}");
    }

    #[test]
    fn credentials_in_an_override_are_refused_without_echoing_them() {
        let error =
            EndpointOverrides::parse(Some("https://user:hunter2@login.example"), None).unwrap_err();
        assert!(!error.to_string().contains("hunter2"));
    }

    #[test]
    fn empty_override_strings_mean_none() {
        assert_eq!(
            EndpointOverrides::parse(Some(""), Some("  ")).unwrap(),
            EndpointOverrides::none()
        );
    }
}
