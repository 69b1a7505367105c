//! Result cursors: an opaque, versioned encoding of the revision a paged call reads at, a hash
//! of the call's parameters (a cursor only resumes the call that issued it), and the position
//! of the last result sent. Version 2 orders results by key (relationships, or resource ids);
//! version 3 (LookupResources streamed in the order its walk finds them) resumes after a
//! result in that order. Both have the same layout; the version says how to resume.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prost::Message;
use sha2::{Digest as _, Sha256};

use super::proto::authzed::api::v1::Cursor;
use crate::api::status::ApiError;
use crate::model::Revision;

/// The first byte of a cursor whose results are ordered by key.
const CURSOR_VERSION: u8 = 2;
/// The first byte of a cursor whose results come in the order a walk finds them.
const WALK_CURSOR_VERSION: u8 = 3;

/// How the results a cursor resumes are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// By key: the call resumes with the results after `after`.
    ByKey,
    /// In the order the call's walk finds them (fixed by the revision): the call resumes with
    /// the results found after `after`.
    Walk,
}
/// Bytes of the parameter hash kept in a cursor.
const HASH_LEN: usize = 8;

/// A decoded cursor: where a paged call resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The revision the first page was read at; every page reads there.
    pub revision: Revision,
    /// The last result sent (a relationship or an object id), as text.
    pub after: String,
    /// How the results are ordered.
    pub order: Order,
}

/// The hash of a request's parameters. `request` must have its cursor, consistency and limit
/// cleared so that only what selects the results is hashed.
pub fn parameter_hash<M: Message>(method: &str, request: &M) -> [u8; HASH_LEN] {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update([0u8]);
    hasher.update(request.encode_to_vec());
    let digest = hasher.finalize();
    let mut out = [0u8; HASH_LEN];
    for (o, d) in out.iter_mut().zip(digest.iter()) {
        *o = *d;
    }
    out
}

/// Encodes a cursor after `after` (in key order), for the call whose parameters hash to `hash`.
pub fn encode(revision: Revision, hash: [u8; HASH_LEN], after: &str) -> Cursor {
    encode_as(CURSOR_VERSION, revision, hash, after)
}

/// Encodes a cursor after `after` in walk order, for the call whose parameters hash to `hash`.
pub fn encode_walk(revision: Revision, hash: [u8; HASH_LEN], after: &str) -> Cursor {
    encode_as(WALK_CURSOR_VERSION, revision, hash, after)
}

fn encode_as(version: u8, revision: Revision, hash: [u8; HASH_LEN], after: &str) -> Cursor {
    /// Cursors up to this many bytes (before base64) are assembled on the stack.
    const STACK_BYTES: usize = 160;
    fn write(
        out: &mut impl std::io::Write,
        version: u8,
        revision: Revision,
        hash: &[u8; HASH_LEN],
        after: &str,
    ) -> std::io::Result<()> {
        out.write_all(&[version])?;
        out.write_all(&revision.get().to_be_bytes())?;
        out.write_all(hash)?;
        out.write_all(after.as_bytes())
    }
    let mut stack = [0u8; STACK_BYTES];
    let mut rest: &mut [u8] = &mut stack;
    if write(&mut rest, version, revision, &hash, after).is_ok() {
        let used = STACK_BYTES - rest.len();
        if let Some(bytes) = stack.get(..used) {
            return Cursor {
                token: STANDARD.encode(bytes),
            };
        }
    }
    let mut bytes = Vec::with_capacity(1 + 8 + HASH_LEN + after.len());
    // Writing to a Vec cannot fail.
    let _ = write(&mut bytes, version, revision, &hash, after);
    Cursor {
        token: STANDARD.encode(bytes),
    }
}

/// Decodes a cursor issued for the call whose parameters hash to `hash`.
pub fn decode(cursor: &Cursor, hash: [u8; HASH_LEN]) -> Result<Position, ApiError> {
    let bytes = STANDARD.decode(cursor.token.as_bytes()).map_err(|_| {
        ApiError::InvalidCursor("it is not a cursor this server issued".to_string())
    })?;
    let (order, rest) = match bytes.split_first() {
        Some((&CURSOR_VERSION, rest)) => (Order::ByKey, rest),
        Some((&WALK_CURSOR_VERSION, rest)) => (Order::Walk, rest),
        _ => {
            return Err(ApiError::InvalidCursor(
                "it is not a cursor this server issued".to_string(),
            ));
        }
    };
    let (revision, rest) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| ApiError::InvalidCursor("it is truncated".to_string()))?;
    let (given, after) = rest
        .split_first_chunk::<HASH_LEN>()
        .ok_or_else(|| ApiError::InvalidCursor("it is truncated".to_string()))?;
    if *given != hash {
        return Err(ApiError::InvalidCursor(
            "the cursor provided does not have the same arguments as the original API call; please ensure you are making the same API call, with the exact same parameters (besides the cursor)".to_string(),
        ));
    }
    let after = String::from_utf8(after.to_vec())
        .map_err(|_| ApiError::InvalidCursor("its position is not text".to_string()))?;
    Ok(Position {
        revision: Revision::new(u64::from_be_bytes(*revision)),
        after,
        order,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::grpc::proto::authzed::api::v1::ObjectReference;

    #[test]
    fn cursors_round_trip_and_only_resume_their_own_call() {
        let a = ObjectReference {
            object_type: "doc".to_string(),
            object_id: "1".to_string(),
        };
        let b = ObjectReference {
            object_type: "doc".to_string(),
            object_id: "2".to_string(),
        };
        let ha = parameter_hash("m", &a);
        let long = "x".repeat(300);
        assert_eq!(
            decode(&encode(Revision::new(9), ha, &long), ha)
                .unwrap()
                .after,
            long
        );
        let c = encode(Revision::new(9), ha, "doc:1#viewer@user:x");
        let p = decode(&c, ha).unwrap();
        assert_eq!(p.revision, Revision::new(9));
        assert_eq!(p.after, "doc:1#viewer@user:x");
        assert_eq!(p.order, Order::ByKey);
        let w = decode(&encode_walk(Revision::new(9), ha, "d7"), ha).unwrap();
        assert_eq!(
            (w.revision, w.after.as_str(), w.order),
            (Revision::new(9), "d7", Order::Walk)
        );
        assert!(
            decode(
                &encode_walk(Revision::new(9), ha, "d7"),
                parameter_hash("m", &b)
            )
            .is_err()
        );
        assert!(decode(&c, parameter_hash("m", &b)).is_err());
        assert!(decode(&c, parameter_hash("other", &a)).is_err());
        for garbage in ["", "%%%", "AQ==", "AgAAAA=="] {
            let e = decode(
                &Cursor {
                    token: garbage.to_string(),
                },
                ha,
            )
            .unwrap_err();
            assert!(matches!(e, ApiError::InvalidCursor(_)), "{garbage}");
        }
    }
}
