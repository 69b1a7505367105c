//! The evaluator against answers it did not compute itself: SpiceDB's answers on the generated
//! org-hierarchy workloads (`differential`), and a brute-force fixpoint oracle on random data
//! that check, both lookups and expand must all agree with (`oracle`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod differential;
mod oracle;

use std::sync::Arc;

use arbor::eval::{self, EvalConfig, EvalContext};
use arbor::model::{Relationship, Timestamp};
use arbor::schema::{self, Schema};
use arbor::store::Datastore;
use arbor::store::memory::MemoryDatastore;

/// Compiles `schema_text`, panicking with every error.
fn compile(schema_text: &str) -> Schema {
    schema::compile(schema_text).unwrap_or_else(|e| panic!("schema does not compile:\n{e}"))
}

/// A memory datastore holding `schema` and `relationships` (one transaction), and an
/// evaluation context at its head revision with a depth budget of `max_depth`.
fn load(schema: Schema, relationships: &[Relationship], max_depth: u32) -> EvalContext {
    let schema = Arc::new(schema);
    let store = MemoryDatastore::new();
    let revision = store
        .write(&mut |txn| {
            txn.write_schema(Arc::clone(&schema))?;
            for rel in relationships {
                txn.create(rel.clone())?;
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("writing {} relationships: {e}", relationships.len()));
    let snapshot = store.snapshot(revision).unwrap();
    EvalContext::new(
        snapshot,
        eval::dispatch_chain(),
        EvalConfig { max_depth },
        Timestamp::now(),
    )
    .unwrap()
}
