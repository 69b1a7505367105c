//! Flattening a recursive expand tree into the subjects that have the permission, with the
//! resources each was found under, as SpiceDB's developer validation does
//! (`internal/developmentmembership`, `internal/datasets/basesubjectset.go`).
//!
//! Subjects are grouped by (type, relation); within a group, concrete subjects by id plus at
//! most one wildcard carrying its exclusions. Union keeps every subject, intersection keeps
//! those in every branch, exclusion subtracts; a wildcard meets a concrete subject by the
//! rules SpiceDB documents there. Caveats are tracked as formulas (`None` = unconditional),
//! but only whether a subject is conditional is compared against a validation file.

use std::collections::{BTreeMap, BTreeSet};

use crate::eval::{CaveatExpr, ExpandNode, ExpandTree};
use crate::model::SubjectRef;

/// A caveat condition: `None` means the subject is there unconditionally.
type Cond = Option<CaveatExpr>;

/// `a && b`; unconditional sides drop out.
fn cond_and(a: &Cond, b: &Cond) -> Cond {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (Some(x), Some(y)) if x == y => Some(x.clone()),
        (Some(x), Some(y)) => Some(CaveatExpr::and(x.clone(), y.clone())),
    }
}

/// `a || b` where an unconditional side makes the result unconditional.
fn cond_or_short(a: &Cond, b: &Cond) -> Cond {
    match (a, b) {
        (Some(x), Some(y)) if x == y => Some(x.clone()),
        (Some(x), Some(y)) => Some(CaveatExpr::or(x.clone(), y.clone())),
        _ => None,
    }
}

/// `a || b` where an unconditional side drops out (SpiceDB's plain `Or`).
fn cond_or(a: &Cond, b: &Cond) -> Cond {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (Some(x), Some(y)) if x == y => Some(x.clone()),
        (Some(x), Some(y)) => Some(CaveatExpr::or(x.clone(), y.clone())),
    }
}

/// `!a`; unconditional stays unconditional (as SpiceDB's `Invert(nil)`).
fn cond_not(a: &Cond) -> Cond {
    a.as_ref().map(|x| CaveatExpr::negate(x.clone()))
}

/// One subject found, within a group of one (type, relation).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Found {
    /// The subject (`type:*` for a wildcard).
    pub(crate) subject: SubjectRef,
    /// The condition under which it is present.
    pub(crate) caveat: Cond,
    /// For a wildcard: the subjects excluded from it.
    pub(crate) excluded: Vec<Found>,
    /// The `type:id#relation` of every resource it was found under.
    pub(crate) resources: BTreeSet<String>,
}

impl Found {
    fn is_wildcard(&self) -> bool {
        self.subject.is_wildcard()
    }

    fn id(&self) -> &str {
        self.subject.object_id()
    }

    /// A subject built from others: resources are the union of theirs.
    fn derived(
        subject: &SubjectRef,
        caveat: Cond,
        excluded: Vec<Found>,
        sources: &[&Found],
    ) -> Found {
        let mut resources = BTreeSet::new();
        for s in sources {
            resources.extend(s.resources.iter().cloned());
        }
        Found {
            subject: subject.clone(),
            caveat,
            excluded,
            resources,
        }
    }
}

/// Concrete subjects by id plus at most one wildcard: one (type, relation) group.
#[derive(Debug, Clone, Default, PartialEq)]
struct BaseSet {
    concrete: BTreeMap<String, Found>,
    wildcard: Option<Found>,
}

impl BaseSet {
    fn items(&self) -> Vec<Found> {
        let mut out: Vec<Found> = self.concrete.values().cloned().collect();
        out.extend(self.wildcard.clone());
        out
    }

    fn set_concrete(&mut self, id: &str, value: Option<Found>) {
        match value {
            Some(v) => {
                self.concrete.insert(id.to_string(), v);
            }
            None => {
                self.concrete.remove(id);
            }
        }
    }

