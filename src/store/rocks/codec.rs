//! The compact binary encoding of what the RocksDB datastore stores in values: relationship
//! versions (alive with caveat and expiration, or a tombstone), caveat contexts, changelog
//! chunks and commit records. Decoding never trusts its input: a truncated or corrupt value
//! is an error, never a panic.
//!
//! ```text
//! version      = 0x00 flags [expiration: i64 BE] [caveat: str context]   (alive)
//!              | 0x01                                                    (tombstone)
//!   flags      = bit 0: has caveat, bit 1: has expiration
//! context      = varint(n) (str value){n}                      keys in sorted order
//! value        = 0x00 null | 0x01 false | 0x02 true | 0x03 zigzag-varint int
//!              | 0x04 varint uint | 0x05 f64 LE bits | 0x06 str | 0x07 varint(n) value{n}
//!              | 0x08 context (a map)
//! str          = varint(len) utf-8 bytes
//! changes      = varint(n) (kind: 0x00 touch | 0x01 delete, bytes(forward tuple), bytes(version)){n}
//! commit       = i64 BE commit time (µs since the epoch), u8 flags (bit 0: schema changed)
//! ```

use crate::model::{
    CaveatRef, ContextMap, ContextValue, ObjectRef, Relationship, SubjectRef, Timestamp,
};

use super::super::{Change, StoreError};
use super::keys;

const ALIVE: u8 = 0;
const TOMBSTONE: u8 = 1;
const FLAG_CAVEAT: u8 = 1;
const FLAG_EXPIRATION: u8 = 2;

const CHANGE_TOUCH: u8 = 0;
const CHANGE_DELETE: u8 = 1;

const COMMIT_SCHEMA_CHANGED: u8 = 1;

/// Deepest nesting of lists and maps decoded from a caveat context (deeper JSON is refused
/// when written, by serde_json's own limit of 128).
const MAX_CONTEXT_DEPTH: usize = 256;

fn corrupt(what: &str) -> StoreError {
    StoreError::Internal(format!("corrupt stored data: {what}"))
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    push_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn push_bytes(out: &mut Vec<u8>, b: &[u8]) {
    push_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Reads a value front to back.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let (head, tail) = self
            .rest
            .split_at_checked(n)
            .ok_or_else(|| corrupt("value is truncated"))?;
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        let (first, tail) = self
            .rest
            .split_first()
            .ok_or_else(|| corrupt("value is truncated"))?;
        self.rest = tail;
        Ok(*first)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        self.take(N)?
            .try_into()
            .map_err(|_| corrupt("value is truncated"))
    }

    fn varint(&mut self) -> Result<u64, StoreError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt("varint too long"))
    }

    fn len(&mut self) -> Result<usize, StoreError> {
        let n = self.varint()?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.rest.len())
            .ok_or_else(|| corrupt("length beyond the value"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.len()?;
        self.take(n)
    }

    fn str(&mut self) -> Result<&'a str, StoreError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| corrupt("string is not UTF-8"))
    }

    fn done(&self) -> Result<(), StoreError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(corrupt("trailing bytes"))
        }
    }
}

/// Appends the version value of `rel` (alive), or a tombstone if `rel` is `None`.
pub(super) fn push_version(out: &mut Vec<u8>, rel: Option<&Relationship>) {
    let Some(rel) = rel else {
        out.push(TOMBSTONE);
        return;
    };
    out.push(ALIVE);
    let mut flags = 0;
    if rel.caveat().is_some() {
        flags |= FLAG_CAVEAT;
    }
    if rel.expiration().is_some() {
        flags |= FLAG_EXPIRATION;
    }
    out.push(flags);
    if let Some(e) = rel.expiration() {
        out.extend_from_slice(&e.as_micros().to_be_bytes());
    }
    if let Some(c) = rel.caveat() {
        push_str(out, c.name());
        push_context(out, c.context());
    }
}

/// The version value of `rel` (alive), or a tombstone if `rel` is `None`.
pub(super) fn encode_version(rel: Option<&Relationship>) -> Vec<u8> {
    let mut out = Vec::with_capacity(2);
    push_version(&mut out, rel);
    out
}

/// Whether a version value is a tombstone.
pub(super) fn is_tombstone(value: &[u8]) -> bool {
    value.first() == Some(&TOMBSTONE)
}

/// The caveat and expiration of an alive version.
type Attributes = (Option<CaveatRef>, Option<Timestamp>);

