//! Brute-force oracle: on small schemas (union, intersection, exclusion, arrows, `.all`,
//! nested usersets, wildcards, `nil`, recursion) and random relationships from seeded RNGs,
//! every (resource, relation-or-permission, subject) triple is answered by `check`, and
//! - `check` must equal the truth computed by a naive fixpoint evaluator written here
//!   (sets of subjects per `object#relation`, rewrite rules iterated to a fixpoint, stratum by
//!   stratum of the schema's `Rewrite` structure);
//! - `lookup_resources` must list a resource iff `check` says Has;
//! - `lookup_subjects` must list a subject (itself, or through a wildcard that does not
//!   exclude it) iff `check` says Has;
//! - the subjects of a recursive `expand` must be exactly those `check` says Has.
//!
//! Relationships that form cycles are generated on purpose. SpiceDB answers a question whose
//! evaluation runs around a data cycle without finding the subject with a max-depth error, and
//! so does Arbor: `DepthExceeded` is accepted exactly where the truth is "no" (or, for lookups
//! and expand, where the walk can reach a cycle), and counted.
//!
//! With caveats (`caveats_three_valued`), answers are three-valued: relationships carry random
//! caveats with random (often partial) contexts, each seed is asked with several random request
//! contexts, and the fixpoint is computed over yes / unknown / no (union is the maximum,
//! intersection the minimum, exclusion `a AND NOT b`, arrows AND the caveat of the tupleset
//! relationship), each caveat decided by a little evaluator of its own written here. `check`
//! (Has / Conditional / HasNot), `lookup_resources` and `lookup_subjects` (wildcards and their
//! exclusions included) must all give exactly that truth.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use arbor::eval::{
    self, EvalContext, EvalError, ExpandMode, ExpandNode, ExpandTree, Permissionship,
};
use arbor::model::{ContextMap, ContextValue, ObjectRef, Relationship, SubjectRef};
use arbor::schema::{AllowedKind, ArrowKind, RelationKind, Rewrite, Schema};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Seeds per small schema; `ARBOR_ORACLE_SEEDS` overrides (for every schema).
const SEEDS: u64 = 40;

/// Seeds for the org-hierarchy schema, the largest: about 27,000 checks a seed, and in a seed
/// with data cycles every "no" around one runs the depth budget down.
const ORG_SEEDS: u64 = 12;

/// The evaluator's depth budget in these tests. The longest path without a cycle in this data
/// is under 20 dispatches (pools of at most 5 objects per type); a "no" that runs around a data
/// cycle spends the whole budget, at a cost that grows faster than the budget: with the
/// default of 50 the org-hierarchy test took 54 s instead of 8 s (debug build), one such "no"
/// about 0.6 s, for no more coverage. A "yes" that ran out of depth would still fail the test.
const MAX_DEPTH: u32 = 25;

/// One seed in this many may hold data cycles; the others are acyclic, so every answer of
/// theirs is compared (around a cycle, a "no" may be a depth error instead).
const CYCLIC_SEED_EVERY: u64 = 3;

/// In a seed that may hold cycles, the chance that a self-referential relation
/// (`folder#parent`, `team#member@team:x#member`) gets an edge closing one.
const CYCLE_PROBABILITY: f64 = 0.6;

/// Union, nested usersets (a userset on a permission), recursion through usersets, `nil`.
const USERSETS: &str = "definition user {}

definition group {
    relation member: user | group#member
    relation owner: user
    permission everyone = member + owner
}

definition doc {
    relation viewer: user | group#member | group#everyone
    relation editor: user | group#everyone
    permission edit = editor
    permission view = viewer + edit
    permission nobody = nil
}
";

/// Intersection and exclusion, nested in each other.
const SET_OPERATIONS: &str = "definition user {}

definition doc {
    relation viewer: user
    relation editor: user
    relation approver: user
    relation banned: user
    permission view = (viewer + editor) - banned
    permission approved_edit = (editor & approver) - banned
    permission exactly_one = (viewer + editor) - (viewer & editor)
    permission nested = ((viewer - banned) & (editor + approver)) + (approver - (viewer + banned))
}
";

/// Arrows, recursion through arrows, an exclusion inside a recursive permission.
const ARROWS: &str = "definition user {}

definition org {
    relation parent: org
    relation admin: user
    relation member: user
    permission administer = admin + parent->administer
    permission membership = member + administer + parent->membership
}

definition folder {
    relation org: org
    relation parent: folder
    relation viewer: user
    relation banned: user
    permission view = (viewer + parent->view + org->membership) - banned
    permission manage = org->administer & parent->view
}
";

/// `.any` and `.all` arrows, over relations and permissions, with a wildcard behind them.
const ALL_ARROWS: &str = "definition user {}

definition label {
    relation cleared: user | user:*
    relation owner: user
    permission read = cleared + owner
}

definition doc {
    relation label: label
    relation viewer: user
    permission read_any = label.any(read)
    permission read_all = label.all(read)
    permission view = viewer & label.all(cleared)
    permission view_unless_owned = viewer - label.all(owner)
}
";

/// Wildcards directly and behind a userset on a permission (SpiceDB forbids them behind a
/// userset on a relation), on both sides of exclusions and intersections.
const WILDCARDS: &str = "definition user {}

definition group {
    relation member: user
    relation everyone: user:*
    relation blocked: user | user:*
    permission active = (member + everyone) - blocked
}

definition doc {
    relation viewer: user | user:* | group#member | group#active
    relation banned: user | user:* | group#member
    relation approver: user | user:*
    permission view = viewer - banned
    permission approved = viewer & approver
    permission view_unapproved = viewer - approver
}
";

/// The org-hierarchy example's schema (schema-examples/org-hierarchy.yaml).
fn org_hierarchy_schema() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema-examples/org-hierarchy.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    doc.get("schema")
        .and_then(|s| s.as_str())
        .unwrap_or_else(|| panic!("{path} has no inline `schema`"))
        .to_string()
}

/// An object: (type, id).
type Obj = (String, String);

/// `object#relation`: (type, id, relation).
type Node = (String, String, String);

/// The subject of a generated relationship.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Subject {
    Object(Obj),
    Wildcard(String),
    Userset(Obj, String),
}

impl Subject {
    fn text(&self) -> String {
        match self {
            Subject::Object((t, id)) => format!("{t}:{id}"),
            Subject::Wildcard(t) => format!("{t}:*"),
            Subject::Userset((t, id), r) => format!("{t}:{id}#{r}"),
        }
    }
}

/// One seed's data for one schema.
struct World {
    /// Ids of each type: those relationships use, and one that no relationship mentions.
    universe: BTreeMap<String, Vec<String>>,
    /// Relationships by `resource#relation`.
    direct: HashMap<Node, Vec<Subject>>,
    /// The same, as text.
    lines: Vec<String>,
}

fn node(t: &str, id: &str, r: &str) -> Node {
    (t.to_string(), id.to_string(), r.to_string())
}

