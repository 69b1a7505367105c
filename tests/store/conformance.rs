//! The datastore contract, one suite for every datastore: each test is a function of the
//! engine, instantiated for `memory` and `rocksdb` by the macro at the bottom.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use arbor::model::{
    ObjectRef, Relationship, RelationshipFilter, Revision, SubjectFilter, SubjectRef, Timestamp,
};
use arbor::schema;
use arbor::store::{
    Change, Precondition, PreconditionOp, RecordFamily, StoreError, check_preconditions,
    check_schema_change,
};
use sha2::{Digest as _, Sha256};

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

const RECORDS: RecordFamily = RecordFamily::new("test.records");
/// A family whose name extends `RECORDS`'s: its records must never show up in a scan of it.
const MORE_RECORDS: RecordFamily = RecordFamily::new("test.records.more");

type RecordList = Vec<(Vec<u8>, Vec<u8>)>;

/// Puts every (key, value) in one transaction.
fn put_records(
    ds: &dyn arbor::store::Datastore,
    family: RecordFamily,
    records: &[(&[u8], &[u8])],
) -> Revision {
    ds.write(&mut |txn| {
        for (key, value) in records {
            txn.put_record(family, key, value.to_vec())?;
        }
        Ok(())
    })
    .unwrap()
}

fn record_list(records: &[(&[u8], &[u8])]) -> RecordList {
    records
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

fn records_put_get_delete_and_overwrite(engine: Engine) {
    let store = engine.fresh();
    let ds = store.ds.as_ref();
    assert_eq!(ds.get_record(RECORDS, b"k").unwrap(), None);
    // A transaction that writes only records commits at a new revision, like any other.
    let r1 = put_records(ds, RECORDS, &[(b"k", b"one"), (b"empty", b"")]);
    assert_eq!(r1, Revision::new(1));
    assert_eq!(ds.head_revision().unwrap(), r1);
    assert_eq!(ds.get_record(RECORDS, b"k").unwrap(), Some(b"one".to_vec()));
    assert_eq!(ds.get_record(RECORDS, b"empty").unwrap(), Some(Vec::new()));
    // Families are separate key spaces.
    assert_eq!(ds.get_record(MORE_RECORDS, b"k").unwrap(), None);
    put_records(ds, MORE_RECORDS, &[(b"k", b"more")]);
    assert_eq!(ds.get_record(RECORDS, b"k").unwrap(), Some(b"one".to_vec()));
    assert_eq!(
        ds.get_record(MORE_RECORDS, b"k").unwrap(),
        Some(b"more".to_vec())
    );

    // Overwrite; binary keys and values, the longest key allowed.
    let long = vec![0xabu8; 1024];
    let binary: &[u8] = b"\x00\xff\x00";
    put_records(
        ds,
        RECORDS,
        &[(b"k", b"two"), (binary, binary), (&long, b"long")],
    );
    assert_eq!(ds.get_record(RECORDS, b"k").unwrap(), Some(b"two".to_vec()));
    assert_eq!(
        ds.get_record(RECORDS, binary).unwrap(),
        Some(binary.to_vec())
    );
    assert_eq!(
        ds.get_record(RECORDS, &long).unwrap(),
        Some(b"long".to_vec())
    );

    // Delete; deleting a missing record is no error.
    let r = ds
        .write(&mut |txn| {
            txn.delete_record(RECORDS, b"k")?;
            txn.delete_record(RECORDS, b"never")
        })
        .unwrap();
    assert_eq!(r, ds.head_revision().unwrap());
    assert_eq!(ds.get_record(RECORDS, b"k").unwrap(), None);
    assert_eq!(
        ds.get_record(MORE_RECORDS, b"k").unwrap(),
        Some(b"more".to_vec())
    );
    // Records are not versioned, and snapshots do not see them: no revision reads old ones.
    assert_eq!(
        ds.scan_records(RECORDS, b"", None, 10).unwrap(),
        record_list(&[(binary, binary), (b"empty", b""), (&long, b"long")])
    );
}

fn records_scan_by_prefix_after_and_limit(engine: Engine) {
    let store = engine.fresh();
    let ds = store.ds.as_ref();
    let keys: [&[u8]; 9] = [
        b"b", b"a\xff", b"abc", b"a", b"ab", b"a\x00", b"\xff", b"0", b"ab\x00",
    ];
    let records: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (*k, &k[..1])).collect();
    put_records(ds, RECORDS, &records);
    put_records(ds, MORE_RECORDS, &[(b"a", b"x"), (b"ab", b"x")]);
    let mut sorted: Vec<&[u8]> = keys.to_vec();
    sorted.sort();
    let expect =
        |ks: &[&[u8]]| -> RecordList { ks.iter().map(|k| (k.to_vec(), k[..1].to_vec())).collect() };
    let scan = |prefix: &[u8], after: Option<&[u8]>, limit: usize| {
        ds.scan_records(RECORDS, prefix, after, limit).unwrap()
    };

    // Key order is byte order, shorter first on a common prefix.
    assert_eq!(scan(b"", None, 100), expect(&sorted));
    assert_eq!(
        scan(b"", None, 100)
            .iter()
            .map(|(k, _)| k.as_slice())
            .collect::<Vec<_>>(),
        [
            &b"0"[..],
            b"a",
            b"a\x00",
            b"ab",
            b"ab\x00",
            b"abc",
            b"a\xff",
            b"b",
            b"\xff"
        ]
    );
    // Prefix.
    assert_eq!(
        scan(b"a", None, 100),
        expect(&[b"a", b"a\x00", b"ab", b"ab\x00", b"abc", b"a\xff"])
    );
    assert_eq!(scan(b"ab", None, 100), expect(&[b"ab", b"ab\x00", b"abc"]));
    assert_eq!(scan(b"\xff", None, 100), expect(&[b"\xff"]));
    assert!(scan(b"c", None, 100).is_empty());
    assert!(scan(b"abcd", None, 100).is_empty());
    // Strictly after `after`, which need not exist, nor lie inside the prefix.
    assert_eq!(
        scan(b"a", Some(b"ab"), 100),
        expect(&[b"ab\x00", b"abc", b"a\xff"])
    );
    assert_eq!(
        scan(b"a", Some(b"ab\x00\x00"), 100),
        expect(&[b"abc", b"a\xff"])
    );
    assert_eq!(scan(b"a", Some(b"0"), 100), scan(b"a", None, 100));
    assert!(scan(b"a", Some(b"b"), 100).is_empty());
    assert!(scan(b"", Some(b"\xff"), 100).is_empty());
    // Limit, and paging with the last key as `after`.
    assert!(scan(b"", None, 0).is_empty());
    assert_eq!(scan(b"a", None, 2), expect(&[b"a", b"a\x00"]));
    let mut paged = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = scan(b"", after.as_deref(), 2);
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        paged.extend(page);
    }
    assert_eq!(paged, expect(&sorted));
    // The other family holds only its own records.
    assert_eq!(
        ds.scan_records(MORE_RECORDS, b"", None, 100).unwrap(),
        record_list(&[(b"a", b"x"), (b"ab", b"x")])
    );
}

