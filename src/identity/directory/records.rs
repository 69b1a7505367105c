//! The directory's record families, their keys, and the stored bytes of a record (a format
//! byte, then postcard), with typed reads and writes over committed records or a
//! transaction's.
//!
//! ```text
//! family       key                      value
//! org          <org id>                 Organization
//! org.slug     <slug>                   <org id>
//! org.domain   <domain>                 <org id>
//! org.tree     <parent id> 00 <org id>  (empty)   roots: 00 <org id>
//! user         <user id>                User
//! user.ext     <source> 00 <ext id>     <user id>
//! cred         <credential id>          Credential
//! cred.org     <org id> 00 <cred id>    (empty)
//! invite       <invitation id>          Invitation
//! invite.org   <org id> 00 <inv id>     (empty)
//! session      <session id>             ImpersonationSession
//! ```
//!
//! Ids never contain byte 00, so `<a> 00` is a prefix of exactly the pairs starting with `a`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::identity::IdentityError;
use crate::store::{Datastore, RecordFamily, Records, StoreError, Transaction};

/// Organizations by id.
pub(super) const ORG: RecordFamily = RecordFamily::new("org");
/// The unique slug index.
pub(super) const ORG_SLUG: RecordFamily = RecordFamily::new("org.slug");
/// The unique domain index.
pub(super) const ORG_DOMAIN: RecordFamily = RecordFamily::new("org.domain");
/// Children by parent (roots under the empty parent).
pub(super) const ORG_TREE: RecordFamily = RecordFamily::new("org.tree");
/// Users by id.
pub(super) const USER: RecordFamily = RecordFamily::new("user");
/// The unique external id index.
pub(super) const USER_EXT: RecordFamily = RecordFamily::new("user.ext");
/// Credentials by id.
pub(super) const CRED: RecordFamily = RecordFamily::new("cred");
/// Credentials by organization.
pub(super) const CRED_ORG: RecordFamily = RecordFamily::new("cred.org");
/// Invitations by id.
pub(super) const INVITE: RecordFamily = RecordFamily::new("invite");
/// Invitations by organization.
pub(super) const INVITE_ORG: RecordFamily = RecordFamily::new("invite.org");
/// Impersonation sessions by id.
pub(super) const SESSION: RecordFamily = RecordFamily::new("session");

/// Version byte in front of every stored record value.
const FORMAT: u8 = 1;

/// Records read per page when a whole prefix is read.
const SCAN_PAGE: usize = 1_000;

/// Most records one whole-prefix read returns (a guard against runaway data).
pub(super) const MAX_SCAN: usize = 100_000;

/// Keys and values of records, in key order.
pub(super) type RecordPage = Vec<(Vec<u8>, Vec<u8>)>;

