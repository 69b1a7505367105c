//! Result cursors: an opaque, versioned encoding of the revision a paged call reads at, a hash
//! of the call's parameters (a cursor only resumes the call that issued it), and the position
//! of the last result sent.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use prost::Message;
use sha2::{Digest as _, Sha256};

use super::proto::authzed::api::v1::Cursor;
use crate::api::status::ApiError;
use crate::model::Revision;

/// The first byte of every cursor Arbor issues.
const CURSOR_VERSION: u8 = 2;
/// Bytes of the parameter hash kept in a cursor.
const HASH_LEN: usize = 8;

/// A decoded cursor: where a paged call resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The revision the first page was read at; every page reads there.
    pub revision: Revision,
    /// The last result sent (a relationship or an object id), as text.
    pub after: String,
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

/// Encodes a cursor after `after`, for the call whose parameters hash to `hash`.
pub fn encode(revision: Revision, hash: [u8; HASH_LEN], after: &str) -> Cursor {
    let mut bytes = Vec::with_capacity(1 + 8 + HASH_LEN + after.len());
    bytes.push(CURSOR_VERSION);
    bytes.extend_from_slice(&revision.get().to_be_bytes());
    bytes.extend_from_slice(&hash);
    bytes.extend_from_slice(after.as_bytes());
    Cursor {
        token: STANDARD.encode(bytes),
    }
}

/// Decodes a cursor issued for the call whose parameters hash to `hash`.
pub fn decode(cursor: &Cursor, hash: [u8; HASH_LEN]) -> Result<Position, ApiError> {
    let bytes = STANDARD.decode(cursor.token.as_bytes()).map_err(|_| {
        ApiError::InvalidCursor("it is not a cursor this server issued".to_string())
    })?;
    let Some((&CURSOR_VERSION, rest)) = bytes.split_first() else {
        return Err(ApiError::InvalidCursor(
            "it is not a cursor this server issued".to_string(),
        ));
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
        let c = encode(Revision::new(9), ha, "doc:1#viewer@user:x");
        let p = decode(&c, ha).unwrap();
        assert_eq!(p.revision, Revision::new(9));
        assert_eq!(p.after, "doc:1#viewer@user:x");
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
