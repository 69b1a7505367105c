//! Authentication: turns `authorization: Bearer K` into a `Caller` by comparing SHA-256 hashes of
//! preshared keys in constant time. Keys are kept only as hashes and never logged; a key is
//! named in logs by its id, a short prefix of its hash.

use std::sync::{Arc, PoisonError, RwLock};

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::status::ApiError;
use crate::identity::directory::Directory;
use crate::identity::{Actor, Source, scope};
use crate::model::{SubjectRef, Timestamp};

/// Hex characters of a key's hash shown as its id in logs.
const KEY_ID_HEX_CHARS: usize = 8;

/// What a platform preshared key may do beyond everything a platform key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// An ordinary platform key.
    Platform,
    /// A platform key of support staff: may also open impersonation sessions.
    Support,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A holder of a platform preshared key with this id: may do everything.
    PresharedKey {
        /// Short hex prefix of the key's SHA-256 hash (never the key).
        key_id: String,
        /// Its role.
        role: KeyRole,
    },
    /// An org-scoped credential: acts only inside its organization's subtree.
    OrgCredential {
        /// The credential's id (never its secret).
        credential_id: String,
        /// The organization it belongs to.
        org: String,
    },
    /// An impersonation session: support staff acting as a user, with the user's rights.
    Impersonation {
        /// The session's id.
        session_id: String,
        /// The impersonated user.
        user: String,
        /// Who opened the session.
        initiator: String,
        /// Why, as given when it was opened.
        reason: String,
    },
    /// Anyone: the server runs with `--insecure-no-auth`.
    Unauthenticated,
}

impl Caller {
    /// How the caller appears in logs and audit entries (never a secret):
    /// `platform-key:<id>`, `credential:<id>`, `session:<id>` or `anonymous`.
    pub fn log_id(&self) -> String {
        match self {
            Caller::PresharedKey { key_id, .. } => format!("platform-key:{key_id}"),
            Caller::OrgCredential { credential_id, .. } => format!("credential:{credential_id}"),
            Caller::Impersonation { session_id, .. } => format!("session:{session_id}"),
            Caller::Unauthenticated => "anonymous".to_string(),
        }
    }

    /// Whether the caller may do everything (a platform key, or no authentication at all).
    pub fn is_platform(&self) -> bool {
        matches!(self, Caller::PresharedKey { .. } | Caller::Unauthenticated)
    }

    /// Whether the caller holds a support key (may open impersonation sessions).
    pub fn is_support(&self) -> bool {
        matches!(
            self,
            Caller::PresharedKey {
                role: KeyRole::Support,
                ..
            }
        )
    }

    /// The subject whose `organization:Y#administer` decides what the caller may reach, or
    /// `None` for a caller that may reach everything.
    pub fn scope(&self) -> Result<Option<SubjectRef>, ApiError> {
        let subject = match self {
            Caller::PresharedKey { .. } | Caller::Unauthenticated => return Ok(None),
            Caller::OrgCredential { org, .. } => scope::org_principal(org),
            Caller::Impersonation { user, .. } => scope::user_principal(user),
        };
        subject
            .map(Some)
            .map_err(|e| ApiError::Internal(format!("caller scope: {e}")))
    }

    /// The audit actor for a change this caller makes from `source`.
    pub fn actor(
        &self,
        source: Source,
        reason: Option<String>,
        request_id: Option<String>,
    ) -> Actor {
        let mut actor = Actor::new(self.log_id(), source);
        actor.request_id = request_id;
        actor.reason = reason.filter(|r| !r.trim().is_empty());
        if let Caller::Impersonation {
            user,
            initiator,
            reason: session_reason,
            ..
        } = self
        {
            actor.on_behalf_of = Some(format!("user:{user}"));
            actor.initiated_by = Some(initiator.clone());
            if actor.reason.is_none() {
                actor.reason = Some(session_reason.clone());
            }
        }
        actor
    }
}

/// The caller of a request, put there by the `AuthInterceptor` (a request that reached a
/// handler without one is refused).
pub fn caller_of<T>(request: &tonic::Request<T>) -> Result<Caller, ApiError> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::Unauthenticated("request was not authenticated".to_string()))
}

/// The request id a caller sent in `x-request-id` (at most 128 visible ASCII characters).
pub fn request_id_of<T>(request: &tonic::Request<T>) -> Option<String> {
    /// Longest request id kept.
    const MAX_REQUEST_ID: usize = 128;
    request
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(str::to_string)
}

/// A preshared key, as its hash.
#[derive(Clone)]
struct HashedKey {
    hash: [u8; 32],
    id: String,
    role: KeyRole,
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
    directory: Option<Directory>,
}

