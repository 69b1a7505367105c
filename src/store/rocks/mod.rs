//! The RocksDB datastore (the only module that names RocksDB): durable multi-version
//! relationships, schema history, a changelog for Watch, records, streaming bulk import,
//! background garbage collection, online checkpoints and read-only views.
//!
//! Writers are serialized by one mutex, so preconditions checked inside a transaction cannot
//! race another writer; each commit is one synced `WriteBatch` holding the new versions, the
//! changelog entry, the commit record, the transaction's record writes and the new head.
//! Readers never block: a snapshot reads the versions at or below its revision (see `keys.rs`
//! for the layout); record reads see the newest committed records.
//!
//! Column families and their options (chosen in `column_family_options`):
//! - `relationships` and `subjects` (forward and reverse indexes) are read by prefix — one
//!   resource and relation, one subject and resource type and relation — and probed for one
//!   tuple on every CREATE: each has a prefix extractor on exactly those components, a prefix
//!   bloom filter in every table and in the memtable (whole-key filtering off: a whole key
//!   carries a version suffix nobody looks up), and index and filter blocks in the shared
//!   block cache, partitioned into small blocks under a pinned top level. LZ4 for the upper levels, Zstandard for the bottommost, where most data sits.
//! - `changelog` is appended to in revision order and read by range (Watch), so no filter.
//! - `revisions`, `schemas` and `meta` are tiny; they keep the defaults.
//! - `records` is read by point lookups and short scans within one family, written a few keys
//!   per commit; the defaults (LZ4, whole-key bloom filters off, as RocksDB ships) serve it.

mod codec;
mod gc;
mod import;
mod keys;
mod read;
mod records;
#[cfg(test)]
mod tests;
mod txn;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB,
    DBCompressionType, IteratorMode, Options, SliceTransform, WriteBatch, WriteOptions,
};

use crate::model::{Relationship, Revision, Timestamp};
use crate::schema::{self, Schema};

use super::clock::{DEFAULT_GC_WINDOW, GcStats, RevisionClock, SnapshotLeases};
use super::{
    BulkImportOutcome, ChangeSet, Datastore, ImportSummary, RecordFamily, Records, Snapshot,
    StoreError, Transaction,
};

/// How often the background garbage collector runs unless configured otherwise (SpiceDB's
/// default `--datastore-gc-interval`): often enough that dead versions never pile up for
/// long, rarely enough that the full sweep costs nothing noticeable.
pub const DEFAULT_GC_INTERVAL: Duration = Duration::from_secs(3 * 60);

/// Size of the block cache shared by the column families unless configured otherwise:
/// enough to keep the filters, indexes and hot blocks of a few million relationships.
pub const DEFAULT_BLOCK_CACHE_BYTES: usize = 256 << 20;

/// Memtable size of the two indexes: RocksDB's default, large enough that a bulk import
/// flushes in big sorted runs.
const INDEX_WRITE_BUFFER_BYTES: usize = 64 << 20;

/// Bits per key of the prefix bloom filters: about 1% false positives.
const BLOOM_BITS_PER_KEY: f64 = 10.0;

/// Size of a partition of a table's index and filter (see `column_family_options`).
const METADATA_BLOCK_BYTES: usize = 4096;

/// Share of the memtable given to its prefix bloom filter.
const MEMTABLE_PREFIX_BLOOM_RATIO: f64 = 0.1;

/// How the RocksDB datastore is opened.
#[derive(Debug, Clone)]
pub struct RocksOptions {
    /// How long a revision stays readable after it stops being the head.
    pub gc_window: Duration,
    /// How often the background garbage collector runs; `None` starts no collector (call
    /// `Datastore::collect_garbage` yourself).
    pub gc_interval: Option<Duration>,
    /// Create an empty data directory if there is none (otherwise opening a missing one fails).
    pub create_if_missing: bool,
    /// Size of the block cache shared by the column families, in bytes.
    pub block_cache_bytes: usize,
}

impl Default for RocksOptions {
    fn default() -> Self {
        RocksOptions {
            gc_window: DEFAULT_GC_WINDOW,
            gc_interval: Some(DEFAULT_GC_INTERVAL),
            create_if_missing: true,
            block_cache_bytes: DEFAULT_BLOCK_CACHE_BYTES,
        }
    }
}

