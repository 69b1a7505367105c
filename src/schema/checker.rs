//! The schema checker: resolves every name in an `ast::File` and applies SpiceDB's type-system
//! rules, building the compiled `Schema` or reporting every error with its span.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::ast::{
    CaveatAst, DefinitionAst, Expr, ExprKind, File, Ident, Member, PermissionAst, RelationAst,
    TypeAst, TypeRefKind,
};
use super::compiled::{
    AllowedKind, AllowedSubject, ArrowKind, CaveatDefinition, CaveatType, Definition, RelationDef,
    RelationKind, Rewrite, Span,
};
use super::error::SchemaError;
use super::lexer::{TokenKind, lex};
use crate::model::{validate_caveat_name, validate_object_type, validate_relation_name};

/// Caveat parameter type names SpiceDB knows, sorted.
const CAVEAT_TYPES: [&str; 12] = [
    "any",
    "bool",
    "bytes",
    "double",
    "duration",
    "int",
    "ipaddress",
    "list",
    "map",
    "string",
    "timestamp",
    "uint",
];

/// What the checker found: the schema parts, or errors; warnings either way.
pub(crate) struct Checked {
    pub(crate) definitions: BTreeMap<String, Definition>,
    pub(crate) caveats: BTreeMap<String, CaveatDefinition>,
    pub(crate) errors: Vec<SchemaError>,
    pub(crate) warnings: Vec<SchemaError>,
}

/// Checks a parsed file. Errors and warnings come back unsorted.
pub(crate) fn check(file: &File) -> Checked {
    let mut checker = Checker {
        file,
        defs: BTreeMap::new(),
        members: BTreeMap::new(),
        caveats: BTreeMap::new(),
        wildcards: HashMap::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    checker.top_level_names();
    checker.member_names();
    let caveats = checker.caveat_definitions();
    let mut definitions = BTreeMap::new();
    let mut annotated = Vec::new();
    for def in checker.defs.values().copied().collect::<Vec<_>>() {
        let compiled = checker.definition(def, &mut annotated);
        definitions.insert(def.name.text.clone(), compiled);
    }
    for def in checker.defs.values().copied().collect::<Vec<_>>() {
        checker.alias_cycles(def);
    }
    for (def_name, perm) in annotated {
        checker.type_annotations(&definitions, &def_name, perm);
    }
    Checked {
        definitions,
        caveats,
        errors: checker.errors,
        warnings: checker.warnings,
    }
}

struct Checker<'f> {
    file: &'f File,
    /// The first definition of each name.
    defs: BTreeMap<&'f str, &'f DefinitionAst>,
    /// Per definition name: its first member of each name.
    members: BTreeMap<&'f str, BTreeMap<&'f str, &'f Member>>,
    /// The first caveat of each name.
    caveats: BTreeMap<&'f str, &'f CaveatAst>,
    /// `wildcard_via` answers, by (definition, relation).
    wildcards: HashMap<(&'f str, &'f str), Option<WildcardFound>>,
    errors: Vec<SchemaError>,
    warnings: Vec<SchemaError>,
}

impl<'f> Checker<'f> {
    fn error(&mut self, span: Span, message: impl Into<String>) {
        self.errors.push(SchemaError {
            span,
            message: message.into(),
        });
    }

    fn warn(&mut self, span: Span, message: impl Into<String>) {
        self.warnings.push(SchemaError {
            span,
            message: message.into(),
        });
    }

    /// Names of definitions and caveats: syntax, and one namespace shared by both.
    fn top_level_names(&mut self) {
        let file = self.file;
        let mut items: Vec<(&'f Ident, Span, bool)> = file
            .definitions
            .iter()
            .map(|d| (&d.name, d.span, true))
            .chain(file.caveats.iter().map(|c| (&c.name, c.span, false)))
            .collect();
        items.sort_by_key(|(_, span, _)| *span);
        let mut seen: BTreeMap<&str, (Span, bool)> = BTreeMap::new();
        for (name, span, is_def) in items {
            let valid = if is_def {
                validate_object_type(&name.text)
            } else {
                validate_caveat_name(&name.text)
            };
            if let Err(e) = valid {
                let what = if is_def {
                    "definition name"
                } else {
                    "caveat name"
                };
                self.error(
                    name.span,
                    format!("{what} `{}` is invalid: {}", name.text, e.rule),
                );
            }
            if let Some((first, first_is_def)) = seen.get(name.text.as_str()).copied() {
                let message = match (is_def, first_is_def) {
                    (true, true) => format!(
                        "duplicate definition `{}`: already declared at {first}",
                        name.text
                    ),
                    (false, false) => format!(
                        "duplicate caveat `{}`: already declared at {first}",
                        name.text
                    ),
                    (true, false) => format!(
                        "definition `{}` has the name of the caveat declared at {first}; definitions and caveats share one namespace",
                        name.text
                    ),
                    (false, true) => format!(
                        "caveat `{}` has the name of the definition declared at {first}; definitions and caveats share one namespace",
                        name.text
                    ),
                };
                self.error(name.span, message);
                continue;
            }
            seen.insert(&name.text, (span, is_def));
        }
        for def in &file.definitions {
            if seen.get(def.name.text.as_str()) == Some(&(def.span, true)) {
                self.defs.insert(&def.name.text, def);
            }
        }
        for caveat in &file.caveats {
            if seen.get(caveat.name.text.as_str()) == Some(&(caveat.span, false)) {
                self.caveats.insert(&caveat.name.text, caveat);
            }
        }
    }

    /// Relation and permission names: syntax and uniqueness within each definition.
    fn member_names(&mut self) {
        for def in self.defs.values().copied().collect::<Vec<_>>() {
            let mut map: BTreeMap<&'f str, &'f Member> = BTreeMap::new();
            for member in &def.members {
                let name = member.name();
                let what = match member {
                    Member::Relation(_) => "relation",
                    Member::Permission(_) => "permission",
                };
                if let Err(e) = validate_relation_name(&name.text) {
                    self.error(
                        name.span,
                        format!("{what} name `{}` is invalid: {}", name.text, e.rule),
                    );
                }
                if let Some(first) = map.get(name.text.as_str()) {
                    let message = format!(
                        "duplicate relation or permission `{}` on definition `{}`: already declared at {}",
                        name.text,
                        def.name.text,
                        first.span()
                    );
                    self.error(name.span, message);
                    continue;
                }
                map.insert(&name.text, member);
            }
            self.members.insert(&def.name.text, map);
        }
    }

    fn member(&self, def: &str, name: &str) -> Option<&'f Member> {
        self.members.get(def)?.get(name).copied()
    }

