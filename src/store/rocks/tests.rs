//! Unit tests of the RocksDB datastore that need its insides: a foreign on-disk format and a
//! missing column family are refused, an import that never committed (a crash between its
//! batches and its commit) is invisible and removed at the next open, and a directory written
//! before the `records` column family existed opens, reads and backs up as one without records.

use rocksdb::{DB, IteratorMode, Options};

use crate::model::{Relationship, RelationshipFilter};
use crate::store::{Datastore, RecordFamily, StoreError};

use super::{RocksDatastore, RocksOptions, import, keys};

fn options() -> RocksOptions {
    RocksOptions {
        gc_interval: None,
        ..RocksOptions::default()
    }
}

fn rel(text: &str) -> Relationship {
    Relationship::parse(text).unwrap()
}

#[test]
fn another_on_disk_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(RocksDatastore::open(dir.path(), options()).unwrap());
    {
        let db = DB::open_cf(&Options::default(), dir.path(), keys::COLUMN_FAMILIES).unwrap();
        let meta = db.cf_handle(keys::CF_META).unwrap();
        db.put_cf(meta, keys::META_FORMAT_VERSION, 99u32.to_be_bytes())
            .unwrap();
    }
    let err = RocksDatastore::open(dir.path(), options()).unwrap_err();
    let StoreError::DataDirectory(message) = err else {
        panic!("{err:?}")
    };
    assert!(message.contains("format 99"), "{message}");
    assert!(
        message.contains(&format!("reads format {}", keys::FORMAT_VERSION)),
        "{message}"
    );
}

#[test]
fn a_rocksdb_directory_without_arbor_column_families_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        let db = DB::open(&opts, dir.path()).unwrap();
        db.put(b"k", b"v").unwrap();
    }
    let err = RocksDatastore::open(dir.path(), options()).unwrap_err();
    assert!(
        matches!(&err, StoreError::DataDirectory(m) if m.contains("not an Arbor data directory")),
        "{err}"
    );
}

#[test]
fn an_import_that_never_committed_is_invisible_and_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksDatastore::open(dir.path(), options()).unwrap();
    let head = store
        .write(&mut |txn| txn.touch(rel("doc:kept#viewer@user:a")))
        .unwrap();
    let pending = head.next().unwrap();
    // Two batches' worth, written but never committed: what a crash mid-import leaves.
    let mut rels = (0..30_000).map(|i| Ok(rel(&format!("doc:p{i}#viewer@user:u{i}"))));
    let written = import::stream(&store.shared, head, pending, &mut rels, None).unwrap();
    assert_eq!(written, 30_000);
    let visible = store
        .snapshot(head)
        .unwrap()
        .read(&RelationshipFilter::default(), None)
        .count();
    assert_eq!(visible, 1);
    assert!(store.snapshot(pending).is_err());
    drop(store);

    let store = RocksDatastore::open(dir.path(), options()).unwrap();
    assert_eq!(store.head_revision().unwrap(), head);
    let db = &store.shared.db;
    let leftovers = |cf: &str| {
        db.iterator_cf(store.shared.cf(cf).unwrap(), IteratorMode::Start)
            .map(Result::unwrap)
            .filter(|(k, _)| keys::split_version(k).is_some_and(|(_, r)| r == pending))
            .count()
    };
    assert_eq!(leftovers(keys::CF_RELATIONSHIPS), 0);
    assert_eq!(leftovers(keys::CF_SUBJECTS), 0);
    let changelog_above_head = db
        .iterator_cf(
            store.shared.cf(keys::CF_CHANGELOG).unwrap(),
            IteratorMode::Start,
        )
        .map(Result::unwrap)
        .filter(|(k, _)| keys::parse_changelog_key(k).is_some_and(|(r, _)| r > head))
        .count();
    assert_eq!(changelog_above_head, 0);

    // The revision is reused by the next write, which shows only its own change.
    let next = store
        .write(&mut |txn| txn.touch(rel("doc:next#viewer@user:b")))
        .unwrap();
    assert_eq!(next, pending);
    let all: Vec<String> = store
        .snapshot(next)
        .unwrap()
        .read(&RelationshipFilter::default(), None)
        .map(|r| r.unwrap().to_string())
        .collect();
    assert_eq!(all, ["doc:kept#viewer@user:a", "doc:next#viewer@user:b"]);
    let changes = store.changes_since(head, 10).unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].changes.len(), 1);
}

#[test]
fn a_directory_from_before_records_opens_and_gains_the_family() {
    const FAMILY: RecordFamily = RecordFamily::new("test");
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    let head = {
        let store = RocksDatastore::open(&dir, options()).unwrap();
        store
            .write(&mut |txn| txn.touch(rel("doc:old#viewer@user:a")))
            .unwrap()
    };
    // What a build before records left: every other column family, and format 1.
    {
        let mut db = DB::open_cf(&Options::default(), &dir, keys::COLUMN_FAMILIES).unwrap();
        db.drop_cf(keys::CF_RECORDS).unwrap();
    }
    let listed = || DB::list_cf(&Options::default(), &dir).unwrap();
    assert!(!listed().iter().any(|cf| cf == keys::CF_RECORDS));

    // A read-only view reads it as a store without records, and changes nothing.
    let view = RocksDatastore::open_read_only(&dir).unwrap();
    assert_eq!(view.head_revision().unwrap(), head);
    assert_eq!(view.get_record(FAMILY, b"k").unwrap(), None);
    assert!(view.scan_records(FAMILY, b"", None, 10).unwrap().is_empty());
    drop(view);
    assert!(!listed().iter().any(|cf| cf == keys::CF_RECORDS));

    // A backup of it in use is a complete data directory, records family included.
    let copy = root.path().join("copy");
    RocksDatastore::backup_in_use(&dir, &copy).unwrap();
    let restored = RocksDatastore::open(&copy, options()).unwrap();
    assert_eq!(restored.head_revision().unwrap(), head);
    restored
        .write(&mut |txn| txn.put_record(FAMILY, b"k", b"v".to_vec()))
        .unwrap();
    drop(restored);

    // Opening it read-write creates the family; records then work and persist.
    let store = RocksDatastore::open(&dir, options()).unwrap();
    assert!(listed().iter().any(|cf| cf == keys::CF_RECORDS));
    assert_eq!(store.get_record(FAMILY, b"k").unwrap(), None);
    let next = store
        .write(&mut |txn| txn.put_record(FAMILY, b"k", b"v".to_vec()))
        .unwrap();
    assert_eq!(next, head.next().unwrap());
    drop(store);
    let store = RocksDatastore::open(&dir, options()).unwrap();
    assert_eq!(store.get_record(FAMILY, b"k").unwrap(), Some(b"v".to_vec()));
    let all: Vec<String> = store
        .snapshot(next)
        .unwrap()
        .read(&RelationshipFilter::default(), None)
        .map(|r| r.unwrap().to_string())
        .collect();
    assert_eq!(all, ["doc:old#viewer@user:a"]);
}
