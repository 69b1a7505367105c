//! Errors of evaluation.

use crate::store::StoreError;

/// Why an evaluation could not give an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// No schema has been written.
    #[error("no schema has been written yet")]
    NoSchema,
    /// The object type has no definition.
    #[error("object definition `{0}` not found")]
    UnknownType(String),
    /// The type has no such relation or permission.
    #[error("relation or permission `{relation}` not found on object definition `{object_type}`")]
    UnknownRelation {
        /// The type.
        object_type: String,
        /// The missing relation or permission.
        relation: String,
    },
    /// The evaluation went deeper than the configured maximum.
    #[error(
        "evaluation exceeded the maximum depth of {max_depth}: the schema or data is recursive too deeply (raise --dispatch-max-depth or check for cycles)"
    )]
    DepthExceeded {
        /// The configured maximum.
        max_depth: u32,
    },
    /// The deadline passed.
    #[error("evaluation was cancelled: its deadline passed")]
    DeadlineExceeded,
    /// Reading the snapshot failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A caveat could not be evaluated.
    #[error("caveat `{caveat}` could not be evaluated: {message}")]
    Caveat {
        /// The caveat.
        caveat: String,
        /// Why.
        message: String,
    },
}