    /// Union with one subject, in place.
    fn add(&mut self, adding: Found) {
        if adding.is_wildcard() {
            let mut wildcard = union_wildcards(self.wildcard.as_ref(), adding);
            for concrete in self.concrete.values() {
                wildcard = union_wildcard_concrete(&wildcard, concrete);
            }
            self.wildcard = Some(wildcard);
            return;
        }
        let merged = union_concretes(self.concrete.get(adding.id()), Some(&adding));
        if let Some(w) = &self.wildcard {
            self.wildcard = Some(union_wildcard_concrete(w, &adding));
        }
        let id = adding.id().to_string();
        self.set_concrete(&id, merged);
    }

    /// Subtracts one subject, in place.
    fn subtract(&mut self, removing: &Found) {
        if removing.is_wildcard() {
            let ids: Vec<String> = self.concrete.keys().cloned().collect();
            for id in ids {
                let updated = self
                    .concrete
                    .get(&id)
                    .and_then(|c| subtract_wildcard_from_concrete(c, removing));
                self.set_concrete(&id, updated);
            }
            let (wildcard, concretes) =
                subtract_wildcard_from_wildcard(self.wildcard.as_ref(), removing);
            self.wildcard = wildcard;
            for c in concretes {
                let id = c.id().to_string();
                self.set_concrete(&id, Some(c));
            }
            return;
        }
        if let Some(existing) = self.concrete.get(removing.id()) {
            let updated = subtract_concretes(existing, removing);
            let id = removing.id().to_string();
            self.set_concrete(&id, updated);
        }
        if let Some(w) = &self.wildcard {
            self.wildcard = Some(subtract_concrete_from_wildcard(w, removing));
        }
    }

    /// Intersection with `other`, in place.
    fn intersect(&mut self, other: &BaseSet) {
        let own_wildcard = self.wildcard.take();
        self.wildcard = match (&own_wildcard, &other.wildcard) {
            (Some(a), Some(b)) => Some(intersect_wildcards(a, b)),
            _ => None,
        };
        let mut updated: BTreeMap<String, Found> = BTreeMap::new();
        for (id, concrete) in &self.concrete {
            let both = other.concrete.get(id).map(|o| {
                Found::derived(
                    &concrete.subject,
                    cond_and(&concrete.caveat, &o.caveat),
                    Vec::new(),
                    &[concrete, o],
                )
            });
            let via_wildcard = other
                .wildcard
                .as_ref()
                .and_then(|w| intersect_concrete_wildcard(concrete, w));
            if let Some(r) = union_concretes(both.as_ref(), via_wildcard.as_ref()) {
                updated.insert(id.clone(), r);
            }
        }
        if let Some(own) = &own_wildcard {
            for (id, other_concrete) in &other.concrete {
                let via_own = intersect_concrete_wildcard(other_concrete, own);
                let merged = union_concretes(updated.get(id), via_own.as_ref());
                if let Some(m) = merged {
                    updated.insert(id.clone(), m);
                }
            }
        }
        self.concrete = updated;
    }

    /// Every subject made conditional on `parent` as well.
    fn with_parent_caveat(&mut self, parent: &CaveatExpr) {
        let parent = Some(parent.clone());
        if let Some(w) = &mut self.wildcard {
            w.caveat = cond_and(&parent, &w.caveat);
        }
        for c in self.concrete.values_mut() {
            c.caveat = cond_and(&parent, &c.caveat);
        }
    }
}

fn union_wildcards(existing: Option<&Found>, adding: Found) -> Found {
    let Some(existing) = existing else {
        return adding;
    };
    // A subject is excluded from the union only if both wildcards exclude it.
    let mut ours = BaseSet::default();
    existing.excluded.iter().cloned().for_each(|e| ours.add(e));
    let mut theirs = BaseSet::default();
    adding.excluded.iter().cloned().for_each(|e| theirs.add(e));
    ours.intersect(&theirs);
    Found::derived(
        &existing.subject,
        cond_or_short(&existing.caveat, &adding.caveat),
        ours.items(),
        &[existing, &adding],
    )
}

