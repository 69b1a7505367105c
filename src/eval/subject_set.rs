//! `SubjectSet`: the subjects found by `lookup_subjects`, as concrete ids and an optional
//! wildcard with exclusions, each member carrying the caveat condition it holds under.
//! Union, intersection and exclusion follow the set algebra of wildcards with exclusions.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::WILDCARD;

use super::caveat_expr::CaveatExpr;
use super::types::FoundSubject;

/// `None`: holds unconditionally; `Some(e)`: holds when `e` does.
type Cond = Option<CaveatExpr>;

fn and_c(a: &Cond, b: &Cond) -> Cond {
    match (a, b) {
        (None, x) | (x, None) => x.clone(),
        (Some(x), Some(y)) => Some(CaveatExpr::and(x.clone(), y.clone())),
    }
}

fn or_c(a: &Cond, b: &Cond) -> Cond {
    match (a, b) {
        (None, _) | (_, None) => None,
        (Some(x), Some(y)) => Some(CaveatExpr::or(x.clone(), y.clone())),
    }
}

/// Whether an id is in a set, and under what condition.
#[derive(Debug, Clone)]
enum Member {
    No,
    Yes(Cond),
}

impl Member {
    fn and(self, other: Member) -> Member {
        match (self, other) {
            (Member::Yes(a), Member::Yes(b)) => Member::Yes(and_c(&a, &b)),
            _ => Member::No,
        }
    }

    fn or(self, other: Member) -> Member {
        match (self, other) {
            (Member::No, x) | (x, Member::No) => x,
            (Member::Yes(a), Member::Yes(b)) => Member::Yes(or_c(&a, &b)),
        }
    }

    fn not(self) -> Member {
        match self {
            Member::No => Member::Yes(None),
            Member::Yes(None) => Member::No,
            Member::Yes(Some(e)) => Member::Yes(Some(CaveatExpr::negate(e))),
        }
    }
}

/// Every subject of a type except `excluded` (each excluded under its condition).
#[derive(Debug, Clone, Default, PartialEq)]
struct Wildcard {
    cond: Cond,
    excluded: BTreeMap<String, Cond>,
}

/// Concrete subject ids plus an optional wildcard.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct SubjectSet {
    concrete: BTreeMap<String, Cond>,
    wildcard: Option<Wildcard>,
}

impl SubjectSet {
    /// One subject id (`*` for the wildcard).
    pub(super) fn single(id: &str, cond: Cond) -> Self {
        let mut set = SubjectSet::default();
        if id == WILDCARD {
            set.wildcard = Some(Wildcard {
                cond,
                excluded: BTreeMap::new(),
            });
        } else {
            set.concrete.insert(id.to_string(), cond);
        }
        set
    }

    /// From lookup results.
    pub(super) fn from_found(found: Vec<FoundSubject>) -> Self {
        let mut set = SubjectSet::default();
        for f in found {
            if f.subject_id == WILDCARD {
                set.wildcard = Some(Wildcard {
                    cond: f.caveat,
                    excluded: f
                        .excluded
                        .into_iter()
                        .map(|e| (e.subject_id, e.caveat))
                        .collect(),
                });
            } else {
                set.concrete.insert(f.subject_id, f.caveat);
            }
        }
        set
    }

    /// To lookup results, ordered by id (the wildcard first).
    pub(super) fn into_found(self) -> Vec<FoundSubject> {
        let mut out = Vec::with_capacity(self.concrete.len() + 1);
        if let Some(w) = self.wildcard {
            out.push(FoundSubject {
                subject_id: WILDCARD.to_string(),
                excluded: w
                    .excluded
                    .into_iter()
                    .map(|(id, cond)| FoundSubject {
                        subject_id: id,
                        excluded: Vec::new(),
                        caveat: cond,
                    })
                    .collect(),
                caveat: w.cond,
            });
        }
        out.extend(self.concrete.into_iter().map(|(id, cond)| FoundSubject {
            subject_id: id,
            excluded: Vec::new(),
            caveat: cond,
        }));
        out
    }

    /// No subject at all.
    pub(super) fn is_empty(&self) -> bool {
        self.concrete.is_empty() && self.wildcard.is_none()
    }

    fn member(&self, id: &str) -> Member {
        let concrete = match self.concrete.get(id) {
            Some(c) => Member::Yes(c.clone()),
            None => Member::No,
        };
        let wild = match &self.wildcard {
            None => Member::No,
            Some(w) => match w.excluded.get(id) {
                None => Member::Yes(w.cond.clone()),
                Some(None) => Member::No,
                Some(Some(e)) => Member::Yes(and_c(&w.cond, &Some(CaveatExpr::negate(e.clone())))),
            },
        };
        concrete.or(wild)
    }

    fn excluded_keys<'a>(&'a self, other: &'a SubjectSet) -> BTreeSet<&'a String> {
        self.wildcard
            .iter()
            .chain(other.wildcard.iter())
            .flat_map(|w| w.excluded.keys())
            .collect()
    }

