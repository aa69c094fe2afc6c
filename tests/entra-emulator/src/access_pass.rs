//! Temporary Access Passes as Graph v1.0 issues them:
//! `POST /users/{id}/authentication/temporaryAccessPassMethods` answers 201 with the pass (shown
//! once), inside Graph's lifetime range (10 minutes to 30 days) and the tenant's policy; a user
//! has at most one (a new one replaces the old). The pass is a sign-in method like the others:
//! listed, and deleted through `DELETE …/temporaryAccessPassMethods/{id}`. Sign-ins with it honour
//! its start, its end and `isUsableOnce`, on the emulator's clock, which tests can move forward
//! (`POST /_emulator/clock`) instead of waiting out a pass.

use axum::{Json, http::StatusCode, response::IntoResponse};
use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use serde::Deserialize;
use serde_json::json;

use crate::{
    authz::{self, Action},
    graph_request::GraphRequest,
    methods::{MethodKind, SignInMethod},
    operation::Operation,
    recording::Reply,
    responses::GraphError,
    state::SignInResult,
    users::find_user,
};

/// Graph's own bounds on `lifetimeInMinutes`, whatever the policy says.
pub const SHORTEST_MINUTES: u32 = 10;
pub const LONGEST_MINUTES: u32 = 43_200;

/// The tenant's Temporary Access Pass policy (the authentication methods policy's
/// `temporaryAccessPass` configuration), with Entra's defaults.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PassPolicy {
    /// The method is enabled for the tenant's users.
    pub enabled: bool,
    pub minimum_lifetime_in_minutes: u32,
    pub maximum_lifetime_in_minutes: u32,
    pub default_lifetime_in_minutes: u32,
    /// Every pass is usable once, whatever the request asks.
    pub is_usable_once: bool,
}

impl Default for PassPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            minimum_lifetime_in_minutes: 60,
            maximum_lifetime_in_minutes: 480,
            default_lifetime_in_minutes: 60,
            is_usable_once: false,
        }
    }
}

/// What the emulator keeps of a pass besides its method: never serialised.
#[derive(Clone, PartialEq, Eq)]
pub struct PassDetails {
    pub code: String,
    pub starts_at: Timestamp,
    pub lifetime_in_minutes: u32,
    pub usable_once: bool,
    pub used: bool,
}

impl std::fmt::Debug for PassDetails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassDetails")
            .field("code", &"<redacted>")
            .field("starts_at", &self.starts_at)
            .field("lifetime_in_minutes", &self.lifetime_in_minutes)
            .field("usable_once", &self.usable_once)
            .field("used", &self.used)
            .finish()
    }
}

impl PassDetails {
    pub fn ends_at(&self) -> Timestamp {
        self.starts_at + SignedDuration::from_mins(i64::from(self.lifetime_in_minutes))
    }

    /// Inside its lifetime at `now` (used or not).
    pub fn live_at(&self, now: Timestamp) -> bool {
        self.starts_at <= now && now < self.ends_at()
    }

