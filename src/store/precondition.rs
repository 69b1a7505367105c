//! Write preconditions: filters that must (or must not) match when a write transaction runs,
//! evaluated inside the transaction so no concurrent writer can slip in between.

use crate::model::RelationshipFilter;

use super::{StoreError, Transaction};

/// Whether the filter must match at least one relationship, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreconditionOp {
    /// At least one relationship matches.
    MustMatch,
    /// No relationship matches.
    MustNotMatch,
}

/// One precondition of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precondition {
    /// Must or must not match.
    pub op: PreconditionOp,
    /// The relationships it looks for.
    pub filter: RelationshipFilter,
}

/// Fails with `StoreError::PreconditionFailed` naming the first precondition that does not hold.
pub fn check_preconditions(
    txn: &dyn Transaction,
    preconditions: &[Precondition],
) -> Result<(), StoreError> {
    for p in preconditions {
        let matched = !txn.read(&p.filter)?.is_empty();
        let holds = match p.op {
            PreconditionOp::MustMatch => matched,
            PreconditionOp::MustNotMatch => !matched,
        };
        if !holds {
            let what = match p.op {
                PreconditionOp::MustMatch => {
                    "must match at least one relationship, but matched none"
                }
                PreconditionOp::MustNotMatch => "must match no relationship, but matched some",
            };
            return Err(StoreError::PreconditionFailed(format!(
                "precondition {:?} {what}",
                p.filter
            )));
        }
    }
    Ok(())
}
