//! Validation files in SpiceDB's format: model (`file`), runner, report. Used by
//! `arbor validate` and by the conformance tests.
//!
//! ```text
//! text ──file──▶ ValidationFile ──runner──▶ Report ──▶ Outcome (passed / failed)
//!          │                         │
//!          └── ValidateError ◀───────┘  (cannot load: YAML, schema, relationships; with file:line:column)
//! ```

mod error;
mod expected;
mod file;
mod locate;
mod membership;
mod report;
mod runner;

pub use error::{ErrorKind, ValidateError};
pub use expected::{
    ExpectedParseError, ExpectedSubject, MarkedSubject, ResourceRelation, ValidationString,
};
pub use file::{
    Assertion, AssertionKind, ExpectedEntry, ExpectedLine, FileRelationship, SchemaOrigin,
    SchemaSource, ValidationFile,
};
pub use locate::Position;
pub use membership::ExpandedSubject;
pub use report::{CheckKind, Failure, Outcome, Report};
pub use runner::{expand_subjects, load, load_into, run, run_file, run_on, run_text};