/// Reads the head of an alive version: its flags and expiration; `r` is left at the caveat.
fn alive_head(r: &mut Reader<'_>) -> Result<(u8, Option<Timestamp>), StoreError> {
    if r.u8()? != ALIVE {
        return Err(corrupt("expected an alive version"));
    }
    let flags = r.u8()?;
    if flags & !(FLAG_CAVEAT | FLAG_EXPIRATION) != 0 {
        return Err(corrupt("unknown version flags"));
    }
    let expiration = if flags & FLAG_EXPIRATION != 0 {
        Some(Timestamp::from_micros(i64::from_be_bytes(r.array()?)))
    } else {
        None
    };
    Ok((flags, expiration))
}

fn decode_alive(value: &[u8]) -> Result<Attributes, StoreError> {
    let mut r = Reader::new(value);
    let (flags, expiration) = alive_head(&mut r)?;
    let caveat = if flags & FLAG_CAVEAT != 0 {
        let name = r.str()?;
        let context = read_context(&mut r, 0)?;
        Some(CaveatRef::new(name, context).map_err(|e| corrupt(&e.to_string()))?)
    } else {
        None
    };
    r.done()?;
    Ok((caveat, expiration))
}

/// Whether an alive version has a caveat, and its expiration (the caveat itself is not
/// decoded).
pub(super) fn alive_flags(value: &[u8]) -> Result<(bool, Option<Timestamp>), StoreError> {
    let (flags, expiration) = alive_head(&mut Reader::new(value))?;
    Ok((flags & FLAG_CAVEAT != 0, expiration))
}

/// Whether an alive version expires at or before `now` (false for tombstones).
pub(super) fn expired_at(value: &[u8], now: Timestamp) -> bool {
    let mut r = Reader::new(value);
    match (r.u8(), r.u8()) {
        (Ok(ALIVE), Ok(flags)) if flags & FLAG_EXPIRATION != 0 => r
            .array()
            .map(|b| Timestamp::from_micros(i64::from_be_bytes(b)) <= now)
            .unwrap_or(false),
        _ => false,
    }
}

fn push_context(out: &mut Vec<u8>, context: &ContextMap) {
    push_varint(out, context.len() as u64);
    for (k, v) in context {
        push_str(out, k);
        push_value(out, v);
    }
}

fn push_value(out: &mut Vec<u8>, v: &ContextValue) {
    match v {
        ContextValue::Null => out.push(0),
        ContextValue::Bool(false) => out.push(1),
        ContextValue::Bool(true) => out.push(2),
        ContextValue::Int(i) => {
            out.push(3);
            push_varint(out, ((*i << 1) ^ (*i >> 63)) as u64);
        }
        ContextValue::UInt(u) => {
            out.push(4);
            push_varint(out, *u);
        }
        ContextValue::Double(d) => {
            out.push(5);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        ContextValue::String(s) => {
            out.push(6);
            push_str(out, s);
        }
        ContextValue::List(items) => {
            out.push(7);
            push_varint(out, items.len() as u64);
            for item in items {
                push_value(out, item);
            }
        }
        ContextValue::Map(map) => {
            out.push(8);
            push_context(out, map);
        }
    }
}

fn read_context(r: &mut Reader<'_>, depth: usize) -> Result<ContextMap, StoreError> {
    let n = r.len()?;
    let mut map = ContextMap::new();
    for _ in 0..n {
        let k = r.str()?.to_string();
        let v = read_value(r, depth + 1)?;
        map.insert(k, v);
    }
    Ok(map)
}

fn read_value(r: &mut Reader<'_>, depth: usize) -> Result<ContextValue, StoreError> {
    if depth > MAX_CONTEXT_DEPTH {
        return Err(corrupt("caveat context nested too deeply"));
    }
    Ok(match r.u8()? {
        0 => ContextValue::Null,
        1 => ContextValue::Bool(false),
        2 => ContextValue::Bool(true),
        3 => {
            let z = r.varint()?;
            ContextValue::Int(((z >> 1) as i64) ^ -((z & 1) as i64))
        }
        4 => ContextValue::UInt(r.varint()?),
        5 => ContextValue::Double(f64::from_bits(u64::from_le_bytes(r.array()?))),
        6 => ContextValue::String(r.str()?.to_string()),
        7 => {
            let n = r.len()?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(read_value(r, depth + 1)?);
            }
            ContextValue::List(items)
        }
        8 => ContextValue::Map(read_context(r, depth + 1)?),
        _ => return Err(corrupt("unknown context value tag")),
    })
}