/// Random relationships allowed by `schema`. Self-referential relations form chains (each
/// object points at most at one lower object), so a cycle, when `cycles` lets one be closed,
/// is a ring.
fn generate(schema: &Schema, rng: &mut StdRng, cycles: bool) -> World {
    let mut pool: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut universe: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for def in schema.definitions() {
        let n = rng.gen_range(3..=5);
        let ids: Vec<String> = (0..n).map(|i| format!("{}{i}", def.name())).collect();
        let mut all = ids.clone();
        all.push(format!("{}_nobody", def.name()));
        pool.insert(def.name().to_string(), ids);
        universe.insert(def.name().to_string(), all);
    }
    let mut tuples: BTreeSet<(Node, Subject)> = BTreeSet::new();
    for def in schema.definitions() {
        let t = def.name();
        let ids = &pool[t];
        for rdef in def.relations() {
            let RelationKind::Relation(allowed) = rdef.kind() else {
                continue;
            };
            for a in allowed {
                if a.caveat.is_some() || a.expiration {
                    continue;
                }
                let st = a.subject_type.as_str();
                let make = |sid: &str| match &a.kind {
                    AllowedKind::Object => Subject::Object((st.to_string(), sid.to_string())),
                    AllowedKind::Relation(r) => {
                        Subject::Userset((st.to_string(), sid.to_string()), r.clone())
                    }
                    AllowedKind::Wildcard => Subject::Wildcard(st.to_string()),
                };
                if a.kind == AllowedKind::Wildcard {
                    for id in ids {
                        if rng.gen_bool(0.15) {
                            tuples.insert((node(t, id, rdef.name()), make("*")));
                        }
                    }
                } else if st == t {
                    for i in 1..ids.len() {
                        if rng.gen_bool(0.6) {
                            let j = rng.gen_range(0..i);
                            tuples.insert((node(t, &ids[i], rdef.name()), make(&ids[j])));
                        }
                    }
                    if cycles && rng.gen_bool(CYCLE_PROBABILITY) {
                        let k = rng.gen_range(1..ids.len());
                        tuples.insert((node(t, &ids[0], rdef.name()), make(&ids[k])));
                    }
                } else {
                    let subject_ids = &pool[st];
                    for id in ids {
                        let count = [0, 0, 1, 1, 2][rng.gen_range(0..5)];
                        for _ in 0..count {
                            let sid = &subject_ids[rng.gen_range(0..subject_ids.len())];
                            tuples.insert((node(t, id, rdef.name()), make(sid)));
                        }
                    }
                }
            }
        }
    }
    let mut direct: HashMap<Node, Vec<Subject>> = HashMap::new();
    let mut lines = Vec::new();
    for ((t, id, r), s) in tuples {
        lines.push(format!("{t}:{id}#{r}@{}", s.text()));
        direct.entry((t, id, r)).or_default().push(s);
    }
    World {
        universe,
        direct,
        lines,
    }
}

// ---------------------------------------------------------------------------------------------
// The naive evaluator.
// ---------------------------------------------------------------------------------------------

/// Schema-level dependencies of `type#relation`: (type, relation, through the subtracted side
/// of an exclusion).
fn dependencies(schema: &Schema, t: &str, r: &str) -> Vec<(String, String, bool)> {
    fn walk(
        schema: &Schema,
        t: &str,
        rw: &Rewrite,
        negative: bool,
        out: &mut Vec<(String, String, bool)>,
    ) {
        match rw {
            Rewrite::Union(items) | Rewrite::Intersection(items) => {
                items.iter().for_each(|i| walk(schema, t, i, negative, out));
            }
            Rewrite::Exclusion(a, b) => {
                walk(schema, t, a, negative, out);
                walk(schema, t, b, true, out);
            }
            Rewrite::Computed(c) => out.push((t.to_string(), c.clone(), negative)),
            Rewrite::Arrow {
                tupleset, computed, ..
            } => {
                out.push((t.to_string(), tupleset.clone(), negative));
                let rdef = schema.relation(t, tupleset).unwrap();
                for a in rdef.allowed() {
                    if schema.relation(&a.subject_type, computed).is_some() {
                        out.push((a.subject_type.clone(), computed.clone(), negative));
                    }
                }
            }
            Rewrite::Nil => {}
        }
    }
    let mut out = Vec::new();
    match schema.relation(t, r).unwrap().kind() {
        RelationKind::Relation(allowed) => {
            for a in allowed {
                if let AllowedKind::Relation(sr) = &a.kind {
                    out.push((a.subject_type.clone(), sr.clone(), false));
                }
            }
        }
        RelationKind::Permission(rw) => walk(schema, t, rw, false, &mut out),
    }
    out
}

/// Every `type#relation` of the schema, grouped into strongly connected components and ordered
/// so that a group comes after every group it depends on. Panics if a group depends on itself
/// through the subtracted side of an exclusion (no unique answer then).
fn strata(schema: &Schema) -> Vec<Vec<(String, String)>> {
    let nodes: Vec<(String, String)> = schema
        .definitions()
        .flat_map(|d| {
            d.relations()
                .map(|r| (d.name().to_string(), r.name().to_string()))
        })
        .collect();
    let index: HashMap<&(String, String), usize> =
        nodes.iter().enumerate().map(|(i, n)| (n, i)).collect();
    let n = nodes.len();
    let mut reach = vec![vec![false; n]; n];
    let mut negative_edges = Vec::new();
    for (i, (t, r)) in nodes.iter().enumerate() {
        reach[i][i] = true;
        for (dt, dr, neg) in dependencies(schema, t, r) {
            let j = index[&(dt, dr)];
            reach[i][j] = true;
            if neg {
                negative_edges.push((i, j));
            }
        }
    }
    for k in 0..n {
        let via = reach[k].clone();
        for row in reach.iter_mut().filter(|row| row[k]) {
            for (to, reached) in row.iter_mut().zip(&via) {
                *to |= *reached;
            }
        }
    }
    for (i, j) in negative_edges {
        assert!(
            !reach[j][i],
            "test schema not stratified: {:?} depends on itself through an exclusion",
            nodes[i]
        );
    }
    let mut groups: Vec<(usize, Vec<(String, String)>)> = Vec::new();
    let mut placed = vec![false; n];
    for i in 0..n {
        if placed[i] {
            continue;
        }
        let members: Vec<usize> = (0..n).filter(|&j| reach[i][j] && reach[j][i]).collect();
        members.iter().for_each(|&j| placed[j] = true);
        let size = reach[i].iter().filter(|x| **x).count();
        groups.push((size, members.iter().map(|&j| nodes[j].clone()).collect()));
    }
    // What a group reaches strictly contains what every group below it reaches.
    groups.sort_by_key(|(size, _)| *size);
    groups.into_iter().map(|(_, g)| g).collect()
}

/// The subjects (objects of any type) of every `object#relation`, by naive iteration.
struct Truth {
    sets: HashMap<Node, BTreeSet<Obj>>,
}

impl Truth {
    fn compute(schema: &Schema, world: &World) -> Truth {
        let mut truth = Truth {
            sets: HashMap::new(),
        };
        for group in strata(schema) {
            loop {
                let mut changed = false;
                for (t, r) in &group {
                    for id in &world.universe[t] {
                        let value = truth.evaluate(schema, world, t, id, r);
                        let key = node(t, id, r);
                        if truth.sets.get(&key) != Some(&value) {
                            truth.sets.insert(key, value);
                            changed = true;
                        }
                    }
                }
                if !changed {
                    break;
                }
            }
        }
        truth
    }

