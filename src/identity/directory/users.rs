//! Users: creation with unique external ids, reads, and the lifecycle (suspension removes
//! the user's organization memberships and keeps them for reactivation; deletion removes
//! them for good).

use crate::identity::scope::ORGANIZATION_TYPE;
use crate::identity::{Actor, IdentityError};
use crate::model::{Revision, SubjectFilter};

use super::commit::{Mutation, commit};
use super::graph::{PlanSource, commit_planned};
use super::projection::{self, USER_TYPE, user_subject};
use super::records::{ORG, RecordSource, USER, USER_EXT, load, load_id, pair_key, save};
use super::types::{ExternalId, Membership, NewUser, Organization, Role, User, UserState};
use super::{Directory, validate};

impl Directory {
    /// Creates an active user (no relationships yet).
    pub fn create_user(
        &self,
        actor: &Actor,
        new: NewUser,
    ) -> Result<(User, Revision), IdentityError> {
        let id = match &new.id {
            Some(id) => {
                validate::object_id("id", USER_TYPE, id)?;
                id.clone()
            }
            None => validate::new_id(),
        };
        let display_name = validate::name("display_name", &new.display_name)?;
        let email = new.email.as_deref().map(validate::email).transpose()?;
        let mut external: Vec<ExternalId> = Vec::with_capacity(new.external.len());
        for ext in &new.external {
            validate::external("external.source", &ext.source)?;
            validate::external("external.id", &ext.id)?;
            if !external.contains(ext) {
                external.push(ext.clone());
            }
        }
        commit(&*self.store, actor, "user.create", |m| {
            if load::<User>(m.txn(), USER, &id)?.is_some() {
                return Err(IdentityError::AlreadyExists(format!(
                    "user `{id}` already exists"
                )));
            }
            for ext in &external {
                let key = pair_key(&ext.source, &ext.id);
                if let Some(other) = load_id(m.txn(), USER_EXT, &key)? {
                    return Err(IdentityError::AlreadyExists(format!(
                        "external id `{}` of source `{}` belongs to user `{other}`",
                        ext.id, ext.source
                    )));
                }
                m.records()
                    .put_record(USER_EXT, &key, id.as_bytes().to_vec())?;
            }
            let user = User {
                id: id.clone(),
                display_name: display_name.clone(),
                email: email.clone(),
                state: UserState::Active,
                external: external.clone(),
                suspended_memberships: Vec::new(),
                created_at: m.now(),
                updated_at: m.now(),
            };
            save(m.records(), USER, &id, &user)?;
            m.subject(user_subject(&id));
            m.detail("user", id.clone());
            Ok(user)
        })
    }

    /// The user `id`.
    pub fn get_user(&self, id: &str) -> Result<User, IdentityError> {
        load_user(&*self.store, id)
    }

    /// Moves a user to `state`. Suspending removes its `organization:*#member|admin@user:U`
    /// relationships and keeps them in the record; reactivating restores exactly those (of
    /// organizations that still exist); deleting removes them for good. A deleted user stays
    /// deleted; asking for the current state changes nothing (and is still audited).
    pub fn set_user_state(
        &self,
        actor: &Actor,
        id: &str,
        state: UserState,
    ) -> Result<(User, Revision), IdentityError> {
        commit_planned(
            &*self.store,
            actor,
            "user.state",
            |source| memberships(source, id),
            |m, current| change_state(m, id, state, current),
        )
    }
}

/// The user record `id`, or `NotFound`.
pub(super) fn load_user(
    source: &(impl RecordSource + ?Sized),
    id: &str,
) -> Result<User, IdentityError> {
    load(source, USER, id)?.ok_or_else(|| IdentityError::NotFound {
        kind: "user",
        id: id.to_string(),
    })
}

/// The user record `id`, which must exist and be active (`FailedPrecondition` otherwise).
pub(super) fn active_user(
    source: &(impl RecordSource + ?Sized),
    id: &str,
) -> Result<User, IdentityError> {
    let user: User = load(source, USER, id)?
        .ok_or_else(|| IdentityError::FailedPrecondition(format!("user `{id}` does not exist")))?;
    if user.state != UserState::Active {
        return Err(IdentityError::FailedPrecondition(format!(
            "user `{id}` is {}",
            user.state.as_str()
        )));
    }
    Ok(user)
}

/// The user's direct organization memberships in the graph.
fn memberships(source: &dyn PlanSource, user: &str) -> Result<Vec<Membership>, IdentityError> {
    load_user(source, user)?;
    let subject = SubjectFilter {
        subject_type: USER_TYPE.to_string(),
        subject_id: Some(user.to_string()),
        relation: Some(None),
    };
    let mut out = Vec::new();
    for role in [Role::Member, Role::Admin] {
        for rel in source.by_subject(ORGANIZATION_TYPE, role.relation(), &subject)? {
            out.push(Membership {
                org: rel.resource().object_id().to_string(),
                role,
            });
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Applies a state change given the user's current memberships.
fn change_state(
    m: &mut Mutation<'_, '_>,
    id: &str,
    state: UserState,
    current: Vec<Membership>,
) -> Result<User, IdentityError> {
    let mut user = load_user(m.txn(), id)?;
    m.subject(user_subject(id));
    m.detail("user", id);
    m.detail("from", user.state.as_str());
    m.detail("to", state.as_str());
    let remove = |m: &mut Mutation<'_, '_>, memberships: &[Membership]| {
        for membership in memberships {
            m.org(&membership.org);
            m.delete(&projection::membership(
                &membership.org,
                id,
                membership.role,
            )?)?;
        }
        Ok::<(), IdentityError>(())
    };
    match (user.state, state) {
        (from, to) if from == to => {
            m.detail("unchanged", "true");
            return Ok(user);
        }
        (UserState::Deleted, _) => {
            return Err(IdentityError::FailedPrecondition(format!(
                "user `{id}` is deleted"
            )));
        }
        (UserState::Active, UserState::Suspended) => {
            remove(m, &current)?;
            user.suspended_memberships = current;
        }
        (UserState::Suspended, UserState::Active) => {
            for membership in std::mem::take(&mut user.suspended_memberships) {
                if load::<Organization>(m.txn(), ORG, &membership.org)?.is_none() {
                    continue;
                }
                m.org(&membership.org);
                m.touch(projection::membership(
                    &membership.org,
                    id,
                    membership.role,
                )?)?;
            }
        }
        (_, UserState::Deleted) => {
            remove(m, &current)?;
            user.suspended_memberships.clear();
        }
        // Every other pair is equal or starts from Deleted, handled above.
        (_, _) => {}
    }
    user.state = state;
    user.updated_at = m.now();
    save(m.records(), USER, id, &user)?;
    Ok(user)
}
