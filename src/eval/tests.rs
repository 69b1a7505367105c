//! Unit tests of the evaluator on small schemas: rewrites, wildcards, depth, expiration.

use std::sync::Arc;

use crate::model::{ObjectRef, Relationship, SubjectRef, Timestamp};
use crate::schema;
use crate::store::Datastore;
use crate::store::memory::MemoryDatastore;

use super::*;

fn store(schema_text: &str, rels: &[&str]) -> MemoryDatastore {
    let schema = Arc::new(schema::compile(schema_text).unwrap());
    let ds = MemoryDatastore::new();
    ds.write(&mut |txn| {
        txn.write_schema(Arc::clone(&schema))?;
        for r in rels {
            txn.create(Relationship::parse(r).unwrap())?;
        }
        Ok(())
    })
    .unwrap();
    ds
}

fn ctx_at(ds: &MemoryDatastore, max_depth: u32, now: Timestamp) -> EvalContext {
    let snap = ds.snapshot(ds.head_revision().unwrap()).unwrap();
    EvalContext::new(snap, dispatch_chain(), EvalConfig { max_depth }, now).unwrap()
}

fn ctx(ds: &MemoryDatastore) -> EvalContext {
    ctx_at(ds, DEFAULT_MAX_DEPTH, Timestamp::now())
}

fn obj(s: &str) -> ObjectRef {
    let (t, id) = s.split_once(':').unwrap();
    ObjectRef::new(t, id).unwrap()
}

fn subj(s: &str) -> SubjectRef {
    let (t, rest) = s.split_once(':').unwrap();
    match rest.split_once('#') {
        Some((id, rel)) => SubjectRef::new(t, id, Some(rel)).unwrap(),
        None => SubjectRef::new(t, rest, None).unwrap(),
    }
}

async fn has(ctx: &EvalContext, resource: &str, perm: &str, subject: &str) -> Permissionship {
    check(ctx, &obj(resource), perm, &subj(subject))
        .await
        .unwrap()
        .permissionship
}

const DOCS: &str = r#"
definition user {}
definition team {
    relation member: user | team#member
}
definition folder {
    relation parent: folder
    relation viewer: user | team#member
    permission view = viewer + parent->view
}
definition document {
    relation folder: folder
    relation viewer: user | user:* | team#member
    relation editor: user
    relation banned: user | user:*
    permission edit = editor
    permission view = (viewer + edit + folder->view) - banned
    permission both = viewer & editor
    permission all_parents = folder.all(view)
    permission nothing = nil
}
"#;

#[tokio::test]
async fn union_intersection_exclusion_arrows() {
    let ds = store(
        DOCS,
        &[
            "team:eng#member@user:alice",
            "team:all#member@team:eng#member",
            "folder:root#viewer@team:all#member",
            "folder:sub#parent@folder:root",
            "document:d#folder@folder:sub",
            "document:d#editor@user:bob",
            "document:d#viewer@user:bob",
            "document:d#banned@user:carol",
            "document:d#viewer@user:carol",
            "document:pub#viewer@user:*",
            "document:pub#banned@user:dave",
        ],
    );
    let c = ctx(&ds);
    assert_eq!(
        has(&c, "document:d", "view", "user:alice").await,
        Permissionship::Has
    );
    assert_eq!(
        has(&c, "document:d", "view", "user:bob").await,
        Permissionship::Has
    );
    assert_eq!(
        has(&c, "document:d", "view", "user:carol").await,
        Permissionship::HasNot
    );
    assert_eq!(
        has(&c, "document:d", "both", "user:bob").await,
        Permissionship::Has
    );
    assert_eq!(
        has(&c, "document:d", "both", "user:alice").await,
        Permissionship::HasNot
    );
    assert_eq!(
        has(&c, "document:d", "nothing", "user:bob").await,
        Permissionship::HasNot
    );
    assert_eq!(
        has(&c, "document:d", "all_parents", "user:alice").await,
        Permissionship::Has
    );
    assert_eq!(
        has(&c, "document:pub", "view", "user:anyone").await,
        Permissionship::Has
    );
    assert_eq!(
        has(&c, "document:pub", "view", "user:dave").await,
        Permissionship::HasNot
    );
    assert_eq!(
        has(&c, "team:all", "member", "team:eng#member").await,
        Permissionship::Has
    );

    let lr = lookup_resources(&c, "document", "view", &subj("user:alice"))
        .await
        .unwrap();
    assert_eq!(
        lr.iter()
            .map(|r| r.resource_id.as_str())
            .collect::<Vec<_>>(),
        vec!["d", "pub"]
    );
    let ls = lookup_subjects(&c, &obj("document:d"), "view", "user", None)
        .await
        .unwrap();
    assert_eq!(
        ls.iter().map(|s| s.subject_id.as_str()).collect::<Vec<_>>(),
        vec!["alice", "bob"]
    );
    let ls = lookup_subjects(&c, &obj("document:pub"), "view", "user", None)
        .await
        .unwrap();
    assert_eq!(ls.len(), 1);
    assert_eq!(ls[0].subject_id, "*");
    assert_eq!(ls[0].excluded[0].subject_id, "dave");
}