/// Builds a relationship from its parts as stored.
fn assemble(
    [rtype, rid, relation, stype, sid, srel]: [&str; 6],
    value: &[u8],
) -> Result<Relationship, StoreError> {
    let (caveat, expiration) = decode_alive(value)?;
    let resource = ObjectRef::new(rtype, rid).map_err(|e| corrupt(&e.to_string()))?;
    let srel = (!srel.is_empty()).then_some(srel);
    let subject = SubjectRef::new(stype, sid, srel).map_err(|e| corrupt(&e.to_string()))?;
    Relationship::new(resource, relation, subject, caveat, expiration)
        .map_err(|e| corrupt(&e.to_string()))
}

/// The relationship of a forward tuple and its alive version value.
pub(super) fn relationship_from_forward(
    tuple: &[u8],
    value: &[u8],
) -> Result<Relationship, StoreError> {
    let parts = keys::tuple_components(tuple).ok_or_else(|| corrupt("malformed forward key"))?;
    assemble(parts, value)
}

/// The relationship of a reverse tuple and its alive version value.
pub(super) fn relationship_from_reverse(
    tuple: &[u8],
    value: &[u8],
) -> Result<Relationship, StoreError> {
    let [stype, sid, rtype, relation, srel, rid] =
        keys::tuple_components(tuple).ok_or_else(|| corrupt("malformed reverse key"))?;
    assemble([rtype, rid, relation, stype, sid, srel], value)
}

/// Appends one change to a changelog chunk under construction (the count is written by
/// [`finish_changes`]).
pub(super) fn push_change(out: &mut Vec<u8>, change: &Change) -> Result<(), StoreError> {
    let (kind, rel) = match change {
        Change::Touch(r) => (CHANGE_TOUCH, r),
        Change::Delete(r) => (CHANGE_DELETE, r),
    };
    out.push(kind);
    let tuple = keys::forward_tuple(rel)?;
    push_bytes(out, &tuple);
    let mut value = Vec::with_capacity(2);
    push_version(&mut value, Some(rel));
    push_bytes(out, &value);
    Ok(())
}

/// Appends a touch change from an already encoded forward tuple and version value.
pub(super) fn push_encoded_touch(out: &mut Vec<u8>, tuple: &[u8], value: &[u8]) {
    out.push(CHANGE_TOUCH);
    push_bytes(out, tuple);
    push_bytes(out, value);
}

/// A changelog chunk: the count of changes, then the changes pushed into `body`.
pub(super) fn finish_changes(count: usize, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    push_varint(&mut out, count as u64);
    out.extend_from_slice(body);
    out
}

/// The changes of one changelog chunk, in order.
pub(super) fn decode_changes(value: &[u8]) -> Result<Vec<Change>, StoreError> {
    let mut r = Reader::new(value);
    let n = r.varint()?;
    let mut out = Vec::with_capacity(usize::try_from(n.min(1 << 16)).unwrap_or(0));
    for _ in 0..n {
        let kind = r.u8()?;
        let tuple = r.bytes()?;
        let version = r.bytes()?;
        let rel = relationship_from_forward(tuple, version)?;
        out.push(match kind {
            CHANGE_TOUCH => Change::Touch(rel),
            CHANGE_DELETE => Change::Delete(rel),
            _ => return Err(corrupt("unknown change kind")),
        });
    }
    r.done()?;
    Ok(out)
}

/// The forward tuples of one changelog chunk's changes (what a rollback must remove).
pub(super) fn changed_tuples(value: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut r = Reader::new(value);
    let n = r.varint()?;
    let mut out = Vec::new();
    for _ in 0..n {
        let _kind = r.u8()?;
        let tuple = r.bytes()?;
        let _version = r.bytes()?;
        out.push(tuple.to_vec());
    }
    r.done()?;
    Ok(out)
}

/// A commit record: when the revision committed and whether it changed the schema.
pub(super) fn encode_commit(timestamp: Timestamp, schema_changed: bool) -> [u8; 9] {
    let mut out = [0u8; 9];
    let (t, f) = out.split_at_mut(8);
    t.copy_from_slice(&timestamp.as_micros().to_be_bytes());
    if let Some(flags) = f.first_mut() {
        *flags = if schema_changed {
            COMMIT_SCHEMA_CHANGED
        } else {
            0
        };
    }
    out
}

