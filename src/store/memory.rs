//! The in-memory datastore: multi-version relationships behind one lock, for tests and
//! `--datastore-engine memory`. Writers are serialized; a write applies its changes at the
//! next revision (invisible to readers until it commits) and undoes them on failure.
//! Garbage collection (`collect_garbage`) follows the same rules as the RocksDB datastore.
//! Records live in one map keyed by (family, key); a transaction buffers its record writes
//! and applies them when it commits, so a failed one leaves them as they were.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::model::{
    ObjectRef, Relationship, RelationshipFilter, Revision, SubjectFilter, SubjectRef, Timestamp,
};
use crate::schema::Schema;

use super::clock::{DEFAULT_GC_WINDOW, GcStats, RevisionClock, SnapshotLease, SnapshotLeases};
use super::records::{self, ImportDigest};
use super::{
    BulkImportOutcome, Change, ChangeSet, Datastore, DeleteOutcome, ImportSummary, RecordFamily,
    Records, RelIter, Snapshot, StoreError, Transaction,
};

/// Records by family and key (not versioned: the newest value only).
type RecordMap = BTreeMap<(RecordFamily, Vec<u8>), Vec<u8>>;

/// A transaction's record writes by family and key: `None` deletes.
type RecordWrites = BTreeMap<(RecordFamily, Vec<u8>), Option<Vec<u8>>>;

/// Identity of a tuple in the forward index: resource, relation, subject.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ForwardKey {
    resource: ObjectRef,
    relation: Arc<str>,
    subject: SubjectRef,
}

/// Reverse index entry: subject first, then resource type, relation and resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ReverseKey {
    subject_type: Arc<str>,
    resource_type: Arc<str>,
    relation: Arc<str>,
    subject: SubjectRef,
    resource: ObjectRef,
}

/// One version of a tuple: alive from `created` until `deleted` (exclusive).
#[derive(Debug, Clone)]
struct Version {
    relationship: Relationship,
    created: Revision,
    deleted: Option<Revision>,
}

impl Version {
    fn visible_at(&self, at: Revision) -> bool {
        self.created <= at && self.deleted.is_none_or(|d| d > at)
    }
}

#[derive(Debug, Default)]
struct State {
    head: Revision,
    /// Commit times of the revisions inside the GC window, and the GC horizon.
    clock: RevisionClock,
    forward: BTreeMap<ForwardKey, Vec<Version>>,
    reverse: BTreeSet<ReverseKey>,
    schemas: Vec<(Revision, Arc<Schema>)>,
    changelog: Vec<ChangeSet>,
    /// Committed records; garbage collection never touches them.
    records: RecordMap,
}

impl State {
    fn schema_at(&self, at: Revision) -> Option<Arc<Schema>> {
        self.schemas
            .iter()
            .rev()
            .find(|(rev, _)| *rev <= at)
            .map(|(_, s)| Arc::clone(s))
    }

    fn visible<'a>(&'a self, key: &ForwardKey, at: Revision) -> Option<&'a Relationship> {
        self.forward
            .get(key)?
            .iter()
            .rev()
            .find(|v| v.visible_at(at))
            .map(|v| &v.relationship)
    }

    /// Every visible relationship matching `filter`, in forward order, after the cursor.
    fn scan(
        &self,
        filter: &RelationshipFilter,
        at: Revision,
        after: Option<&Relationship>,
    ) -> Vec<Relationship> {
        let after = after.map(forward_key);
        let iter: Box<dyn Iterator<Item = (&ForwardKey, &Vec<Version>)>> =
            match (&filter.resource_type, &filter.resource_id) {
                (Some(t), Some(id)) => {
                    let start = ObjectRef::new_unchecked(t, id);
                    Box::new(
                        self.forward
                            .range(lower_bound(start.clone())..)
                            .take_while(move |(k, _)| k.resource == start),
                    )
                }
                (Some(t), None) => {
                    let t = t.clone();
                    Box::new(
                        self.forward
                            .range(lower_bound(ObjectRef::new_unchecked(&t, ""))..)
                            .take_while(move |(k, _)| k.resource.object_type() == t),
                    )
                }
                _ => Box::new(self.forward.iter()),
            };
        iter.filter(|(k, _)| after.as_ref().is_none_or(|a| *k > a))
            .filter_map(|(_, versions)| versions.iter().rev().find(|v| v.visible_at(at)))
            .map(|v| &v.relationship)
            .filter(|r| filter.matches(r))
            .cloned()
            .collect()
    }
}