fn union_wildcard_concrete(wildcard: &Found, adding: &Found) -> Found {
    let mut excluded = Vec::with_capacity(wildcard.excluded.len());
    for e in &wildcard.excluded {
        if e.id() != adding.id() {
            excluded.push(e.clone());
        } else if adding.caveat.is_some() {
            // Still excluded unless the added subject's condition holds.
            excluded.push(Found::derived(
                &adding.subject,
                cond_and(&e.caveat, &cond_not(&adding.caveat)),
                Vec::new(),
                &[e, adding],
            ));
        }
    }
    Found::derived(
        &wildcard.subject,
        wildcard.caveat.clone(),
        excluded,
        &[wildcard],
    )
}

fn union_concretes(existing: Option<&Found>, adding: Option<&Found>) -> Option<Found> {
    match (existing, adding) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (Some(e), Some(a)) => Some(Found::derived(
            &e.subject,
            cond_or_short(&e.caveat, &a.caveat),
            Vec::new(),
            &[e, a],
        )),
    }
}

fn subtract_wildcard_from_wildcard(
    existing: Option<&Found>,
    removing: &Found,
) -> (Option<Found>, Vec<Found>) {
    let Some(existing) = existing else {
        return (None, Vec::new());
    };
    if removing.caveat.is_none() && removing.excluded.is_empty() {
        return (None, Vec::new());
    }
    // Subjects excluded from the removed wildcard (and not from ours) stay, as concretes.
    let mut concretes = Vec::new();
    for excluded in &removing.excluded {
        let ours = existing.excluded.iter().find(|e| e.id() == excluded.id());
        if ours.is_some_and(|o| o.caveat.is_none()) {
            continue;
        }
        let both = cond_and(&existing.caveat, &removing.caveat);
        let cond = match ours {
            Some(o) => cond_and(&cond_and(&both, &cond_not(&o.caveat)), &excluded.caveat),
            None => cond_and(&both, &excluded.caveat),
        };
        concretes.push(Found::derived(
            &excluded.subject,
            cond,
            Vec::new(),
            &[excluded],
        ));
    }
    let remaining = cond_and(&existing.caveat, &cond_not(&removing.caveat));
    let wildcard = remaining.map(|c| {
        Found::derived(
            &existing.subject,
            Some(c),
            existing.excluded.clone(),
            &[existing, removing],
        )
    });
    (wildcard, concretes)
}

fn subtract_wildcard_from_concrete(concrete: &Found, wildcard: &Found) -> Option<Found> {
    match wildcard.excluded.iter().find(|e| e.id() == concrete.id()) {
        None => wildcard.caveat.as_ref().map(|_| {
            Found::derived(
                &concrete.subject,
                cond_and(&concrete.caveat, &cond_not(&wildcard.caveat)),
                Vec::new(),
                &[concrete],
            )
        }),
        Some(exclusion) if exclusion.caveat.is_none() => Some(concrete.clone()),
        Some(exclusion) => {
            let kept = cond_or(&cond_not(&wildcard.caveat), &exclusion.caveat);
            Some(Found::derived(
                &concrete.subject,
                cond_and(&concrete.caveat, &kept),
                Vec::new(),
                &[concrete],
            ))
        }
    }
}

fn subtract_concretes(existing: &Found, removing: &Found) -> Option<Found> {
    removing.caveat.as_ref().map(|_| {
        Found::derived(
            &existing.subject,
            cond_and(&existing.caveat, &cond_not(&removing.caveat)),
            Vec::new(),
            &[existing, removing],
        )
    })
}

fn subtract_concrete_from_wildcard(wildcard: &Found, removing: &Found) -> Found {
    let mut excluded = Vec::with_capacity(wildcard.excluded.len() + 1);
    let mut found = false;
    for e in &wildcard.excluded {
        if e.id() == removing.id() {
            found = true;
            excluded.push(Found::derived(
                &removing.subject,
                cond_or_short(&e.caveat, &removing.caveat),
                Vec::new(),
                &[e, removing],
            ));
        } else {
            excluded.push(e.clone());
        }
    }
    if !found {
        excluded.push(removing.clone());
    }
    Found::derived(
        &wildcard.subject,
        wildcard.caveat.clone(),
        excluded,
        &[wildcard],
    )
}

