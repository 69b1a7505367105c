//! Deleting an organization: refused while it has child organizations or owns resources,
//! unless cascading, which deletes the whole subtree — every relationship of each
//! organization in it (as resource or as subject), every relationship of each resource it
//! owns (`<type>:<id>#org@organization:O`, as resource or as subject, so a deleted team or
//! folder grants nothing anywhere), and the records of the organizations, their credentials
//! and their pending invitations.

use std::collections::{BTreeMap, BTreeSet};

use crate::identity::scope::{ORGANIZATION_TYPE, OWNER_RELATION, PARENT_RELATION};
use crate::identity::{Actor, IdentityError};
use crate::model::{ObjectRef, Relationship, Revision, SubjectFilter};
use crate::schema::Schema;

use super::Directory;
use super::commit::Mutation;
use super::graph::{PlanSource, commit_planned, relations_admitting};
use super::orgs::{load_org, tree_key};
use super::projection::key_text;
use super::records::{
    CRED, CRED_ORG, INVITE, INVITE_ORG, MAX_SCAN, ORG, ORG_DOMAIN, ORG_SLUG, ORG_TREE, load,
    pair_key, pair_seconds,
};
use super::types::{Credential, Invitation, InvitationState, Organization};

/// Most child ids or resources a refusal message names.
const NAMED_IN_REFUSAL: usize = 5;

/// What deleting one organization (or its subtree) removes.
#[derive(Default)]
struct DeletionPlan {
    /// The organizations deleted (from the graph and the records).
    orgs: BTreeSet<String>,
    /// Their records.
    records: Vec<Organization>,
    /// Every relationship deleted, by identity.
    relationships: BTreeMap<String, Relationship>,
    /// The resources the organizations own.
    resources: BTreeSet<ObjectRef>,
    /// Their credentials.
    credentials: Vec<Credential>,
    /// Their pending invitations.
    invitations: Vec<Invitation>,
}

impl DeletionPlan {
    fn add(&mut self, rel: Relationship) {
        self.relationships.insert(key_text(&rel), rel);
    }
}

impl Directory {
    /// Deletes organization `id`. Without `cascade`, fails with `FailedPrecondition` (naming
    /// the count) when it has child organizations or owns resources; with it, deletes the
    /// whole subtree and what it owns. The audit entry lists every deleted relationship.
    pub fn delete_org(
        &self,
        actor: &Actor,
        id: &str,
        cascade: bool,
    ) -> Result<Revision, IdentityError> {
        let ((), revision) = commit_planned(
            &*self.store,
            actor,
            "organization.delete",
            |source| plan(source, id, cascade),
            |m, plan| apply(m, id, cascade, plan),
        )?;
        Ok(revision)
    }
}

/// What deleting `root` removes, or why it is refused.
fn plan(source: &dyn PlanSource, root: &str, cascade: bool) -> Result<DeletionPlan, IdentityError> {
    load_org(source, root)?;
    let schema = source.schema();
    let admitting = schema
        .as_deref()
        .map(|schema| relations_admitting(schema, ORGANIZATION_TYPE))
        .unwrap_or_default();
    let mut plan = DeletionPlan::default();
    let mut pending = vec![root.to_string()];
    while let Some(org) = pending.pop() {
        if plan.orgs.contains(&org) {
            continue;
        }
        if plan.orgs.len() >= MAX_SCAN {
            return Err(IdentityError::FailedPrecondition(format!(
                "the subtree of organization `{root}` has more than {MAX_SCAN} organizations"
            )));
        }
        plan.orgs.insert(org.clone());
        let mut children: BTreeSet<String> = pair_seconds(source, ORG_TREE, &org, None, MAX_SCAN)?
            .into_iter()
            .collect();
        let mut owned = BTreeSet::new();
        for rel in source.by_resource(ORGANIZATION_TYPE, &org, None)? {
            plan.add(rel);
        }
        let subject = SubjectFilter {
            subject_type: ORGANIZATION_TYPE.to_string(),
            subject_id: Some(org.clone()),
            relation: None,
        };
        for (resource_type, relation) in &admitting {
            for rel in source.by_subject(resource_type, relation, &subject)? {
                if rel.subject().relation().is_none() {
                    if resource_type == ORGANIZATION_TYPE && relation == PARENT_RELATION {
                        children.insert(rel.resource().object_id().to_string());
                    } else if relation == OWNER_RELATION {
                        owned.insert(rel.resource().clone());
                    }
                }
                plan.add(rel);
            }
        }
        if !cascade {
            refuse_if_not_empty(root, &children, &owned)?;
        }
        pending.extend(children.into_iter().filter(|c| !plan.orgs.contains(c)));
        plan.resources.extend(owned);
        if let Some(record) = load::<Organization>(source, ORG, &org)? {
            for cred in pair_seconds(source, CRED_ORG, &org, None, MAX_SCAN)? {
                if let Some(cred) = load::<Credential>(source, CRED, &cred)? {
                    plan.credentials.push(cred);
                }
            }
            for inv in pair_seconds(source, INVITE_ORG, &org, None, MAX_SCAN)? {
                if let Some(inv) = load::<Invitation>(source, INVITE, &inv)? {
                    if inv.state == InvitationState::Pending {
                        plan.invitations.push(inv);
                    }
                }
            }
            plan.records.push(record);
        }
    }
    let resources: Vec<ObjectRef> = plan.resources.iter().cloned().collect();
    for resource in &resources {
        for rel in source.by_resource(resource.object_type(), resource.object_id(), None)? {
            plan.add(rel);
        }
    }
    if let Some(schema) = schema.as_deref() {
        for rel in naming_resources(source, schema, &resources)? {
            plan.add(rel);
        }
    }
    Ok(plan)
}