/// The entries of a record map (committed records or pending writes) of `family` whose key
/// starts with `prefix`, from `start` on, in key order.
fn record_range<'a, V>(
    map: &'a BTreeMap<(RecordFamily, Vec<u8>), V>,
    family: RecordFamily,
    prefix: &'a [u8],
    start: Vec<u8>,
) -> impl Iterator<Item = (&'a [u8], &'a V)> + 'a {
    map.range((family, start)..)
        .take_while(move |((f, key), _)| *f == family && key.starts_with(prefix))
        .map(|((_, key), value)| (key.as_slice(), value))
}

/// Committed records of a scan (see `Records::scan_records`).
fn scan_committed(
    records: &RecordMap,
    family: RecordFamily,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    record_range(records, family, prefix, records::scan_start(prefix, after))
        .take(limit)
        .map(|(key, value)| (key.to_vec(), value.clone()))
        .collect()
}

fn lower_bound(resource: ObjectRef) -> ForwardKey {
    ForwardKey {
        resource,
        relation: Arc::from(""),
        subject: SubjectRef::from_object(ObjectRef::new_unchecked("", "")),
    }
}

fn forward_key(rel: &Relationship) -> ForwardKey {
    ForwardKey {
        resource: rel.resource().clone(),
        relation: Arc::from(rel.relation()),
        subject: rel.subject().clone(),
    }
}

fn reverse_key(rel: &Relationship) -> ReverseKey {
    ReverseKey {
        subject_type: Arc::from(rel.subject().object_type()),
        resource_type: Arc::from(rel.resource().object_type()),
        relation: Arc::from(rel.relation()),
        subject: rel.subject().clone(),
        resource: rel.resource().clone(),
    }
}

fn poisoned<T>(_: PoisonError<T>) -> StoreError {
    StoreError::Internal("memory datastore lock poisoned by an earlier panic".to_string())
}

/// An in-memory, multi-version datastore. Old versions stay readable for the GC window
/// (`DEFAULT_GC_WINDOW` unless set with `with_gc_window`) and are removed by
/// `collect_garbage`, which nothing calls on its own.
#[derive(Debug, Clone)]
pub struct MemoryDatastore {
    state: Arc<RwLock<State>>,
    head_tx: Arc<tokio::sync::watch::Sender<Revision>>,
    leases: SnapshotLeases,
    gc_window: Duration,
}

impl Default for MemoryDatastore {
    fn default() -> Self {
        MemoryDatastore {
            state: Arc::default(),
            head_tx: Arc::new(tokio::sync::watch::Sender::new(Revision::ZERO)),
            leases: SnapshotLeases::default(),
            gc_window: DEFAULT_GC_WINDOW,
        }
    }
}

impl MemoryDatastore {
    /// An empty store at revision 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose revisions stay readable for `gc_window` after they stop being
    /// the head.
    pub fn with_gc_window(gc_window: Duration) -> Self {
        MemoryDatastore {
            gc_window,
            ..Self::default()
        }
    }

    /// Fails unless `revision` is readable in `state` now.
    fn check_readable(&self, state: &State, revision: Revision) -> Result<(), StoreError> {
        if revision > state.head {
            return Err(StoreError::RevisionAhead {
                requested: revision,
                head: state.head,
            });
        }
        state
            .clock
            .check_not_expired(revision, Timestamp::now(), self.gc_window)
    }
}