/// Decodes a commit record.
pub(super) fn decode_commit(value: &[u8]) -> Result<(Timestamp, bool), StoreError> {
    let mut r = Reader::new(value);
    let t = Timestamp::from_micros(i64::from_be_bytes(r.array()?));
    let flags = r.u8()?;
    r.done()?;
    Ok((t, flags & COMMIT_SCHEMA_CHANGED != 0))
}

/// Encodes a u64 metadata value.
pub(super) fn encode_u64(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

/// Decodes a u64 metadata value.
pub(super) fn decode_u64(value: &[u8]) -> Result<u64, StoreError> {
    value
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt("metadata value is not 8 bytes"))
}

/// Decodes a u32 metadata value.
pub(super) fn decode_u32(value: &[u8]) -> Result<u32, StoreError> {
    value
        .try_into()
        .map(u32::from_be_bytes)
        .map_err(|_| corrupt("metadata value is not 4 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) {
        let rel = Relationship::parse(text).unwrap();
        let tuple = keys::forward_tuple(&rel).unwrap();
        let value = encode_version(Some(&rel));
        assert_eq!(relationship_from_forward(&tuple, &value).unwrap(), rel);
        let rtuple = keys::reverse_tuple(&rel).unwrap();
        assert_eq!(relationship_from_reverse(&rtuple, &value).unwrap(), rel);
    }

    #[test]
    fn relationships_round_trip() {
        round_trip("doc:a#viewer@user:b");
        round_trip("doc:a#viewer@user:*");
        round_trip("doc:a#viewer@team:eng#member");
        round_trip("doc:a#viewer@user:b[expiration:2030-01-01T00:00:00.5Z]");
        round_trip(
            r#"doc:a#viewer@user:b[only_if:{"n":-5,"u":18446744073709551615,"d":1.5,"s":"x","l":[1,[true,null]],"m":{"k":"v"}}][expiration:1969-12-31T23:59:59Z]"#,
        );
        round_trip("doc:a#viewer@user:b[only_if]");
    }

    #[test]
    fn tombstones_and_expiry() {
        assert!(is_tombstone(&encode_version(None)));
        let rel =
            Relationship::parse("doc:a#viewer@user:b[expiration:2030-01-01T00:00:00Z]").unwrap();
        let value = encode_version(Some(&rel));
        assert!(!is_tombstone(&value));
        let at = Timestamp::parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
        assert!(expired_at(&value, at));
        assert!(!expired_at(
            &value,
            Timestamp::from_micros(at.as_micros() - 1)
        ));
        assert!(!expired_at(&encode_version(None), at));
    }

    #[test]
    fn changes_round_trip() {
        let a = Relationship::parse("doc:a#viewer@user:b").unwrap();
        let b = Relationship::parse(r#"doc:a#viewer@user:c[cav:{"x":1}]"#).unwrap();
        let mut body = Vec::new();
        push_change(&mut body, &Change::Touch(a.clone())).unwrap();
        push_change(&mut body, &Change::Delete(b.clone())).unwrap();
        let chunk = finish_changes(2, &body);
        assert_eq!(
            decode_changes(&chunk).unwrap(),
            vec![Change::Touch(a), Change::Delete(b)]
        );
        assert_eq!(changed_tuples(&chunk).unwrap().len(), 2);
        let commit = encode_commit(Timestamp::from_micros(-3), true);
        assert_eq!(
            decode_commit(&commit).unwrap(),
            (Timestamp::from_micros(-3), true)
        );
    }

    #[test]
    fn corrupt_values_are_errors_not_panics() {
        let rel = Relationship::parse(r#"doc:a#viewer@user:b[cav:{"x":[1,2,{"y":"z"}]}]"#).unwrap();
        let tuple = keys::forward_tuple(&rel).unwrap();
        let value = encode_version(Some(&rel));
        for cut in 0..value.len() {
            assert!(relationship_from_forward(&tuple, &value[..cut]).is_err());
        }
        let mut deep = vec![ALIVE, FLAG_CAVEAT, 3, b'c', b'a', b'v', 1, 1, b'x'];
        deep.extend(std::iter::repeat_n(7u8, 2000).flat_map(|t| [t, 1]));
        assert!(relationship_from_forward(&tuple, &deep).is_err());
        assert!(decode_changes(&[5, 0]).is_err());
        assert!(relationship_from_forward(b"doc\0a\0", &value).is_err());
    }
}
