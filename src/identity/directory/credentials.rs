//! Org-scoped credentials: issued with a secret token (`arbor_cred_<id>_<secret>`) shown
//! once and stored as its SHA-256, revoked, listed, and authenticated in constant time.

use crate::identity::{Actor, IdentityError};
use crate::model::Revision;

use super::commit::commit;
use super::orgs::load_org;
use super::records::{CRED, CRED_ORG, RecordSource, load, pair_key, pair_seconds, save};
use super::tokens::{self, CREDENTIAL_PREFIX};
use super::types::Credential;
use super::{Directory, page_size, paginate, validate};

impl Directory {
    /// Issues a credential of `org` named `name`. Returns it, its token (shown once; only
    /// its hash is kept) and the revision.
    pub fn create_credential(
        &self,
        actor: &Actor,
        org: &str,
        name: &str,
    ) -> Result<(Credential, String, Revision), IdentityError> {
        let name = validate::name("name", name)?;
        let ((credential, token), revision) =
            commit(&*self.store, actor, "credential.create", |m| {
                load_org(m.txn(), org)?;
                let id = validate::new_id();
                let issued = tokens::issue(CREDENTIAL_PREFIX, &id)?;
                let credential = Credential {
                    id: id.clone(),
                    org: org.to_string(),
                    name: name.clone(),
                    secret_hash: issued.hash,
                    created_at: m.now(),
                    revoked_at: None,
                };
                save(m.records(), CRED, &id, &credential)?;
                m.records()
                    .put_record(CRED_ORG, &pair_key(org, &id), Vec::new())?;
                m.org(org);
                m.detail("credential", id);
                m.detail("name", name.clone());
                Ok((credential, issued.token))
            })?;
        Ok((credential, token, revision))
    }

    /// Revokes a credential; revoking a revoked one is `FailedPrecondition`.
    pub fn revoke_credential(&self, actor: &Actor, id: &str) -> Result<Revision, IdentityError> {
        let ((), revision) = commit(&*self.store, actor, "credential.revoke", |m| {
            let mut credential = load_credential(m.txn(), id)?;
            if credential.revoked_at.is_some() {
                return Err(IdentityError::FailedPrecondition(format!(
                    "credential `{id}` is already revoked"
                )));
            }
            credential.revoked_at = Some(m.now());
            save(m.records(), CRED, id, &credential)?;
            m.org(&credential.org);
            m.detail("credential", id);
            Ok(())
        })?;
        Ok(revision)
    }

    /// The credential `id`.
    pub fn get_credential(&self, id: &str) -> Result<Credential, IdentityError> {
        load_credential(&*self.store, id)
    }

    /// The credentials of `org` (revoked ones included) in id order, strictly after `after`,
    /// at most `limit` (0: the default page size), and the cursor of the next page.
    pub fn list_credentials(
        &self,
        org: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Credential>, Option<String>), IdentityError> {
        load_org(&*self.store, org)?;
        let size = page_size(limit);
        let mut out = Vec::new();
        for id in pair_seconds(&*self.store, CRED_ORG, org, after, size + 1)? {
            if let Some(credential) = load::<Credential>(&*self.store, CRED, &id)? {
                out.push(credential);
            }
        }
        Ok(paginate(out, size, |c| c.id.clone()))
    }

    /// The live credential `token` belongs to: `None` for a malformed token, an unknown id,
    /// a wrong secret (compared in constant time) or a revoked credential.
    pub fn authenticate_credential(
        &self,
        token: &str,
    ) -> Result<Option<Credential>, IdentityError> {
        let Some(id) = tokens::id_of(CREDENTIAL_PREFIX, token) else {
            return Ok(None);
        };
        let Some(credential) = load::<Credential>(&*self.store, CRED, id)? else {
            return Ok(None);
        };
        let ok = tokens::matches(&credential.secret_hash, token) && credential.revoked_at.is_none();
        Ok(ok.then_some(credential))
    }
}

fn load_credential(
    source: &(impl RecordSource + ?Sized),
    id: &str,
) -> Result<Credential, IdentityError> {
    load(source, CRED, id)?.ok_or_else(|| IdentityError::NotFound {
        kind: "credential",
        id: id.to_string(),
    })
}