impl Datastore for MemoryDatastore {
    fn head_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.state.read().map_err(poisoned)?.head)
    }

    fn optimized_revision(&self, quantization: Duration) -> Result<Revision, StoreError> {
        let state = self.state.read().map_err(poisoned)?;
        Ok(state
            .clock
            .optimized(state.head, Timestamp::now(), quantization))
    }

    fn check_revision(&self, revision: Revision) -> Result<(), StoreError> {
        let state = self.state.read().map_err(poisoned)?;
        self.check_readable(&state, revision)
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<Revision> {
        self.head_tx.subscribe()
    }

    fn snapshot(&self, revision: Revision) -> Result<Arc<dyn Snapshot>, StoreError> {
        // The lease comes first: a collection that starts after it leaves this revision alone.
        let lease = self.leases.acquire(revision);
        let state = self.state.read().map_err(poisoned)?;
        self.check_readable(&state, revision)?;
        let schema = state.schema_at(revision);
        Ok(Arc::new(MemorySnapshot {
            state: Arc::clone(&self.state),
            revision,
            schema,
            _lease: lease,
        }))
    }

    fn write(
        &self,
        body: &mut dyn FnMut(&mut dyn Transaction) -> Result<(), StoreError>,
    ) -> Result<Revision, StoreError> {
        let mut state = self.state.write().map_err(poisoned)?;
        let revision = state
            .head
            .next()
            .ok_or_else(|| StoreError::Internal("revision counter exhausted".to_string()))?;
        let mut txn = MemoryTransaction {
            state: &mut state,
            revision,
            undo: Vec::new(),
            changes: Vec::new(),
            schema_changed: false,
            record_writes: BTreeMap::new(),
        };
        match body(&mut txn) {
            Ok(()) => {
                let changes = std::mem::take(&mut txn.changes);
                let record_writes = std::mem::take(&mut txn.record_writes);
                let schema_changed = txn.schema_changed;
                drop(txn);
                for (key, value) in record_writes {
                    match value {
                        Some(value) => state.records.insert(key, value),
                        None => state.records.remove(&key),
                    };
                }
                let timestamp = state.clock.stamp(Timestamp::now());
                state.clock.record(revision, timestamp);
                state.changelog.push(ChangeSet {
                    revision,
                    timestamp,
                    changes,
                    schema_changed,
                });
                state.head = revision;
                drop(state);
                self.head_tx.send_replace(revision);
                Ok(revision)
            }
            Err(e) => {
                txn.rollback();
                Err(e)
            }
        }
    }

    fn changes_since(&self, after: Revision, limit: usize) -> Result<Vec<ChangeSet>, StoreError> {
        let state = self.state.read().map_err(poisoned)?;
        state
            .clock
            .check_not_expired(after, Timestamp::now(), self.gc_window)?;
        let start = state.changelog.partition_point(|c| c.revision <= after);
        Ok(state
            .changelog
            .get(start..)
            .unwrap_or(&[])
            .iter()
            .take(limit)
            .cloned()
            .collect())
    }

    fn bulk_import_with(
        &self,
        relationships: &mut dyn Iterator<Item = Result<Relationship, StoreError>>,
        finish: &mut dyn FnMut(&ImportSummary, &mut dyn Records) -> Result<(), StoreError>,
    ) -> Result<BulkImportOutcome, StoreError> {
        let mut loaded = 0u64;
        let revision = self.write(&mut |txn| {
            loaded = 0;
            let mut digest = ImportDigest::new();
            for rel in &mut *relationships {
                let rel = rel?;
                digest.add(&rel);
                txn.create(rel)?;
                loaded += 1;
            }
            let summary = ImportSummary {
                loaded,
                revision: txn.revision(),
                digest: digest.finish(),
            };
            finish(&summary, txn)
        })?;
        Ok(BulkImportOutcome { loaded, revision })
    }

    fn get_record(&self, family: RecordFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        records::check_record(family, key)?;
        let state = self.state.read().map_err(poisoned)?;
        Ok(state.records.get(&(family, key.to_vec())).cloned())
    }

    fn scan_records(
        &self,
        family: RecordFamily,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<crate::store::Record>, StoreError> {
        family.check()?;
        let state = self.state.read().map_err(poisoned)?;
        Ok(scan_committed(&state.records, family, prefix, after, limit))
    }

    fn collect_garbage(&self, now: Timestamp) -> Result<GcStats, StoreError> {
        let mut state = self.state.write().map_err(poisoned)?;
        let mut horizon = state.clock.horizon(now, self.gc_window);
        if let Some(oldest) = self.leases.oldest() {
            horizon = horizon.min(oldest);
        }
        horizon = horizon.max(state.clock.collected());
        let mut stats = GcStats {
            horizon,
            ..GcStats::default()
        };
        let mut emptied = Vec::new();
        for (key, versions) in &mut state.forward {
            let before = versions.len();
            versions.retain(|v| {
                // Deleted at or before the horizon: no readable revision sees it.
                if v.deleted.is_some_and(|d| d <= horizon) {
                    return false;
                }
                // Visible at the horizon but expired: nothing will ever need it.
                if v.created <= horizon && v.relationship.is_expired_at(now) {
                    stats.expired_removed += 1;
                    return false;
                }
                true
            });
            stats.versions_removed += (before - versions.len()) as u64;
            if versions.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            state.forward.remove(&key);
        }
        let State {
            forward, reverse, ..
        } = &mut *state;
        reverse.retain(|k| {
            forward.contains_key(&ForwardKey {
                resource: k.resource.clone(),
                relation: Arc::clone(&k.relation),
                subject: k.subject.clone(),
            })
        });
        let dropped = state.changelog.partition_point(|c| c.revision < horizon);
        state.changelog.drain(..dropped);
        stats.changes_removed = dropped as u64;
        // Keep the schema in force at the horizon and every later one.
        let in_force = state.schemas.partition_point(|(r, _)| *r <= horizon);
        if let Some(older) = in_force.checked_sub(1) {
            state.schemas.drain(..older);
        }
        state.clock.collect(horizon);
        Ok(stats)
    }
}

/// A read view at one revision.
struct MemorySnapshot {
    state: Arc<RwLock<State>>,
    revision: Revision,
    schema: Option<Arc<Schema>>,
    /// Keeps garbage collection from removing what this snapshot can see.
    _lease: SnapshotLease,
}

impl MemorySnapshot {
    fn collect(&self, f: impl FnOnce(&State) -> Vec<Relationship>) -> RelIter<'_> {
        match self.state.read() {
            Ok(state) => Box::new(f(&state).into_iter().map(Ok)),
            Err(e) => Box::new(std::iter::once(Err(poisoned(e)))),
        }
    }
}

