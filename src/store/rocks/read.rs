//! Reads of the RocksDB datastore: snapshots at a revision, the multi-version scan that picks
//! each tuple's version visible at that revision, and point lookups for transactions.

use std::sync::Arc;

use rocksdb::{DB, DBRawIteratorWithThreadMode, ReadOptions};

use crate::model::{
    ObjectRef, Relationship, RelationshipFilter, Revision, SubjectFilter, Timestamp,
};
use crate::schema::Schema;

use super::super::clock::SnapshotLease;
use super::super::{RelIter, ReverseHit, Snapshot, StoreError};
use super::{Shared, State, codec, keys, rocks_err};

/// Fails unless `revision` is readable: not ahead of the head, not older than the GC window.
pub(super) fn check_readable(
    shared: &Shared,
    state: &State,
    revision: Revision,
) -> Result<(), StoreError> {
    if revision > state.head {
        return Err(StoreError::RevisionAhead {
            requested: revision,
            head: state.head,
        });
    }
    state
        .clock
        .check_not_expired(revision, Timestamp::now(), shared.options.gc_window)
}

/// Which keys of an index a scan covers.
pub(super) struct KeyRange {
    /// Where to seek.
    pub(super) start: Vec<u8>,
    /// Exclusive end, if any.
    pub(super) end: Option<Vec<u8>>,
    /// Whether every key in range shares the prefix-extractor prefix of `start` (then the
    /// prefix bloom filters can skip files).
    pub(super) same_prefix: bool,
}

impl KeyRange {
    /// Every key starting with `prefix`.
    pub(super) fn prefix(prefix: Vec<u8>, same_prefix: bool) -> Self {
        KeyRange {
            end: keys::prefix_end(&prefix),
            start: prefix,
            same_prefix,
        }
    }

    /// The forward-index range a filter can be narrowed to (the filter itself must still be
    /// applied to what the range yields).
    pub(super) fn for_filter(filter: &RelationshipFilter) -> Result<Self, StoreError> {
        let mut prefix = Vec::new();
        let Some(rtype) = &filter.resource_type else {
            return Ok(KeyRange {
                start: Vec::new(),
                end: None,
                same_prefix: false,
            });
        };
        keys::push_component(&mut prefix, rtype)?;
        if let Some(id) = &filter.resource_id {
            keys::push_component(&mut prefix, id)?;
            if let Some(relation) = &filter.relation {
                keys::push_component(&mut prefix, relation)?;
                return Ok(KeyRange::prefix(prefix, true));
            }
        } else if let Some(id_prefix) = &filter.resource_id_prefix {
            if id_prefix.as_bytes().contains(&0) {
                return Err(StoreError::Internal(
                    "a resource id prefix cannot contain a NUL byte".to_string(),
                ));
            }
            prefix.extend_from_slice(id_prefix.as_bytes());
        }
        Ok(KeyRange::prefix(prefix, false))
    }

    /// The same range, starting strictly after every version of `tuple`.
    pub(super) fn after(mut self, tuple: &[u8]) -> Self {
        let past = keys::version_key(tuple, Revision::ZERO);
        if past > self.start {
            self.start = past;
            self.same_prefix = false;
        }
        self
    }
}

/// A raw iterator over `range` of column family `cf`.
pub(super) fn raw_iter<'a>(
    shared: &'a Shared,
    cf: &str,
    range: &KeyRange,
) -> Result<DBRawIteratorWithThreadMode<'a, DB>, StoreError> {
    let mut opts = ReadOptions::default();
    if range.same_prefix {
        opts.set_prefix_same_as_start(true);
    } else {
        opts.set_total_order_seek(true);
    }
    if let Some(end) = &range.end {
        opts.set_iterate_upper_bound(end.clone());
    }
    let mut iter = shared.db.raw_iterator_cf_opt(shared.cf(cf)?, opts);
    iter.seek(&range.start);
    Ok(iter)
}