fn intersect_wildcards(a: &Found, b: &Found) -> Found {
    let mut excluded = BaseSet::default();
    a.excluded
        .iter()
        .chain(&b.excluded)
        .cloned()
        .for_each(|e| excluded.add(e));
    Found::derived(
        &a.subject,
        cond_and(&a.caveat, &b.caveat),
        excluded.items(),
        &[a, b],
    )
}

fn intersect_concrete_wildcard(concrete: &Found, wildcard: &Found) -> Option<Found> {
    match wildcard.excluded.iter().find(|e| e.id() == concrete.id()) {
        None if wildcard.caveat.is_none() => Some(concrete.clone()),
        None => Some(Found::derived(
            &concrete.subject,
            cond_and(&concrete.caveat, &wildcard.caveat),
            Vec::new(),
            &[concrete, wildcard],
        )),
        Some(exclusion) if exclusion.caveat.is_none() => None,
        Some(exclusion) => Some(Found::derived(
            &concrete.subject,
            cond_and(
                &concrete.caveat,
                &cond_and(&wildcard.caveat, &cond_not(&exclusion.caveat)),
            ),
            Vec::new(),
            &[concrete, wildcard, exclusion],
        )),
    }
}

/// The key of a group: subject type and relation (`None`: the object itself).
type GroupKey = (String, Option<String>);

/// Every subject found, grouped by (type, relation).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SubjectSet {
    groups: BTreeMap<GroupKey, BaseSet>,
}

/// A subject that has the permission, as SpiceDB's developer validation sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpandedSubject {
    /// The subject (`type:*` for a wildcard; `type:id#relation` for a userset).
    pub subject: SubjectRef,
    /// The condition under which it has the permission; `None` when unconditional.
    pub caveat: Option<CaveatExpr>,
    /// For a wildcard: the subjects excluded from it, each with the condition of its exclusion.
    pub excluded: Vec<(SubjectRef, Option<CaveatExpr>)>,
    /// The `type:id#relation` of every resource it was found under, sorted.
    pub resources: Vec<String>,
}

impl ExpandedSubject {
    fn from_found(found: Found) -> Self {
        ExpandedSubject {
            subject: found.subject,
            caveat: found.caveat,
            excluded: found
                .excluded
                .into_iter()
                .map(|e| (e.subject, e.caveat))
                .collect(),
            resources: found.resources.into_iter().collect(),
        }
    }

    /// The subject as a validation string writes it: `[...]` when conditional, and
    /// ` - {...}` listing the exclusions of a wildcard.
    pub fn validation_text(&self) -> String {
        let mut out = self.subject.to_string();
        if self.caveat.is_some() {
            out.push_str("[...]");
        }
        if self.subject.is_wildcard() && !self.excluded.is_empty() {
            out.push_str(" - {");
            out.push_str(&self.exclusion_texts().join(", "));
            out.push('}');
        }
        out
    }

    /// The exclusions of a wildcard as `type:id`, with `[...]` when conditional, sorted.
    pub fn exclusion_texts(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .excluded
            .iter()
            .map(|(subject, caveat)| {
                let mark = if caveat.is_some() { "[...]" } else { "" };
                format!("{subject}{mark}")
            })
            .collect();
        out.sort();
        out
    }

    /// The whole validation string: `[subject] is <resource#relation>/<...>`.
    pub fn validation_string(&self) -> String {
        let resources: Vec<String> = self.resources.iter().map(|r| format!("<{r}>")).collect();
        format!("[{}] is {}", self.validation_text(), resources.join("/"))
    }
}

impl SubjectSet {
    fn group(&mut self, key: GroupKey) -> &mut BaseSet {
        self.groups.entry(key).or_default()
    }

    fn add_subject(&mut self, subject: &SubjectRef, found: Found) {
        let key = (
            subject.object_type().to_string(),
            subject.relation().map(str::to_string),
        );
        self.group(key).add(found);
    }

    fn union_with(&mut self, other: SubjectSet) {
        for (key, set) in other.groups {
            let ours = self.group(key);
            for item in set.items() {
                ours.add(item);
            }
        }
    }

    fn intersect(self, other: &SubjectSet) -> SubjectSet {
        let mut groups = BTreeMap::new();
        for (key, mut set) in self.groups {
            if let Some(theirs) = other.groups.get(&key) {
                set.intersect(theirs);
                groups.insert(key, set);
            }
        }
        SubjectSet { groups }
    }