    fn get(&self, t: &str, id: &str, r: &str) -> BTreeSet<Obj> {
        self.sets.get(&node(t, id, r)).cloned().unwrap_or_default()
    }

    fn evaluate(
        &self,
        schema: &Schema,
        world: &World,
        t: &str,
        id: &str,
        r: &str,
    ) -> BTreeSet<Obj> {
        match schema.relation(t, r).unwrap().kind() {
            RelationKind::Relation(_) => {
                let mut out = BTreeSet::new();
                for s in world.direct.get(&node(t, id, r)).into_iter().flatten() {
                    match s {
                        Subject::Object(o) => {
                            out.insert(o.clone());
                        }
                        Subject::Wildcard(st) => {
                            out.extend(world.universe[st].iter().map(|i| (st.clone(), i.clone())));
                        }
                        Subject::Userset((st, sid), sr) => out.extend(self.get(st, sid, sr)),
                    }
                }
                out
            }
            RelationKind::Permission(rw) => self.rewrite(schema, world, t, id, rw),
        }
    }

    fn rewrite(
        &self,
        schema: &Schema,
        world: &World,
        t: &str,
        id: &str,
        rw: &Rewrite,
    ) -> BTreeSet<Obj> {
        match rw {
            Rewrite::Nil => BTreeSet::new(),
            Rewrite::Computed(c) => self.get(t, id, c),
            Rewrite::Union(items) => items
                .iter()
                .flat_map(|i| self.rewrite(schema, world, t, id, i))
                .collect(),
            Rewrite::Intersection(items) => {
                intersect_all(items.iter().map(|i| self.rewrite(schema, world, t, id, i)))
            }
            Rewrite::Exclusion(a, b) => {
                let b = self.rewrite(schema, world, t, id, b);
                self.rewrite(schema, world, t, id, a)
                    .into_iter()
                    .filter(|s| !b.contains(s))
                    .collect()
            }
            Rewrite::Arrow {
                tupleset,
                computed,
                kind,
            } => {
                let targets = world
                    .direct
                    .get(&node(t, id, tupleset))
                    .into_iter()
                    .flatten()
                    .filter_map(|s| match s {
                        Subject::Object(o) => Some(o),
                        _ => None,
                    })
                    .filter(|(tt, _)| schema.relation(tt, computed).is_some())
                    .map(|(tt, tid)| self.get(tt, tid, computed));
                match kind {
                    ArrowKind::Any => targets.flatten().collect(),
                    ArrowKind::All => intersect_all(targets),
                }
            }
        }
    }
}

/// The intersection of the sets; empty when there are none.
fn intersect_all(mut sets: impl Iterator<Item = BTreeSet<Obj>>) -> BTreeSet<Obj> {
    let Some(first) = sets.next() else {
        return BTreeSet::new();
    };
    sets.fold(first, |acc, s| acc.intersection(&s).cloned().collect())
}

// ---------------------------------------------------------------------------------------------
// Where the evaluator may legitimately run out of depth: nodes from which a data cycle is
// reachable.
// ---------------------------------------------------------------------------------------------

/// Nodes whose evaluation can reach a cycle of `object#relation` dependencies in the data.
fn cycle_reaching_nodes(schema: &Schema, world: &World) -> BTreeSet<Node> {
    let mut edges: BTreeMap<Node, Vec<Node>> = BTreeMap::new();
    fn rewrite_edges(
        schema: &Schema,
        world: &World,
        t: &str,
        id: &str,
        rw: &Rewrite,
        out: &mut Vec<Node>,
    ) {
        match rw {
            Rewrite::Union(items) | Rewrite::Intersection(items) => items
                .iter()
                .for_each(|i| rewrite_edges(schema, world, t, id, i, out)),
            Rewrite::Exclusion(a, b) => {
                rewrite_edges(schema, world, t, id, a, out);
                rewrite_edges(schema, world, t, id, b, out);
            }
            Rewrite::Computed(c) => out.push(node(t, id, c)),
            Rewrite::Arrow {
                tupleset, computed, ..
            } => {
                out.push(node(t, id, tupleset));
                for s in world
                    .direct
                    .get(&node(t, id, tupleset))
                    .into_iter()
                    .flatten()
                {
                    if let Subject::Object((tt, tid)) = s
                        && schema.relation(tt, computed).is_some()
                    {
                        out.push(node(tt, tid, computed));
                    }
                }
            }
            Rewrite::Nil => {}
        }
    }
    for def in schema.definitions() {
        for rdef in def.relations() {
            for id in &world.universe[def.name()] {
                let n = node(def.name(), id, rdef.name());
                let mut out = Vec::new();
                match rdef.kind() {
                    RelationKind::Relation(_) => {
                        for s in world.direct.get(&n).into_iter().flatten() {
                            if let Subject::Userset((st, sid), sr) = s {
                                out.push(node(st, sid, sr));
                            }
                        }
                    }
                    RelationKind::Permission(rw) => {
                        rewrite_edges(schema, world, def.name(), id, rw, &mut out);
                    }
                }
                edges.insert(n, out);
            }
        }
    }
    let reachable = |from: &Node| -> BTreeSet<Node> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<Node> = edges.get(from).cloned().unwrap_or_default();
        while let Some(n) = stack.pop() {
            if seen.insert(n.clone()) {
                stack.extend(edges.get(&n).cloned().unwrap_or_default());
            }
        }
        seen
    };
    let reach: BTreeMap<Node, BTreeSet<Node>> =
        edges.keys().map(|n| (n.clone(), reachable(n))).collect();
    let on_cycle: BTreeSet<&Node> = reach
        .iter()
        .filter(|(n, r)| r.contains(*n))
        .map(|(n, _)| n)
        .collect();
    reach
        .iter()
        .filter(|(n, r)| on_cycle.contains(n) || r.iter().any(|m| on_cycle.contains(m)))
        .map(|(n, _)| n.clone())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Running one seed.
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Tally {
    checks: usize,
    has: usize,
    lookup_resources: usize,
    lookup_subjects: usize,
    expands: usize,
    depth_errors_accepted: usize,
    cyclic_seeds: usize,
}

/// The subjects of an expand tree: objects, wildcards spelled out over the universe, usersets
/// left to their own expansion below them.
fn expand_subjects(tree: &ExpandTree, world: &World) -> BTreeSet<Obj> {
    match &tree.node {
        ExpandNode::Leaf(subjects) => {
            let mut out = BTreeSet::new();
            for s in subjects {
                let s = &s.subject;
                if s.is_wildcard() {
                    let t = s.object_type();
                    let ids = world.universe.get(t).into_iter().flatten();
                    out.extend(ids.map(|i| (t.to_string(), i.clone())));
                } else if s.relation().is_none() {
                    out.insert((s.object_type().to_string(), s.object_id().to_string()));
                }
            }
            out
        }
        ExpandNode::Union(children) => children
            .iter()
            .flat_map(|c| expand_subjects(c, world))
            .collect(),
        ExpandNode::Intersection(children) => {
            intersect_all(children.iter().map(|c| expand_subjects(c, world)))
        }
        ExpandNode::Exclusion(a, b) => {
            let b = expand_subjects(b, world);
            expand_subjects(a, world)
                .into_iter()
                .filter(|s| !b.contains(s))
                .collect()
        }
    }
}

