//! Unit tests of the evaluator on small schemas: rewrites, wildcards, depth, expiration with a
//! controllable clock, and caveats evaluated at the top-level calls.

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

// ---- caveats and expiration -----------------------------------------------------------------

const CAVEATED: &str = r#"
use expiration

caveat has_level(level int, required int) { level >= required }
caveat on_network(ip ipaddress, cidr string) { ip.in_cidr(cidr) }

definition user {}

definition team {
    relation member: user | user with expiration | user with has_level
}

definition folder {
    relation viewer: user | team#member | user with on_network | user with expiration
    permission view = viewer
}

definition document {
    relation folder: folder | folder with on_network | folder with expiration
    relation viewer: user | user:* | team#member | user with has_level | user with expiration | team#member with expiration
    relation editor: user | user with has_level
    relation banned: user | user with on_network | user with expiration
    permission view = viewer + folder->view
    permission edit_and_view = editor & view
    permission view_unbanned = view - banned
}
"#;

fn at(t: &str) -> Timestamp {
    Timestamp::parse_rfc3339(t).unwrap()
}

fn with_context(c: &EvalContext, json: &str) -> EvalContext {
    c.clone()
        .with_caveat_context(crate::model::ContextValue::parse_object(json).unwrap())
}

async fn answer(c: &EvalContext, resource: &str, perm: &str, subject: &str) -> CheckResult {
    check(c, &obj(resource), perm, &subj(subject))
        .await
        .unwrap()
}

fn is_conditional(p: &Permissionship) -> bool {
    matches!(p, Permissionship::Conditional(_))
}

#[tokio::test]
async fn expiring_grants_hold_until_their_expiration_directly_through_a_team_and_an_arrow() {
    let ds = store(
        CAVEATED,
        &[
            "document:d#viewer@user:direct[expiration:2030-01-01T00:00:00Z]",
            "document:d#viewer@team:t#member",
            "team:t#member@user:member[expiration:2030-02-01T00:00:00Z]",
            "document:d#folder@folder:f[expiration:2030-03-01T00:00:00Z]",
            "folder:f#viewer@user:arrowed",
            // Two expiring hops: the answer lasts until the earlier.
            "document:d#viewer@team:t2#member[expiration:2030-06-01T00:00:00Z]",
            "team:t2#member@user:nested[expiration:2030-05-01T00:00:00Z]",
            // A ban that ends: no until then, yes after.
            "document:d#viewer@user:banned",
            "document:d#banned@user:banned[expiration:2030-01-15T00:00:00Z]",
        ],
    );
    let cases = [
        ("user:direct", "2030-01-01T00:00:00Z"),
        ("user:member", "2030-02-01T00:00:00Z"),
        ("user:arrowed", "2030-03-01T00:00:00Z"),
        ("user:nested", "2030-05-01T00:00:00Z"),
    ];
    for (user, expiry) in cases {
        let before = ctx_at(&ds, 50, at("2029-12-31T00:00:00Z"));
        let r = answer(&before, "document:d", "view", user).await;
        assert_eq!(r.permissionship, Permissionship::Has, "{user} before");
        assert_eq!(r.expires_at, Some(at(expiry)), "{user}");
        let just_before = Timestamp::from_micros(at(expiry).as_micros() - 1);
        let r = answer(&ctx_at(&ds, 50, just_before), "document:d", "view", user).await;
        assert_eq!(r.permissionship, Permissionship::Has, "{user} just before");
        // At the expiration instant the relationship is gone (SpiceDB: expired at or after).
        let after = ctx_at(&ds, 50, at(expiry));
        let r = answer(&after, "document:d", "view", user).await;
        assert_eq!(
            r.permissionship,
            Permissionship::HasNot,
            "{user} at {expiry}"
        );
        let id = user.trim_start_matches("user:");
        let listed = lookup_subjects(&after, &obj("document:d"), "view", "user", None)
            .await
            .unwrap();
        assert!(!listed.iter().any(|s| s.subject_id == id), "{user}");
        let listed = lookup_resources(&before, "document", "view", &subj(user))
            .await
            .unwrap();
        assert_eq!(listed.len(), 1, "{user}");
    }
    let before = ctx_at(&ds, 50, at("2030-01-10T00:00:00Z"));
    let r = answer(&before, "document:d", "view_unbanned", "user:banned").await;
    assert_eq!(r.permissionship, Permissionship::HasNot);
    assert_eq!(r.expires_at, Some(at("2030-01-15T00:00:00Z")));
    let after = ctx_at(&ds, 50, at("2030-01-15T00:00:00Z"));
    let r = answer(&after, "document:d", "view_unbanned", "user:banned").await;
    assert_eq!(r.permissionship, Permissionship::Has);
    assert_eq!(r.expires_at, None);
}

