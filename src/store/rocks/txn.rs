//! Write transactions of the RocksDB datastore: buffered writes over a read view at the head,
//! reads that see the transaction's own writes, and the atomic, synced commit. Record writes
//! are buffered too (`records.rs`) and join the same commit batch.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use rocksdb::WriteBatch;

use crate::model::{Relationship, RelationshipFilter, Revision, Timestamp};
use crate::schema::Schema;

use super::super::{Change, DeleteOutcome, RecordFamily, Records, StoreError, Transaction};
use super::read::{self, KeyRange};
use super::records::PendingRecords;
use super::{Shared, codec, keys};

/// The final state of one tuple written by the transaction.
struct Pending {
    /// The relationship as last written (or as it was when deleted).
    rel: Relationship,
    /// Alive (touched or created) or deleted.
    alive: bool,
    /// Whether the tuple was alive at the base revision (`None`: not looked up yet). A
    /// deletion of a tuple that was not needs no tombstone.
    existed_before: Option<bool>,
}

/// One write transaction at `revision`, reading the head `base` plus its own writes.
struct RocksTransaction<'a> {
    shared: &'a Shared,
    base: Revision,
    revision: Revision,
    schema: Option<Arc<Schema>>,
    schema_changed: bool,
    /// Writes by forward tuple.
    writes: BTreeMap<Vec<u8>, Pending>,
    changes: Vec<Change>,
    /// Record writes (records are not versioned: the commit overwrites them in place).
    records: PendingRecords<'a>,
}

impl RocksTransaction<'_> {
    fn existed_at_base(&self, tuple: &[u8]) -> Result<bool, StoreError> {
        Ok(read::visible_version(self.shared, tuple, self.base)?.is_some())
    }

    /// The relationship of `tuple` visible to this transaction.
    fn current(&self, tuple: &[u8]) -> Result<Option<Relationship>, StoreError> {
        if let Some(p) = self.writes.get(tuple) {
            return Ok(p.alive.then(|| p.rel.clone()));
        }
        match read::visible_version(self.shared, tuple, self.base)? {
            Some(value) => Ok(Some(codec::relationship_from_forward(tuple, &value)?)),
            None => Ok(None),
        }
    }

    /// Writes the batch of this transaction's versions, changelog and commit record.
    fn into_batch(
        self,
        timestamp: Timestamp,
    ) -> Result<(WriteBatch, Option<Arc<Schema>>), StoreError> {
        let shared = self.shared;
        let forward = shared.cf(keys::CF_RELATIONSHIPS)?;
        let reverse = shared.cf(keys::CF_SUBJECTS)?;
        let mut batch = WriteBatch::default();
        for (tuple, p) in &self.writes {
            let value = codec::encode_version(p.alive.then_some(&p.rel));
            batch.put_cf(forward, keys::version_key(tuple, self.revision), &value);
            let rtuple = keys::reverse_tuple(&p.rel)?;
            batch.put_cf(reverse, keys::version_key(&rtuple, self.revision), &value);
        }
        let mut body = Vec::new();
        for change in &self.changes {
            codec::push_change(&mut body, change)?;
        }
        let chunk = codec::finish_changes(self.changes.len(), &body);
        self.records.add_to(&mut batch)?;
        let schema = if self.schema_changed {
            self.schema
        } else {
            None
        };
        shared.add_commit(
            &mut batch,
            self.revision,
            timestamp,
            &chunk,
            schema.as_deref(),
        )?;
        Ok((batch, schema))
    }
}

