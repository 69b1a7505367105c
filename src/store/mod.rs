//! Storage: the `Datastore` / `Snapshot` / `Transaction` traits with revisions, and their
//! implementations (`memory`, and `rocks`, the only module that names RocksDB). Traits are
//! synchronous.

mod clock;
mod error;
pub mod memory;
mod precondition;
pub mod rocks;
mod schema_change;

use std::sync::Arc;
use std::time::Duration;

pub use clock::{DEFAULT_GC_WINDOW, GcStats};
pub use error::StoreError;
pub use precondition::{Precondition, PreconditionOp, check_preconditions};
pub use schema_change::check_schema_change;

mod records;
pub use records::{ImportSummary, Record, RecordFamily, Records};

use crate::model::{
    ObjectRef, Relationship, RelationshipFilter, Revision, SubjectFilter, Timestamp,
};
use crate::schema::Schema;

/// One relationship found by a reverse read (`Snapshot::visit_by_subject`): its resource's id
/// and what decides whether it holds, without the rest of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReverseHit<'a> {
    /// The resource's id.
    pub resource_id: &'a str,
    /// Whether the relationship has a caveat.
    pub caveated: bool,
    /// When it expires, if it does.
    pub expiration: Option<Timestamp>,
}

/// A stream of relationships read from a snapshot.
pub type RelIter<'a> = Box<dyn Iterator<Item = Result<Relationship, StoreError>> + Send + 'a>;

/// A relationship store with revisions. Every committed write gets a new, strictly
/// increasing revision; reads happen at a revision through a `Snapshot`.
pub trait Datastore: Send + Sync {
    /// The newest committed revision.
    fn head_revision(&self) -> Result<Revision, StoreError>;

    /// A recent revision shared by every request in the same quantization window, so
    /// caches keyed by revision stay warm: the newest revision committed before the start
    /// of the current window of length `quantization` (the head if none is older, or if
    /// `quantization` is zero). Its staleness is at most `quantization`.
    fn optimized_revision(&self, quantization: Duration) -> Result<Revision, StoreError>;

    /// Fails unless `revision` can be read: `RevisionAhead` past the head,
    /// `RevisionExpired` when older than the garbage-collection window.
    fn check_revision(&self, revision: Revision) -> Result<(), StoreError>;

    /// A receiver that sees every new head revision (for Watch and cache invalidation).
    fn subscribe(&self) -> tokio::sync::watch::Receiver<Revision>;

    /// A consistent read view at `revision` (must be ≤ head).
    fn snapshot(&self, revision: Revision) -> Result<Arc<dyn Snapshot>, StoreError>;

    /// Runs `body` in one transaction and commits it atomically at a new revision.
    /// If `body` returns an error nothing is written and the error is returned.
    fn write(
        &self,
        body: &mut dyn FnMut(&mut dyn Transaction) -> Result<(), StoreError>,
    ) -> Result<Revision, StoreError>;

    /// At most `limit` committed change sets after `after`, in revision order. Fails with
    /// `RevisionExpired` when changes after `after` were already garbage-collected.
    fn changes_since(&self, after: Revision, limit: usize) -> Result<Vec<ChangeSet>, StoreError>;

    /// Loads relationships at one new revision, all or nothing, with CREATE semantics: one
    /// that exists already, or appears twice, fails the import with `AlreadyExists`; an `Err`
    /// from the iterator aborts the import and is returned. Nothing is visible to readers
    /// until the whole import has committed. The default is `bulk_import_with` with a
    /// `finish` that writes nothing; datastores override it when skipping the summary's
    /// digest makes a large import faster.
    fn bulk_import(
        &self,
        relationships: &mut dyn Iterator<Item = Result<Relationship, StoreError>>,
    ) -> Result<BulkImportOutcome, StoreError> {
        self.bulk_import_with(relationships, &mut |_, _| Ok(()))
    }

    /// One garbage-collection pass at time `now`: removes relationship versions that no
    /// revision inside the GC window (nor any live snapshot) can see, relationships whose
    /// expiration passed before `now` (those vanish even from live snapshots: evaluation
    /// ignores them already), and changelog entries older than the window. The memory store
    /// runs it only when called; the RocksDB store also runs it on a background thread.
    fn collect_garbage(&self, now: Timestamp) -> Result<GcStats, StoreError>;

