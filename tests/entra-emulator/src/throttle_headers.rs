//! Entra's throttling headers: on a 429, `Retry-After`, `x-ms-throttle-scope` and
//! `x-ms-throttle-information`; on every answered Graph request, `x-ms-resource-unit` and, from
//! 80 % of a limit used, `x-ms-throttle-limit-percentage`.
//!
//! `x-ms-throttle-scope` is `{Scope}/{Limit}/{ApplicationId}/{TenantId}`, and an id the scope
//! does not span is left empty: `Tenant_Application/Write/{appId}/{tenantId}`,
//! `Tenant/Write//{tenantId}`, `Application/Write/{appId}/`.

use axum::{
    http::{HeaderMap, HeaderName, HeaderValue, header::RETRY_AFTER},
    response::Response,
};

use crate::{
    responses::{RequestIds, too_many_requests},
    token_buckets::{Limit, Refusal, Scope},
};

const THROTTLE_SCOPE: HeaderName = HeaderName::from_static("x-ms-throttle-scope");
const THROTTLE_INFORMATION: HeaderName = HeaderName::from_static("x-ms-throttle-information");
const RESOURCE_UNIT: HeaderName = HeaderName::from_static("x-ms-resource-unit");
const LIMIT_PERCENTAGE: HeaderName = HeaderName::from_static("x-ms-throttle-limit-percentage");

/// The limit a 429 blames, with the ids of the app and tenant it was counted for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Throttled {
    pub scope: Scope,
    pub limit: Limit,
    pub app_id: String,
    pub tenant_id: String,
}

impl Throttled {
    /// `x-ms-throttle-scope`.
    pub fn scope_header(&self) -> String {
        let scope = match self.scope {
            Scope::TenantApplication => "Tenant_Application",
            Scope::Tenant => "Tenant",
            Scope::Application => "Application",
        };
        let app_id = if self.scope == Scope::Tenant {
            ""
        } else {
            &self.app_id
        };
        let tenant_id = if self.scope == Scope::Application {
            ""
        } else {
            &self.tenant_id
        };
        format!("{scope}/{}/{app_id}/{tenant_id}", self.limit_name())
    }

    /// `x-ms-throttle-information`.
    pub fn information_header(&self) -> String {
        format!("{}LimitExceeded", self.limit_name())
    }

    fn limit_name(&self) -> &'static str {
        match self.limit {
            Limit::Write => "Write",
            Limit::Read => "Read",
        }
    }

    /// Adds the scope and information headers to a 429.
    pub fn mark(&self, headers: &mut HeaderMap) {
        for (name, value) in [
            (THROTTLE_SCOPE, self.scope_header()),
            (THROTTLE_INFORMATION, self.information_header()),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
}

/// The 429 of a request the quota refused.
pub fn quota_refusal(
    refusal: &Refusal,
    app_id: &str,
    tenant_id: &str,
    ids: &RequestIds,
) -> Response {
    let mut response = too_many_requests(ids);
    let headers = response.headers_mut();
    headers.insert(RETRY_AFTER, HeaderValue::from(refusal.retry_after_seconds));
    Throttled {
        scope: refusal.scope,
        limit: refusal.limit,
        app_id: app_id.to_owned(),
        tenant_id: tenant_id.to_owned(),
    }
    .mark(headers);
    response
}

/// What the request cost and, near a limit, how much of it is used.
pub fn set_usage(headers: &mut HeaderMap, resource_units: u32, limit_percentage: Option<u8>) {
    headers.insert(RESOURCE_UNIT, HeaderValue::from(resource_units));
    if let Some(percentage) = limit_percentage {
        headers.insert(LIMIT_PERCENTAGE, HeaderValue::from(u16::from(percentage)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttled(scope: Scope, limit: Limit) -> Throttled {
        Throttled {
            scope,
            limit,
            app_id: "app".into(),
            tenant_id: "tenant".into(),
        }
    }

    #[test]
    fn scope_names_only_the_ids_it_spans() {
        let header = |scope, limit| throttled(scope, limit).scope_header();
        assert_eq!(
            header(Scope::TenantApplication, Limit::Write),
            "Tenant_Application/Write/app/tenant"
        );
        assert_eq!(header(Scope::Tenant, Limit::Write), "Tenant/Write//tenant");
        assert_eq!(
            header(Scope::Application, Limit::Write),
            "Application/Write/app/"
        );
        assert_eq!(
            header(Scope::TenantApplication, Limit::Read),
            "Tenant_Application/Read/app/tenant"
        );
    }

    #[test]
    fn information_names_the_limit() {
        assert_eq!(
            throttled(Scope::Tenant, Limit::Write).information_header(),
            "WriteLimitExceeded"
        );
        assert_eq!(
            throttled(Scope::TenantApplication, Limit::Read).information_header(),
            "ReadLimitExceeded"
        );
    }
}