/// Converts a RocksDB error.
fn rocks_err(e: rocksdb::Error) -> StoreError {
    StoreError::Internal(format!("rocksdb: {e}"))
}

fn poisoned<T>(_: PoisonError<T>) -> StoreError {
    StoreError::Internal("rocksdb datastore lock poisoned by an earlier panic".to_string())
}

/// What readers share and writers change, behind one read-write lock.
#[derive(Debug)]
struct State {
    head: Revision,
    clock: RevisionClock,
    /// The schema history still inside the GC window, oldest first.
    schemas: Vec<(Revision, Arc<Schema>)>,
}

impl State {
    fn schema_at(&self, at: Revision) -> Option<Arc<Schema>> {
        self.schemas
            .iter()
            .rev()
            .find(|(rev, _)| *rev <= at)
            .map(|(_, s)| Arc::clone(s))
    }
}

/// Everything the datastore, its snapshots and its collector share.
struct Shared {
    db: DB,
    path: PathBuf,
    options: RocksOptions,
    /// Serializes writers (write transactions, bulk imports).
    writer: Mutex<()>,
    state: RwLock<State>,
    leases: SnapshotLeases,
    head_tx: tokio::sync::watch::Sender<Revision>,
    /// Set when a commit failed in a way that leaves the on-disk state uncertain: every
    /// later write is refused until the store is reopened.
    broken: AtomicBool,
    /// Opened by `open_read_only`: every write and garbage collection is refused.
    read_only: bool,
}

impl Shared {
    fn cf(&self, name: &str) -> Result<&ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::Internal(format!("column family `{name}` is not open")))
    }

    fn state(&self) -> Result<RwLockReadGuard<'_, State>, StoreError> {
        self.state.read().map_err(poisoned)
    }

    fn state_mut(&self) -> Result<RwLockWriteGuard<'_, State>, StoreError> {
        self.state.write().map_err(poisoned)
    }

    /// Fails if the store was opened read-only.
    fn check_writable(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::Refused(format!(
                "data directory `{}` is open read-only",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Takes the writer lock, refusing if the store is read-only or an earlier commit broke it.
    fn lock_writer(&self) -> Result<MutexGuard<'_, ()>, StoreError> {
        self.check_writable()?;
        let guard = self.writer.lock().map_err(poisoned)?;
        if self.broken.load(Ordering::SeqCst) {
            return Err(StoreError::Internal(format!(
                "an earlier commit to `{}` failed; reopen the datastore",
                self.path.display()
            )));
        }
        Ok(guard)
    }

    /// Writes a commit batch with the WAL synced; a failure breaks the store.
    fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(batch, &opts).map_err(|e| {
            self.broken.store(true, Ordering::SeqCst);
            tracing::error!(path = %self.path.display(), error = %e, "commit failed");
            rocks_err(e)
        })
    }

    /// Makes `revision` (already durable) the head in memory and tells subscribers.
    fn publish(
        &self,
        revision: Revision,
        timestamp: Timestamp,
        schema: Option<Arc<Schema>>,
    ) -> Result<(), StoreError> {
        {
            let mut state = self.state_mut()?;
            state.head = revision;
            state.clock.record(revision, timestamp);
            if let Some(schema) = schema {
                state.schemas.push((revision, schema));
            }
        }
        self.head_tx.send_replace(revision);
        Ok(())
    }

    /// Flushes the memtables of every column family, atomically, to table files.
    fn flush_all(&self) -> Result<(), StoreError> {
        let cfs: Vec<&ColumnFamily> = keys::COLUMN_FAMILIES
            .iter()
            .map(|name| self.cf(name))
            .collect::<Result<_, _>>()?;
        self.db
            .flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default())
            .map_err(rocks_err)
    }

    /// Adds the commit record, changelog chunk 0, schema and head of `revision` to `batch`.
    fn add_commit(
        &self,
        batch: &mut WriteBatch,
        revision: Revision,
        timestamp: Timestamp,
        changes_chunk: &[u8],
        schema: Option<&Schema>,
    ) -> Result<(), StoreError> {
        batch.put_cf(
            self.cf(keys::CF_CHANGELOG)?,
            keys::changelog_key(revision, 0),
            changes_chunk,
        );
        batch.put_cf(
            self.cf(keys::CF_REVISIONS)?,
            keys::revision_key(revision),
            codec::encode_commit(timestamp, schema.is_some()),
        );
        if let Some(schema) = schema {
            batch.put_cf(
                self.cf(keys::CF_SCHEMAS)?,
                keys::revision_key(revision),
                schema.source().as_bytes(),
            );
        }
        batch.put_cf(
            self.cf(keys::CF_META)?,
            keys::META_HEAD,
            codec::encode_u64(revision.get()),
        );
        Ok(())
    }
}