    /// Whether a missing definition or caveat named `name` may just be one that failed to parse.
    fn may_be_unparsed_item(&self, name: &str) -> bool {
        self.file.has_unnamed_items || self.file.broken_names.iter().any(|n| n == name)
    }

    /// Whether a missing member of `def` may just be one that failed to parse.
    fn may_be_unparsed_member(&self, def: &str) -> bool {
        self.defs.get(def).is_some_and(|d| d.had_errors)
    }

    // ---- caveats ----

    fn caveat_definitions(&mut self) -> BTreeMap<String, CaveatDefinition> {
        let mut out = BTreeMap::new();
        for caveat in self.caveats.values().copied().collect::<Vec<_>>() {
            let mut parameters: Vec<(String, CaveatType)> = Vec::new();
            let used = referenced_identifiers(&caveat.expression);
            // Unknown parameter types make the expression's types unknown: not checked then.
            let mut parameters_broken = false;
            for param in &caveat.params {
                if parameters.iter().any(|(n, _)| *n == param.name.text) {
                    self.error(
                        param.name.span,
                        format!(
                            "duplicate parameter `{}` on caveat `{}`",
                            param.name.text, caveat.name.text
                        ),
                    );
                    parameters_broken = true;
                    continue;
                }
                let Some(ty) = self.caveat_type(&param.ty, &param.name, &caveat.name) else {
                    parameters_broken = true;
                    continue;
                };
                if !used.contains(param.name.text.as_str()) {
                    self.error(
                        param.name.span,
                        format!(
                            "parameter `{}` of caveat `{}` is not used in its expression",
                            param.name.text, caveat.name.text
                        ),
                    );
                }
                parameters.push((param.name.text.clone(), ty));
            }
            if parameters_broken {
                continue;
            }
            let program = match super::caveat::compile(
                &caveat.name.text,
                &parameters,
                &caveat.expression,
                caveat.expression_span,
            ) {
                Ok(program) => program,
                Err(errors) => {
                    self.errors.extend(errors);
                    continue;
                }
            };
            out.insert(
                caveat.name.text.clone(),
                CaveatDefinition {
                    name: caveat.name.text.clone(),
                    parameters,
                    expression: caveat.expression.clone(),
                    expression_span: caveat.expression_span,
                    span: caveat.span,
                    program,
                },
            );
        }
        out
    }

    fn caveat_type(&mut self, ty: &TypeAst, param: &Ident, caveat: &Ident) -> Option<CaveatType> {
        let name = ty.name.text.as_str();
        let arity = match name {
            "list" | "map" => 1,
            _ if CAVEAT_TYPES.contains(&name) => 0,
            _ => {
                let known: Vec<String> = CAVEAT_TYPES.iter().map(|t| format!("`{t}`")).collect();
                self.error(
                    ty.name.span,
                    format!(
                        "unknown type `{name}` for parameter `{}` of caveat `{}`; known types are {}",
                        param.text,
                        caveat.text,
                        known.join(", ")
                    ),
                );
                return None;
            }
        };
        if ty.args.len() != arity {
            let message = if arity == 0 {
                format!(
                    "type `{name}` takes no type arguments, found {}",
                    ty.args.len()
                )
            } else {
                format!(
                    "type `{name}` takes {arity} type argument, found {}",
                    ty.args.len()
                )
            };
            self.error(ty.name.span, message);
            return None;
        }
        let arg = match ty.args.first() {
            Some(a) => Some(Box::new(self.caveat_type(a, param, caveat)?)),
            None => None,
        };
        Some(match (name, arg) {
            ("list", Some(a)) => CaveatType::List(a),
            ("map", Some(a)) => CaveatType::Map(a),
            ("any", _) => CaveatType::Any,
            ("bool", _) => CaveatType::Bool,
            ("bytes", _) => CaveatType::Bytes,
            ("double", _) => CaveatType::Double,
            ("duration", _) => CaveatType::Duration,
            ("int", _) => CaveatType::Int,
            ("ipaddress", _) => CaveatType::IpAddress,
            ("string", _) => CaveatType::String,
            ("timestamp", _) => CaveatType::Timestamp,
            ("uint", _) => CaveatType::UInt,
            _ => return None,
        })
    }