impl Snapshot for MemorySnapshot {
    fn revision(&self) -> Revision {
        self.revision
    }

    fn schema(&self) -> Option<Arc<Schema>> {
        self.schema.clone()
    }

    fn read_resource(&self, resource: &ObjectRef, relation: &str) -> RelIter<'_> {
        let at = self.revision;
        let start = ForwardKey {
            resource: resource.clone(),
            relation: Arc::from(relation),
            subject: SubjectRef::from_object(ObjectRef::new_unchecked("", "")),
        };
        self.collect(|state| {
            state
                .forward
                .range(start.clone()..)
                .take_while(|(k, _)| k.resource == start.resource && k.relation == start.relation)
                .filter_map(|(_, versions)| versions.iter().rev().find(|v| v.visible_at(at)))
                .map(|v| v.relationship.clone())
                .collect()
        })
    }

    fn read_by_subject(
        &self,
        resource_type: &str,
        relation: &str,
        subject: &SubjectFilter,
    ) -> RelIter<'_> {
        let at = self.revision;
        let start = ReverseKey {
            subject_type: Arc::from(subject.subject_type.as_str()),
            resource_type: Arc::from(resource_type),
            relation: Arc::from(relation),
            subject: SubjectRef::from_object(ObjectRef::new_unchecked("", "")),
            resource: ObjectRef::new_unchecked("", ""),
        };
        self.collect(|state| {
            let mut out: Vec<Relationship> = state
                .reverse
                .range(start.clone()..)
                .take_while(|k| {
                    k.subject_type == start.subject_type
                        && k.resource_type == start.resource_type
                        && k.relation == start.relation
                })
                .filter(|k| subject.matches(&k.subject))
                .filter_map(|k| {
                    let fk = ForwardKey {
                        resource: k.resource.clone(),
                        relation: Arc::clone(&k.relation),
                        subject: k.subject.clone(),
                    };
                    state.visible(&fk, at).cloned()
                })
                .collect();
            out.sort_by(|a, b| (a.resource(), a.subject()).cmp(&(b.resource(), b.subject())));
            out
        })
    }

    fn read(&self, filter: &RelationshipFilter, after: Option<&Relationship>) -> RelIter<'_> {
        let at = self.revision;
        self.collect(|state| state.scan(filter, at, after))
    }
}

/// What to undo if the transaction fails.
enum Undo {
    /// A version was pushed onto this key.
    Pushed(ForwardKey),
    /// The live version of this key (at this index) was marked deleted.
    MarkedDeleted(ForwardKey, usize),
    /// A schema was pushed.
    Schema,
}

struct MemoryTransaction<'a> {
    state: &'a mut State,
    revision: Revision,
    undo: Vec<Undo>,
    changes: Vec<Change>,
    schema_changed: bool,
    /// Record writes, applied to `state.records` only when the transaction commits.
    record_writes: RecordWrites,
}

