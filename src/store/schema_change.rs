//! Schema writes that would orphan existing relationships, refused before they commit: a
//! definition, relation or caveat removed while relationships use it, a subject type no
//! longer allowed while relationships use it, a caveat parameter's type changed or a
//! parameter removed while relationships use the caveat.

use std::collections::BTreeSet;

use crate::model::{Relationship, RelationshipFilter};
use crate::schema::{AllowedKind, AllowedSubject, Schema};

use super::{StoreError, Transaction};

fn refuse(what: String, example: &Relationship) -> StoreError {
    StoreError::SchemaChangeRefused(format!(
        "{what}, but relationship `{example}` still uses it; delete such relationships first"
    ))
}

fn filter(resource_type: &str, relation: Option<&str>) -> RelationshipFilter {
    RelationshipFilter {
        resource_type: Some(resource_type.to_string()),
        relation: relation.map(str::to_string),
        ..RelationshipFilter::default()
    }
}

/// The allowed-subject entry a relationship matches (type, shape, caveat, expiration).
fn shape_of(rel: &Relationship) -> AllowedSubject {
    let subject = rel.subject();
    AllowedSubject {
        subject_type: subject.object_type().to_string(),
        kind: if subject.is_wildcard() {
            AllowedKind::Wildcard
        } else {
            match subject.relation() {
                Some(r) => AllowedKind::Relation(r.to_string()),
                None => AllowedKind::Object,
            }
        },
        caveat: rel.caveat().map(|c| c.name().to_string()),
        expiration: rel.expiration().is_some(),
    }
}

/// Refuses (with `StoreError::SchemaChangeRefused`, naming an example relationship) a change
/// from `old` to `new` that would leave relationships stored in `txn` without a place in the
/// schema. With no `old` schema, every stored relationship must fit `new`.
pub fn check_schema_change(
    txn: &dyn Transaction,
    old: Option<&Schema>,
    new: &Schema,
) -> Result<(), StoreError> {
    let Some(old) = old else {
        return check_everything_fits(txn, new);
    };
    check_definitions_and_relations(txn, old, new)?;
    check_caveats(txn, old, new)
}

fn check_everything_fits(txn: &dyn Transaction, new: &Schema) -> Result<(), StoreError> {
    for rel in txn.read(&RelationshipFilter::default())? {
        if let Err(e) = new.validate_relationship(&rel) {
            return Err(StoreError::SchemaChangeRefused(format!(
                "relationship `{rel}` does not fit the new schema: {e}"
            )));
        }
    }
    Ok(())
}

fn check_definitions_and_relations(
    txn: &dyn Transaction,
    old: &Schema,
    new: &Schema,
) -> Result<(), StoreError> {
    for old_def in old.definitions() {
        let name = old_def.name();
        let Some(new_def) = new.definition(name) else {
            if let Some(rel) = txn.read(&filter(name, None))?.first() {
                return Err(refuse(format!("definition `{name}` is removed"), rel));
            }
            continue;
        };
        for old_rel in old_def.relations().filter(|r| !r.is_permission()) {
            let relation = old_rel.name();
            let used = || txn.read(&filter(name, Some(relation)));
            match new_def.relation(relation) {
                None => {
                    if let Some(rel) = used()?.first() {
                        return Err(refuse(
                            format!("relation `{name}#{relation}` is removed"),
                            rel,
                        ));
                    }
                }
                Some(new_rel) if new_rel.is_permission() => {
                    if let Some(rel) = used()?.first() {
                        return Err(refuse(
                            format!("relation `{name}#{relation}` becomes a permission"),
                            rel,
                        ));
                    }
                }
                Some(new_rel) => {
                    let removed: Vec<&AllowedSubject> = old_rel
                        .allowed()
                        .iter()
                        .filter(|a| !new_rel.allowed().contains(a))
                        .collect();
                    if removed.is_empty() {
                        continue;
                    }
                    for rel in used()? {
                        let shape = shape_of(&rel);
                        if removed.contains(&&shape) {
                            return Err(refuse(
                                format!(
                                    "subject type `{shape}` is no longer allowed on `{name}#{relation}`"
                                ),
                                &rel,
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// The relations of `schema` (by resource type) whose allowed subjects name `caveat`.
fn relations_using_caveat<'a>(schema: &'a Schema, caveat: &str) -> BTreeSet<(&'a str, &'a str)> {
    let mut out = BTreeSet::new();
    for def in schema.definitions() {
        for rel in def.relations() {
            if rel
                .allowed()
                .iter()
                .any(|a| a.caveat.as_deref() == Some(caveat))
            {
                out.insert((def.name(), rel.name()));
            }
        }
    }
    out
}

/// The first stored relationship with caveat `caveat` that `keep` selects.
fn find_caveated(
    txn: &dyn Transaction,
    old: &Schema,
    caveat: &str,
    keep: impl Fn(&Relationship) -> bool,
) -> Result<Option<Relationship>, StoreError> {
    for (resource_type, relation) in relations_using_caveat(old, caveat) {
        for rel in txn.read(&filter(resource_type, Some(relation)))? {
            if rel.caveat().is_some_and(|c| c.name() == caveat) && keep(&rel) {
                return Ok(Some(rel));
            }
        }
    }
    Ok(None)
}

fn check_caveats(txn: &dyn Transaction, old: &Schema, new: &Schema) -> Result<(), StoreError> {
    for old_caveat in old.caveats() {
        let name = old_caveat.name();
        let Some(new_caveat) = new.caveat(name) else {
            if let Some(rel) = find_caveated(txn, old, name, |_| true)? {
                return Err(refuse(format!("caveat `{name}` is removed"), &rel));
            }
            continue;
        };
        for (parameter, old_type) in old_caveat.parameters() {
            match new_caveat.parameter(parameter) {
                Some(new_type) if new_type == old_type => {}
                Some(new_type) => {
                    if let Some(rel) = find_caveated(txn, old, name, |_| true)? {
                        return Err(refuse(
                            format!(
                                "parameter `{parameter}` of caveat `{name}` changes type from `{old_type}` to `{new_type}`"
                            ),
                            &rel,
                        ));
                    }
                }
                None => {
                    let binds = |rel: &Relationship| {
                        rel.caveat()
                            .is_some_and(|c| c.context().contains_key(parameter))
                    };
                    if let Some(rel) = find_caveated(txn, old, name, binds)? {
                        return Err(refuse(
                            format!("parameter `{parameter}` of caveat `{name}` is removed"),
                            &rel,
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}
