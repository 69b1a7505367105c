//! The datastore contract, one suite for every datastore: each test is a function of the
//! engine, instantiated for `memory` and `rocksdb` by the macro at the bottom.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use arbor::model::{
    ObjectRef, Relationship, RelationshipFilter, Revision, SubjectFilter, SubjectRef, Timestamp,
};
use arbor::schema;
use arbor::store::{
    Change, Precondition, PreconditionOp, StoreError, check_preconditions, check_schema_change,
};

use crate::{Engine, all_at, rel, touch_all};

fn texts(rels: impl IntoIterator<Item = Result<Relationship, StoreError>>) -> Vec<String> {
    rels.into_iter().map(|r| r.unwrap().to_string()).collect()
}

fn doc_filter(id: Option<&str>) -> RelationshipFilter {
    RelationshipFilter {
        resource_type: Some("doc".to_string()),
        resource_id: id.map(str::to_string),
        ..RelationshipFilter::default()
    }
}

fn revisions_strictly_increase(engine: Engine) {
    let store = engine.fresh();
    let ds = Arc::clone(&store.ds);
    assert_eq!(ds.head_revision().unwrap(), Revision::ZERO);
    let mut last = Revision::ZERO;
    for i in 0..5 {
        let r = touch_all(ds.as_ref(), &[&format!("doc:seq#viewer@user:u{i}")]);
        assert_eq!(r, last.next().unwrap());
        assert_eq!(ds.head_revision().unwrap(), r);
        assert_eq!(*ds.subscribe().borrow(), r);
        last = r;
    }
    // A failed transaction takes no revision.
    let failed = ds.write(&mut |txn| {
        txn.touch(rel("doc:never#viewer@user:x"))?;
        Err(StoreError::Refused("no".to_string()))
    });
    assert_eq!(failed, Err(StoreError::Refused("no".to_string())));
    assert_eq!(ds.head_revision().unwrap(), last);
    assert!(
        all_at(ds.as_ref(), last)
            .iter()
            .all(|r| !r.contains("never"))
    );

    // Concurrent writers each get their own revision, all consecutive.
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let ds = Arc::clone(&ds);
            std::thread::spawn(move || {
                (0..10)
                    .map(|i| touch_all(ds.as_ref(), &[&format!("doc:t{t}#viewer@user:u{i}")]))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut revisions: Vec<Revision> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    revisions.sort();
    revisions.dedup();
    assert_eq!(revisions.len(), 80);
    assert_eq!(revisions.first(), Some(&Revision::new(last.get() + 1)));
    assert_eq!(revisions.last(), Some(&Revision::new(last.get() + 80)));
    let head = ds.head_revision().unwrap();
    assert_eq!(head, Revision::new(85));

    // Commit times never go backwards; quantization never goes past the head.
    let sets = ds.changes_since(Revision::ZERO, 1000).unwrap();
    assert_eq!(sets.len(), 85);
    assert!(sets.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    assert!(sets.windows(2).all(|w| w[0].revision < w[1].revision));
    assert_eq!(ds.optimized_revision(Duration::ZERO).unwrap(), head);
    assert!(ds.optimized_revision(Duration::from_secs(3600)).unwrap() <= head);
    ds.check_revision(head).unwrap();
    assert!(matches!(
        ds.check_revision(head.next().unwrap()),
        Err(StoreError::RevisionAhead { .. })
    ));
}

fn snapshots_read_old_revisions(engine: Engine) {
    let store = engine.fresh();
    let ds = store.ds.as_ref();
    let r1 = touch_all(ds, &["doc:1#viewer@user:a", "doc:1#viewer@user:b"]);
    let r2 = ds
        .write(&mut |txn| {
            txn.delete(&rel("doc:1#viewer@user:a"))?;
            txn.touch(rel("doc:2#viewer@user:a"))
        })
        .unwrap();
    let r3 = touch_all(ds, &[r#"doc:1#viewer@user:b[cav:{"x":1}]"#]);
    let schema = Arc::new(schema::compile("definition user {}").unwrap());
    let r4 = ds
        .write(&mut |txn| txn.write_schema(Arc::clone(&schema)))
        .unwrap();

    let doc1 = ObjectRef::new("doc", "1").unwrap();
    let at = |r: Revision| ds.snapshot(r).unwrap();
    assert_eq!(
        texts(at(r1).read_resource(&doc1, "viewer")),
        ["doc:1#viewer@user:a", "doc:1#viewer@user:b"]
    );
    assert_eq!(
        texts(at(r2).read_resource(&doc1, "viewer")),
        ["doc:1#viewer@user:b"]
    );
    assert_eq!(
        texts(at(r3).read_resource(&doc1, "viewer")),
        [r#"doc:1#viewer@user:b[cav:{"x":1}]"#]
    );
    let user_a = SubjectFilter {
        subject_type: "user".to_string(),
        subject_id: Some("a".to_string()),
        relation: Some(None),
    };
    assert_eq!(
        texts(at(r1).read_by_subject("doc", "viewer", &user_a)),
        ["doc:1#viewer@user:a"]
    );
    assert_eq!(
        texts(at(r2).read_by_subject("doc", "viewer", &user_a)),
        ["doc:2#viewer@user:a"]
    );
    assert_eq!(
        all_at(ds, r2),
        ["doc:1#viewer@user:b", "doc:2#viewer@user:a"]
    );
    assert_eq!(at(Revision::ZERO).read(&doc_filter(None), None).count(), 0);
    assert!(at(r3).schema().is_none());
    assert_eq!(at(r4).schema().unwrap().source(), "definition user {}");
    assert_eq!(at(r4).revision(), r4);
    assert!(matches!(
        ds.snapshot(r4.next().unwrap()),
        Err(StoreError::RevisionAhead { .. })
    ));
}

fn create_touch_delete_and_own_writes(engine: Engine) {
    let store = engine.fresh();
    let ds = store.ds.as_ref();
    let x = "doc:x#viewer@user:a";
    let r1 = ds.write(&mut |txn| txn.create(rel(x))).unwrap();
    let err = ds.write(&mut |txn| txn.create(rel(x))).unwrap_err();
    assert_eq!(err, StoreError::AlreadyExists(x.to_string()));
    assert_eq!(ds.head_revision().unwrap(), r1);

    // Reads inside a transaction see its own writes; a re-create after a delete is fine.
    let y = "doc:y#viewer@user:b";
    let r2 = ds
        .write(&mut |txn| {
            txn.create(rel(y))?;
            assert_eq!(txn.revision(), r1.next().unwrap());
            assert_eq!(
                texts(txn.read(&doc_filter(Some("y")))?.into_iter().map(Ok)),
                [y]
            );
            txn.delete(&rel(y))?;
            assert!(txn.read(&doc_filter(Some("y")))?.is_empty());
            txn.create(rel(y))?;
            assert!(matches!(
                txn.create(rel(y)),
                Err(StoreError::AlreadyExists(_))
            ));
            // The existing one is visible too, and touching replaces it.
            txn.touch(rel(r#"doc:x#viewer@user:a[cav:{"k":"v"}]"#))?;
            let all = texts(txn.read(&doc_filter(None))?.into_iter().map(Ok));
            assert_eq!(all, [r#"doc:x#viewer@user:a[cav:{"k":"v"}]"#, y]);
            // Deleting what does not exist is no error and no change.
            txn.delete(&rel("doc:nope#viewer@user:z"))
        })
        .unwrap();
    assert_eq!(all_at(ds, r2), [r#"doc:x#viewer@user:a[cav:{"k":"v"}]"#, y]);
    let changes = &ds.changes_since(r1, 10).unwrap()[0].changes;
    assert_eq!(
        changes,
        &vec![
            Change::Touch(rel(y)),
            Change::Delete(rel(y)),
            Change::Touch(rel(y)),
            Change::Touch(rel(r#"doc:x#viewer@user:a[cav:{"k":"v"}]"#)),
        ]
    );

    // A failing body writes nothing, whatever it did before failing.
    let err = ds
        .write(&mut |txn| {
            txn.delete(&rel(x))?;
            txn.touch(rel("doc:z#viewer@user:c"))?;
            txn.create(rel(y))
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists(_)));
    assert_eq!(ds.head_revision().unwrap(), r2);
    assert_eq!(all_at(ds, r2).len(), 2);

    // Delete, then the tuple can be created again in a later transaction.
    let r3 = ds.write(&mut |txn| txn.delete(&rel(x))).unwrap();
    assert_eq!(all_at(ds, r3), [y]);
    let r4 = ds.write(&mut |txn| txn.create(rel(x))).unwrap();
    assert_eq!(all_at(ds, r4), [x, y]);
    assert_eq!(
        ds.changes_since(r2, 10).unwrap()[0].changes,
        vec![Change::Delete(rel(r#"doc:x#viewer@user:a[cav:{"k":"v"}]"#))]
    );
}

fn delete_by_filter_with_limit_is_partial(engine: Engine) {
    let store = engine.fresh();
    let ds = store.ds.as_ref();
    let mut all: Vec<String> = (0..10).map(|i| format!("doc:d#viewer@user:u{i}")).collect();
    all.push("doc:e#viewer@user:u0".to_string());
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    touch_all(ds, &refs);

    let mut outcome = None;
    let r = ds
        .write(&mut |txn| {
            outcome = Some(txn.delete_by_filter(&doc_filter(Some("d")), Some(3))?);
            Ok(())
        })
        .unwrap();
    let outcome = outcome.unwrap();
    assert_eq!((outcome.deleted, outcome.partial), (3, true));
    let left = all_at(ds, r);
    assert_eq!(left.len(), 8);
    assert!(!left.contains(&"doc:d#viewer@user:u0".to_string()));

    let by_subject = RelationshipFilter {
        subject: Some(SubjectFilter {
            subject_type: "user".to_string(),
            subject_id: Some("u0".to_string()),
            relation: None,
        }),
        ..RelationshipFilter::default()
    };
    let mut outcome = None;
    ds.write(&mut |txn| {
        outcome = Some(txn.delete_by_filter(&by_subject, None)?);
        Ok(())
    })
    .unwrap();
    let outcome = outcome.unwrap();
    assert_eq!((outcome.deleted, outcome.partial), (1, false));

    // A limit equal to the matches deletes them all and is not partial.
    let mut outcome = None;
    let r = ds
        .write(&mut |txn| {
            outcome = Some(txn.delete_by_filter(&doc_filter(Some("d")), Some(7))?);
            assert!(txn.read(&doc_filter(None))?.is_empty());
            Ok(())
        })
        .unwrap();
    let outcome = outcome.unwrap();
    assert_eq!((outcome.deleted, outcome.partial), (7, false));
    assert!(all_at(ds, r).is_empty());
}

fn preconditions_hold_under_racing_writers(engine: Engine) {
    let store = engine.fresh();
    const WRITERS: usize = 16;
    for round in 0..5 {
        let barrier = Arc::new(Barrier::new(WRITERS));
        let threads: Vec<_> = (0..WRITERS)
            .map(|w| {
                let ds = Arc::clone(&store.ds);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let filter = RelationshipFilter {
                        resource_type: Some("doc".to_string()),
                        resource_id: Some(format!("race{round}")),
                        relation: Some("owner".to_string()),
                        ..RelationshipFilter::default()
                    };
                    let pre = [Precondition {
                        op: PreconditionOp::MustNotMatch,
                        filter,
                    }];
                    barrier.wait();
                    ds.write(&mut |txn| {
                        check_preconditions(txn, &pre)?;
                        txn.touch(rel(&format!("doc:race{round}#owner@user:w{w}")))
                    })
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {results:?}");
        assert!(
            results
                .iter()
                .filter_map(|r| r.as_ref().err())
                .all(|e| matches!(e, StoreError::PreconditionFailed(_)))
        );
        let head = store.ds.head_revision().unwrap();
        let owners = store
            .ds
            .snapshot(head)
            .unwrap()
            .read_resource(
                &ObjectRef::new("doc", &format!("race{round}")).unwrap(),
                "owner",
            )
            .count();
        assert_eq!(owners, 1);
    }
    // MustMatch on nothing fails.
    let pre = [Precondition {
        op: PreconditionOp::MustMatch,
        filter: doc_filter(Some("absent")),
    }];
    let err = store
        .ds
        .write(&mut |txn| check_preconditions(txn, &pre))
        .unwrap_err();
    assert!(matches!(err, StoreError::PreconditionFailed(_)));
}

fn gc_removes_dead_versions_and_expires_old_revisions(engine: Engine) {
    let window = Duration::from_millis(500);
    let store = engine.open(window);
    let ds = store.ds.as_ref();
    let r1 = touch_all(
        ds,
        &[
            "doc:g#viewer@user:a",
            "doc:g#viewer@user:b",
            "doc:g#viewer@user:e[expiration:2001-01-01T00:00:00Z]",
        ],
    );
    let r2 = ds
        .write(&mut |txn| {
            txn.delete(&rel("doc:g#viewer@user:a"))?;
            txn.touch(rel(r#"doc:g#viewer@user:b[cav:{"x":1}]"#))?;
            txn.touch(rel("doc:g#viewer@user:c"))
        })
        .unwrap();
    // A snapshot taken while r1 is readable keeps it readable for as long as it lives.
    let pinned = ds.snapshot(r1).unwrap();
    std::thread::sleep(window * 2);
    let r3 = touch_all(ds, &["doc:g#viewer@user:d"]);

    // r2 was the head when the window began: it and later revisions stay readable.
    assert_eq!(ds.check_revision(r1), Err(StoreError::RevisionExpired(r1)));
    assert!(matches!(
        ds.snapshot(r1),
        Err(StoreError::RevisionExpired(_))
    ));
    assert!(matches!(
        ds.changes_since(r1, 10),
        Err(StoreError::RevisionExpired(_))
    ));
    ds.check_revision(r2).unwrap();
    assert_eq!(ds.changes_since(r2, 10).unwrap().len(), 1);

    let first = ds.collect_garbage(Timestamp::now()).unwrap();
    assert_eq!(
        first.horizon, r1,
        "the live snapshot holds the horizon back"
    );
    // Only the expired relationship goes: expired ones vanish even from live snapshots.
    assert_eq!((first.versions_removed, first.expired_removed), (1, 1));
    assert_eq!(first.changes_removed, 0);
    assert_eq!(
        texts(pinned.read(&RelationshipFilter::default(), None)),
        ["doc:g#viewer@user:a", "doc:g#viewer@user:b"]
    );
    drop(pinned);

    let second = ds.collect_garbage(Timestamp::now()).unwrap();
    assert_eq!(second.horizon, r2);
    // a's deleted version (and its deletion marker, where the store keeps one) and b's
    // replaced version.
    assert!(second.versions_removed >= 2, "{second:?}");
    assert_eq!(second.expired_removed, 0, "{second:?}");
    assert_eq!(second.changes_removed, 1, "{second:?}");
    assert_eq!(
        all_at(ds, r2),
        [r#"doc:g#viewer@user:b[cav:{"x":1}]"#, "doc:g#viewer@user:c"]
    );
    assert_eq!(
        all_at(ds, r3),
        [
            r#"doc:g#viewer@user:b[cav:{"x":1}]"#,
            "doc:g#viewer@user:c",
            "doc:g#viewer@user:d"
        ]
    );
    assert_eq!(ds.changes_since(r2, 10).unwrap()[0].revision, r3);
    assert_eq!(ds.check_revision(r1), Err(StoreError::RevisionExpired(r1)));

    // Nothing is left to collect.
    let third = ds.collect_garbage(Timestamp::now()).unwrap();
    assert_eq!((third.versions_removed, third.expired_removed), (0, 0));
}

fn changes_since_is_ordered_and_resumable(engine: Engine) {
    let store = engine.fresh();
    let ds = store.ds.as_ref();
    let r1 = touch_all(ds, &["doc:1#viewer@user:a", "doc:1#viewer@user:b"]);
    let r2 = ds
        .write(&mut |txn| txn.delete(&rel("doc:1#viewer@user:a")))
        .unwrap();
    let schema = Arc::new(schema::compile("definition user {}").unwrap());
    let r3 = ds
        .write(&mut |txn| txn.write_schema(Arc::clone(&schema)))
        .unwrap();
    let r4 = touch_all(ds, &["doc:2#viewer@user:c"]);

    let first = ds.changes_since(Revision::ZERO, 2).unwrap();
    assert_eq!(
        first.iter().map(|c| c.revision).collect::<Vec<_>>(),
        [r1, r2]
    );
    assert_eq!(
        first[0].changes,
        [
            Change::Touch(rel("doc:1#viewer@user:a")),
            Change::Touch(rel("doc:1#viewer@user:b"))
        ]
    );
    assert_eq!(
        first[1].changes,
        [Change::Delete(rel("doc:1#viewer@user:a"))]
    );
    let rest = ds.changes_since(r2, 100).unwrap();
    assert_eq!(
        rest.iter().map(|c| c.revision).collect::<Vec<_>>(),
        [r3, r4]
    );
    assert!(rest[0].schema_changed && rest[0].changes.is_empty());
    assert!(!rest[1].schema_changed);
    assert!(ds.changes_since(r4, 10).unwrap().is_empty());
    assert!(ds.changes_since(Revision::ZERO, 0).unwrap().is_empty());
}

const SCHEMA_V1: &str = "\
caveat only_if(x int) { x > 1 }
definition user {}
definition team {
    relation member: user
}
definition doc {
    relation viewer: user | team#member | user with only_if
    relation owner: user
    permission view = viewer + owner
}
definition folder {
    relation viewer: user
}
";

fn schema_changes_that_orphan_relationships_are_refused(engine: Engine) {
    let store = engine.fresh();
    let ds = store.ds.as_ref();
    // Relationships stored without a schema must all fit the first one.
    touch_all(
        ds,
        &[
            "doc:1#viewer@user:a",
            "doc:1#viewer@team:t#member",
            r#"doc:2#viewer@user:b[only_if:{"x":2}]"#,
            "team:t#member@user:a",
            "folder:f#viewer@user:c",
        ],
    );
    let apply = |text: &str| {
        let new = Arc::new(schema::compile(text).unwrap_or_else(|e| panic!("{e}")));
        ds.write(&mut |txn| {
            let old = txn.schema();
            check_schema_change(txn, old.as_deref(), &new)?;
            txn.write_schema(Arc::clone(&new))
        })
    };
    let refused = |text: &str, example: &str| match apply(text) {
        Err(StoreError::SchemaChangeRefused(message)) => assert!(
            message.contains(&format!("`{example}`")),
            "{message} should name {example}"
        ),
        other => panic!("expected a refusal naming {example}, got {other:?}"),
    };
    refused(
        &SCHEMA_V1.replace("definition folder {\n    relation viewer: user\n}\n", ""),
        "folder:f#viewer@user:c",
    );
    apply(SCHEMA_V1).unwrap();
    let head = ds.head_revision().unwrap();

    refused(
        &SCHEMA_V1.replace("definition folder {\n    relation viewer: user\n}\n", ""),
        "folder:f#viewer@user:c",
    );
    refused(
        &SCHEMA_V1.replace("relation viewer: user | ", "relation viewer: "),
        "doc:1#viewer@user:a",
    );
    refused(
        &SCHEMA_V1.replace(" | team#member", ""),
        "doc:1#viewer@team:t#member",
    );
    refused(
        &SCHEMA_V1
            .replace(
                "definition team {\n    relation member: user\n}\n",
                "definition team {}\n",
            )
            .replace(" | team#member", ""),
        "doc:1#viewer@team:t#member",
    );
    refused(
        &SCHEMA_V1.replace("(x int) { x > 1 }", "(x string) { x == \"a\" }"),
        r#"doc:2#viewer@user:b[only_if:{"x":2}]"#,
    );
    refused(
        &SCHEMA_V1.replace("(x int) { x > 1 }", "(y int) { y > 1 }"),
        r#"doc:2#viewer@user:b[only_if:{"x":2}]"#,
    );
    refused(
        &SCHEMA_V1
            .replace("caveat only_if(x int) { x > 1 }", "")
            .replace(" | user with only_if", ""),
        r#"doc:2#viewer@user:b[only_if:{"x":2}]"#,
    );
    assert_eq!(ds.head_revision().unwrap(), head, "refusals write nothing");
    assert_eq!(
        ds.snapshot(head).unwrap().schema().unwrap().source(),
        SCHEMA_V1
    );

    // Removing what nothing uses, and adding, is fine.
    apply(
        &SCHEMA_V1
            .replace("    relation owner: user\n", "    relation editor: user\n")
            .replace("viewer + owner", "viewer + editor"),
    )
    .unwrap();
    // Once the relationships are gone, the definition can go.
    ds.write(&mut |txn| txn.delete(&rel("folder:f#viewer@user:c")))
        .unwrap();
    apply(&SCHEMA_V1.replace("definition folder {\n    relation viewer: user\n}\n", "")).unwrap();
}

/// `n` distinct relationships `doc:{prefix}{i}#viewer@user:u{i}`.
fn many(prefix: &str, n: usize) -> Vec<Relationship> {
    (0..n)
        .map(|i| rel(&format!("doc:{prefix}{i}#viewer@user:u{i}")))
        .collect()
}

fn bulk_import_is_all_or_nothing(engine: Engine) {
    let store = engine.fresh();
    let ds = store.ds.as_ref();
    let existing = "doc:i7#viewer@user:u7";
    let r1 = touch_all(ds, &[existing]);
    // Large enough to span several of the RocksDB store's write batches.
    const N: usize = 45_000;

    let mut dup = many("n", N);
    dup.push(rel("doc:n10#viewer@user:u10"));
    let err = ds.bulk_import(&mut dup.into_iter().map(Ok)).unwrap_err();
    assert_eq!(
        err,
        StoreError::AlreadyExists("doc:n10#viewer@user:u10".to_string())
    );

    let failing = many("f", N).into_iter().enumerate().map(|(i, r)| {
        if i == 30_000 {
            Err(StoreError::Refused("bad input".to_string()))
        } else {
            Ok(r)
        }
    });
    let err = ds.bulk_import(&mut failing.into_iter()).unwrap_err();
    assert_eq!(err, StoreError::Refused("bad input".to_string()));

    let clash = many("i", N);
    let err = ds.bulk_import(&mut clash.into_iter().map(Ok)).unwrap_err();
    assert_eq!(err, StoreError::AlreadyExists(existing.to_string()));

    assert_eq!(
        ds.head_revision().unwrap(),
        r1,
        "failed imports take no revision"
    );
    assert_eq!(all_at(ds, r1), [existing]);

    let outcome = ds
        .bulk_import(&mut many("ok", N).into_iter().map(Ok))
        .unwrap();
    assert_eq!(outcome.loaded, N as u64);
    assert_eq!(outcome.revision, r1.next().unwrap());
    assert_eq!(all_at(ds, r1).len(), 1);
    assert_eq!(all_at(ds, outcome.revision).len(), N + 1);
    let sets = ds.changes_since(r1, 10).unwrap();
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].changes.len(), N);
    assert_eq!(
        sets[0].changes[0],
        Change::Touch(rel("doc:ok0#viewer@user:u0"))
    );
    // Writing goes on after the import, and nothing the failed imports wrote shows up.
    let r = touch_all(ds, &["doc:after#viewer@user:x"]);
    assert_eq!(r, outcome.revision.next().unwrap());
    let snapshot = ds.snapshot(r).unwrap();
    for prefix in ["n", "f", "i"] {
        let filter = RelationshipFilter {
            resource_type: Some("doc".to_string()),
            resource_id_prefix: Some(prefix.to_string()),
            ..RelationshipFilter::default()
        };
        let found: Vec<String> = texts(snapshot.read(&filter, None));
        let expected: Vec<String> = if prefix == "i" {
            vec![existing.to_string()]
        } else {
            Vec::new()
        };
        assert_eq!(found, expected, "prefix {prefix}");
    }
}

fn reads_paginate_with_a_cursor(engine: Engine) {
    let store = engine.fresh();
    let ds = store.ds.as_ref();
    let mut all = Vec::new();
    for i in 0..2_500 {
        let t = ["doc", "folder", "team"][i % 3];
        all.push(format!("{t}:x{:04}#viewer@user:u{}", i / 7, i % 7));
    }
    all.sort();
    all.dedup();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let head = touch_all(ds, &refs);
    let snapshot = ds.snapshot(head).unwrap();

    let paginate = |filter: &RelationshipFilter, page: usize| {
        let mut out: Vec<String> = Vec::new();
        let mut cursor: Option<Relationship> = None;
        loop {
            let batch: Vec<Relationship> = snapshot
                .read(filter, cursor.as_ref())
                .take(page)
                .map(Result::unwrap)
                .collect();
            if batch.is_empty() {
                break;
            }
            out.extend(batch.iter().map(ToString::to_string));
            cursor = batch.last().cloned();
        }
        out
    };
    let everything = paginate(&RelationshipFilter::default(), 1000);
    assert_eq!(everything, all, "pages cover everything once, in order");
    assert_eq!(paginate(&RelationshipFilter::default(), 7), all);

    let folders = paginate(
        &RelationshipFilter {
            resource_type: Some("folder".to_string()),
            ..RelationshipFilter::default()
        },
        100,
    );
    let expected: Vec<String> = all
        .iter()
        .filter(|r| r.starts_with("folder:"))
        .cloned()
        .collect();
    assert_eq!(folders, expected);

    let prefixed = RelationshipFilter {
        resource_type: Some("team".to_string()),
        resource_id_prefix: Some("x01".to_string()),
        subject: Some(SubjectFilter {
            subject_type: "user".to_string(),
            subject_id: Some("u3".to_string()),
            relation: None,
        }),
        ..RelationshipFilter::default()
    };
    let expected: Vec<String> = all
        .iter()
        .filter(|r| r.starts_with("team:x01") && r.ends_with("@user:u3"))
        .cloned()
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(paginate(&prefixed, 3), expected);

    // A cursor need not exist any more.
    let gone = rel("doc:x0000#viewer@user:zzz");
    let after: Vec<String> = texts(snapshot.read(&RelationshipFilter::default(), Some(&gone)));
    assert_eq!(
        after,
        all.iter()
            .filter(|r| r.as_str() > "doc:x0000#viewer@user:zzz")
            .cloned()
            .collect::<Vec<_>>()
    );
}

fn reverse_reads_filter_subjects(engine: Engine) {
    let store = engine.fresh();
    let ds = store.ds.as_ref();
    let head = touch_all(
        ds,
        &[
            "doc:b#viewer@user:tom",
            "doc:a#viewer@user:tom",
            "doc:c#viewer@team:eng#member",
            "doc:d#viewer@team:eng",
            "doc:e#viewer@user:*",
            "doc:f#viewer@user:ann",
            "doc:a#editor@user:tom",
            "folder:a#viewer@user:tom",
        ],
    );
    let snap = ds.snapshot(head).unwrap();
    let read = |stype: &str, id: Option<&str>, relation: Option<Option<&str>>| {
        let filter = SubjectFilter {
            subject_type: stype.to_string(),
            subject_id: id.map(str::to_string),
            relation: relation.map(|r| r.map(str::to_string)),
        };
        texts(snap.read_by_subject("doc", "viewer", &filter))
    };
    assert_eq!(
        read("user", Some("tom"), Some(None)),
        ["doc:a#viewer@user:tom", "doc:b#viewer@user:tom"]
    );
    assert_eq!(read("user", Some("*"), Some(None)), ["doc:e#viewer@user:*"]);
    assert_eq!(
        read("team", Some("eng"), None),
        ["doc:c#viewer@team:eng#member", "doc:d#viewer@team:eng"]
    );
    assert_eq!(
        read("team", Some("eng"), Some(Some("member"))),
        ["doc:c#viewer@team:eng#member"]
    );
    assert_eq!(
        read("user", None, None),
        [
            "doc:a#viewer@user:tom",
            "doc:b#viewer@user:tom",
            "doc:e#viewer@user:*",
            "doc:f#viewer@user:ann"
        ]
    );
    let tom = SubjectRef::new("user", "tom", None).unwrap();
    assert!(
        snap.read_resource(&ObjectRef::new("doc", "a").unwrap(), "viewer")
            .all(|r| r.unwrap().subject() == &tom)
    );
}

macro_rules! for_each_engine {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $( #[test] fn $test() { super::$test(crate::Engine::Memory); } )*
        }
        mod rocksdb {
            $( #[test] fn $test() { super::$test(crate::Engine::Rocks); } )*
        }
    };
}

for_each_engine!(
    revisions_strictly_increase,
    snapshots_read_old_revisions,
    create_touch_delete_and_own_writes,
    delete_by_filter_with_limit_is_partial,
    preconditions_hold_under_racing_writers,
    gc_removes_dead_versions_and_expires_old_revisions,
    changes_since_is_ordered_and_resumable,
    schema_changes_that_orphan_relationships_are_refused,
    bulk_import_is_all_or_nothing,
    reads_paginate_with_a_cursor,
    reverse_reads_filter_subjects,
);
