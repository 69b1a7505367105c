//! Secret tokens of credentials, invitations and impersonation sessions:
//! `<prefix><id>_<43 characters of url-safe base64>` (256 random bits). Only the SHA-256 of
//! the whole token is stored; presented tokens are compared in constant time.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::identity::IdentityError;
use crate::model::validate_object_id;
use crate::store::StoreError;

/// Prefix of org-scoped credential tokens.
pub const CREDENTIAL_PREFIX: &str = "arbor_cred_";
/// Prefix of invitation tokens.
pub const INVITATION_PREFIX: &str = "arbor_inv_";
/// Prefix of impersonation session tokens.
pub const SESSION_PREFIX: &str = "arbor_imp_";

/// Random bytes in a token's secret part.
const SECRET_BYTES: usize = 32;
/// Characters of the secret part (unpadded base64 of `SECRET_BYTES`).
const SECRET_CHARS: usize = 43;

/// A newly issued token and the hash to store.
pub(super) struct Issued {
    /// The token, returned to the caller once.
    pub(super) token: String,
    /// SHA-256 of `token`.
    pub(super) hash: [u8; 32],
}

/// Issues a token for the record `id` (an id without `_`, as `validate::new_id` makes).
pub(super) fn issue(prefix: &str, id: &str) -> Result<Issued, IdentityError> {
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::fill(&mut secret).map_err(|e| {
        IdentityError::Store(StoreError::Internal(format!(
            "the system's random source failed: {e}"
        )))
    })?;
    let token = format!("{prefix}{id}_{}", URL_SAFE_NO_PAD.encode(secret));
    let hash = hash(&token);
    Ok(Issued { token, hash })
}

/// The record id a token names, if it has the shape `prefix` tokens have.
pub(super) fn id_of<'t>(prefix: &str, token: &'t str) -> Option<&'t str> {
    let (id, secret) = token.strip_prefix(prefix)?.split_once('_')?;
    (secret.len() >= SECRET_CHARS && validate_object_id(id).is_ok()).then_some(id)
}

/// SHA-256 of the whole token.
pub(super) fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `token` hashes to `stored`, compared in constant time.
pub(super) fn matches(stored: &[u8; 32], token: &str) -> bool {
    stored.ct_eq(&hash(token)).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_parse_and_match() {
        let issued = issue(CREDENTIAL_PREFIX, "6f1c2d4e-0000-4000-8000-000000000000").unwrap();
        assert!(issued.token.len() >= CREDENTIAL_PREFIX.len() + 36 + 1 + SECRET_CHARS);
        assert_eq!(
            id_of(CREDENTIAL_PREFIX, &issued.token),
            Some("6f1c2d4e-0000-4000-8000-000000000000")
        );
        assert!(matches(&issued.hash, &issued.token));
        assert!(!matches(&issued.hash, "arbor_cred_x_y"));
        assert_eq!(id_of(SESSION_PREFIX, &issued.token), None);
        assert_eq!(id_of(CREDENTIAL_PREFIX, "arbor_cred_abc_short"), None);
    }
}