/// The background garbage collector: a thread that runs a pass every interval and stops
/// when the datastore is dropped.
struct Collector {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        // Dropping the sender wakes the thread, which then returns.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the garbage-collection thread panicked");
        }
    }
}

/// A durable datastore in a RocksDB directory.
pub struct RocksDatastore {
    shared: Arc<Shared>,
    collector: Mutex<Option<Collector>>,
}

impl std::fmt::Debug for RocksDatastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDatastore")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

fn prefix_transform(name: &str, forward: bool) -> SliceTransform {
    if forward {
        SliceTransform::create(name, keys::forward_prefix, Some(keys::in_forward_domain))
    } else {
        SliceTransform::create(name, keys::reverse_prefix, Some(keys::in_reverse_domain))
    }
}

/// The options of one column family (see the module documentation for why).
fn column_family_options(name: &str, cache: &Cache) -> Options {
    let mut opts = Options::default();
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    match name {
        keys::CF_RELATIONSHIPS | keys::CF_SUBJECTS => {
            let forward = name == keys::CF_RELATIONSHIPS;
            opts.set_prefix_extractor(prefix_transform(
                if forward {
                    "arbor.forward.v1"
                } else {
                    "arbor.reverse.v1"
                },
                forward,
            ));
            opts.set_memtable_prefix_bloom_ratio(MEMTABLE_PREFIX_BLOOM_RATIO);
            table.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
            table.set_whole_key_filtering(false);
            table.set_cache_index_and_filter_blocks(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
            // Partitioned index and filters: a table's index and filter are split into blocks
            // of about 4 KiB under a small top level that stays pinned, so a lookup loads only
            // the partitions it needs. Whole, they are megabytes per table at 10M
            // relationships: larger than a shard of the block cache, so every lookup read,
            // checksummed and dropped them again (26 checks/s instead of 3,100 on workload l).
            table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
            table.set_partition_filters(true);
            table.set_metadata_block_size(METADATA_BLOCK_BYTES);
            table.set_pin_top_level_index_and_filter(true);
            table.set_cache_index_and_filter_blocks_with_high_priority(true);
            opts.set_write_buffer_size(INDEX_WRITE_BUFFER_BYTES);
            opts.set_compression_type(DBCompressionType::Lz4);
            opts.set_bottommost_compression_type(DBCompressionType::Zstd);
        }
        keys::CF_CHANGELOG => {
            opts.set_compression_type(DBCompressionType::Lz4);
            opts.set_bottommost_compression_type(DBCompressionType::Zstd);
        }
        _ => {
            opts.set_compression_type(DBCompressionType::Lz4);
        }
    }
    opts.set_block_based_table_factory(&table);
    opts
}

/// Database-wide options. Missing column families are always created: `open` has checked
/// that only the ones in `keys::ADDED_COLUMN_FAMILIES` can be missing.
fn db_options(create: bool) -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(create);
    opts.create_missing_column_families(true);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    opts.increase_parallelism(i32::try_from(cores).unwrap_or(2));
    opts.set_max_background_jobs(i32::try_from(cores.max(2)).unwrap_or(2));
    // Spread file syncs over time instead of stalling at the end of a flush.
    opts.set_bytes_per_sync(1 << 20);
    // Flush every column family together, so a bulk import's versions (written without the
    // WAL) never reach the disk without the changelog chunks that list them.
    opts.set_atomic_flush(true);
    // RocksDB's own info LOG files: keep a few, small.
    opts.set_keep_log_file_num(5);
    opts.set_max_log_file_size(16 << 20);
    opts
}

impl RocksDatastore {
    /// Opens (or creates, if `options.create_if_missing`) the data directory at `path`.
    /// Refuses a directory written in another on-disk format, one that is not an Arbor data
    /// directory, and one another process has open. Creates the column families a directory
    /// of an earlier build lacks (`keys::ADDED_COLUMN_FAMILIES`), removes what an import that
    /// never committed left behind, and starts the garbage collector if `options.gc_interval`.
    pub fn open(path: &Path, options: RocksOptions) -> Result<Self, StoreError> {
        Self::open_mode(path, options, false)
    }

