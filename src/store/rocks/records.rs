//! Records in the RocksDB datastore (see `keys.rs` for their layout): reads of the committed
//! records, and the pending record writes of one transaction or import, which its reads see
//! through and which go into its commit batch.

use std::collections::BTreeMap;

use rocksdb::{ColumnFamily, DB, DBRawIteratorWithThreadMode, WriteBatch};

use super::super::records::{check_record, merge_scan, scan_start};
use super::super::{RecordFamily, Records, StoreError};
use super::read::{KeyRange, raw_iter};
use super::{Shared, keys, rocks_err};

/// The `records` column family, or `None` when a read-only view opened a directory written
/// before it existed (which therefore holds no records).
fn records_cf(shared: &Shared) -> Result<Option<&ColumnFamily>, StoreError> {
    match shared.db.cf_handle(keys::CF_RECORDS) {
        Some(cf) => Ok(Some(cf)),
        None if shared.read_only => Ok(None),
        None => shared.cf(keys::CF_RECORDS).map(Some),
    }
}

/// The committed value of a record.
pub(super) fn get(
    shared: &Shared,
    family: RecordFamily,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    check_record(family, key)?;
    let Some(cf) = records_cf(shared)? else {
        return Ok(None);
    };
    shared
        .db
        .get_cf(cf, keys::record_key(family.name(), key)?)
        .map_err(rocks_err)
}

/// Committed records of a scan (see `Records::scan_records`).
pub(super) fn scan(
    shared: &Shared,
    family: RecordFamily,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<crate::store::Record>, StoreError> {
    family.check()?;
    let start = scan_start(prefix, after);
    Committed::new(shared, family, prefix, &start)?
        .take(limit)
        .collect()
}

/// The committed records of one family in a key range, in key order, as (record key, value).
struct Committed<'a> {
    iter: Option<DBRawIteratorWithThreadMode<'a, DB>>,
}

impl<'a> Committed<'a> {
    /// The records of `family` whose key starts with `prefix`, from record key `start` on.
    fn new(
        shared: &'a Shared,
        family: RecordFamily,
        prefix: &[u8],
        start: &[u8],
    ) -> Result<Self, StoreError> {
        if records_cf(shared)?.is_none() {
            return Ok(Committed { iter: None });
        }
        let (start, end) = keys::record_range(family.name(), prefix, start)?;
        let range = KeyRange {
            start,
            end: Some(end),
            same_prefix: false,
        };
        Ok(Committed {
            iter: Some(raw_iter(shared, keys::CF_RECORDS, &range)?),
        })
    }
}

impl Iterator for Committed<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let iter = self.iter.as_mut()?;
        let Some((key, value)) = iter.item() else {
            let status = iter.status();
            self.iter = None;
            return status.err().map(|e| Err(rocks_err(e)));
        };
        let item = match keys::parse_record_key(key) {
            Some((_, record)) => Ok((record.to_vec(), value.to_vec())),
            None => Err(StoreError::Internal(
                "corrupt stored data: record key without a family".to_string(),
            )),
        };
        iter.next();
        Some(item)
    }
}

/// Record writes not committed yet, over the committed records: what a transaction (or an
/// import's `finish`) has written, and what its reads see.
pub(super) struct PendingRecords<'a> {
    shared: &'a Shared,
    /// By `records` key: the new value, or `None` for a deletion.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> PendingRecords<'a> {
    /// No writes yet.
    pub(super) fn new(shared: &'a Shared) -> Self {
        PendingRecords {
            shared,
            writes: BTreeMap::new(),
        }
    }

    /// Adds the writes to a commit batch.
    pub(super) fn add_to(&self, batch: &mut WriteBatch) -> Result<(), StoreError> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let cf = self.shared.cf(keys::CF_RECORDS)?;
        for (key, value) in &self.writes {
            match value {
                Some(value) => batch.put_cf(cf, key, value),
                None => batch.delete_cf(cf, key),
            }
        }
        Ok(())
    }
}

impl Records for PendingRecords<'_> {
    fn get_record(&self, family: RecordFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        check_record(family, key)?;
        match self.writes.get(&keys::record_key(family.name(), key)?) {
            Some(pending) => Ok(pending.clone()),
            None => get(self.shared, family, key),
        }
    }

    fn put_record(
        &mut self,
        family: RecordFamily,
        key: &[u8],
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        check_record(family, key)?;
        self.writes
            .insert(keys::record_key(family.name(), key)?, Some(value));
        Ok(())
    }

    fn delete_record(&mut self, family: RecordFamily, key: &[u8]) -> Result<(), StoreError> {
        check_record(family, key)?;
        self.writes
            .insert(keys::record_key(family.name(), key)?, None);
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
        let start = scan_start(prefix, after);
        let committed = Committed::new(self.shared, family, prefix, &start)?;
        if self.writes.is_empty() {
            return committed.take(limit).collect();
        }
        let (first, end) = keys::record_range(family.name(), prefix, &start)?;
        let pending = self.writes.range(first..end).filter_map(|(key, value)| {
            keys::parse_record_key(key).map(|(_, record)| (record, value.as_deref()))
        });
        merge_scan(committed, pending, limit)
    }
}
