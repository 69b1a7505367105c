//! Bulk import into the RocksDB datastore: relationships streamed in large batches at one
//! revision, invisible until one final synced commit; the rollback of an import that failed,
//! and the recovery at open of one that never committed (a crash mid-import).
//!
//! Every batch holds the versions it adds and a changelog chunk listing them, so the chunks of
//! an uncommitted revision (above the head) list exactly what must be removed. The batches skip
//! the write-ahead log (the import's biggest cost after the memtables); the column families
//! flush atomically (`set_atomic_flush`), so whatever part of an import reaches the disk before
//! a crash has its chunks with it. The commit flushes the memtables first, then writes the
//! commit record with a synced WAL: acknowledged means on disk.
//!
//! `bulk_import_with` also keeps the digest of what it loads while it streams, and calls its
//! `finish` step after the last batch, still holding the writer lock: the records `finish`
//! writes go into the commit batch, and an error from it rolls the import back like any other.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use rocksdb::{WriteBatch, WriteOptions};

use crate::model::{Relationship, Revision, Timestamp};

use super::super::records::ImportDigest;
use super::super::{BulkImportOutcome, ImportSummary, Records, StoreError};
use super::read::{self, KeyRange};
use super::records::PendingRecords;
use super::{Shared, codec, keys, rocks_err};

/// The step `bulk_import_with` runs before the import commits.
pub(super) type Finish<'f> =
    &'f mut dyn FnMut(&ImportSummary, &mut dyn Records) -> Result<(), StoreError>;

/// Relationships per write batch: large enough that per-batch costs vanish, small enough
/// that a batch (two versions and a changelog entry each, ~150 bytes) stays a few MiB.
const BATCH_RELATIONSHIPS: usize = 20_000;

/// Encoded batches that may wait for the writer thread.
const WRITE_QUEUE: usize = 2;

/// Version deletions per batch when rolling an import back.
const ROLLBACK_BATCH: usize = 50_000;

/// Loads `relationships` at the next revision (see `Datastore::bulk_import`); with `finish`,
/// computes the digest and runs `finish` before committing (see `Datastore::bulk_import_with`).
pub(super) fn bulk_import(
    shared: &Shared,
    relationships: &mut dyn Iterator<Item = Result<Relationship, StoreError>>,
    finish: Option<Finish<'_>>,
) -> Result<BulkImportOutcome, StoreError> {
    let _writer = shared.lock_writer()?;
    let base = shared.state()?.head;
    let revision = base
        .next()
        .ok_or_else(|| StoreError::Internal("revision counter exhausted".to_string()))?;
    let started = std::time::Instant::now();
    let mut digest = finish.is_some().then(ImportDigest::new);
    let loaded = match stream(shared, base, revision, relationships, digest.as_mut()) {
        Ok(loaded) => loaded,
        Err(e) => return Err(abort(shared, revision, e)),
    };
    let mut records = PendingRecords::new(shared);
    if let (Some(finish), Some(digest)) = (finish, digest) {
        let summary = ImportSummary {
            loaded,
            revision,
            digest: digest.finish(),
        };
        if let Err(e) = finish(&summary, &mut records) {
            return Err(abort(shared, revision, e));
        }
    }
    // The versions were written without the WAL: make them durable before the commit is.
    if let Err(e) = shared.flush_all() {
        return Err(abort(shared, revision, e));
    }
    let timestamp = shared.state()?.clock.stamp(Timestamp::now());
    let mut batch = WriteBatch::default();
    let built = shared
        .add_commit(
            &mut batch,
            revision,
            timestamp,
            &codec::finish_changes(0, &[]),
            None,
        )
        .and_then(|()| records.add_to(&mut batch));
    if let Err(e) = built {
        return Err(abort(shared, revision, e));
    }
    shared.commit(batch)?;
    shared.publish(revision, timestamp, None)?;
    tracing::info!(%revision, loaded, elapsed = ?started.elapsed(), "bulk import committed");
    Ok(BulkImportOutcome { loaded, revision })
}

/// Rolls back the failed import at `revision` and returns the error that failed it.
fn abort(shared: &Shared, revision: Revision, error: StoreError) -> StoreError {
    if let Err(rollback_err) = rollback(shared, revision) {
        // What the import wrote is still there (invisible); the next open removes it.
        shared
            .broken
            .store(true, std::sync::atomic::Ordering::SeqCst);
        tracing::error!(error = %rollback_err, "rolling back a failed import failed");
    }
    error
}