    /// Opens the existing data directory at `path` as a read-only view of its newest durable
    /// state (replaying its write-ahead log in memory), for tools that only read: snapshots,
    /// Watch, records. Every write and garbage collection is refused, and nothing in the
    /// directory changes — not even what an import that never committed left behind, which no
    /// read sees. It does not lock the directory, so it also works while a server has it open,
    /// but then it sees the state as of opening, not what the server commits later.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let options = RocksOptions {
            gc_interval: None,
            create_if_missing: false,
            ..RocksOptions::default()
        };
        Self::open_mode(path, options, true)
    }

    /// `open` (read-write) or `open_read_only`.
    fn open_mode(path: &Path, options: RocksOptions, read_only: bool) -> Result<Self, StoreError> {
        let existed = path.join("CURRENT").exists();
        if !existed && (read_only || !options.create_if_missing) {
            return Err(StoreError::DataDirectory(format!(
                "`{}` is not an Arbor data directory (it holds no database)",
                path.display()
            )));
        }
        let present = if existed {
            existing_column_families(path)?
        } else {
            keys::COLUMN_FAMILIES.to_vec()
        };
        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        let db = if read_only {
            // A read-only open cannot create a column family: open the ones there are.
            let descriptors = present.iter().map(|name| {
                ColumnFamilyDescriptor::new(*name, column_family_options(name, &cache))
            });
            DB::open_cf_descriptors_read_only(&db_options(false), path, descriptors, false)
        } else {
            let descriptors = keys::COLUMN_FAMILIES.iter().map(|name| {
                ColumnFamilyDescriptor::new(*name, column_family_options(name, &cache))
            });
            DB::open_cf_descriptors(&db_options(!existed), path, descriptors)
        }
        .map_err(|e| open_err(path, e))?;
        if existed && !read_only {
            for added in keys::COLUMN_FAMILIES
                .iter()
                .filter(|cf| !present.contains(cf))
            {
                tracing::info!(path = %path.display(), column_family = added, "column family added");
            }
        }
        let (tx, _) = tokio::sync::watch::channel(Revision::ZERO);
        let shared = Shared {
            db,
            path: path.to_path_buf(),
            options,
            writer: Mutex::new(()),
            state: RwLock::new(State {
                head: Revision::ZERO,
                clock: RevisionClock::default(),
                schemas: Vec::new(),
            }),
            leases: SnapshotLeases::default(),
            head_tx: tx,
            broken: AtomicBool::new(false),
            read_only,
        };
        check_format(&shared, existed)?;
        load_state(&shared)?;
        if !read_only {
            import::recover(&shared)?;
        }
        let head = shared.state()?.head;
        shared.head_tx.send_replace(head);
        tracing::info!(path = %path.display(), %head, created = !existed, read_only, "rocksdb datastore open");
        let store = RocksDatastore {
            shared: Arc::new(shared),
            collector: Mutex::new(None),
        };
        if let Some(interval) = store.shared.options.gc_interval {
            store.start_gc(interval)?;
        }
        Ok(store)
    }

    /// Starts the background garbage collector (a pass every `interval`) unless one runs.
    /// It stops when the datastore is dropped.
    pub fn start_gc(&self, interval: Duration) -> Result<(), StoreError> {
        self.shared.check_writable()?;
        let mut collector = self.collector.lock().map_err(poisoned)?;
        if collector.is_some() {
            return Ok(());
        }
        let (stop, wake) = std::sync::mpsc::channel::<()>();
        let shared = Arc::clone(&self.shared);
        let thread = std::thread::Builder::new()
            .name("arbor-gc".to_string())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    wake.recv_timeout(interval)
                {
                    match gc::collect(&shared, Timestamp::now()) {
                        Ok(stats) => tracing::info!(?stats, "garbage collection pass"),
                        Err(e) => tracing::error!(error = %e, "garbage collection failed"),
                    }
                }
            })
            .map_err(|e| StoreError::Internal(format!("cannot start the GC thread: {e}")))?;
        *collector = Some(Collector {
            stop: Some(stop),
            thread: Some(thread),
        });
        Ok(())
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Writes a consistent copy of the store into `dir` (which must not exist) while it keeps
    /// serving: a RocksDB checkpoint, hard-linking table files where it can. Opening `dir` as
    /// a data directory restores it.
    pub fn backup(&self, dir: &Path) -> Result<(), StoreError> {
        if dir.exists() {
            return Err(StoreError::DataDirectory(format!(
                "backup directory `{}` already exists",
                dir.display()
            )));
        }
        let checkpoint =
            rocksdb::checkpoint::Checkpoint::new(&self.shared.db).map_err(rocks_err)?;
        checkpoint.create_checkpoint(dir).map_err(rocks_err)?;
        tracing::info!(from = %self.shared.path.display(), to = %dir.display(), "backup written");
        Ok(())
    }

    /// Backs up the data directory at `path` while another process (a running `arbor serve`)
    /// has it open. A file checkpoint would miss what that process has only in its
    /// write-ahead log, so this opens a read-only view (which replays the log: every
    /// acknowledged write is in it), and copies every key of that view into a new data
    /// directory at `dir`: relationship versions, changelog, commit records, schemas, metadata
    /// and records alike. The view keeps its table files open, so the other process's
    /// compactions cannot pull them away mid-copy.
    pub fn backup_in_use(path: &Path, dir: &Path) -> Result<(), StoreError> {
        if dir.exists() {
            return Err(StoreError::DataDirectory(format!(
                "backup directory `{}` already exists",
                dir.display()
            )));
        }
        // The source may predate a column family (`keys::ADDED_COLUMN_FAMILIES`): a read-only
        // view cannot create one, so it opens the ones there are, and the copy has them all.
        let present = existing_column_families(path)?;
        let cache = Cache::new_lru_cache(8 << 20);
        let descriptors = |names: &[&str], cache: &Cache| {
            names
                .iter()
                .map(|name| ColumnFamilyDescriptor::new(*name, column_family_options(name, cache)))
                .collect::<Vec<_>>()
        };
        let mut source_opts = db_options(false);
        // Every table file open for the life of the view (RocksDB's default, made explicit).
        source_opts.set_max_open_files(-1);
        let source = DB::open_cf_descriptors_read_only(
            &source_opts,
            path,
            descriptors(&present, &cache),
            false,
        )
        .map_err(|e| open_err(path, e))?;
        let format = match source.cf_handle(keys::CF_META) {
            Some(meta) => source
                .get_cf(meta, keys::META_FORMAT_VERSION)
                .map_err(rocks_err)?,
            None => None,
        };
        match format.as_deref().map(codec::decode_u32).transpose()? {
            Some(keys::FORMAT_VERSION) => {}
            _ => {
                return Err(StoreError::DataDirectory(format!(
                    "`{}` is not an Arbor data directory of format {}",
                    path.display(),
                    keys::FORMAT_VERSION
                )));
            }
        }
        let target = DB::open_cf_descriptors(
            &db_options(true),
            dir,
            descriptors(&keys::COLUMN_FAMILIES, &cache),
        )
        .map_err(|e| open_err(dir, e))?;
        let copied = copy_all(&source, &target);
        let flushed = copied.and_then(|n| {
            let cfs: Vec<&ColumnFamily> = keys::COLUMN_FAMILIES
                .iter()
                .filter_map(|name| target.cf_handle(name))
                .collect();
            target
                .flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default())
                .map_err(rocks_err)
                .map(|()| n)
        });
        drop(target);
        match flushed {
            Ok(keys_copied) => {
                tracing::info!(from = %path.display(), to = %dir.display(), keys_copied, "backup of a data directory in use written");
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(dir);
                Err(e)
            }
        }
    }

    /// Flushes the memtables to table files, so reopening replays no write-ahead log.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.shared.flush_all()
    }

    /// The approximate size on disk of the live table files, in bytes.
    pub fn live_data_bytes(&self) -> Result<u64, StoreError> {
        let files = self.shared.db.live_files().map_err(rocks_err)?;
        Ok(files.iter().map(|f| f.size as u64).sum())
    }
}

