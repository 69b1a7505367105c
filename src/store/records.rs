//! Records: named families of opaque key/value records that higher layers (identity records,
//! audit entries) keep beside the relationships and commit in the same transaction. The store
//! never interprets their bytes, never garbage-collects them and keeps only their newest value.
//!
//! Records are not versioned: a snapshot at an old revision does not see old records, and
//! `Datastore::get_record` / `scan_records` read the newest committed state. They are not
//! relationship changes either, so they never appear in `changes_since` (nor in Watch); a
//! transaction that writes only records still commits at a new revision. Within a family,
//! keys sort as byte strings (shorter first on a common prefix), the same in every datastore.
//!
//! Besides the contract, this module holds what both datastores share to keep it: the checks
//! of family names and keys, the start of a scan, the merge of committed records with a
//! transaction's pending writes, and the digest of a bulk import.

use std::fmt::Write as _;

use sha2::{Digest as _, Sha256};

use super::StoreError;
use crate::model::{Relationship, Revision};

/// One record as scans return it: its key and its value.
pub type Record = (Vec<u8>, Vec<u8>);

/// The name of a family of records, owned by the layer that defines it. A name is ASCII
/// letters, digits, `_` and `.`, 1 to 32 characters; the store refuses any other with
/// `StoreError::Refused` on first use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordFamily(&'static str);

/// Longest family name.
const MAX_FAMILY_NAME_LEN: usize = 32;

/// Longest record key, in bytes: room for any composite id, small enough that keys stay cheap
/// to compare and to hold in the index blocks.
const MAX_RECORD_KEY_LEN: usize = 1024;

impl RecordFamily {
    /// A family named `name` (checked on use, see the type's doc).
    pub const fn new(name: &'static str) -> Self {
        RecordFamily(name)
    }

    /// The family's name.
    pub const fn name(self) -> &'static str {
        self.0
    }

    /// Fails unless the name keeps the rule in the type's doc.
    pub fn check(self) -> Result<(), StoreError> {
        let ok = !self.0.is_empty()
            && self.0.len() <= MAX_FAMILY_NAME_LEN
            && self
                .0
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        if ok {
            Ok(())
        } else {
            Err(StoreError::Refused(format!(
                "`{}` is not a valid record family name",
                self.0
            )))
        }
    }
}

/// Record reads and writes inside one write transaction (or the commit step of a bulk
/// import). Reads see committed records plus this transaction's own earlier record writes.
pub trait Records {
    /// The value of a record, if present.
    fn get_record(&self, family: RecordFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Inserts or replaces a record. Keys are 1 to 1024 bytes (any bytes); any other key, or
    /// an invalid family name, is refused with `StoreError::Refused` (by every method).
    fn put_record(
        &mut self,
        family: RecordFamily,
        key: &[u8],
        value: Vec<u8>,
    ) -> Result<(), StoreError>;

    /// Deletes a record (a missing one is not an error).
    fn delete_record(&mut self, family: RecordFamily, key: &[u8]) -> Result<(), StoreError>;

    /// Records of `family` whose key starts with `prefix`, in key order, starting strictly
    /// after `after` (a full key, which need not exist), at most `limit` of them. An empty
    /// `prefix` scans the whole family; to page, pass the last key of the previous page.
    fn scan_records(
        &self,
        family: RecordFamily,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<crate::store::Record>, StoreError>;
}

/// What a bulk import loaded, given to its `finish` step before it commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportSummary {
    /// Relationships loaded.
    pub loaded: u64,
    /// The revision the import commits at.
    pub revision: Revision,
    /// SHA-256 over every loaded relationship's canonical text (its `Display`, as
    /// `Relationship::parse` reads it) followed by `\n`, in the order they were loaded.
    pub digest: [u8; 32],
}

/// Fails unless `family` is a valid name and `key` is 1 to 1024 bytes long.
pub(super) fn check_record(family: RecordFamily, key: &[u8]) -> Result<(), StoreError> {
    family.check()?;
    if key.is_empty() || key.len() > MAX_RECORD_KEY_LEN {
        return Err(StoreError::Refused(format!(
            "a key of record family `{}` must be 1 to {MAX_RECORD_KEY_LEN} bytes long, not {}",
            family.name(),
            key.len()
        )));
    }
    Ok(())
}

/// The smallest key a scan of `prefix` strictly after `after` may return: the greater of
/// `prefix` and `after ++ 00` (the next byte string after `after`).
pub(super) fn scan_start(prefix: &[u8], after: Option<&[u8]>) -> Vec<u8> {
    match after {
        Some(after) if after >= prefix => {
            let mut start = Vec::with_capacity(after.len() + 1);
            start.extend_from_slice(after);
            start.push(0);
            start
        }
        _ => prefix.to_vec(),
    }
}

/// The result of a scan: the committed records of the range (in key order) overlaid with a
/// transaction's pending writes of the same range (in key order; `None` is a deletion), at
/// most `limit` of them.
pub(super) fn merge_scan<'p>(
    committed: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>>,
    pending: impl Iterator<Item = (&'p [u8], Option<&'p [u8]>)>,
    limit: usize,
) -> Result<Vec<crate::store::Record>, StoreError> {
    use std::cmp::Ordering;
    let mut out = Vec::new();
    let mut pending = pending.peekable();
    let mut committed = committed.peekable();
    while out.len() < limit {
        if let Some(Err(_)) = committed.peek() {
            if let Some(Err(e)) = committed.next() {
                return Err(e);
            }
        }
        // Which comes first: the next committed record or the next pending write.
        let order = match (committed.peek(), pending.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(Ok((c, _))), Some((p, _))) => c.as_slice().cmp(p),
            (Some(Err(_)), Some(_)) => Ordering::Less,
        };
        if order == Ordering::Equal {
            // The transaction's write replaces the committed record.
            committed.next();
        }
        if order == Ordering::Less {
            match committed.next() {
                Some(Ok(record)) => out.push(record),
                Some(Err(e)) => return Err(e),
                None => break,
            }
        } else if let Some((key, Some(value))) = pending.next() {
            out.push((key.to_vec(), value.to_vec()));
        }
    }
    Ok(out)
}