/// Every relationship whose subject is one of `resources` (`document:x#viewer@team:t#member`,
/// `folder:f2#parent@folder:f1`), read through each relation of `schema` that admits the
/// resource's type as a subject.
fn naming_resources(
    source: &dyn PlanSource,
    schema: &Schema,
    resources: &[ObjectRef],
) -> Result<Vec<Relationship>, IdentityError> {
    let mut ids_by_type: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for resource in resources {
        ids_by_type
            .entry(resource.object_type())
            .or_default()
            .insert(resource.object_id().to_string());
    }
    let mut out = Vec::new();
    for (subject_type, ids) in &ids_by_type {
        for (resource_type, relation) in relations_admitting(schema, subject_type) {
            out.extend(source.by_subject_ids(&resource_type, &relation, subject_type, ids)?);
        }
    }
    Ok(out)
}

/// Fails when a non-cascading delete of `org` would leave children or resources behind.
fn refuse_if_not_empty(
    org: &str,
    children: &BTreeSet<String>,
    owned: &BTreeSet<ObjectRef>,
) -> Result<(), IdentityError> {
    let named = |items: Vec<String>| {
        let shown: Vec<String> = items
            .iter()
            .take(NAMED_IN_REFUSAL)
            .map(|i| format!("`{i}`"))
            .collect();
        let more = if items.len() > NAMED_IN_REFUSAL {
            ", …"
        } else {
            ""
        };
        format!("{}{more}", shown.join(", "))
    };
    if !children.is_empty() {
        return Err(IdentityError::FailedPrecondition(format!(
            "organization `{org}` has {} child organization(s) ({}); delete them first or delete with cascade",
            children.len(),
            named(children.iter().cloned().collect())
        )));
    }
    if !owned.is_empty() {
        return Err(IdentityError::FailedPrecondition(format!(
            "organization `{org}` owns {} resource(s) ({}); delete them first or delete with cascade",
            owned.len(),
            named(owned.iter().map(ToString::to_string).collect())
        )));
    }
    Ok(())
}

/// Deletes what `plan` lists.
fn apply(
    m: &mut Mutation<'_, '_>,
    root: &str,
    cascade: bool,
    plan: DeletionPlan,
) -> Result<(), IdentityError> {
    for rel in plan.relationships.values() {
        m.delete(rel)?;
    }
    let records = m.records();
    for org in &plan.records {
        records.delete_record(ORG, org.id.as_bytes())?;
        records.delete_record(ORG_SLUG, org.slug.as_bytes())?;
        records.delete_record(ORG_TREE, &tree_key(org.parent.as_deref(), &org.id))?;
        for domain in &org.domains {
            records.delete_record(ORG_DOMAIN, domain.name.as_bytes())?;
        }
    }
    for cred in &plan.credentials {
        records.delete_record(CRED, cred.id.as_bytes())?;
        records.delete_record(CRED_ORG, &pair_key(&cred.org, &cred.id))?;
    }
    for inv in &plan.invitations {
        records.delete_record(INVITE, inv.id.as_bytes())?;
        records.delete_record(INVITE_ORG, &pair_key(&inv.org, &inv.id))?;
    }
    m.orgs(&plan.orgs);
    m.detail("organization", root);
    m.detail("cascade", cascade.to_string());
    m.detail("organizations", plan.orgs.len().to_string());
    m.detail("resources", plan.resources.len().to_string());
    m.detail("relationships", plan.relationships.len().to_string());
    for org in plan.orgs.iter().filter(|o| o.as_str() != root) {
        m.detail("deleted_organization", org.clone());
    }
    for cred in &plan.credentials {
        m.detail("deleted_credential", cred.id.clone());
    }
    for inv in &plan.invitations {
        m.detail("deleted_invitation", inv.id.clone());
    }
    Ok(())
}
