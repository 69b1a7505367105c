//! Datastore benchmarks on the RocksDB datastore, on workload `m` of `shared/workloads/gen.py`
//! (about one million relationships: 216 tenants of nested organizations, teams, folders and
//! documents). The workload is read from `$ARBOR_BENCH_WORKLOAD` (default `/tmp/wl/m`, generated
//! there with `gen.py --size m` when missing) and imported once into a temporary data
//! directory; each scenario checks its answer once before it is timed.
//!
//! - `point_read`: the relationships of one resource and relation (`read_resource`, a prefix
//!   seek helped by the prefix bloom filters), over 1,000 resource#relation pairs of the data.
//! - `reverse_read`: the documents a user is a direct viewer or editor of (`read_by_subject`).
//! - `prefix_scan`: a page of 1,000 relationships of one resource type from a cursor, as
//!   export and ReadRelationships page.
//! - `write`: one transaction touching 1 or 100 relationships, committed with a synced WAL.
//! - `bulk_import`: 100,000 relationships into an empty data directory, commit included.
//!
//! Run with `cargo bench --bench store` (`-- point_read` for one group).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arbor::model::{ObjectRef, Relationship, RelationshipFilter, SubjectFilter};
use arbor::schema;
use arbor::store::Datastore;
use arbor::store::rocks::{RocksDatastore, RocksOptions};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const GEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/workloads/gen.py");
const DEFAULT_WORKLOAD: &str = "/tmp/wl/m";

/// Relationships per bulk-import iteration.
const IMPORT_SIZE: usize = 100_000;