#[tokio::test]
async fn caveats_evaluate_through_union_intersection_exclusion_and_arrows() {
    let ds = store(
        CAVEATED,
        &[
            // Union: a caveated direct grant, and a caveated grant through the folder.
            r#"document:d#viewer@user:u1[has_level:{"required": 3}]"#,
            "document:d#folder@folder:f",
            r#"folder:f#viewer@user:u1[on_network:{"cidr": "10.0.0.0/8"}]"#,
            // Intersection: caveated editor and plain viewer.
            r#"document:d#editor@user:u2[has_level:{"required": 3}]"#,
            "document:d#viewer@user:u2",
            // Exclusion: plain viewer, caveated ban.
            "document:d#viewer@user:u3",
            r#"document:d#banned@user:u3[on_network:{"cidr": "10.0.0.0/8"}]"#,
            // Arrow through a caveated tupleset relationship.
            r#"document:d2#folder@folder:f2[on_network:{"cidr": "192.168.0.0/16"}]"#,
            "folder:f2#viewer@user:u4",
        ],
    );
    let c = ctx(&ds);
    /// (resource, permission, subject, request context, the missing context when conditional)
    type Case<'a> = (&'a str, &'a str, &'a str, &'a str, Option<&'a [&'a str]>);
    let cases: &[Case] = &[
        (
            "document:d",
            "view",
            "user:u1",
            "{}",
            Some(&["ip", "level"]),
        ),
        ("document:d", "view", "user:u1", r#"{"level": 5}"#, None),
        (
            "document:d",
            "view",
            "user:u1",
            r#"{"level": 1}"#,
            Some(&["ip"]),
        ),
        (
            "document:d",
            "view",
            "user:u1",
            r#"{"level": 1, "ip": "1.2.3.4"}"#,
            None,
        ),
        (
            "document:d",
            "view",
            "user:u1",
            r#"{"level": 1, "ip": "10.1.1.1"}"#,
            None,
        ),
        (
            "document:d",
            "edit_and_view",
            "user:u2",
            "{}",
            Some(&["level"]),
        ),
        (
            "document:d",
            "edit_and_view",
            "user:u2",
            r#"{"level": 3}"#,
            None,
        ),
        (
            "document:d",
            "edit_and_view",
            "user:u2",
            r#"{"level": 2}"#,
            None,
        ),
        (
            "document:d",
            "view_unbanned",
            "user:u3",
            "{}",
            Some(&["ip"]),
        ),
        (
            "document:d",
            "view_unbanned",
            "user:u3",
            r#"{"ip": "10.0.0.5"}"#,
            None,
        ),
        (
            "document:d",
            "view_unbanned",
            "user:u3",
            r#"{"ip": "1.1.1.1"}"#,
            None,
        ),
        ("document:d2", "view", "user:u4", "{}", Some(&["ip"])),
        (
            "document:d2",
            "view",
            "user:u4",
            r#"{"ip": "192.168.1.1"}"#,
            None,
        ),
        (
            "document:d2",
            "view",
            "user:u4",
            r#"{"ip": "10.0.0.1"}"#,
            None,
        ),
    ];
    let expected_has = [
        false, true, false, false, true, false, true, false, false, false, true, false, true, false,
    ];
    for ((resource, perm, user, json, missing), has) in cases.iter().zip(expected_has) {
        let rc = with_context(&c, json);
        let p = answer(&rc, resource, perm, user).await.permissionship;
        let what = format!("{resource}#{perm}@{user} with {json}: {p:?}");
        match missing {
            Some(names) => {
                let Permissionship::Conditional(expr) = &p else {
                    panic!("{what}: expected conditional");
                };
                assert_eq!(missing_context(&rc, expr), *names, "{what}");
            }
            None => assert_eq!(p.is_has(), has, "{what}"),
        }
        assert!(!(missing.is_some() && has), "{what}");
        // lookup_resources agrees: Has, Conditional, or not listed.
        let (t, id) = resource.split_once(':').unwrap();
        let found = lookup_resources(&rc, t, perm, &subj(user)).await.unwrap();
        let listed = found.iter().find(|r| r.resource_id == id);
        match (&p, listed) {
            (Permissionship::HasNot, None) => {}
            (Permissionship::Has, Some(r)) => assert!(r.permissionship.is_has(), "{what}"),
            (Permissionship::Conditional(_), Some(r)) => {
                assert!(is_conditional(&r.permissionship), "{what}")
            }
            (_, other) => panic!("{what}: lookup_resources listed {other:?}"),
        }
        // lookup_subjects agrees: unconditional, with a caveat, or absent.
        let found = lookup_subjects(&rc, &obj(resource), perm, "user", None)
            .await
            .unwrap();
        let uid = user.trim_start_matches("user:");
        let listed = found.iter().find(|s| s.subject_id == uid);
        match (&p, listed) {
            (Permissionship::HasNot, None) => {}
            (Permissionship::Has, Some(s)) => assert_eq!(s.caveat, None, "{what}"),
            (Permissionship::Conditional(_), Some(s)) => assert!(s.caveat.is_some(), "{what}"),
            (_, other) => panic!("{what}: lookup_subjects listed {other:?}"),
        }
    }
}

#[tokio::test]
async fn lookup_subjects_evaluates_exclusions_of_a_wildcard() {
    let ds = store(
        CAVEATED,
        &[
            "document:pub#viewer@user:*",
            r#"document:pub#banned@user:u5[on_network:{"cidr": "10.0.0.0/8"}]"#,
            "document:pub#banned@user:u6",
        ],
    );
    let c = ctx(&ds);
    let excluded = |found: &[FoundSubject]| -> Vec<(String, bool)> {
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].subject_id, "*");
        found[0]
            .excluded
            .iter()
            .map(|e| (e.subject_id.clone(), e.caveat.is_some()))
            .collect()
    };
    for (json, want) in [
        ("{}", vec![("u5", true), ("u6", false)]),
        (r#"{"ip": "10.9.9.9"}"#, vec![("u5", false), ("u6", false)]),
        (r#"{"ip": "11.0.0.1"}"#, vec![("u6", false)]),
    ] {
        let rc = with_context(&c, json);
        let found = lookup_subjects(&rc, &obj("document:pub"), "view_unbanned", "user", None)
            .await
            .unwrap();
        let want: Vec<(String, bool)> = want.into_iter().map(|(i, c)| (i.to_string(), c)).collect();
        assert_eq!(excluded(&found), want, "{json}");
        let u5 = answer(&rc, "document:pub", "view_unbanned", "user:u5").await;
        let via_lookup = want.iter().find(|(i, _)| i == "u5");
        match via_lookup {
            None => assert!(u5.permissionship.is_has(), "{json}"),
            Some((_, true)) => assert!(is_conditional(&u5.permissionship), "{json}"),
            Some((_, false)) => assert_eq!(u5.permissionship, Permissionship::HasNot, "{json}"),
        }
    }
}

#[tokio::test]
async fn a_caveat_that_fails_is_an_error_naming_caveat_and_relationship() {
    let ds = store(
        CAVEATED,
        &[r#"document:d#viewer@user:u1[has_level:{"required": 3}]"#],
    );
    let rc = with_context(&ctx(&ds), r#"{"level": "high"}"#);
    let err = check(&rc, &obj("document:d"), "view", &subj("user:u1"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "caveat `has_level` could not be evaluated: parameter `level` is declared `int`, but the request's context gives `\"high\"`: expected an integer, found `\"high\"` (relationship `document:d#viewer@user:u1`)"
    );
    // Unevaluated, the same question is conditional (expand keeps caveats in the tree).
    let tree = expand(&rc, &obj("document:d"), "viewer", ExpandMode::Shallow)
        .await
        .unwrap();
    match tree.node {
        ExpandNode::Leaf(subjects) => assert!(subjects[0].caveat.is_some()),
        other => panic!("expected a leaf, got {other:?}"),
    }
}

const DOCS_RELS: &[&str] = &[
    "team:eng#member@user:alice",
    "team:all#member@team:eng#member",
    "folder:root#viewer@team:all#member",
    "folder:sub#parent@folder:root",
    "folder:other#viewer@user:bob",
    "document:d#folder@folder:sub",
    "document:d#editor@user:bob",
    "document:d#viewer@user:bob",
    "document:d#banned@user:carol",
    "document:d#viewer@user:carol",
    "document:e#folder@folder:root",
    "document:f#folder@folder:other",
    "document:g#viewer@team:eng#member",
    "document:g#folder@folder:sub",
    "document:pub#viewer@user:*",
    "document:pub#banned@user:dave",
];

/// A context whose chain has no shared cache (bulk checks then memoize within the request).
fn uncached_ctx(ds: &MemoryDatastore) -> EvalContext {
    let snap = ds.snapshot(ds.head_revision().unwrap()).unwrap();
    let chain = build_dispatch_chain(DispatchConfig {
        cache_enabled: false,
        ..DispatchConfig::default()
    });
    EvalContext::new(snap, chain.head, EvalConfig::default(), Timestamp::now()).unwrap()
}

#[tokio::test]
async fn bulk_answers_are_the_single_checks_answers_in_request_order() {
    let ds = store(DOCS, DOCS_RELS);
    let items: Vec<(ObjectRef, &str, SubjectRef)> = [
        ("document:d", "view", "user:alice"),
        ("document:e", "view", "user:alice"),
        ("document:d", "view", "user:carol"),
        ("document:d", "view", "user:alice"),
        ("document:f", "view", "user:alice"),
        ("document:pub", "view", "user:dave"),
        ("document:d", "nope", "user:alice"),
        ("document:g", "view", "user:alice"),
        ("folder:sub", "view", "user:alice"),
        ("document:d", "both", "user:bob"),
        ("document:pub", "view", "user:zed"),
        ("team:all", "member", "team:eng#member"),
        ("document:e", "view", "user:alice"),
    ]
    .iter()
    .map(|(r, p, s)| (obj(r), *p, subj(s)))
    .collect();
    let bulk: Vec<BulkCheck<'_>> = items
        .iter()
        .map(|(resource, permission, subject)| BulkCheck {
            resource,
            permission,
            subject,
            context: None,
        })
        .collect();
    for c in [ctx(&ds), uncached_ctx(&ds)] {
        let answers = check_bulk(&c, &bulk).await;
        assert_eq!(answers.len(), items.len());
        for ((resource, permission, subject), answer) in items.iter().zip(&answers) {
            let single = check(&c, resource, permission, subject).await;
            assert_eq!(
                answer.as_ref().map(|r| &r.permissionship),
                single.as_ref().map(|r| &r.permissionship),
                "{resource}#{permission}@{subject}"
            );
        }
        assert!(matches!(answers[6], Err(EvalError::UnknownRelation { .. })));
        assert_eq!(
            answers[0].as_ref().unwrap().permissionship,
            Permissionship::Has
        );
        assert_eq!(
            answers[2].as_ref().unwrap().permissionship,
            Permissionship::HasNot
        );
    }
    assert!(check_bulk(&ctx(&ds), &[]).await.is_empty());
}

#[tokio::test]
async fn bulk_items_evaluate_caveats_with_their_own_context() {
    let ds = store(
        CAVEATED,
        &[r#"document:d#viewer@user:u1[has_level:{"required": 3}]"#],
    );
    let c = ctx(&ds);
    let (d, u1) = (obj("document:d"), subj("user:u1"));
    let high = crate::model::ContextValue::parse_object(r#"{"level": 5}"#).unwrap();
    let low = crate::model::ContextValue::parse_object(r#"{"level": 1}"#).unwrap();
    let item = |context| BulkCheck {
        resource: &d,
        permission: "viewer",
        subject: &u1,
        context,
    };
    let answers = check_bulk(&c, &[item(Some(&high)), item(Some(&low)), item(None)]).await;
    let got: Vec<_> = answers
        .into_iter()
        .map(|a| a.unwrap().permissionship)
        .collect();
    assert_eq!(got[0], Permissionship::Has);
    assert_eq!(got[1], Permissionship::HasNot);
    assert!(is_conditional(&got[2]));
}

/// Every result of a streamed lookup of `document#view`, in the order given.
async fn streamed(c: &EvalContext, subject: &str, order: LookupOrder<'_>) -> Vec<String> {
    streamed_of(c, "view", subject, order).await
}

/// Every result of a streamed lookup of `document#permission`, in the order given.
async fn streamed_of(
    c: &EvalContext,
    permission: &str,
    subject: &str,
    order: LookupOrder<'_>,
) -> Vec<String> {
    let mut out = Vec::new();
    lookup_resources_with(c, "document", permission, &subj(subject), order, |r| {
        out.push(r.resource_id);
        true
    })
    .await
    .unwrap();
    out
}

#[tokio::test]
async fn streamed_lookups_find_what_lookup_finds_and_resume_after_any_result() {
    let ds = store(DOCS, DOCS_RELS);
    for c in [ctx(&ds), uncached_ctx(&ds)] {
        for subject in [
            "user:alice",
            "user:bob",
            "user:carol",
            "user:dave",
            "team:eng#member",
        ] {
            let listed: Vec<String> = lookup_resources(&c, "document", "view", &subj(subject))
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.resource_id)
                .collect();
            let walked = streamed(&c, subject, LookupOrder::Walk { after: None }).await;
            let mut sorted = walked.clone();
            sorted.sort();
            assert_eq!(sorted, listed, "{subject}: walk order finds the same set");
            let by_id = streamed(&c, subject, LookupOrder::ById { after: None }).await;
            assert_eq!(by_id, listed, "{subject}: by id");
            for (k, last) in walked.iter().enumerate() {
                let rest = streamed(&c, subject, LookupOrder::Walk { after: Some(last) }).await;
                assert_eq!(rest, walked[k + 1..], "{subject}: resumed after {last}");
                let rest = streamed(&c, subject, LookupOrder::ById { after: Some(last) }).await;
                let above: Vec<String> = listed.iter().filter(|id| *id > last).cloned().collect();
                assert_eq!(rest, above, "{subject}: resumed by id after {last}");
            }
        }
    }
    // The caller stops the stream.
    let c = ctx(&ds);
    let mut taken = Vec::new();
    lookup_resources_with(
        &c,
        "document",
        "view",
        &subj("user:alice"),
        LookupOrder::Walk { after: None },
        |r| {
            taken.push(r.resource_id);
            taken.len() < 2
        },
    )
    .await
    .unwrap();
    assert_eq!(taken.len(), 2);
}

#[tokio::test]
async fn hints_change_the_order_of_evaluation_never_the_answer() {
    let ds = store(DOCS, DOCS_RELS);
    let c = ctx(&ds);
    let root = obj("folder:root");
    let sub = obj("folder:sub");
    let hints = [
        None,
        Some(EvalHint::Computed("viewer")),
        Some(EvalHint::Computed("edit")),
        Some(EvalHint::Computed("banned")),
        Some(EvalHint::Arrow {
            tupleset: "folder",
            computed: "view",
            target: &sub,
        }),
        Some(EvalHint::Arrow {
            tupleset: "folder",
            computed: "view",
            target: &root,
        }),
        Some(EvalHint::Arrow {
            tupleset: "parent",
            computed: "view",
            target: &root,
        }),
    ];
    for resource in [
        "document:d",
        "document:e",
        "document:g",
        "document:pub",
        "folder:sub",
    ] {
        for permission in ["view", "both", "all_parents"] {
            if resource.starts_with("folder") && permission != "view" {
                continue;
            }
            for subject in ["user:alice", "user:bob", "user:carol", "user:dave"] {
                let (r, s) = (obj(resource), subj(subject));
                let want = check(&c, &r, permission, &s).await.unwrap();
                for hint in hints {
                    let fresh = uncached_ctx(&ds);
                    let request = CheckRequest {
                        hint,
                        ..CheckRequest::new(&r, permission, &s)
                    };
                    let got = fresh
                        .dispatch()
                        .check_request(&fresh, &request, DEFAULT_MAX_DEPTH)
                        .await
                        .unwrap();
                    assert_eq!(got, want, "{resource}#{permission}@{subject} with {hint:?}");
                }
            }
        }
    }
}

#[tokio::test]
async fn kept_lookup_answers_are_replayed_only_until_an_expiration_they_rest_on() {
    let ds = store(
        CAVEATED,
        &[
            "document:d#viewer@team:t#member",
            "team:t#member@user:member[expiration:2030-02-01T00:00:00Z]",
            "document:e#viewer@user:member",
            "document:b#viewer@user:banned",
            "document:b#banned@user:banned[expiration:2030-01-15T00:00:00Z]",
        ],
    );
    // One chain (one cache) shared by contexts at different clocks.
    let chain = dispatch_chain();
    let at_time = |t: &str| {
        let snap = ds.snapshot(ds.head_revision().unwrap()).unwrap();
        EvalContext::new(snap, Arc::clone(&chain), EvalConfig::default(), at(t)).unwrap()
    };
    let walk = LookupOrder::Walk { after: None };
    for (permission, user, before, after) in [
        ("view", "user:member", vec!["d", "e"], vec!["e"]),
        ("view_unbanned", "user:banned", vec![], vec!["b"]),
    ] {
        let early = at_time("2029-12-31T00:00:00Z");
        let mut first = streamed_of(&early, permission, user, walk).await;
        first.sort();
        assert_eq!(first, before, "{user} walked");
        let mut again = streamed_of(&early, permission, user, walk).await;
        again.sort();
        assert_eq!(again, before, "{user} replayed");
        let late = at_time("2030-03-01T00:00:00Z");
        let mut later = streamed_of(&late, permission, user, walk).await;
        later.sort();
        assert_eq!(later, after, "{user} after an expiration");
    }
}

// ---- operands of a rewrite: errors, short-circuits, operands that wait ----------------------

const OPERANDS: &str = r#"
caveat is_on(on bool) { on }

definition user {}

definition team {
    relation member: user | team#member
}

definition doc {
    relation loop: team#member
    relation direct: user
    relation cond: user with is_on
    relation nope: user
    relation held: team#member
    permission loop_or_direct = loop + direct
    permission direct_or_loop = direct + loop
    permission loop_and_nope = loop & nope
    permission nope_and_loop = nope & loop
    permission loop_and_direct = loop & direct
    permission loop_but_direct = loop - direct
    permission direct_but_loop = direct - loop
    permission cond_or_direct = cond + direct
    permission direct_or_cond = direct + cond
    permission cond_or_loop = cond + loop
    permission cond_and_direct = cond & direct
    permission cond_and_nope = cond & nope
    permission nope_and_cond = nope & cond
    permission cond_but_direct = cond - direct
    permission direct_but_cond = direct - cond
    permission held_only = held
    permission held_or_direct = held + direct
    permission direct_or_held = direct + held
    permission held_and_nope = held & nope
    permission held_but_direct = held - direct
    permission held_or_cond = held + cond
}
"#;

const OPERANDS_RELS: &[&str] = &[
    // `loop` runs round a cycle without finding anybody: depth exceeded.
    "doc:d#loop@team:c#member",
    "team:c#member@team:e#member",
    "team:e#member@team:c#member",
    "doc:d#direct@user:x",
    "doc:d#direct@user:m",
    "doc:d#cond@user:x[is_on]",
    "doc:d#cond@user:y[is_on]",
    "doc:d#held@team:slow#member",
    "team:slow#member@user:m",
];

/// The answer of `doc:d#permission@who`, or the error.
async fn outcome(
    c: &EvalContext,
    permission: &str,
    who: &str,
) -> Result<Permissionship, EvalError> {
    check(c, &obj("doc:d"), permission, &subj(who))
        .await
        .map(|r| r.permissionship)
}

#[tokio::test]
async fn an_operand_that_decides_the_answer_wins_over_an_error_in_another_in_any_order() {
    let ds = store(OPERANDS, OPERANDS_RELS);
    let depth = EvalError::DepthExceeded { max_depth: 20 };
    let on = r#"{"on": true}"#;
    // (permission, subject, request context, answer)
    let cases: &[(&str, &str, &str, Result<Permissionship, EvalError>)] = &[
        // Union: a yes decides it; without one, the error is the answer.
        ("loop_or_direct", "user:x", "{}", Ok(Permissionship::Has)),
        ("direct_or_loop", "user:x", "{}", Ok(Permissionship::Has)),
        ("loop_or_direct", "user:z", "{}", Err(depth.clone())),
        ("cond_or_loop", "user:y", "{}", Err(depth.clone())),
        ("cond_or_loop", "user:y", on, Err(depth.clone())),
        // Intersection: a no decides it; otherwise the error.
        ("loop_and_nope", "user:x", "{}", Ok(Permissionship::HasNot)),
        ("nope_and_loop", "user:x", "{}", Ok(Permissionship::HasNot)),
        ("loop_and_direct", "user:x", "{}", Err(depth.clone())),
        // Exclusion: a yes subtrahend or a no base decides it; otherwise the error.
        (
            "loop_but_direct",
            "user:x",
            "{}",
            Ok(Permissionship::HasNot),
        ),
        ("direct_but_loop", "user:x", "{}", Err(depth.clone())),
        (
            "direct_but_loop",
            "user:z",
            "{}",
            Ok(Permissionship::HasNot),
        ),
        // Caveated with unconditional operands.
        ("cond_or_direct", "user:x", "{}", Ok(Permissionship::Has)),
        ("direct_or_cond", "user:x", "{}", Ok(Permissionship::Has)),
        ("cond_and_direct", "user:x", on, Ok(Permissionship::Has)),
        (
            "cond_and_direct",
            "user:x",
            r#"{"on": false}"#,
            Ok(Permissionship::HasNot),
        ),
        ("cond_and_nope", "user:x", "{}", Ok(Permissionship::HasNot)),
        ("nope_and_cond", "user:x", "{}", Ok(Permissionship::HasNot)),
        (
            "cond_but_direct",
            "user:x",
            "{}",
            Ok(Permissionship::HasNot),
        ),
        ("direct_but_cond", "user:x", on, Ok(Permissionship::HasNot)),
        (
            "direct_but_cond",
            "user:x",
            r#"{"on": false}"#,
            Ok(Permissionship::Has),
        ),
    ];
    for cached in [true, false] {
        let base = if cached {
            ctx_at(&ds, 20, Timestamp::now())
        } else {
            let snap = ds.snapshot(ds.head_revision().unwrap()).unwrap();
            let chain = build_dispatch_chain(DispatchConfig {
                cache_enabled: false,
                ..DispatchConfig::default()
            });
            EvalContext::new(
                snap,
                chain.head,
                EvalConfig { max_depth: 20 },
                Timestamp::now(),
            )
            .unwrap()
        };
        for (permission, who, context, want) in cases {
            let c = with_context(&base, context);
            let got = outcome(&c, permission, who).await;
            assert_eq!(
                &got, want,
                "{permission}@{who} with {context}, cached: {cached}"
            );
        }
        // Without context, a caveated operand and a no leave the caveat to decide.
        let c = with_context(&base, "{}");
        for permission in ["cond_and_direct", "direct_but_cond"] {
            let got = outcome(&c, permission, "user:x").await.unwrap();
            assert!(is_conditional(&got), "{permission}: {got:?}");
        }
    }
}

/// Holds every check of one resource until released, as if another request were computing it.
struct Held {
    inner: Arc<dyn Dispatch>,
    resource: ObjectRef,
    released: tokio::sync::watch::Sender<bool>,
    arrived: std::sync::atomic::AtomicUsize,
}

impl Held {
    fn new(inner: Arc<dyn Dispatch>, resource: &str) -> Arc<Self> {
        Arc::new(Held {
            inner,
            resource: obj(resource),
            released: tokio::sync::watch::Sender::new(false),
            arrived: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    fn arrived(&self) -> usize {
        self.arrived.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn release(&self) {
        self.released.send_replace(true);
    }
}

#[async_trait::async_trait]
impl Layer for Held {
    fn inner(&self) -> &dyn Dispatch {
        self.inner.as_ref()
    }

    async fn check_request(
        &self,
        ctx: &EvalContext,
        request: &CheckRequest<'_>,
        depth: u32,
    ) -> Result<CheckResult, EvalError> {
        if *request.resource == self.resource {
            self.arrived
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut released = self.released.subscribe();
            let _ = released.wait_for(|r| *r).await;
        }
        self.inner.check_request(ctx, request, depth).await
    }
}

/// Long enough for any answer that does not wait on the held sub-problem.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

fn held_ctx(ds: &MemoryDatastore, head: Arc<dyn Dispatch>) -> EvalContext {
    let snap = ds.snapshot(ds.head_revision().unwrap()).unwrap();
    EvalContext::new(snap, head, EvalConfig::default(), Timestamp::now()).unwrap()
}

#[tokio::test]
async fn operands_that_decide_the_answer_do_not_wait_for_an_operand_held_up() {
    let ds = store(OPERANDS, OPERANDS_RELS);
    let held = Held::new(dispatch_chain(), "team:slow");
    let c = held_ctx(&ds, held.clone());
    let within = |permission: &'static str, who: &'static str| {
        let c = c.clone();
        async move {
            tokio::time::timeout(PATIENCE, outcome(&c, permission, who))
                .await
                .unwrap_or_else(|_| panic!("{permission}@{who} waited for the held operand"))
                .unwrap()
        }
    };
    // The first operand decides: the held one is never started.
    assert_eq!(
        within("direct_or_held", "user:x").await,
        Permissionship::Has
    );
    assert_eq!(held.arrived(), 0);
    // The held operand comes first; the next one decides meanwhile.
    assert_eq!(
        within("held_or_direct", "user:x").await,
        Permissionship::Has
    );
    assert_eq!(
        within("held_and_nope", "user:x").await,
        Permissionship::HasNot
    );
    assert_eq!(
        within("held_but_direct", "user:x").await,
        Permissionship::HasNot
    );
    assert!(held.arrived() >= 1);
    // A caveated operand or a no cannot decide a union: the answer waits for the held one.
    let waiting = tokio::spawn({
        let c = c.clone();
        async move { outcome(&c, "held_or_cond", "user:y").await }
    });
    let also_waiting = tokio::spawn({
        let c = c.clone();
        async move { outcome(&c, "held_or_direct", "user:z").await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!waiting.is_finished() && !also_waiting.is_finished());
    held.release();
    let got = waiting.await.unwrap().unwrap();
    assert!(is_conditional(&got), "{got:?}");
    assert_eq!(also_waiting.await.unwrap(), Ok(Permissionship::HasNot));
}

#[tokio::test]
async fn a_union_answers_from_another_operand_while_one_waits_on_a_sub_problem_in_flight() {
    let ds = store(OPERANDS, OPERANDS_RELS);
    // single-flight → held → local: only a leader reaches the held layer.
    let held = Held::new(Arc::new(LocalEvaluator::new()), "team:slow");
    let head: Arc<dyn Dispatch> = Arc::new(SingleFlight::new(held.clone()));
    let c = held_ctx(&ds, head);
    // The leader: `doc:d#held@user:m`, held at `team:slow`.
    let leader = tokio::spawn({
        let c = c.clone();
        async move { outcome(&c, "held_only", "user:m").await }
    });
    while held.arrived() == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    // The same sub-problem (at the same depth) is an operand of this union: it waits for the
    // leader, and the other operand answers.
    let got = tokio::time::timeout(PATIENCE, outcome(&c, "held_or_direct", "user:m"))
        .await
        .expect("the union waited for the sub-problem in flight");
    assert_eq!(got, Ok(Permissionship::Has));
    assert_eq!(
        held.arrived(),
        1,
        "the union's operand waited for the leader"
    );
    assert!(!leader.is_finished());
    held.release();
    assert_eq!(leader.await.unwrap(), Ok(Permissionship::Has));
}
