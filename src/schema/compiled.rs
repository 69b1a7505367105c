//! The compiled, type-checked `Schema` and its parts. Only `schema::compile` builds one;
//! everything above the schema layer reads it through these types.

use std::collections::BTreeMap;
use std::fmt;

use super::caveat::CaveatProgram;
use super::error::SchemaError;

/// A position in schema text: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A compiled schema: definitions and caveats, immutable once built.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub(crate) definitions: BTreeMap<String, Definition>,
    pub(crate) caveats: BTreeMap<String, CaveatDefinition>,
    pub(crate) uses_expiration: bool,
    pub(crate) source: String,
    /// Problems SpiceDB reports as warnings, not errors (sorted by position).
    pub(crate) warnings: Vec<SchemaError>,
}

impl Schema {
    /// The definition (object type) of that name.
    pub fn definition(&self, name: &str) -> Option<&Definition> {
        self.definitions.get(name)
    }

    /// Every definition, ordered by name.
    pub fn definitions(&self) -> impl Iterator<Item = &Definition> {
        self.definitions.values()
    }

    /// The caveat of that name.
    pub fn caveat(&self, name: &str) -> Option<&CaveatDefinition> {
        self.caveats.get(name)
    }

    /// Every caveat, ordered by name.
    pub fn caveats(&self) -> impl Iterator<Item = &CaveatDefinition> {
        self.caveats.values()
    }

    /// Whether the schema says `use expiration`.
    pub fn uses_expiration(&self) -> bool {
        self.uses_expiration
    }

    /// The schema text it was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// What compiled but is likely a mistake, as SpiceDB warns: an arrow to a relation that
    /// none of the tupleset's subject types has, a permission that refers to itself.
    pub fn warnings(&self) -> &[SchemaError] {
        &self.warnings
    }

    /// The relation or permission `relation` on type `object_type`.
    pub fn relation(&self, object_type: &str, relation: &str) -> Option<&RelationDef> {
        self.definitions.get(object_type)?.relation(relation)
    }
}

/// One `definition` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub(crate) name: String,
    /// Relations and permissions by name.
    pub(crate) relations: BTreeMap<String, RelationDef>,
    /// Names in the order they were declared.
    pub(crate) order: Vec<String>,
    pub(crate) span: Span,
    pub(crate) doc: Option<String>,
}

impl Definition {
    /// The type name, with its `prefix/` if any.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A relation or permission by name.
    pub fn relation(&self, name: &str) -> Option<&RelationDef> {
        self.relations.get(name)
    }

    /// Relations and permissions in declaration order.
    pub fn relations(&self) -> impl Iterator<Item = &RelationDef> {
        self.order.iter().filter_map(|n| self.relations.get(n))
    }

    /// Where the definition starts.
    pub fn span(&self) -> Span {
        self.span
    }

    /// Its doc comment, if any.
    pub fn doc(&self) -> Option<&str> {
        self.doc.as_deref()
    }
}

/// A `relation` or a `permission` of a definition.
#[derive(Debug, Clone, PartialEq)]
pub struct RelationDef {
    pub(crate) name: String,
    pub(crate) kind: RelationKind,
    pub(crate) span: Span,
    pub(crate) doc: Option<String>,
}

impl RelationDef {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Relation (with allowed subjects) or permission (with its rewrite).
    pub fn kind(&self) -> &RelationKind {
        &self.kind
    }

    /// Whether it is a `permission`.
    pub fn is_permission(&self) -> bool {
        matches!(self.kind, RelationKind::Permission(_))
    }

    /// The allowed subject types of a relation; empty for a permission.
    pub fn allowed(&self) -> &[AllowedSubject] {
        match &self.kind {
            RelationKind::Relation(allowed) => allowed,
            RelationKind::Permission(_) => &[],
        }
    }

    /// Where it is declared.
    pub fn span(&self) -> Span {
        self.span
    }

    /// Its doc comment, if any.
    pub fn doc(&self) -> Option<&str> {
        self.doc.as_deref()
    }
}

/// What a relation or permission is made of.
#[derive(Debug, Clone, PartialEq)]
pub enum RelationKind {
    /// `relation name: user | team#member | user:* ...`
    Relation(Vec<AllowedSubject>),
    /// `permission name = <expression>`
    Permission(Rewrite),
}

