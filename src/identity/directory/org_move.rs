//! Moving an organization under another parent: its `parent` relationship and its record
//! change in one transaction, refused for roots and for moves that would make a cycle.

use std::collections::BTreeSet;

use crate::identity::scope::{ORGANIZATION_TYPE, PARENT_RELATION};
use crate::identity::{Actor, IdentityError};
use crate::model::Revision;

use super::commit::{Mutation, commit};
use super::graph::{GraphReads as _, TxnReads};
use super::orgs::{load_org, tree_key};
use super::records::{MAX_SCAN, ORG, ORG_TREE, load, save};
use super::types::Organization;
use super::{Directory, projection, validate};

impl Directory {
    /// Moves organization `id` under `new_parent`: its `parent` relationship is replaced in
    /// one transaction, so access through the tree follows at the move's revision. A root
    /// cannot be moved, nor anything under itself or its own subtree. Moving under the
    /// current parent changes nothing (and is still audited).
    pub fn move_org(
        &self,
        actor: &Actor,
        id: &str,
        new_parent: &str,
    ) -> Result<(Organization, Revision), IdentityError> {
        validate::object_id("new_parent", ORGANIZATION_TYPE, new_parent)?;
        commit(&*self.store, actor, "organization.move", |m| {
            let mut org = load_org(m.txn(), id)?;
            let Some(old_parent) = org.parent.clone() else {
                return Err(IdentityError::FailedPrecondition(format!(
                    "organization `{id}` is a root organization and cannot be moved"
                )));
            };
            if new_parent == id {
                return Err(IdentityError::FailedPrecondition(format!(
                    "organization `{id}` cannot be moved under itself"
                )));
            }
            if load::<Organization>(m.txn(), ORG, new_parent)?.is_none() {
                return Err(IdentityError::FailedPrecondition(format!(
                    "new parent organization `{new_parent}` does not exist"
                )));
            }
            if ancestors(m, new_parent)?.contains(id) {
                return Err(IdentityError::FailedPrecondition(format!(
                    "organization `{new_parent}` is inside the subtree of `{id}`; \
                     moving `{id}` under it would make a cycle"
                )));
            }
            m.orgs([&org.id, &old_parent, &new_parent.to_string()]);
            m.detail("organization", id);
            m.detail("from", old_parent.clone());
            m.detail("to", new_parent);
            if old_parent == new_parent {
                m.detail("unchanged", "true");
                return Ok(org);
            }
            let old =
                TxnReads(m.txn()).by_resource(ORGANIZATION_TYPE, id, Some(PARENT_RELATION))?;
            for rel in &old {
                m.delete(rel)?;
            }
            m.touch(projection::placement(
                id,
                Some(new_parent),
                &self.config.platform_id,
            )?)?;
            let records = m.records();
            records.delete_record(ORG_TREE, &tree_key(Some(&old_parent), id))?;
            records.put_record(ORG_TREE, &tree_key(Some(new_parent), id), Vec::new())?;
            org.parent = Some(new_parent.to_string());
            org.updated_at = m.now();
            save(m.records(), ORG, id, &org)?;
            Ok(org)
        })
    }
}

/// The organizations above `id`, from the records and from the `parent` relationships.
fn ancestors(m: &Mutation<'_, '_>, id: &str) -> Result<BTreeSet<String>, IdentityError> {
    let mut found = BTreeSet::new();
    let mut pending = vec![id.to_string()];
    let mut visited = BTreeSet::new();
    while let Some(current) = pending.pop() {
        if !visited.insert(current.clone()) || visited.len() > MAX_SCAN {
            continue;
        }
        if let Some(org) = load::<Organization>(m.txn(), ORG, &current)? {
            if let Some(parent) = org.parent {
                found.insert(parent.clone());
                pending.push(parent);
            }
        }
        for rel in
            TxnReads(m.txn()).by_resource(ORGANIZATION_TYPE, &current, Some(PARENT_RELATION))?
        {
            let subject = rel.subject();
            if subject.object_type() == ORGANIZATION_TYPE {
                found.insert(subject.object_id().to_string());
                pending.push(subject.object_id().to_string());
            }
        }
    }
    Ok(found)
}