/// Types that relationships name as plain objects or wildcards: the subjects to ask about.
fn subject_types(schema: &Schema) -> BTreeSet<String> {
    schema
        .definitions()
        .flat_map(|d| d.relations())
        .flat_map(|r| r.allowed())
        .filter(|a| matches!(a.kind, AllowedKind::Object | AllowedKind::Wildcard))
        .map(|a| a.subject_type.clone())
        .collect()
}

/// Compares every operation with the truth for one seed; returns the disagreements.
async fn run_seed(
    schema: &Schema,
    world: &World,
    ctx: &EvalContext,
    tally: &mut Tally,
) -> Vec<String> {
    let truth = Truth::compute(schema, world);
    let cyclic = cycle_reaching_nodes(schema, world);
    if !cyclic.is_empty() {
        tally.cyclic_seeds += 1;
    }
    let may_run_out = |e: &EvalError, n: &Node| -> bool {
        matches!(e, EvalError::DepthExceeded { .. }) && cyclic.contains(n)
    };
    let mut bad = Vec::new();
    let subject_types = subject_types(schema);
    let subjects: Vec<Obj> = subject_types
        .iter()
        .flat_map(|t| world.universe[t].iter().map(|i| (t.clone(), i.clone())))
        .collect();
    let subject_ref = |(t, i): &Obj| SubjectRef::new(t, i, None).unwrap();

    // check, against the naive truth. `answers[(t, id, r)][subject]` = Some(has) when answered.
    let mut answers: HashMap<Node, BTreeMap<Obj, Option<bool>>> = HashMap::new();
    for def in schema.definitions() {
        let t = def.name();
        for rdef in def.relations() {
            let r = rdef.name();
            for id in &world.universe[t] {
                let n = node(t, id, r);
                let resource = ObjectRef::new(t, id).unwrap();
                let want = truth.get(t, id, r);
                let row = answers.entry(n.clone()).or_default();
                for s in &subjects {
                    tally.checks += 1;
                    let expected = want.contains(s);
                    let got = eval::check(ctx, &resource, r, &subject_ref(s)).await;
                    let answer = match got {
                        Ok(res) => {
                            match res.permissionship {
                                Permissionship::Has => Some(true),
                                Permissionship::HasNot => Some(false),
                                Permissionship::Conditional(c) => {
                                    bad.push(format!("check {t}:{id}#{r}@{}:{}: conditional ({c}) without caveats", s.0, s.1));
                                    None
                                }
                            }
                        }
                        Err(e) if !expected && may_run_out(&e, &n) => {
                            tally.depth_errors_accepted += 1;
                            None
                        }
                        Err(e) => {
                            bad.push(format!(
                                "check {t}:{id}#{r}@{}:{}: error {e} (truth: {expected})",
                                s.0, s.1
                            ));
                            None
                        }
                    };
                    if let Some(a) = answer {
                        tally.has += usize::from(a);
                        if a != expected {
                            bad.push(format!(
                                "check {t}:{id}#{r}@{}:{} = {a}, the fixpoint says {expected}",
                                s.0, s.1
                            ));
                        }
                    }
                    row.insert(s.clone(), answer);
                }
            }
        }
    }

    // lookup_resources: listed iff check says Has.
    for def in schema.definitions() {
        let t = def.name();
        for rdef in def.relations() {
            let r = rdef.name();
            for s in &subjects {
                tally.lookup_resources += 1;
                let column: Vec<(&String, Option<bool>)> = world.universe[t]
                    .iter()
                    .map(|id| (id, answers[&node(t, id, r)][s]))
                    .collect();
                match eval::lookup_resources(ctx, t, r, &subject_ref(s)).await {
                    Ok(found) => {
                        let listed: BTreeSet<&str> =
                            found.iter().map(|f| f.resource_id.as_str()).collect();
                        for f in &found {
                            if f.permissionship != Permissionship::Has {
                                bad.push(format!(
                                    "lookup_resources {t}#{r}@{}:{} listed {} as {:?}",
                                    s.0, s.1, f.resource_id, f.permissionship
                                ));
                            }
                            if !world.universe[t].contains(&f.resource_id) {
                                bad.push(format!(
                                    "lookup_resources {t}#{r}@{}:{} listed unknown {}",
                                    s.0, s.1, f.resource_id
                                ));
                            }
                        }
                        for (id, answer) in column {
                            if let Some(a) = answer
                                && a != listed.contains(id.as_str())
                            {
                                bad.push(format!(
                                    "lookup_resources {t}#{r}@{}:{}: {t}:{id} listed={}, check={a}",
                                    s.0, s.1, !a
                                ));
                            }
                        }
                    }
                    Err(e)
                        if column.iter().any(|(_, a)| a.is_none())
                            && matches!(e, EvalError::DepthExceeded { .. }) =>
                    {
                        tally.depth_errors_accepted += 1;
                    }
                    Err(e) => bad.push(format!(
                        "lookup_resources {t}#{r}@{}:{}: error {e}",
                        s.0, s.1
                    )),
                }
            }
        }
    }

    // lookup_subjects and expand, per object#relation.
    for def in schema.definitions() {
        let t = def.name();
        for rdef in def.relations() {
            let r = rdef.name();
            for id in &world.universe[t] {
                let n = node(t, id, r);
                let resource = ObjectRef::new(t, id).unwrap();
                let row = &answers[&n];
                for st in &subject_types {
                    tally.lookup_subjects += 1;
                    match eval::lookup_subjects(ctx, &resource, r, st, None).await {
                        Ok(found) => {
                            let mut listed = BTreeSet::new();
                            for f in &found {
                                if f.subject_id == "*" {
                                    let excluded: BTreeSet<&str> =
                                        f.excluded.iter().map(|x| x.subject_id.as_str()).collect();
                                    listed.extend(
                                        world.universe[st]
                                            .iter()
                                            .filter(|i| !excluded.contains(i.as_str()))
                                            .cloned(),
                                    );
                                } else {
                                    if !f.excluded.is_empty() {
                                        bad.push(format!(
                                            "lookup_subjects {t}:{id}#{r} {st}: {} has exclusions",
                                            f.subject_id
                                        ));
                                    }
                                    listed.insert(f.subject_id.clone());
                                }
                            }
                            for sid in &world.universe[st] {
                                if let Some(a) = row[&(st.clone(), sid.clone())]
                                    && a != listed.contains(sid)
                                {
                                    bad.push(format!(
                                        "lookup_subjects {t}:{id}#{r} {st}: {st}:{sid} listed={}, check={a}",
                                        !a
                                    ));
                                }
                            }
                            for sid in &listed {
                                if !world.universe[st].contains(sid) {
                                    bad.push(format!(
                                        "lookup_subjects {t}:{id}#{r} {st}: unknown {sid}"
                                    ));
                                }
                            }
                        }
                        Err(e) if may_run_out(&e, &n) => tally.depth_errors_accepted += 1,
                        Err(e) => bad.push(format!("lookup_subjects {t}:{id}#{r} {st}: error {e}")),
                    }
                }

                tally.expands += 1;
                match eval::expand(ctx, &resource, r, ExpandMode::Recursive).await {
                    Ok(tree) => {
                        let found = expand_subjects(&tree, world);
                        for (s, answer) in row {
                            if let Some(a) = answer
                                && *a != found.contains(s)
                            {
                                bad.push(format!(
                                    "expand {t}:{id}#{r}: {}:{} in subjects={}, check={a}",
                                    s.0, s.1, !a
                                ));
                            }
                        }
                        for s in &found {
                            if !row.contains_key(s) {
                                bad.push(format!(
                                    "expand {t}:{id}#{r}: unexpected subject {}:{}",
                                    s.0, s.1
                                ));
                            }
                        }
                    }
                    Err(e) if may_run_out(&e, &n) => tally.depth_errors_accepted += 1,
                    Err(e) => bad.push(format!("expand {t}:{id}#{r}: error {e}")),
                }
            }
        }
    }
    bad
}

