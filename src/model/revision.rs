//! `Revision`: the strictly increasing number of a committed write transaction.

use std::fmt;

/// A strictly increasing transaction number. Revision 0 is the empty store
/// before any write; every committed write gets the next number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision(u64);

impl Revision {
    /// The revision of an empty store.
    pub const ZERO: Revision = Revision(0);

    /// Wraps a raw revision number.
    pub const fn new(value: u64) -> Self {
        Revision(value)
    }

    /// The raw number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The revision after this one, or `None` at `u64::MAX`.
    pub fn next(self) -> Option<Revision> {
        self.0.checked_add(1).map(Revision)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