/// Prefix of org-scoped credential tokens (issued by the directory).
const CREDENTIAL_TOKEN_PREFIX: &[u8] = b"arbor_cred_";
/// Prefix of impersonation session tokens (issued by the directory).
const SESSION_TOKEN_PREFIX: &[u8] = b"arbor_imp_";

impl Authenticator {
    /// Accepts a request bearing any of `keys`.
    pub fn with_keys<S: AsRef<str>>(keys: &[S]) -> Result<Self, KeyError> {
        Self::with_roles(keys, &[] as &[&str])
    }

    /// Accepts a request bearing any of `keys` (platform) or `support_keys` (platform keys
    /// with the support role).
    pub fn with_roles<S: AsRef<str>, T: AsRef<str>>(
        keys: &[S],
        support_keys: &[T],
    ) -> Result<Self, KeyError> {
        let auth = Authenticator {
            keys: Arc::new(RwLock::new(Vec::new())),
            insecure: false,
            directory: None,
        };
        auth.replace_keys_with_roles(keys, support_keys)?;
        Ok(auth)
    }

    /// Also accepts org-scoped credentials and impersonation sessions from `directory`.
    pub fn with_directory(mut self, directory: Directory) -> Self {
        self.directory = Some(directory);
        self
    }

    /// Accepts every request without a key (`--insecure-no-auth`).
    pub fn insecure() -> Self {
        Authenticator {
            keys: Arc::new(RwLock::new(Vec::new())),
            insecure: true,
            directory: None,
        }
    }

    /// Replaces the accepted platform keys (hashing them), keeping the support keys; on error
    /// the old keys stay.
    pub fn replace_keys<S: AsRef<str>>(&self, keys: &[S]) -> Result<(), KeyError> {
        let mut hashed = hash_keys(keys, KeyRole::Platform)?;
        let mut guard = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        hashed.extend(guard.iter().filter(|k| k.role == KeyRole::Support).cloned());
        *guard = hashed;
        Ok(())
    }

    /// Replaces the accepted platform and support keys; on error the old keys stay.
    pub fn replace_keys_with_roles<S: AsRef<str>, T: AsRef<str>>(
        &self,
        keys: &[S],
        support_keys: &[T],
    ) -> Result<(), KeyError> {
        let mut hashed = hash_keys(keys, KeyRole::Platform)?;
        hashed.extend(hash_keys(support_keys, KeyRole::Support)?);
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
        if let Some(directory) = &self.directory {
            if token.starts_with(CREDENTIAL_TOKEN_PREFIX) || token.starts_with(SESSION_TOKEN_PREFIX)
            {
                return authenticate_directory(directory, token);
            }
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
                role: key.role,
            }),
            None => Err(ApiError::Unauthenticated(
                "invalid preshared key: invalid token".to_string(),
            )),
        }
    }
}

/// The hashes of `keys`, all with `role`; an empty key is refused.
fn hash_keys<S: AsRef<str>>(keys: &[S], role: KeyRole) -> Result<Vec<HashedKey>, KeyError> {
    keys.iter()
        .map(|k| {
            let k = k.as_ref();
            if k.is_empty() {
                return Err(KeyError::Empty);
            }
            Ok(HashedKey {
                hash: sha256(k.as_bytes()),
                id: key_id(k),
                role,
            })
        })
        .collect()
}

/// Decides a caller from an org credential or impersonation session token.
fn authenticate_directory(directory: &Directory, token: &[u8]) -> Result<Caller, ApiError> {
    let refused = || ApiError::Unauthenticated("invalid token".to_string());
    let token = std::str::from_utf8(token).map_err(|_| refused())?;
    if token.as_bytes().starts_with(CREDENTIAL_TOKEN_PREFIX) {
        let credential = directory
            .authenticate_credential(token)
            .map_err(|e| ApiError::Internal(format!("credential lookup failed: {e}")))?
            .ok_or_else(refused)?;
        return Ok(Caller::OrgCredential {
            credential_id: credential.id,
            org: credential.org,
        });
    }
    let session = directory
        .authenticate_session(token, Timestamp::now())
        .map_err(|e| ApiError::Internal(format!("session lookup failed: {e}")))?
        .ok_or_else(refused)?;
    Ok(Caller::Impersonation {
        session_id: session.id,
        user: session.user,
        initiator: session.initiator,
        reason: session.reason,
    })
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
        tracing::debug!(caller = %caller.log_id(), "authenticated");
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
                key_id: key_id("secret-two"),
                role: KeyRole::Platform,
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
