//! `CheckKey`: one check sub-problem (`resource#relation@subject` at a revision) encoded as one
//! byte string — the one key the cache, single-flight and a request's memo share. A miss
//! builds it once (one allocation); a lookup encodes into a stack buffer and compares a single
//! contiguous string, so a hit allocates nothing and touches little memory.

use std::sync::Arc;

use crate::model::{ObjectRef, Revision, SubjectRef};

use super::dispatch::CheckRequest;

/// Approximate bytes of one cached entry besides its key (slot, Arc header, result).
const ENTRY_OVERHEAD_BYTES: usize = 96;

/// Keys up to this many bytes are encoded on the stack for a lookup.
const STACK_KEY_BYTES: usize = 256;

/// One check sub-problem at one revision: the revision (8 bytes, big-endian), then the
/// resource type and id, the relation, the subject type and id and the subject relation, each
/// as a 4-byte little-endian length and its bytes (an absent subject relation is empty, which
/// no relation name is).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CheckKey(Arc<[u8]>);

impl CheckKey {
    /// The key of `resource#relation@subject` at `revision`.
    pub fn new(
        revision: Revision,
        resource: &ObjectRef,
        relation: &str,
        subject: &SubjectRef,
    ) -> Self {
        with_encoded(revision, resource, relation, subject, |bytes| {
            CheckKey(Arc::from(bytes))
        })
    }

    /// The encoded key.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The revision it was asked at.
    pub fn revision(&self) -> Revision {
        let mut raw = [0u8; 8];
        if let Some(head) = self.0.get(..8) {
            raw.copy_from_slice(head);
        }
        Revision::new(u64::from_be_bytes(raw))
    }

    /// Approximate bytes a cache entry of this key holds.
    pub(super) fn cost(&self) -> usize {
        ENTRY_OVERHEAD_BYTES + self.0.len()
    }
}

impl std::borrow::Borrow<[u8]> for CheckKey {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

/// The key of a check sub-problem as the layers of the chain use it.
impl<'a> CheckRequest<'a> {
    /// `f` of the request's key at `revision`: the one a layer above built, else an encoding
    /// on the stack (a lookup that misses allocates nothing).
    pub(super) fn with_key_bytes<R>(&self, revision: Revision, f: impl FnOnce(&[u8]) -> R) -> R {
        match self.key {
            Some(key) => f(key.bytes()),
            None => with_encoded(revision, self.resource, self.relation, self.subject, f),
        }
    }

    /// The request's key at `revision`: the one a layer above built (shared), else a new one.
    pub(super) fn owned_key(&self, revision: Revision) -> CheckKey {
        match self.key {
            Some(key) => key.clone(),
            None => CheckKey::new(revision, self.resource, self.relation, self.subject),
        }
    }

    /// The same sub-problem carrying `key` (its key, as this layer built it) to the layers below.
    pub(super) fn keyed<'k>(&self, key: &'k CheckKey) -> CheckRequest<'k>
    where
        'a: 'k,
    {
        CheckRequest {
            key: Some(key),
            ..*self
        }
    }
}

fn encode(
    out: &mut impl std::io::Write,
    revision: Revision,
    resource: &ObjectRef,
    relation: &str,
    subject: &SubjectRef,
) -> std::io::Result<()> {
    out.write_all(&revision.get().to_be_bytes())?;
    for part in [
        resource.object_type(),
        resource.object_id(),
        relation,
        subject.object_type(),
        subject.object_id(),
        subject.relation().unwrap_or(""),
    ] {
        let len = u32::try_from(part.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(part.as_bytes())?;
    }
    Ok(())
}

/// Calls `f` with the encoding of `resource#relation@subject` at `revision`, built on the stack
/// unless it is unusually long.
pub(super) fn with_encoded<R>(
    revision: Revision,
    resource: &ObjectRef,
    relation: &str,
    subject: &SubjectRef,
    f: impl FnOnce(&[u8]) -> R,
) -> R {
    let mut stack = [0u8; STACK_KEY_BYTES];
    let mut rest: &mut [u8] = &mut stack;
    if encode(&mut rest, revision, resource, relation, subject).is_ok() {
        let used = STACK_KEY_BYTES - rest.len();
        if let Some(bytes) = stack.get(..used) {
            return f(bytes);
        }
    }
    let mut heap = Vec::with_capacity(STACK_KEY_BYTES * 2);
    // Writing to a Vec only fails for a part longer than 4 GiB, which no name can be.
    let _ = encode(&mut heap, revision, resource, relation, subject);
    f(&heap)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn an_encoding_finds_the_key_it_describes_and_no_other() {
        let doc = ObjectRef::new("doc", "d").unwrap();
        let ann = SubjectRef::new("user", "ann", None).unwrap();
        let bob = SubjectRef::new("user", "bob", None).unwrap();
        let team = SubjectRef::new("team", "ann", Some("member")).unwrap();
        let mut map = HashMap::new();
        let key = CheckKey::new(Revision::new(3), &doc, "view", &ann);
        assert_eq!(key.revision(), Revision::new(3));
        map.insert(key, 1);
        let found = |rev: u64, relation: &str, subject: &SubjectRef| {
            with_encoded(Revision::new(rev), &doc, relation, subject, |k| {
                map.get(k).copied()
            })
        };
        assert_eq!(found(3, "view", &ann), Some(1));
        assert_eq!(found(4, "view", &ann), None);
        assert_eq!(found(3, "edit", &ann), None);
        assert_eq!(found(3, "view", &bob), None);
        assert_eq!(found(3, "view", &team), None);
    }

    #[test]
    fn long_keys_are_encoded_on_the_heap_the_same_way() {
        let long = "x".repeat(STACK_KEY_BYTES * 2);
        let doc = ObjectRef::new("doc", &long).unwrap();
        let ann = SubjectRef::new("user", "ann", None).unwrap();
        let key = CheckKey::new(Revision::new(7), &doc, "view", &ann);
        assert!(key.bytes().len() > STACK_KEY_BYTES);
        with_encoded(Revision::new(7), &doc, "view", &ann, |k| {
            assert_eq!(k, key.bytes());
        });
    }
}
