//! What only the RocksDB datastore can show: everything survives reopening, Watch resumes
//! across a restart with nothing lost or repeated, backups restore the store as of the
//! backup, foreign and busy directories are refused, the collector stops with the store, and
//! records survive all of that and can be read through a read-only view.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbor::model::Revision;
use arbor::schema;
use arbor::store::rocks::{RocksDatastore, RocksOptions};
use arbor::store::{Change, Datastore, RecordFamily, StoreError};

use crate::{all_at, rel, touch_all};

fn open(dir: &Path) -> RocksDatastore {
    RocksDatastore::open(
        dir,
        RocksOptions {
            gc_interval: None,
            ..RocksOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn reopening_keeps_relationships_schemas_and_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(
        schema::compile("definition user {}\ndefinition doc {\n    relation viewer: user\n}\n")
            .unwrap(),
    );
    let (head, before, sets) = {
        let ds = open(dir.path());
        ds.write(&mut |txn| txn.write_schema(Arc::clone(&schema)))
            .unwrap();
        for i in 0..5 {
            touch_all(&ds, &[&format!("doc:d{i}#viewer@user:u{i}")]);
        }
        ds.write(&mut |txn| txn.delete(&rel("doc:d0#viewer@user:u0")))
            .unwrap();
        let head = ds.head_revision().unwrap();
        let before: Vec<Vec<String>> = (0..=head.get())
            .map(|r| all_at(&ds, Revision::new(r)))
            .collect();
        (head, before, ds.changes_since(Revision::ZERO, 100).unwrap())
    };
    let ds = open(dir.path());
    assert_eq!(ds.head_revision().unwrap(), head);
    for (r, expected) in before.iter().enumerate() {
        assert_eq!(
            &all_at(&ds, Revision::new(r as u64)),
            expected,
            "revision {r}"
        );
    }
    assert!(ds.snapshot(Revision::ZERO).unwrap().schema().is_none());
    assert_eq!(
        ds.snapshot(head).unwrap().schema().unwrap().source(),
        schema.source()
    );
    assert_eq!(ds.changes_since(Revision::ZERO, 100).unwrap(), sets);
    let next = touch_all(&ds, &["doc:later#viewer@user:x"]);
    assert_eq!(next, head.next().unwrap());
    let last = ds.changes_since(head, 1).unwrap();
    assert!(last[0].timestamp >= sets.last().unwrap().timestamp);
}

#[test]
fn watch_resumes_across_reopen_without_loss_or_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen: Vec<Revision> = Vec::new();
    let mut touched: BTreeSet<String> = BTreeSet::new();
    let mut after = Revision::ZERO;
    for round in 0..4 {
        let ds = open(dir.path());
        for i in 0..5 {
            touch_all(&ds, &[&format!("doc:r{round}#viewer@user:u{i}")]);
        }
        // Read in small pages, as a Watch stream that disconnects would.
        loop {
            let page = ds.changes_since(after, 3).unwrap();
            let Some(last) = page.last() else { break };
            after = last.revision;
            for set in &page {
                seen.push(set.revision);
                for change in &set.changes {
                    let Change::Touch(r) = change else {
                        panic!("unexpected {change:?}")
                    };
                    assert!(touched.insert(r.to_string()), "{r} seen twice");
                }
            }
        }
    }
    let expected: Vec<Revision> = (1..=20).map(Revision::new).collect();
    assert_eq!(seen, expected);
    assert_eq!(touched.len(), 20);
}

#[test]
fn foreign_missing_and_busy_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let busy = RocksDatastore::open(dir.path(), RocksOptions::default()).unwrap_err();
    assert!(
        matches!(&busy, StoreError::DataDirectory(m) if m.contains("in use")),
        "{busy}"
    );
    drop(first);

    let junk = tempfile::tempdir().unwrap();
    std::fs::write(junk.path().join("CURRENT"), "not a manifest\n").unwrap();
    let err = RocksDatastore::open(junk.path(), RocksOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::DataDirectory(_)), "{err}");

    let missing = dir.path().join("missing");
    let err = RocksDatastore::open(
        &missing,
        RocksOptions {
            create_if_missing: false,
            ..RocksOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, StoreError::DataDirectory(m) if m.contains("not an Arbor data directory")),
        "{err}"
    );
    assert!(!missing.exists());
}

