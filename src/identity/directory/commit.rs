//! One directory change as one store transaction: the record writes, the relationship
//! updates (checked against the schema in force) and exactly one audit entry listing them,
//! committed together or not at all.

use std::collections::BTreeSet;

use crate::identity::audit::{self, AuditChange, AuditDraft};
use crate::identity::{Actor, IdentityError};
use crate::model::{Relationship, Revision, Timestamp};
use crate::store::{Datastore, Records, StoreError, Transaction};

/// The transaction of one change, with its audit draft.
pub(super) struct Mutation<'a, 't> {
    txn: &'a mut (dyn Transaction + 't),
    now: Timestamp,
    draft: AuditDraft,
}

impl<'a, 't> Mutation<'a, 't> {
    /// The time of the change (records' timestamps and the audit entry's time).
    pub(super) fn now(&self) -> Timestamp {
        self.now
    }

    /// The revision the change commits at.
    pub(super) fn revision(&self) -> Revision {
        self.txn.revision()
    }

    /// Reads of the transaction (relationships, records, schema).
    pub(super) fn txn(&self) -> &(dyn Transaction + 't) {
        self.txn
    }

    /// Record writes of the transaction.
    pub(super) fn records(&mut self) -> &mut dyn Records {
        &mut *self.txn
    }

    /// Creates or replaces a relationship the schema in force accepts, and lists it.
    pub(super) fn touch(&mut self, rel: Relationship) -> Result<(), IdentityError> {
        let schema = self.txn.schema().ok_or_else(|| {
            IdentityError::FailedPrecondition(format!(
                "no schema is written; write one with the organization prelude before `{rel}`"
            ))
        })?;
        schema.validate_relationship(&rel).map_err(|e| {
            IdentityError::FailedPrecondition(format!(
                "the schema in force does not accept `{rel}`: {e}"
            ))
        })?;
        self.draft.changes.push(AuditChange::Touch(rel.to_string()));
        self.txn.touch(rel)?;
        Ok(())
    }

    /// Deletes a relationship (one that was read in this transaction) and lists it.
    pub(super) fn delete(&mut self, rel: &Relationship) -> Result<(), IdentityError> {
        self.draft
            .changes
            .push(AuditChange::Delete(rel.to_string()));
        self.txn.delete(rel)?;
        Ok(())
    }

    /// Names an organization the change touched.
    pub(super) fn org(&mut self, id: &str) {
        self.draft.orgs.insert(id.to_string());
    }

    /// Names organizations the change touched.
    pub(super) fn orgs<'i>(&mut self, ids: impl IntoIterator<Item = &'i String>) {
        self.draft.orgs.extend(ids.into_iter().cloned());
    }

    /// Names a subject the change is about (`user:u1`).
    pub(super) fn subject(&mut self, subject: String) {
        self.draft.subjects.insert(subject);
    }

    /// Adds a fact (a record id, a count); never a secret.
    pub(super) fn detail(&mut self, name: &str, value: impl Into<String>) {
        self.draft.details.push((name.to_string(), value.into()));
    }
}

/// Runs `body` in one write transaction of `store` and appends the audit entry of `action`
/// by `actor` before it commits. An error from `body` (or the audit) leaves nothing written
/// and is returned as it was.
pub(super) fn commit<T>(
    store: &dyn Datastore,
    actor: &Actor,
    action: &str,
    mut body: impl FnMut(&mut Mutation<'_, '_>) -> Result<T, IdentityError>,
) -> Result<(T, Revision), IdentityError> {
    let mut output: Option<T> = None;
    let mut refusal: Option<IdentityError> = None;
    let result = store.write(&mut |txn| {
        output = None;
        refusal = None;
        let mut mutation = Mutation {
            txn,
            now: Timestamp::now(),
            draft: AuditDraft {
                actor: Some(actor.clone()),
                action: action.to_string(),
                orgs: BTreeSet::new(),
                subjects: BTreeSet::new(),
                changes: Vec::new(),
                details: Vec::new(),
            },
        };
        let run = body(&mut mutation).and_then(|value| {
            let Mutation { txn, now, draft } = mutation;
            let revision = txn.revision();
            let records: &mut dyn Records = txn;
            audit::append(records, revision, now, draft)?;
            Ok(value)
        });
        match run {
            Ok(value) => {
                output = Some(value);
                Ok(())
            }
            Err(IdentityError::Store(e)) => Err(e),
            Err(e) => {
                let message = e.to_string();
                refusal = Some(e);
                Err(StoreError::Refused(message))
            }
        }
    });
    match result {
        Ok(revision) => output.map(|value| (value, revision)).ok_or_else(|| {
            IdentityError::Store(StoreError::Internal(
                "the write committed without running its body".to_string(),
            ))
        }),
        Err(e) => Err(refusal.unwrap_or(IdentityError::Store(e))),
    }
}
