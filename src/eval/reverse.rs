//! Reverse reachability for `lookup_resources`: from a subject, walk the relationships backwards
//! along every schema edge (userset, computed, arrow) to the resources of the wanted type that
//! might have the permission. It over-approximates (intersections and exclusions are treated as
//! unions); the caller confirms each candidate with a check.

use std::collections::{BTreeSet, HashSet, VecDeque};

use crate::model::{ObjectRef, SubjectFilter, SubjectRef, WILDCARD};
use crate::schema::{AllowedKind, RelationKind, Rewrite, Schema};

use super::context::EvalContext;
use super::error::EvalError;
use super::local::read_live_by_subject;

/// A node of the walk: `object#relation` might contain the subject (`None`: the subject itself).
type Node = (ObjectRef, Option<String>);

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

/// The nodes that directly depend on `node`.
fn successors(ctx: &EvalContext, schema: &Schema, node: &Node) -> Result<Vec<Node>, EvalError> {
    let (object, relation) = node;
    let mut out = Vec::new();
    for def in schema.definitions() {
        for rdef in def.relations() {
            match rdef.kind() {
                RelationKind::Relation(allowed) => {
                    let accepts = allowed.iter().any(|a| {
                        a.subject_type == object.object_type()
                            && match (&a.kind, relation) {
                                (AllowedKind::Relation(r), Some(want)) => r == want,
                                (AllowedKind::Object | AllowedKind::Wildcard, None) => true,
                                _ => false,
                            }
                    });
                    if !accepts {
                        continue;
                    }
                    let mut filters = vec![SubjectFilter {
                        subject_type: object.object_type().to_string(),
                        subject_id: Some(object.object_id().to_string()),
                        relation: Some(relation.clone()),
                    }];
                    if relation.is_none() {
                        filters.push(SubjectFilter {
                            subject_type: object.object_type().to_string(),
                            subject_id: Some(WILDCARD.to_string()),
                            relation: Some(None),
                        });
                    }
                    for filter in &filters {
                        for rel in read_live_by_subject(ctx, def.name(), rdef.name(), filter)? {
                            out.push((rel.resource().clone(), Some(rdef.name().to_string())));
                        }
                    }
                }
                RelationKind::Permission(rewrite) => {
                    let Some(relation) = relation else { continue };
                    if def.name() == object.object_type() && references_computed(rewrite, relation)
                    {
                        out.push((object.clone(), Some(rdef.name().to_string())));
                    }
                    let mut found = Vec::new();
                    arrows(rewrite, &mut found);
                    for (tupleset, computed) in found {
                        if computed != relation {
                            continue;
                        }
                        let allows = def.relation(tupleset).is_some_and(|t| {
                            t.allowed()
                                .iter()
                                .any(|a| a.subject_type == object.object_type())
                        });
                        if !allows {
                            continue;
                        }
                        let filter = SubjectFilter {
                            subject_type: object.object_type().to_string(),
                            subject_id: Some(object.object_id().to_string()),
                            relation: None,
                        };
                        for rel in read_live_by_subject(ctx, def.name(), tupleset, &filter)? {
                            out.push((rel.resource().clone(), Some(rdef.name().to_string())));
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Resources of `resource_type` that might have `relation` for `subject`, ordered by id.
pub(super) fn candidates(
    ctx: &EvalContext,
    resource_type: &str,
    relation: &str,
    subject: &SubjectRef,
) -> Result<Vec<ObjectRef>, EvalError> {
    let schema = ctx.schema();
    let start: Node = (
        subject.object().clone(),
        subject.relation().map(str::to_string),
    );
    let mut seen: HashSet<Node> = HashSet::new();
    let mut queue = VecDeque::new();
    let mut found = BTreeSet::new();
    seen.insert(start.clone());
    queue.push_back(start);
    while let Some(node) = queue.pop_front() {
        ctx.check_deadline()?;
        if node.0.object_type() == resource_type && node.1.as_deref() == Some(relation) {
            found.insert(node.0.clone());
        }
        for next in successors(ctx, schema, &node)? {
            if seen.insert(next.clone()) {
                queue.push_back(next);
            }
        }
    }
    Ok(found.into_iter().collect())
}
