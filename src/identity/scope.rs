//! The scope of a delegated caller in the organization tree, decided by the evaluator: an
//! org-scoped credential of organization X acts as the subject `organization:X#administer`, an
//! impersonated user as `user:U`, and organization Y is inside the caller's scope exactly when
//! `organization:Y#administer` holds for that subject. A resource is inside the scope when
//! every organization that owns it (`<type>:<id>#org@organization:Y`) is. Handlers ask these
//! functions; they never walk the tree themselves.

use std::collections::BTreeSet;

use crate::eval::{self, EvalContext, EvalError};
use crate::model::{ObjectRef, Relationship, SubjectFilter, SubjectRef};
use crate::store::Snapshot;

use super::IdentityError;

/// The object type of organizations in the prelude.
pub const ORGANIZATION_TYPE: &str = "organization";
/// The permission that decides scope: who may administer an organization.
pub const SCOPE_PERMISSION: &str = "administer";
/// The relation through which a resource belongs to an organization.
pub const OWNER_RELATION: &str = "org";
/// The relation from an organization to the one above it.
pub const PARENT_RELATION: &str = "parent";
/// The relation from a root organization to its platform.
pub const PLATFORM_RELATION: &str = "platform";

/// Most organizations `subtree` walks before it stops (a guard against runaway data).
const MAX_SUBTREE: usize = 100_000;

/// The subject an org-scoped credential of `org` acts as: `organization:<org>#administer`.
pub fn org_principal(org: &str) -> Result<SubjectRef, IdentityError> {
    SubjectRef::new(ORGANIZATION_TYPE, org, Some(SCOPE_PERMISSION))
        .map_err(|e| IdentityError::InvalidArgument(format!("organization id `{org}`: {e}")))
}

/// The subject an impersonated user acts as: `user:<id>`.
pub fn user_principal(user: &str) -> Result<SubjectRef, IdentityError> {
    SubjectRef::new("user", user, None)
        .map_err(|e| IdentityError::InvalidArgument(format!("user id `{user}`: {e}")))
}

