//! Verification of the chain (every hash, every link, the head record, and optionally an
//! external anchor) and retention (`prune`, which removes old entries and leaves a base
//! record so verification still starts from a checked point).

use crate::identity::IdentityError;
use crate::model::Timestamp;
use crate::store::{Datastore, Records, StoreError};

use super::anchor::Anchor;
use super::codec::{
    BASE_KEY, ENTRY_PREFIX, HEAD_KEY, decode_entry, decode_point, encode_point, entry_hash,
    entry_key, hex, seq_of_key,
};
use super::{AUDIT_FAMILY, AuditEntry, ChainHead};

/// Entries read from the store per scan step of `verify` and `prune`.
const SCAN_PAGE: usize = 1_000;

/// What a successful verification covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: u64,
    /// The first entry checked (`None` for an empty log).
    pub first_seq: Option<u64>,
    /// The head, which matched the last entry.
    pub head: Option<ChainHead>,
    /// The retention base the check started from (`None` if nothing was ever pruned).
    pub base: Option<ChainHead>,
    /// Whether an anchor was given and matched.
    pub anchored: bool,
}

/// Checks entries one after the other, from the base (or the start).
struct Walker {
    next_seq: u64,
    prev_hash: [u8; 32],
    entries: u64,
    first_seq: Option<u64>,
    last: Option<ChainHead>,
}

impl Walker {
    fn new(base: Option<ChainHead>) -> Result<Self, IdentityError> {
        let (next_seq, prev_hash) = match base {
            Some(b) => (
                b.seq.checked_add(1).ok_or_else(|| {
                    IdentityError::AuditBroken("the retention base is at the largest seq".into())
                })?,
                b.hash,
            ),
            None => (1, [0u8; 32]),
        };
        Ok(Walker {
            next_seq,
            prev_hash,
            entries: 0,
            first_seq: None,
            last: None,
        })
    }

    /// Checks the next stored entry and returns it decoded.
    fn check(&mut self, key: &[u8], value: &[u8]) -> Result<AuditEntry, IdentityError> {
        let seq = seq_of_key(key).map_err(broken)?;
        let entry = decode_entry(seq, value).map_err(broken)?;
        self.accept(&entry)?;
        Ok(entry)
    }

    /// Checks the next entry, decoded from under the key of its own seq.
    fn accept(&mut self, entry: &AuditEntry) -> Result<(), IdentityError> {
        let seq = entry.seq;
        if seq != self.next_seq {
            return Err(IdentityError::AuditBroken(if seq > self.next_seq {
                format!(
                    "entry {} is missing (the next stored entry is {seq})",
                    self.next_seq
                )
            } else {
                format!(
                    "entry {seq} is stored before the retention base (the chain resumes at {})",
                    self.next_seq
                )
            }));
        }
        if entry_hash(entry) != entry.hash {
            return Err(IdentityError::AuditBroken(format!(
                "entry {seq} does not match its hash: it was edited"
            )));
        }
        if entry.prev_hash != self.prev_hash {
            return Err(IdentityError::AuditBroken(format!(
                "entry {seq} does not link to the entry before it (prev_hash {} instead of {}): \
                 an entry was removed, reordered or rewritten",
                hex(&entry.prev_hash),
                hex(&self.prev_hash)
            )));
        }
        self.first_seq.get_or_insert(seq);
        self.entries += 1;
        self.prev_hash = entry.hash;
        self.next_seq = seq.saturating_add(1);
        self.last = Some(ChainHead {
            seq,
            hash: entry.hash,
        });
        Ok(())
    }
}

/// A decoding failure met while verifying is a break of the log.
fn broken(e: IdentityError) -> IdentityError {
    match e {
        IdentityError::Corrupt { detail, .. } => IdentityError::AuditBroken(detail),
        other => other,
    }
}

