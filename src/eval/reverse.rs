//! Reverse reachability for `lookup_resources`: from a subject, walk the relationships backwards
//! along the schema's edges (userset, computed, arrow) to the resources of the wanted type that
//! might have the permission. It over-approximates (intersections and exclusions are treated as
//! unions); the caller confirms each candidate with a check. The walk only enters nodes whose
//! type and relation can lead to the wanted permission, hands out each candidate as soon as it
//! is discovered, and visits nodes in an order fixed by the snapshot, so a walk can be resumed
//! after a given candidate.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::model::{ObjectRef, SubjectFilter, SubjectRef, Timestamp, WILDCARD};
use crate::schema::{AllowedKind, RelationKind, Rewrite, Schema};

use super::context::EvalContext;
use super::error::EvalError;
use super::types::EvalHint;

/// A node of the walk: `object#relation` might contain the subject (`None`: the subject itself).
/// Relation names are the schema's.
type Node<'s> = (ObjectRef, Option<&'s str>);

/// A kind of node: its type and relation.
type NodeKind<'s> = (&'s str, Option<&'s str>);

/// How a node of one kind leads to others.
#[derive(Debug, Clone, Copy)]
enum Edge<'s> {
    /// `definition#relation` allows the node as a subject: its relationships naming the node
    /// (and, for an object, the wildcard of its type) lead to their resources.
    Relation {
        definition: &'s str,
        relation: &'s str,
    },
    /// A permission of the same object that uses the node's relation.
    Computed { permission: &'s str },
    /// `definition#permission` has an arrow `tupleset->(node's relation)`: the resources whose
    /// `tupleset` names the node's object.
    Arrow {
        definition: &'s str,
        tupleset: &'s str,
        permission: &'s str,
    },
}

fn references_computed(rewrite: &Rewrite, relation: &str) -> bool {
    match rewrite {
        Rewrite::Computed(r) => r == relation,
        Rewrite::Union(items) | Rewrite::Intersection(items) => {
            items.iter().any(|i| references_computed(i, relation))
        }
        Rewrite::Exclusion(a, b) => {
            references_computed(a, relation) || references_computed(b, relation)
        }
        Rewrite::Arrow { .. } | Rewrite::Nil => false,
    }
}

fn arrows<'a>(rewrite: &'a Rewrite, out: &mut Vec<(&'a str, &'a str)>) {
    match rewrite {
        Rewrite::Arrow {
            tupleset, computed, ..
        } => out.push((tupleset, computed)),
        Rewrite::Union(items) | Rewrite::Intersection(items) => {
            items.iter().for_each(|i| arrows(i, out));
        }
        Rewrite::Exclusion(a, b) => {
            arrows(a, out);
            arrows(b, out);
        }
        Rewrite::Computed(_) | Rewrite::Nil => {}
    }
}

fn computed_names<'a>(rewrite: &'a Rewrite, out: &mut Vec<&'a str>) {
    match rewrite {
        Rewrite::Computed(r) => out.push(r),
        Rewrite::Union(items) | Rewrite::Intersection(items) => {
            items.iter().for_each(|i| computed_names(i, out));
        }
        Rewrite::Exclusion(a, b) => {
            computed_names(a, out);
            computed_names(b, out);
        }
        Rewrite::Arrow { .. } | Rewrite::Nil => {}
    }
}

/// The kinds of node `definition#relation` is made of: those a walk may pass through on its
/// way to it.
fn inputs<'s>(schema: &'s Schema, definition: &'s str, relation: &str) -> Vec<NodeKind<'s>> {
    let mut out = Vec::new();
    let Some(rdef) = schema.relation(definition, relation) else {
        return out;
    };
    match rdef.kind() {
        RelationKind::Relation(allowed) => {
            for a in allowed {
                let subject_type = a.subject_type.as_str();
                match &a.kind {
                    AllowedKind::Relation(r) => {
                        if let Some(s) = schema.relation(subject_type, r) {
                            out.push((subject_type, Some(s.name())));
                        }
                    }
                    AllowedKind::Object | AllowedKind::Wildcard => out.push((subject_type, None)),
                }
            }
        }
        RelationKind::Permission(rewrite) => {
            let mut computed = Vec::new();
            computed_names(rewrite, &mut computed);
            for c in computed {
                if let Some(s) = schema.relation(definition, c) {
                    out.push((definition, Some(s.name())));
                }
            }
            let mut found = Vec::new();
            arrows(rewrite, &mut found);
            for (tupleset, computed) in found {
                let Some(t) = schema.relation(definition, tupleset) else {
                    continue;
                };
                for a in t.allowed() {
                    if let Some(s) = schema.relation(&a.subject_type, computed) {
                        out.push((a.subject_type.as_str(), Some(s.name())));
                    }
                }
            }
        }
    }
    out
}

