//! The on-disk key layout of the RocksDB datastore: every column family, every key family in
//! it with a diagram, and the builders and parsers of those keys. Nothing else in Arbor
//! builds or parses a key.
//!
//! # Strings inside keys
//!
//! Names and ids never contain a NUL byte (their syntax forbids it, and the builders refuse
//! one), so every string component is written as its bytes followed by `00`. A `00`
//! terminator sorts below every other byte, so concatenated components sort exactly as the
//! tuple of strings does (`doc` < `doc2`, and `("doc", "b")` < `("doc2", "a")`), and no
//! component sequence is a prefix of another. A missing subject relation is the empty
//! component, so it sorts before every named relation — the order the memory store uses.
//!
//! # Versions (MVCC)
//!
//! A relationship tuple is never overwritten. Each write appends a *version* whose key is the
//! tuple followed by the bitwise-inverted revision that wrote it (8 bytes, big-endian), so
//! the versions of one tuple sit together, newest first. The value says whether the version
//! is alive (with its caveat and expiration) or a deletion marker (a tombstone). A read at
//! revision `S` takes, for each tuple, the first version whose revision is `≤ S`: seeking to
//! `tuple ++ !S` lands on it directly. A version written by an uncommitted revision
//! (`> head`) is never read, because no snapshot is ever opened above the head.
//!
//! ```text
//! relationships (forward: by resource)
//!   ┌──────────┬─────────┬──────────┬─────────┬───────┬──────────┬──────────────┐
//!   │ res type │ res id  │ relation │ subj    │ subj  │ subj rel │ !revision    │
//!   │ ␀-ended  │ ␀-ended │ ␀-ended  │ type ␀  │ id ␀  │ ␀ (""=…) │ u64 BE       │
//!   └──────────┴─────────┴──────────┴─────────┴───────┴──────────┴──────────────┘
//!   └────── prefix extractor: first 3 components (read_resource, point lookups) ─┘
//!   value: codec::encode_version (alive: caveat + expiration | tombstone)
//!
//! subjects (reverse: by subject)
//!   ┌─────────┬───────┬──────────┬──────────┬──────────┬─────────┬──────────────┐
//!   │ subj    │ subj  │ res type │ relation │ subj rel │ res id  │ !revision    │
//!   │ type ␀  │ id ␀  │ ␀        │ ␀        │ ␀        │ ␀       │ u64 BE       │
//!   └─────────┴───────┴──────────┴──────────┴──────────┴─────────┴──────────────┘
//!   └── prefix extractor: first 4 components (lookups by subject) ──┘
//!   value: the same bytes as the forward version (so a reverse read needs no second lookup)
//!
//! changelog (Watch: changes by revision)
//!   ┌──────────────┬──────────┐
//!   │ revision     │ chunk    │   chunk 0: written by every commit (maybe empty);
//!   │ u64 BE       │ u32 BE   │   chunks 1..: written by a bulk import while it streams
//!   └──────────────┴──────────┘
//!   value: codec::encode_changes
//!
//! revisions (commit records)            schemas (schema history)
//!   ┌──────────────┐                      ┌──────────────┐
//!   │ revision BE  │ → commit time,       │ revision BE  │ → schema source text (UTF-8),
//!   └──────────────┘   flags              └──────────────┘   compiled again at open
//!
//! meta (named keys)
//!   "format_version" → u32 BE      "head" → u64 BE      "horizon" → u64 BE (last GC)
//!
//! records (named families of opaque records; newest value only, not versioned)
//!   ┌────────────────┬────┬───────────────────┐
//!   │ family name    │ 00 │ record key        │   family: [A-Za-z0-9_.]{1,32}, never 00;
//!   │ (ASCII)        │    │ 1..=1024 bytes    │   key: any bytes, 00 included
//!   └────────────────┴────┴───────────────────┘
//!   value: the record's bytes, as given (the store never reads them)
//! ```
//!
//! # Records
//!
//! A family name holds no `00`, so a record key's family ends at its first `00`: the records
//! of one family sit together, sorted by record key as byte strings, and no family's keys
//! interleave with another's (`a` ++ `00` sorts before `a.b` ++ `00`, and nothing starts with
//! `a` ++ `00` but records of `a`). A scan of the records whose key starts with `p` is the key
//! range from `family 00 p` to [`prefix_end`] of it; "strictly after record key `k`" starts at
//! `family 00 k 00`, the next byte string after `family 00 k`. Records are written in place
//! by the commit batch of their transaction (or of the import whose `finish` wrote them), and
//! nothing else — garbage collection included — deletes them.
//!
//! A bulk import writes its versions and its changelog chunks `1..` at revision `head + 1`
//! in many batches and commits by writing chunk 0, the commit record and `head` in one
//! synced batch. Changelog chunks above the head are therefore the exact list of versions of
//! an import that never committed; opening the store removes them (see `import.rs`).

