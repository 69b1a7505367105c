//! Reverse reachability for `lookup_resources`: from a subject, walk the relationships backwards
//! along the schema's edges (userset, computed, arrow) to the resources of the wanted type that
//! might have the permission. It over-approximates (intersections and exclusions are treated as
//! unions); the caller confirms each candidate with a check. The walk only enters nodes whose
//! type and relation can lead to the wanted permission, hands out each candidate as soon as it
//! is discovered, and visits nodes in an order fixed by the snapshot, so a walk can be resumed
//! after a given candidate.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::model::{ObjectRef, SubjectFilter, SubjectRef, Timestamp, WILDCARD};
use crate::schema::{AllowedKind, ArrowKind, RelationKind, Rewrite, Schema};

use super::context::EvalContext;
use super::error::EvalError;
use super::types::EvalHint;

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
    Computed {
        permission: &'s str,
        /// Whether the node's relation holding makes the permission hold.
        implies: bool,
    },
    /// `definition#permission` has an arrow `tupleset->(node's relation)`: the resources whose
    /// `tupleset` names the node's object.
    Arrow {
        definition: &'s str,
        tupleset: &'s str,
        permission: &'s str,
        /// Whether the arrow holding makes the permission hold.
        implies: bool,
    },
}

/// A part of a permission's rewrite that a walk can prove holds: a relation or permission of
/// the same object, or an arrow (`any`) from a tupleset to a relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part<'a> {
    /// `Computed` of this name.
    Computed(&'a str),
    /// `tupleset->computed`.
    Arrow {
        tupleset: &'a str,
        computed: &'a str,
    },
}

/// Whether `part` holding makes `rewrite` hold, whatever else holds: it is reached through
/// unions (or is every item of an intersection), never under an exclusion or an `all` arrow.
pub(super) fn implies(rewrite: &Rewrite, part: Part<'_>) -> bool {
    match rewrite {
        Rewrite::Computed(r) => part == Part::Computed(r),
        Rewrite::Arrow {
            tupleset,
            computed,
            kind: ArrowKind::Any,
        } => part == Part::Arrow { tupleset, computed },
        Rewrite::Union(items) => items.iter().any(|i| implies(i, part)),
        Rewrite::Intersection(items) => !items.is_empty() && items.iter().all(|i| implies(i, part)),
        Rewrite::Arrow { .. } | Rewrite::Exclusion(..) | Rewrite::Nil => false,
    }
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
                            implies: implies(rewrite, Part::Computed(relation)),
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
                                implies: implies(
                                    rewrite,
                                    Part::Arrow {
                                        tupleset,
                                        computed: relation,
                                    },
                                ),
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
    /// The part of the permission this names (`None`: the permission itself).
    pub(super) fn part(&self) -> Option<Part<'s>> {
        match *self {
            Via::Direct => None,
            Via::Computed(r) => Some(Part::Computed(r)),
            Via::Arrow {
                tupleset, computed, ..
            } => Some(Part::Arrow { tupleset, computed }),
        }
    }

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
    /// Every kind of node the walk can meet (those leading to the permission, and the
    /// subject's); edges name their target by its place here.
    kinds: Vec<Kind<'s>>,
    /// Nodes expanded, for checking the deadline now and then.
    expanded: u32,
    /// How many kinds of node of a type read the same tupleset (an arrow's): when more than
    /// one does, the resources read for an object are kept for the others.
    arrow_readers: Vec<(ArrowRead<'s>, usize)>,
    /// Resources read through an arrow's tupleset, kept for the kinds still to read them, with
    /// how many of those are left.
    arrow_memo: HashMap<(ObjectRef, ArrowRead<'s>), (Vec<Reached>, usize), FoldState>,
    /// The earliest expiration of a relationship the walk has read.
    expires_at: Option<Timestamp>,
    /// Nodes to expand: their kind (a place in `kinds`), object, and whether they are proven
    /// (the subject is in them, unconditionally).
    queue: VecDeque<(usize, ObjectRef, bool)>,
    found: VecDeque<Candidate<'s>>,
    /// Resources read by the last reverse read (reused).
    hits: Vec<Reached>,
}

/// One kind of node: its edges and the nodes of it met so far.
struct Kind<'s> {
    kind: NodeKind<'s>,
    /// Its type, shared by every object of it the walk builds.
    object_type: std::sync::Arc<str>,
    /// The edges out of it, each with the place of its target kind.
    edges: Vec<(Edge<'s>, usize)>,
    /// Whether its nodes are candidates (the wanted type and permission).
    target: bool,
    /// Whether it has edges (its nodes are worth expanding). Kept apart from `edges`, which
    /// are taken out while one of its nodes is expanded.
    leads_on: bool,
    /// The ids of its nodes met so far.
    seen: HashSet<std::sync::Arc<str>, FoldState>,
}

/// A resource read from the reverse index, and whether its relationship has a caveat.
type Reached = (std::sync::Arc<str>, bool);

/// A resource a walk found: it might have the permission.
#[derive(Debug, Clone)]
pub(super) struct Candidate<'s> {
    /// The resource.
    pub(super) resource: ObjectRef,
    /// How the walk reached it.
    pub(super) via: Via<'s>,
    /// Whether the part of the permission `via` names (with `Via::Direct`, the permission
    /// itself) is proven to hold unconditionally: every relationship on the way is uncaveated
    /// (and unexpired) and every step from one node to the next is implied (through unions).
    /// Then only what the permission excludes or intersects with that part is left to decide.
    pub(super) proven: bool,
}

