//! Evaluator benchmarks: named scenarios, each described by the shape of its data, each
//! checking its answer once before it is timed. Run with `cargo bench --bench eval`
//! (`-- check/org_depth` to run one group). Every scenario runs twice: `cold` with the dispatch
//! cache off (every iteration evaluates from scratch; a bulk check still shares sub-problems
//! within its own request) and `hot` with it on (after the first iteration, answers come from
//! the cache of the same revision).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arbor::eval::{
    self, BulkCheck, DispatchConfig, EvalConfig, EvalContext, LookupOrder, Permissionship,
};
use arbor::model::{ObjectRef, Relationship, SubjectRef, Timestamp};
use arbor::schema;
use arbor::store::memory::MemoryDatastore;
use arbor::store::rocks::{RocksDatastore, RocksOptions};
use arbor::store::{Datastore, Snapshot};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// The committed workloads, beside the repository.
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/workloads/data");

/// The org-hierarchy example, whose schema the synthetic scenarios use.
const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/schema-examples/org-hierarchy.yaml"
);

/// Depth budget: SpiceDB's default, enough for the deepest chain below (16 + 16 hops).
const MAX_DEPTH: u32 = 50;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// A loaded scenario: a snapshot at the head of a datastore (memory, or RocksDB in a
/// temporary directory kept for as long as the scenario lives).
struct Scenario {
    snapshot: Arc<dyn Snapshot>,
    _dir: Option<tempfile::TempDir>,
}

impl Scenario {
    /// A context with its own dispatch chain, cached or not.
    fn ctx(&self, cached: bool) -> EvalContext {
        let chain = eval::build_dispatch_chain(DispatchConfig {
            cache_enabled: cached,
            ..DispatchConfig::default()
        });
        EvalContext::new(
            Arc::clone(&self.snapshot),
            chain.head,
            EvalConfig {
                max_depth: MAX_DEPTH,
            },
            Timestamp::now(),
        )
        .unwrap()
    }
}

/// Where a scenario's relationships are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Memory,
    Rocks,
}

/// A memory datastore with `schema_text` and `relationships`.
fn load(schema_text: &str, relationships: &[String]) -> Scenario {
    load_in(Engine::Memory, schema_text, relationships)
}

/// A datastore of `engine` with `schema_text` and `relationships`, written in one transaction.
fn load_in(engine: Engine, schema_text: &str, relationships: &[String]) -> Scenario {
    let schema = Arc::new(schema::compile(schema_text).unwrap_or_else(|e| panic!("{e}")));
    let rels: Vec<Relationship> = relationships
        .iter()
        .map(|l| Relationship::parse(l).unwrap_or_else(|e| panic!("`{l}`: {e}")))
        .collect();
    let (store, dir): (Box<dyn Datastore>, _) = match engine {
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
            for r in &rels {
                txn.create(r.clone())?;
            }
            Ok(())
        })
        .unwrap();
    Scenario {
        snapshot: store.snapshot(revision).unwrap(),
        _dir: dir,
    }
}

/// Workload `s` (20,019 relationships: 6 tenants, 107 organizations up to 5 levels deep, 993
/// teams nested up to 4 levels, 595 folders, 2,621 documents, 861 users).
fn workload_s() -> Scenario {
    workload_s_in(Engine::Memory)
}

/// Workload `s` in a datastore of `engine`.
fn workload_s_in(engine: Engine) -> Scenario {
    let dir = Path::new(DATA).join("s");
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (shared/workloads must sit beside the repository)",
                dir.join(name).display()
            )
        })
    };
    let rels: Vec<String> = read("relationships.txt")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    load_in(engine, &read("schema.zed"), &rels)
}

/// The org-hierarchy example's schema text.
fn example_schema() -> String {
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    doc["schema"].as_str().unwrap().to_string()
}

fn obj(s: &str) -> ObjectRef {
    let (t, id) = s.split_once(':').unwrap();
    ObjectRef::new(t, id).unwrap()
}

fn user(id: &str) -> SubjectRef {
    SubjectRef::new("user", id, None).unwrap()
}

/// Checks the answer once, then times the check cold and hot.
fn bench_check(
    c: &mut Criterion,
    rt: &Runtime,
    scenario: &Scenario,
    group: &str,
    name: &str,
    (resource, permission, subject): (&ObjectRef, &str, &SubjectRef),
    want: bool,
) {
    for cached in [false, true] {
        let ctx = scenario.ctx(cached);
        let name = format!("{name}/{}", if cached { "hot" } else { "cold" });
        bench_check_one(
            c,
            rt,
            &ctx,
            group,
            &name,
            (resource, permission, subject),
            want,
        );
    }
}