    // ---- definitions ----

    fn definition(
        &mut self,
        def: &'f DefinitionAst,
        annotated: &mut Vec<(String, &'f PermissionAst)>,
    ) -> Definition {
        let mut relations = BTreeMap::new();
        let mut order = Vec::new();
        for member in &def.members {
            let name = &member.name().text;
            if self
                .member(&def.name.text, name)
                .is_none_or(|m| !std::ptr::eq(m, member))
            {
                continue; // a duplicate, already reported
            }
            let (kind, doc) = match member {
                Member::Relation(r) => {
                    (RelationKind::Relation(self.relation(def, r)), r.doc.clone())
                }
                Member::Permission(p) => {
                    if !p.annotations.is_empty() {
                        annotated.push((def.name.text.clone(), p));
                    }
                    (
                        RelationKind::Permission(self.rewrite(def, p, &p.expr)),
                        p.doc.clone(),
                    )
                }
            };
            order.push(name.clone());
            relations.insert(
                name.clone(),
                RelationDef {
                    name: name.clone(),
                    kind,
                    span: member.span(),
                    doc,
                },
            );
        }
        Definition {
            name: def.name.text.clone(),
            relations,
            order,
            span: def.span,
            doc: def.doc.clone(),
        }
    }

    fn relation(&mut self, def: &'f DefinitionAst, rel: &'f RelationAst) -> Vec<AllowedSubject> {
        let mut allowed: Vec<AllowedSubject> = Vec::new();
        for t in &rel.types {
            let type_name = &t.type_name.text;
            let kind = match &t.kind {
                TypeRefKind::Object => AllowedKind::Object,
                TypeRefKind::Wildcard => AllowedKind::Wildcard,
                TypeRefKind::Relation(r) => AllowedKind::Relation(r.text.clone()),
            };
            let subject = AllowedSubject {
                subject_type: type_name.clone(),
                kind,
                caveat: t.caveat.as_ref().map(|c| c.text.clone()),
                expiration: t.expiration.is_some(),
            };
            if allowed.contains(&subject) {
                self.error(
                    t.type_name.span,
                    format!(
                        "duplicate subject type `{subject}` on relation `{}#{}`",
                        def.name.text, rel.name.text
                    ),
                );
                continue;
            }
            if !self.defs.contains_key(type_name.as_str()) {
                if !self.may_be_unparsed_item(type_name) {
                    self.error(
                        t.type_name.span,
                        format!("definition `{type_name}` not found"),
                    );
                }
            } else if let TypeRefKind::Relation(r) = &t.kind {
                if self.member(type_name, &r.text).is_none() {
                    if !self.may_be_unparsed_member(type_name) {
                        self.error(
                            r.span,
                            format!(
                                "relation `{}` not found on definition `{type_name}`",
                                r.text
                            ),
                        );
                    }
                } else if *type_name != def.name.text {
                    // As SpiceDB: a userset of another type may not bring in a wildcard.
                    if let Some(found) = self.wildcard_via(type_name, &r.text) {
                        self.error(
                            t.type_name.span,
                            format!(
                                "subject type `{type_name}#{}` of relation `{}#{}` includes the wildcard `{}:*` (via `{}`); wildcards cannot be included transitively",
                                r.text, def.name.text, rel.name.text, found.wildcard_type, found.via
                            ),
                        );
                    }
                }
            }
            if let Some(c) = &t.caveat {
                if !self.caveats.contains_key(c.text.as_str())
                    && !self.may_be_unparsed_item(&c.text)
                {
                    let message = if c.text == "expiration" && !self.file.uses_expiration {
                        "caveat `expiration` not found; to use relationship expiration, add `use expiration` at the top of the schema".to_string()
                    } else {
                        format!("caveat `{}` not found", c.text)
                    };
                    self.error(c.span, message);
                }
            }
            allowed.push(subject);
        }
        allowed
    }

    /// The first wildcard reachable from `def#rel` through relations' allowed usersets
    /// (depth first, in declaration order, as SpiceDB looks).
    fn wildcard_via(&mut self, def: &'f str, rel: &'f str) -> Option<WildcardFound> {
        if let Some(known) = self.wildcards.get(&(def, rel)) {
            return known.clone();
        }
        let mut found = None;
        let mut stack: Vec<(&'f str, &'f str)> = vec![(def, rel)];
        let mut seen = HashSet::new();
        while let Some((d, r)) = stack.pop() {
            if !seen.insert((d, r)) {
                continue;
            }
            let Some(Member::Relation(relation)) = self.member(d, r) else {
                continue;
            };
            if let Some(t) = relation
                .types
                .iter()
                .find(|t| t.kind == TypeRefKind::Wildcard)
            {
                found = Some(WildcardFound {
                    wildcard_type: t.type_name.text.clone(),
                    via: format!("{d}#{r}"),
                });
                break;
            }
            let next = relation.types.iter().rev().filter_map(|t| match &t.kind {
                TypeRefKind::Relation(sub) => Some((t.type_name.text.as_str(), sub.text.as_str())),
                TypeRefKind::Object | TypeRefKind::Wildcard => None,
            });
            stack.extend(next);
        }
        self.wildcards.insert((def, rel), found.clone());
        found
    }

    // ---- permissions ----

    fn rewrite(
        &mut self,
        def: &'f DefinitionAst,
        perm: &'f PermissionAst,
        expr: &'f Expr,
    ) -> Rewrite {
        match &expr.kind {
            ExprKind::Nil => Rewrite::Nil,
            ExprKind::Identifier(id) => {
                if self.member(&def.name.text, &id.text).is_none() {
                    if !self.may_be_unparsed_member(&def.name.text) {
                        self.error(
                            id.span,
                            format!(
                                "relation or permission `{}` not found on definition `{}`",
                                id.text, def.name.text
                            ),
                        );
                    }
                } else if id.text == perm.name.text
                    && !matches!(perm.expr.kind, ExprKind::Identifier(_))
                {
                    self.warn(
                        id.span,
                        format!(
                            "permission `{}` refers to itself, so checking it recurses until the depth limit",
                            perm.name.text
                        ),
                    );
                }
                Rewrite::Computed(id.text.clone())
            }
            ExprKind::Arrow {
                tupleset,
                computed,
                kind,
            } => {
                self.arrow(def, perm, tupleset, computed, *kind);
                Rewrite::Arrow {
                    tupleset: tupleset.text.clone(),
                    computed: computed.text.clone(),
                    kind: *kind,
                }
            }
            ExprKind::Union(items) => {
                let mut out = Vec::new();
                for item in items {
                    match self.rewrite(def, perm, item) {
                        Rewrite::Union(inner) => out.extend(inner),
                        other => out.push(other),
                    }
                }
                Rewrite::Union(out)
            }
            ExprKind::Intersection(items) => {
                let mut out = Vec::new();
                for item in items {
                    match self.rewrite(def, perm, item) {
                        Rewrite::Intersection(inner) => out.extend(inner),
                        other => out.push(other),
                    }
                }
                Rewrite::Intersection(out)
            }
            ExprKind::Exclusion(base, sub) => Rewrite::Exclusion(
                Box::new(self.rewrite(def, perm, base)),
                Box::new(self.rewrite(def, perm, sub)),
            ),
        }
    }

    fn arrow(
        &mut self,
        def: &'f DefinitionAst,
        perm: &'f PermissionAst,
        tupleset: &'f Ident,
        computed: &Ident,
        kind: ArrowKind,
    ) {
        let shown = match kind {
            ArrowKind::Any => format!("{}->{}", tupleset.text, computed.text),
            ArrowKind::All => format!("{}.all({})", tupleset.text, computed.text),
        };
        let relation = match self.member(&def.name.text, &tupleset.text) {
            None => {
                if !self.may_be_unparsed_member(&def.name.text) {
                    self.error(
                        tupleset.span,
                        format!(
                            "relation `{}` not found on definition `{}`",
                            tupleset.text, def.name.text
                        ),
                    );
                }
                return;
            }
            Some(Member::Permission(_)) => {
                self.error(
                    tupleset.span,
                    format!(
                        "arrow `{shown}` in permission `{}`: `{}` is a permission, but the left side of an arrow must be a relation",
                        perm.name.text, tupleset.text
                    ),
                );
                return;
            }
            Some(Member::Relation(r)) => r,
        };
        if let Some(found) = self.wildcard_via(&def.name.text, &tupleset.text) {
            self.error(
                tupleset.span,
                format!(
                    "arrow `{shown}` in permission `{}`: relation `{}` includes the wildcard `{}:*` (via `{}`); relations with wildcards cannot be used on the left side of an arrow",
                    perm.name.text, tupleset.text, found.wildcard_type, found.via
                ),
            );
            return;
        }
        // SpiceDB only warns when no subject type has the right side.
        let reachable = relation.types.iter().any(|t| {
            !matches!(t.kind, TypeRefKind::Wildcard)
                && self.member(&t.type_name.text, &computed.text).is_some()
        });
        let unknown_types = relation.types.iter().any(|t| {
            !self.defs.contains_key(t.type_name.text.as_str())
                || self.may_be_unparsed_member(&t.type_name.text)
        });
        if !reachable && !unknown_types {
            self.warn(
                tupleset.span,
                format!(
                    "arrow `{shown}` in permission `{}`: no subject type of relation `{}` has a relation or permission `{}`",
                    perm.name.text, tupleset.text, computed.text
                ),
            );
        }
    }

    /// SpiceDB rejects permissions that are only other names for each other (`a = b`, `b = a`).
    fn alias_cycles(&mut self, def: &'f DefinitionAst) {
        let Some(members) = self.members.get(def.name.text.as_str()).cloned() else {
            return;
        };
        let is_permission = |name: &str| matches!(members.get(name), Some(Member::Permission(_)));
        let mut unresolved: BTreeMap<&str, (&str, Span)> = BTreeMap::new();
        let mut done: BTreeSet<&str> = BTreeSet::new();
        for (&name, member) in &members {
            match member {
                Member::Permission(p) => match &p.expr.kind {
                    ExprKind::Identifier(target) if is_permission(&target.text) => {
                        unresolved.insert(name, (&target.text, p.span));
                    }
                    _ => {
                        done.insert(name);
                    }
                },
                Member::Relation(_) => {
                    done.insert(name);
                }
            }
        }
        loop {
            let resolvable: Vec<&str> = unresolved
                .iter()
                .filter(|(_, (target, _))| done.contains(target))
                .map(|(name, _)| *name)
                .collect();
            if resolvable.is_empty() {
                break;
            }
            for name in resolvable {
                unresolved.remove(name);
                done.insert(name);
            }
        }
        if let Some(span) = unresolved.values().map(|(_, span)| *span).min() {
            let names: Vec<String> = unresolved.keys().map(|n| format!("`{n}`")).collect();
            let message = format!(
                "permissions {} of definition `{}` form a cycle: they are defined only as each other",
                names.join(", "),
                def.name.text
            );
            self.error(span, message);
        }
    }

    /// SpiceDB: the types in `permission p: a | b = ...` must include every type `p` can reach.
    fn type_annotations(
        &mut self,
        definitions: &BTreeMap<String, Definition>,
        def: &str,
        perm: &PermissionAst,
    ) {
        let listed: BTreeSet<&str> = perm.annotations.iter().map(|a| a.text.as_str()).collect();
        for reachable in terminal_types(definitions, def, &perm.name.text) {
            if !listed.contains(reachable.as_str()) {
                let message = format!(
                    "incomplete type annotation on permission `{}` of definition `{def}`: `{reachable}` can be reached but is not listed",
                    perm.name.text
                );
                self.error(perm.name.span, message);
            }
        }
    }
}

#[derive(Clone)]
struct WildcardFound {
    wildcard_type: String,
    via: String,
}

/// Every subject type that `def#relation` can finally resolve to.
fn terminal_types(
    definitions: &BTreeMap<String, Definition>,
    def: &str,
    relation: &str,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut seen = HashSet::new();
    let mut stack = vec![(def.to_string(), relation.to_string())];
    while let Some((d, r)) = stack.pop() {
        if !seen.insert((d.clone(), r.clone())) {
            continue;
        }
        let Some(rel) = definitions.get(&d).and_then(|x| x.relation(&r)) else {
            continue;
        };
        match rel.kind() {
            RelationKind::Relation(allowed) => {
                for a in allowed {
                    match &a.kind {
                        AllowedKind::Object | AllowedKind::Wildcard => {
                            out.insert(a.subject_type.clone());
                        }
                        AllowedKind::Relation(sub) => {
                            stack.push((a.subject_type.clone(), sub.clone()))
                        }
                    }
                }
            }
            RelationKind::Permission(rewrite) => {
                let mut rewrites = vec![rewrite];
                while let Some(rw) = rewrites.pop() {
                    match rw {
                        Rewrite::Union(items) | Rewrite::Intersection(items) => {
                            rewrites.extend(items)
                        }
                        Rewrite::Exclusion(a, b) => {
                            rewrites.push(a);
                            rewrites.push(b);
                        }
                        Rewrite::Computed(name) => stack.push((d.clone(), name.clone())),
                        Rewrite::Arrow {
                            tupleset, computed, ..
                        } => {
                            for a in definitions
                                .get(&d)
                                .and_then(|x| x.relation(tupleset))
                                .map_or(&[][..], |t| t.allowed())
                            {
                                stack.push((a.subject_type.clone(), computed.clone()));
                            }
                        }
                        Rewrite::Nil => {}
                    }
                }
            }
        }
    }
    out
}

/// The names a CEL expression refers to at top level (not after `.`, not inside strings).
fn referenced_identifiers(expression: &str) -> BTreeSet<&str> {
    let lexed = lex(expression);
    let mut out = BTreeSet::new();
    let mut previous = None;
    for tok in &lexed.tokens {
        if tok.kind == TokenKind::Ident && previous != Some(TokenKind::Period) {
            out.insert(tok.text(expression));
        }
        if tok.kind != TokenKind::SyntheticSemicolon {
            previous = Some(tok.kind);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Schema, compile};
    use super::*;

    fn ok(source: &str) -> Schema {
        match compile(source) {
            Ok(s) => s,
            Err(e) => panic!("unexpected errors:\n{e}"),
        }
    }

    /// Every error as `line:column: message`.
    fn errs(source: &str) -> Vec<String> {
        match compile(source) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn one_err(source: &str) -> String {
        let all = errs(source);
        assert_eq!(all.len(), 1, "{all:?}");
        all.into_iter().next().unwrap_or_default()
    }

    fn rewrite(schema: &Schema, def: &str, perm: &str) -> Rewrite {
        match schema.relation(def, perm).map(|r| r.kind()) {
            Some(RelationKind::Permission(rw)) => rw.clone(),
            other => panic!("not a permission: {other:?}"),
        }
    }

    fn c(name: &str) -> Rewrite {
        Rewrite::Computed(name.to_string())
    }

    #[test]
    fn cel_identifiers_skip_members_and_strings() {
        let ids = referenced_identifiers("a.b == 'c' && d[\"e\"] && f(g)\n && h.i(j)");
        assert_eq!(
            ids.into_iter().collect::<Vec<_>>(),
            vec!["a", "d", "f", "g", "h", "j"]
        );
    }

    #[test]
    fn compiles_a_full_schema() {
        let schema = ok(r#"
use expiration

/** a person */
definition user {}

definition org/team {
    relation member: user | org/team#member
}

caveat ip_allowed(ip ipaddress, cidrs list<string>, attrs map<any>) {
    cidrs.exists(c, ip.in_cidr(c)) && attrs.size() >= 0
}

definition document {
    /** who may read */
    relation viewer: user | user:* | org/team#member | user with ip_allowed | user with expiration | org/team#member with ip_allowed and expiration
    relation parent: document
    relation banned: user
    permission view = (viewer + parent->view) - banned
    permission all_parents = parent.all(view) & parent.any(view)
    permission nothing = nil
}
"#);
        assert!(schema.uses_expiration());
        assert_eq!(
            schema.definition("user").and_then(|d| d.doc()),
            Some("a person")
        );
        let doc = schema.definition("document").unwrap();
        let names: Vec<&str> = doc.relations().map(|r| r.name()).collect();
        assert_eq!(
            names,
            vec![
                "viewer",
                "parent",
                "banned",
                "view",
                "all_parents",
                "nothing"
            ]
        );
        let viewer = doc.relation("viewer").unwrap();
        assert_eq!(viewer.doc(), Some("who may read"));
        assert_eq!(viewer.span().to_string(), "17:5");
        let shown: Vec<String> = viewer.allowed().iter().map(|a| a.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "user",
                "user:*",
                "org/team#member",
                "user with ip_allowed",
                "user with expiration",
                "org/team#member with ip_allowed and expiration"
            ]
        );
        assert_eq!(
            rewrite(&schema, "document", "view"),
            Rewrite::Exclusion(
                Box::new(Rewrite::Union(vec![
                    c("viewer"),
                    Rewrite::Arrow {
                        tupleset: "parent".into(),
                        computed: "view".into(),
                        kind: ArrowKind::Any
                    }
                ])),
                Box::new(c("banned"))
            )
        );
        assert_eq!(
            rewrite(&schema, "document", "all_parents"),
            Rewrite::Intersection(vec![
                Rewrite::Arrow {
                    tupleset: "parent".into(),
                    computed: "view".into(),
                    kind: ArrowKind::All
                },
                Rewrite::Arrow {
                    tupleset: "parent".into(),
                    computed: "view".into(),
                    kind: ArrowKind::Any
                },
            ])
        );
        assert_eq!(rewrite(&schema, "document", "nothing"), Rewrite::Nil);
        let cav = schema.caveat("ip_allowed").unwrap();
        assert_eq!(
            cav.expression(),
            "cidrs.exists(c, ip.in_cidr(c)) && attrs.size() >= 0"
        );
        assert_eq!(cav.expression_span().to_string(), "12:5");
        assert_eq!(cav.span().to_string(), "11:1");
        assert_eq!(cav.parameter("ip"), Some(&CaveatType::IpAddress));
        assert_eq!(
            cav.parameter("cidrs"),
            Some(&CaveatType::List(Box::new(CaveatType::String)))
        );
        assert_eq!(
            cav.parameter("attrs").map(|t| t.to_string()).as_deref(),
            Some("map<any>")
        );
        assert!(schema.warnings().is_empty());
    }

    #[test]
    fn same_operator_chains_flatten_even_through_parentheses() {
        let schema = ok(
            "definition ddd {\n relation aaa: ddd\n relation bbb: ddd\n relation ccc: ddd\n relation eee: ddd\n \
             permission uni = (aaa + bbb) + (ccc + (eee))\n permission int = aaa & (bbb & ccc)\n permission mix = aaa & bbb + ccc\n \
             permission exc = aaa - bbb - ccc\n permission single = (aaa)\n}",
        );
        assert_eq!(
            rewrite(&schema, "ddd", "uni"),
            Rewrite::Union(vec![c("aaa"), c("bbb"), c("ccc"), c("eee")])
        );
        assert_eq!(
            rewrite(&schema, "ddd", "int"),
            Rewrite::Intersection(vec![c("aaa"), c("bbb"), c("ccc")])
        );
        assert_eq!(
            rewrite(&schema, "ddd", "mix"),
            Rewrite::Intersection(vec![c("aaa"), Rewrite::Union(vec![c("bbb"), c("ccc")])])
        );
        assert_eq!(
            rewrite(&schema, "ddd", "exc"),
            Rewrite::Exclusion(
                Box::new(Rewrite::Exclusion(Box::new(c("aaa")), Box::new(c("bbb")))),
                Box::new(c("ccc"))
            )
        );
        assert_eq!(rewrite(&schema, "ddd", "single"), c("aaa"));
    }

    #[test]
    fn unknown_names_in_relations() {
        assert_eq!(
            one_err("definition doc {\n  relation viewer: usr\n}"),
            "2:20: definition `usr` not found"
        );
        assert_eq!(
            one_err(
                "definition user {}\ndefinition team {\n relation member: user\n}\ndefinition doc {\n  relation viewer: team#membr\n}"
            ),
            "6:25: relation `membr` not found on definition `team`"
        );
        assert_eq!(
            one_err("definition user {}\ndefinition doc {\n  relation viewer: user with cav\n}"),
            "3:30: caveat `cav` not found"
        );
        assert_eq!(
            one_err(
                "definition user {}\ndefinition doc {\n  relation viewer: user with expiration\n}"
            ),
            "3:30: caveat `expiration` not found; to use relationship expiration, add `use expiration` at the top of the schema"
        );
    }

    #[test]
    fn unknown_names_in_permissions() {
        assert_eq!(
            one_err(
                "definition user {}\ndefinition document {\n  relation viewer: user\n  permission view = viewr + viewer\n}"
            ),
            "4:21: relation or permission `viewr` not found on definition `document`"
        );
        assert_eq!(
            one_err(
                "definition user {}\ndefinition document {\n  relation viewer: user\n  permission view = parent->view\n}"
            ),
            "4:21: relation `parent` not found on definition `document`"
        );
    }

    #[test]
    fn arrows_need_a_relation_without_wildcards_on_the_left() {
        assert_eq!(
            one_err(
                "definition user {}\ndefinition doc {\n relation viewer: user\n permission perm = viewer\n permission view = perm->xyz\n}"
            ),
            "5:20: arrow `perm->xyz` in permission `view`: `perm` is a permission, but the left side of an arrow must be a relation"
        );
        assert_eq!(
            one_err(
                "definition user {\n relation xyz: user\n}\ndefinition doc {\n relation viewer: user | user:*\n permission view = viewer.all(xyz)\n}"
            ),
            "6:20: arrow `viewer.all(xyz)` in permission `view`: relation `viewer` includes the wildcard `user:*` (via `doc#viewer`); relations with wildcards cannot be used on the left side of an arrow"
        );
        // Transitively, through a userset.
        assert_eq!(
            one_err(
                "definition user {\n relation xyz: user\n}\ndefinition doc {\n relation viewer: doc#inner\n relation inner: user:*\n permission view = viewer->xyz\n}"
            ),
            "7:20: arrow `viewer->xyz` in permission `view`: relation `viewer` includes the wildcard `user:*` (via `doc#inner`); relations with wildcards cannot be used on the left side of an arrow"
        );
    }

    #[test]
    fn arrow_to_a_relation_no_subject_type_has_is_only_a_warning() {
        let schema = ok(
            "definition user {}\ndefinition folder {\n relation reader: user\n}\ndefinition doc {\n relation parent: folder | user\n permission view = parent->read\n permission fine = parent->reader\n}",
        );
        let warnings: Vec<String> = schema.warnings().iter().map(|w| w.to_string()).collect();
        assert_eq!(
            warnings,
            vec![
                "7:20: arrow `parent->read` in permission `view`: no subject type of relation `parent` has a relation or permission `read`"
            ]
        );
    }

    #[test]
    fn transitive_wildcards_are_rejected_in_usersets() {
        assert_eq!(
            one_err(
                "definition user {}\ndefinition group {\n relation member: user | user:*\n}\ndefinition doc {\n relation viewer: group#member\n}"
            ),
            "6:19: subject type `group#member` of relation `doc#viewer` includes the wildcard `user:*` (via `group#member`); wildcards cannot be included transitively"
        );
        // As SpiceDB: a userset of the same type is not followed, and a wildcard beside a userset is fine.
        ok("definition user {}\ndefinition group {\n relation member: user:* | group#member\n}");
    }

    #[test]
    fn duplicates() {
        assert_eq!(
            one_err("definition user {}\ndefinition user {}"),
            "2:12: duplicate definition `user`: already declared at 1:1"
        );
        assert_eq!(
            one_err("caveat user(a int) { a == 1 }\ndefinition user {}"),
            "2:12: definition `user` has the name of the caveat declared at 1:1; definitions and caveats share one namespace"
        );
        assert_eq!(
            one_err("caveat cav(a int) { a == 1 }\n\ncaveat cav(b int) { b == 1 }"),
            "3:8: duplicate caveat `cav`: already declared at 1:1"
        );
        assert_eq!(
            one_err("definition user {\n relation viewer: user\n permission viewer = viewer\n}"),
            "3:13: duplicate relation or permission `viewer` on definition `user`: already declared at 2:2"
        );
        assert_eq!(
            one_err("caveat cav(a int, a string) { a == 1 }"),
            "1:19: duplicate parameter `a` on caveat `cav`"
        );
        assert_eq!(
            one_err("definition user {\n relation viewer: user | user#...;\n}"),
            "2:26: duplicate subject type `user` on relation `user#viewer`"
        );
        // Different caveats or expiration make different subject types.
        ok(
            "use expiration\ncaveat cav(a int) { a == 1 }\ndefinition user {\n relation viewer: user | user with cav | user with expiration | user with cav and expiration\n}",
        );
    }

    #[test]
    fn invalid_names() {
        assert_eq!(
            errs(
                "definition User {}\ndefinition ab {\n relation Viewer: ab\n permission v_: ab\n}"
            ),
            vec![
                "1:12: definition name `User` is invalid: it must be `name` or `prefix/name`, each part 3 to 64 characters of lowercase letters, digits and `_`, starting with a letter and not ending with `_`",
                "2:12: definition name `ab` is invalid: it must be `name` or `prefix/name`, each part 3 to 64 characters of lowercase letters, digits and `_`, starting with a letter and not ending with `_`",
                "3:11: relation name `Viewer` is invalid: it must be 3 to 64 characters of lowercase letters, digits and `_`, start with a letter and not end with `_`",
                "4:19: expected `=` after `permission v_`, found a new line",
            ]
        );
        assert!(
            one_err("caveat Cav(a int) { a == 1 }")
                .starts_with("1:8: caveat name `Cav` is invalid")
        );
    }

    #[test]
    fn caveat_parameter_types() {
        ok(
            "caveat cav(a int, b uint, c double, d bool, e string, f bytes, g duration, h timestamp, i list<list<int>>, j map<string>, k ipaddress, l any) {\n a + b > 0 && c > 0.0 && d && e + j.x != '' && f.size() > 0 && h + g > h && i[0][0] == 1 && k.in_cidr('1.2.3.0/24') && l\n}",
        );
        assert_eq!(
            one_err("caveat cav(someParam foobar) { someParam == 42 }"),
            "1:22: unknown type `foobar` for parameter `someParam` of caveat `cav`; known types are `any`, `bool`, `bytes`, `double`, `duration`, `int`, `ipaddress`, `list`, `map`, `string`, `timestamp`, `uint`"
        );
        assert_eq!(
            one_err("caveat cav(a list) { a }"),
            "1:14: type `list` takes 1 type argument, found 0"
        );
        assert_eq!(
            one_err("caveat cav(a int<int>) { a }"),
            "1:14: type `int` takes no type arguments, found 1"
        );
        assert_eq!(
            one_err("caveat cav(a map<string, int>) { a }"),
            "1:14: type `map` takes 1 type argument, found 2"
        );
        assert_eq!(
            one_err("caveat cav(a int, b int) {\n a == 1 && 'b' == \"b\" && {'k': 1}.b == 1\n}"),
            "1:19: parameter `b` of caveat `cav` is not used in its expression"
        );
    }

    #[test]
    fn permission_alias_cycles_are_errors_self_reference_a_warning() {
        assert_eq!(
            one_err(
                "definition user {}\ndefinition doc {\n relation viewer: user\n permission aaa = bbb\n permission bbb = (aaa)\n permission ccc = aaa\n permission ddd = viewer\n}"
            ),
            "4:2: permissions `aaa`, `bbb`, `ccc` of definition `doc` form a cycle: they are defined only as each other"
        );
        assert_eq!(
            one_err("definition doc {\n permission view = view\n}"),
            "2:2: permissions `view` of definition `doc` form a cycle: they are defined only as each other"
        );
        let schema = ok(
            "definition user {}\ndefinition doc {\n relation viewer: user\n permission view = viewer + view\n}",
        );
        let warnings: Vec<String> = schema.warnings().iter().map(|w| w.to_string()).collect();
        assert_eq!(
            warnings,
            vec![
                "4:29: permission `view` refers to itself, so checking it recurses until the depth limit"
            ]
        );
        // Aliases that end at a relation are fine.
        ok(
            "definition user {}\ndefinition doc {\n relation viewer: user\n permission aaa = bbb\n permission bbb = viewer\n}",
        );
    }

    #[test]
    fn type_annotations_must_be_complete() {
        ok(
            "use typechecking\ndefinition user {}\ndefinition team {\n relation member: user\n}\ndefinition doc {\n relation viewer: user | team#member\n permission view: user = viewer\n}",
        );
        assert_eq!(
            one_err(
                "definition user {}\ndefinition org {}\ndefinition doc {\n relation viewer: user | org\n relation parent: doc\n permission view: user = viewer + parent->view\n}"
            ),
            "6:13: incomplete type annotation on permission `view` of definition `doc`: `org` can be reached but is not listed"
        );
    }

    #[test]
    fn every_error_is_reported_in_position_order() {
        let all = errs(
            "definition doc {\n relation viewer: usr\n permission view = viewr\n}\ndefinition xyz/broken {\n relation aaa: doc +\n permission bbb = aaa\n}\ndefinition doc {}\n",
        );
        assert_eq!(
            all,
            vec![
                "2:19: definition `usr` not found",
                "3:20: relation or permission `viewr` not found on definition `doc`",
                "6:20: expected a new line or `;` after the relation, found `+`",
                "9:12: duplicate definition `doc`: already declared at 1:1",
            ]
        );
    }

    #[test]
    fn parse_errors_do_not_cause_spurious_not_found_errors() {
        // `reader` failed to parse: permissions using it are not reported.
        assert_eq!(
            errs(
                "definition user {}\ndefinition doc {\n relation reader user\n permission view = reader\n}"
            ),
            vec!["3:18: expected `:` after `relation reader`, found `user`"]
        );
        // A broken caveat is not reported as missing.
        assert_eq!(
            errs(
                "caveat cav(a int {\n a\n}\ndefinition user {}\ndefinition doc {\n relation reader: user with cav\n}"
            ),
            vec!["1:18: expected `,` or `)` after the caveat parameter, found `{`"]
        );
    }
}
