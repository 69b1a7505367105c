//! ZedTokens (an opaque, versioned encoding of a revision) and the choice of the revision a
//! request reads at, from its `Consistency` as SpiceDB's consistency middleware chooses it.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::proto::authzed::api::v1::{Consistency, ZedToken, consistency::Requirement};
use crate::api::status::ApiError;
use crate::model::Revision;
use crate::store::Datastore;

/// The first byte of every ZedToken Arbor issues; a token with another is refused.
const ZEDTOKEN_VERSION: u8 = 1;
/// Version byte plus a big-endian `u64` revision.
const ZEDTOKEN_LEN: usize = 9;

/// The ZedToken of a revision: base64 of a version byte and the revision number.
pub fn encode_zedtoken(revision: Revision) -> ZedToken {
    let mut bytes = Vec::with_capacity(ZEDTOKEN_LEN);
    bytes.push(ZEDTOKEN_VERSION);
    bytes.extend_from_slice(&revision.get().to_be_bytes());
    ZedToken {
        token: STANDARD.encode(bytes),
    }
}

/// The revision a ZedToken carries; anything Arbor did not issue is `InvalidZedToken`.
pub fn decode_zedtoken(token: &ZedToken) -> Result<Revision, ApiError> {
    let bad = || ApiError::InvalidZedToken(shorten(&token.token));
    let bytes = STANDARD.decode(token.token.as_bytes()).map_err(|_| bad())?;
    match bytes.split_first() {
        Some((&ZEDTOKEN_VERSION, rest)) => {
            let number: [u8; 8] = rest.try_into().map_err(|_| bad())?;
            Ok(Revision::new(u64::from_be_bytes(number)))
        }
        _ => Err(bad()),
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(64).collect()
}

/// The revision a request reads at:
/// - none given or `minimize_latency`: the optimized (quantized) revision;
/// - `at_least_as_fresh`: the later of the token's revision and the optimized one;
/// - `at_exact_snapshot`: the token's revision, if the store can still (or already) read it;
/// - `fully_consistent`: the head.
pub fn pick_revision(
    datastore: &dyn Datastore,
    consistency: Option<&Consistency>,
    quantization: Duration,
) -> Result<Revision, ApiError> {
    let requirement = match consistency {
        None => None,
        Some(c) => Some(c.requirement.as_ref().ok_or_else(|| {
            ApiError::field(
                "consistency.requirement",
                "",
                "one of minimize_latency, at_least_as_fresh, at_exact_snapshot or fully_consistent is required",
            )
        })?),
    };
    match requirement {
        None | Some(Requirement::MinimizeLatency(_)) => {
            Ok(datastore.optimized_revision(quantization)?)
        }
        Some(Requirement::FullyConsistent(_)) => Ok(datastore.head_revision()?),
        Some(Requirement::AtLeastAsFresh(token)) => {
            let wanted = decode_zedtoken(token)?;
            let optimized = datastore.optimized_revision(quantization)?;
            if optimized >= wanted {
                return Ok(optimized);
            }
            datastore.check_revision(wanted)?;
            Ok(wanted)
        }
        Some(Requirement::AtExactSnapshot(token)) => {
            let wanted = decode_zedtoken(token)?;
            datastore.check_revision(wanted)?;
            Ok(wanted)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryDatastore;

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let token = encode_zedtoken(Revision::new(42));
        assert_eq!(decode_zedtoken(&token).unwrap(), Revision::new(42));
        for garbage in [
            "",
            "not base64!",
            "AQ==",
            "AgAAAAAAAAAq",
            "AQAAAAAAAAAqAA==",
        ] {
            let e = decode_zedtoken(&ZedToken {
                token: garbage.to_string(),
            })
            .unwrap_err();
            assert!(
                matches!(e, ApiError::InvalidZedToken(_)),
                "{garbage}: {e:?}"
            );
        }
    }

    #[test]
    fn exact_snapshot_ahead_of_head_is_out_of_range() {
        let ds = MemoryDatastore::new();
        let ahead = Consistency {
            requirement: Some(Requirement::AtExactSnapshot(encode_zedtoken(
                Revision::new(7),
            ))),
        };
        let e = pick_revision(&ds, Some(&ahead), Duration::ZERO).unwrap_err();
        assert_eq!(e.code(), tonic::Code::OutOfRange);
        let full = Consistency {
            requirement: Some(Requirement::FullyConsistent(true)),
        };
        assert_eq!(
            pick_revision(&ds, Some(&full), Duration::ZERO).unwrap(),
            Revision::ZERO
        );
        let empty = Consistency { requirement: None };
        assert_eq!(
            pick_revision(&ds, Some(&empty), Duration::ZERO)
                .unwrap_err()
                .code(),
            tonic::Code::InvalidArgument
        );
    }
}
