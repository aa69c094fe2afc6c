//! Where Entra counts a request (`x-ms-throttle-scope`): an app in a tenant, a tenant across
//! apps, an app across tenants; for writes or for reads.

/// Writes and reads are counted apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Limit {
    Write,
    Read,
}

/// An app in a tenant, as the scheduler names it: the tenant as configured (lowercase), the
/// app's client id (lowercase).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppInTenant {
    pub tenant: String,
    pub app: String,
}

impl AppInTenant {
    pub fn new(tenant: &str, app: &str) -> Self {
        Self {
            tenant: tenant.to_ascii_lowercase(),
            app: app.to_ascii_lowercase(),
        }
    }
}

/// One budget Entra keeps.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    AppInTenant(AppInTenant, Limit),
    Tenant(String),
    App(String),
}

impl Scope {
    /// The budgets a request of `limit` by `who` is counted against, narrowest first.
    pub fn of(who: &AppInTenant, limit: Limit) -> Vec<Scope> {
        match limit {
            Limit::Write => vec![
                Scope::AppInTenant(who.clone(), Limit::Write),
                Scope::Tenant(who.tenant.clone()),
                Scope::App(who.app.clone()),
            ],
            Limit::Read => vec![Scope::AppInTenant(who.clone(), Limit::Read)],
        }
    }

    /// The scopes a 429 with this `x-ms-throttle-scope` pauses for `who`'s requests of `limit`.
    /// The header reads `Tenant_Application/Write/{app}/{tenant}`, `Tenant/Write/...` or
    /// `Application/ReadWrite/...`; without one (or one not understood) the app in its tenant,
    /// for the limit of the refused request, is paused.
    pub fn named_by(header: Option<&str>, who: &AppInTenant, limit: Limit) -> Vec<Scope> {
        let mut parts = header.unwrap_or_default().split('/');
        let scope = parts.next().unwrap_or_default();
        let limits: &[Limit] = match parts.next().map(str::to_ascii_lowercase).as_deref() {
            Some("write") => &[Limit::Write],
            Some("read") => &[Limit::Read],
            Some("readwrite") => &[Limit::Write, Limit::Read],
            _ => match limit {
                Limit::Write => &[Limit::Write],
                Limit::Read => &[Limit::Read],
            },
        };
        limits
            .iter()
            .map(
                |&limit| match (scope.to_ascii_lowercase().as_str(), limit) {
                    ("tenant", Limit::Write) => Scope::Tenant(who.tenant.clone()),
                    ("application", Limit::Write) => Scope::App(who.app.clone()),
                    // Reads are budgeted per app in a tenant only; a wider read refusal pauses
                    // this app's reads there.
                    _ => Scope::AppInTenant(who.clone(), limit),
                },
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who() -> AppInTenant {
        AppInTenant::new("Tenant-1", "App-1")
    }

    #[test]
    fn a_write_counts_at_three_scopes_and_a_read_at_one() {
        assert_eq!(Scope::of(&who(), Limit::Write).len(), 3);
        assert_eq!(
            Scope::of(&who(), Limit::Read),
            vec![Scope::AppInTenant(who(), Limit::Read)]
        );
    }

    #[test]
    fn a_refusal_pauses_the_scope_it_names() {
        let named = |header| Scope::named_by(header, &who(), Limit::Write);
        assert_eq!(
            named(Some("Tenant_Application/Write/app-1/tenant-1")),
            vec![Scope::AppInTenant(who(), Limit::Write)]
        );
        assert_eq!(
            named(Some("Tenant/Write//tenant-1")),
            vec![Scope::Tenant("tenant-1".into())]
        );
        assert_eq!(
            named(Some("Application/Write/app-1/")),
            vec![Scope::App("app-1".into())]
        );
        assert_eq!(
            named(Some("Tenant_Application/ReadWrite/app-1/tenant-1")),
            vec![
                Scope::AppInTenant(who(), Limit::Write),
                Scope::AppInTenant(who(), Limit::Read)
            ]
        );
        assert_eq!(named(None), vec![Scope::AppInTenant(who(), Limit::Write)]);
        assert_eq!(
            Scope::named_by(Some("gibberish"), &who(), Limit::Read),
            vec![Scope::AppInTenant(who(), Limit::Read)]
        );
    }
}