/// Copies every key of every column family from `source` to `target` (without the WAL: the
/// caller flushes); returns how many. A family added since `source` was written
/// (`keys::ADDED_COLUMN_FAMILIES`) may be missing there: it has no keys to copy.
fn copy_all(source: &DB, target: &DB) -> Result<u64, StoreError> {
    const COPY_BATCH: usize = 10_000;
    let mut opts = WriteOptions::default();
    opts.disable_wal(true);
    let mut copied = 0u64;
    for name in keys::COLUMN_FAMILIES {
        if source.cf_handle(name).is_none() && keys::ADDED_COLUMN_FAMILIES.contains(&name) {
            continue;
        }
        let (Some(from), Some(to)) = (source.cf_handle(name), target.cf_handle(name)) else {
            return Err(StoreError::Internal(format!(
                "column family `{name}` is not open"
            )));
        };
        let mut read = rocksdb::ReadOptions::default();
        read.set_total_order_seek(true);
        read.fill_cache(false);
        let mut iter = source.raw_iterator_cf_opt(from, read);
        iter.seek_to_first();
        let mut batch = WriteBatch::default();
        while let Some((key, value)) = iter.item() {
            batch.put_cf(to, key, value);
            copied += 1;
            if batch.len() >= COPY_BATCH {
                target
                    .write_opt(std::mem::take(&mut batch), &opts)
                    .map_err(rocks_err)?;
            }
            iter.next();
        }
        iter.status().map_err(rocks_err)?;
        target.write_opt(batch, &opts).map_err(rocks_err)?;
    }
    Ok(copied)
}