fn records_transaction_sees_its_own_writes_and_deletes(engine: Engine) {
    let store = engine.fresh();
    let ds = store.ds.as_ref();
    put_records(
        ds,
        RECORDS,
        &[
            (b"k1", b"1"),
            (b"k2", b"2"),
            (b"k3", b"3"),
            (b"k4", b"4"),
            (b"k5", b"5"),
        ],
    );
    let expected = record_list(&[
        (b"k0", b"new"),
        (b"k1", b"again"),
        (b"k2", b"changed"),
        (b"k4", b"4"),
        (b"k5", b"5"),
        (b"k6", b"6"),
    ]);
    ds.write(&mut |txn| {
        txn.put_record(RECORDS, b"k6", b"6".to_vec())?;
        txn.put_record(RECORDS, b"k2", b"changed".to_vec())?;
        txn.delete_record(RECORDS, b"k3")?;
        txn.put_record(RECORDS, b"k7", b"gone".to_vec())?;
        txn.delete_record(RECORDS, b"k7")?;
        txn.delete_record(RECORDS, b"k1")?;
        assert_eq!(txn.get_record(RECORDS, b"k1")?, None);
        txn.put_record(RECORDS, b"k1", b"again".to_vec())?;
        txn.put_record(RECORDS, b"k0", b"new".to_vec())?;
        txn.put_record(MORE_RECORDS, b"k3", b"elsewhere".to_vec())?;

        assert_eq!(txn.get_record(RECORDS, b"k0")?, Some(b"new".to_vec()));
        assert_eq!(txn.get_record(RECORDS, b"k1")?, Some(b"again".to_vec()));
        assert_eq!(txn.get_record(RECORDS, b"k2")?, Some(b"changed".to_vec()));
        assert_eq!(txn.get_record(RECORDS, b"k3")?, None);
        assert_eq!(txn.get_record(RECORDS, b"k4")?, Some(b"4".to_vec()));
        assert_eq!(txn.get_record(RECORDS, b"k7")?, None);
        assert_eq!(
            txn.get_record(MORE_RECORDS, b"k3")?,
            Some(b"elsewhere".to_vec())
        );
        assert_eq!(txn.scan_records(RECORDS, b"k", None, 100)?, expected);
        assert_eq!(txn.scan_records(RECORDS, b"", None, 3)?, expected[..3]);
        assert_eq!(
            txn.scan_records(RECORDS, b"k", Some(b"k2"), 2)?,
            expected[3..5]
        );
        assert_eq!(
            txn.scan_records(RECORDS, b"k", Some(b"k3"), 100)?,
            expected[3..]
        );
        assert_eq!(txn.scan_records(RECORDS, b"k6", None, 100)?, expected[5..]);
        assert_eq!(
            txn.scan_records(MORE_RECORDS, b"", None, 100)?,
            record_list(&[(b"k3", b"elsewhere")])
        );
        // Nothing is visible outside the transaction before it commits.
        Ok(())
    })
    .unwrap();
    assert_eq!(ds.scan_records(RECORDS, b"", None, 100).unwrap(), expected);
    assert_eq!(
        ds.get_record(MORE_RECORDS, b"k3").unwrap(),
        Some(b"elsewhere".to_vec())
    );
    // A transaction with relationships and records commits both at one revision.
    let r = ds
        .write(&mut |txn| {
            txn.touch(rel("doc:r#viewer@user:a"))?;
            txn.put_record(RECORDS, b"k8", b"8".to_vec())
        })
        .unwrap();
    assert_eq!(all_at(ds, r), ["doc:r#viewer@user:a"]);
    assert_eq!(ds.get_record(RECORDS, b"k8").unwrap(), Some(b"8".to_vec()));
}