impl Transaction for RocksTransaction<'_> {
    fn revision(&self) -> Revision {
        self.revision
    }

    fn schema(&self) -> Option<Arc<Schema>> {
        self.schema.clone()
    }

    fn write_schema(&mut self, schema: Arc<Schema>) -> Result<(), StoreError> {
        self.schema = Some(schema);
        self.schema_changed = true;
        Ok(())
    }

    fn read(&self, filter: &RelationshipFilter) -> Result<Vec<Relationship>, StoreError> {
        let mut found: BTreeMap<Vec<u8>, Relationship> = BTreeMap::new();
        for item in read::scan_forward(self.shared, filter, self.base, None)? {
            let (tuple, rel) = item?;
            found.insert(tuple, rel);
        }
        let range = KeyRange::for_filter(filter)?;
        let upper = match &range.end {
            Some(end) => Bound::Excluded(end.clone()),
            None => Bound::Unbounded,
        };
        for (tuple, p) in self.writes.range((Bound::Included(range.start), upper)) {
            if p.alive && filter.matches(&p.rel) {
                found.insert(tuple.clone(), p.rel.clone());
            } else {
                found.remove(tuple);
            }
        }
        Ok(found.into_values().collect())
    }

    fn touch(&mut self, relationship: Relationship) -> Result<(), StoreError> {
        let tuple = keys::forward_tuple(&relationship)?;
        self.changes.push(Change::Touch(relationship.clone()));
        match self.writes.get_mut(&tuple) {
            Some(p) => {
                p.rel = relationship;
                p.alive = true;
            }
            None => {
                self.writes.insert(
                    tuple,
                    Pending {
                        rel: relationship,
                        alive: true,
                        existed_before: None,
                    },
                );
            }
        }
        Ok(())
    }

    fn create(&mut self, relationship: Relationship) -> Result<(), StoreError> {
        let tuple = keys::forward_tuple(&relationship)?;
        let existed_before = match self.writes.get(&tuple) {
            Some(p) if p.alive => {
                return Err(StoreError::AlreadyExists(relationship.to_string()));
            }
            Some(p) => p.existed_before,
            None => {
                if self.existed_at_base(&tuple)? {
                    return Err(StoreError::AlreadyExists(relationship.to_string()));
                }
                Some(false)
            }
        };
        self.changes.push(Change::Touch(relationship.clone()));
        self.writes.insert(
            tuple,
            Pending {
                rel: relationship,
                alive: true,
                existed_before,
            },
        );
        Ok(())
    }

    fn delete(&mut self, relationship: &Relationship) -> Result<(), StoreError> {
        let tuple = keys::forward_tuple(relationship)?;
        let Some(old) = self.current(&tuple)? else {
            return Ok(());
        };
        let existed_before = match self.writes.get(&tuple) {
            // Not written here, so `current` found it alive at the base.
            None => true,
            Some(p) => match p.existed_before {
                Some(e) => e,
                None => self.existed_at_base(&tuple)?,
            },
        };
        if existed_before {
            self.writes.insert(
                tuple,
                Pending {
                    rel: old.clone(),
                    alive: false,
                    existed_before: Some(true),
                },
            );
        } else {
            // Created by this transaction and gone again: nothing to write.
            self.writes.remove(&tuple);
        }
        self.changes.push(Change::Delete(old));
        Ok(())
    }

    fn delete_by_filter(
        &mut self,
        filter: &RelationshipFilter,
        limit: Option<u64>,
    ) -> Result<DeleteOutcome, StoreError> {
        let matches = self.read(filter)?;
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

/// Runs `body` in one transaction and commits it at the next revision.
pub(super) fn write(
    shared: &Shared,
    body: &mut dyn FnMut(&mut dyn Transaction) -> Result<(), StoreError>,
) -> Result<Revision, StoreError> {
    let _writer = shared.lock_writer()?;
    let (base, schema) = {
        let state = shared.state()?;
        (state.head, state.schema_at(state.head))
    };
    let revision = base
        .next()
        .ok_or_else(|| StoreError::Internal("revision counter exhausted".to_string()))?;
    let mut txn = RocksTransaction {
        shared,
        base,
        revision,
        schema,
        schema_changed: false,
        writes: BTreeMap::new(),
        changes: Vec::new(),
        records: PendingRecords::new(shared),
    };
    body(&mut txn)?;
    let timestamp = shared.state()?.clock.stamp(Timestamp::now());
    let (batch, schema) = txn.into_batch(timestamp)?;
    shared.commit(batch)?;
    shared.publish(revision, timestamp, schema)?;
    Ok(revision)
}

impl Records for RocksTransaction<'_> {
    fn get_record(&self, family: RecordFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.records.get_record(family, key)
    }

    fn put_record(
        &mut self,
        family: RecordFamily,
        key: &[u8],
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.records.put_record(family, key, value)
    }

    fn delete_record(&mut self, family: RecordFamily, key: &[u8]) -> Result<(), StoreError> {
        self.records.delete_record(family, key)
    }

    fn scan_records(
        &self,
        family: RecordFamily,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<crate::store::Record>, StoreError> {
        self.records.scan_records(family, prefix, after, limit)
    }
}