/// A tupleset read: the resources of `definition` whose `tupleset` names an object of
/// `object_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ArrowRead<'s> {
    object_type: &'s str,
    definition: &'s str,
    tupleset: &'s str,
}

/// Hashes a walk's node ids: a folded multiply over 8-byte words with a per-walk random seed
/// (SipHash, the standard one, cost a tenth of a large walk). The seed keeps colliding ids
/// from being chosen in advance.
#[derive(Clone, Copy)]
struct FoldState {
    seed: u64,
}

impl FoldState {
    fn new() -> Self {
        use std::hash::BuildHasher;
        FoldState {
            seed: std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64) | 1,
        }
    }
}

impl std::hash::BuildHasher for FoldState {
    type Hasher = FoldHasher;

    fn build_hasher(&self) -> FoldHasher {
        FoldHasher {
            acc: self.seed,
            seed: self.seed,
        }
    }
}

/// The hasher of [`FoldState`].
struct FoldHasher {
    acc: u64,
    seed: u64,
}

/// Odd constants from the digits of pi, mixed with the seed.
const FOLD_K1: u64 = 0x243f_6a88_85a3_08d3;
const FOLD_K2: u64 = 0x1319_8a2e_0370_7344;

fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

impl FoldHasher {
    fn mix(&mut self, word: u64) {
        self.acc = folded_multiply(self.acc ^ word, FOLD_K1 ^ self.seed);
    }
}

