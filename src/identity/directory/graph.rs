//! Relationship reads a change plans with, from a snapshot (reverse reads use the subject
//! index) or from inside the write transaction (which has only forward reads, so a read by
//! subject scans one resource type), and `commit_planned`, which plans at the head before the
//! write and re-plans inside it only if another commit came in between.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::identity::{Actor, IdentityError};
use crate::model::{Relationship, RelationshipFilter, Revision, SubjectFilter};
use crate::schema::Schema;
use crate::store::{Datastore, RecordFamily, Snapshot, StoreError, Transaction};

use super::commit::{Mutation, commit};
use super::records::{RecordPage, RecordSource};

/// The relationship reads a plan needs.
pub(super) trait GraphReads {
    /// The schema in force.
    fn schema(&self) -> Option<Arc<Schema>>;

    /// Relationships of `resource_type:resource_id` (of one relation, or all).
    fn by_resource(
        &self,
        resource_type: &str,
        resource_id: &str,
        relation: Option<&str>,
    ) -> Result<Vec<Relationship>, IdentityError>;

    /// Relationships of `resource_type#relation` whose subject matches `subject`.
    fn by_subject(
        &self,
        resource_type: &str,
        relation: &str,
        subject: &SubjectFilter,
    ) -> Result<Vec<Relationship>, IdentityError>;

    /// Relationships of `resource_type#relation` whose subject is `subject_type:<one of ids>`,
    /// with or without a subject relation. One read by subject per id unless overridden.
    fn by_subject_ids(
        &self,
        resource_type: &str,
        relation: &str,
        subject_type: &str,
        ids: &BTreeSet<String>,
    ) -> Result<Vec<Relationship>, IdentityError> {
        let mut out = Vec::new();
        for id in ids {
            let subject = SubjectFilter {
                subject_type: subject_type.to_string(),
                subject_id: Some(id.clone()),
                relation: None,
            };
            out.extend(self.by_subject(resource_type, relation, &subject)?);
        }
        Ok(out)
    }
}

/// Everything a plan reads: relationships and records.
pub(super) trait PlanSource: GraphReads + RecordSource {}

impl<T: GraphReads + RecordSource + ?Sized> PlanSource for T {}

/// Reads of a snapshot, with the committed records of its store.
pub(super) struct SnapshotReads<'a>(pub(super) &'a dyn Snapshot, pub(super) &'a dyn Datastore);

impl RecordSource for SnapshotReads<'_> {
    fn get(&self, family: RecordFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.1.get_record(family, key)
    }

    fn scan(
        &self,
        family: RecordFamily,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<RecordPage, StoreError> {
        self.1.scan_records(family, prefix, after, limit)
    }
}

impl GraphReads for SnapshotReads<'_> {
    fn schema(&self) -> Option<Arc<Schema>> {
        self.0.schema()
    }

    fn by_resource(
        &self,
        resource_type: &str,
        resource_id: &str,
        relation: Option<&str>,
    ) -> Result<Vec<Relationship>, IdentityError> {
        let filter = RelationshipFilter {
            resource_type: Some(resource_type.to_string()),
            resource_id: Some(resource_id.to_string()),
            relation: relation.map(str::to_string),
            ..RelationshipFilter::default()
        };
        Ok(self.0.read(&filter, None).collect::<Result<_, _>>()?)
    }

    fn by_subject(
        &self,
        resource_type: &str,
        relation: &str,
        subject: &SubjectFilter,
    ) -> Result<Vec<Relationship>, IdentityError> {
        Ok(self
            .0
            .read_by_subject(resource_type, relation, subject)
            .collect::<Result<_, _>>()?)
    }
}

/// Reads inside a write transaction.
pub(super) struct TxnReads<'a, 't>(pub(super) &'a (dyn Transaction + 't));

impl RecordSource for TxnReads<'_, '_> {
    fn get(&self, family: RecordFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get_record(family, key)
    }

    fn scan(
        &self,
        family: RecordFamily,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<RecordPage, StoreError> {
        self.0.scan_records(family, prefix, after, limit)
    }
}

impl GraphReads for TxnReads<'_, '_> {
    fn schema(&self) -> Option<Arc<Schema>> {
        self.0.schema()
    }

    fn by_resource(
        &self,
        resource_type: &str,
        resource_id: &str,
        relation: Option<&str>,
    ) -> Result<Vec<Relationship>, IdentityError> {
        Ok(self.0.read(&RelationshipFilter {
            resource_type: Some(resource_type.to_string()),
            resource_id: Some(resource_id.to_string()),
            relation: relation.map(str::to_string),
            ..RelationshipFilter::default()
        })?)
    }

    fn by_subject(
        &self,
        resource_type: &str,
        relation: &str,
        subject: &SubjectFilter,
    ) -> Result<Vec<Relationship>, IdentityError> {
        Ok(self.0.read(&RelationshipFilter {
            resource_type: Some(resource_type.to_string()),
            relation: Some(relation.to_string()),
            subject: Some(subject.clone()),
            ..RelationshipFilter::default()
        })?)
    }

    /// One scan of `resource_type#relation` for all `ids` (each read by subject would scan
    /// it again).
    fn by_subject_ids(
        &self,
        resource_type: &str,
        relation: &str,
        subject_type: &str,
        ids: &BTreeSet<String>,
    ) -> Result<Vec<Relationship>, IdentityError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let any_of_type = SubjectFilter {
            subject_type: subject_type.to_string(),
            subject_id: None,
            relation: None,
        };
        let mut rels = self.by_subject(resource_type, relation, &any_of_type)?;
        rels.retain(|rel| ids.contains(rel.subject().object_id()));
        Ok(rels)
    }
}

/// The `(resource type, relation)` pairs of `schema` whose relation admits subjects of
/// `subject_type` (as objects or usersets).
pub(super) fn relations_admitting(schema: &Schema, subject_type: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for definition in schema.definitions() {
        for relation in definition.relations() {
            if relation
                .allowed()
                .iter()
                .any(|allowed| allowed.subject_type == subject_type)
            {
                out.push((definition.name().to_string(), relation.name().to_string()));
            }
        }
    }
    out
}

/// Commits a change whose plan needs reads by subject. `plan` runs first against a snapshot
/// at the head and committed records; inside the write it is reused when the transaction
/// commits right after that head (nothing came in between), and made again from the
/// transaction's own reads otherwise. `apply` then makes the change from the plan.
pub(super) fn commit_planned<P, T>(
    store: &dyn Datastore,
    actor: &Actor,
    action: &str,
    plan: impl Fn(&dyn PlanSource) -> Result<P, IdentityError>,
    mut apply: impl FnMut(&mut Mutation<'_, '_>, P) -> Result<T, IdentityError>,
) -> Result<(T, Revision), IdentityError> {
    let head = store.head_revision()?;
    let mut early = {
        let snapshot = store.snapshot(head)?;
        Some(plan(&SnapshotReads(&*snapshot, store)))
    };
    commit(store, actor, action, |m| {
        let planned = match early.take() {
            Some(planned) if head.next() == Some(m.revision()) => planned?,
            _ => plan(&TxnReads(m.txn()))?,
        };
        apply(m, planned)
    })
}