    /// Like `bulk_import`, and before the import commits, `finish` is called once with what
    /// was loaded (count, revision, digest) and may read and write records (an audit entry)
    /// that commit in the same atomic step as the import. An error from `finish` aborts the
    /// import (nothing of it, nor of `finish`'s writes, is kept) and is returned. `finish`
    /// runs while other writers wait, so a read-modify-write of a record there cannot race.
    fn bulk_import_with(
        &self,
        relationships: &mut dyn Iterator<Item = Result<Relationship, StoreError>>,
        finish: &mut dyn FnMut(&ImportSummary, &mut dyn Records) -> Result<(), StoreError>,
    ) -> Result<BulkImportOutcome, StoreError>;

    /// The committed value of a record (records are not versioned: this is the newest state).
    fn get_record(&self, family: RecordFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Committed records of `family` whose key starts with `prefix`, in key order, starting
    /// strictly after `after` (a full key), at most `limit` of them.
    fn scan_records(
        &self,
        family: RecordFamily,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<crate::store::Record>, StoreError>;
}

/// Every read at one revision.
pub trait Snapshot: Send + Sync {
    /// The revision this snapshot reads at.
    fn revision(&self) -> Revision;

    /// The schema in force at this revision, if one was written.
    fn schema(&self) -> Option<Arc<Schema>>;

    /// Forward read: the relationships of one resource and relation, ordered by subject.
    fn read_resource(&self, resource: &ObjectRef, relation: &str) -> RelIter<'_>;

    /// Reverse read: relationships of `resource_type#relation` whose subject matches `subject`,
    /// ordered by resource id.
    fn read_by_subject(
        &self,
        resource_type: &str,
        relation: &str,
        subject: &SubjectFilter,
    ) -> RelIter<'_>;

    /// Reverse read of resource ids only: calls `visit` for each relationship of
    /// `resource_type#relation` whose subject matches `subject`, in an order fixed by the
    /// snapshot, without building relationships (lookups walk the graph with it).
    fn visit_by_subject(
        &self,
        resource_type: &str,
        relation: &str,
        subject: &SubjectFilter,
        visit: &mut dyn FnMut(ReverseHit<'_>),
    ) -> Result<(), StoreError> {
        for rel in self.read_by_subject(resource_type, relation, subject) {
            let rel = rel?;
            visit(ReverseHit {
                resource_id: rel.resource().object_id(),
                caveated: rel.caveat().is_some(),
                expiration: rel.expiration(),
            });
        }
        Ok(())
    }

    /// Every relationship matching the filter, ordered by (resource, relation, subject),
    /// starting strictly after `after` (a cursor: the last relationship of the previous page).
    fn read(&self, filter: &RelationshipFilter, after: Option<&Relationship>) -> RelIter<'_>;
}

/// What a bulk import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkImportOutcome {
    /// Relationships loaded.
    pub loaded: u64,
    /// The revision they were committed at.
    pub revision: Revision,
}

/// What a delete by filter did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeleteOutcome {
    /// How many relationships were deleted.
    pub deleted: u64,
    /// Whether the limit stopped the deletion before every match was deleted.
    pub partial: bool,
}

/// Reads and writes of one write transaction. Reads see the state before the transaction
/// plus its own earlier writes; its record reads and writes (`Records`) commit with it.
pub trait Transaction: Records {
    /// The revision being written.
    fn revision(&self) -> Revision;

    /// The schema in force (including one written earlier in this transaction).
    fn schema(&self) -> Option<Arc<Schema>>;

    /// Replaces the schema.
    fn write_schema(&mut self, schema: Arc<Schema>) -> Result<(), StoreError>;

    /// Relationships matching the filter, including this transaction's writes.
    fn read(&self, filter: &RelationshipFilter) -> Result<Vec<Relationship>, StoreError>;

    /// Inserts or replaces (same resource, relation and subject) a relationship.
    fn touch(&mut self, relationship: Relationship) -> Result<(), StoreError>;

    /// Inserts; fails with `StoreError::AlreadyExists` if it exists.
    fn create(&mut self, relationship: Relationship) -> Result<(), StoreError>;

    /// Deletes (a missing relationship is not an error).
    fn delete(&mut self, relationship: &Relationship) -> Result<(), StoreError>;

    /// Deletes every match, at most `limit` of them.
    fn delete_by_filter(
        &mut self,
        filter: &RelationshipFilter,
        limit: Option<u64>,
    ) -> Result<DeleteOutcome, StoreError>;
}

/// One relationship change in the changelog.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Created or replaced.
    Touch(Relationship),
    /// Deleted.
    Delete(Relationship),
}

/// The changes committed at one revision.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeSet {
    /// The revision.
    pub revision: Revision,
    /// When it was committed (never earlier than the previous revision's time).
    pub timestamp: Timestamp,
    /// Relationship changes in the order they were made.
    pub changes: Vec<Change>,
    /// Whether the schema changed at this revision.
    pub schema_changed: bool,
}
