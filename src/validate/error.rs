//! `ValidateError`: why a validation file could not be loaded, with the file and position.

use std::fmt;

use super::locate::Position;

/// A validation file that cannot be loaded (as opposed to one that loads and fails its checks).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{kind}", Prefix { file, position: *position })]
pub struct ValidateError {
    /// The file the position refers to (the validation file, or its `schemaFile`).
    pub file: String,
    /// Where the problem is, when known.
    pub position: Option<Position>,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl ValidateError {
    /// An error in `file` at `position`.
    pub fn new(file: &str, position: Option<Position>, kind: ErrorKind) -> Self {
        ValidateError {
            file: file.to_string(),
            position,
            kind,
        }
    }
}

/// `file:line:column: ` or `file: `.
struct Prefix<'a> {
    file: &'a str,
    position: Option<Position>,
}

impl fmt::Display for Prefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "{}:{}:{}: ", self.file, p.line, p.column),
            None => write!(f, "{}: ", self.file),
        }
    }
}

/// What makes a validation file unloadable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Read(String),
    /// The YAML is malformed or a block has the wrong shape.
    #[error("invalid YAML: {0}")]
    Yaml(String),
    /// A block has a shape the format does not allow.
    #[error("{0}")]
    Structure(String),
    /// A legacy block that SpiceDB no longer accepts.
    #[error("`{block}` is no longer supported: {hint}")]
    Legacy {
        /// The block's key.
        block: &'static str,
        /// What to use instead.
        hint: &'static str,
    },
    /// Neither `schema` nor `schemaFile` was given.
    #[error("the file has no schema: add a `schema:` block or a `schemaFile:` path")]
    NoSchema,
    /// Both `schema` and `schemaFile` were given.
    #[error("only one of `schema` and `schemaFile` can be given")]
    BothSchemas,
    /// The `schemaFile` could not be used.
    #[error("schema file `{path}`: {message}")]
    SchemaFile {
        /// The path as written.
        path: String,
        /// Why.
        message: String,
    },
    /// The schema does not compile.
    #[error("schema error: {message}{}", more_suffix(.others.len()))]
    Schema {
        /// The first error.
        message: String,
        /// Every further error, rendered as `file:line:column: message`.
        others: Vec<String>,
    },
    /// A relationship does not parse.
    #[error("invalid relationship `{text}`: {message}")]
    Relationship {
        /// The relationship line.
        text: String,
        /// Why.
        message: String,
    },
    /// A relationship appears twice (same resource, relation and subject).
    #[error(
        "relationship `{text}` repeats the one on line {first_line} (same resource, relation and subject)"
    )]
    Repeated {
        /// The repeated relationship line.
        text: String,
        /// The line of its first appearance.
        first_line: usize,
    },
    /// A relationship the schema does not allow.
    #[error("relationship `{text}` is not allowed by the schema: {message}")]
    NotAllowed {
        /// The relationship line.
        text: String,
        /// Why.
        message: String,
    },
    /// An assertion does not parse.
    #[error("invalid assertion `{text}`: {message}")]
    Assertion {
        /// The assertion as written.
        text: String,
        /// Why.
        message: String,
    },
    /// A `validation:` key or expected subject does not parse.
    #[error("invalid validation entry `{text}`: {message}")]
    Validation {
        /// The key or string as written.
        text: String,
        /// Why.
        message: String,
    },
    /// Loading into the datastore failed.
    #[error("cannot load the relationships: {0}")]
    Store(String),
}

fn more_suffix(more: usize) -> String {
    match more {
        0 => String::new(),
        1 => " (and 1 more error)".to_string(),
        n => format!(" (and {n} more errors)"),
    }
}
