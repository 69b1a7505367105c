//! The projection of directory records to the prelude's relationships: pure functions from
//! a record change to the relationships it writes or deletes (`organization:N#parent@…`,
//! `organization:N#platform@platform:P`, `organization:O#member|admin@user:U`).

use crate::identity::IdentityError;
use crate::identity::scope::{ORGANIZATION_TYPE, PARENT_RELATION, PLATFORM_RELATION};
use crate::model::{NameError, ObjectRef, Relationship, SubjectRef};

use super::types::Role;

/// The object type of users in the prelude.
pub(super) const USER_TYPE: &str = "user";
/// The object type of platforms in the prelude.
pub(super) const PLATFORM_TYPE: &str = "platform";

fn refused(what: &str, e: NameError) -> IdentityError {
    IdentityError::InvalidArgument(format!("{what}: `{}` {}", e.value, e.rule))
}

/// `organization:<id>`.
pub(super) fn org_object(id: &str) -> Result<ObjectRef, IdentityError> {
    ObjectRef::new(ORGANIZATION_TYPE, id).map_err(|e| refused("organization id", e))
}

/// Where an organization hangs: `organization:<id>#parent@organization:<parent>`, or for a
/// root `organization:<id>#platform@platform:<platform>`.
pub(super) fn placement(
    id: &str,
    parent: Option<&str>,
    platform: &str,
) -> Result<Relationship, IdentityError> {
    let resource = org_object(id)?;
    let (relation, subject) = match parent {
        Some(parent) => (
            PARENT_RELATION,
            SubjectRef::new(ORGANIZATION_TYPE, parent, None)
                .map_err(|e| refused("parent organization id", e))?,
        ),
        None => (
            PLATFORM_RELATION,
            SubjectRef::new(PLATFORM_TYPE, platform, None)
                .map_err(|e| refused("platform id", e))?,
        ),
    };
    Relationship::new(resource, relation, subject, None, None).map_err(|e| refused("relation", e))
}

/// `organization:<org>#member|admin@user:<user>`.
pub(super) fn membership(org: &str, user: &str, role: Role) -> Result<Relationship, IdentityError> {
    let subject = SubjectRef::new(USER_TYPE, user, None).map_err(|e| refused("user id", e))?;
    Relationship::new(org_object(org)?, role.relation(), subject, None, None)
        .map_err(|e| refused("relation", e))
}

/// The `user:<id>` subject text used in audit entries.
pub(super) fn user_subject(user: &str) -> String {
    format!("{USER_TYPE}:{user}")
}

/// The identity of a relationship without caveat or expiration, for de-duplication.
pub(super) fn key_text(rel: &Relationship) -> String {
    format!("{}#{}@{}", rel.resource(), rel.relation(), rel.subject())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_hang_on_the_platform_and_children_on_their_parent() {
        assert_eq!(
            placement("acme", None, "saas").unwrap().to_string(),
            "organization:acme#platform@platform:saas"
        );
        assert_eq!(
            placement("emea", Some("acme"), "saas").unwrap().to_string(),
            "organization:emea#parent@organization:acme"
        );
        assert_eq!(
            membership("acme", "u1", Role::Admin).unwrap().to_string(),
            "organization:acme#admin@user:u1"
        );
    }
}