fn records_of_an_aborted_transaction_are_not_written(engine: Engine) {
    let store = engine.fresh();
    let ds = store.ds.as_ref();
    let head = put_records(ds, RECORDS, &[(b"a", b"1"), (b"b", b"2")]);
    let before = ds.scan_records(RECORDS, b"", None, 100).unwrap();
    let err = ds
        .write(&mut |txn| {
            txn.put_record(RECORDS, b"a", b"changed".to_vec())?;
            txn.delete_record(RECORDS, b"b")?;
            txn.put_record(RECORDS, b"c", b"3".to_vec())?;
            txn.touch(rel("doc:x#viewer@user:a"))?;
            assert_eq!(txn.scan_records(RECORDS, b"", None, 100)?.len(), 2);
            Err(StoreError::Refused("no".to_string()))
        })
        .unwrap_err();
    assert_eq!(err, StoreError::Refused("no".to_string()));
    assert_eq!(ds.head_revision().unwrap(), head);
    assert_eq!(ds.scan_records(RECORDS, b"", None, 100).unwrap(), before);
    assert_eq!(ds.get_record(RECORDS, b"c").unwrap(), None);
    assert!(all_at(ds, head).is_empty());
    // The next transaction starts from the committed records, not the aborted writes.
    ds.write(&mut |txn| {
        assert_eq!(txn.get_record(RECORDS, b"a")?, Some(b"1".to_vec()));
        assert_eq!(txn.get_record(RECORDS, b"c")?, None);
        assert_eq!(txn.scan_records(RECORDS, b"", None, 100)?, before);
        Ok(())
    })
    .unwrap();
}

