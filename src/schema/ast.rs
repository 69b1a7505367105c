//! The schema's syntax tree, as parsed: every name and expression keeps its span so the
//! checker can point at it. Unions and intersections are already n-ary here.

use super::compiled::{ArrowKind, Span};

/// A name as written, with where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ident {
    pub(crate) text: String,
    pub(crate) span: Span,
}

/// A whole schema file.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct File {
    /// Whether `use expiration` was given.
    pub(crate) uses_expiration: bool,
    pub(crate) definitions: Vec<DefinitionAst>,
    pub(crate) caveats: Vec<CaveatAst>,
    /// A top-level item whose name could not be read: lookups of missing names are then
    /// not reported, since the name may be the unreadable one.
    pub(crate) has_unnamed_items: bool,
    /// Names of caveats that were declared but could not be parsed.
    pub(crate) broken_names: Vec<String>,
}

/// `definition name { ... }`
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DefinitionAst {
    pub(crate) name: Ident,
    /// The `definition` keyword.
    pub(crate) span: Span,
    pub(crate) doc: Option<String>,
    pub(crate) members: Vec<Member>,
    /// Some statement of the body could not be parsed (and is missing from `members`).
    pub(crate) had_errors: bool,
}

/// A statement of a definition body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Member {
    Relation(RelationAst),
    Permission(PermissionAst),
}

impl Member {
    pub(crate) fn name(&self) -> &Ident {
        match self {
            Member::Relation(r) => &r.name,
            Member::Permission(p) => &p.name,
        }
    }

    pub(crate) fn span(&self) -> Span {
        match self {
            Member::Relation(r) => r.span,
            Member::Permission(p) => p.span,
        }
    }
}

/// `relation name: type | type ...`
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RelationAst {
    pub(crate) name: Ident,
    /// The `relation` keyword.
    pub(crate) span: Span,
    pub(crate) doc: Option<String>,
    pub(crate) types: Vec<TypeRefAst>,
}

/// One allowed subject type: `user`, `user:*`, `team#member`, each optionally `with ...`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TypeRefAst {
    pub(crate) type_name: Ident,
    pub(crate) kind: TypeRefKind,
    pub(crate) caveat: Option<Ident>,
    /// Where `expiration` was written, if it was.
    pub(crate) expiration: Option<Span>,
}

/// The shape of an allowed subject type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TypeRefKind {
    /// `user` or `user#...`
    Object,
    /// `user:*`
    Wildcard,
    /// `team#member`
    Relation(Ident),
}

/// `permission name = expression` (with optional type annotations `permission name: a | b = ...`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PermissionAst {
    pub(crate) name: Ident,
    /// The `permission` keyword.
    pub(crate) span: Span,
    pub(crate) doc: Option<String>,
    pub(crate) annotations: Vec<Ident>,
    pub(crate) expr: Expr,
}

/// A permission expression node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expr {
    pub(crate) kind: ExprKind,
    /// Where the expression starts.
    pub(crate) span: Span,
    /// Height of the tree under this node (a leaf is 1); bounded by the parser.
    pub(crate) depth: usize,
}

/// The kinds of permission expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ExprKind {
    /// `a + b + ...` (two or more)
    Union(Vec<Expr>),
    /// `a & b & ...` (two or more)
    Intersection(Vec<Expr>),
    /// `a - b`
    Exclusion(Box<Expr>, Box<Expr>),
    /// A relation or permission name.
    Identifier(Ident),
    /// `tupleset->computed`, `tupleset.any(computed)`, `tupleset.all(computed)`
    Arrow {
        tupleset: Ident,
        computed: Ident,
        kind: ArrowKind,
    },
    /// `nil`
    Nil,
}

impl Expr {
    /// A leaf node.
    pub(crate) fn leaf(kind: ExprKind, span: Span) -> Expr {
        Expr {
            kind,
            span,
            depth: 1,
        }
    }

    /// A node over `children`, one level above the deepest of them.
    pub(crate) fn node(kind: ExprKind, span: Span) -> Expr {
        let depth = match &kind {
            ExprKind::Union(items) | ExprKind::Intersection(items) => {
                items.iter().map(|e| e.depth).max().unwrap_or(0)
            }
            ExprKind::Exclusion(a, b) => a.depth.max(b.depth),
            ExprKind::Identifier(_) | ExprKind::Arrow { .. } | ExprKind::Nil => 0,
        };
        Expr {
            kind,
            span,
            depth: depth.saturating_add(1),
        }
    }
}

/// `caveat name(params) { expression }`
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CaveatAst {
    pub(crate) name: Ident,
    /// The `caveat` keyword.
    pub(crate) span: Span,
    pub(crate) params: Vec<ParamAst>,
    /// The CEL text between the braces (without surrounding whitespace).
    pub(crate) expression: String,
    pub(crate) expression_span: Span,
}

/// One caveat parameter: `name type`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParamAst {
    pub(crate) name: Ident,
    pub(crate) ty: TypeAst,
}

/// A caveat parameter type as written: `int`, `list<string>`, `map<list<int>>`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TypeAst {
    pub(crate) name: Ident,
    pub(crate) args: Vec<TypeAst>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_levels() {
        let span = Span::default();
        let leaf = || Expr::leaf(ExprKind::Nil, span);
        let union = Expr::node(ExprKind::Union(vec![leaf(), leaf()]), span);
        assert_eq!(union.depth, 2);
        let exclusion = Expr::node(ExprKind::Exclusion(Box::new(union), Box::new(leaf())), span);
        assert_eq!(exclusion.depth, 3);
    }
}