/// The running digest of a bulk import (see `ImportSummary::digest`).
pub(super) struct ImportDigest {
    hasher: Sha256,
    text: String,
}

impl ImportDigest {
    /// The digest of no relationships.
    pub(super) fn new() -> Self {
        ImportDigest {
            hasher: Sha256::new(),
            text: String::with_capacity(128),
        }
    }

    /// Adds one loaded relationship.
    pub(super) fn add(&mut self, relationship: &Relationship) {
        let text = &mut self.text;
        text.clear();
        if relationship.caveat().is_none() && relationship.expiration().is_none() {
            // The `Display` text, built without the formatting machinery, which would cost a
            // streaming import several percent (`tests::add_hashes_the_display_text` keeps the
            // two equal).
            let (resource, subject) = (relationship.resource(), relationship.subject());
            for part in [
                resource.object_type(),
                ":",
                resource.object_id(),
                "#",
                relationship.relation(),
                "@",
                subject.object_type(),
                ":",
                subject.object_id(),
            ] {
                text.push_str(part);
            }
            if let Some(relation) = subject.relation() {
                text.push('#');
                text.push_str(relation);
            }
            text.push('\n');
        } else {
            // Writing into a `String` cannot fail.
            let _ = writeln!(text, "{relationship}");
        }
        self.hasher.update(text.as_bytes());
    }

    /// The digest of everything added.
    pub(super) fn finish(self) -> [u8; 32] {
        self.hasher.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_hashes_the_display_text() {
        let texts = [
            "doc:1#viewer@user:a",
            "org/doc:x_1#viewer@team:eng#member",
            "doc:1#viewer@user:*",
            "doc:1#viewer@user:a[only_if]",
            r#"doc:1#viewer@user:a[only_if:{"x":1,"y":["a"]}]"#,
            "doc:1#viewer@team:t#member[expiration:2030-01-02T03:04:05Z]",
        ];
        let mut all = ImportDigest::new();
        let mut expected_all = Sha256::new();
        for text in texts {
            let rel = Relationship::parse(text).unwrap();
            let display = format!("{rel}\n");
            let mut one = ImportDigest::new();
            one.add(&rel);
            assert_eq!(one.text, display, "{text}");
            assert_eq!(one.finish(), <[u8; 32]>::from(Sha256::digest(&display)));
            all.add(&rel);
            expected_all.update(display.as_bytes());
        }
        assert_eq!(all.finish(), <[u8; 32]>::from(expected_all.finalize()));
    }

    #[test]
    fn scans_start_after_the_cursor_and_merge_pending_writes() {
        assert_eq!(scan_start(b"ab", None), b"ab");
        assert_eq!(scan_start(b"ab", Some(b"a")), b"ab");
        assert_eq!(scan_start(b"ab", Some(b"ab")), b"ab\0");
        assert_eq!(scan_start(b"ab", Some(b"abc")), b"abc\0");
        let committed =
            [(b"a", b"1"), (b"c", b"3"), (b"e", b"5")].map(|(k, v)| Ok((k.to_vec(), v.to_vec())));
        let pending: [(&[u8], Option<&[u8]>); 4] = [
            (b"b", Some(b"2")),
            (b"c", None),
            (b"e", Some(b"five")),
            (b"f", Some(b"6")),
        ];
        let merged = merge_scan(committed.clone().into_iter(), pending.into_iter(), 10).unwrap();
        let keys: Vec<&[u8]> = merged.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, [&b"a"[..], b"b", b"e", b"f"]);
        assert_eq!(merged[2].1, b"five");
        let merged = merge_scan(committed.into_iter(), pending.into_iter(), 2).unwrap();
        assert_eq!(merged.len(), 2);
        let failing = [Err(StoreError::Internal("boom".to_string()))];
        assert!(merge_scan(failing.into_iter(), std::iter::empty(), 1).is_err());
    }
}