    /// Exclusions of a result wildcard: each id for which `membership` is not certain.
    fn exclusions<'a>(
        ids: impl IntoIterator<Item = &'a String>,
        membership: impl Fn(&str) -> Member,
    ) -> BTreeMap<String, Cond> {
        ids.into_iter()
            .filter_map(|id| match membership(id).not() {
                Member::No => None,
                Member::Yes(c) => Some((id.clone(), c)),
            })
            .collect()
    }

    /// Every subject in either set.
    pub(super) fn union(self, other: SubjectSet) -> SubjectSet {
        let mut concrete = self.concrete.clone();
        for (id, c) in &other.concrete {
            let merged = match concrete.get(id) {
                Some(existing) => or_c(existing, c),
                None => c.clone(),
            };
            concrete.insert(id.clone(), merged);
        }
        let wildcard = match (&self.wildcard, &other.wildcard) {
            (None, None) => None,
            (a, b) => {
                let cond = match (a, b) {
                    (Some(x), Some(y)) => or_c(&x.cond, &y.cond),
                    (Some(x), None) | (None, Some(x)) => x.cond.clone(),
                    (None, None) => None,
                };
                let keys = self.excluded_keys(&other);
                let excluded = Self::exclusions(keys, |id| self.member(id).or(other.member(id)));
                Some(Wildcard { cond, excluded })
            }
        };
        SubjectSet { concrete, wildcard }
    }

    /// Subjects in both sets.
    pub(super) fn intersect(self, other: SubjectSet) -> SubjectSet {
        let ids: BTreeSet<&String> = self.concrete.keys().chain(other.concrete.keys()).collect();
        let concrete = ids
            .into_iter()
            .filter_map(|id| match self.member(id).and(other.member(id)) {
                Member::No => None,
                Member::Yes(c) => Some((id.clone(), c)),
            })
            .collect();
        let wildcard = match (&self.wildcard, &other.wildcard) {
            (Some(a), Some(b)) => {
                let keys = self.excluded_keys(&other);
                Some(Wildcard {
                    cond: and_c(&a.cond, &b.cond),
                    excluded: Self::exclusions(keys, |id| self.member(id).and(other.member(id))),
                })
            }
            _ => None,
        };
        SubjectSet { concrete, wildcard }
    }

    /// Subjects in `self` but not in `other`.
    pub(super) fn exclude(self, other: SubjectSet) -> SubjectSet {
        let minus = |id: &str| self.member(id).and(other.member(id).not());
        let mut ids: BTreeSet<&String> = self.concrete.keys().collect();
        if self.wildcard.is_some() {
            // Ids excluded from the subtracted wildcard may remain, through ours.
            ids.extend(other.wildcard.iter().flat_map(|w| w.excluded.keys()));
        }
        let concrete = ids
            .into_iter()
            .filter_map(|id| match minus(id) {
                Member::No => None,
                Member::Yes(c) => Some((id.clone(), c)),
            })
            .collect();
        let wildcard = match &self.wildcard {
            None => None,
            Some(a) => {
                let cond = match &other.wildcard {
                    None => Member::Yes(a.cond.clone()),
                    Some(b) => Member::Yes(a.cond.clone()).and(Member::Yes(b.cond.clone()).not()),
                };
                match cond {
                    Member::No => None,
                    Member::Yes(cond) => {
                        let keys: BTreeSet<&String> =
                            a.excluded.keys().chain(other.concrete.keys()).collect();
                        Some(Wildcard {
                            cond,
                            excluded: Self::exclusions(keys, minus),
                        })
                    }
                }
            }
        };
        SubjectSet { concrete, wildcard }
    }

    /// Every member additionally requires `cond`.
    pub(super) fn gate(mut self, cond: Cond) -> SubjectSet {
        if cond.is_none() {
            return self;
        }
        for c in self.concrete.values_mut() {
            *c = and_c(&cond, c);
        }
        if let Some(w) = &mut self.wildcard {
            w.cond = and_c(&cond, &w.cond);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(set: &SubjectSet) -> Vec<String> {
        set.clone()
            .into_found()
            .into_iter()
            .map(|f| {
                if f.excluded.is_empty() {
                    f.subject_id
                } else {
                    format!(
                        "{}-{:?}",
                        f.subject_id,
                        f.excluded
                            .iter()
                            .map(|e| e.subject_id.clone())
                            .collect::<Vec<_>>()
                    )
                }
            })
            .collect()
    }

    fn set(items: &[&str]) -> SubjectSet {
        items.iter().fold(SubjectSet::default(), |acc, i| {
            acc.union(SubjectSet::single(i, None))
        })
    }

    #[test]
    fn wildcard_minus_concrete_keeps_exclusion() {
        let r = set(&["*", "a"]).exclude(set(&["b"]));
        assert_eq!(ids(&r), vec!["*-[\"b\"]", "a"]);
    }

    #[test]
    fn wildcard_intersect_concrete() {
        let r = set(&["*"]).intersect(set(&["alice", "bob"]).exclude(set(&["bob"])));
        assert_eq!(ids(&r), vec!["alice"]);
    }

    #[test]
    fn wildcard_minus_wildcard_with_exclusion() {
        let banned = set(&["*"]).exclude(set(&["carol"]));
        let r = set(&["*", "dave"]).exclude(banned);
        assert_eq!(ids(&r), vec!["carol"]);
    }

    #[test]
    fn union_clears_exclusion_covered_by_other_side() {
        let r = set(&["*"]).exclude(set(&["x"])).union(set(&["x"]));
        assert_eq!(ids(&r), vec!["*", "x"]);
    }
}
