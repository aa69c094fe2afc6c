//! What a Graph request costs under Entra's identity-and-access limits: a write is one write
//! (and one resource unit); a read costs resource units, `GET` user 2, one less with `$select`,
//! one more with `$expand`. A user's memberships (`transitiveMemberOf`) cost as a user read: the
//! documented table has no entry of its own for them, and the user is its closest.

use axum::http::Method;

/// The cost of one Graph request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Every request but a `GET` (or `HEAD`, `OPTIONS`): one token of each write bucket.
    Write,
    /// Resource units taken from the read bucket.
    Read { units: u32 },
}

const USER_READ_UNITS: u32 = 2;

impl Cost {
    pub fn of(method: &Method, select: bool, expand: bool) -> Cost {
        if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Cost::Write;
        }
        let units = USER_READ_UNITS - u32::from(select) + u32::from(expand);
        Cost::Read { units }
    }

    /// What `x-ms-resource-unit` says.
    pub fn units(self) -> u32 {
        match self {
            Cost::Write => 1,
            Cost::Read { units } => units,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cost_two_units_adjusted_by_select_and_expand() {
        assert_eq!(
            Cost::of(&Method::GET, false, false),
            Cost::Read { units: 2 }
        );
        assert_eq!(Cost::of(&Method::GET, true, false), Cost::Read { units: 1 });
        assert_eq!(Cost::of(&Method::GET, false, true), Cost::Read { units: 3 });
        assert_eq!(Cost::of(&Method::GET, true, true).units(), 2);
    }

    #[test]
    fn every_other_method_is_one_write() {
        for method in [Method::POST, Method::PATCH, Method::DELETE, Method::PUT] {
            assert_eq!(Cost::of(&method, true, true), Cost::Write);
            assert_eq!(Cost::Write.units(), 1);
        }
    }
}