#[test]
fn a_backup_restores_the_store_as_of_the_backup() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backup = dir.path().join("backup");
    let ds = open(&data);
    let schema = Arc::new(schema::compile("definition user {}").unwrap());
    ds.write(&mut |txn| txn.write_schema(Arc::clone(&schema)))
        .unwrap();
    let outcome = ds
        .bulk_import(&mut (0..1000).map(|i| Ok(rel(&format!("doc:b{i}#viewer@user:u{i}")))))
        .unwrap();
    let at_backup = all_at(&ds, outcome.revision);
    ds.backup(&backup).unwrap();
    assert!(matches!(
        ds.backup(&backup),
        Err(StoreError::DataDirectory(_))
    ));
    touch_all(&ds, &["doc:after#viewer@user:x"]);
    drop(ds);

    let restored = open(&backup);
    assert_eq!(restored.head_revision().unwrap(), outcome.revision);
    assert_eq!(all_at(&restored, outcome.revision), at_backup);
    assert_eq!(
        restored
            .snapshot(outcome.revision)
            .unwrap()
            .schema()
            .unwrap()
            .source(),
        "definition user {}"
    );
    // The restored store is a working store of its own.
    let next = touch_all(&restored, &["doc:restored#viewer@user:y"]);
    assert_eq!(next, outcome.revision.next().unwrap());
    drop(restored);
    assert_eq!(all_at(&open(&data), next).len(), 1001);
}

#[test]
fn the_collector_runs_beside_writers_and_stops_with_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let ds = RocksDatastore::open(
        dir.path(),
        RocksOptions {
            gc_window: Duration::from_millis(20),
            gc_interval: Some(Duration::from_millis(5)),
            ..RocksOptions::default()
        },
    )
    .unwrap();
    for i in 0..60 {
        let r = ds
            .write(&mut |txn| {
                txn.delete(&rel(&format!("doc:c#viewer@user:u{}", i % 3)))?;
                txn.touch(rel(&format!("doc:c#viewer@user:u{}", (i + 1) % 3)))
            })
            .unwrap();
        let now = all_at(&ds, r);
        assert_eq!(now, [format!("doc:c#viewer@user:u{}", (i + 1) % 3)]);
        std::thread::sleep(Duration::from_millis(2));
    }
    let started = Instant::now();
    drop(ds);
    assert!(started.elapsed() < Duration::from_secs(5));

    // An hour-long interval does not hold up dropping either.
    let ds = RocksDatastore::open(
        dir.path(),
        RocksOptions {
            gc_interval: Some(Duration::from_secs(3600)),
            ..RocksOptions::default()
        },
    )
    .unwrap();
    let started = Instant::now();
    drop(ds);
    assert!(started.elapsed() < Duration::from_secs(5));
}

const RECORDS: RecordFamily = RecordFamily::new("test.records");

fn all_records(ds: &dyn Datastore) -> Vec<(Vec<u8>, Vec<u8>)> {
    ds.scan_records(RECORDS, b"", None, usize::MAX).unwrap()
}

/// A few records written by a transaction and by a bulk import's finish step, with
/// relationships; returns every record.
fn write_records(ds: &dyn Datastore) -> Vec<(Vec<u8>, Vec<u8>)> {
    ds.write(&mut |txn| {
        txn.touch(rel("doc:r#viewer@user:a"))?;
        txn.put_record(RECORDS, b"txn.1", b"one".to_vec())?;
        txn.put_record(RECORDS, b"txn.2", b"two".to_vec())?;
        txn.put_record(RECORDS, b"txn.3", b"three".to_vec())
    })
    .unwrap();
    ds.write(&mut |txn| txn.delete_record(RECORDS, b"txn.2"))
        .unwrap();
    ds.bulk_import_with(
        &mut (0..100).map(|i| Ok(rel(&format!("doc:i{i}#viewer@user:u{i}")))),
        &mut |summary, records| records.put_record(RECORDS, b"import", summary.digest.to_vec()),
    )
    .unwrap();
    let all = all_records(ds);
    assert_eq!(
        all.iter().map(|(k, _)| k.as_slice()).collect::<Vec<_>>(),
        [&b"import"[..], b"txn.1", b"txn.3"]
    );
    all
}

