//! The audit log: one hash-chained entry per committed change, appended inside the change's
//! own transaction; verification of the chain against an external anchor; queries by
//! organization subtree, actor, subject and time; and reads after a sequence number for
//! streaming. Kept as store records of family `audit`, outside relationship GC.

pub mod anchor;
mod chain;
mod codec;
mod query;
mod verify;

use std::collections::BTreeSet;

use crate::model::{Revision, Timestamp};
use crate::store::RecordFamily;

use super::Actor;

pub use chain::{MAX_READ, append, base, head, read_after};
pub use codec::hex;
pub use query::{
    AuditPage, AuditQuery, DEFAULT_QUERY_LIMIT, MAX_QUERY_LIMIT, QUERY_SCAN_BUDGET, query,
};
pub use verify::{VERIFY_ATTEMPTS, VerifyReport, prune, verify};

/// A point of the chain: the seq and hash of one entry (the head is the newest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHead {
    /// The entry's seq.
    pub seq: u64,
    /// The entry's hash.
    pub hash: [u8; 32],
}

/// The record family of audit entries and the chain head.
pub const AUDIT_FAMILY: RecordFamily = RecordFamily::new("audit");

/// One relationship change in an audit entry, as canonical relationship text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditChange {
    /// Created or replaced.
    Touch(String),
    /// Deleted.
    Delete(String),
}

/// What a change appends, before the chain fields are filled in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditDraft {
    /// Who and why.
    pub actor: Option<Actor>,
    /// What was done: `relationships.write`, `relationships.delete`, `relationships.import`,
    /// `schema.write`, `organization.create`, `organization.move`, `member.add`, …
    pub action: String,
    /// Organizations the change touched (ids), for queries by subtree.
    pub orgs: BTreeSet<String>,
    /// Subjects the change is about (`user:u1`, `team:t#member`), for queries by subject.
    pub subjects: BTreeSet<String>,
    /// The relationship changes committed.
    pub changes: Vec<AuditChange>,
    /// Other facts as name/value pairs (counts, digests, record ids); never secrets.
    pub details: Vec<(String, String)>,
}

/// A committed audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// The revision the change committed at.
    pub revision: Revision,
    /// When.
    pub time: Timestamp,
    /// Who and why.
    pub actor: Actor,
    /// See `AuditDraft::action`.
    pub action: String,
    /// See `AuditDraft::orgs`.
    pub orgs: BTreeSet<String>,
    /// See `AuditDraft::subjects`.
    pub subjects: BTreeSet<String>,
    /// See `AuditDraft::changes`.
    pub changes: Vec<AuditChange>,
    /// See `AuditDraft::details`.
    pub details: Vec<(String, String)>,
    /// The previous entry's hash (zeros for the first).
    pub prev_hash: [u8; 32],
    /// SHA-256 over `prev_hash` and every other field.
    pub hash: [u8; 32],
}

impl AuditEntry {
    /// The hash this entry's contents (every field but `hash`) give, as `codec`'s module doc
    /// defines it; equal to `hash` for an unaltered entry.
    pub fn computed_hash(&self) -> [u8; 32] {
        codec::entry_hash(self)
    }
}

/// The stored form of the log, for tools and tests that inspect or repair it below the
/// chain functions: record keys and values of family `AUDIT_FAMILY`.
pub mod stored {
    use crate::identity::IdentityError;

    use super::codec;
    use super::{AuditEntry, ChainHead};

    /// Key of the chain head record.
    pub const HEAD_KEY: &[u8] = codec::HEAD_KEY;
    /// Key of the retention base record.
    pub const BASE_KEY: &[u8] = codec::BASE_KEY;
    /// Key prefix of entry records.
    pub const ENTRY_PREFIX: &[u8] = codec::ENTRY_PREFIX;

    /// The key of entry `seq`.
    pub fn entry_key(seq: u64) -> Vec<u8> {
        codec::entry_key(seq)
    }

    /// The stored value of `entry` (its fields as they are, `hash` included).
    pub fn encode_entry(entry: &AuditEntry) -> Result<Vec<u8>, IdentityError> {
        codec::encode_entry(entry)
    }

    /// Decodes the value stored under `entry_key(seq)`.
    pub fn decode_entry(seq: u64, value: &[u8]) -> Result<AuditEntry, IdentityError> {
        codec::decode_entry(seq, value)
    }

    /// The stored value of a head or base record.
    pub fn encode_point(point: &ChainHead) -> Vec<u8> {
        codec::encode_point(point)
    }
}

#[cfg(test)]
mod tests;
