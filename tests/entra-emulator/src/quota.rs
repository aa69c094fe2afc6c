//! The throttling quota a test sets: Entra's token buckets for identity and access
//! (`shared/entra-graph.md`, "Throttling"), each scope optional. Off unless set, so tests that do
//! not ask for throttling never meet it. The buckets' levels are in `token_buckets`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A token bucket that holds at most `capacity` tokens and refills `capacity` per `window_ms`,
/// continuously (not all at once at the end of the window). It starts full.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bucket {
    pub capacity: u32,
    pub window_ms: u64,
}

impl Bucket {
    pub fn new(capacity: u32, window: Duration) -> Bucket {
        Bucket {
            capacity,
            window_ms: window.as_millis().try_into().unwrap_or(u64::MAX),
        }
    }

    fn validate(&self, least_capacity: u32) -> Result<(), String> {
        if self.capacity < least_capacity {
            return Err(format!("capacity must be at least {least_capacity}"));
        }
        if self.window_ms == 0 {
            return Err("windowMs must be above 0".into());
        }
        Ok(())
    }
}

/// The limits in force. A scope left out has no limit.
///
/// JSON: `{"appTenantWrites":{"capacity":3,"windowMs":1000},"tenantWrites":{...},
/// "appWrites":{...},"appTenantReadUnits":{...}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quota {
    /// Writes (every Graph POST, PATCH and DELETE) per app and tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_tenant_writes: Option<Bucket>,
    /// Writes per tenant, all apps together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_writes: Option<Bucket>,
    /// Writes per app, all tenants together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_writes: Option<Bucket>,
    /// Resource units of reads per app and tenant: `GET` user 2, `$select` -1, `$expand` +1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_tenant_read_units: Option<Bucket>,
}

/// The most a single read costs; a read bucket smaller than this could never let it through.
pub const MAX_READ_UNITS: u32 = 3;

impl Quota {
    /// Entra's documented limits, with the read limit of a tenant of under 50 users.
    pub fn documented() -> Quota {
        Quota {
            app_tenant_writes: Some(Bucket::new(3_000, Duration::from_secs(150))),
            tenant_writes: Some(Bucket::new(18_000, Duration::from_secs(300))),
            app_writes: Some(Bucket::new(35_000, Duration::from_secs(300))),
            app_tenant_read_units: Some(Bucket::new(3_500, Duration::from_secs(10))),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let writes = [
            ("appTenantWrites", self.app_tenant_writes),
            ("tenantWrites", self.tenant_writes),
            ("appWrites", self.app_writes),
        ];
        for (name, bucket) in writes {
            if let Some(bucket) = bucket {
                bucket.validate(1).map_err(|why| format!("{name}: {why}"))?;
            }
        }
        if let Some(bucket) = self.app_tenant_read_units {
            bucket
                .validate(MAX_READ_UNITS)
                .map_err(|why| format!("appTenantReadUnits: {why}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_camel_case_and_strict() {
        let quota: Quota = serde_json::from_str(
            r#"{"appTenantWrites":{"capacity":3,"windowMs":1000},"appTenantReadUnits":{"capacity":10,"windowMs":500}}"#,
        )
        .unwrap();
        assert_eq!(
            quota.app_tenant_writes,
            Some(Bucket::new(3, Duration::from_secs(1)))
        );
        assert_eq!(quota.tenant_writes, None);
        assert!(
            serde_json::from_str::<Quota>(r#"{"writes":{"capacity":1,"windowMs":1}}"#).is_err()
        );
        assert!(
            serde_json::from_str::<Quota>(r#"{"appWrites":{"capacity":1,"windowMs":1,"x":0}}"#)
                .is_err()
        );
    }

    #[test]
    fn empty_buckets_and_instant_windows_are_refused() {
        let zero = Quota {
            tenant_writes: Some(Bucket::new(0, Duration::from_secs(1))),
            ..Quota::default()
        };
        assert!(zero.validate().unwrap_err().contains("tenantWrites"));
        let instant = Quota {
            app_writes: Some(Bucket::new(1, Duration::ZERO)),
            ..Quota::default()
        };
        assert!(instant.validate().unwrap_err().contains("windowMs"));
        let tiny_reads = Quota {
            app_tenant_read_units: Some(Bucket::new(2, Duration::from_secs(1))),
            ..Quota::default()
        };
        assert!(tiny_reads.validate().is_err());
        assert!(Quota::documented().validate().is_ok());
    }
}