fn bench_check_one(
    c: &mut Criterion,
    rt: &Runtime,
    ctx: &EvalContext,
    group: &str,
    name: &str,
    (resource, permission, subject): (&ObjectRef, &str, &SubjectRef),
    want: bool,
) {
    let got = rt
        .block_on(eval::check(ctx, resource, permission, subject))
        .unwrap();
    assert_eq!(
        got.permissionship,
        if want {
            Permissionship::Has
        } else {
            Permissionship::HasNot
        },
        "{group}/{name}: {resource}#{permission}@{subject}"
    );
    let mut g = c.benchmark_group(group);
    g.measurement_time(Duration::from_secs(3));
    g.bench_function(name, |b| {
        b.iter(|| {
            rt.block_on(eval::check(ctx, resource, permission, subject))
                .unwrap()
        })
    });
    g.finish();
}

/// Workload `s`, document `t0_o10_f0_d0` in the deepest organization of tenant 0 (4 levels
/// below the root `t0_o0`). `user:t0_u5` reaches it only as a member of `team:t0_o0_tm9`, the
/// 4th level of the root's admin team (`t0_o0_tm0` ⊃ `tm4` ⊃ `tm7` ⊃ `tm9`): a true check
/// through 4 org levels and 4 team levels. `user:t1_u3` belongs to another tenant: a false
/// check that must explore every path to the document.
fn check_workload_s(c: &mut Criterion) {
    let rt = runtime();
    let ctx = workload_s();
    let doc = obj("document:t0_o10_f0_d0");
    let deep_admin = user("t0_u5");
    let foreign = user("t1_u3");
    bench_check(
        c,
        &rt,
        &ctx,
        "check/workload_s",
        "deep_org_admin_true",
        (&doc, "view", &deep_admin),
        true,
    );
    bench_check(
        c,
        &rt,
        &ctx,
        "check/workload_s",
        "foreign_user_false",
        (&doc, "view", &foreign),
        false,
    );
}

/// A chain of organizations `o0` ← `o1` ← … ← `oD` (`oI#parent@o(I-1)`), one admin at the
/// root: `organization:oD#administer@user:root_admin` is true and climbs D parents; a user
/// with no grant (`user:nobody`) is false after climbing the whole chain.
fn check_org_depth(c: &mut Criterion) {
    let rt = runtime();
    let schema = example_schema();
    for depth in [2usize, 4, 8, 16] {
        let mut rels = vec!["organization:o0#admin@user:root_admin".to_string()];
        rels.extend(
            (1..=depth).map(|i| format!("organization:o{i}#parent@organization:o{}", i - 1)),
        );
        let ctx = load(&schema, &rels);
        let leaf = obj(&format!("organization:o{depth}"));
        bench_check(
            c,
            &rt,
            &ctx,
            "check/org_depth",
            &format!("true/{depth}"),
            (&leaf, "administer", &user("root_admin")),
            true,
        );
        bench_check(
            c,
            &rt,
            &ctx,
            "check/org_depth",
            &format!("false/{depth}"),
            (&leaf, "administer", &user("nobody")),
            false,
        );
    }
}

/// A chain of teams `t0` ⊃ `t1` ⊃ … ⊃ `tD` (`tI#member@t(I+1)#member`), `user:deep` a member
/// of `tD`, and `t0`'s members admins of `organization:acme`: `organization:acme#administer`
/// for `user:deep` is true through D nested teams.
fn check_team_depth(c: &mut Criterion) {
    let rt = runtime();
    let schema = example_schema();
    for depth in [2usize, 4, 8, 16] {
        let mut rels = vec![
            "organization:acme#admin@team:t0#member".to_string(),
            format!("team:t{depth}#member@user:deep"),
        ];
        rels.extend((0..depth).map(|i| format!("team:t{i}#member@team:t{}#member", i + 1)));
        let ctx = load(&schema, &rels);
        bench_check(
            c,
            &rt,
            &ctx,
            "check/team_depth",
            &format!("true/{depth}"),
            (&obj("organization:acme"), "administer", &user("deep")),
            true,
        );
    }
}

