//! The bytes of the audit log: record keys (`e/` + seq, `h`, `b`), the stored form of an
//! entry (postcard over private structs), the head and base records, and the canonical
//! encoding an entry's hash is computed over.
//!
//! Keys of family `audit`:
//!
//! ```text
//! e/ <seq: u64 big-endian>   an entry (so key order = seq order)
//! h                          the chain head: <seq: u64 BE> <hash: 32 bytes>
//! b                          the retention base, the last pruned entry: <seq: u64 BE> <hash: 32 bytes>
//! ```
//!
//! The hash of an entry is SHA-256 over this encoding, where `u64`/`i64` are 8 bytes
//! big-endian, `str` is `u64 length` then its UTF-8 bytes, `opt` is a byte `0` (absent) or
//! `1` followed by the value, and `list<T>` is `u64 count` then each item:
//!
//! ```text
//! "arbor.audit.v1\0"                      domain tag
//! u64 seq, u64 revision, i64 time (µs since the epoch)
//! str principal, opt str on_behalf_of, opt str initiated_by, str source (`api`, …),
//! opt str reason, opt str request_id
//! str action
//! list<str> orgs (sorted), list<str> subjects (sorted)
//! list<change> changes, each a byte `t` (touch) or `d` (delete) then str relationship
//! list<(str name, str value)> details
//! 32 bytes prev_hash
//! ```
//!
//! Every variable-length field carries its length, so no two different entries encode to the
//! same bytes.

use std::collections::BTreeSet;

use sha2::{Digest as _, Sha256};

use crate::identity::{Actor, IdentityError, Source};
use crate::model::{Revision, Timestamp};

use super::{AUDIT_FAMILY, AuditChange, AuditEntry, ChainHead};

/// Key prefix of entries.
pub(super) const ENTRY_PREFIX: &[u8] = b"e/";
/// Key of the chain head.
pub(super) const HEAD_KEY: &[u8] = b"h";
/// Key of the retention base.
pub(super) const BASE_KEY: &[u8] = b"b";
/// The first bytes of the hashed encoding.
const HASH_DOMAIN: &[u8] = b"arbor.audit.v1\0";
/// Version byte in front of every stored entry value.
const ENTRY_FORMAT: u8 = 1;

/// The key of entry `seq`.
pub(super) fn entry_key(seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(ENTRY_PREFIX.len() + 8);
    key.extend_from_slice(ENTRY_PREFIX);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The seq in an entry key.
pub(super) fn seq_of_key(key: &[u8]) -> Result<u64, IdentityError> {
    key.strip_prefix(ENTRY_PREFIX)
        .and_then(|rest| <[u8; 8]>::try_from(rest).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| corrupt(format!("malformed entry key `{}`", hex(key))))
}

/// A `Corrupt` error of the audit family.
pub(super) fn corrupt(detail: String) -> IdentityError {
    IdentityError::Corrupt {
        family: AUDIT_FAMILY.name(),
        detail,
    }
}

/// Lowercase hex of `bytes` (hashes in entries, anchors, digests).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Parses lowercase or uppercase hex into exactly `N` bytes.
pub(crate) fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let [hi, lo] = <[u8; 2]>::try_from(pair).ok()?;
        *slot = (nibble(hi)? << 4) | nibble(lo)?;
    }
    Some(out)
}

/// Encodes a head or base record: seq then hash.
pub(super) fn encode_point(point: &ChainHead) -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    out.extend_from_slice(&point.seq.to_be_bytes());
    out.extend_from_slice(&point.hash);
    out
}