/// For each tuple in a key range of one index, its version visible at a revision (alive
/// versions only: tuples whose visible version is a tombstone, or that have none, are
/// skipped). Yields `(tuple, version value)` in key order.
pub(super) struct VisibleVersions<'a> {
    iter: Option<DBRawIteratorWithThreadMode<'a, DB>>,
    at: Revision,
    /// The tuple whose visible version was decided last: older versions of it are skipped.
    decided: Vec<u8>,
    error: Option<StoreError>,
}

impl<'a> VisibleVersions<'a> {
    pub(super) fn new(shared: &'a Shared, cf: &str, range: &KeyRange, at: Revision) -> Self {
        match raw_iter(shared, cf, range) {
            Ok(iter) => VisibleVersions {
                iter: Some(iter),
                at,
                decided: Vec::new(),
                error: None,
            },
            Err(e) => VisibleVersions {
                iter: None,
                at,
                decided: Vec::new(),
                error: Some(e),
            },
        }
    }
}

impl Iterator for VisibleVersions<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.error.take() {
            self.iter = None;
            return Some(Err(e));
        }
        let iter = self.iter.as_mut()?;
        loop {
            let Some((key, value)) = iter.item() else {
                let status = iter.status();
                self.iter = None;
                return status.err().map(|e| Err(rocks_err(e)));
            };
            let Some((tuple, revision)) = keys::split_version(key) else {
                self.iter = None;
                return Some(Err(StoreError::Internal(
                    "corrupt stored data: version key too short".to_string(),
                )));
            };
            if revision > self.at || tuple == self.decided.as_slice() {
                iter.next();
                continue;
            }
            self.decided.clear();
            self.decided.extend_from_slice(tuple);
            if codec::is_tombstone(value) {
                iter.next();
                continue;
            }
            let out = (tuple.to_vec(), value.to_vec());
            iter.next();
            return Some(Ok(out));
        }
    }
}

/// The alive version of `tuple` (a forward tuple) visible at `at`, if any.
pub(super) fn visible_version(
    shared: &Shared,
    tuple: &[u8],
    at: Revision,
) -> Result<Option<Vec<u8>>, StoreError> {
    // Past the oldest possible version of the tuple (revision 0 inverts to all ones).
    let mut end = keys::version_key(tuple, Revision::ZERO);
    end.push(0);
    let range = KeyRange {
        start: keys::version_key(tuple, at),
        end: Some(end),
        same_prefix: true,
    };
    let iter = raw_iter(shared, keys::CF_RELATIONSHIPS, &range)?;
    match iter.item() {
        Some((key, value)) => match keys::split_version(key) {
            Some((t, _)) if t == tuple && !codec::is_tombstone(value) => Ok(Some(value.to_vec())),
            _ => Ok(None),
        },
        None => iter.status().map(|()| None).map_err(rocks_err),
    }
}

/// Every relationship matching `filter` at `at`, in forward order, after the cursor tuple.
pub(super) fn scan_forward<'a>(
    shared: &'a Shared,
    filter: &'a RelationshipFilter,
    at: Revision,
    after: Option<&[u8]>,
) -> Result<impl Iterator<Item = Result<(Vec<u8>, Relationship), StoreError>> + Send + 'a, StoreError>
{
    let mut range = KeyRange::for_filter(filter)?;
    if let Some(after) = after {
        range = range.after(after);
    }
    Ok(
        VisibleVersions::new(shared, keys::CF_RELATIONSHIPS, &range, at).filter_map(move |item| {
            match item {
                Err(e) => Some(Err(e)),
                Ok((tuple, value)) => match codec::relationship_from_forward(&tuple, &value) {
                    Err(e) => Some(Err(e)),
                    Ok(rel) if filter.matches(&rel) => Some(Ok((tuple, rel))),
                    Ok(_) => None,
                },
            }
        }),
    )
}

