//! Why a Graph request is made and for whom: its priority class, the namespace whose share it
//! spends, and the holder that comes back for it when it had to wait.

use std::fmt;

/// Priority classes, most urgent first. A request of a class starts only when no request of a
/// more urgent class is waiting on the same budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Ending a credential: scrambles and session revocations. The operator's promise (I5).
    End,
    /// A continuous lease's rotation onto its next user.
    Rotate,
    /// A fresh password for a lease whose Secret was taken.
    Restore,
    /// A new lease's first password.
    Issue,
    /// Reading users to tell a pool's administrator what is leasable.
    Validate,
}

impl Class {
    pub const ALL: [Class; 5] = [
        Class::End,
        Class::Rotate,
        Class::Restore,
        Class::Issue,
        Class::Validate,
    ];

    /// The label in metrics and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::End => "end",
            Class::Rotate => "rotate",
            Class::Restore => "restore",
            Class::Issue => "issue",
            Class::Validate => "validate",
        }
    }

    /// The `x-ms-throttle-priority` Graph is told: ends are what must get through a
    /// throttled tenant, validation what may wait.
    pub fn throttle_priority(self) -> Option<&'static str> {
        match self {
            Class::End => Some("high"),
            Class::Validate => Some("low"),
            Class::Rotate | Class::Restore | Class::Issue => None,
        }
    }

    /// True for the class that may spend a budget's reserve.
    pub fn may_spend_reserve(self) -> bool {
        self == Class::End
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a request is for. A request with a `holder` that cannot start soon is parked: its place
/// in line is kept under the holder's name, and the call answers `GraphError::Queued` so the
/// caller's worker goes on; the holder asks again (the same purpose) when told to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Purpose {
    pub class: Class,
    /// The namespace whose fair share the request spends ("" for the operator's own work).
    pub namespace: String,
    /// A name unique to the asker (a lease's uid, a claim's name), `None` for callers that wait.
    pub holder: Option<String>,
}

impl Purpose {
    pub fn new(class: Class, namespace: impl Into<String>, holder: impl Into<String>) -> Self {
        Self {
            class,
            namespace: namespace.into(),
            holder: Some(holder.into()),
        }
    }

    /// A request whose caller waits for it, however long its turn takes.
    pub fn waiting(class: Class, namespace: impl Into<String>) -> Self {
        Self {
            class,
            namespace: namespace.into(),
            holder: None,
        }
    }
}

impl Default for Purpose {
    /// The operator's own work that waits its turn: issue class, no namespace.
    fn default() -> Self {
        Purpose::waiting(Class::Issue, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_come_first_and_validation_last() {
        let mut classes = Class::ALL;
        classes.reverse();
        classes.sort();
        assert_eq!(classes, Class::ALL);
        assert_eq!(Class::End.throttle_priority(), Some("high"));
        assert_eq!(Class::Validate.throttle_priority(), Some("low"));
        assert_eq!(Class::Issue.throttle_priority(), None);
    }
}