fn workload_dir() -> PathBuf {
    let dir = std::env::var_os("ARBOR_BENCH_WORKLOAD")
        .map_or_else(|| PathBuf::from(DEFAULT_WORKLOAD), PathBuf::from);
    if !dir.join("relationships.txt").exists() {
        eprintln!("generating workload m into {}", dir.display());
        let status = std::process::Command::new("python3")
            .args([GEN, "--size", "m", "--out"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "gen.py failed");
    }
    dir
}

fn options() -> RocksOptions {
    RocksOptions {
        gc_interval: None,
        ..RocksOptions::default()
    }
}

fn read_relationships(dir: &Path) -> Vec<Relationship> {
    std::fs::read_to_string(dir.join("relationships.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("//"))
        .map(|l| Relationship::parse(l).unwrap())
        .collect()
}

/// The workload imported into a fresh data directory (kept alive with the store).
struct Loaded {
    store: RocksDatastore,
    rels: Vec<Relationship>,
    _dir: tempfile::TempDir,
}

fn load() -> Loaded {
    let wl = workload_dir();
    let rels = read_relationships(&wl);
    let schema_text = std::fs::read_to_string(wl.join("schema.zed")).unwrap();
    let schema = Arc::new(schema::compile(&schema_text).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let store = RocksDatastore::open(dir.path(), options()).unwrap();
    store
        .write(&mut |txn| txn.write_schema(Arc::clone(&schema)))
        .unwrap();
    let started = std::time::Instant::now();
    let outcome = store
        .bulk_import(&mut rels.iter().cloned().map(Ok))
        .unwrap();
    assert_eq!(outcome.loaded as usize, rels.len());
    store.flush().unwrap();
    eprintln!(
        "loaded {} relationships in {:.2?}; live table files {} MiB",
        rels.len(),
        started.elapsed(),
        store.live_data_bytes().unwrap() >> 20
    );
    Loaded {
        store,
        rels,
        _dir: dir,
    }
}

/// Every 1,000th relationship: a spread of the data's resources and subjects.
fn sample(rels: &[Relationship]) -> Vec<&Relationship> {
    let step = (rels.len() / 1000).max(1);
    rels.iter().step_by(step).collect()
}

fn reads(c: &mut Criterion, loaded: &Loaded) {
    let store = &loaded.store;
    let snapshot = store.snapshot(store.head_revision().unwrap()).unwrap();
    let picks = sample(&loaded.rels);

    // Checked once: each pick is found by both reads.
    for r in &picks {
        assert!(
            snapshot
                .read_resource(r.resource(), r.relation())
                .map(Result::unwrap)
                .any(|found| &found == *r)
        );
    }
    let mut group = c.benchmark_group("point_read");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("read_resource", |b| {
        b.iter(|| {
            let r = picks[i % picks.len()];
            i += 1;
            snapshot
                .read_resource(r.resource(), r.relation())
                .map(Result::unwrap)
                .count()
        })
    });
    let missing = ObjectRef::new("document", "no_such_document").unwrap();
    assert_eq!(snapshot.read_resource(&missing, "viewer").count(), 0);
    group.bench_function("read_resource_missing", |b| {
        b.iter(|| snapshot.read_resource(&missing, "viewer").count())
    });
    group.finish();

    let users: Vec<&Relationship> = picks
        .iter()
        .copied()
        .filter(|r| {
            r.resource().object_type() == "document"
                && r.subject().object_type() == "user"
                && !r.subject().is_wildcard()
        })
        .collect();
    assert!(!users.is_empty());
    let filter_of = |r: &Relationship| SubjectFilter {
        subject_type: "user".to_string(),
        subject_id: Some(r.subject().object_id().to_string()),
        relation: Some(None),
    };
    for r in &users {
        assert!(
            snapshot
                .read_by_subject("document", r.relation(), &filter_of(r))
                .map(Result::unwrap)
                .any(|found| &found == *r)
        );
    }
    let mut group = c.benchmark_group("reverse_read");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("read_by_subject", |b| {
        b.iter(|| {
            let r = users[i % users.len()];
            i += 1;
            snapshot
                .read_by_subject("document", r.relation(), &filter_of(r))
                .count()
        })
    });
    group.finish();

    let filter = RelationshipFilter {
        resource_type: Some("document".to_string()),
        ..RelationshipFilter::default()
    };
    let cursors: Vec<Relationship> = picks
        .iter()
        .filter(|r| r.resource().object_type() == "document")
        .map(|r| (*r).clone())
        .collect();
    let page = snapshot
        .read(&filter, Some(&cursors[0]))
        .take(1000)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert_eq!(page.len(), 1000);
    assert!(
        page.iter()
            .all(|r| r.resource().object_type() == "document")
    );
    let mut group = c.benchmark_group("prefix_scan");
    group.throughput(Throughput::Elements(1000));
    let mut i = 0;
    group.bench_function("page_of_1000_from_cursor", |b| {
        b.iter(|| {
            let cursor = &cursors[i % cursors.len()];
            i += 1;
            snapshot.read(&filter, Some(cursor)).take(1000).count()
        })
    });
    group.finish();
}

fn writes(c: &mut Criterion, loaded: &Loaded) {
    let store = &loaded.store;
    let mut group = c.benchmark_group("write");
    group.measurement_time(Duration::from_secs(10));
    for size in [1usize, 100] {
        let before = store.head_revision().unwrap();
        let mut n = 0u64;
        let mut write = || {
            n += 1;
            store
                .write(&mut |txn| {
                    for j in 0..size {
                        let text = format!("document:bench_w{n}_{j}#viewer@user:bench_u{j}");
                        txn.touch(Relationship::parse(&text).unwrap())?;
                    }
                    Ok(())
                })
                .map(|r| (r, n))
                .unwrap()
        };
        let (r, n) = write();
        assert_eq!(r, before.next().unwrap());
        assert_eq!(
            store
                .snapshot(r)
                .unwrap()
                .read_resource(
                    &ObjectRef::new("document", &format!("bench_w{n}_0")).unwrap(),
                    "viewer"
                )
                .count(),
            1
        );
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(format!("touch_{size}_synced"), |b| b.iter(&mut write));
    }
    group.finish();
}

fn bulk_import(c: &mut Criterion, loaded: &Loaded) {
    let rels: Vec<Relationship> = loaded.rels.iter().take(IMPORT_SIZE).cloned().collect();
    let mut group = c.benchmark_group("bulk_import");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(rels.len() as u64));
    {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksDatastore::open(dir.path(), options()).unwrap();
        let outcome = store
            .bulk_import(&mut rels.iter().cloned().map(Ok))
            .unwrap();
        assert_eq!(outcome.loaded as usize, rels.len());
    }
    group.bench_function("100k_into_empty", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let store = RocksDatastore::open(dir.path(), options()).unwrap();
                (dir, store)
            },
            |(dir, store)| {
                let outcome = store
                    .bulk_import(&mut rels.iter().cloned().map(Ok))
                    .unwrap();
                (dir, store, outcome)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let loaded = load();
    reads(c, &loaded);
    writes(c, &loaded);
    bulk_import(c, &loaded);
}

criterion_group!(store, benches);
criterion_main!(store);
