//! Results of evaluation: permissionship, expand trees, lookup results.

use crate::model::{ObjectRef, SubjectRef, Timestamp};

use super::caveat_expr::CaveatExpr;

/// The answer to a check.
#[derive(Debug, Clone, PartialEq)]
pub enum Permissionship {
    /// The subject has the permission.
    Has,
    /// It does not.
    HasNot,
    /// It does if the caveat expression holds: it depends on caveat context.
    Conditional(CaveatExpr),
}

impl Permissionship {
    /// `Has`.
    pub fn is_has(&self) -> bool {
        matches!(self, Permissionship::Has)
    }
}

/// A check's answer with what it rested on.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// Has / has not / conditional.
    pub permissionship: Permissionship,
    /// The earliest expiration of a relationship the answer depends on, if any:
    /// the answer must not be reused at or after it.
    pub expires_at: Option<Timestamp>,
}

impl CheckResult {
    /// An unconditional result with no expiration.
    pub fn new(permissionship: Permissionship) -> Self {
        CheckResult {
            permissionship,
            expires_at: None,
        }
    }
}

/// A part of a permission's rewrite to evaluate first: where a lookup's walk came from when it
/// reached the resource, so likely where the answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalHint<'a> {
    /// The relation or permission `Computed` names.
    Computed(&'a str),
    /// The arrow `tupleset->computed`, starting with the subject `target` of the tupleset.
    Arrow {
        /// The arrow's tupleset relation.
        tupleset: &'a str,
        /// The arrow's computed relation.
        computed: &'a str,
        /// The tupleset subject the walk came from.
        target: &'a ObjectRef,
    },
}

/// How deep `expand` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpandMode {
    /// One level: usersets and arrows are leaves (as SpiceDB's ExpandPermissionTree).
    Shallow,
    /// Every userset expanded down to its subjects.
    Recursive,
}

/// A subject found in an expand leaf.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpandSubject {
    /// The subject (an object, a wildcard, or a userset).
    pub subject: SubjectRef,
    /// The caveat on the relationship, if any.
    pub caveat: Option<CaveatExpr>,
    /// The relationship's expiration, if any.
    pub expiration: Option<Timestamp>,
}

/// A node of the userset tree.
#[derive(Debug, Clone, PartialEq)]
pub enum ExpandNode {
    /// Direct subjects of a relation.
    Leaf(Vec<ExpandSubject>),
    /// Any of the children.
    Union(Vec<ExpandTree>),
    /// All of the children.
    Intersection(Vec<ExpandTree>),
    /// The first child minus the second.
    Exclusion(Box<ExpandTree>, Box<ExpandTree>),
}

/// The userset tree of `object#relation`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpandTree {
    /// The object expanded.
    pub object: ObjectRef,
    /// The relation or permission expanded.
    pub relation: String,
    /// What it is made of.
    pub node: ExpandNode,
    /// A caveat that applies to the whole subtree (reached through a caveated relationship).
    pub caveat: Option<CaveatExpr>,
}

/// One resource found by `lookup_resources`.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupResult {
    /// The resource id.
    pub resource_id: String,
    /// `Has` or `Conditional`.
    pub permissionship: Permissionship,
}

/// One subject found by `lookup_subjects`.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundSubject {
    /// The subject id, or `*`.
    pub subject_id: String,
    /// For a wildcard: the subjects excluded from it.
    pub excluded: Vec<FoundSubject>,
    /// The condition under which it has the permission, if any.
    pub caveat: Option<CaveatExpr>,
}