/// A read view at one revision.
pub(super) struct RocksSnapshot {
    shared: Arc<Shared>,
    revision: Revision,
    schema: Option<Arc<Schema>>,
    /// Keeps garbage collection from removing what this snapshot can see.
    _lease: SnapshotLease,
}

impl RocksSnapshot {
    pub(super) fn open(shared: Arc<Shared>, revision: Revision) -> Result<Self, StoreError> {
        // The lease comes first: a collection that starts after it leaves this revision alone.
        let lease = shared.leases.acquire(revision);
        let schema = {
            let state = shared.state()?;
            check_readable(&shared, &state, revision)?;
            state.schema_at(revision)
        };
        Ok(RocksSnapshot {
            shared,
            revision,
            schema,
            _lease: lease,
        })
    }
}

fn boxed_error<'a>(e: StoreError) -> RelIter<'a> {
    Box::new(std::iter::once(Err(e)))
}

impl Snapshot for RocksSnapshot {
    fn revision(&self) -> Revision {
        self.revision
    }

    fn schema(&self) -> Option<Arc<Schema>> {
        self.schema.clone()
    }

    fn read_resource(&self, resource: &ObjectRef, relation: &str) -> RelIter<'_> {
        let mut prefix = Vec::with_capacity(48);
        let built = keys::push_component(&mut prefix, resource.object_type())
            .and_then(|()| keys::push_component(&mut prefix, resource.object_id()))
            .and_then(|()| keys::push_component(&mut prefix, relation));
        if let Err(e) = built {
            return boxed_error(e);
        }
        let range = KeyRange::prefix(prefix, true);
        Box::new(
            VisibleVersions::new(&self.shared, keys::CF_RELATIONSHIPS, &range, self.revision).map(
                |item| {
                    item.and_then(|(tuple, value)| codec::relationship_from_forward(&tuple, &value))
                },
            ),
        )
    }

    fn read_by_subject(
        &self,
        resource_type: &str,
        relation: &str,
        subject: &SubjectFilter,
    ) -> RelIter<'_> {
        let mut prefix = Vec::with_capacity(48);
        let mut ordered = false;
        let built = (|| -> Result<bool, StoreError> {
            keys::push_component(&mut prefix, &subject.subject_type)?;
            let Some(id) = &subject.subject_id else {
                return Ok(false);
            };
            keys::push_component(&mut prefix, id)?;
            keys::push_component(&mut prefix, resource_type)?;
            keys::push_component(&mut prefix, relation)?;
            if let Some(srel) = &subject.relation {
                keys::push_component(&mut prefix, srel.as_deref().unwrap_or(""))?;
                ordered = true;
            }
            Ok(true)
        })();
        let same_prefix = match built {
            Ok(same) => same,
            Err(e) => return boxed_error(e),
        };
        let range = KeyRange::prefix(prefix, same_prefix);
        // The iterator outlives the arguments: it keeps its own copies.
        let (resource_type, relation, subject) = (
            resource_type.to_string(),
            relation.to_string(),
            subject.clone(),
        );
        let rels = VisibleVersions::new(&self.shared, keys::CF_SUBJECTS, &range, self.revision)
            .filter_map(move |item| match item {
                Err(e) => Some(Err(e)),
                Ok((tuple, value)) => match codec::relationship_from_reverse(&tuple, &value) {
                    Err(e) => Some(Err(e)),
                    Ok(rel)
                        if rel.resource().object_type() == resource_type
                            && rel.relation() == relation
                            && subject.matches(rel.subject()) =>
                    {
                        Some(Ok(rel))
                    }
                    Ok(_) => None,
                },
            });
        if ordered {
            // One subject, one resource type and relation: already ordered by resource id.
            return Box::new(rels);
        }
        let mut all = Vec::new();
        for rel in rels {
            match rel {
                Ok(rel) => all.push(rel),
                Err(e) => return boxed_error(e),
            }
        }
        all.sort_by(|a, b| (a.resource(), a.subject()).cmp(&(b.resource(), b.subject())));
        Box::new(all.into_iter().map(Ok))
    }

    fn visit_by_subject(
        &self,
        resource_type: &str,
        relation: &str,
        subject: &SubjectFilter,
        visit: &mut dyn FnMut(ReverseHit<'_>),
    ) -> Result<(), StoreError> {
        let Some(id) = &subject.subject_id else {
            // Every subject of a type: no prefix of the index to narrow the scan to.
            for rel in self.read_by_subject(resource_type, relation, subject) {
                let rel = rel?;
                visit(ReverseHit {
                    resource_id: rel.resource().object_id(),
                    caveated: rel.caveat().is_some(),
                    expiration: rel.expiration(),
                });
            }
            return Ok(());
        };
        let mut prefix = Vec::with_capacity(64);
        keys::push_component(&mut prefix, &subject.subject_type)?;
        keys::push_component(&mut prefix, id)?;
        keys::push_component(&mut prefix, resource_type)?;
        keys::push_component(&mut prefix, relation)?;
        let exact = match &subject.relation {
            Some(srel) => {
                keys::push_component(&mut prefix, srel.as_deref().unwrap_or(""))?;
                true
            }
            None => false,
        };
        let fixed = prefix.len();
        let range = KeyRange::prefix(prefix, true);
        let mut iter = raw_iter(&self.shared, keys::CF_SUBJECTS, &range)?;
        // The tuple whose visible version was decided last: older versions are skipped.
        let mut decided: Vec<u8> = Vec::with_capacity(fixed + 32);
        loop {
            let Some((key, value)) = iter.item() else {
                return iter.status().map_err(rocks_err);
            };
            let (tuple, revision) = keys::split_version(key).ok_or_else(|| {
                StoreError::Internal("corrupt stored data: version key too short".to_string())
            })?;
            if revision <= self.revision && tuple != decided.as_slice() {
                decided.clear();
                decided.extend_from_slice(tuple);
                if !codec::is_tombstone(value) {
                    // What follows the prefix: `[subject relation 00] resource id 00`.
                    let rest = tuple.get(fixed..).unwrap_or_default();
                    let rest = if exact {
                        Some(rest)
                    } else {
                        rest.iter()
                            .position(|b| *b == 0)
                            .and_then(|end| rest.get(end + 1..))
                    };
                    let resource_id = rest
                        .and_then(|r| r.strip_suffix(&[0]))
                        .filter(|r| !r.contains(&0))
                        .and_then(|r| std::str::from_utf8(r).ok())
                        .ok_or_else(|| {
                            StoreError::Internal(
                                "corrupt stored data: malformed reverse key".into(),
                            )
                        })?;
                    let (caveated, expiration) = codec::alive_flags(value)?;
                    visit(ReverseHit {
                        resource_id,
                        caveated,
                        expiration,
                    });
                }
            }
            iter.next();
        }
    }

    fn read(&self, filter: &RelationshipFilter, after: Option<&Relationship>) -> RelIter<'_> {
        let after = match after.map(keys::forward_tuple).transpose() {
            Ok(after) => after,
            Err(e) => return boxed_error(e),
        };
        // The iterator borrows the filter: give it one that lives as long as `self`'s borrow.
        let filter = filter.clone();
        let range = match KeyRange::for_filter(&filter) {
            Ok(range) => match &after {
                Some(tuple) => range.after(tuple),
                None => range,
            },
            Err(e) => return boxed_error(e),
        };
        Box::new(
            VisibleVersions::new(&self.shared, keys::CF_RELATIONSHIPS, &range, self.revision)
                .filter_map(move |item| match item {
                    Err(e) => Some(Err(e)),
                    Ok((tuple, value)) => match codec::relationship_from_forward(&tuple, &value) {
                        Err(e) => Some(Err(e)),
                        Ok(rel) if filter.matches(&rel) => Some(Ok(rel)),
                        Ok(_) => None,
                    },
                }),
        )
    }
}
