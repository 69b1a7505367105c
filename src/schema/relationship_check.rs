//! Whether a relationship fits the schema: its types, relations, subject type, caveat and
//! expiration, and its caveat context, checked in the order SpiceDB checks them.

use super::compiled::{AllowedKind, AllowedSubject, Schema};
use super::error::RelationshipSchemaError;
use crate::model::Relationship;

impl Schema {
    /// Checks that `rel` may be written under this schema, as SpiceDB does on write:
    /// the resource type and relation exist and the relation is not a permission; the subject
    /// type (and its relation) exists; the subject — its type, wildcard or relation, caveat
    /// name and whether it expires — matches one allowed subject type exactly; the context
    /// bound on the relationship only names parameters of its caveat.
    pub fn validate_relationship(&self, rel: &Relationship) -> Result<(), RelationshipSchemaError> {
        let object_type = rel.resource().object_type();
        let relation_name = rel.relation();
        let definition = self
            .definition(object_type)
            .ok_or_else(|| RelationshipSchemaError::UnknownType(object_type.to_string()))?;
        let relation = definition.relation(relation_name).ok_or_else(|| {
            RelationshipSchemaError::UnknownRelation {
                object_type: object_type.to_string(),
                relation: relation_name.to_string(),
            }
        })?;

        let subject = rel.subject();
        let subject_definition = self.definition(subject.object_type()).ok_or_else(|| {
            RelationshipSchemaError::UnknownType(subject.object_type().to_string())
        })?;
        if let Some(subject_relation) = subject.relation() {
            if subject_definition.relation(subject_relation).is_none() {
                return Err(RelationshipSchemaError::UnknownRelation {
                    object_type: subject.object_type().to_string(),
                    relation: subject_relation.to_string(),
                });
            }
        }

        if relation.is_permission() {
            return Err(RelationshipSchemaError::WriteToPermission {
                object_type: object_type.to_string(),
                relation: relation_name.to_string(),
            });
        }

        let wanted = AllowedSubject {
            subject_type: subject.object_type().to_string(),
            kind: if subject.is_wildcard() {
                AllowedKind::Wildcard
            } else {
                match subject.relation() {
                    Some(r) => AllowedKind::Relation(r.to_string()),
                    None => AllowedKind::Object,
                }
            },
            caveat: rel.caveat().map(|c| c.name().to_string()),
            expiration: rel.expiration().is_some(),
        };
        let allowed = relation.allowed();
        if !allowed.contains(&wanted) {
            return Err(not_allowed(object_type, relation_name, &wanted, allowed));
        }

        if let Some(caveat_ref) = rel.caveat() {
            if !caveat_ref.context().is_empty() {
                let caveat = self.caveat(caveat_ref.name()).ok_or_else(|| {
                    RelationshipSchemaError::UnknownCaveat(caveat_ref.name().to_string())
                })?;
                if let Some(parameter) = caveat_ref
                    .context()
                    .keys()
                    .find(|k| caveat.parameter(k).is_none())
                {
                    return Err(RelationshipSchemaError::UnknownCaveatParameter {
                        caveat: caveat.name().to_string(),
                        parameter: parameter.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// The error for a subject that matches no allowed subject type. As SpiceDB, an uncaveated
/// subject whose type is allowed only with caveats gets a message naming those caveats.
fn not_allowed(
    object_type: &str,
    relation: &str,
    wanted: &AllowedSubject,
    allowed: &[AllowedSubject],
) -> RelationshipSchemaError {
    if wanted.caveat.is_none() && wanted.kind != AllowedKind::Wildcard {
        let caveats: Vec<String> = allowed
            .iter()
            .filter(|a| {
                a.subject_type == wanted.subject_type
                    && a.kind == wanted.kind
                    && a.expiration == wanted.expiration
            })
            .filter_map(|a| a.caveat.as_ref().map(|c| format!("`{c}`")))
            .collect();
        if !caveats.is_empty() {
            return RelationshipSchemaError::CaveatRequired {
                object_type: object_type.to_string(),
                relation: relation.to_string(),
                subject: wanted.to_string(),
                caveats: caveats.join(", "),
            };
        }
    }
    let listed: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
    RelationshipSchemaError::SubjectNotAllowed {
        object_type: object_type.to_string(),
        relation: relation.to_string(),
        subject: wanted.to_string(),
        allowed: listed.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::super::compile;
    use super::*;

    const SCHEMA: &str = r#"
use expiration

definition user {}

definition team {
    relation member: user | team#member
    permission members = member
}

caveat on_weekday(day string, allowed list<string>) {
    day in allowed
}

definition document {
    relation owner: user
    relation viewer: user | user:* | team#member | user with on_weekday
    relation temp: user with expiration | team#member with on_weekday and expiration
    relation only_caveated: user with on_weekday
    permission view = viewer + owner
}
"#;

    fn check(rel: &str) -> Result<(), RelationshipSchemaError> {
        let schema = compile(SCHEMA).unwrap();
        let rel = Relationship::parse(rel).unwrap();
        schema.validate_relationship(&rel)
    }

    fn message(rel: &str) -> String {
        check(rel).unwrap_err().to_string()
    }

    #[test]
    fn allowed_subjects_pass() {
        for rel in [
            "document:d#owner@user:alice",
            "document:d#viewer@user:alice",
            "document:d#viewer@user:*",
            "document:d#viewer@team:eng#member",
            "document:d#viewer@user:alice[on_weekday]",
            r#"document:d#viewer@user:alice[on_weekday:{"day":"monday"}]"#,
            "document:d#temp@user:alice[expiration:2030-01-01T00:00:00Z]",
            "document:d#temp@team:eng#member[on_weekday][expiration:2030-01-01T00:00:00Z]",
            "team:eng#member@team:ops#member",
        ] {
            assert_eq!(check(rel), Ok(()), "{rel}");
        }
    }

    #[test]
    fn unknown_types_and_relations() {
        assert_eq!(
            check("folder:x#viewer@user:a"),
            Err(RelationshipSchemaError::UnknownType("folder".into()))
        );
        assert_eq!(
            check("document:x#editor@user:a"),
            Err(RelationshipSchemaError::UnknownRelation {
                object_type: "document".into(),
                relation: "editor".into()
            })
        );
        assert_eq!(
            check("document:x#viewer@group:a"),
            Err(RelationshipSchemaError::UnknownType("group".into()))
        );
        assert_eq!(
            check("document:x#viewer@team:a#owner"),
            Err(RelationshipSchemaError::UnknownRelation {
                object_type: "team".into(),
                relation: "owner".into()
            })
        );
        assert_eq!(
            message("document:x#view@user:a"),
            "cannot write a relationship to permission `view` of `document`; write it to a relation"
        );
    }

    #[test]
    fn subject_must_match_an_allowed_type_exactly() {
        assert_eq!(
            message("document:d#owner@user:*"),
            "subjects of type `user:*` are not allowed on relation `document#owner` (allowed: `user`)"
        );
        assert_eq!(
            message("document:d#owner@team:eng#member"),
            "subjects of type `team#member` are not allowed on relation `document#owner` (allowed: `user`)"
        );
        // A caveat the relation does not name.
        assert!(
            message("document:d#owner@user:a[on_weekday]")
                .starts_with("subjects of type `user with on_weekday`")
        );
        // Uncaveated where only a caveated form is allowed: SpiceDB's special message.
        assert_eq!(
            message("document:d#only_caveated@user:a"),
            "subjects of type `user` are not allowed on relation `document#only_caveated` without one of the following caveats: `on_weekday`"
        );
        // A wildcard is not covered by `user` nor the other way around.
        assert!(
            message("document:d#temp@user:*[expiration:2030-01-01T00:00:00Z]")
                .contains("`user:* with expiration`")
        );
    }

    #[test]
    fn expiration_must_match_both_ways() {
        // Without expiration on a relation that only allows `user with expiration`.
        assert_eq!(
            message("document:d#temp@user:a"),
            "subjects of type `user` are not allowed on relation `document#temp` (allowed: `user with expiration`, `team#member with on_weekday and expiration`)"
        );
        // With expiration on a relation that does not allow it.
        assert!(
            message("document:d#owner@user:a[expiration:2030-01-01T00:00:00Z]")
                .starts_with("subjects of type `user with expiration` are not allowed")
        );
        // The caveat and the expiration must both be there.
        assert!(
            message("document:d#temp@team:eng#member[expiration:2030-01-01T00:00:00Z]")
                .contains("`team#member with expiration`")
        );
    }

    #[test]
    fn context_keys_must_be_parameters() {
        assert_eq!(
            check(r#"document:d#viewer@user:a[on_weekday:{"day":"monday","hour":3}]"#),
            Err(RelationshipSchemaError::UnknownCaveatParameter {
                caveat: "on_weekday".into(),
                parameter: "hour".into()
            })
        );
    }
}