/// Whether organization `org` is inside the scope of `principal` at the context's revision.
/// A schema without the prelude's `organization#administer` puts nothing in scope.
pub async fn org_in_scope(
    ctx: &EvalContext,
    principal: &SubjectRef,
    org: &str,
) -> Result<bool, IdentityError> {
    let Ok(resource) = ObjectRef::new(ORGANIZATION_TYPE, org) else {
        return Ok(false);
    };
    match eval::check(ctx, &resource, SCOPE_PERMISSION, principal).await {
        // A conditional grant is not a grant of scope.
        Ok(result) => Ok(result.permissionship.is_has()),
        Err(
            EvalError::NoSchema | EvalError::UnknownType(_) | EvalError::UnknownRelation { .. },
        ) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The organizations that own `resource` directly (`resource#org@organization:Y`); for an
/// organization, itself.
pub fn owning_orgs(
    snapshot: &dyn Snapshot,
    resource: &ObjectRef,
) -> Result<Vec<String>, IdentityError> {
    if resource.object_type() == ORGANIZATION_TYPE {
        return Ok(vec![resource.object_id().to_string()]);
    }
    let mut orgs = Vec::new();
    for rel in snapshot.read_resource(resource, OWNER_RELATION) {
        let rel = rel?;
        let subject = rel.subject();
        if subject.object_type() == ORGANIZATION_TYPE && subject.relation().is_none() {
            orgs.push(subject.object_id().to_string());
        }
    }
    Ok(orgs)
}

/// Whether `resource` is inside the scope of `principal`: an organization in scope, or a
/// resource owned by at least one organization and only by organizations in scope.
pub async fn resource_in_scope(
    ctx: &EvalContext,
    principal: &SubjectRef,
    resource: &ObjectRef,
) -> Result<bool, IdentityError> {
    let owners = owning_orgs(ctx.snapshot(), resource)?;
    if owners.is_empty() {
        return Ok(false);
    }
    for org in &owners {
        if !org_in_scope(ctx, principal, org).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The ids of `org` and every organization below it, from the `parent` relationships at the
/// snapshot's revision.
pub fn subtree(snapshot: &dyn Snapshot, org: &str) -> Result<BTreeSet<String>, IdentityError> {
    let mut seen = BTreeSet::new();
    let mut pending = vec![org.to_string()];
    while let Some(current) = pending.pop() {
        if !seen.insert(current.clone()) || seen.len() > MAX_SUBTREE {
            continue;
        }
        let filter = SubjectFilter {
            subject_type: ORGANIZATION_TYPE.to_string(),
            subject_id: Some(current),
            relation: Some(None),
        };
        for rel in snapshot.read_by_subject(ORGANIZATION_TYPE, PARENT_RELATION, &filter) {
            let child = rel?.resource().object_id().to_string();
            if !seen.contains(&child) {
                pending.push(child);
            }
        }
    }
    Ok(seen)
}

/// One relationship update a delegated caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    /// Create or touch.
    Write,
    /// Delete.
    Delete,
}

/// Why a delegated caller may not make an update: the reason names the relationship.
pub type Denial = String;

/// Decides whether `principal` may make every update of one write, at the snapshot before it.
/// Returns the first refusal. The rules, each decided by `org_in_scope`:
/// - on an organization: its `parent` and `platform` relationships may be changed only by a
///   caller that administers the organization *above* it (so a sub-org cannot detach itself),
///   a new parent must be in scope, and `platform` is for platform keys; other relations need
///   the organization itself in scope;
/// - on any other resource: every organization that owns it now must be in scope; a resource
///   that no organization owns yet may be written only in a request that also gives it an
///   owner in scope; a new `org` relationship must name an organization in scope.
///
/// Subjects may belong to other organizations: sharing a resource with another
/// organization's team is the resource owner's decision.
pub async fn authorize_updates(
    ctx: &EvalContext,
    principal: &SubjectRef,
    updates: &[(UpdateKind, Relationship)],
) -> Result<Option<Denial>, IdentityError> {
    for (kind, rel) in updates {
        if let Some(denial) = authorize_update(ctx, principal, *kind, rel, updates).await? {
            return Ok(Some(denial));
        }
    }
    Ok(None)
}

async fn authorize_update(
    ctx: &EvalContext,
    principal: &SubjectRef,
    kind: UpdateKind,
    rel: &Relationship,
    all: &[(UpdateKind, Relationship)],
) -> Result<Option<Denial>, IdentityError> {
    let resource = rel.resource();
    let deny = |why: &str| Ok(Some(format!("`{rel}`: {why}")));
    let subject_org = (rel.subject().object_type() == ORGANIZATION_TYPE
        && rel.subject().relation().is_none())
    .then(|| rel.subject().object_id());

    if resource.object_type() == ORGANIZATION_TYPE {
        match rel.relation() {
            PLATFORM_RELATION => return deny("only a platform key may attach a root organization"),
            PARENT_RELATION => {
                let parents = current_parents(ctx.snapshot(), resource)?;
                if parents.is_empty() {
                    return deny("only a platform key may change a root organization's parent");
                }
                for parent in &parents {
                    if !org_in_scope(ctx, principal, parent).await? {
                        return deny("the organization above it is outside the caller's scope");
                    }
                }
                if kind == UpdateKind::Write {
                    match subject_org {
                        Some(new_parent) if org_in_scope(ctx, principal, new_parent).await? => {}
                        _ => return deny("the new parent is outside the caller's scope"),
                    }
                }
                return Ok(None);
            }
            _ => {
                if !org_in_scope(ctx, principal, resource.object_id()).await? {
                    return deny("the organization is outside the caller's scope");
                }
                return Ok(None);
            }
        }
    }

    let owners = owning_orgs(ctx.snapshot(), resource)?;
    if owners.is_empty() {
        // A new resource: this request must give it an owner in scope.
        let mut owned_here = false;
        for (k, other) in all {
            if *k == UpdateKind::Write
                && other.resource() == resource
                && other.relation() == OWNER_RELATION
                && other.subject().object_type() == ORGANIZATION_TYPE
                && other.subject().relation().is_none()
                && org_in_scope(ctx, principal, other.subject().object_id()).await?
            {
                owned_here = true;
                break;
            }
        }
        if !owned_here {
            return deny(
                "the resource belongs to no organization; write its `org` relationship to one in the caller's scope in the same request",
            );
        }
    } else {
        for org in &owners {
            if !org_in_scope(ctx, principal, org).await? {
                return deny("the resource belongs to an organization outside the caller's scope");
            }
        }
    }
    if rel.relation() == OWNER_RELATION && kind == UpdateKind::Write {
        match subject_org {
            Some(org) if org_in_scope(ctx, principal, org).await? => {}
            _ => {
                return deny(
                    "a resource may be given only to an organization in the caller's scope",
                );
            }
        }
    }
    Ok(None)
}

fn current_parents(snapshot: &dyn Snapshot, org: &ObjectRef) -> Result<Vec<String>, IdentityError> {
    let mut parents = Vec::new();
    for rel in snapshot.read_resource(org, PARENT_RELATION) {
        let rel = rel?;
        if rel.subject().object_type() == ORGANIZATION_TYPE {
            parents.push(rel.subject().object_id().to_string());
        }
    }
    Ok(parents)
}