/// One allowed subject type of a relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedSubject {
    /// The subject's type.
    pub subject_type: String,
    /// Object, wildcard or userset.
    pub kind: AllowedKind,
    /// `with caveat_name`
    pub caveat: Option<String>,
    /// `with expiration` (alone or with `and`)
    pub expiration: bool,
}

impl fmt::Display for AllowedSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            AllowedKind::Object => write!(f, "{}", self.subject_type)?,
            AllowedKind::Wildcard => write!(f, "{}:*", self.subject_type)?,
            AllowedKind::Relation(r) => write!(f, "{}#{}", self.subject_type, r)?,
        }
        match (&self.caveat, self.expiration) {
            (Some(c), true) => write!(f, " with {c} and expiration"),
            (Some(c), false) => write!(f, " with {c}"),
            (None, true) => write!(f, " with expiration"),
            (None, false) => Ok(()),
        }
    }
}

/// The shape of an allowed subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedKind {
    /// `user`: the object itself.
    Object,
    /// `user:*`: every object of the type.
    Wildcard,
    /// `team#member`: a userset.
    Relation(String),
}

/// A permission expression, after parsing. Binary chains are flattened:
/// `a + b + c` is one `Union` of three.
#[derive(Debug, Clone, PartialEq)]
pub enum Rewrite {
    /// `a + b`
    Union(Vec<Rewrite>),
    /// `a & b`
    Intersection(Vec<Rewrite>),
    /// `base - subtracted`
    Exclusion(Box<Rewrite>, Box<Rewrite>),
    /// A relation or permission of the same object.
    Computed(String),
    /// `tupleset->computed`, `tupleset.any(computed)`, `tupleset.all(computed)`
    Arrow {
        /// A relation of this object whose subjects are followed.
        tupleset: String,
        /// A relation or permission on each of those subjects.
        computed: String,
        /// Any (the default for `->`) or all.
        kind: ArrowKind,
    },
    /// `nil`: nobody.
    Nil,
}

/// How an arrow combines the objects it reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrowKind {
    /// `->` or `.any(...)`: a union over the reached objects.
    Any,
    /// `.all(...)`: an intersection over the reached objects (false when none).
    All,
}

/// A `caveat name(params) { expression }` declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct CaveatDefinition {
    pub(crate) name: String,
    pub(crate) parameters: Vec<(String, CaveatType)>,
    pub(crate) expression: String,
    pub(crate) expression_span: Span,
    pub(crate) span: Span,
    pub(crate) program: CaveatProgram,
}

impl CaveatDefinition {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Declared parameters in order.
    pub fn parameters(&self) -> &[(String, CaveatType)] {
        &self.parameters
    }

    /// The type of one parameter.
    pub fn parameter(&self, name: &str) -> Option<&CaveatType> {
        self.parameters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
    }

    /// The CEL expression text between the braces.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Where the expression text starts in the schema.
    pub fn expression_span(&self) -> Span {
        self.expression_span
    }

    /// Where the declaration starts.
    pub fn span(&self) -> Span {
        self.span
    }

    /// The parsed, type-checked expression.
    pub fn program(&self) -> &CaveatProgram {
        &self.program
    }
}

/// A caveat parameter type, as SpiceDB names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaveatType {
    /// `any`
    Any,
    /// `bool`
    Bool,
    /// `int`
    Int,
    /// `uint`
    UInt,
    /// `double`
    Double,
    /// `string`
    String,
    /// `bytes`
    Bytes,
    /// `duration`
    Duration,
    /// `timestamp`
    Timestamp,
    /// `ipaddress`
    IpAddress,
    /// `list<T>`
    List(Box<CaveatType>),
    /// `map<T>` (string keys)
    Map(Box<CaveatType>),
}

impl fmt::Display for CaveatType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaveatType::Any => f.write_str("any"),
            CaveatType::Bool => f.write_str("bool"),
            CaveatType::Int => f.write_str("int"),
            CaveatType::UInt => f.write_str("uint"),
            CaveatType::Double => f.write_str("double"),
            CaveatType::String => f.write_str("string"),
            CaveatType::Bytes => f.write_str("bytes"),
            CaveatType::Duration => f.write_str("duration"),
            CaveatType::Timestamp => f.write_str("timestamp"),
            CaveatType::IpAddress => f.write_str("ipaddress"),
            CaveatType::List(t) => write!(f, "list<{t}>"),
            CaveatType::Map(t) => write!(f, "map<{t}>"),
        }
    }
}
