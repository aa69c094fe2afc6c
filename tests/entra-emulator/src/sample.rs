//! The ids, names and secret of the sample tenant ([`crate::Config::sample`], `examples/tenant.yaml`),
//! so tests can name them without repeating GUIDs.

/// A user of the sample tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleUser {
    pub id: &'static str,
    pub upn: &'static str,
}

pub const TENANT_ID: &str = "8f5e0a4c-3b1d-4c2e-9a7f-1d2e3f4a5b6c";
pub const TENANT_DOMAIN: &str = "contoso.onmicrosoft.com";
/// The app: `User-PasswordProfile.ReadWrite.All`, `User.ReadWrite.All`, role `User Administrator`.
pub const CLIENT_ID: &str = "3c9d2b1a-7e6f-4a5b-8c9d-0e1f2a3b4c5d";
pub const CLIENT_SECRET: &str = "demo-client-secret-value~0123456789";

/// Leasable member; starts with the password [`ALICE_INITIAL_PASSWORD`].
pub const ALICE: SampleUser = SampleUser {
    id: "a11ce000-0000-4000-8000-000000000001",
    upn: "alice@contoso.onmicrosoft.com",
};
pub const ALICE_INITIAL_PASSWORD: &str = "Spring-Meadow-42!";
/// Leasable member without a password.
pub const BOB: SampleUser = SampleUser {
    id: "b0b00000-0000-4000-8000-000000000002",
    upn: "bob@contoso.onmicrosoft.com",
};
/// Leasable member without a password.
pub const CAROL: SampleUser = SampleUser {
    id: "ca201000-0000-4000-8000-000000000003",
    upn: "carol@contoso.onmicrosoft.com",
};
/// Leasable member whose UPN starts with `$` (address it as `/users('$frank@...')`).
pub const FRANK: SampleUser = SampleUser {
    id: "f2a4c000-0000-4000-8000-000000000007",
    upn: "$frank@contoso.onmicrosoft.com",
};
/// Guest: not leasable.
pub const DAVE_GUEST: SampleUser = SampleUser {
    id: "da7e0000-0000-4000-8000-000000000004",
    upn: "dave_fabrikam.com#EXT#@contoso.onmicrosoft.com",
};
/// Synced from on-premises: not leasable.
pub const ERIN_SYNCED: SampleUser = SampleUser {
    id: "e2100000-0000-4000-8000-000000000005",
    upn: "erin@contoso.onmicrosoft.com",
};
/// Global Administrator: a User Administrator app gets 403 resetting her.
pub const GRACE_ADMIN: SampleUser = SampleUser {
    id: "92ace000-0000-4000-8000-000000000006",
    upn: "grace@contoso.onmicrosoft.com",
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, UserType};

    #[test]
    fn constants_match_the_sample_tenant() {
        let config = Config::sample();
        let tenant = &config.tenants[0];
        assert_eq!(tenant.id, TENANT_ID);
        assert_eq!(tenant.domains, [TENANT_DOMAIN]);
        let app = tenant.app(CLIENT_ID).unwrap();
        assert_eq!(app.secrets, [CLIENT_SECRET]);
        for user in [
            ALICE,
            BOB,
            CAROL,
            FRANK,
            DAVE_GUEST,
            ERIN_SYNCED,
            GRACE_ADMIN,
        ] {
            assert_eq!(tenant.user(user.id).unwrap().user_principal_name, user.upn);
        }
        let alice = tenant.user(ALICE.id).unwrap();
        assert_eq!(alice.password.as_deref(), Some(ALICE_INITIAL_PASSWORD));
        assert_eq!(
            tenant.user(DAVE_GUEST.id).unwrap().user_type,
            UserType::Guest
        );
        assert!(
            tenant
                .user(ERIN_SYNCED.id)
                .unwrap()
                .on_premises_sync_enabled
        );
        assert_eq!(
            tenant.user(GRACE_ADMIN.id).unwrap().directory_roles,
            ["Global Administrator"]
        );
    }
}