/// Runs `seeds` seeds of one schema and fails with the first seed's data and disagreements.
fn agree_on(name: &str, schema_text: &str, seeds: u64) {
    let seeds = std::env::var("ARBOR_ORACLE_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(seeds);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let started = Instant::now();
    let mut tally = Tally::default();
    for seed in 0..seeds {
        let schema = crate::compile(schema_text);
        let mut rng = StdRng::seed_from_u64(seed);
        let world = generate(&schema, &mut rng, seed % CYCLIC_SEED_EVERY == 0);
        let rels: Vec<Relationship> = world
            .lines
            .iter()
            .map(|l| Relationship::parse(l).unwrap_or_else(|e| panic!("`{l}`: {e}")))
            .collect();
        let ctx = crate::load(crate::compile(schema_text), &rels, MAX_DEPTH);
        let bad = rt.block_on(run_seed(&schema, &world, &ctx, &mut tally));
        assert!(
            bad.is_empty(),
            "{name}, seed {seed}: {} disagreements (first 25):\n{}\n\nrelationships:\n{}",
            bad.len(),
            bad.iter().take(25).cloned().collect::<Vec<_>>().join("\n"),
            world.lines.join("\n")
        );
    }
    println!(
        "{name}: {seeds} seeds ({} with data cycles) in {:.2?}: {} checks ({} has), {} lookup_resources, \
         {} lookup_subjects, {} recursive expands agree; {} depth errors in cycles accepted",
        tally.cyclic_seeds,
        started.elapsed(),
        tally.checks,
        tally.has,
        tally.lookup_resources,
        tally.lookup_subjects,
        tally.expands,
        tally.depth_errors_accepted
    );
    assert!(
        tally.has > 0 && tally.has < tally.checks,
        "{name}: degenerate data: {} of {} checks true",
        tally.has,
        tally.checks
    );
}

#[test]
fn usersets_and_recursion() {
    agree_on("usersets", USERSETS, SEEDS);
}

#[test]
fn intersection_and_exclusion() {
    agree_on("set operations", SET_OPERATIONS, SEEDS);
}

#[test]
fn arrows() {
    agree_on("arrows", ARROWS, SEEDS);
}

#[test]
fn any_and_all_arrows() {
    agree_on("all arrows", ALL_ARROWS, SEEDS);
}

#[test]
fn wildcards() {
    agree_on("wildcards", WILDCARDS, SEEDS);
}

#[test]
fn org_hierarchy_example_schema() {
    agree_on("org hierarchy", &org_hierarchy_schema(), ORG_SEEDS);
}

/// The oracle itself, on data whose answers are known by hand: if it were wrong, the
/// comparisons above would prove nothing.
#[test]
fn fixpoint_oracle_knows_the_answers() {
    let schema = crate::compile(ARROWS);
    let lines = [
        "org:root#admin@user:alice",
        "org:child#parent@org:root",
        "org:root#parent@org:child", // a cycle
        "org:child#member@user:bob",
        "folder:f#org@org:child",
        "folder:g#parent@folder:f",
        "folder:g#banned@user:alice",
        "folder:g#org@org:root",
    ];
    let mut universe = BTreeMap::new();
    universe.insert(
        "user".to_string(),
        vec!["alice".to_string(), "bob".to_string(), "carol".to_string()],
    );
    universe.insert(
        "org".to_string(),
        vec!["root".to_string(), "child".to_string()],
    );
    universe.insert("folder".to_string(), vec!["f".to_string(), "g".to_string()]);
    let mut direct: HashMap<Node, Vec<Subject>> = HashMap::new();
    for l in lines {
        let rel = Relationship::parse(l).unwrap();
        let s = rel.subject();
        direct
            .entry(node(
                rel.resource().object_type(),
                rel.resource().object_id(),
                rel.relation(),
            ))
            .or_default()
            .push(Subject::Object((
                s.object_type().to_string(),
                s.object_id().to_string(),
            )));
    }
    let world = World {
        universe,
        direct,
        lines: lines.iter().map(|l| l.to_string()).collect(),
    };
    let truth = Truth::compute(&schema, &world);
    let users = |t: &str, id: &str, r: &str| -> Vec<String> {
        truth.get(t, id, r).into_iter().map(|(_, i)| i).collect()
    };
    // Around the cycle, both orgs are administered by alice and have bob as a member.
    assert_eq!(users("org", "child", "administer"), ["alice"]);
    assert_eq!(users("org", "root", "membership"), ["alice", "bob"]);
    assert_eq!(users("folder", "f", "view"), ["alice", "bob"]);
    // Banned on g removes alice, whatever grants her.
    assert_eq!(users("folder", "g", "view"), ["bob"]);
    // manage = org->administer & parent->view: g only (f has no parent).
    assert_eq!(users("folder", "g", "manage"), ["alice"]);
    assert!(users("folder", "f", "manage").is_empty());
    let cyclic = cycle_reaching_nodes(&schema, &world);
    assert!(cyclic.contains(&node("org", "root", "administer")));
    assert!(cyclic.contains(&node("folder", "g", "view")));
    assert!(!cyclic.contains(&node("folder", "g", "banned")));
    assert!(!cyclic.contains(&node("org", "root", "admin")));
}

// ---------------------------------------------------------------------------------------------
// Caveats: three-valued answers.
// ---------------------------------------------------------------------------------------------

/// Seeds of the caveated schema; `ARBOR_ORACLE_SEEDS` overrides.
const CAVEAT_SEEDS: u64 = 40;

/// Request contexts each caveated seed is asked with (the first is always empty).
const REQUESTS_PER_SEED: usize = 3;

/// Caveats on relations, usersets, wildcards, arrows (both kinds) and exclusions; one caveat
/// compares two numbers, the other can be decided by one of its two parameters alone.
const CAVEATED: &str = "caveat at_least(level int, required int) { level >= required }
caveat either(a bool, b bool) { a || b }

definition user {}

definition group {
    relation member: user | user with at_least | group#member | group#member with either
}

definition folder {
    relation parent: folder | folder with either
    relation viewer: user | user with at_least | group#member
    relation banned: user with either
    permission view = (viewer + parent->view) - banned
}

definition doc {
    relation folder: folder | folder with at_least
    relation viewer: user | user with either | user:* with at_least | group#member
    relation editor: user | user with at_least
    relation banned: user | user with either | group#member with at_least
    permission view = (viewer + folder->view) - banned
    permission edit = editor & view
    permission view_all = folder.all(view)
}
";

/// Three-valued truth, ordered no < unknown < yes: union is the maximum, intersection the
/// minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tv {
    No,
    Unknown,
    Yes,
}

