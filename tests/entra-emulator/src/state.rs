//! The emulator's whole mutable state behind one mutex. Critical sections are short and never
//! span an `.await`.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{
    config::Config,
    counters::Counters,
    directory::{Tenant, User},
    error::Error,
    fault_plans::FaultPlans,
    issuer_keys::IssuerKeys,
    methods::{MethodKind, SignInMethod},
    replay::SeenAssertions,
    request_log::RequestLog,
    token::Grant,
    token_buckets::TokenBuckets,
};

/// What every handler gets: the base URL, the issuer key cache and the state.
pub struct Shared {
    /// `http://127.0.0.1:PORT`: the authority host and the Graph root at once.
    pub base_url: String,
    /// Outside the state's mutex: fetching keys awaits the network.
    pub issuer_keys: IssuerKeys,
    state: Mutex<State>,
}

pub struct State {
    pub token_lifetime: Duration,
    pub tenants: Vec<Tenant>,
    /// Issued access tokens by value.
    pub tokens: HashMap<String, Grant>,
    pub counters: Counters,
    pub request_log: RequestLog,
    pub faults: FaultPlans,
    /// The throttling quota, off unless configured or set.
    pub quota: TokenBuckets,
    pub seen_assertions: SeenAssertions,
    /// How far tests moved the emulator's clock ahead of the wall clock (Temporary Access
    /// Passes' lifetimes run on it).
    pub clock_ahead: SignedDuration,
}

/// The answer of `POST /_emulator/signin`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInResult {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Shared {
    pub fn new(config: Config, base_url: String) -> Result<Shared, Error> {
        let issuer_keys =
            IssuerKeys::new(&config.trusted_issuer_cas, config.allow_insecure_issuers)
                .map_err(Error::InvalidConfig)?;
        let started = Timestamp::now();
        let mut quota = TokenBuckets::default();
        quota.set(config.quota);
        let mut tenants = config.tenants;
        for user in tenants.iter_mut().flat_map(|t| t.users.iter_mut()) {
            user.sign_in_sessions_valid_from_date_time
                .get_or_insert(started);
        }
        let state = State {
            token_lifetime: Duration::from_secs(config.token_lifetime_seconds),
            tenants,
            tokens: HashMap::new(),
            counters: Counters::default(),
            request_log: RequestLog::default(),
            faults: FaultPlans::default(),
            quota,
            seen_assertions: SeenAssertions::default(),
            clock_ahead: SignedDuration::ZERO,
        };
        Ok(Shared {
            base_url,
            issuer_keys,
            state: Mutex::new(state),
        })
    }

    /// A panic in one handler must not wedge every later test request, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// The emulator's clock: the wall clock, moved ahead as far as tests asked.
    pub fn now(&self) -> Timestamp {
        Timestamp::now() + self.clock_ahead
    }

    /// Would this Temporary Access Pass sign the user in now? (A pass usable once is spent.)
    pub fn sign_in_with_pass(
        &mut self,
        tenant: Option<&str>,
        id_or_upn: &str,
        code: &str,
    ) -> SignInResult {
        let now = self.now();
        match self.find_user_mut(tenant, id_or_upn) {
            Some(user) => crate::access_pass::sign_in_with_pass(user, code, now),
            None => SignInResult {
                ok: false,
                reason: Some("user not found".to_owned()),
            },
        }
    }

    /// A user by object id or UPN, in any tenant (or only in `tenant`, when given).
    pub fn find_user(&self, tenant: Option<&str>, id_or_upn: &str) -> Option<(&Tenant, &User)> {
        self.tenants
            .iter()
            .filter(|t| tenant.is_none_or(|name| t.is_named(name)))
            .find_map(|t| t.user(id_or_upn).map(|user| (t, user)))
    }

    pub fn find_user_mut(&mut self, tenant: Option<&str>, id_or_upn: &str) -> Option<&mut User> {
        self.tenants
            .iter_mut()
            .filter(|t| tenant.is_none_or(|name| t.is_named(name)))
            .find_map(|t| t.user_mut(id_or_upn))
    }

    /// Whether an app with this client id is in any tenant.
    pub fn has_app(&self, client_id: &str) -> bool {
        self.tenants
            .iter()
            .any(|tenant| tenant.app(client_id).is_some())
    }

    /// Would this password sign the user in right now? The "does the credential work" check.
    pub fn sign_in(&self, tenant: Option<&str>, id_or_upn: &str, password: &str) -> SignInResult {
        let refuse = |reason: &str| SignInResult {
            ok: false,
            reason: Some(reason.to_owned()),
        };
        let Some((_, user)) = self.find_user(tenant, id_or_upn) else {
            return refuse("user not found");
        };
        match &user.password {
            None => refuse("user has no password"),
            Some(current) if current != password => refuse("wrong password"),
            Some(_) if !user.account_enabled => refuse("account disabled"),
            Some(_) => SignInResult {
                ok: true,
                reason: None,
            },
        }
    }

    /// Registers a method on the user as its holder would (a passkey, the Authenticator app).
    pub fn register_method(&mut self, id_or_upn: &str, kind: MethodKind) -> Option<SignInMethod> {
        let user = self.find_user_mut(None, id_or_upn)?;
        let method = SignInMethod {
            id: uuid::Uuid::new_v4().to_string(),
            kind,
            by_holder: true,
            detail: None,
            pass: None,
        };
        user.methods.push(method.clone());
        Some(method)
    }

    /// Would this sign-in method (a passkey, the Authenticator app, ...) sign the user in now?
    pub fn sign_in_with_method(
        &self,
        tenant: Option<&str>,
        id_or_upn: &str,
        method_id: &str,
    ) -> SignInResult {
        let refuse = |reason: &str| SignInResult {
            ok: false,
            reason: Some(reason.to_owned()),
        };
        let Some((_, user)) = self.find_user(tenant, id_or_upn) else {
            return refuse("user not found");
        };
        let Some(method) = user
            .methods
            .iter()
            .find(|m| m.id.eq_ignore_ascii_case(method_id))
        else {
            return refuse("no such sign-in method");
        };
        if let Some(reason) = method
            .pass
            .as_ref()
            .and_then(|pass| pass.unusable_at(self.now()))
        {
            refuse(reason)
        } else if !user.account_enabled {
            refuse("account disabled")
        } else {
            SignInResult {
                ok: true,
                reason: None,
            }
        }
    }
}