/// The column families of the existing database at `path`; refuses one that lacks any but
/// those added since format 1 was first written (`keys::ADDED_COLUMN_FAMILIES`).
fn existing_column_families(path: &Path) -> Result<Vec<&'static str>, StoreError> {
    let found = DB::list_cf(&Options::default(), path).map_err(|e| open_err(path, e))?;
    let present: Vec<&'static str> = keys::COLUMN_FAMILIES
        .into_iter()
        .filter(|cf| found.iter().any(|f| f == cf))
        .collect();
    if let Some(missing) = keys::COLUMN_FAMILIES
        .iter()
        .find(|cf| !present.contains(cf) && !keys::ADDED_COLUMN_FAMILIES.contains(cf))
    {
        return Err(StoreError::DataDirectory(format!(
            "`{}` is a RocksDB directory but not an Arbor data directory (column family `{missing}` is missing)",
            path.display()
        )));
    }
    Ok(present)
}

/// A RocksDB open error, with the common causes explained.
fn open_err(path: &Path, e: rocksdb::Error) -> StoreError {
    let text = e.to_string();
    if text.contains("lock") || text.contains("Resource temporarily unavailable") {
        StoreError::DataDirectory(format!(
            "data directory `{}` is in use by another process (is `arbor serve` running on it?): {text}",
            path.display()
        ))
    } else {
        StoreError::DataDirectory(format!(
            "cannot open data directory `{}`: {text}",
            path.display()
        ))
    }
}

/// Writes the format version into a new directory; refuses an existing one of another format.
fn check_format(shared: &Shared, existed: bool) -> Result<(), StoreError> {
    let meta = shared.cf(keys::CF_META)?;
    let stored = shared
        .db
        .get_cf(meta, keys::META_FORMAT_VERSION)
        .map_err(rocks_err)?;
    match stored {
        Some(bytes) => {
            let found = codec::decode_u32(&bytes)?;
            if found != keys::FORMAT_VERSION {
                return Err(StoreError::DataDirectory(format!(
                    "data directory `{}` was written in on-disk format {found}, but this build of arbor reads format {}; use the arbor release that wrote it (`arbor export` there, `arbor import` here)",
                    shared.path.display(),
                    keys::FORMAT_VERSION
                )));
            }
            Ok(())
        }
        None if existed => Err(StoreError::DataDirectory(format!(
            "`{}` is not an Arbor data directory (no format version)",
            shared.path.display()
        ))),
        None => {
            let mut batch = WriteBatch::default();
            batch.put_cf(
                meta,
                keys::META_FORMAT_VERSION,
                keys::FORMAT_VERSION.to_be_bytes(),
            );
            batch.put_cf(meta, keys::META_HEAD, codec::encode_u64(0));
            shared.commit(batch)
        }
    }
}