impl std::hash::Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let tail = chunks.remainder();
        let mut word = [0u8; 8];
        for (slot, b) in word.iter_mut().zip(tail) {
            *slot = *b;
        }
        self.mix(u64::from_le_bytes(word) ^ ((bytes.len() as u64) << 56));
    }

    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    fn finish(&self) -> u64 {
        folded_multiply(self.acc, FOLD_K2 ^ self.seed)
    }
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
        let hasher = FoldState::new();
        let mut walk = Walk {
            ctx,
            kinds: Vec::new(),
            expanded: 0,
            arrow_readers: Vec::new(),
            arrow_memo: HashMap::with_hasher(hasher),
            expires_at: None,
            queue: VecDeque::new(),
            found: VecDeque::new(),
            hits: Vec::new(),
        };
        let relation = match subject.relation() {
            None => Some(None),
            Some(r) => schema
                .relation(subject.object_type(), r)
                .map(|d| Some(d.name())),
        };
        let Some(start_type) = schema.definition(subject.object_type()).map(|d| d.name()) else {
            return walk;
        };
        let Some(relation) = relation else {
            return walk;
        };
        let start_kind = (start_type, relation);
        let mut kinds: Vec<NodeKind<'s>> = relevant.iter().copied().collect();
        kinds.sort_unstable();
        if !relevant.contains(&start_kind) {
            kinds.push(start_kind);
        }
        let mut table: Vec<Kind<'s>> = kinds
            .iter()
            .map(|&kind| Kind {
                kind,
                object_type: std::sync::Arc::from(kind.0),
                edges: Vec::new(),
                target: kind == (resource_type, Some(permission)),
                leads_on: false,
                seen: HashSet::with_hasher(hasher),
            })
            .collect();
        for k in &mut table {
            for edge in edges_of(schema, &relevant, k.kind) {
                let to = match edge {
                    Edge::Relation {
                        definition,
                        relation,
                    } => (definition, Some(relation)),
                    Edge::Computed { permission, .. } => (k.kind.0, Some(permission)),
                    Edge::Arrow {
                        definition,
                        permission,
                        ..
                    } => (definition, Some(permission)),
                };
                // Every target leads to the permission, so it is in the table.
                let Some(to) = kinds.iter().position(|kind| *kind == to) else {
                    continue;
                };
                if let Edge::Arrow {
                    definition,
                    tupleset,
                    ..
                } = edge
                {
                    let read = ArrowRead {
                        object_type: k.kind.0,
                        definition,
                        tupleset,
                    };
                    match walk.arrow_readers.iter_mut().find(|(r, _)| *r == read) {
                        Some((_, n)) => *n += 1,
                        None => walk.arrow_readers.push((read, 1)),
                    }
                }
                k.edges.push((edge, to));
            }
            k.leads_on = !k.edges.is_empty();
        }
        walk.kinds = table;
        let start = kinds.iter().position(|kind| *kind == start_kind);
        if let Some(start) = start {
            walk.visit(start, subject.object().clone(), Via::Direct, (true, true));
        }
        walk
    }

    /// Records a node of the kind at `kind`; a new one that is a candidate is handed out, one
    /// that can lead to a candidate is queued. `proven` says whether the node holds, and
    /// whether the part `via` names holds.
    fn visit(&mut self, kind: usize, object: ObjectRef, via: Via<'s>, proven: (bool, bool)) {
        let id = std::sync::Arc::from(object.object_id());
        self.visit_shared(kind, id, object, via, proven);
    }

    /// `visit`, with the object's id already shared.
    fn visit_shared(
        &mut self,
        kind: usize,
        id: std::sync::Arc<str>,
        object: ObjectRef,
        via: Via<'s>,
        (proven, part_proven): (bool, bool),
    ) {
        let Some(k) = self.kinds.get_mut(kind) else {
            return;
        };
        if !k.seen.insert(id) {
            return;
        }
        let leads_on = k.leads_on;
        if k.target {
            self.found.push_back(Candidate {
                resource: object.clone(),
                via,
                proven: part_proven,
            });
        }
        if leads_on {
            self.queue.push_back((kind, object, proven));
        }
    }

    /// Visits the resource `id` of the kind at `kind` unless it was met already (then nothing
    /// is built for it).
    fn visit_id(
        &mut self,
        kind: usize,
        id: &std::sync::Arc<str>,
        via: impl FnOnce() -> Via<'s>,
        proven: (bool, bool),
    ) {
        let Some(k) = self.kinds.get_mut(kind) else {
            return;
        };
        if k.seen.contains(&**id) {
            return;
        }
        let object = ObjectRef::from_shared(k.object_type.clone(), id.clone());
        self.visit_shared(kind, id.clone(), object, via(), proven);
    }

    /// The earliest expiration of a relationship read so far: what the walk found holds until
    /// then.
    pub(super) fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }

    /// The next candidate and how it was reached, or `None` once the walk is over.
    pub(super) fn next_candidate(&mut self) -> Result<Option<Candidate<'s>>, EvalError> {
        loop {
            if let Some(found) = self.found.pop_front() {
                return Ok(Some(found));
            }
            let Some((kind, object, proven)) = self.queue.pop_front() else {
                return Ok(None);
            };
            /// Nodes expanded between two looks at the clock.
            const DEADLINE_STRIDE: u32 = 64;
            if self.expanded % DEADLINE_STRIDE == 0 {
                self.ctx.check_deadline()?;
            }
            self.expanded = self.expanded.wrapping_add(1);
            self.expand(kind, &object, proven)?;
        }
    }

    /// Visits the nodes that directly depend on `object` of the kind at `kind` (proven or
    /// not).
    fn expand(&mut self, kind: usize, object: &ObjectRef, proven: bool) -> Result<(), EvalError> {
        // Taken out of the table while the node is expanded (visiting never needs them).
        let Some((node_kind, edges)) = self
            .kinds
            .get_mut(kind)
            .map(|k| (k.kind, std::mem::take(&mut k.edges)))
        else {
            return Ok(());
        };
        let expanded = self.follow(object, node_kind, &edges, proven);
        if let Some(k) = self.kinds.get_mut(kind) {
            k.edges = edges;
        }
        expanded
    }

    /// Reads into `self.hits` the resources of the live relationships of
    /// `definition#read_relation` whose subject matches `filter`, each with whether its
    /// relationship has a caveat; those already met as nodes of the kind at `unseen_in`, if
    /// given, are left out.
    fn read_resources(
        &mut self,
        definition: &str,
        read_relation: &str,
        filter: &SubjectFilter,
        unseen_in: Option<usize>,
    ) -> Result<(), EvalError> {
        let ctx = self.ctx;
        let now = ctx.now();
        let mut expires_at = self.expires_at;
        let seen = unseen_in.and_then(|k| self.kinds.get(k)).map(|k| &k.seen);
        let hits = &mut self.hits;
        hits.clear();
        ctx.snapshot()
            .visit_by_subject(definition, read_relation, filter, &mut |hit| {
                if let Some(e) = hit.expiration {
                    if e <= now {
                        return;
                    }
                    expires_at = Some(expires_at.map_or(e, |m| m.min(e)));
                }
                if seen.is_some_and(|seen| seen.contains(hit.resource_id)) {
                    return;
                }
                hits.push((std::sync::Arc::from(hit.resource_id), hit.caveated));
            })?;
        self.expires_at = expires_at;
        Ok(())
    }

    /// Visits each resource of the kind at `to` (relation `via`) whose relationship of
    /// `definition#via` names a subject matching `filter`.
    fn visit_resources(
        &mut self,
        definition: &str,
        via: &'s str,
        filter: &SubjectFilter,
        to: usize,
        proven: bool,
    ) -> Result<(), EvalError> {
        self.read_resources(definition, via, filter, Some(to))?;
        let hits = std::mem::take(&mut self.hits);
        for (id, caveated) in &hits {
            let holds = proven && !caveated;
            self.visit_id(to, id, || Via::Direct, (holds, holds));
        }
        self.hits = hits;
        Ok(())
    }

    /// The resources of `read.definition` whose `read.tupleset` names `object`, into
    /// `self.hits`: read once per object even when several kinds of its nodes follow the same
    /// tupleset.
    fn arrow_resources(
        &mut self,
        object: &ObjectRef,
        read: ArrowRead<'s>,
        to: usize,
    ) -> Result<(), EvalError> {
        let readers = self
            .arrow_readers
            .iter()
            .find(|(r, _)| *r == read)
            .map_or(1, |(_, n)| *n);
        let filter = SubjectFilter {
            subject_type: object.object_type().to_string(),
            subject_id: Some(object.object_id().to_string()),
            relation: None,
        };
        if readers < 2 {
            return self.read_resources(read.definition, read.tupleset, &filter, Some(to));
        }
        let key = (object.clone(), read);
        if let Some((kept, left)) = self.arrow_memo.get_mut(&key) {
            *left = left.saturating_sub(1);
            if *left > 0 {
                self.hits.clone_from(kept);
            } else {
                self.hits = self
                    .arrow_memo
                    .remove(&key)
                    .map(|(kept, _)| kept)
                    .unwrap_or_default();
            }
            return Ok(());
        }
        self.read_resources(read.definition, read.tupleset, &filter, None)?;
        self.arrow_memo
            .insert(key, (self.hits.clone(), readers - 1));
        Ok(())
    }

    /// Visits the nodes `edges` lead to from `object#relation`.
    fn follow(
        &mut self,
        object: &ObjectRef,
        (kind_type, relation): NodeKind<'s>,
        edges: &[(Edge<'s>, usize)],
        proven: bool,
    ) -> Result<(), EvalError> {
        for &(edge, to) in edges {
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
                    self.visit_resources(definition, via, &exact, to, proven)?;
                    if relation.is_none() {
                        let wildcard = SubjectFilter {
                            subject_type: object.object_type().to_string(),
                            subject_id: Some(WILDCARD.to_string()),
                            relation: Some(None),
                        };
                        self.visit_resources(definition, via, &wildcard, to, proven)?;
                    }
                }
                Edge::Computed { implies, .. } => {
                    let (via, part) = match relation {
                        Some(r) => (Via::Computed(r), proven),
                        None => (Via::Direct, false),
                    };
                    self.visit(to, object.clone(), via, (part && implies, part));
                }
                Edge::Arrow {
                    definition,
                    tupleset,
                    implies,
                    ..
                } => {
                    let read = ArrowRead {
                        object_type: kind_type,
                        definition,
                        tupleset,
                    };
                    self.arrow_resources(object, read, to)?;
                    let hits = std::mem::take(&mut self.hits);
                    for (id, caveated) in &hits {
                        let part = proven && !caveated && relation.is_some();
                        let via = || match relation {
                            Some(computed) => Via::Arrow {
                                tupleset,
                                computed,
                                target: object.clone(),
                            },
                            None => Via::Direct,
                        };
                        self.visit_id(to, id, via, (part && implies, part));
                    }
                    self.hits = hits;
                }
            }
        }
        Ok(())
    }
}
