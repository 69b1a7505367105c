//! Errors of the schema layer: compile errors with spans, and relationship-vs-schema errors.

use std::fmt;

use super::compiled::Span;

/// One problem in schema text, at a line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{span}: {message}")]
pub struct SchemaError {
    /// Where the problem is.
    pub span: Span,
    /// What is wrong, for a person (lowercase, user input in backticks).
    pub message: String,
}

/// Every problem found in one schema text (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaErrors(pub Vec<SchemaError>);

impl SchemaErrors {
    /// One error.
    pub fn single(span: Span, message: impl Into<String>) -> Self {
        SchemaErrors(vec![SchemaError {
            span,
            message: message.into(),
        }])
    }

    /// The first error (by position).
    pub fn first(&self) -> Option<&SchemaError> {
        self.0.first()
    }
}

impl fmt::Display for SchemaErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SchemaErrors {}

/// A relationship that the schema does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelationshipSchemaError {
    /// The resource or subject type has no definition.
    #[error("object definition `{0}` not found")]
    UnknownType(String),
    /// The relation does not exist on the type.
    #[error("relation `{relation}` not found on object definition `{object_type}`")]
    UnknownRelation {
        /// The type.
        object_type: String,
        /// The missing relation.
        relation: String,
    },
    /// Relationships can only be written to relations, not permissions.
    #[error(
        "cannot write a relationship to permission `{relation}` of `{object_type}`; write it to a relation"
    )]
    WriteToPermission {
        /// The type.
        object_type: String,
        /// The permission.
        relation: String,
    },
    /// The subject (type, wildcard, relation, caveat, expiration) is not among the allowed ones.
    #[error(
        "subjects of type `{subject}` are not allowed on relation `{object_type}#{relation}` (allowed: {allowed})"
    )]
    SubjectNotAllowed {
        /// The resource type.
        object_type: String,
        /// The relation.
        relation: String,
        /// How the subject was given, e.g. `user:*` or `team#member with cav`.
        subject: String,
        /// The allowed subject types, comma separated.
        allowed: String,
    },
    /// An uncaveated subject where the relation only allows that subject type with a caveat.
    #[error(
        "subjects of type `{subject}` are not allowed on relation `{object_type}#{relation}` without one of the following caveats: {caveats}"
    )]
    CaveatRequired {
        /// The resource type.
        object_type: String,
        /// The relation.
        relation: String,
        /// How the subject was given, e.g. `user`.
        subject: String,
        /// The caveats allowed for that subject type, comma separated, each in backticks.
        caveats: String,
    },
    /// The caveat does not exist.
    #[error("caveat `{0}` not found")]
    UnknownCaveat(String),
    /// A context value names a parameter the caveat does not declare.
    #[error("caveat `{caveat}` has no parameter `{parameter}`")]
    UnknownCaveatParameter {
        /// The caveat.
        caveat: String,
        /// The unknown parameter.
        parameter: String,
    },
}