/// Issue 8's check target, on RocksDB: a chain of 8 organizations `o0` ← … ← `o8`, the
/// admins of `o0` being the members of `team:t0`, and `user:deep` a member of `t4`, 4 nested
/// teams below (`tI#member@t(I+1)#member`): `organization:o8#administer@user:deep` climbs 8
/// parents and descends 4 teams. `cold` evaluates it from the snapshot every time, `hot`
/// answers from the dispatch cache.
fn check_rocksdb_org_and_team_depth(c: &mut Criterion) {
    let rt = runtime();
    let schema = example_schema();
    let mut rels = vec![
        "organization:o0#admin@team:t0#member".to_string(),
        "team:t4#member@user:deep".to_string(),
    ];
    rels.extend((1..=8).map(|i| format!("organization:o{i}#parent@organization:o{}", i - 1)));
    rels.extend((0..4).map(|i| format!("team:t{i}#member@team:t{}#member", i + 1)));
    let scenario = load_in(Engine::Rocks, &schema, &rels);
    bench_check(
        c,
        &rt,
        &scenario,
        "check/rocksdb",
        "org8_team4_true",
        (&obj("organization:o8"), "administer", &user("deep")),
        true,
    );
    bench_check(
        c,
        &rt,
        &scenario,
        "check/rocksdb",
        "org8_team4_false",
        (&obj("organization:o8"), "administer", &user("nobody")),
        false,
    );
}

/// Workload `s`: every document `user:t0_u5` (a member of the root admin team of tenant 0, so
/// an admin of all its organizations) may view, and every document a plain member
/// (`user:t0_u40`) may view.
fn lookup_resources(c: &mut Criterion) {
    let rt = runtime();
    let scenario = workload_s();
    let mut g = c.benchmark_group("lookup_resources/workload_s");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for ((name, id), cached) in [("tenant_admin", "t0_u5"), ("member", "t0_u40")]
        .into_iter()
        .flat_map(|s| [(s, false), (s, true)])
    {
        let ctx = scenario.ctx(cached);
        let name = format!("{name}/{}", if cached { "hot" } else { "cold" });
        let subject = user(id);
        let found = rt
            .block_on(eval::lookup_resources(&ctx, "document", "view", &subject))
            .unwrap();
        assert!(
            !found.is_empty()
                && found
                    .iter()
                    .all(|r| r.permissionship == Permissionship::Has),
            "lookup_resources for {id}: {} found",
            found.len()
        );
        if name == "tenant_admin" {
            assert!(found.iter().any(|r| r.resource_id == "t0_o10_f0_d0"));
        }
        g.bench_function(BenchmarkId::new(&name, found.len()), |b| {
            b.iter(|| {
                rt.block_on(eval::lookup_resources(&ctx, "document", "view", &subject))
                    .unwrap()
            })
        });
    }
    g.finish();
}

/// The checks of workload `s` with SpiceDB's answers (`expected.txt`).
fn checks_s() -> Vec<(ObjectRef, String, SubjectRef, bool)> {
    let path = Path::new(DATA).join("s").join("expected.txt");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(check, answer)| {
            let rel = Relationship::parse(check).unwrap();
            (
                rel.resource().clone(),
                rel.relation().to_string(),
                rel.subject().clone(),
                answer == "true",
            )
        })
        .collect()
}

/// Times `eval::check_bulk` on `items` cold and hot, after checking every answer once.
fn bench_bulk(
    c: &mut Criterion,
    rt: &Runtime,
    scenario: &Scenario,
    name: &str,
    items: &[(ObjectRef, String, SubjectRef, bool)],
) {
    let bulk: Vec<BulkCheck<'_>> = items
        .iter()
        .map(|(resource, permission, subject, _)| BulkCheck {
            resource,
            permission,
            subject,
            context: None,
        })
        .collect();
    let mut g = c.benchmark_group("bulk_check/workload_s");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(criterion::Throughput::Elements(items.len() as u64));
    for cached in [false, true] {
        let ctx = scenario.ctx(cached);
        let answers = rt.block_on(eval::check_bulk(&ctx, &bulk));
        for ((resource, permission, subject, want), got) in items.iter().zip(&answers) {
            assert_eq!(
                got.as_ref().unwrap().permissionship.is_has(),
                *want,
                "{name}: {resource}#{permission}@{subject}"
            );
        }
        let label = format!("{name}/{}", if cached { "hot" } else { "cold" });
        g.bench_function(BenchmarkId::new(label, items.len()), |b| {
            b.iter(|| rt.block_on(eval::check_bulk(&ctx, &bulk)))
        });
    }
    g.finish();
}