fn records_are_not_relationship_changes(engine: Engine) {
    let store = engine.fresh();
    let ds = store.ds.as_ref();
    let r1 = touch_all(ds, &["doc:1#viewer@user:a"]);
    let r2 = put_records(ds, RECORDS, &[(b"a", b"1")]);
    let r3 = ds
        .write(&mut |txn| {
            txn.put_record(RECORDS, b"b", b"2".to_vec())?;
            txn.delete_record(RECORDS, b"a")?;
            txn.touch(rel("doc:2#viewer@user:b"))
        })
        .unwrap();
    let sets = ds.changes_since(r1, 10).unwrap();
    assert_eq!(
        sets.iter().map(|s| s.revision).collect::<Vec<_>>(),
        [r2, r3]
    );
    // The records-only revision carries no change; the mixed one only its relationship.
    assert!(sets[0].changes.is_empty() && !sets[0].schema_changed);
    assert_eq!(sets[1].changes, [Change::Touch(rel("doc:2#viewer@user:b"))]);
    assert_eq!(all_at(ds, r2), ["doc:1#viewer@user:a"]);
}

fn gc_never_removes_records(engine: Engine) {
    let window = Duration::from_millis(300);
    let store = engine.open(window);
    let ds = store.ds.as_ref();
    put_records(ds, RECORDS, &[(b"old", b"1"), (b"gone", b"x")]);
    ds.write(&mut |txn| {
        txn.touch(rel("doc:g#viewer@user:a"))?;
        txn.put_record(RECORDS, b"mixed", b"2".to_vec())
    })
    .unwrap();
    ds.write(&mut |txn| {
        txn.delete(&rel("doc:g#viewer@user:a"))?;
        txn.delete_record(RECORDS, b"gone")
    })
    .unwrap();
    std::thread::sleep(window * 2);
    let head = put_records(ds, RECORDS, &[(b"new", b"3")]);
    std::thread::sleep(window * 2);
    touch_all(ds, &["doc:h#viewer@user:b"]);
    let first = ds.collect_garbage(Timestamp::now()).unwrap();
    assert!(first.horizon >= head, "{first:?}");
    assert!(first.versions_removed >= 1, "{first:?}");
    ds.collect_garbage(Timestamp::now()).unwrap();
    assert_eq!(
        ds.scan_records(RECORDS, b"", None, 100).unwrap(),
        record_list(&[(b"mixed", b"2"), (b"new", b"3"), (b"old", b"1")])
    );
}

/// The digest `ImportSummary` promises: SHA-256 over each relationship's text and `\n`.
fn import_digest(rels: &[Relationship]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for r in rels {
        hasher.update(format!("{r}\n").as_bytes());
    }
    hasher.finalize().into()
}

const AUDIT: RecordFamily = RecordFamily::new("test.audit");