use crate::model::{Relationship, Revision};

use super::super::StoreError;

/// Column family of the forward index.
pub(super) const CF_RELATIONSHIPS: &str = "relationships";
/// Column family of the reverse index.
pub(super) const CF_SUBJECTS: &str = "subjects";
/// Column family of the changelog.
pub(super) const CF_CHANGELOG: &str = "changelog";
/// Column family of the commit records.
pub(super) const CF_REVISIONS: &str = "revisions";
/// Column family of the schema history.
pub(super) const CF_SCHEMAS: &str = "schemas";
/// Column family of the named metadata keys.
pub(super) const CF_META: &str = "meta";
/// Column family of the records (see `store::records`).
pub(super) const CF_RECORDS: &str = "records";

/// Every column family Arbor opens (RocksDB's `default` is opened too and left empty).
pub(super) const COLUMN_FAMILIES: [&str; 7] = [
    CF_RELATIONSHIPS,
    CF_SUBJECTS,
    CF_CHANGELOG,
    CF_REVISIONS,
    CF_SCHEMAS,
    CF_META,
    CF_RECORDS,
];

/// Column families added to format 1 after directories of that format were first written.
/// Each is a new, independent key space (no existing key or value changes), so a directory
/// without one is a valid format-1 directory holding none of its keys: `open` creates the
/// family there, and a read-only view reads it as empty.
pub(super) const ADDED_COLUMN_FAMILIES: [&str; 1] = [CF_RECORDS];

/// The on-disk format this build reads and writes. Bump it whenever a key or value layout
/// changes; `open` refuses a directory written in another format. Adding a column family
/// that older directories can lack (`ADDED_COLUMN_FAMILIES`) is not such a change: an older
/// build cannot open a directory that has it anyway (RocksDB refuses to open a directory
/// read-write without every column family in it).
pub(super) const FORMAT_VERSION: u32 = 1;

/// `meta` key: the on-disk format version (u32 BE).
pub(super) const META_FORMAT_VERSION: &[u8] = b"format_version";
/// `meta` key: the newest committed revision (u64 BE).
pub(super) const META_HEAD: &[u8] = b"head";
/// `meta` key: the horizon of the last garbage collection (u64 BE).
pub(super) const META_HORIZON: &[u8] = b"horizon";

/// Length of the version suffix.
pub(super) const VERSION_LEN: usize = 8;
/// Components in a forward or reverse tuple.
const TUPLE_COMPONENTS: usize = 6;
/// Components in the forward prefix (resource type, id, relation).
const FORWARD_PREFIX_COMPONENTS: usize = 3;
/// Components in the reverse prefix (subject type, id, resource type, relation).
const REVERSE_PREFIX_COMPONENTS: usize = 4;

/// Appends one `00`-terminated component; refuses a string holding a NUL byte.
pub(super) fn push_component(buf: &mut Vec<u8>, s: &str) -> Result<(), StoreError> {
    if s.as_bytes().contains(&0) {
        return Err(StoreError::Internal(format!(
            "`{}` contains a NUL byte and cannot be stored",
            s.escape_debug()
        )));
    }
    buf.extend_from_slice(s.as_bytes());
    buf.push(0);
    Ok(())
}

/// The forward tuple of a relationship (no version suffix).
pub(super) fn forward_tuple(rel: &Relationship) -> Result<Vec<u8>, StoreError> {
    let mut buf = Vec::with_capacity(64);
    push_forward_tuple(&mut buf, rel)?;
    Ok(buf)
}

/// Appends the forward tuple of a relationship.
pub(super) fn push_forward_tuple(buf: &mut Vec<u8>, rel: &Relationship) -> Result<(), StoreError> {
    let subject = rel.subject();
    push_component(buf, rel.resource().object_type())?;
    push_component(buf, rel.resource().object_id())?;
    push_component(buf, rel.relation())?;
    push_component(buf, subject.object_type())?;
    push_component(buf, subject.object_id())?;
    push_component(buf, subject.relation().unwrap_or(""))
}

/// The reverse tuple of a relationship (no version suffix).
pub(super) fn reverse_tuple(rel: &Relationship) -> Result<Vec<u8>, StoreError> {
    let mut buf = Vec::with_capacity(64);
    push_reverse_tuple(&mut buf, rel)?;
    Ok(buf)
}

/// Appends the reverse tuple of a relationship.
pub(super) fn push_reverse_tuple(buf: &mut Vec<u8>, rel: &Relationship) -> Result<(), StoreError> {
    let subject = rel.subject();
    push_component(buf, subject.object_type())?;
    push_component(buf, subject.object_id())?;
    push_component(buf, rel.resource().object_type())?;
    push_component(buf, rel.relation())?;
    push_component(buf, subject.relation().unwrap_or(""))?;
    push_component(buf, rel.resource().object_id())
}

