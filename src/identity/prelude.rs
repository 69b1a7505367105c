//! The prelude: the part of the schema that organizations, memberships and delegated
//! administration write into (`schema-examples/org-hierarchy.yaml` documents it). Once
//! organizations exist, a schema that drops or breaks it is refused: first by shape (every
//! required definition and relation with its subject types), then by behaviour, evaluating a
//! small org tree in memory against the candidate schema (admins inherit down the tree and
//! never up, scope follows `parent`, members are members).

use std::sync::Arc;

use crate::eval::{self, EvalConfig, EvalContext};
use crate::model::{ObjectRef, Relationship, SubjectRef, Timestamp};
use crate::schema::{AllowedKind, Schema};
use crate::store::Datastore;
use crate::store::memory::MemoryDatastore;

use super::scope::{ORGANIZATION_TYPE, SCOPE_PERMISSION};

/// A relation the prelude requires: definition, relation, subject types it must allow
/// (`user`, `team#member`), and whether it is a permission (no subject types then).
struct Required {
    definition: &'static str,
    relation: &'static str,
    allows: &'static [&'static str],
    permission: bool,
}

const fn relation(
    definition: &'static str,
    relation: &'static str,
    allows: &'static [&'static str],
) -> Required {
    Required {
        definition,
        relation,
        allows,
        permission: false,
    }
}

const fn permission(definition: &'static str, relation: &'static str) -> Required {
    Required {
        definition,
        relation,
        allows: &[],
        permission: true,
    }
}

/// What the prelude requires of a schema, by shape.
const REQUIRED: &[Required] = &[
    relation("platform", "staff", &["user"]),
    relation("organization", "platform", &["platform"]),
    relation("organization", "parent", &["organization"]),
    relation("organization", "admin", &["user"]),
    relation("organization", "member", &["user"]),
    permission("organization", "administer"),
    permission("organization", "membership"),
];

/// Definitions the prelude requires.
const REQUIRED_DEFINITIONS: &[&str] = &["user", "platform", "organization"];

/// The behaviour the candidate schema must show on a small tree: `root` with admin `ra` and
/// member `rm`, `child` below it with admin `ca`, a `sibling` below root, platform staff `st`.
const FIXTURE: &[&str] = &[
    "organization:root#platform@platform:p",
    "platform:p#staff@user:st",
    "organization:root#admin@user:ra",
    "organization:root#member@user:rm",
    "organization:child#parent@organization:root",
    "organization:child#admin@user:ca",
    "organization:sibling#parent@organization:root",
];

/// (resource, permission, subject, expected).
const EXPECTATIONS: &[(&str, &str, &str, bool)] = &[
    ("organization:child", "administer", "user:ra", true),
    ("organization:child", "administer", "user:st", true),
    ("organization:child", "administer", "user:ca", true),
    ("organization:root", "administer", "user:ca", false),
    ("organization:sibling", "administer", "user:ca", false),
    ("organization:root", "membership", "user:rm", true),
    (
        "organization:child",
        "administer",
        "organization:root#administer",
        true,
    ),
    (
        "organization:root",
        "administer",
        "organization:child#administer",
        false,
    ),
    (
        "organization:sibling",
        "administer",
        "organization:child#administer",
        false,
    ),
];