/// Decodes a head or base record (`what` names it in errors).
pub(super) fn decode_point(bytes: &[u8], what: &str) -> Result<ChainHead, IdentityError> {
    let bad = || corrupt(format!("{what} record has {} bytes, not 40", bytes.len()));
    let (seq, hash) = bytes.split_first_chunk::<8>().ok_or_else(bad)?;
    let hash = <[u8; 32]>::try_from(hash).map_err(|_| bad())?;
    Ok(ChainHead {
        seq: u64::from_be_bytes(*seq),
        hash,
    })
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredActor {
    principal: String,
    on_behalf_of: Option<String>,
    initiated_by: Option<String>,
    source: String,
    reason: Option<String>,
    request_id: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
enum StoredChange {
    Touch(String),
    Delete(String),
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredEntry {
    seq: u64,
    revision: u64,
    time: i64,
    actor: StoredActor,
    action: String,
    orgs: BTreeSet<String>,
    subjects: BTreeSet<String>,
    changes: Vec<StoredChange>,
    details: Vec<(String, String)>,
    prev_hash: [u8; 32],
    hash: [u8; 32],
}

/// The stored value of an entry: a format byte, then postcard.
pub(super) fn encode_entry(entry: &AuditEntry) -> Result<Vec<u8>, IdentityError> {
    let actor = &entry.actor;
    let stored = StoredEntry {
        seq: entry.seq,
        revision: entry.revision.get(),
        time: entry.time.as_micros(),
        actor: StoredActor {
            principal: actor.principal.clone(),
            on_behalf_of: actor.on_behalf_of.clone(),
            initiated_by: actor.initiated_by.clone(),
            source: actor.source.as_str().to_string(),
            reason: actor.reason.clone(),
            request_id: actor.request_id.clone(),
        },
        action: entry.action.clone(),
        orgs: entry.orgs.clone(),
        subjects: entry.subjects.clone(),
        changes: entry
            .changes
            .iter()
            .map(|c| match c {
                AuditChange::Touch(r) => StoredChange::Touch(r.clone()),
                AuditChange::Delete(r) => StoredChange::Delete(r.clone()),
            })
            .collect(),
        details: entry.details.clone(),
        prev_hash: entry.prev_hash,
        hash: entry.hash,
    };
    let body = postcard::to_stdvec(&stored).map_err(|e| {
        IdentityError::InvalidArgument(format!("cannot encode audit entry {}: {e}", entry.seq))
    })?;
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(ENTRY_FORMAT);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a stored entry; its seq must be the one in its key.
pub(super) fn decode_entry(key_seq: u64, bytes: &[u8]) -> Result<AuditEntry, IdentityError> {
    let body = match bytes.split_first() {
        Some((&ENTRY_FORMAT, body)) => body,
        Some((other, _)) => {
            return Err(corrupt(format!(
                "entry {key_seq} has unknown format {other}"
            )));
        }
        None => return Err(corrupt(format!("entry {key_seq} is empty"))),
    };
    let stored: StoredEntry = postcard::from_bytes(body)
        .map_err(|e| corrupt(format!("entry {key_seq} cannot be decoded: {e}")))?;
    if stored.seq != key_seq {
        return Err(corrupt(format!(
            "entry stored under seq {key_seq} says seq {}",
            stored.seq
        )));
    }
    let source = Source::parse(&stored.actor.source).ok_or_else(|| {
        corrupt(format!(
            "entry {key_seq} has unknown source `{}`",
            stored.actor.source
        ))
    })?;
    Ok(AuditEntry {
        seq: stored.seq,
        revision: Revision::new(stored.revision),
        time: Timestamp::from_micros(stored.time),
        actor: Actor {
            principal: stored.actor.principal,
            on_behalf_of: stored.actor.on_behalf_of,
            initiated_by: stored.actor.initiated_by,
            source,
            reason: stored.actor.reason,
            request_id: stored.actor.request_id,
        },
        action: stored.action,
        orgs: stored.orgs,
        subjects: stored.subjects,
        changes: stored
            .changes
            .into_iter()
            .map(|c| match c {
                StoredChange::Touch(r) => AuditChange::Touch(r),
                StoredChange::Delete(r) => AuditChange::Delete(r),
            })
            .collect(),
        details: stored.details,
        prev_hash: stored.prev_hash,
        hash: stored.hash,
    })
}

/// Appends the canonical encoding pieces (see the module doc) to a hasher.
struct Canonical(Sha256);

impl Canonical {
    fn u64(&mut self, v: u64) {
        self.0.update(v.to_be_bytes());
    }

    fn len(&mut self, n: usize) {
        // usize is at most 64 bits on every supported target.
        self.u64(n as u64);
    }

    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.update(s.as_bytes());
    }

    fn opt(&mut self, s: Option<&str>) {
        match s {
            None => self.0.update([0u8]),
            Some(s) => {
                self.0.update([1u8]);
                self.str(s);
            }
        }
    }

    fn strs<'a>(&mut self, items: impl ExactSizeIterator<Item = &'a String>) {
        self.len(items.len());
        for s in items {
            self.str(s);
        }
    }
}

/// The hash of `entry` (every field but `hash` itself), as the module doc describes.
pub(super) fn entry_hash(entry: &AuditEntry) -> [u8; 32] {
    let mut c = Canonical(Sha256::new());
    c.0.update(HASH_DOMAIN);
    c.u64(entry.seq);
    c.u64(entry.revision.get());
    c.0.update(entry.time.as_micros().to_be_bytes());
    let actor = &entry.actor;
    c.str(&actor.principal);
    c.opt(actor.on_behalf_of.as_deref());
    c.opt(actor.initiated_by.as_deref());
    c.str(actor.source.as_str());
    c.opt(actor.reason.as_deref());
    c.opt(actor.request_id.as_deref());
    c.str(&entry.action);
    c.strs(entry.orgs.iter());
    c.strs(entry.subjects.iter());
    c.len(entry.changes.len());
    for change in &entry.changes {
        let (tag, rel) = match change {
            AuditChange::Touch(r) => (b't', r),
            AuditChange::Delete(r) => (b'd', r),
        };
        c.0.update([tag]);
        c.str(rel);
    }
    c.len(entry.details.len());
    for (name, value) in &entry.details {
        c.str(name);
        c.str(value);
    }
    c.0.update(entry.prev_hash);
    c.0.finalize().into()
}