#[tokio::test]
async fn cycles_in_data_end_with_depth_error_not_overflow() {
    let ds = store(
        DOCS,
        &[
            "team:a#member@team:b#member",
            "team:b#member@team:a#member",
            "team:a#member@user:x",
        ],
    );
    let c = ctx_at(&ds, 20, Timestamp::now());
    assert_eq!(
        has(&c, "team:b", "member", "user:x").await,
        Permissionship::Has
    );
    let err = check(&c, &obj("team:b"), "member", &subj("user:nobody"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EvalError::DepthExceeded { max_depth: 20 }),
        "{err}"
    );
    let deep = ctx_at(&ds, 100_000, Timestamp::now());
    let err = check(&deep, &obj("team:b"), "member", &subj("user:nobody"))
        .await
        .unwrap_err();
    assert!(matches!(err, EvalError::DepthExceeded { .. }));
}

#[tokio::test]
async fn expired_relationships_are_invisible_after_expiration() {
    let ds = store(
        "use expiration\ndefinition user {}\ndefinition doc { relation viewer: user with expiration\n permission view = viewer\n}",
        &["doc:d#viewer@user:tom[expiration:2030-01-01T00:00:00Z]"],
    );
    let before = ctx_at(
        &ds,
        50,
        Timestamp::parse_rfc3339("2029-12-31T23:59:59Z").unwrap(),
    );
    let after = ctx_at(
        &ds,
        50,
        Timestamp::parse_rfc3339("2030-01-01T00:00:00Z").unwrap(),
    );
    let r = check(&before, &obj("doc:d"), "view", &subj("user:tom"))
        .await
        .unwrap();
    assert_eq!(r.permissionship, Permissionship::Has);
    assert_eq!(
        r.expires_at,
        Some(Timestamp::parse_rfc3339("2030-01-01T00:00:00Z").unwrap())
    );
    assert_eq!(
        has(&after, "doc:d", "view", "user:tom").await,
        Permissionship::HasNot
    );
}

#[tokio::test]
async fn caveated_relationship_is_conditional() {
    let ds = store(
        "caveat cav(x int) { x == 1 }\ndefinition user {}\ndefinition doc { relation viewer: user with cav | user\n relation banned: user with cav\n permission view = viewer - banned\n}",
        &[
            "doc:d#viewer@user:tom[cav]",
            "doc:d#viewer@user:ann",
            "doc:d#banned@user:ann[cav]",
        ],
    );
    let c = ctx(&ds);
    assert!(matches!(
        has(&c, "doc:d", "view", "user:tom").await,
        Permissionship::Conditional(_)
    ));
    match has(&c, "doc:d", "view", "user:ann").await {
        Permissionship::Conditional(CaveatExpr::Not(_)) => {}
        other => panic!("expected NOT c, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_relation_and_type_are_errors() {
    let ds = store(DOCS, &[]);
    let c = ctx(&ds);
    assert!(matches!(
        check(&c, &obj("document:d"), "nope", &subj("user:a")).await,
        Err(EvalError::UnknownRelation { .. })
    ));
    assert!(matches!(
        check(&c, &obj("widget:d"), "view", &subj("user:a")).await,
        Err(EvalError::UnknownType(_))
    ));
}

#[tokio::test]
async fn shallow_expand_keeps_usersets_as_leaves() {
    let ds = store(
        DOCS,
        &["folder:f#viewer@team:eng#member", "team:eng#member@user:a"],
    );
    let c = ctx(&ds);
    let tree = expand(&c, &obj("folder:f"), "viewer", ExpandMode::Shallow)
        .await
        .unwrap();
    match tree.node {
        ExpandNode::Leaf(subjects) => {
            assert_eq!(subjects.len(), 1);
            assert_eq!(subjects[0].subject.to_string(), "team:eng#member");
        }
        other => panic!("expected a leaf, got {other:?}"),
    }
    let tree = expand(&c, &obj("folder:f"), "viewer", ExpandMode::Recursive)
        .await
        .unwrap();
    assert!(matches!(tree.node, ExpandNode::Union(ref c) if c.len() == 2));
}