/// The reverse tuple of the relationship whose forward tuple is `forward`.
pub(super) fn reverse_from_forward(forward: &[u8]) -> Option<Vec<u8>> {
    let [rtype, rid, relation, stype, sid, srel] = tuple_components(forward)?;
    let mut buf = Vec::with_capacity(forward.len());
    for part in [stype, sid, rtype, relation, srel, rid] {
        buf.extend_from_slice(part.as_bytes());
        buf.push(0);
    }
    Some(buf)
}

/// The suffix that marks a version written at `revision`.
pub(super) fn version_suffix(revision: Revision) -> [u8; VERSION_LEN] {
    (!revision.get()).to_be_bytes()
}

/// The key of the version of `tuple` written at `revision`.
pub(super) fn version_key(tuple: &[u8], revision: Revision) -> Vec<u8> {
    let mut key = Vec::with_capacity(tuple.len() + VERSION_LEN);
    key.extend_from_slice(tuple);
    key.extend_from_slice(&version_suffix(revision));
    key
}

/// Splits a version key into its tuple and the revision that wrote it.
pub(super) fn split_version(key: &[u8]) -> Option<(&[u8], Revision)> {
    let at = key.len().checked_sub(VERSION_LEN)?;
    let (tuple, suffix) = key.split_at_checked(at)?;
    let inverted = u64::from_be_bytes(suffix.try_into().ok()?);
    Some((tuple, Revision::new(!inverted)))
}

/// The six string components of a forward or reverse tuple.
pub(super) fn tuple_components(tuple: &[u8]) -> Option<[&str; TUPLE_COMPONENTS]> {
    let mut out = [""; TUPLE_COMPONENTS];
    let mut rest = tuple;
    for slot in &mut out {
        let end = rest.iter().position(|b| *b == 0)?;
        let (part, tail) = rest.split_at_checked(end)?;
        *slot = std::str::from_utf8(part).ok()?;
        rest = tail.get(1..)?;
    }
    rest.is_empty().then_some(out)
}

/// The leading bytes of `key` up to and including its `n`-th `00`, if it has that many.
fn leading_components(key: &[u8], n: usize) -> Option<&[u8]> {
    let mut seen = 0;
    for (i, b) in key.iter().enumerate() {
        if *b == 0 {
            seen += 1;
            if seen == n {
                return key.get(..=i);
            }
        }
    }
    None
}

/// Prefix extractor of `relationships`: resource type, id and relation. Only keys with at
/// least those three components are in its domain (the tuple's components come first, so the
/// version suffix never supplies a terminator).
pub(super) fn forward_prefix(key: &[u8]) -> &[u8] {
    leading_components(key, FORWARD_PREFIX_COMPONENTS).unwrap_or(key)
}

/// Domain of [`forward_prefix`].
pub(super) fn in_forward_domain(key: &[u8]) -> bool {
    leading_components(key, FORWARD_PREFIX_COMPONENTS).is_some()
}

/// Prefix extractor of `subjects`: subject type and id, resource type and relation.
pub(super) fn reverse_prefix(key: &[u8]) -> &[u8] {
    leading_components(key, REVERSE_PREFIX_COMPONENTS).unwrap_or(key)
}

/// Domain of [`reverse_prefix`].
pub(super) fn in_reverse_domain(key: &[u8]) -> bool {
    leading_components(key, REVERSE_PREFIX_COMPONENTS).is_some()
}

/// The smallest key greater than every key starting with `prefix` (`None`: no such key).
pub(super) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// `changelog` key of one chunk of a revision's changes.
pub(super) fn changelog_key(revision: Revision, chunk: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    let (rev, ch) = key.split_at_mut(8);
    rev.copy_from_slice(&revision.get().to_be_bytes());
    ch.copy_from_slice(&chunk.to_be_bytes());
    key
}

/// Parses a `changelog` key.
pub(super) fn parse_changelog_key(key: &[u8]) -> Option<(Revision, u32)> {
    let (rev, chunk) = key.split_at_checked(8)?;
    let rev = u64::from_be_bytes(rev.try_into().ok()?);
    let chunk = u32::from_be_bytes(chunk.try_into().ok()?);
    Some((Revision::new(rev), chunk))
}

/// `revisions` and `schemas` key of a revision.
pub(super) fn revision_key(revision: Revision) -> [u8; 8] {
    revision.get().to_be_bytes()
}

/// Parses a `revisions` or `schemas` key.
pub(super) fn parse_revision_key(key: &[u8]) -> Option<Revision> {
    Some(Revision::new(u64::from_be_bytes(key.try_into().ok()?)))
}

