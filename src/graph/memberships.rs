//! Reading a user's memberships (`GET /users/{id}/transitiveMemberOf`) to tell, before any
//! password write, whether a User Administrator may reset it.
//!
//! Application permission: `User.Read.All` lists them, but Graph then hides the properties of
//! roles and groups the app may not read (`roleTemplateId` needs `RoleManagement.Read.Directory`
//! or `Directory.Read.All`; `isAssignableToRole` needs `GroupMember.Read.All` or more), which
//! leaves the answer [`Protection::Undecided`].

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use url::Url;

use super::client::{GraphClient, GraphRequest};
use super::credentials::AppCredentials;
use super::error::GraphError;
use super::protected_roles::{Membership, Protection, protection};
use super::users::{failure, user_url};

/// Derived-type properties are selectable on a directoryObject collection; these decide.
const MEMBERSHIP_SELECT: &str = "id,displayName,isAssignableToRole,roleTemplateId";
/// Graph pages at 100 by default; a user in more than this many pages of groups is left undecided
/// rather than costing unbounded reads.
const MAX_PAGES: usize = 20;

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    value: Vec<Membership>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

impl GraphClient {
    /// Whether `user_id` is protected from a User Administrator, as far as its transitive
    /// memberships tell. A 403 is [`Protection::Unreadable`], not an error: the app was not
    /// granted a permission to read memberships, and the first password write will tell instead.
    pub async fn user_protection(
        &self,
        app: &AppCredentials,
        user_id: &str,
    ) -> Result<Protection, GraphError> {
        const OPERATION: &str = "list memberships";
        let mut url = user_url(app, user_id, Some("transitiveMemberOf"))?;
        url.set_query(Some(&format!("$select={MEMBERSHIP_SELECT}")));
        let mut memberships = Vec::new();
        for _ in 0..MAX_PAGES {
            let request = GraphRequest {
                operation: OPERATION,
                method: Method::GET,
                url,
                json_body: None,
            };
            let response = self.call(app, &request).await?;
            if response.status == StatusCode::FORBIDDEN {
                return Ok(Protection::Unreadable);
            }
            if !response.status.is_success() {
                return Err(failure(OPERATION, user_id, &response));
            }
            let malformed = || GraphError::MalformedResponse {
                operation: OPERATION,
                status: response.status.as_u16(),
                diagnostics: response.graph_diagnostics(),
            };
            let page: Page = serde_json::from_slice(&response.body).map_err(|_| malformed())?;
            memberships.extend(page.value);
            // A protecting membership on this page settles it: no need to read further pages.
            if protection(&memberships) == Protection::Protected {
                return Ok(Protection::Protected);
            }
            match page.next_link {
                None => return Ok(protection(&memberships)),
                Some(next) => url = next_page(&request.url, &next).ok_or_else(malformed)?,
            }
        }
        Ok(Protection::Undecided)
    }
}

/// The next page's URL, only on the Graph host the first page came from: the bearer token goes
/// with it, so a link elsewhere (a tampered or misrouted answer) is refused.
fn next_page(current: &Url, next_link: &str) -> Option<Url> {
    let next = Url::parse(next_link).ok()?;
    (next.origin() == current.origin()).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_stay_on_the_graph_host() {
        let current =
            Url::parse("https://graph.microsoft.com/v1.0/users/u/transitiveMemberOf").unwrap();
        let same = "https://graph.microsoft.com/v1.0/users/u/transitiveMemberOf?$skiptoken=x";
        assert_eq!(next_page(&current, same).unwrap().as_str(), same);
        for elsewhere in [
            "https://evil.example/v1.0/users/u/transitiveMemberOf?$skiptoken=x",
            "http://graph.microsoft.com/v1.0/users/u/transitiveMemberOf",
            "https://graph.microsoft.com:8443/v1.0/users/u/transitiveMemberOf",
            "/v1.0/users/u/transitiveMemberOf",
        ] {
            assert!(next_page(&current, elsewhere).is_none(), "{elsewhere}");
        }
    }
}