impl Tv {
    fn not(self) -> Tv {
        match self {
            Tv::No => Tv::Yes,
            Tv::Unknown => Tv::Unknown,
            Tv::Yes => Tv::No,
        }
    }

    fn of(p: &Permissionship) -> Tv {
        match p {
            Permissionship::Has => Tv::Yes,
            Permissionship::HasNot => Tv::No,
            Permissionship::Conditional(_) => Tv::Unknown,
        }
    }
}

/// A caveat on a generated relationship: its name and the context bound on it.
type Cav = (String, serde_json::Map<String, serde_json::Value>);

/// One seed's caveated data.
struct CWorld {
    universe: BTreeMap<String, Vec<String>>,
    direct: HashMap<Node, Vec<(Subject, Option<Cav>)>>,
    lines: Vec<String>,
}

/// A context for caveat `name` as a relationship would carry it: usually `required`, rarely
/// `level` too (which then wins over the request's); any of `a` and `b`.
fn relationship_context(
    name: &str,
    rng: &mut StdRng,
) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    match name {
        "at_least" => {
            if rng.gen_bool(0.85) {
                m.insert("required".into(), rng.gen_range(1..=3).into());
            }
            if rng.gen_bool(0.15) {
                m.insert("level".into(), rng.gen_range(1..=3).into());
            }
        }
        _ => {
            if rng.gen_bool(0.5) {
                m.insert("a".into(), rng.gen_bool(0.5).into());
            }
            if rng.gen_bool(0.3) {
                m.insert("b".into(), rng.gen_bool(0.5).into());
            }
        }
    }
    m
}

/// A random request context over every parameter (each maybe absent).
fn request_context(rng: &mut StdRng) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    if rng.gen_bool(0.6) {
        m.insert("level".into(), rng.gen_range(1..=3).into());
    }
    for p in ["a", "b"] {
        if rng.gen_bool(0.5) {
            m.insert(p.into(), rng.gen_bool(0.5).into());
        }
    }
    m
}

/// Random acyclic relationships for `schema`, every allowed subject type (caveated ones with
/// a random context) used.
fn generate_caveated(schema: &Schema, rng: &mut StdRng) -> CWorld {
    let mut pool: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut universe: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for def in schema.definitions() {
        let n = rng.gen_range(3..=4);
        let ids: Vec<String> = (0..n).map(|i| format!("{}{i}", def.name())).collect();
        let mut all = ids.clone();
        all.push(format!("{}_nobody", def.name()));
        pool.insert(def.name().to_string(), ids);
        universe.insert(def.name().to_string(), all);
    }
    let mut tuples: BTreeMap<(Node, Subject), Option<Cav>> = BTreeMap::new();
    for def in schema.definitions() {
        let t = def.name();
        let ids = &pool[t];
        for rdef in def.relations() {
            let RelationKind::Relation(allowed) = rdef.kind() else {
                continue;
            };
            for a in allowed {
                let st = a.subject_type.as_str();
                let make = |sid: &str| match &a.kind {
                    AllowedKind::Object => Subject::Object((st.to_string(), sid.to_string())),
                    AllowedKind::Relation(r) => {
                        Subject::Userset((st.to_string(), sid.to_string()), r.clone())
                    }
                    AllowedKind::Wildcard => Subject::Wildcard(st.to_string()),
                };
                let mut add = |rng: &mut StdRng, key: (Node, Subject)| {
                    let cav = a
                        .caveat
                        .as_ref()
                        .map(|c| (c.clone(), relationship_context(c, rng)));
                    tuples.entry(key).or_insert(cav);
                };
                if a.kind == AllowedKind::Wildcard {
                    for id in ids {
                        if rng.gen_bool(0.2) {
                            add(rng, (node(t, id, rdef.name()), make("*")));
                        }
                    }
                } else if st == t {
                    for i in 1..ids.len() {
                        if rng.gen_bool(0.5) {
                            let j = rng.gen_range(0..i);
                            add(rng, (node(t, &ids[i], rdef.name()), make(&ids[j])));
                        }
                    }
                } else {
                    let subject_ids = &pool[st];
                    for id in ids {
                        let count = [0, 0, 1, 1, 2][rng.gen_range(0..5)];
                        for _ in 0..count {
                            let sid = &subject_ids[rng.gen_range(0..subject_ids.len())];
                            add(rng, (node(t, id, rdef.name()), make(sid)));
                        }
                    }
                }
            }
        }
    }
    let mut direct: HashMap<Node, Vec<(Subject, Option<Cav>)>> = HashMap::new();
    let mut lines = Vec::new();
    for (((t, id, r), s), cav) in tuples {
        let caveat = match &cav {
            None => String::new(),
            Some((name, ctx)) if ctx.is_empty() => format!("[{name}]"),
            Some((name, ctx)) => {
                format!("[{name}:{}]", serde_json::Value::Object(ctx.clone()))
            }
        };
        lines.push(format!("{t}:{id}#{r}@{}{caveat}", s.text()));
        direct.entry((t, id, r)).or_default().push((s, cav));
    }
    CWorld {
        universe,
        direct,
        lines,
    }
}

/// The oracle's own evaluation of one caveat: the relationship's context over the request's.
fn leaf_truth(cav: &Option<Cav>, request: &serde_json::Map<String, serde_json::Value>) -> Tv {
    let Some((name, bound)) = cav else {
        return Tv::Yes;
    };
    let get = |k: &str| bound.get(k).or_else(|| request.get(k));
    let yes_no = |b: bool| if b { Tv::Yes } else { Tv::No };
    match name.as_str() {
        "at_least" => match (
            get("level").and_then(|v| v.as_i64()),
            get("required").and_then(|v| v.as_i64()),
        ) {
            (Some(level), Some(required)) => yes_no(level >= required),
            _ => Tv::Unknown,
        },
        "either" => {
            let (a, b) = (
                get("a").and_then(|v| v.as_bool()),
                get("b").and_then(|v| v.as_bool()),
            );
            if a == Some(true) || b == Some(true) {
                Tv::Yes
            } else if a == Some(false) && b == Some(false) {
                Tv::No
            } else {
                Tv::Unknown
            }
        }
        other => panic!("unknown caveat {other}"),
    }
}

/// Subjects of one `object#relation` with their truth (absent: no).
type Members = BTreeMap<Obj, Tv>;

fn add_member(set: &mut Members, o: Obj, v: Tv) {
    if v > Tv::No {
        let e = set.entry(o).or_insert(Tv::No);
        *e = (*e).max(v);
    }
}

fn gated(set: Members, gate: Tv) -> Members {
    set.into_iter()
        .map(|(o, v)| (o, v.min(gate)))
        .filter(|(_, v)| *v > Tv::No)
        .collect()
}

