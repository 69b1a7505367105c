//! Audit queries: entries filtered by organization set, actor, subject, source and time
//! range, scanned in seq order with bounded work per call and a resume point for paging.

use std::collections::BTreeSet;

use crate::identity::{IdentityError, Source};
use crate::model::Timestamp;
use crate::store::Datastore;

use super::codec::{ENTRY_PREFIX, decode_entry, entry_key, seq_of_key};
use super::{AUDIT_FAMILY, AuditEntry};

/// Entries a query returns when its `limit` is 0.
pub const DEFAULT_QUERY_LIMIT: usize = 100;
/// Most entries one query call returns, whatever its `limit`.
pub const MAX_QUERY_LIMIT: usize = 1_000;
/// Most entries one query call scans before it returns with `next_after` set, so a filter
/// that matches nothing in a long log still answers quickly; callers page on.
pub const QUERY_SCAN_BUDGET: usize = 10_000;
/// Entries read from the store per scan step.
const SCAN_PAGE: usize = 500;

/// Which entries a query wants. Every filter set must match (an unset one matches all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// Organization ids (a subtree resolved by the caller): matches entries whose `orgs`
    /// contain at least one of them.
    pub orgs: Option<BTreeSet<String>>,
    /// Matches entries whose actor's principal, `on_behalf_of` or `initiated_by` equals it.
    pub actor: Option<String>,
    /// Matches entries whose `subjects` contain it.
    pub subject: Option<String>,
    /// Matches entries from this source.
    pub source: Option<Source>,
    /// Matches entries at or after this time (inclusive).
    pub from: Option<Timestamp>,
    /// Matches entries before this time (exclusive).
    pub to: Option<Timestamp>,
    /// Scans entries with seq greater than this (0: from the start).
    pub after_seq: u64,
    /// Most entries to return (0: `DEFAULT_QUERY_LIMIT`; capped at `MAX_QUERY_LIMIT`).
    pub limit: usize,
}

impl Default for AuditQuery {
    fn default() -> Self {
        AuditQuery {
            orgs: None,
            actor: None,
            subject: None,
            source: None,
            from: None,
            to: None,
            after_seq: 0,
            limit: DEFAULT_QUERY_LIMIT,
        }
    }
}

impl AuditQuery {
    /// Whether `entry` passes every filter (`after_seq` and `limit` aside).
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        if let Some(orgs) = &self.orgs
            && !entry.orgs.iter().any(|o| orgs.contains(o))
        {
            return false;
        }
        if let Some(actor) = &self.actor {
            let a = &entry.actor;
            let hit = a.principal == *actor
                || a.on_behalf_of.as_deref() == Some(actor.as_str())
                || a.initiated_by.as_deref() == Some(actor.as_str());
            if !hit {
                return false;
            }
        }
        if let Some(subject) = &self.subject
            && !entry.subjects.contains(subject)
        {
            return false;
        }
        if let Some(source) = self.source
            && entry.actor.source != source
        {
            return false;
        }
        if let Some(from) = self.from
            && entry.time < from
        {
            return false;
        }
        if let Some(to) = self.to
            && entry.time >= to
        {
            return false;
        }
        true
    }
}

/// One page of a query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditPage {
    /// Matching entries in seq order.
    pub entries: Vec<AuditEntry>,
    /// The seq to resume after (as the next query's `after_seq`); `None` when the scan
    /// reached the end of the log.
    pub next_after: Option<u64>,
}

/// Scans committed entries after `q.after_seq` in seq order and returns those matching `q`,
/// stopping at `q.limit` matches or after `QUERY_SCAN_BUDGET` scanned entries, whichever
/// comes first; `next_after` then says where to go on. A page may be empty and still have a
/// `next_after`.
pub fn query(store: &dyn Datastore, q: &AuditQuery) -> Result<AuditPage, IdentityError> {
    let limit = match q.limit {
        0 => DEFAULT_QUERY_LIMIT,
        n => n.min(MAX_QUERY_LIMIT),
    };
    let mut entries = Vec::new();
    let mut cursor = q.after_seq;
    let mut scanned = 0usize;
    loop {
        let page_size = SCAN_PAGE.min(QUERY_SCAN_BUDGET.saturating_sub(scanned));
        let after = entry_key(cursor);
        let page = store.scan_records(AUDIT_FAMILY, ENTRY_PREFIX, Some(&after), page_size)?;
        let exhausted = page.len() < page_size;
        for (key, value) in page {
            let seq = seq_of_key(&key)?;
            cursor = seq;
            scanned += 1;
            let entry = decode_entry(seq, &value)?;
            if q.matches(&entry) {
                entries.push(entry);
                if entries.len() >= limit {
                    return Ok(AuditPage {
                        entries,
                        next_after: Some(cursor),
                    });
                }
            }
        }
        if exhausted {
            return Ok(AuditPage {
                entries,
                next_after: None,
            });
        }
        if scanned >= QUERY_SCAN_BUDGET {
            return Ok(AuditPage {
                entries,
                next_after: Some(cursor),
            });
        }
    }
}
