//! Why a user's password is not the operator's to set. Its own file, below both `users` (which
//! finds the reason) and `error` (which carries it), so that neither imports the other.

use std::fmt;

/// Why a user's password is not the operator's to set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotLeasable {
    /// `userType: Guest`: the password belongs to the guest's home tenant.
    Guest,
    /// `onPremisesSyncEnabled: true`: the password is managed on-premises.
    SyncedFromOnPremises,
    /// `accountEnabled: false`: nobody could sign in with the issued password.
    Disabled,
}

impl NotLeasable {
    /// A short code for status fields and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            NotLeasable::Guest => "Guest",
            NotLeasable::SyncedFromOnPremises => "SyncedFromOnPremises",
            NotLeasable::Disabled => "Disabled",
        }
    }
}

impl fmt::Display for NotLeasable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotLeasable::Guest => "a guest user, whose password belongs to its home tenant",
            NotLeasable::SyncedFromOnPremises => {
                "synced from on-premises, where its password is managed"
            }
            NotLeasable::Disabled => "the account is disabled",
        })
    }
}