fn intersect3(mut sets: impl Iterator<Item = Members>) -> Members {
    let Some(first) = sets.next() else {
        return Members::new();
    };
    sets.fold(first, |acc, s| {
        acc.into_iter()
            .map(|(o, v)| {
                let w = s.get(&o).copied().unwrap_or(Tv::No);
                (o, v.min(w))
            })
            .filter(|(_, v)| *v > Tv::No)
            .collect()
    })
}

/// The three-valued truth of every `object#relation`, by naive iteration.
struct Truth3 {
    sets: HashMap<Node, Members>,
}

impl Truth3 {
    fn compute(
        schema: &Schema,
        world: &CWorld,
        request: &serde_json::Map<String, serde_json::Value>,
    ) -> Truth3 {
        let mut truth = Truth3 {
            sets: HashMap::new(),
        };
        for group in strata(schema) {
            loop {
                let mut changed = false;
                for (t, r) in &group {
                    for id in &world.universe[t] {
                        let value = truth.evaluate(schema, world, request, t, id, r);
                        let key = node(t, id, r);
                        if truth.sets.get(&key) != Some(&value) {
                            truth.sets.insert(key, value);
                            changed = true;
                        }
                    }
                }
                if !changed {
                    break;
                }
            }
        }
        truth
    }

    fn get(&self, t: &str, id: &str, r: &str) -> Members {
        self.sets.get(&node(t, id, r)).cloned().unwrap_or_default()
    }

    fn evaluate(
        &self,
        schema: &Schema,
        world: &CWorld,
        request: &serde_json::Map<String, serde_json::Value>,
        t: &str,
        id: &str,
        r: &str,
    ) -> Members {
        match schema.relation(t, r).unwrap().kind() {
            RelationKind::Relation(_) => {
                let mut out = Members::new();
                for (s, cav) in world.direct.get(&node(t, id, r)).into_iter().flatten() {
                    let gate = leaf_truth(cav, request);
                    match s {
                        Subject::Object(o) => add_member(&mut out, o.clone(), gate),
                        Subject::Wildcard(st) => {
                            for i in &world.universe[st] {
                                add_member(&mut out, (st.clone(), i.clone()), gate);
                            }
                        }
                        Subject::Userset((st, sid), sr) => {
                            for (o, v) in self.get(st, sid, sr) {
                                add_member(&mut out, o, v.min(gate));
                            }
                        }
                    }
                }
                out
            }
            RelationKind::Permission(rw) => self.rewrite(schema, world, request, t, id, rw),
        }
    }

    fn rewrite(
        &self,
        schema: &Schema,
        world: &CWorld,
        request: &serde_json::Map<String, serde_json::Value>,
        t: &str,
        id: &str,
        rw: &Rewrite,
    ) -> Members {
        match rw {
            Rewrite::Nil => Members::new(),
            Rewrite::Computed(c) => self.get(t, id, c),
            Rewrite::Union(items) => {
                let mut out = Members::new();
                for i in items {
                    for (o, v) in self.rewrite(schema, world, request, t, id, i) {
                        add_member(&mut out, o, v);
                    }
                }
                out
            }
            Rewrite::Intersection(items) => intersect3(
                items
                    .iter()
                    .map(|i| self.rewrite(schema, world, request, t, id, i)),
            ),
            Rewrite::Exclusion(a, b) => {
                let b = self.rewrite(schema, world, request, t, id, b);
                self.rewrite(schema, world, request, t, id, a)
                    .into_iter()
                    .map(|(o, v)| {
                        let excluded = b.get(&o).copied().unwrap_or(Tv::No);
                        (o, v.min(excluded.not()))
                    })
                    .filter(|(_, v)| *v > Tv::No)
                    .collect()
            }
            Rewrite::Arrow {
                tupleset,
                computed,
                kind,
            } => {
                let targets: Vec<Members> = world
                    .direct
                    .get(&node(t, id, tupleset))
                    .into_iter()
                    .flatten()
                    .filter_map(|(s, cav)| match s {
                        Subject::Object(o) => Some((o, cav)),
                        _ => None,
                    })
                    .filter(|((tt, _), _)| schema.relation(tt, computed).is_some())
                    .map(|((tt, tid), cav)| {
                        gated(self.get(tt, tid, computed), leaf_truth(cav, request))
                    })
                    .collect();
                match kind {
                    ArrowKind::Any => {
                        let mut out = Members::new();
                        for (o, v) in targets.into_iter().flatten() {
                            add_member(&mut out, o, v);
                        }
                        out
                    }
                    ArrowKind::All => intersect3(targets.into_iter()),
                }
            }
        }
    }
}

#[derive(Default)]
struct CTally {
    checks: usize,
    yes: usize,
    unknown: usize,
    lookup_resources: usize,
    lookup_subjects: usize,
}

/// The truth of a found subject's condition: unconditional is yes, a caveat left is unknown.
fn found_truth(caveat: &Option<eval::CaveatExpr>) -> Tv {
    if caveat.is_some() {
        Tv::Unknown
    } else {
        Tv::Yes
    }
}

