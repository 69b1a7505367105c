//! Errors of the identity layer.

use crate::eval::EvalError;
use crate::store::StoreError;

/// A refused or failed identity operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The named record does not exist (`organization `acme``).
    #[error("{kind} `{id}` not found")]
    NotFound {
        /// What kind of record (`organization`, `user`, `credential`, `invitation`, `session`).
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// A record with this id or unique attribute exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// An argument is malformed; names the field and value.
    #[error("{0}")]
    InvalidArgument(String),
    /// The operation conflicts with the current state (delete of an organization with
    /// children, a move under its own subtree, an expired or used invitation).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The audit log is not intact (verification found an altered, removed or reordered
    /// entry, or a mismatch with the anchor).
    #[error("audit log is not intact: {0}")]
    AuditBroken(String),
    /// A stored record cannot be decoded.
    #[error("corrupt {family} record: {detail}")]
    Corrupt {
        /// The record family.
        family: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Evaluation failed.
    #[error(transparent)]
    Eval(#[from] EvalError),
}
