//! Growing and reading the chain: `append` inside a change's own transaction, the committed
//! head, and reads of entries after a sequence number.

use crate::identity::IdentityError;
use crate::model::{Revision, Timestamp};
use crate::store::{Datastore, Records};

use super::codec::{
    BASE_KEY, ENTRY_PREFIX, HEAD_KEY, corrupt, decode_entry, decode_point, encode_entry,
    encode_point, entry_hash, entry_key, seq_of_key,
};
use super::{AUDIT_FAMILY, AuditDraft, AuditEntry, ChainHead};

/// Most entries `read_after` returns at once, whatever the caller asks: bounds the memory of
/// one call (entries can list thousands of changes).
pub const MAX_READ: usize = 10_000;

/// Appends the entry `draft` describes to the chain, inside the transaction (or import
/// commit step) `records` belongs to, for a change committing at `revision` at `time`.
/// Reads the head in the same transaction; the store serializes writers, so the
/// read-modify-write cannot race. Fails with `InvalidArgument` when the draft has no actor.
pub fn append(
    records: &mut dyn Records,
    revision: Revision,
    time: Timestamp,
    draft: AuditDraft,
) -> Result<AuditEntry, IdentityError> {
    let actor = draft.actor.ok_or_else(|| {
        IdentityError::InvalidArgument(format!("audit entry for `{}` has no actor", draft.action))
    })?;
    let head = match records.get_record(AUDIT_FAMILY, HEAD_KEY)? {
        Some(bytes) => Some(decode_point(&bytes, "head")?),
        None => {
            // No head: the chain must be empty, else appending would overwrite entries.
            let has_entries = !records
                .scan_records(AUDIT_FAMILY, ENTRY_PREFIX, None, 1)?
                .is_empty();
            if has_entries || records.get_record(AUDIT_FAMILY, BASE_KEY)?.is_some() {
                return Err(corrupt(
                    "the chain head record is missing but the log is not empty".into(),
                ));
            }
            None
        }
    };
    let (seq, prev_hash) = match head {
        Some(h) => (
            h.seq
                .checked_add(1)
                .ok_or_else(|| corrupt("the chain head is at the largest seq".into()))?,
            h.hash,
        ),
        None => (1, [0u8; 32]),
    };
    let mut entry = AuditEntry {
        seq,
        revision,
        time,
        actor,
        action: draft.action,
        orgs: draft.orgs,
        subjects: draft.subjects,
        changes: draft.changes,
        details: draft.details,
        prev_hash,
        hash: [0u8; 32],
    };
    entry.hash = entry_hash(&entry);
    records.put_record(AUDIT_FAMILY, &entry_key(seq), encode_entry(&entry)?)?;
    records.put_record(
        AUDIT_FAMILY,
        HEAD_KEY,
        encode_point(&ChainHead {
            seq,
            hash: entry.hash,
        }),
    )?;
    Ok(entry)
}

/// The committed head of the chain (seq and hash of the newest entry), `None` before the
/// first entry.
pub fn head(store: &dyn Datastore) -> Result<Option<ChainHead>, IdentityError> {
    store
        .get_record(AUDIT_FAMILY, HEAD_KEY)?
        .map(|bytes| decode_point(&bytes, "head"))
        .transpose()
}

/// The retention base (seq and hash of the last pruned entry), `None` if nothing was pruned.
pub fn base(store: &dyn Datastore) -> Result<Option<ChainHead>, IdentityError> {
    store
        .get_record(AUDIT_FAMILY, BASE_KEY)?
        .map(|bytes| decode_point(&bytes, "base"))
        .transpose()
}

/// Committed entries with seq greater than `after_seq`, in seq order, at most `limit` (and at
/// most `MAX_READ`). Decodes without checking hashes (that is `verify`'s job).
pub fn read_after(
    store: &dyn Datastore,
    after_seq: u64,
    limit: usize,
) -> Result<Vec<AuditEntry>, IdentityError> {
    let limit = limit.min(MAX_READ);
    if limit == 0 {
        return Ok(Vec::new());
    }
    let after = entry_key(after_seq);
    store
        .scan_records(AUDIT_FAMILY, ENTRY_PREFIX, Some(&after), limit)?
        .into_iter()
        .map(|(key, value)| decode_entry(seq_of_key(&key)?, &value))
        .collect()
}