/// Every way `schema` drops or breaks the prelude, as messages naming what is missing or
/// wrong; empty when it keeps the prelude.
pub async fn violations(schema: &Arc<Schema>) -> Vec<String> {
    let mut problems = Vec::new();
    for name in REQUIRED_DEFINITIONS {
        if schema.definition(name).is_none() {
            problems.push(format!("definition `{name}` is missing"));
        }
    }
    for req in REQUIRED {
        let Some(def) = schema.relation(req.definition, req.relation) else {
            if schema.definition(req.definition).is_some() {
                let kind = if req.permission {
                    "permission"
                } else {
                    "relation"
                };
                problems.push(format!(
                    "{kind} `{}#{}` is missing",
                    req.definition, req.relation
                ));
            }
            continue;
        };
        if req.permission != def.is_permission() {
            let want = if req.permission {
                "a permission"
            } else {
                "a relation"
            };
            problems.push(format!(
                "`{}#{}` must be {want}",
                req.definition, req.relation
            ));
            continue;
        }
        for allowed in req.allows {
            let present = def.allowed().iter().any(|a| {
                a.caveat.is_none()
                    && match allowed.split_once('#') {
                        Some((t, r)) => {
                            a.subject_type == t && a.kind == AllowedKind::Relation(r.to_string())
                        }
                        None => a.subject_type == *allowed && a.kind == AllowedKind::Object,
                    }
            });
            if !present {
                problems.push(format!(
                    "relation `{}#{}` must allow subjects of type `{allowed}` (without a caveat)",
                    req.definition, req.relation
                ));
            }
        }
    }
    if problems.is_empty() {
        problems.extend(behaviour(schema).await);
    }
    problems
}

/// Evaluates the fixture tree against `schema` and reports every expectation it misses.
async fn behaviour(schema: &Arc<Schema>) -> Vec<String> {
    let store = MemoryDatastore::new();
    let mut rels = Vec::new();
    for text in FIXTURE {
        match Relationship::parse(text) {
            Ok(rel) => rels.push(rel),
            Err(e) => return vec![format!("prelude fixture `{text}`: {e}")],
        }
    }
    let written = store.write(&mut |txn| {
        txn.write_schema(Arc::clone(schema))?;
        for rel in &rels {
            txn.touch(rel.clone())?;
        }
        Ok(())
    });
    let revision = match written {
        Ok(r) => r,
        Err(e) => {
            return vec![format!(
                "the prelude's relationships cannot be written: {e}"
            )];
        }
    };
    let ctx = match store.snapshot(revision).and_then(|snapshot| {
        EvalContext::new(
            snapshot,
            eval::build_dispatch_chain(eval::DispatchConfig {
                cache_enabled: false,
                ..eval::DispatchConfig::default()
            })
            .head,
            EvalConfig::default(),
            Timestamp::now(),
        )
        .map_err(|e| crate::store::StoreError::Internal(e.to_string()))
    }) {
        Ok(ctx) => ctx,
        Err(e) => return vec![format!("the prelude cannot be evaluated: {e}")],
    };
    let mut problems = Vec::new();
    for (resource, permission, subject, expected) in EXPECTATIONS {
        let parsed = parse_pair(resource, subject);
        let Some((resource_ref, subject_ref)) = parsed else {
            problems.push(format!(
                "prelude expectation `{resource}#{permission}@{subject}` is malformed"
            ));
            continue;
        };
        let got = eval::check(&ctx, &resource_ref, permission, &subject_ref)
            .await
            .map(|r| r.permissionship.is_has());
        match got {
            Ok(g) if g == *expected => {}
            Ok(g) => problems.push(format!(
                "`{resource}#{permission}@{subject}` must be {expected} in the prelude, but this schema makes it {g}{}",
                if *permission == SCOPE_PERMISSION && resource.starts_with(ORGANIZATION_TYPE) {
                    " (administration must flow down `parent`, never up or sideways)"
                } else {
                    ""
                }
            )),
            Err(e) => problems.push(format!("`{resource}#{permission}@{subject}` cannot be evaluated: {e}")),
        }
    }
    problems
}

fn parse_pair(resource: &str, subject: &str) -> Option<(ObjectRef, SubjectRef)> {
    let (rt, rid) = resource.split_once(':')?;
    let (st, rest) = subject.split_once(':')?;
    let (sid, srel) = match rest.split_once('#') {
        Some((id, rel)) => (id, Some(rel)),
        None => (rest, None),
    };
    Some((
        ObjectRef::new(rt, rid).ok()?,
        SubjectRef::new(st, sid, srel).ok()?,
    ))
}