    fn exclude(mut self, other: &SubjectSet) -> SubjectSet {
        for (key, set) in &mut self.groups {
            if let Some(theirs) = other.groups.get(key) {
                for item in theirs.items() {
                    set.subtract(&item);
                }
            }
        }
        self
    }

    fn with_parent_caveat(&mut self, parent: Option<&CaveatExpr>) {
        if let Some(p) = parent {
            self.groups
                .values_mut()
                .for_each(|g| g.with_parent_caveat(p));
        }
    }

    /// Flattens a (recursive) expand tree.
    pub(crate) fn from_tree(tree: &ExpandTree) -> SubjectSet {
        let mut set = match &tree.node {
            ExpandNode::Leaf(subjects) => {
                let resource = format!("{}#{}", tree.object, tree.relation);
                let mut set = SubjectSet::default();
                for s in subjects {
                    let found = Found {
                        subject: s.subject.clone(),
                        caveat: s.caveat.clone(),
                        excluded: Vec::new(),
                        resources: BTreeSet::from([resource.clone()]),
                    };
                    set.add_subject(&s.subject, found);
                }
                set
            }
            ExpandNode::Union(children) => {
                let mut set = SubjectSet::default();
                for child in children {
                    set.union_with(SubjectSet::from_tree(child));
                }
                set
            }
            ExpandNode::Intersection(children) => {
                let mut iter = children.iter();
                match iter.next() {
                    None => SubjectSet::default(),
                    Some(first) => {
                        let mut set = SubjectSet::from_tree(first);
                        for child in iter {
                            set = set.intersect(&SubjectSet::from_tree(child));
                        }
                        set
                    }
                }
            }
            ExpandNode::Exclusion(base, subtracted) => {
                SubjectSet::from_tree(base).exclude(&SubjectSet::from_tree(subtracted))
            }
        };
        set.with_parent_caveat(tree.caveat.as_ref());
        set
    }

    /// Every subject found, ordered by type, relation and id (wildcards last in a group).
    pub(crate) fn subjects(&self) -> Vec<ExpandedSubject> {
        self.groups
            .values()
            .flat_map(BaseSet::items)
            .map(ExpandedSubject::from_found)
            .collect()
    }

    /// The found subject equal to `subject` (type, id and relation), if any.
    pub(crate) fn get(&self, subject: &SubjectRef) -> Option<ExpandedSubject> {
        let key = (
            subject.object_type().to_string(),
            subject.relation().map(str::to_string),
        );
        let set = self.groups.get(&key)?;
        let found = if subject.is_wildcard() {
            set.wildcard.clone()
        } else {
            set.concrete.get(subject.object_id()).cloned()
        }?;
        Some(ExpandedSubject::from_found(found))
    }

    /// Whether no subject was found.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.groups
            .values()
            .all(|g| g.concrete.is_empty() && g.wildcard.is_none())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::eval::ExpandSubject;
    use crate::model::ObjectRef;

    fn cav(name: &str) -> CaveatExpr {
        CaveatExpr::Caveat {
            name: name.to_string(),
            context: Default::default(),
            relationship: None,
        }
    }

    fn subj(text: &str, caveat: Option<&str>) -> ExpandSubject {
        let (t, rest) = text.split_once(':').unwrap();
        let (id, rel) = match rest.split_once('#') {
            Some((i, r)) => (i, Some(r)),
            None => (rest, None),
        };
        ExpandSubject {
            subject: SubjectRef::new(t, id, rel).unwrap(),
            caveat: caveat.map(cav),
            expiration: None,
        }
    }

    fn leaf(onr: &str, subjects: Vec<ExpandSubject>) -> ExpandTree {
        let (obj, rel) = onr.split_once('#').unwrap();
        let (t, id) = obj.split_once(':').unwrap();
        ExpandTree {
            object: ObjectRef::new(t, id).unwrap(),
            relation: rel.to_string(),
            node: ExpandNode::Leaf(subjects),
            caveat: None,
        }
    }