/// Read access to records: committed ones (`Datastore`) or a transaction's view.
pub(super) trait RecordSource {
    /// See `Records::get_record`.
    fn get(&self, family: RecordFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// See `Records::scan_records`.
    fn scan(
        &self,
        family: RecordFamily,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<RecordPage, StoreError>;
}

impl RecordSource for dyn Datastore {
    fn get(&self, family: RecordFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_record(family, key)
    }

    fn scan(
        &self,
        family: RecordFamily,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<RecordPage, StoreError> {
        self.scan_records(family, prefix, after, limit)
    }
}

impl<'t> RecordSource for dyn Transaction + 't {
    fn get(&self, family: RecordFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_record(family, key)
    }

    fn scan(
        &self,
        family: RecordFamily,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<RecordPage, StoreError> {
        self.scan_records(family, prefix, after, limit)
    }
}

/// The stored bytes of `value`.
pub(super) fn encode<T: Serialize>(
    family: RecordFamily,
    value: &T,
) -> Result<Vec<u8>, IdentityError> {
    postcard::to_extend(value, vec![FORMAT])
        .map_err(|e| corrupt(family, format!("cannot encode: {e}")))
}

/// The value stored as `bytes`.
pub(super) fn decode<T: DeserializeOwned>(
    family: RecordFamily,
    bytes: &[u8],
) -> Result<T, IdentityError> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) => {
            postcard::from_bytes(rest).map_err(|e| corrupt(family, format!("cannot decode: {e}")))
        }
        Some((other, _)) => Err(corrupt(family, format!("unknown record format {other}"))),
        None => Err(corrupt(family, "empty record".to_string())),
    }
}

/// A `Corrupt` error of `family`.
pub(super) fn corrupt(family: RecordFamily, detail: String) -> IdentityError {
    IdentityError::Corrupt {
        family: family.name(),
        detail,
    }
}

/// The typed record at `key`, if present.
pub(super) fn load<T: DeserializeOwned>(
    source: &(impl RecordSource + ?Sized),
    family: RecordFamily,
    key: &str,
) -> Result<Option<T>, IdentityError> {
    source
        .get(family, key.as_bytes())?
        .map(|bytes| decode(family, &bytes))
        .transpose()
}

/// Writes the typed record at `key`.
pub(super) fn save<T: Serialize>(
    records: &mut dyn Records,
    family: RecordFamily,
    key: &str,
    value: &T,
) -> Result<(), IdentityError> {
    records.put_record(family, key.as_bytes(), encode(family, value)?)?;
    Ok(())
}

/// The string value of an index record, if present.
pub(super) fn load_id(
    source: &(impl RecordSource + ?Sized),
    family: RecordFamily,
    key: &[u8],
) -> Result<Option<String>, IdentityError> {
    source
        .get(family, key)?
        .map(|bytes| {
            String::from_utf8(bytes).map_err(|_| corrupt(family, "index value is not UTF-8".into()))
        })
        .transpose()
}

/// The key `<first> 00 <second>` of a pair index.
pub(super) fn pair_key(first: &str, second: &str) -> Vec<u8> {
    let mut key = pair_prefix(first);
    key.extend_from_slice(second.as_bytes());
    key
}

/// The prefix `<first> 00` of every pair starting with `first`.
pub(super) fn pair_prefix(first: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(first.len() + 1);
    key.extend_from_slice(first.as_bytes());
    key.push(0);
    key
}

/// The second members of the pairs under `pair_prefix(first)`, in order, strictly after
/// `after`, at most `limit`.
pub(super) fn pair_seconds(
    source: &(impl RecordSource + ?Sized),
    family: RecordFamily,
    first: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>, IdentityError> {
    let prefix = pair_prefix(first);
    let after = after.map(|a| pair_key(first, a));
    let mut out = Vec::new();
    let mut cursor = after;
    while out.len() < limit {
        let want = (limit - out.len()).min(SCAN_PAGE);
        let page = source.scan(family, &prefix, cursor.as_deref(), want)?;
        let full = page.len() == want;
        for (key, _) in &page {
            let second = key
                .strip_prefix(prefix.as_slice())
                .and_then(|rest| std::str::from_utf8(rest).ok())
                .ok_or_else(|| corrupt(family, "malformed pair key".into()))?;
            out.push(second.to_string());
        }
        cursor = page.last().map(|(key, _)| key.clone());
        if !full {
            break;
        }
    }
    Ok(out)
}

/// Every typed record of `family` (in key order) strictly after `after`, at most `limit`.
pub(super) fn load_all<T: DeserializeOwned>(
    source: &(impl RecordSource + ?Sized),
    family: RecordFamily,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<T>, IdentityError> {
    let mut out = Vec::new();
    let mut cursor = after.map(|a| a.as_bytes().to_vec());
    while out.len() < limit {
        let want = (limit - out.len()).min(SCAN_PAGE);
        let page = source.scan(family, b"", cursor.as_deref(), want)?;
        let full = page.len() == want;
        for (_, value) in &page {
            out.push(decode(family, value)?);
        }
        cursor = page.last().map(|(key, _)| key.clone());
        if !full {
            break;
        }
    }
    Ok(out)
}
