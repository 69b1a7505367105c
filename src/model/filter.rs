//! `RelationshipFilter`: which relationships a read, delete or precondition matches.

use super::refs::SubjectRef;
use super::relationship::Relationship;

/// Matches subjects by type, optional id and optional relation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubjectFilter {
    /// Required subject type.
    pub subject_type: String,
    /// Only this subject id, if set.
    pub subject_id: Option<String>,
    /// `None`: any relation; `Some(None)`: no relation (the object itself); `Some(Some(r))`: exactly `r`.
    pub relation: Option<Option<String>>,
}

impl SubjectFilter {
    /// Whether the subject matches.
    pub fn matches(&self, subject: &SubjectRef) -> bool {
        subject.object_type() == self.subject_type
            && self
                .subject_id
                .as_deref()
                .is_none_or(|id| id == subject.object_id())
            && match &self.relation {
                None => true,
                Some(want) => want.as_deref() == subject.relation(),
            }
    }
}

/// Matches relationships; every field left `None` matches anything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RelationshipFilter {
    /// Only this resource type.
    pub resource_type: Option<String>,
    /// Only this resource id.
    pub resource_id: Option<String>,
    /// Only resource ids starting with this prefix.
    pub resource_id_prefix: Option<String>,
    /// Only this relation.
    pub relation: Option<String>,
    /// Only these subjects.
    pub subject: Option<SubjectFilter>,
}

impl RelationshipFilter {
    /// Whether the relationship matches.
    pub fn matches(&self, rel: &Relationship) -> bool {
        self.resource_type
            .as_deref()
            .is_none_or(|t| t == rel.resource().object_type())
            && self
                .resource_id
                .as_deref()
                .is_none_or(|id| id == rel.resource().object_id())
            && self
                .resource_id_prefix
                .as_deref()
                .is_none_or(|p| rel.resource().object_id().starts_with(p))
            && self.relation.as_deref().is_none_or(|r| r == rel.relation())
            && self
                .subject
                .as_ref()
                .is_none_or(|s| s.matches(rel.subject()))
    }
}