/// Whether the forward index holds no key at all (then no existing relationship can clash).
fn forward_index_empty(shared: &Shared) -> Result<bool, StoreError> {
    let mut empty = true;
    if let Some(first) = read::VisibleVersions::new(
        shared,
        keys::CF_RELATIONSHIPS,
        &KeyRange {
            start: Vec::new(),
            end: None,
            same_prefix: false,
        },
        Revision::new(u64::MAX),
    )
    .next()
    {
        first?;
        empty = false;
    }
    Ok(empty)
}

/// What the encoding thread hands the writing thread.
enum ToWriter {
    /// A batch to write (without the WAL: the commit flushes the memtables).
    Batch(WriteBatch),
    /// Answer once every batch sent before has been written.
    Barrier(SyncSender<()>),
}

/// Hashes that are already hashes: the set of seen tuple hashes needs no second hash.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn writer_stopped() -> StoreError {
    StoreError::Internal("the import writer stopped".to_string())
}

/// Writes every relationship at `revision` in batches; returns how many. The calling thread
/// pulls and encodes while a second thread writes the batches, so parsing, encoding and
/// RocksDB's memtable inserts overlap. Adds every relationship written to `digest`, if any.
pub(super) fn stream(
    shared: &Shared,
    base: Revision,
    revision: Revision,
    relationships: &mut dyn Iterator<Item = Result<Relationship, StoreError>>,
    digest: Option<&mut ImportDigest>,
) -> Result<u64, StoreError> {
    // Existing relationships can only clash if the store holds any.
    let check_existing = !forward_index_empty(shared)?;
    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<ToWriter>(WRITE_QUEUE);
        let writer = std::thread::Builder::new()
            .name("arbor-import-write".to_string())
            .spawn_scoped(scope, move || write_batches(shared, rx))
            .map_err(|e| StoreError::Internal(format!("cannot start the import writer: {e}")))?;
        let encoded = encode(
            shared,
            base,
            revision,
            check_existing,
            relationships,
            digest,
            &tx,
        );
        drop(tx);
        let written = writer
            .join()
            .map_err(|_| StoreError::Internal("the import writer thread panicked".to_string()))?;
        // If the writer failed, the encoder only saw it stop: report the writer's error.
        written?;
        encoded
    })
}