    fn node(onr: &str, node: ExpandNode) -> ExpandTree {
        let mut t = leaf(onr, Vec::new());
        t.node = node;
        t
    }

    fn texts(set: &SubjectSet) -> Vec<String> {
        let mut v: Vec<String> = set
            .subjects()
            .iter()
            .map(|s| format!("{} is {}", s.validation_text(), s.resources.join("/")))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn union_merges_resources() {
        let tree = node(
            "doc:a#view",
            ExpandNode::Union(vec![
                leaf(
                    "doc:a#viewer",
                    vec![subj("user:tom", None), subj("group:eng#member", None)],
                ),
                leaf("group:eng#member", vec![subj("user:tom", None)]),
            ]),
        );
        let set = SubjectSet::from_tree(&tree);
        assert_eq!(
            texts(&set),
            vec![
                "group:eng#member is doc:a#viewer",
                "user:tom is doc:a#viewer/group:eng#member"
            ]
        );
    }

    #[test]
    fn wildcard_exclusion_and_intersection() {
        let exclusion = node(
            "doc:a#view",
            ExpandNode::Exclusion(
                Box::new(leaf(
                    "doc:a#viewer",
                    vec![subj("user:*", None), subj("user:tom", None)],
                )),
                Box::new(leaf(
                    "doc:a#banned",
                    vec![subj("user:tom", None), subj("user:sarah", Some("c"))],
                )),
            ),
        );
        let set = SubjectSet::from_tree(&exclusion);
        assert_eq!(
            texts(&set),
            vec!["user:* - {user:sarah[...], user:tom} is doc:a#viewer"]
        );

        let intersection = node(
            "doc:a#view",
            ExpandNode::Intersection(vec![
                leaf("doc:a#viewer", vec![subj("user:*", None)]),
                leaf(
                    "doc:a#editor",
                    vec![subj("user:tom", Some("c")), subj("user:fred", None)],
                ),
            ]),
        );
        let set = SubjectSet::from_tree(&intersection);
        assert_eq!(
            texts(&set),
            vec!["user:fred is doc:a#editor", "user:tom[...] is doc:a#editor"]
        );

        let empty = node(
            "doc:a#view",
            ExpandNode::Exclusion(
                Box::new(leaf("doc:a#viewer", vec![subj("user:tom", None)])),
                Box::new(leaf("doc:a#banned", vec![subj("user:*", None)])),
            ),
        );
        assert!(SubjectSet::from_tree(&empty).is_empty());
    }

    #[test]
    fn wildcard_minus_wildcard_with_exclusions() {
        // viewer: *, possiblybanned = maybebanned(*) - notreallybanned(sarah) = * - {sarah}
        // view = viewer - possiblybanned = {sarah}
        let tree = node(
            "res:first#view",
            ExpandNode::Exclusion(
                Box::new(leaf("res:first#viewer", vec![subj("user:*", None)])),
                Box::new(node(
                    "res:first#possiblybanned",
                    ExpandNode::Exclusion(
                        Box::new(leaf("res:first#maybebanned", vec![subj("user:*", None)])),
                        Box::new(leaf(
                            "res:first#notreallybanned",
                            vec![subj("user:sarah", None)],
                        )),
                    ),
                )),
            ),
        );
        let set = SubjectSet::from_tree(&tree);
        assert_eq!(texts(&set), vec!["user:sarah is res:first#notreallybanned"]);
    }

    #[test]
    fn parent_caveat_marks_subtree() {
        let mut sub = leaf("group:eng#member", vec![subj("user:tom", None)]);
        sub.caveat = Some(cav("c"));
        let tree = node(
            "doc:a#viewer",
            ExpandNode::Union(vec![
                leaf("doc:a#viewer", vec![subj("group:eng#member", Some("c"))]),
                sub,
            ]),
        );
        let set = SubjectSet::from_tree(&tree);
        assert_eq!(
            texts(&set),
            vec![
                "group:eng#member[...] is doc:a#viewer",
                "user:tom[...] is group:eng#member"
            ]
        );
        let tom = SubjectRef::new("user", "tom", None).unwrap();
        assert!(set.get(&tom).unwrap().caveat.is_some());
    }
}