fn bulk_import_with_commits_finish_records_with_the_import(engine: Engine) {
    let store = engine.fresh();
    let ds = store.ds.as_ref();
    let existing = "doc:e#viewer@user:e";
    let r1 = ds
        .write(&mut |txn| {
            txn.touch(rel(existing))?;
            txn.put_record(AUDIT, b"head", b"0".to_vec())
        })
        .unwrap();
    // Large enough to span several of the RocksDB store's write batches, and with caveats
    // and expirations, whose text the digest covers too.
    const N: usize = 25_000;
    let mut rels = many("w", N);
    rels.push(rel(r#"doc:cav#viewer@user:c[cav:{"b":[1,"x"],"a":true}]"#));
    rels.push(rel(
        "doc:exp#viewer@user:x[expiration:2100-01-02T03:04:05Z]",
    ));
    let expected_digest = import_digest(&rels);

    let mut calls = 0;
    let outcome = ds
        .bulk_import_with(
            &mut rels.clone().into_iter().map(Ok),
            &mut |summary, records| {
                calls += 1;
                assert_eq!(summary.loaded, (N + 2) as u64);
                assert_eq!(summary.revision, r1.next().unwrap());
                assert_eq!(summary.digest, expected_digest);
                // A read-modify-write of a chain head: reads see committed and own writes.
                let previous = records.get_record(AUDIT, b"head")?.unwrap();
                assert_eq!(previous, b"0");
                let entry = [previous.as_slice(), &b">"[..], &summary.digest[..]].concat();
                records.put_record(AUDIT, b"entry.1", entry)?;
                records.put_record(AUDIT, b"head", b"1".to_vec())?;
                assert_eq!(records.get_record(AUDIT, b"head")?, Some(b"1".to_vec()));
                assert_eq!(records.scan_records(AUDIT, b"entry.", None, 10)?.len(), 1);
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(calls, 1);
    assert_eq!(outcome.loaded, (N + 2) as u64);
    assert_eq!(outcome.revision, r1.next().unwrap());
    assert_eq!(ds.head_revision().unwrap(), outcome.revision);
    assert_eq!(all_at(ds, outcome.revision).len(), N + 3);
    assert_eq!(ds.get_record(AUDIT, b"head").unwrap(), Some(b"1".to_vec()));
    let entry = ds.get_record(AUDIT, b"entry.1").unwrap().unwrap();
    assert_eq!(entry, [&b"0>"[..], &expected_digest[..]].concat());
    // The import's changes are its relationships only.
    let sets = ds.changes_since(r1, 10).unwrap();
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].changes.len(), N + 2);

    // Plain bulk_import still works beside it.
    let plain = ds
        .bulk_import(&mut many("p", 10).into_iter().map(Ok))
        .unwrap();
    assert_eq!(plain.revision, outcome.revision.next().unwrap());
}

fn bulk_import_with_a_failing_finish_keeps_nothing(engine: Engine) {
    let store = engine.fresh();
    let ds = store.ds.as_ref();
    let existing = "doc:e#viewer@user:e";
    let r1 = ds
        .write(&mut |txn| {
            txn.touch(rel(existing))?;
            txn.put_record(AUDIT, b"head", b"0".to_vec())
        })
        .unwrap();
    const N: usize = 25_000;
    let err = ds
        .bulk_import_with(
            &mut many("f", N).into_iter().map(Ok),
            &mut |summary, records| {
                assert_eq!(summary.loaded, N as u64);
                records.put_record(AUDIT, b"head", b"1".to_vec())?;
                records.put_record(AUDIT, b"entry.1", b"x".to_vec())?;
                Err(StoreError::Refused("audit refused".to_string()))
            },
        )
        .unwrap_err();
    assert_eq!(err, StoreError::Refused("audit refused".to_string()));
    assert_eq!(ds.head_revision().unwrap(), r1);
    assert_eq!(all_at(ds, r1), [existing]);
    assert_eq!(ds.get_record(AUDIT, b"head").unwrap(), Some(b"0".to_vec()));
    assert_eq!(ds.get_record(AUDIT, b"entry.1").unwrap(), None);

    // An import that fails before its end never calls finish.
    let mut calls = 0;
    let failing = many("g", 100).into_iter().enumerate().map(|(i, r)| {
        if i == 50 {
            Err(StoreError::Refused("bad input".to_string()))
        } else {
            Ok(r)
        }
    });
    let err = ds
        .bulk_import_with(&mut failing.into_iter(), &mut |_, _| {
            calls += 1;
            Ok(())
        })
        .unwrap_err();
    assert_eq!(err, StoreError::Refused("bad input".to_string()));
    assert_eq!(calls, 0);

    // The revision is free for the next import, which shows nothing of the failed ones.
    let outcome = ds
        .bulk_import_with(&mut many("f", 10).into_iter().map(Ok), &mut |summary, _| {
            assert_eq!(summary.revision, r1.next().unwrap());
            assert_eq!(summary.digest, import_digest(&many("f", 10)));
            Ok(())
        })
        .unwrap();
    assert_eq!(outcome.revision, r1.next().unwrap());
    assert_eq!(all_at(ds, outcome.revision).len(), 11);
    assert_eq!(ds.get_record(AUDIT, b"entry.1").unwrap(), None);
    let sets = ds.changes_since(r1, 10).unwrap();
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].changes.len(), 10);
}

