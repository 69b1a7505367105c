//! Watch for the RocksDB datastore: committed change sets read back from the changelog in
//! revision order, resumable from any revision inside the GC window, across restarts.

use crate::model::{Revision, Timestamp};

use super::super::{ChangeSet, StoreError};
use super::read::{KeyRange, raw_iter};
use super::{Shared, codec, keys, rocks_err};

/// At most `limit` committed change sets after `after`, in revision order.
pub(super) fn changes_since(
    shared: &Shared,
    after: Revision,
    limit: usize,
) -> Result<Vec<ChangeSet>, StoreError> {
    let head = {
        let state = shared.state()?;
        state
            .clock
            .check_not_expired(after, Timestamp::now(), shared.options.gc_window)?;
        state.head
    };
    let mut out: Vec<ChangeSet> = Vec::new();
    let (Some(first), Some(past_head)) = (after.next(), head.next()) else {
        return Ok(out);
    };
    if first > head || limit == 0 {
        return Ok(out);
    }
    let range = KeyRange {
        start: keys::changelog_key(first, 0).to_vec(),
        end: Some(keys::changelog_key(past_head, 0).to_vec()),
        same_prefix: false,
    };
    let revisions = shared.cf(keys::CF_REVISIONS)?;
    let mut iter = raw_iter(shared, keys::CF_CHANGELOG, &range)?;
    while let Some((key, value)) = iter.item() {
        let (revision, _chunk) = keys::parse_changelog_key(key)
            .ok_or_else(|| StoreError::Internal("corrupt changelog key".to_string()))?;
        let changes = codec::decode_changes(value)?;
        match out.last_mut() {
            Some(set) if set.revision == revision => set.changes.extend(changes),
            _ => {
                if out.len() == limit {
                    break;
                }
                let record = shared
                    .db
                    .get_cf(revisions, keys::revision_key(revision))
                    .map_err(rocks_err)?
                    .ok_or_else(|| {
                        StoreError::Internal(format!(
                            "changelog of revision {revision} has no commit record"
                        ))
                    })?;
                let (timestamp, schema_changed) = codec::decode_commit(&record)?;
                out.push(ChangeSet {
                    revision,
                    timestamp,
                    changes,
                    schema_changed,
                });
            }
        }
        iter.next();
    }
    iter.status().map_err(rocks_err)?;
    Ok(out)
}
