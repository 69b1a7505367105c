//! Memberships: adding and removing a user as member or admin of an organization
//! (`organization:O#member|admin@user:U`), and listing an organization's direct members.

use crate::identity::scope::ORGANIZATION_TYPE;
use crate::identity::{Actor, IdentityError};
use crate::model::{ObjectRef, Revision};

use super::commit::{Mutation, commit};
use super::graph::{GraphReads as _, TxnReads};
use super::orgs::load_org;
use super::projection::{self, USER_TYPE, key_text, user_subject};
use super::types::Role;
use super::users::active_user;
use super::{Directory, page_size, paginate};

impl Directory {
    /// Makes the active user `user` a member or admin of `org`.
    pub fn add_member(
        &self,
        actor: &Actor,
        org: &str,
        user: &str,
        role: Role,
    ) -> Result<Revision, IdentityError> {
        let ((), revision) = commit(&*self.store, actor, "member.add", |m| {
            load_org(m.txn(), org)?;
            active_user(m.txn(), user)?;
            grant(m, org, user, role)
        })?;
        Ok(revision)
    }

    /// Removes the user's membership or admin role in `org`; `NotFound` if it has none.
    pub fn remove_member(
        &self,
        actor: &Actor,
        org: &str,
        user: &str,
        role: Role,
    ) -> Result<Revision, IdentityError> {
        let ((), revision) = commit(&*self.store, actor, "member.remove", |m| {
            load_org(m.txn(), org)?;
            let rel = projection::membership(org, user, role)?;
            let key = key_text(&rel);
            let existing =
                TxnReads(m.txn()).by_resource(ORGANIZATION_TYPE, org, Some(role.relation()))?;
            let Some(found) = existing.iter().find(|r| key_text(r) == key) else {
                return Err(IdentityError::NotFound {
                    kind: "membership",
                    id: key,
                });
            };
            m.delete(found)?;
            m.org(org);
            m.subject(user_subject(user));
            m.detail("organization", org);
            m.detail("user", user);
            m.detail("role", role.relation());
            Ok(())
        })?;
        Ok(revision)
    }

    /// The ids of the users named directly as `role` of `org` at the head revision, in id
    /// order, strictly after `after`, at most `limit` (0: the default page size), and the
    /// cursor of the next page.
    pub fn list_members(
        &self,
        org: &str,
        role: Role,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>), IdentityError> {
        load_org(&*self.store, org)?;
        let size = page_size(limit);
        let resource = ObjectRef::new(ORGANIZATION_TYPE, org).map_err(|e| {
            IdentityError::InvalidArgument(format!("invalid `org` `{org}`: {}", e.rule))
        })?;
        let snapshot = self.store.snapshot(self.store.head_revision()?)?;
        let mut users = Vec::new();
        for rel in snapshot.read_resource(&resource, role.relation()) {
            let rel = rel?;
            let subject = rel.subject();
            if subject.object_type() != USER_TYPE
                || subject.relation().is_some()
                || subject.is_wildcard()
                || after.is_some_and(|a| subject.object_id() <= a)
            {
                continue;
            }
            users.push(subject.object_id().to_string());
            if users.len() > size {
                break;
            }
        }
        Ok(paginate(users, size, Clone::clone))
    }
}

/// Touches `organization:<org>#<role>@user:<user>` and describes it in the audit entry.
pub(super) fn grant(
    m: &mut Mutation<'_, '_>,
    org: &str,
    user: &str,
    role: Role,
) -> Result<(), IdentityError> {
    m.touch(projection::membership(org, user, role)?)?;
    m.org(org);
    m.subject(user_subject(user));
    m.detail("organization", org);
    m.detail("user", user);
    m.detail("role", role.relation());
    Ok(())
}
