use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The Microsoft cloud a tenant lives in. It picks the authority host, the Graph root and the token
/// scope together, since tokens from one cloud do not work in another.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Cloud {
    /// Microsoft Entra ID global service (login.microsoftonline.com, graph.microsoft.com).
    #[default]
    AzurePublic,
    /// Azure Government (login.microsoftonline.us, graph.microsoft.us).
    AzureUSGovernment,
    /// Azure operated by 21Vianet (login.partner.microsoftonline.cn, microsoftgraph.chinacloudapi.cn).
    AzureChina,
}