/// Workload `s`, CheckBulkPermissions as `arbor bench --op bulk-check` sends it: the first 100
/// lines of `checks.txt` (a shuffled mix of every kind of check: documents, folders,
/// organizations and teams; mostly distinct subjects). And one subject on many resources:
/// `user:t0_u5` (an admin of every organization of tenant 0, through nested teams) on `view`
/// of the first 100 documents of tenant 0, which share organizations and folders — the case
/// grouping by subject and permission is for.
fn bulk_check(c: &mut Criterion) {
    let rt = runtime();
    let scenario = workload_s();
    let checks = checks_s();
    let mixed: Vec<_> = checks.into_iter().take(100).collect();
    bench_bulk(c, &rt, &scenario, "mixed_100", &mixed);
    let admin = user("t0_u5");
    let mut docs: Vec<ObjectRef> = Vec::new();
    let rels = Path::new(DATA).join("s").join("relationships.txt");
    for line in std::fs::read_to_string(rels).unwrap().lines() {
        let rel = Relationship::parse(line).unwrap();
        let doc = rel.resource();
        if doc.object_type() == "document"
            && doc.object_id().starts_with("t0_")
            && !docs.contains(doc)
        {
            docs.push(doc.clone());
        }
        if docs.len() == 100 {
            break;
        }
    }
    // Expected answers from single checks (a few of these documents ban some admins).
    let single = scenario.ctx(false);
    let one_subject: Vec<_> = docs
        .into_iter()
        .map(|d| {
            let want = rt
                .block_on(eval::check(&single, &d, "view", &admin))
                .unwrap()
                .permissionship
                .is_has();
            (d, "view".to_string(), admin.clone(), want)
        })
        .collect();
    let granted = one_subject.iter().filter(|i| i.3).count();
    assert!(
        granted >= 90,
        "t0_u5 may view only {granted} of 100 documents"
    );
    bench_bulk(c, &rt, &scenario, "one_subject_100_documents", &one_subject);
}

/// Workload `s` on RocksDB, LookupResources as the gRPC API streams it
/// (`eval::lookup_resources_with`, in the walk's order): the time to the first result, and to the last, for `user:t0_u5`
/// (an admin of every organization of tenant 0: hundreds of documents, reached through
/// organizations and folders) and `user:t0_u40` (a plain member), cold and hot.
fn lookup_resources_streamed(c: &mut Criterion) {
    let rt = runtime();
    // RocksDB: its reverse index answers the walk's reads by prefix (the memory datastore
    // scans every relationship of a type and relation for each).
    let scenario = workload_s_in(Engine::Rocks);
    let mut g = c.benchmark_group("lookup_resources_streamed/workload_s");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for ((name, id), cached) in [("tenant_admin", "t0_u5"), ("member", "t0_u40")]
        .into_iter()
        .flat_map(|s| [(s, false), (s, true)])
    {
        let ctx = scenario.ctx(cached);
        let subject = user(id);
        let stream = |limit: usize| {
            let mut found = Vec::new();
            rt.block_on(eval::lookup_resources_with(
                &ctx,
                "document",
                "view",
                &subject,
                LookupOrder::Walk { after: None },
                |r| {
                    found.push(r.resource_id);
                    found.len() < limit
                },
            ))
            .unwrap();
            found
        };
        let mut all = stream(usize::MAX);
        all.sort();
        let listed: Vec<String> = rt
            .block_on(eval::lookup_resources(&ctx, "document", "view", &subject))
            .unwrap()
            .into_iter()
            .map(|r| r.resource_id)
            .collect();
        assert!(
            !all.is_empty() && all == listed,
            "{id}: streamed {} results",
            all.len()
        );
        let temp = if cached { "hot" } else { "cold" };
        g.bench_function(BenchmarkId::new(format!("{name}/first/{temp}"), 1), |b| {
            b.iter(|| stream(1))
        });
        g.bench_function(
            BenchmarkId::new(format!("{name}/all/{temp}"), all.len()),
            |b| b.iter(|| stream(usize::MAX)),
        );
    }
    g.finish();
}

/// Workload `s`: every user who may view document `t0_o10_f0_d0` (deepest org of tenant 0:
/// the admins of its 5 ancestor orgs and their admin teams, folder grants, platform staff).
fn lookup_subjects(c: &mut Criterion) {
    let rt = runtime();
    let ctx = workload_s().ctx(false);
    let doc = obj("document:t0_o10_f0_d0");
    let found = rt
        .block_on(eval::lookup_subjects(&ctx, &doc, "view", "user", None))
        .unwrap();
    for want in ["t0_u5", "staff0"] {
        assert!(
            found.iter().any(|s| s.subject_id == want),
            "lookup_subjects misses {want}"
        );
    }
    let mut g = c.benchmark_group("lookup_subjects/workload_s");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.bench_function(BenchmarkId::new("document_view", found.len()), |b| {
        b.iter(|| {
            rt.block_on(eval::lookup_subjects(&ctx, &doc, "view", "user", None))
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    check_workload_s,
    check_org_depth,
    check_team_depth,
    check_rocksdb_org_and_team_depth,
    bulk_check,
    lookup_resources,
    lookup_resources_streamed,
    lookup_subjects
);
criterion_main!(benches);
