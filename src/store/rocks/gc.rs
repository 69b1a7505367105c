//! Garbage collection of the RocksDB datastore: one pass removes the relationship versions no
//! readable revision can see, relationships whose expiration passed, and the changelog, commit
//! records and schema history older than the GC window.
//!
//! The horizon `H` is the oldest readable revision (see `store::clock`), lowered to the oldest
//! live snapshot. For each tuple, every version newer than `H` stays; of the others, the
//! newest (`v*`, what a read at `H` sees) stays if it is alive and unexpired, and every older
//! one goes: no read at `H` or later can reach them. A tombstone or an expired `v*` goes too.
//! The pass only deletes keys at or below `H`, which no writer touches any more, so it runs
//! beside writers without their lock.

use rocksdb::{WriteBatch, WriteOptions};

use crate::model::{Revision, Timestamp};

use super::super::StoreError;
use super::super::clock::GcStats;
use super::{Shared, codec, keys, rocks_err};

/// Deletions per write batch.
const DELETE_BATCH: usize = 10_000;

/// Runs one pass at time `now`.
pub(super) fn collect(shared: &Shared, now: Timestamp) -> Result<GcStats, StoreError> {
    let started = std::time::Instant::now();
    let (horizon, changes_removed) = {
        let mut state = shared.state_mut()?;
        let mut horizon = state.clock.horizon(now, shared.options.gc_window);
        if let Some(oldest) = shared.leases.oldest() {
            horizon = horizon.min(oldest);
        }
        horizon = horizon.max(state.clock.collected()).min(state.head);
        let removed = state.clock.count_before(horizon);
        // From here on, snapshots below the horizon are refused.
        state.clock.collect(horizon);
        let in_force = state.schemas.partition_point(|(r, _)| *r <= horizon);
        if let Some(older) = in_force.checked_sub(1) {
            state.schemas.drain(..older);
        }
        (horizon, removed)
    };
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    shared
        .db
        .put_cf_opt(
            shared.cf(keys::CF_META)?,
            keys::META_HORIZON,
            codec::encode_u64(horizon.get()),
            &sync,
        )
        .map_err(rocks_err)?;

    let mut stats = GcStats {
        horizon,
        changes_removed,
        ..GcStats::default()
    };
    let (removed, expired) = sweep(shared, keys::CF_RELATIONSHIPS, horizon, now)?;
    stats.versions_removed = removed;
    stats.expired_removed = expired;
    sweep(shared, keys::CF_SUBJECTS, horizon, now)?;

    let mut batch = WriteBatch::default();
    batch.delete_range_cf(
        shared.cf(keys::CF_CHANGELOG)?,
        keys::changelog_key(Revision::ZERO, 0),
        keys::changelog_key(horizon, 0),
    );
    batch.delete_range_cf(
        shared.cf(keys::CF_REVISIONS)?,
        keys::revision_key(Revision::ZERO),
        keys::revision_key(horizon),
    );
    // Keep the schema in force at the horizon and every later one.
    let schemas = shared.cf(keys::CF_SCHEMAS)?;
    let mut iter = shared.db.raw_iterator_cf(schemas);
    iter.seek_for_prev(keys::revision_key(horizon));
    if let Some(in_force) = iter.key().and_then(keys::parse_revision_key) {
        batch.delete_range_cf(
            schemas,
            keys::revision_key(Revision::ZERO),
            keys::revision_key(in_force),
        );
    }
    iter.status().map_err(rocks_err)?;
    drop(iter);
    shared.db.write(batch).map_err(rocks_err)?;
    tracing::debug!(?stats, elapsed = ?started.elapsed(), "rocksdb garbage collection");
    Ok(stats)
}

/// Deletes the dead versions of one index; returns (versions removed, expired removed).
fn sweep(
    shared: &Shared,
    cf: &str,
    horizon: Revision,
    now: Timestamp,
) -> Result<(u64, u64), StoreError> {
    let handle = shared.cf(cf)?;
    let mut opts = rocksdb::ReadOptions::default();
    opts.set_total_order_seek(true);
    // A full sweep would evict the hot blocks readers need.
    opts.fill_cache(false);
    let mut iter = shared.db.raw_iterator_cf_opt(handle, opts);
    iter.seek_to_first();
    let mut batch = WriteBatch::default();
    let (mut removed, mut expired) = (0u64, 0u64);
    let mut tuple_of_v_star: Vec<u8> = Vec::new();
    let mut have_v_star = false;
    while let Some((key, value)) = iter.item() {
        let (tuple, revision) = keys::split_version(key).ok_or_else(|| {
            StoreError::Internal("corrupt stored data: version key too short".to_string())
        })?;
        if revision > horizon {
            iter.next();
            continue;
        }
        if have_v_star && tuple == tuple_of_v_star.as_slice() {
            // Older than what a read at the horizon sees.
            batch.delete_cf(handle, key);
            removed += 1;
        } else {
            have_v_star = true;
            tuple_of_v_star.clear();
            tuple_of_v_star.extend_from_slice(tuple);
            let is_expired = codec::expired_at(value, now);
            if codec::is_tombstone(value) || is_expired {
                batch.delete_cf(handle, key);
                removed += 1;
                if is_expired {
                    expired += 1;
                }
            }
        }
        if batch.len() >= DELETE_BATCH {
            shared
                .db
                .write(std::mem::take(&mut batch))
                .map_err(rocks_err)?;
        }
        iter.next();
    }
    iter.status().map_err(rocks_err)?;
    shared.db.write(batch).map_err(rocks_err)?;
    Ok((removed, expired))
}