/// `records` key of the record `key` of family `family` (a checked family name).
pub(super) fn record_key(family: &str, key: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut buf = Vec::with_capacity(family.len() + 1 + key.len());
    push_component(&mut buf, family)?;
    buf.extend_from_slice(key);
    Ok(buf)
}

/// The `records` key range of the records of `family` whose key starts with `prefix`, from
/// record key `start` on (at least `prefix`): the first key and the exclusive end.
pub(super) fn record_range(
    family: &str,
    prefix: &[u8],
    start: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
    let first = record_key(family, start)?;
    let scope = record_key(family, prefix)?;
    // `scope` holds the family's `00`, so some byte of it can be raised: there is an end.
    let end = prefix_end(&scope).ok_or_else(|| {
        StoreError::Internal(format!("record family `{family}` has no key range"))
    })?;
    Ok((first, end))
}

/// Splits a `records` key into its family name and record key.
pub(super) fn parse_record_key(key: &[u8]) -> Option<(&str, &[u8])> {
    let end = key.iter().position(|b| *b == 0)?;
    let (family, rest) = key.split_at_checked(end)?;
    Some((std::str::from_utf8(family).ok()?, rest.get(1..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(text: &str) -> Relationship {
        Relationship::parse(text).unwrap()
    }

    #[test]
    fn forward_keys_sort_like_tuples_and_versions_newest_first() {
        let texts = [
            "doc:a#viewer@user:b",
            "doc:a#viewer@user:b#member",
            "doc:a#viewer@user:bb",
            "doc:ab#owner@user:a",
            "doc2:a#owner@user:a",
        ];
        let keys: Vec<Vec<u8>> = texts
            .iter()
            .map(|t| forward_tuple(&rel(t)).unwrap())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        let tuple = &keys[0];
        let newer = version_key(tuple, Revision::new(9));
        let older = version_key(tuple, Revision::new(3));
        assert!(newer < older);
        assert!(older < version_key(&keys[1], Revision::new(100)));
        assert_eq!(split_version(&newer), Some((&tuple[..], Revision::new(9))));
    }

    #[test]
    fn components_round_trip_and_prefixes() {
        let r = rel("org/doc:x_1#viewer@team:eng#member");
        let f = forward_tuple(&r).unwrap();
        assert_eq!(
            tuple_components(&f).unwrap(),
            ["org/doc", "x_1", "viewer", "team", "eng", "member"]
        );
        let key = version_key(&f, Revision::new(0));
        assert_eq!(forward_prefix(&key), b"org/doc\0x_1\0viewer\0");
        assert!(in_forward_domain(&key));
        assert!(!in_forward_domain(b"org/doc\0x_1\0"));
        let rv = reverse_tuple(&r).unwrap();
        assert_eq!(
            tuple_components(&rv).unwrap(),
            ["team", "eng", "org/doc", "viewer", "member", "x_1"]
        );
        assert_eq!(reverse_prefix(&rv), b"team\0eng\0org/doc\0viewer\0");
        assert_eq!(reverse_from_forward(&f), Some(rv.clone()));
        assert!(tuple_components(b"a\0b\0").is_none());
    }

    #[test]
    fn nul_bytes_are_refused_and_bounds_computed() {
        let mut buf = Vec::new();
        assert!(push_component(&mut buf, "a\0b").is_err());
        assert_eq!(prefix_end(b"ab\0"), Some(b"ab\x01".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        let k = changelog_key(Revision::new(7), 2);
        assert_eq!(parse_changelog_key(&k), Some((Revision::new(7), 2)));
        assert!(changelog_key(Revision::new(7), 9) < changelog_key(Revision::new(8), 0));
    }

    #[test]
    fn record_keys_group_by_family_and_sort_by_key() {
        let k = record_key("audit", b"a\0b").unwrap();
        assert_eq!(k, b"audit\0a\0b");
        assert_eq!(parse_record_key(&k), Some(("audit", &b"a\0b"[..])));
        assert!(parse_record_key(b"no-terminator").is_none());
        // Another family whose name extends this one sorts after every key of it.
        assert!(record_key("a", b"\xff\xff").unwrap() < record_key("a.b", b"\0").unwrap());
        assert!(record_key("a", b"x").unwrap() < record_key("a", b"x\0").unwrap());
        let (first, end) = record_range("a", b"x", b"x\0").unwrap();
        assert_eq!(
            (first.as_slice(), end.as_slice()),
            (&b"a\0x\0"[..], &b"a\0y"[..])
        );
        let (_, end) = record_range("a", b"\xff", b"\xff").unwrap();
        assert_eq!(end, b"a\x01");
        let (first, end) = record_range("a", b"", b"").unwrap();
        assert_eq!(
            (first.as_slice(), end.as_slice()),
            (&b"a\0"[..], &b"a\x01"[..])
        );
        assert!(record_key("bad\0name", b"k").is_err());
    }
}
