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
use arbor::store::rocks::{RocksDatastore, RocksOptions};

/// Compiles `schema_text`, panicking with every error.
fn compile(schema_text: &str) -> Schema {
    schema::compile(schema_text).unwrap_or_else(|e| panic!("schema does not compile:\n{e}"))
}

/// The datastore the evaluator's tests read from.
#[derive(Debug, Clone, Copy)]
enum Engine {
    Memory,
    Rocks,
}

/// A memory datastore holding `schema` and `relationships` (one transaction), and an
/// evaluation context at its head revision with a depth budget of `max_depth`.
fn load(schema: Schema, relationships: &[Relationship], max_depth: u32) -> EvalContext {
    load_on(Engine::Memory, schema, relationships, max_depth).0
}

/// As `load`, on the chosen datastore; a RocksDB one lives in the returned temporary
/// directory, which must outlive the context.
fn load_on(
    engine: Engine,
    schema: Schema,
    relationships: &[Relationship],
    max_depth: u32,
) -> (EvalContext, Option<tempfile::TempDir>) {
    let schema = Arc::new(schema);
    let (store, dir): (Box<dyn Datastore>, Option<tempfile::TempDir>) = match engine {
        Engine::Memory => (Box::new(MemoryDatastore::new()), None),
        Engine::Rocks => {
            let dir = tempfile::tempdir().unwrap();
            let options = RocksOptions {
                gc_interval: None,
                ..RocksOptions::default()
            };
            let store = RocksDatastore::open(dir.path(), options).unwrap();
            (Box::new(store), Some(dir))
        }
    };
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
    let ctx = EvalContext::new(
        snapshot,
        eval::dispatch_chain(),
        EvalConfig { max_depth },
        Timestamp::now(),
    )
    .unwrap();
    (ctx, dir)
}