/// Every kind of node from which `definition#relation` can be reached, itself included.
fn leading_to<'s>(
    schema: &'s Schema,
    definition: &'s str,
    relation: &'s str,
) -> HashSet<NodeKind<'s>> {
    let mut seen: HashSet<NodeKind<'s>> = HashSet::new();
    let mut stack = vec![(definition, Some(relation))];
    while let Some(kind) = stack.pop() {
        if !seen.insert(kind) {
            continue;
        }
        if let (d, Some(r)) = kind {
            stack.extend(inputs(schema, d, r));
        }
    }
    seen
}

/// The edges out of nodes of `kind` that stay among kinds in `relevant`.
fn edges_of<'s>(
    schema: &'s Schema,
    relevant: &HashSet<NodeKind<'s>>,
    (object_type, relation): NodeKind<'s>,
) -> Vec<Edge<'s>> {
    let mut out = Vec::new();
    for def in schema.definitions() {
        for rdef in def.relations() {
            if !relevant.contains(&(def.name(), Some(rdef.name()))) {
                continue;
            }
            match rdef.kind() {
                RelationKind::Relation(allowed) => {
                    let accepts = allowed.iter().any(|a| {
                        a.subject_type == object_type
                            && match (&a.kind, relation) {
                                (AllowedKind::Relation(r), Some(want)) => r == want,
                                (AllowedKind::Object | AllowedKind::Wildcard, None) => true,
                                _ => false,
                            }
                    });
                    if accepts {
                        out.push(Edge::Relation {
                            definition: def.name(),
                            relation: rdef.name(),
                        });
                    }
                }
                RelationKind::Permission(rewrite) => {
                    let Some(relation) = relation else { continue };
                    if def.name() == object_type && references_computed(rewrite, relation) {
                        out.push(Edge::Computed {
                            permission: rdef.name(),
                        });
                    }
                    let mut found = Vec::new();
                    arrows(rewrite, &mut found);
                    let mut tuplesets: Vec<&str> = Vec::new();
                    for (tupleset, computed) in found {
                        if computed != relation || tuplesets.contains(&tupleset) {
                            continue;
                        }
                        let allows = def.relation(tupleset).is_some_and(|t| {
                            t.allowed().iter().any(|a| a.subject_type == object_type)
                        });
                        if allows {
                            tuplesets.push(tupleset);
                            out.push(Edge::Arrow {
                                definition: def.name(),
                                tupleset,
                                permission: rdef.name(),
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

/// How the walk reached a candidate: the part of the permission to evaluate first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Via<'s> {
    /// The subject itself is the candidate, or the permission is a relation.
    Direct,
    /// From the same object's relation or permission of this name.
    Computed(&'s str),
    /// Through the arrow `tupleset->computed`, from `target`.
    Arrow {
        tupleset: &'s str,
        computed: &'s str,
        target: ObjectRef,
    },
}

impl<'s> Via<'s> {
    /// The evaluation hint this stands for.
    pub(super) fn hint(&self) -> Option<EvalHint<'_>> {
        match self {
            Via::Direct => None,
            Via::Computed(r) => Some(EvalHint::Computed(r)),
            Via::Arrow {
                tupleset,
                computed,
                target,
            } => Some(EvalHint::Arrow {
                tupleset,
                computed,
                target,
            }),
        }
    }
}

/// A walk from a subject to the resources of one type that might have one permission.
pub(super) struct Walk<'s> {
    ctx: &'s EvalContext,
    schema: &'s Schema,
    resource_type: &'s str,
    permission: &'s str,
    relevant: HashSet<NodeKind<'s>>,
    /// The edges of each kind of node met so far (few kinds: a list beats hashing).
    edges: Vec<(NodeKind<'s>, Vec<Edge<'s>>)>,
    /// Nodes expanded, for checking the deadline now and then.
    expanded: u32,
    /// How many kinds of node of a type read the same tupleset (an arrow's): when more than
    /// one does, the resources read for an object are kept for the others.
    arrow_readers: Vec<(ArrowRead<'s>, usize)>,
    /// Resources read through an arrow's tupleset, kept for the kinds still to read them, with
    /// how many of those are left.
    arrow_memo: HashMap<(ObjectRef, ArrowRead<'s>), (Vec<ObjectRef>, usize)>,
    /// The earliest expiration of a relationship the walk has read.
    expires_at: Option<Timestamp>,
    seen: HashSet<Node<'s>>,
    /// Nodes to expand, with their type as the schema spells it.
    queue: VecDeque<(Node<'s>, &'s str)>,
    found: VecDeque<(ObjectRef, Via<'s>)>,
}

/// A tupleset read: the resources of `definition` whose `tupleset` names an object of
/// `object_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ArrowRead<'s> {
    object_type: &'s str,
    definition: &'s str,
    tupleset: &'s str,
}

impl<'s> Walk<'s> {
    /// A walk from `subject` to `resource_type#permission` (both validated by the caller).
    pub(super) fn new(
        ctx: &'s EvalContext,
        resource_type: &'s str,
        permission: &'s str,
        subject: &SubjectRef,
    ) -> Self {
        let schema = ctx.schema();
        let relevant = leading_to(schema, resource_type, permission);
        let mut walk = Walk {
            ctx,
            schema,
            resource_type,
            permission,
            relevant,
            edges: Vec::new(),
            expanded: 0,
            arrow_readers: Vec::new(),
            arrow_memo: HashMap::new(),
            expires_at: None,
            seen: HashSet::new(),
            queue: VecDeque::new(),
            found: VecDeque::new(),
        };
        let mut kinds: Vec<NodeKind<'s>> = walk.relevant.iter().copied().collect();
        kinds.sort_unstable();
        for kind in kinds {
            let edges = edges_of(schema, &walk.relevant, kind);
            for edge in &edges {
                if let Edge::Arrow {
                    definition,
                    tupleset,
                    ..
                } = *edge
                {
                    let read = ArrowRead {
                        object_type: kind.0,
                        definition,
                        tupleset,
                    };
                    match walk.arrow_readers.iter_mut().find(|(r, _)| *r == read) {
                        Some((_, n)) => *n += 1,
                        None => walk.arrow_readers.push((read, 1)),
                    }
                }
            }
            walk.edges.push((kind, edges));
        }
        let relation = match subject.relation() {
            None => Some(None),
            Some(r) => schema
                .relation(subject.object_type(), r)
                .map(|d| Some(d.name())),
        };
        let kind_type = schema
            .definition(subject.object_type())
            .map_or("", |d| d.name());
        if let Some(relation) = relation {
            walk.visit(
                (subject.object().clone(), relation),
                kind_type,
                Via::Direct,
                true,
            );
        }
        walk
    }

    /// Records a node; a new one that is a candidate is handed out, one that can lead to a
    /// candidate is queued.
    /// `kind_type` is the node's type as the schema spells it ("" if the schema lacks it).
    fn visit(&mut self, node: Node<'s>, kind_type: &'s str, via: Via<'s>, start: bool) {
        if !self.seen.insert(node.clone()) {
            return;
        }
        if node.0.object_type() == self.resource_type && node.1 == Some(self.permission) {
            self.found.push_back((node.0.clone(), via));
        }
        if start || self.relevant.contains(&(kind_type, node.1)) {
            self.queue.push_back((node, kind_type));
        }
    }

    /// The earliest expiration of a relationship read so far: what the walk found holds until
    /// then.
    pub(super) fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }

    /// The next candidate and how it was reached, or `None` once the walk is over.
    pub(super) fn next_candidate(&mut self) -> Result<Option<(ObjectRef, Via<'s>)>, EvalError> {
        loop {
            if let Some(found) = self.found.pop_front() {
                return Ok(Some(found));
            }
            let Some((node, kind_type)) = self.queue.pop_front() else {
                return Ok(None);
            };
            /// Nodes expanded between two looks at the clock.
            const DEADLINE_STRIDE: u32 = 64;
            if self.expanded % DEADLINE_STRIDE == 0 {
                self.ctx.check_deadline()?;
            }
            self.expanded = self.expanded.wrapping_add(1);
            self.expand(&node, kind_type)?;
        }
    }

    /// Visits the nodes that directly depend on `node`.
    fn expand(&mut self, node: &Node<'s>, kind_type: &'s str) -> Result<(), EvalError> {
        let (object, relation) = node;
        if kind_type.is_empty() {
            return Ok(());
        }
        let kind = (kind_type, *relation);
        let at = match self.edges.iter().position(|(k, _)| *k == kind) {
            Some(at) => at,
            None => {
                self.edges
                    .push((kind, edges_of(self.schema, &self.relevant, kind)));
                self.edges.len() - 1
            }
        };
        // Taken out of the list while the node is expanded (visiting never needs them).
        let edges = self
            .edges
            .get_mut(at)
            .map(|(_, e)| std::mem::take(e))
            .unwrap_or_default();
        let expanded = self.follow(object, kind, &edges);
        if let Some((_, slot)) = self.edges.get_mut(at) {
            *slot = edges;
        }
        expanded
    }

    /// Visits `resource#node_relation` for each live relationship of
    /// `definition#read_relation` whose subject matches `filter`.
    fn visit_resources(
        &mut self,
        definition: &'s str,
        read_relation: &str,
        filter: &SubjectFilter,
        node_relation: &'s str,
        via: impl Fn() -> Via<'s>,
    ) -> Result<(), EvalError> {
        for resource in self.read_resources(definition, read_relation, filter)? {
            self.visit((resource, Some(node_relation)), definition, via(), false);
        }
        Ok(())
    }

    /// The resources of the live relationships of `definition#read_relation` whose subject
    /// matches `filter`.
    fn read_resources(
        &mut self,
        definition: &str,
        read_relation: &str,
        filter: &SubjectFilter,
    ) -> Result<Vec<ObjectRef>, EvalError> {
        let now = self.ctx.now();
        let mut out = Vec::new();
        for rel in self
            .ctx
            .snapshot()
            .read_by_subject(definition, read_relation, filter)
        {
            let rel = rel?;
            if !rel.is_expired_at(now) {
                if let Some(e) = rel.expiration() {
                    self.expires_at = Some(self.expires_at.map_or(e, |m| m.min(e)));
                }
                out.push(rel.resource().clone());
            }
        }
        Ok(out)
    }

    /// The resources of `read.definition` whose `read.tupleset` names `object`: read once per
    /// object even when several kinds of its nodes follow the same tupleset.
    fn arrow_resources(
        &mut self,
        object: &ObjectRef,
        read: ArrowRead<'s>,
    ) -> Result<Vec<ObjectRef>, EvalError> {
        let readers = self
            .arrow_readers
            .iter()
            .find(|(r, _)| *r == read)
            .map_or(1, |(_, n)| *n);
        let filter = || SubjectFilter {
            subject_type: object.object_type().to_string(),
            subject_id: Some(object.object_id().to_string()),
            relation: None,
        };
        if readers < 2 {
            return self.read_resources(read.definition, read.tupleset, &filter());
        }
        let key = (object.clone(), read);
        if let Some((kept, left)) = self.arrow_memo.get_mut(&key) {
            *left = left.saturating_sub(1);
            if *left > 0 {
                return Ok(kept.clone());
            }
            return Ok(self
                .arrow_memo
                .remove(&key)
                .map(|(kept, _)| kept)
                .unwrap_or_default());
        }
        let found = self.read_resources(read.definition, read.tupleset, &filter())?;
        self.arrow_memo.insert(key, (found.clone(), readers - 1));
        Ok(found)
    }

    /// Visits the nodes `edges` lead to from `object#relation`.
    fn follow(
        &mut self,
        object: &ObjectRef,
        (kind_type, relation): NodeKind<'s>,
        edges: &[Edge<'s>],
    ) -> Result<(), EvalError> {
        for &edge in edges {
            match edge {
                Edge::Relation {
                    definition,
                    relation: via,
                } => {
                    let exact = SubjectFilter {
                        subject_type: object.object_type().to_string(),
                        subject_id: Some(object.object_id().to_string()),
                        relation: Some(relation.map(str::to_string)),
                    };
                    self.visit_resources(definition, via, &exact, via, || Via::Direct)?;
                    if relation.is_none() {
                        let wildcard = SubjectFilter {
                            subject_type: object.object_type().to_string(),
                            subject_id: Some(WILDCARD.to_string()),
                            relation: Some(None),
                        };
                        self.visit_resources(definition, via, &wildcard, via, || Via::Direct)?;
                    }
                }
                Edge::Computed { permission } => {
                    let via = relation.map_or(Via::Direct, Via::Computed);
                    self.visit((object.clone(), Some(permission)), kind_type, via, false);
                }
                Edge::Arrow {
                    definition,
                    tupleset,
                    permission,
                } => {
                    let read = ArrowRead {
                        object_type: kind_type,
                        definition,
                        tupleset,
                    };
                    for resource in self.arrow_resources(object, read)? {
                        let via = match relation {
                            Some(computed) => Via::Arrow {
                                tupleset,
                                computed,
                                target: object.clone(),
                            },
                            None => Via::Direct,
                        };
                        self.visit((resource, Some(permission)), definition, via, false);
                    }
                }
            }
        }
        Ok(())
    }
}