    /// Why the pass does not sign in at `now`, if it does not.
    pub fn unusable_at(&self, now: Timestamp) -> Option<&'static str> {
        if now < self.starts_at {
            Some("temporary access pass not yet valid")
        } else if now >= self.ends_at() {
            Some("temporary access pass expired")
        } else if self.usable_once && self.used {
            Some("temporary access pass already used")
        } else {
            None
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewPass {
    start_date_time: Option<Timestamp>,
    lifetime_in_minutes: Option<u32>,
    is_usable_once: Option<bool>,
}

/// `POST /users/{id}/authentication/temporaryAccessPassMethods`.
pub(crate) fn create_pass(request: &GraphRequest, key: &str, body: &[u8]) -> Reply {
    request.handle(Operation::CreatePass, |state, grant| {
        if !authz::may(grant, Action::RemoveMethods) {
            return Err(GraphError::insufficient_privileges());
        }
        let user = find_user(state, grant, key)?;
        if !authz::may_touch(grant, Action::RemoveMethods, user) {
            return Err(GraphError::insufficient_privileges());
        }
        let asked: NewPass = if body.is_empty() {
            NewPass::default()
        } else {
            serde_json::from_slice(body)
                .map_err(|error| GraphError::bad_request(format!("Invalid request body: {error}")))?
        };
        let policy = state
            .find_user(Some(&grant.tenant_id), key)
            .map(|(tenant, _)| tenant.temporary_access_pass_policy.clone())
            .unwrap_or_default();
        let lifetime = checked_lifetime(&policy, asked.lifetime_in_minutes)?;
        let now = state.now();
        let details = PassDetails {
            code: new_code(),
            starts_at: asked.start_date_time.unwrap_or(now),
            lifetime_in_minutes: lifetime,
            usable_once: policy.is_usable_once || asked.is_usable_once.unwrap_or(false),
            used: false,
        };
        let method = SignInMethod {
            id: uuid::Uuid::new_v4().to_string(),
            kind: MethodKind::TemporaryAccessPass,
            by_holder: false,
            detail: None,
            pass: Some(details.clone()),
        };
        let user = state
            .find_user_mut(Some(&grant.tenant_id), key)
            .expect("user found earlier under the same lock");
        // One pass per user: a new one replaces the old.
        user.methods
            .retain(|method| method.kind != MethodKind::TemporaryAccessPass);
        user.methods.push(method.clone());
        let body = json!({
            "@odata.type": MethodKind::TemporaryAccessPass.odata_type(),
            "id": method.id,
            "temporaryAccessPass": details.code,
            "createdDateTime": now.to_string(),
            "startDateTime": details.starts_at.to_string(),
            "lifetimeInMinutes": details.lifetime_in_minutes,
            "isUsableOnce": details.usable_once,
            "isUsable": details.unusable_at(now).is_none(),
            "methodUsabilityReason": if details.starts_at > now { "NotYetValid" } else { "EnabledByPolicy" },
        });
        Ok((StatusCode::CREATED, Json(body)).into_response())
    })
}

/// The lifetime asked for (or the policy's default), inside Graph's range and the policy's.
fn checked_lifetime(policy: &PassPolicy, asked: Option<u32>) -> Result<u32, GraphError> {
    if !policy.enabled {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "accessDenied",
            "The Temporary Access Pass authentication method is not enabled for this user by \
             the authentication methods policy.",
        ));
    }
    let lifetime = asked.unwrap_or(policy.default_lifetime_in_minutes);
    if !(SHORTEST_MINUTES..=LONGEST_MINUTES).contains(&lifetime) {
        return Err(GraphError::bad_request(format!(
            "lifetimeInMinutes must be between {SHORTEST_MINUTES} and {LONGEST_MINUTES}."
        )));
    }
    let (min, max) = (
        policy.minimum_lifetime_in_minutes,
        policy.maximum_lifetime_in_minutes,
    );
    if !(min..=max).contains(&lifetime) {
        return Err(GraphError::bad_request(format!(
            "The lifetime of {lifetime} minutes is outside the range the Temporary Access Pass \
             policy allows ({min} to {max} minutes)."
        )));
    }
    Ok(lifetime)
}

/// Entra's passes are 8 or more characters of letters, digits and symbols.
fn new_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789@#$%&";
    let mut rng = rand::rng();
    (0..12)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Would this pass sign the user in now? A pass usable once is spent by a sign-in that works.
pub fn sign_in_with_pass(
    user: &mut crate::directory::User,
    code: &str,
    now: Timestamp,
) -> SignInResult {
    let refuse = |reason: &str| SignInResult {
        ok: false,
        reason: Some(reason.to_owned()),
    };
    let Some(pass) = user
        .methods
        .iter_mut()
        .filter_map(|method| method.pass.as_mut())
        .find(|pass| pass.code == code)
    else {
        return refuse("no such temporary access pass");
    };
    if let Some(reason) = pass.unusable_at(now) {
        return refuse(reason);
    }
    if !user.account_enabled {
        return refuse("account disabled");
    }
    pass.used = true;
    SignInResult {
        ok: true,
        reason: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_outside_graphs_range_or_the_policy_are_refused() {
        let policy = PassPolicy::default();
        assert_eq!(checked_lifetime(&policy, None).unwrap(), 60);
        assert_eq!(checked_lifetime(&policy, Some(480)).unwrap(), 480);
        for wrong in [5, 59, 481, 50_000] {
            assert!(checked_lifetime(&policy, Some(wrong)).is_err(), "{wrong}");
        }
        let wide = PassPolicy {
            minimum_lifetime_in_minutes: 1,
            ..PassPolicy::default()
        };
        assert!(checked_lifetime(&wide, Some(9)).is_err(), "Graph's floor");
        let off = PassPolicy {
            enabled: false,
            ..PassPolicy::default()
        };
        assert!(checked_lifetime(&off, None).is_err());
    }

    #[test]
    fn a_pass_signs_in_only_inside_its_lifetime_and_once_when_usable_once() {
        let start = Timestamp::UNIX_EPOCH + SignedDuration::from_hours(1000);
        let mut pass = PassDetails {
            code: "x".into(),
            starts_at: start,
            lifetime_in_minutes: 60,
            usable_once: true,
            used: false,
        };
        assert!(
            pass.unusable_at(start - SignedDuration::from_secs(1))
                .is_some()
        );
        assert_eq!(pass.unusable_at(start), None);
        assert!(
            pass.unusable_at(start + SignedDuration::from_mins(60))
                .is_some()
        );
        pass.used = true;
        assert!(pass.unusable_at(start).is_some());
        assert!(!format!("{pass:?}").contains("\"x\""));
    }
}