fn write_batches(shared: &Shared, rx: Receiver<ToWriter>) -> Result<(), StoreError> {
    let mut opts = WriteOptions::default();
    opts.disable_wal(true);
    for message in rx {
        match message {
            ToWriter::Batch(batch) => shared.db.write_opt(batch, &opts).map_err(rocks_err)?,
            ToWriter::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }
    Ok(())
}

/// Encodes every relationship into batches (versions in both indexes and a changelog chunk
/// per batch) and sends them to the writer.
fn encode(
    shared: &Shared,
    base: Revision,
    revision: Revision,
    check_existing: bool,
    relationships: &mut dyn Iterator<Item = Result<Relationship, StoreError>>,
    mut digest: Option<&mut ImportDigest>,
    tx: &SyncSender<ToWriter>,
) -> Result<u64, StoreError> {
    let forward = shared.cf(keys::CF_RELATIONSHIPS)?;
    let reverse = shared.cf(keys::CF_SUBJECTS)?;
    let changelog = shared.cf(keys::CF_CHANGELOG)?;
    let suffix = keys::version_suffix(revision);
    // Hashes of every tuple imported so far; a repeated hash is checked exactly.
    let hasher = RandomState::new();
    let mut seen: HashSet<u64, BuildHasherDefault<Prehashed>> = HashSet::default();
    let mut batch = WriteBatch::default();
    let (mut body, mut value, mut tuple, mut rtuple, mut key) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut in_batch = 0usize;
    let mut chunk = 1u32;
    let mut loaded = 0u64;

    let mut flush = |batch: &mut WriteBatch,
                     body: &mut Vec<u8>,
                     in_batch: &mut usize|
     -> Result<(), StoreError> {
        if *in_batch == 0 {
            return Ok(());
        }
        batch.put_cf(
            changelog,
            keys::changelog_key(revision, chunk),
            codec::finish_changes(*in_batch, body),
        );
        tx.send(ToWriter::Batch(std::mem::take(batch)))
            .map_err(|_| writer_stopped())?;
        body.clear();
        *in_batch = 0;
        chunk = chunk
            .checked_add(1)
            .ok_or_else(|| StoreError::Internal("import too large".to_string()))?;
        Ok(())
    };

    for item in relationships {
        let rel = item?;
        tuple.clear();
        keys::push_forward_tuple(&mut tuple, &rel)?;
        key.clear();
        key.extend_from_slice(&tuple);
        key.extend_from_slice(&suffix);
        if !seen.insert(hasher.hash_one(&tuple)) {
            // Seen before, or a hash collision: write everything so far, then look.
            flush(&mut batch, &mut body, &mut in_batch)?;
            let (done, wait) = sync_channel(1);
            tx.send(ToWriter::Barrier(done))
                .map_err(|_| writer_stopped())?;
            wait.recv().map_err(|_| writer_stopped())?;
            if shared
                .db
                .get_pinned_cf(forward, &key)
                .map_err(rocks_err)?
                .is_some()
            {
                // Twice in this import.
                return Err(StoreError::AlreadyExists(rel.to_string()));
            }
        }
        if check_existing && read::visible_version(shared, &tuple, base)?.is_some() {
            return Err(StoreError::AlreadyExists(rel.to_string()));
        }
        value.clear();
        codec::push_version(&mut value, Some(&rel));
        batch.put_cf(forward, &key, &value);
        rtuple.clear();
        keys::push_reverse_tuple(&mut rtuple, &rel)?;
        key.clear();
        key.extend_from_slice(&rtuple);
        key.extend_from_slice(&suffix);
        batch.put_cf(reverse, &key, &value);
        codec::push_encoded_touch(&mut body, &tuple, &value);
        in_batch += 1;
        loaded += 1;
        if in_batch >= BATCH_RELATIONSHIPS {
            flush(&mut batch, &mut body, &mut in_batch)?;
        }
        if let Some(digest) = digest.as_deref_mut() {
            digest.add(&rel);
        }
    }
    flush(&mut batch, &mut body, &mut in_batch)?;
    Ok(loaded)
}

/// Removes every version and changelog chunk written at the uncommitted `revision`.
pub(super) fn rollback(shared: &Shared, revision: Revision) -> Result<u64, StoreError> {
    let forward = shared.cf(keys::CF_RELATIONSHIPS)?;
    let reverse = shared.cf(keys::CF_SUBJECTS)?;
    let changelog = shared.cf(keys::CF_CHANGELOG)?;
    let start = keys::changelog_key(revision, 0);
    let end = match revision.next() {
        Some(next) => keys::changelog_key(next, 0).to_vec(),
        None => vec![0xff; 13],
    };
    let mut batch = WriteBatch::default();
    let mut removed = 0u64;
    let no_sync = WriteOptions::default();
    for item in shared.db.iterator_cf(
        changelog,
        rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward),
    ) {
        let (key, value) = item.map_err(rocks_err)?;
        if key.as_ref() >= end.as_slice() {
            break;
        }
        for tuple in codec::changed_tuples(&value)? {
            batch.delete_cf(forward, keys::version_key(&tuple, revision));
            let rtuple = keys::reverse_from_forward(&tuple).ok_or_else(|| {
                StoreError::Internal("corrupt stored data: malformed changelog tuple".to_string())
            })?;
            batch.delete_cf(reverse, keys::version_key(&rtuple, revision));
            removed += 1;
            if batch.len() >= ROLLBACK_BATCH {
                shared
                    .db
                    .write_opt(std::mem::take(&mut batch), &no_sync)
                    .map_err(rocks_err)?;
            }
        }
    }
    batch.delete_range_cf(changelog, start.as_slice(), end.as_slice());
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    shared.db.write_opt(batch, &sync).map_err(rocks_err)?;
    tracing::info!(%revision, removed, "uncommitted import rolled back");
    Ok(removed)
}

/// Removes what imports that never committed left behind: changelog chunks above the head.
pub(super) fn recover(shared: &Shared) -> Result<(), StoreError> {
    let head = shared.state()?.head;
    let Some(first) = head.next() else {
        return Ok(());
    };
    let changelog = shared.cf(keys::CF_CHANGELOG)?;
    let mut pending = Vec::new();
    for item in shared.db.iterator_cf(
        changelog,
        rocksdb::IteratorMode::From(&keys::changelog_key(first, 0), rocksdb::Direction::Forward),
    ) {
        let (key, _) = item.map_err(rocks_err)?;
        let (revision, _) = keys::parse_changelog_key(&key)
            .ok_or_else(|| StoreError::Internal("corrupt changelog key".to_string()))?;
        if pending.last() != Some(&revision) {
            pending.push(revision);
        }
    }
    for revision in pending {
        tracing::warn!(
            path = %shared.path.display(),
            %revision,
            "removing an import that never committed"
        );
        rollback(shared, revision)?;
    }
    Ok(())
}