/// Reads the head, the GC horizon, the commit times and the schema history.
fn load_state(shared: &Shared) -> Result<(), StoreError> {
    let meta = shared.cf(keys::CF_META)?;
    let read_u64 = |key: &[u8]| -> Result<u64, StoreError> {
        match shared.db.get_cf(meta, key).map_err(rocks_err)? {
            Some(bytes) => codec::decode_u64(&bytes),
            None => Ok(0),
        }
    };
    let head = Revision::new(read_u64(keys::META_HEAD)?);
    let horizon = Revision::new(read_u64(keys::META_HORIZON)?);

    let mut times = Vec::new();
    for item in shared
        .db
        .iterator_cf(shared.cf(keys::CF_REVISIONS)?, IteratorMode::Start)
    {
        let (key, value) = item.map_err(rocks_err)?;
        let rev = keys::parse_revision_key(&key)
            .ok_or_else(|| StoreError::Internal("corrupt revisions key".to_string()))?;
        if rev > head || rev < horizon {
            continue;
        }
        let (timestamp, _) = codec::decode_commit(&value)?;
        times.push((rev, timestamp));
    }

    let mut schemas = Vec::new();
    for item in shared
        .db
        .iterator_cf(shared.cf(keys::CF_SCHEMAS)?, IteratorMode::Start)
    {
        let (key, value) = item.map_err(rocks_err)?;
        let rev = keys::parse_revision_key(&key)
            .ok_or_else(|| StoreError::Internal("corrupt schemas key".to_string()))?;
        if rev > head {
            continue;
        }
        let text = std::str::from_utf8(&value).map_err(|_| {
            StoreError::Internal(format!("stored schema of revision {rev} is not UTF-8"))
        })?;
        let compiled = schema::compile(text).map_err(|e| {
            StoreError::DataDirectory(format!(
                "the schema stored at revision {rev} no longer compiles: {e}"
            ))
        })?;
        schemas.push((rev, Arc::new(compiled)));
    }

    let mut state = shared.state_mut()?;
    state.head = head;
    state.clock = RevisionClock::restore(times, horizon);
    state.schemas = schemas;
    Ok(())
}

impl Drop for RocksDatastore {
    fn drop(&mut self) {
        // Stop the collector before the database goes away with the last `Shared`.
        if let Ok(mut collector) = self.collector.lock() {
            drop(collector.take());
        }
    }
}

impl Datastore for RocksDatastore {
    fn head_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.shared.state()?.head)
    }

    fn optimized_revision(&self, quantization: Duration) -> Result<Revision, StoreError> {
        let state = self.shared.state()?;
        Ok(state
            .clock
            .optimized(state.head, Timestamp::now(), quantization))
    }

    fn check_revision(&self, revision: Revision) -> Result<(), StoreError> {
        let state = self.shared.state()?;
        read::check_readable(&self.shared, &state, revision)
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<Revision> {
        self.shared.head_tx.subscribe()
    }

    fn snapshot(&self, revision: Revision) -> Result<Arc<dyn Snapshot>, StoreError> {
        Ok(Arc::new(read::RocksSnapshot::open(
            Arc::clone(&self.shared),
            revision,
        )?))
    }

    fn write(
        &self,
        body: &mut dyn FnMut(&mut dyn Transaction) -> Result<(), StoreError>,
    ) -> Result<Revision, StoreError> {
        txn::write(&self.shared, body)
    }

    fn changes_since(&self, after: Revision, limit: usize) -> Result<Vec<ChangeSet>, StoreError> {
        watch::changes_since(&self.shared, after, limit)
    }

    fn bulk_import(
        &self,
        relationships: &mut dyn Iterator<Item = Result<Relationship, StoreError>>,
    ) -> Result<BulkImportOutcome, StoreError> {
        import::bulk_import(&self.shared, relationships, None)
    }

    fn bulk_import_with(
        &self,
        relationships: &mut dyn Iterator<Item = Result<Relationship, StoreError>>,
        finish: &mut dyn FnMut(&ImportSummary, &mut dyn Records) -> Result<(), StoreError>,
    ) -> Result<BulkImportOutcome, StoreError> {
        import::bulk_import(&self.shared, relationships, Some(finish))
    }

    fn collect_garbage(&self, now: Timestamp) -> Result<GcStats, StoreError> {
        self.shared.check_writable()?;
        gc::collect(&self.shared, now)
    }

    fn get_record(&self, family: RecordFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        records::get(&self.shared, family, key)
    }

    fn scan_records(
        &self,
        family: RecordFamily,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<crate::store::Record>, StoreError> {
        records::scan(&self.shared, family, prefix, after, limit)
    }
}
