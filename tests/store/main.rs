//! The datastores: one conformance suite run against both `MemoryDatastore` and
//! `RocksDatastore` (`conformance`), what only the durable store can show — reopening, Watch
//! resuming across a restart, backups, refusing foreign directories (`durable`), crash safety
//! under SIGKILL (`crash`) — and the `arbor import` / `export` / `backup` commands (`cli`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli;
mod conformance;
mod crash;
mod durable;

use std::sync::Arc;
use std::time::Duration;

use arbor::model::{Relationship, RelationshipFilter, Revision};
use arbor::store::memory::MemoryDatastore;
use arbor::store::rocks::{RocksDatastore, RocksOptions};
use arbor::store::{Datastore, Snapshot};
use tempfile::TempDir;

/// Which datastore a test runs against.
#[derive(Debug, Clone, Copy)]
pub enum Engine {
    Memory,
    Rocks,
}

/// A datastore under test, and the directory that must outlive it.
pub struct Store {
    pub ds: Arc<dyn Datastore>,
    _dir: Option<TempDir>,
}

impl Engine {
    /// A fresh, empty store whose revisions stay readable for `gc_window`.
    pub fn open(self, gc_window: Duration) -> Store {
        match self {
            Engine::Memory => Store {
                ds: Arc::new(MemoryDatastore::with_gc_window(gc_window)),
                _dir: None,
            },
            Engine::Rocks => {
                let dir = tempfile::tempdir().unwrap();
                let options = RocksOptions {
                    gc_window,
                    gc_interval: None,
                    ..RocksOptions::default()
                };
                let ds = RocksDatastore::open(dir.path(), options).unwrap();
                Store {
                    ds: Arc::new(ds),
                    _dir: Some(dir),
                }
            }
        }
    }

    /// A fresh store with the default (one day) GC window.
    pub fn fresh(self) -> Store {
        self.open(arbor::store::DEFAULT_GC_WINDOW)
    }
}

/// Parses a relationship.
pub fn rel(text: &str) -> Relationship {
    Relationship::parse(text).unwrap_or_else(|e| panic!("`{text}`: {e}"))
}

/// Touches every relationship in one transaction.
pub fn touch_all(ds: &dyn Datastore, texts: &[&str]) -> Revision {
    ds.write(&mut |txn| {
        for t in texts {
            txn.touch(rel(t))?;
        }
        Ok(())
    })
    .unwrap()
}

/// Every relationship of a snapshot, as text, in the order read.
pub fn all_of(snapshot: &dyn Snapshot) -> Vec<String> {
    snapshot
        .read(&RelationshipFilter::default(), None)
        .map(|r| r.unwrap().to_string())
        .collect()
}

/// Every relationship at `revision`, as text.
pub fn all_at(ds: &dyn Datastore, revision: Revision) -> Vec<String> {
    all_of(ds.snapshot(revision).unwrap().as_ref())
}
