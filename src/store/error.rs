//! Errors of the storage layer.

use crate::model::Revision;

/// A datastore failure or refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// CREATE of a relationship that exists.
    #[error("relationship `{0}` already exists")]
    AlreadyExists(String),
    /// A snapshot was asked for a revision the store does not have yet.
    #[error("revision {requested} is ahead of the newest revision {head}")]
    RevisionAhead {
        /// Asked for.
        requested: Revision,
        /// Newest committed.
        head: Revision,
    },
    /// The revision is older than the garbage-collection window.
    #[error("revision {0} is older than the garbage-collection window and can no longer be read")]
    RevisionExpired(Revision),
    /// A write precondition did not hold.
    #[error("{0}")]
    PreconditionFailed(String),
    /// A write transaction was refused by a check of its own (precondition, schema).
    #[error("{0}")]
    Refused(String),
    /// A schema write that would orphan existing relationships (names one of them).
    #[error("schema change refused: {0}")]
    SchemaChangeRefused(String),
    /// The data directory cannot be used: written in another on-disk format, not an Arbor
    /// data directory, or missing.
    #[error("{0}")]
    DataDirectory(String),
    /// The underlying storage failed.
    #[error("storage failure: {0}")]
    Internal(String),
}