fn invalid_record_families_and_keys_are_refused(engine: Engine) {
    let store = engine.fresh();
    let ds = store.ds.as_ref();
    let refused = |result: Result<(), StoreError>, needle: &str| match result {
        Err(StoreError::Refused(message)) => {
            assert!(
                message.contains(needle),
                "`{message}` should mention `{needle}`"
            )
        }
        other => panic!("expected a refusal mentioning {needle}, got {other:?}"),
    };
    let long = vec![b'k'; 1025];
    let bad_families = [
        RecordFamily::new(""),
        RecordFamily::new("has space"),
        RecordFamily::new("a/b"),
        RecordFamily::new("nul\0byte"),
        RecordFamily::new("x23456789012345678901234567890123"),
    ];
    for family in bad_families {
        let name = format!("`{}`", family.name());
        refused(ds.get_record(family, b"k").map(drop), &name);
        refused(ds.scan_records(family, b"", None, 10).map(drop), &name);
        refused(
            ds.write(&mut |txn| txn.put_record(family, b"k", Vec::new()))
                .map(drop),
            &name,
        );
        refused(
            ds.write(&mut |txn| txn.delete_record(family, b"k"))
                .map(drop),
            &name,
        );
        refused(
            ds.write(&mut |txn| txn.get_record(family, b"k").map(drop))
                .map(drop),
            &name,
        );
        refused(
            ds.write(&mut |txn| txn.scan_records(family, b"", None, 1).map(drop))
                .map(drop),
            &name,
        );
    }
    // The longest valid name is fine.
    RecordFamily::new("x2345678901234567890123456789012")
        .check()
        .unwrap();
    for key in [&b""[..], &long] {
        refused(ds.get_record(RECORDS, key).map(drop), "1 to 1024 bytes");
        refused(
            ds.write(&mut |txn| txn.put_record(RECORDS, key, b"v".to_vec()))
                .map(drop),
            "1 to 1024 bytes",
        );
        refused(
            ds.write(&mut |txn| txn.delete_record(RECORDS, key))
                .map(drop),
            "1 to 1024 bytes",
        );
        refused(
            ds.write(&mut |txn| txn.get_record(RECORDS, key).map(drop))
                .map(drop),
            "1 to 1024 bytes",
        );
    }
    // A refusal inside a transaction that carries on does not poison it.
    ds.write(&mut |txn| {
        assert!(txn.put_record(RECORDS, b"", Vec::new()).is_err());
        txn.put_record(RECORDS, b"ok", b"v".to_vec())
    })
    .unwrap();
    assert_eq!(ds.get_record(RECORDS, b"ok").unwrap(), Some(b"v".to_vec()));
    assert_eq!(ds.head_revision().unwrap(), Revision::new(1));
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
    records_put_get_delete_and_overwrite,
    records_scan_by_prefix_after_and_limit,
    records_transaction_sees_its_own_writes_and_deletes,
    records_of_an_aborted_transaction_are_not_written,
    records_are_not_relationship_changes,
    gc_never_removes_records,
    bulk_import_with_commits_finish_records_with_the_import,
    bulk_import_with_a_failing_finish_keeps_nothing,
    invalid_record_families_and_keys_are_refused,
);
