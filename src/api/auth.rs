//! Authentication: turns `authorization: Bearer K` into a `Caller` by comparing SHA-256 hashes of
//! preshared keys in constant time. Keys are kept only as hashes and never logged; a key is
//! named in logs by its id, a short prefix of its hash.

use std::sync::{Arc, PoisonError, RwLock};

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::status::ApiError;

/// Hex characters of a key's hash shown as its id in logs.
const KEY_ID_HEX_CHARS: usize = 8;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A holder of the platform preshared key with this id.
    PresharedKey {
        /// Short hex prefix of the key's SHA-256 hash (never the key).
        key_id: String,
    },
    /// Anyone: the server runs with `--insecure-no-auth`.
    Unauthenticated,
}

impl Caller {
    /// How the caller appears in logs.
    pub fn log_id(&self) -> &str {
        match self {
            Caller::PresharedKey { key_id } => key_id,
            Caller::Unauthenticated => "anonymous",
        }
    }
}

/// A preshared key, as its hash.
#[derive(Clone)]
struct HashedKey {
    hash: [u8; 32],
    id: String,
}

impl std::fmt::Debug for HashedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HashedKey({})", self.id)
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The id of a key: the first hex characters of its SHA-256 hash.
pub fn key_id(key: &str) -> String {
    sha256(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .chars()
        .take(KEY_ID_HEX_CHARS)
        .collect()
}

/// A key that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// An empty key would accept an empty bearer token.
    #[error("a preshared key may not be empty")]
    Empty,
}

/// The keys that authenticate requests; replaceable at run time (SIGHUP re-reads a key file).
#[derive(Debug, Clone)]
pub struct Authenticator {
    keys: Arc<RwLock<Vec<HashedKey>>>,
    insecure: bool,
}

impl Authenticator {
    /// Accepts a request bearing any of `keys`.
    pub fn with_keys<S: AsRef<str>>(keys: &[S]) -> Result<Self, KeyError> {
        let auth = Authenticator {
            keys: Arc::new(RwLock::new(Vec::new())),
            insecure: false,
        };
        auth.replace_keys(keys)?;
        Ok(auth)
    }

    /// Accepts every request without a key (`--insecure-no-auth`).
    pub fn insecure() -> Self {
        Authenticator {
            keys: Arc::new(RwLock::new(Vec::new())),
            insecure: true,
        }
    }

    /// Replaces the accepted keys (hashing them); on error the old keys stay.
    pub fn replace_keys<S: AsRef<str>>(&self, keys: &[S]) -> Result<(), KeyError> {
        let mut hashed = Vec::with_capacity(keys.len());
        for k in keys {
            let k = k.as_ref();
            if k.is_empty() {
                return Err(KeyError::Empty);
            }
            hashed.push(HashedKey {
                hash: sha256(k.as_bytes()),
                id: key_id(k),
            });
        }
        let mut guard = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        *guard = hashed;
        Ok(())
    }

    /// The ids of the keys accepted now.
    pub fn key_ids(&self) -> Vec<String> {
        let guard = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        guard.iter().map(|k| k.id.clone()).collect()
    }

    /// Decides the caller from the `authorization` header value: no (or no bearer) header and a
    /// key that matches none are both UNAUTHENTICATED (SpiceDB answers a wrong key with
    /// PERMISSION_DENIED; Arbor keeps PERMISSION_DENIED for a known caller acting outside its
    /// rights). Every configured key is compared, in constant time.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Caller, ApiError> {
        if self.insecure {
            return Ok(Caller::Unauthenticated);
        }
        let Some(header) = authorization else {
            return Err(ApiError::Unauthenticated(
                "invalid preshared key: Request unauthenticated with bearer".to_string(),
            ));
        };
        let token = bearer_token(header).ok_or_else(|| {
            ApiError::Unauthenticated(
                "invalid preshared key: Request unauthenticated with bearer".to_string(),
            )
        })?;
        if token.is_empty() {
            return Err(ApiError::Unauthenticated(
                "missing preshared key".to_string(),
            ));
        }
        let presented = sha256(token);
        let guard = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let mut found: Option<&HashedKey> = None;
        for key in guard.iter() {
            let equal: bool = key.hash.ct_eq(&presented).into();
            if equal && found.is_none() {
                found = Some(key);
            }
        }
        match found {
            Some(key) => Ok(Caller::PresharedKey {
                key_id: key.id.clone(),
            }),
            None => Err(ApiError::Unauthenticated(
                "invalid preshared key: invalid token".to_string(),
            )),
        }
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive), if the header has that form.
fn bearer_token(header: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = header.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    match rest.split_first() {
        Some((b' ', token)) => Some(token.trim_ascii()),
        None => Some(&[]),
        _ => None,
    }
}

/// A tonic interceptor: refuses requests without a valid key and puts the `Caller` in the
/// request's extensions for the handlers.
#[derive(Debug, Clone)]
pub struct AuthInterceptor {
    authenticator: Authenticator,
}

impl AuthInterceptor {
    /// Checks requests against `authenticator`.
    pub fn new(authenticator: Authenticator) -> Self {
        AuthInterceptor { authenticator }
    }
}

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes().to_vec());
        let caller = self
            .authenticator
            .authenticate(header.as_deref())
            .map_err(ApiError::into_status)?;
        tracing::debug!(caller = caller.log_id(), "authenticated");
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_matched_by_hash_and_refusals_follow_spicedb() {
        let auth = Authenticator::with_keys(&["secret-one", "secret-two"]).unwrap();
        let ok = auth.authenticate(Some(b"Bearer secret-two")).unwrap();
        assert_eq!(
            ok,
            Caller::PresharedKey {
                key_id: key_id("secret-two")
            }
        );
        assert_eq!(key_id("secret-two").len(), 8);
        assert!(!format!("{auth:?}").contains("secret"));
        assert!(auth.authenticate(Some(b"bearer secret-one")).is_ok());

        let missing = auth.authenticate(None).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        let basic = auth.authenticate(Some(b"Basic abc")).unwrap_err();
        assert_eq!(basic.code(), tonic::Code::Unauthenticated);
        let empty = auth.authenticate(Some(b"Bearer ")).unwrap_err();
        assert_eq!(empty.code(), tonic::Code::Unauthenticated);
        let wrong = auth.authenticate(Some(b"Bearer secret-three")).unwrap_err();
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
        assert!(!wrong.to_string().contains("secret"));
    }

    #[test]
    fn keys_can_be_replaced_and_empty_keys_are_refused() {
        let auth = Authenticator::with_keys(&["old"]).unwrap();
        auth.replace_keys(&["new"]).unwrap();
        assert!(auth.authenticate(Some(b"Bearer old")).is_err());
        assert!(auth.authenticate(Some(b"Bearer new")).is_ok());
        assert_eq!(auth.replace_keys(&[""]), Err(KeyError::Empty));
        assert!(auth.authenticate(Some(b"Bearer new")).is_ok());
        assert!(Authenticator::insecure().authenticate(None).is_ok());
    }
}