#[test]
fn records_survive_reopening_and_the_store_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let (records, head) = {
        let ds = open(dir.path());
        (write_records(&ds), ds.head_revision().unwrap())
    };
    {
        let ds = open(dir.path());
        assert_eq!(ds.head_revision().unwrap(), head);
        assert_eq!(all_records(&ds), records);
        assert_eq!(
            ds.get_record(RECORDS, b"txn.1").unwrap(),
            Some(b"one".to_vec())
        );
        // Opened again, it reads and writes records and relationships as before.
        let next = ds
            .write(&mut |txn| {
                assert_eq!(txn.get_record(RECORDS, b"txn.3")?, Some(b"three".to_vec()));
                txn.delete_record(RECORDS, b"txn.3")?;
                txn.put_record(RECORDS, b"txn.4", b"four".to_vec())?;
                txn.touch(rel("doc:r2#viewer@user:b"))
            })
            .unwrap();
        assert_eq!(next, head.next().unwrap());
        ds.flush().unwrap();
    }
    let ds = open(dir.path());
    assert_eq!(ds.head_revision().unwrap(), head.next().unwrap());
    let keys: Vec<Vec<u8>> = all_records(&ds).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [b"import".to_vec(), b"txn.1".to_vec(), b"txn.4".to_vec()]
    );
    assert_eq!(all_at(&ds, ds.head_revision().unwrap()).len(), 102);
}

#[test]
fn backups_carry_records() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ds = open(&data);
    let records = write_records(&ds);
    let head = ds.head_revision().unwrap();

    // A checkpoint of the open store.
    let checkpoint = dir.path().join("checkpoint");
    ds.backup(&checkpoint).unwrap();
    // The logical copy `arbor backup` makes of a directory another process has open.
    let copy = dir.path().join("copy");
    RocksDatastore::backup_in_use(&data, &copy).unwrap();
    ds.write(&mut |txn| txn.put_record(RECORDS, b"after", b"x".to_vec()))
        .unwrap();
    drop(ds);

    for backup in [&checkpoint, &copy] {
        let restored = open(backup);
        assert_eq!(restored.head_revision().unwrap(), head);
        assert_eq!(all_records(&restored), records, "{}", backup.display());
        assert_eq!(all_at(&restored, head).len(), 101);
    }
}

#[test]
fn a_read_only_view_reads_records_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let ds = open(dir.path());
    let records = write_records(&ds);
    let head = ds.head_revision().unwrap();

    // While the store is open elsewhere, a read-only view sees what it has committed.
    let view = RocksDatastore::open_read_only(dir.path()).unwrap();
    assert_eq!(view.head_revision().unwrap(), head);
    assert_eq!(all_records(&view), records);
    drop(view);
    drop(ds);

    let view = RocksDatastore::open_read_only(dir.path()).unwrap();
    assert_eq!(all_records(&view), records);
    assert_eq!(
        view.get_record(RECORDS, b"txn.3").unwrap(),
        Some(b"three".to_vec())
    );
    assert_eq!(view.get_record(RECORDS, b"txn.2").unwrap(), None);
    assert_eq!(
        view.scan_records(RECORDS, b"txn.", Some(b"txn.1"), 10)
            .unwrap(),
        [(b"txn.3".to_vec(), b"three".to_vec())]
    );
    assert_eq!(all_at(&view, head).len(), 101);
    assert_eq!(view.changes_since(Revision::ZERO, 10).unwrap().len(), 3);
    let refused = |result: Result<(), StoreError>| {
        assert!(
            matches!(&result, Err(StoreError::Refused(m)) if m.contains("read-only")),
            "{result:?}"
        );
    };
    refused(
        view.write(&mut |txn| txn.put_record(RECORDS, b"k", Vec::new()))
            .map(drop),
    );
    refused(
        view.bulk_import(&mut std::iter::once(Ok(rel("doc:x#viewer@user:x"))))
            .map(drop),
    );
    refused(
        view.collect_garbage(arbor::model::Timestamp::now())
            .map(drop),
    );
    refused(view.start_gc(Duration::from_secs(60)));
    assert_eq!(view.head_revision().unwrap(), head);
    drop(view);

    // Nothing changed: the store opens read-write as before.
    let ds = open(dir.path());
    assert_eq!(ds.head_revision().unwrap(), head);
    assert_eq!(all_records(&ds), records);
    drop(ds);

    let missing = dir.path().join("missing");
    let err = RocksDatastore::open_read_only(&missing).unwrap_err();
    assert!(
        matches!(&err, StoreError::DataDirectory(m) if m.contains("not an Arbor data directory")),
        "{err}"
    );
    assert!(!missing.exists());
}