/// Compares check, both lookups and the three-valued truth for one seed and request context.
async fn run_caveated_seed(
    schema: &Schema,
    world: &CWorld,
    base: &EvalContext,
    request: &serde_json::Map<String, serde_json::Value>,
    tally: &mut CTally,
) -> Vec<String> {
    let truth = Truth3::compute(schema, world, request);
    let context: ContextMap =
        match ContextValue::from_json(&serde_json::Value::Object(request.clone())) {
            ContextValue::Map(m) => m,
            other => panic!("not a map: {other}"),
        };
    let ctx = base.clone().with_caveat_context(context);
    let mut bad = Vec::new();
    let subject_types = subject_types(schema);
    let subjects: Vec<Obj> = subject_types
        .iter()
        .flat_map(|t| world.universe[t].iter().map(|i| (t.clone(), i.clone())))
        .collect();
    let subject_ref = |(t, i): &Obj| SubjectRef::new(t, i, None).unwrap();
    let mut answers: HashMap<Node, BTreeMap<Obj, Tv>> = HashMap::new();
    for def in schema.definitions() {
        let t = def.name();
        for rdef in def.relations() {
            let r = rdef.name();
            for id in &world.universe[t] {
                let resource = ObjectRef::new(t, id).unwrap();
                let want = truth.get(t, id, r);
                let row = answers.entry(node(t, id, r)).or_default();
                for s in &subjects {
                    tally.checks += 1;
                    let expected = want.get(s).copied().unwrap_or(Tv::No);
                    match eval::check(&ctx, &resource, r, &subject_ref(s)).await {
                        Ok(res) => {
                            let got = Tv::of(&res.permissionship);
                            tally.yes += usize::from(got == Tv::Yes);
                            tally.unknown += usize::from(got == Tv::Unknown);
                            if got != expected {
                                bad.push(format!(
                                    "check {t}:{id}#{r}@{}:{} = {got:?} ({:?}), the fixpoint says {expected:?}",
                                    s.0, s.1, res.permissionship
                                ));
                            }
                            row.insert(s.clone(), got);
                        }
                        Err(e) => {
                            bad.push(format!("check {t}:{id}#{r}@{}:{}: error {e}", s.0, s.1))
                        }
                    }
                }
            }
        }
    }

    for def in schema.definitions() {
        let t = def.name();
        for rdef in def.relations() {
            let r = rdef.name();
            for s in &subjects {
                tally.lookup_resources += 1;
                match eval::lookup_resources(&ctx, t, r, &subject_ref(s)).await {
                    Ok(found) => {
                        let listed: BTreeMap<&str, Tv> = found
                            .iter()
                            .map(|f| (f.resource_id.as_str(), Tv::of(&f.permissionship)))
                            .collect();
                        if listed.values().any(|v| *v == Tv::No) {
                            bad.push(format!(
                                "lookup_resources {t}#{r}@{}:{} listed a HasNot",
                                s.0, s.1
                            ));
                        }
                        for id in &world.universe[t] {
                            let Some(a) = answers[&node(t, id, r)].get(s) else {
                                continue;
                            };
                            let l = listed.get(id.as_str()).copied().unwrap_or(Tv::No);
                            if *a != l {
                                bad.push(format!(
                                    "lookup_resources {t}#{r}@{}:{}: {t}:{id} listed as {l:?}, check says {a:?}",
                                    s.0, s.1
                                ));
                            }
                        }
                    }
                    Err(e) => bad.push(format!(
                        "lookup_resources {t}#{r}@{}:{}: error {e}",
                        s.0, s.1
                    )),
                }
            }
        }
    }

    for def in schema.definitions() {
        let t = def.name();
        for rdef in def.relations() {
            let r = rdef.name();
            for id in &world.universe[t] {
                let resource = ObjectRef::new(t, id).unwrap();
                let row = &answers[&node(t, id, r)];
                for st in &subject_types {
                    tally.lookup_subjects += 1;
                    let found = match eval::lookup_subjects(&ctx, &resource, r, st, None).await {
                        Ok(found) => found,
                        Err(e) => {
                            bad.push(format!("lookup_subjects {t}:{id}#{r} {st}: error {e}"));
                            continue;
                        }
                    };
                    let wildcard = found.iter().find(|f| f.subject_id == "*");
                    for sid in &world.universe[st] {
                        let concrete = found
                            .iter()
                            .find(|f| &f.subject_id == sid)
                            .map_or(Tv::No, |f| found_truth(&f.caveat));
                        let via_wildcard = wildcard.map_or(Tv::No, |w| {
                            let excluded = w
                                .excluded
                                .iter()
                                .find(|e| &e.subject_id == sid)
                                .map_or(Tv::No, |e| found_truth(&e.caveat));
                            found_truth(&w.caveat).min(excluded.not())
                        });
                        let listed = concrete.max(via_wildcard);
                        if let Some(a) = row.get(&(st.clone(), sid.clone()))
                            && *a != listed
                        {
                            bad.push(format!(
                                "lookup_subjects {t}:{id}#{r} {st}: {st}:{sid} listed as {listed:?}, check says {a:?}"
                            ));
                        }
                    }
                }
            }
        }
    }
    bad
}

#[test]
fn caveats_three_valued() {
    let seeds = std::env::var("ARBOR_ORACLE_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CAVEAT_SEEDS);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let started = Instant::now();
    let mut tally = CTally::default();
    for seed in 0..seeds {
        let schema = crate::compile(CAVEATED);
        let mut rng = StdRng::seed_from_u64(seed);
        let world = generate_caveated(&schema, &mut rng);
        let rels: Vec<Relationship> = world
            .lines
            .iter()
            .map(|l| Relationship::parse(l).unwrap_or_else(|e| panic!("`{l}`: {e}")))
            .collect();
        let ctx = crate::load(crate::compile(CAVEATED), &rels, MAX_DEPTH);
        for k in 0..REQUESTS_PER_SEED {
            let request = if k == 0 {
                serde_json::Map::new()
            } else {
                request_context(&mut rng)
            };
            let bad = rt.block_on(run_caveated_seed(
                &schema, &world, &ctx, &request, &mut tally,
            ));
            assert!(
                bad.is_empty(),
                "caveats, seed {seed}, request {}: {} disagreements (first 25):\n{}\n\nrelationships:\n{}",
                serde_json::Value::Object(request.clone()),
                bad.len(),
                bad.iter().take(25).cloned().collect::<Vec<_>>().join("\n"),
                world.lines.join("\n")
            );
        }
    }
    println!(
        "caveats: {seeds} seeds × {REQUESTS_PER_SEED} request contexts in {:.2?}: {} checks ({} yes, {} unknown), \
         {} lookup_resources, {} lookup_subjects agree with the three-valued fixpoint",
        started.elapsed(),
        tally.checks,
        tally.yes,
        tally.unknown,
        tally.lookup_resources,
        tally.lookup_subjects
    );
    assert!(
        tally.yes > 0 && tally.unknown > 0 && tally.yes + tally.unknown < tally.checks,
        "degenerate data: {} yes, {} unknown of {} checks",
        tally.yes,
        tally.unknown,
        tally.checks
    );
}

/// The three-valued oracle on data whose answers are known by hand.
#[test]
fn three_valued_oracle_knows_the_answers() {
    let schema = crate::compile(CAVEATED);
    let cav = |name: &str, json: &str| -> Option<Cav> {
        match serde_json::from_str::<serde_json::Value>(json).unwrap() {
            serde_json::Value::Object(m) => Some((name.to_string(), m)),
            _ => unreachable!(),
        }
    };
    let user = |id: &str| Subject::Object(("user".to_string(), id.to_string()));
    let mut direct: HashMap<Node, Vec<(Subject, Option<Cav>)>> = HashMap::new();
    direct.insert(
        node("doc", "d", "viewer"),
        vec![
            (user("ann"), cav("at_least", r#"{"required": 2}"#)),
            (user("bob"), cav("either", r#"{"a": false}"#)),
            (user("cat"), None),
        ],
    );
    direct.insert(
        node("doc", "d", "banned"),
        vec![(user("cat"), cav("either", "{}"))],
    );
    let mut universe = BTreeMap::new();
    universe.insert(
        "user".to_string(),
        vec!["ann".to_string(), "bob".to_string(), "cat".to_string()],
    );
    for t in ["group", "folder", "doc"] {
        universe.insert(t.to_string(), vec!["d".to_string()]);
    }
    let world = CWorld {
        universe,
        direct,
        lines: Vec::new(),
    };
    let view = |request: &str| -> Vec<(String, Tv)> {
        let request = match serde_json::from_str::<serde_json::Value>(request).unwrap() {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        };
        Truth3::compute(&schema, &world, &request)
            .get("doc", "d", "view")
            .into_iter()
            .map(|((_, i), v)| (i, v))
            .collect()
    };
    let u = |i: &str, v: Tv| (i.to_string(), v);
    assert_eq!(
        view("{}"),
        [
            u("ann", Tv::Unknown),
            u("bob", Tv::Unknown),
            u("cat", Tv::Unknown)
        ]
    );
    assert_eq!(
        view(r#"{"level": 2, "b": true, "a": true}"#),
        [u("ann", Tv::Yes), u("bob", Tv::Yes)]
    );
    assert_eq!(
        view(r#"{"level": 1, "b": false, "a": false}"#),
        [u("cat", Tv::Yes)]
    );
}
