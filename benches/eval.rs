//! Evaluator benchmarks: named scenarios, each described by the shape of its data, each
//! checking its answer once before it is timed. Run with `cargo bench --bench eval`
//! (`-- check/org_depth` to run one group). Every scenario runs twice: `cold` with the dispatch
//! cache off (every iteration evaluates from scratch) and `hot` with it on (after the first
//! iteration, answers come from the cache of the same revision).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arbor::eval::{self, DispatchConfig, EvalConfig, EvalContext, Permissionship};
use arbor::model::{ObjectRef, Relationship, SubjectRef, Timestamp};
use arbor::schema;
use arbor::store::memory::MemoryDatastore;
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

/// A loaded scenario: a snapshot at the head of a memory datastore.
struct Scenario {
    snapshot: Arc<dyn Snapshot>,
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

/// A memory datastore with `schema_text` and `relationships`.
fn load(schema_text: &str, relationships: &[String]) -> Scenario {
    let schema = Arc::new(schema::compile(schema_text).unwrap_or_else(|e| panic!("{e}")));
    let rels: Vec<Relationship> = relationships
        .iter()
        .map(|l| Relationship::parse(l).unwrap_or_else(|e| panic!("`{l}`: {e}")))
        .collect();
    let store = MemoryDatastore::new();
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
    }
}

/// Workload `s` (20,019 relationships: 6 tenants, 107 organizations up to 5 levels deep, 993
/// teams nested up to 4 levels, 595 folders, 2,621 documents, 861 users).
fn workload_s() -> Scenario {
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
    load(&read("schema.zed"), &rels)
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
    lookup_resources,
    lookup_subjects
);
criterion_main!(benches);
