//! A lease whose Secret was deleted or edited: a fresh password at once the first time, and
//! later ones spaced out by the lease's restore backoff. A restore that must wait ends the live
//! credential first, so that no working password outlives the Secret that held it (I2), and
//! while it waits the Secret may be taken again for free.

use super::Decision;
use crate::controller::lease::facts::{Held, LeaseFacts};
use crate::controller::restore_backoff::{RestoreTurn, restore_turn};

/// What follows for `current`, whose Secret was taken (or whose credential already ended to
/// wait for its restore).
pub fn restore_decision(facts: &LeaseFacts<'_>, current: &Held) -> Decision {
    let record = &current.record;
    match restore_turn(record.restores.as_ref(), facts.now) {
        RestoreTurn::Now(restores) => Decision::Restore {
            current: current.clone(),
            previous: facts.claims.previous.clone(),
            cause: facts.secret,
            restores,
        },
        RestoreTurn::At(restore_at) if record.restore_at.is_some() => Decision::RestoreWaits {
            current: current.clone(),
            restore_at,
        },
        RestoreTurn::At(restore_at) => Decision::EndUntilRestore {
            current: current.clone(),
            previous: facts.claims.previous.clone(),
            restore_at,
            cause: facts.secret,
        },
    }
}