/// Verifies the committed chain: every entry's hash over its contents, every link to the
/// entry before (from the retention base if entries were pruned), no gap in seq, and that the
/// head record names the last entry. With `anchor` (whose signature the caller checked
/// with `Anchor::check_signature`), also that the chain reaches the anchored seq (no
/// truncated tail) and that the entry there has the anchored hash (no recomputed chain); an
/// anchor older than the retention base cannot be checked and fails too (re-anchor after
/// pruning). Any break is `IdentityError::AuditBroken` naming the seq.
///
/// Safe on a live store: it checks the chain up to the head it read first, and a failure seen
/// while the head or base moved (a concurrent append or prune) is retried, at most
/// `VERIFY_ATTEMPTS` times in all.
pub fn verify(
    store: &dyn Datastore,
    anchor: Option<&Anchor>,
) -> Result<VerifyReport, IdentityError> {
    let mut attempt = 1;
    loop {
        let (base, head) = (read_point(store, BASE_KEY)?, read_point(store, HEAD_KEY)?);
        match verify_at(store, base, head, anchor) {
            Err(IdentityError::AuditBroken(detail)) => {
                let moved =
                    read_point(store, BASE_KEY)? != base || read_point(store, HEAD_KEY)? != head;
                if !moved || attempt >= VERIFY_ATTEMPTS {
                    return Err(IdentityError::AuditBroken(detail));
                }
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Attempts of `verify` while the log keeps moving under it.
pub const VERIFY_ATTEMPTS: u32 = 3;

/// The committed head or base record; undecodable is a break.
fn read_point(store: &dyn Datastore, key: &[u8]) -> Result<Option<ChainHead>, IdentityError> {
    let what = if key == HEAD_KEY { "head" } else { "base" };
    store
        .get_record(AUDIT_FAMILY, key)?
        .map(|bytes| decode_point(&bytes, what).map_err(broken))
        .transpose()
}

/// One pass of `verify` against the base and head read before it.
fn verify_at(
    store: &dyn Datastore,
    base: Option<ChainHead>,
    head: Option<ChainHead>,
    anchor: Option<&Anchor>,
) -> Result<VerifyReport, IdentityError> {
    let mut walker = Walker::new(base)?;
    let anchor_seq = anchor.map(|a| a.seq);
    let mut at_anchor: Option<[u8; 32]> = None;
    let mut past_head: Option<u64> = None;
    let mut cursor: Option<Vec<u8>> = None;
    'scan: loop {
        let page = store.scan_records(AUDIT_FAMILY, ENTRY_PREFIX, cursor.as_deref(), SCAN_PAGE)?;
        let exhausted = page.len() < SCAN_PAGE;
        for (key, value) in &page {
            if let Some(h) = head {
                let seq = seq_of_key(key).map_err(broken)?;
                if seq > h.seq {
                    past_head = Some(seq);
                    break 'scan;
                }
            }
            let entry = walker.check(key, value)?;
            if Some(entry.seq) == anchor_seq {
                at_anchor = Some(entry.hash);
            }
        }
        match page.into_iter().last() {
            Some((key, _)) if !exhausted => cursor = Some(key),
            _ => break,
        }
    }

    match (head, walker.last) {
        (None, None) if base.is_some() => {
            return Err(IdentityError::AuditBroken(format!(
                "no entries after the retention base at seq {}: the newest entries were removed",
                base.map_or(0, |b| b.seq)
            )));
        }
        (None, None) => {}
        (Some(h), None) => {
            return Err(IdentityError::AuditBroken(format!(
                "the head names entry {} but the log has no entries",
                h.seq
            )));
        }
        (None, Some(last)) => {
            return Err(IdentityError::AuditBroken(format!(
                "the head record is missing (the last entry is {})",
                last.seq
            )));
        }
        (Some(h), Some(last)) if h != last => {
            return Err(IdentityError::AuditBroken(format!(
                "the head names entry {} ({}) but the last entry is {} ({})",
                h.seq,
                hex(&h.hash),
                last.seq,
                hex(&last.hash)
            )));
        }
        (Some(h), Some(_)) => {
            if let Some(seq) = past_head {
                return Err(IdentityError::AuditBroken(format!(
                    "entry {seq} is stored past the head at seq {}: the head was moved back",
                    h.seq
                )));
            }
        }
    }

    if let Some(anchor) = anchor {
        check_anchor(anchor, base, walker.last, at_anchor)?;
    }
    Ok(VerifyReport {
        entries: walker.entries,
        first_seq: walker.first_seq,
        head,
        base,
        anchored: anchor.is_some(),
    })
}

fn check_anchor(
    anchor: &Anchor,
    base: Option<ChainHead>,
    last: Option<ChainHead>,
    at_anchor: Option<[u8; 32]>,
) -> Result<(), IdentityError> {
    let last_seq = last.map_or(base.map_or(0, |b| b.seq), |l| l.seq);
    if anchor.seq > last_seq {
        return Err(IdentityError::AuditBroken(format!(
            "the log ends at seq {last_seq}, before the anchored seq {}: its tail was removed",
            anchor.seq
        )));
    }
    let found = match base {
        Some(b) if anchor.seq == b.seq => Some(b.hash),
        Some(b) if anchor.seq < b.seq => {
            return Err(IdentityError::AuditBroken(format!(
                "the anchored seq {} was pruned (the log is kept after seq {}), so the anchor \
                 cannot be checked; anchor the current head again",
                anchor.seq, b.seq
            )));
        }
        _ => at_anchor,
    };
    match found {
        Some(hash) if hash == anchor.hash => Ok(()),
        Some(hash) => Err(IdentityError::AuditBroken(format!(
            "entry {} has hash {} but the anchor says {}: the chain was rewritten",
            anchor.seq,
            hex(&hash),
            hex(&anchor.hash)
        ))),
        None => Err(IdentityError::AuditBroken(format!(
            "the anchored entry {} is not in the log",
            anchor.seq
        ))),
    }
}

/// What one attempt of the prune transaction found.
enum PruneOutcome {
    Removed(u64),
    Nothing,
    Failed(IdentityError),
}

/// Retention: removes the oldest entries whose time is before `before`, stopping at the first
/// entry at or after it, and never the newest entry; in one store write, which also records the
/// last removed entry's seq and hash as the retention base that `verify` then starts from.
/// The removed entries are verified first: a broken stretch is not pruned away
/// (`AuditBroken`). Returns how many entries were removed (0 writes nothing).
pub fn prune(store: &dyn Datastore, before: Timestamp) -> Result<u64, IdentityError> {
    let mut outcome = PruneOutcome::Nothing;
    let result = store.write(&mut |txn| {
        outcome = match prune_in(txn, before) {
            Ok(0) => PruneOutcome::Nothing,
            Ok(n) => PruneOutcome::Removed(n),
            Err(IdentityError::Store(e)) => return Err(e),
            Err(e) => PruneOutcome::Failed(e),
        };
        match outcome {
            PruneOutcome::Removed(_) => Ok(()),
            // Abort the transaction: nothing to commit.
            _ => Err(StoreError::Refused("audit prune wrote nothing".into())),
        }
    });
    match (outcome, result) {
        (PruneOutcome::Removed(n), Ok(_)) => Ok(n),
        (PruneOutcome::Nothing, Err(StoreError::Refused(_))) => Ok(0),
        (PruneOutcome::Failed(e), Err(StoreError::Refused(_))) => Err(e),
        (_, Err(e)) => Err(e.into()),
        (_, Ok(_)) => Ok(0),
    }
}

/// The body of `prune`'s transaction.
fn prune_in<R: Records + ?Sized>(records: &mut R, before: Timestamp) -> Result<u64, IdentityError> {
    let Some(head) = records
        .get_record(AUDIT_FAMILY, HEAD_KEY)?
        .map(|bytes| decode_point(&bytes, "head"))
        .transpose()?
    else {
        return Ok(0);
    };
    let base = records
        .get_record(AUDIT_FAMILY, BASE_KEY)?
        .map(|bytes| decode_point(&bytes, "base"))
        .transpose()?;
    let mut walker = Walker::new(base)?;
    let mut cursor: Option<Vec<u8>> = None;
    'scan: loop {
        let page =
            records.scan_records(AUDIT_FAMILY, ENTRY_PREFIX, cursor.as_deref(), SCAN_PAGE)?;
        let exhausted = page.len() < SCAN_PAGE;
        for (key, value) in &page {
            let seq = seq_of_key(key).map_err(broken)?;
            if seq >= head.seq {
                break 'scan;
            }
            let entry = decode_entry(seq, value).map_err(broken)?;
            if entry.time >= before {
                break 'scan;
            }
            walker.accept(&entry)?;
        }
        match page.into_iter().last() {
            Some((key, _)) if !exhausted => cursor = Some(key),
            _ => break,
        }
    }
    let (Some(first), Some(last)) = (walker.first_seq, walker.last) else {
        return Ok(0);
    };
    for seq in first..=last.seq {
        records.delete_record(AUDIT_FAMILY, &entry_key(seq))?;
    }
    records.put_record(AUDIT_FAMILY, BASE_KEY, encode_point(&last))?;
    Ok(walker.entries)
}