impl MemoryTransaction<'_> {
    fn rollback(mut self) {
        while let Some(u) = self.undo.pop() {
            match u {
                Undo::Pushed(key) => {
                    if let Some(versions) = self.state.forward.get_mut(&key) {
                        versions.pop();
                        if versions.is_empty() {
                            self.state.forward.remove(&key);
                        }
                    }
                }
                Undo::MarkedDeleted(key, index) => {
                    if let Some(v) = self
                        .state
                        .forward
                        .get_mut(&key)
                        .and_then(|versions| versions.get_mut(index))
                    {
                        v.deleted = None;
                    }
                }
                Undo::Schema => {
                    self.state.schemas.pop();
                }
            }
        }
        // Reverse-index entries left behind are harmless: reads check the forward index.
    }

    /// Marks the live version of `key` deleted at this revision; returns it if there was one.
    fn kill(&mut self, key: &ForwardKey) -> Option<Relationship> {
        let at = self.revision;
        let versions = self.state.forward.get_mut(key)?;
        let (index, v) = versions
            .iter_mut()
            .enumerate()
            .rev()
            .find(|(_, v)| v.visible_at(at))?;
        if v.created == at {
            // Written earlier in this same transaction: remove the version outright.
            let rel = v.relationship.clone();
            let pos = self
                .undo
                .iter()
                .rposition(|u| matches!(u, Undo::Pushed(k) if k == key));
            if let (Some(pos), Some(_)) = (pos, versions.get(index)) {
                versions.remove(index);
                self.undo.remove(pos);
            }
            return Some(rel);
        }
        v.deleted = Some(at);
        let rel = v.relationship.clone();
        self.undo.push(Undo::MarkedDeleted(key.clone(), index));
        Some(rel)
    }

    fn push(&mut self, relationship: Relationship) {
        let key = forward_key(&relationship);
        self.state.reverse.insert(reverse_key(&relationship));
        self.state
            .forward
            .entry(key.clone())
            .or_default()
            .push(Version {
                relationship: relationship.clone(),
                created: self.revision,
                deleted: None,
            });
        self.undo.push(Undo::Pushed(key));
        self.changes.push(Change::Touch(relationship));
    }
}

impl Transaction for MemoryTransaction<'_> {
    fn revision(&self) -> Revision {
        self.revision
    }

    fn schema(&self) -> Option<Arc<Schema>> {
        self.state.schema_at(self.revision)
    }

    fn write_schema(&mut self, schema: Arc<Schema>) -> Result<(), StoreError> {
        if self.schema_changed {
            self.state.schemas.pop();
        } else {
            self.undo.push(Undo::Schema);
        }
        self.state.schemas.push((self.revision, schema));
        self.schema_changed = true;
        Ok(())
    }

    fn read(&self, filter: &RelationshipFilter) -> Result<Vec<Relationship>, StoreError> {
        Ok(self.state.scan(filter, self.revision, None))
    }

    fn touch(&mut self, relationship: Relationship) -> Result<(), StoreError> {
        let key = forward_key(&relationship);
        self.kill(&key);
        self.push(relationship);
        Ok(())
    }

    fn create(&mut self, relationship: Relationship) -> Result<(), StoreError> {
        let key = forward_key(&relationship);
        if self.state.visible(&key, self.revision).is_some() {
            return Err(StoreError::AlreadyExists(relationship.to_string()));
        }
        self.push(relationship);
        Ok(())
    }

    fn delete(&mut self, relationship: &Relationship) -> Result<(), StoreError> {
        let key = forward_key(relationship);
        if let Some(old) = self.kill(&key) {
            self.changes.push(Change::Delete(old));
        }
        Ok(())
    }

    fn delete_by_filter(
        &mut self,
        filter: &RelationshipFilter,
        limit: Option<u64>,
    ) -> Result<DeleteOutcome, StoreError> {
        let matches = self.state.scan(filter, self.revision, None);
        let mut outcome = DeleteOutcome::default();
        for rel in matches {
            if limit.is_some_and(|l| outcome.deleted >= l) {
                outcome.partial = true;
                break;
            }
            self.delete(&rel)?;
            outcome.deleted += 1;
        }
        Ok(outcome)
    }
}

impl Records for MemoryTransaction<'_> {
    fn get_record(&self, family: RecordFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        records::check_record(family, key)?;
        let key = (family, key.to_vec());
        Ok(match self.record_writes.get(&key) {
            Some(pending) => pending.clone(),
            None => self.state.records.get(&key).cloned(),
        })
    }

    fn put_record(
        &mut self,
        family: RecordFamily,
        key: &[u8],
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        records::check_record(family, key)?;
        self.record_writes
            .insert((family, key.to_vec()), Some(value));
        Ok(())
    }

    fn delete_record(&mut self, family: RecordFamily, key: &[u8]) -> Result<(), StoreError> {
        records::check_record(family, key)?;
        self.record_writes.insert((family, key.to_vec()), None);
        Ok(())
    }

    fn scan_records(
        &self,
        family: RecordFamily,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<crate::store::Record>, StoreError> {
        family.check()?;
        let start = records::scan_start(prefix, after);
        let committed = record_range(&self.state.records, family, prefix, start.clone())
            .map(|(key, value)| Ok((key.to_vec(), value.clone())));
        let pending = record_range(&self.record_writes, family, prefix, start)
            .map(|(key, value)| (key, value.as_deref()));
        records::merge_scan(committed, pending, limit)
    }
}
