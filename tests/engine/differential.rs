//! Differential test against SpiceDB: every check of the committed workloads `xs` (1,000
//! checks) and `s` (10,000), answered by `eval::check`, must equal SpiceDB's answer in
//! `expected.txt` (recorded with `fully_consistent` by `spicedb_peer.py expected`), with the
//! relationships loaded into the memory datastore and into a RocksDB one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arbor::eval::{self, DEFAULT_MAX_DEPTH, EvalContext, Permissionship};
use arbor::model::{ObjectRef, Relationship, SubjectRef};

/// Where `shared/workloads/data` sits: beside the repository.
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/workloads/data");

/// At most this many differing lines are printed (all are counted).
const SHOWN_DIFFERENCES: usize = 30;

fn read(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); the workloads live in shared/workloads/data beside the repository",
            path.display()
        )
    })
}

/// Non-empty lines that are not `//` comments.
fn data_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
}

/// SpiceDB's word for a permissionship.
fn word(p: &Permissionship) -> &'static str {
    match p {
        Permissionship::Has => "true",
        Permissionship::HasNot => "false",
        Permissionship::Conditional(_) => "conditional",
    }
}

/// One check of `checks.txt`: `type:id#permission@type:id` has the shape of a relationship.
struct Check {
    line: String,
    resource: ObjectRef,
    permission: String,
    subject: SubjectRef,
}

fn parse_check(line: &str) -> Check {
    let rel = Relationship::parse(line).unwrap_or_else(|e| panic!("check `{line}`: {e}"));
    Check {
        line: line.to_string(),
        resource: rel.resource().clone(),
        permission: rel.relation().to_string(),
        subject: rel.subject().clone(),
    }
}

/// Answers every check, spread over one task per core; returns the answers in order.
fn answer_all(ctx: Arc<EvalContext>, checks: Arc<Vec<Check>>) -> Vec<String> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let chunk = checks.len().div_ceil(workers).max(1);
        let mut tasks = Vec::new();
        for start in (0..checks.len()).step_by(chunk) {
            let ctx = Arc::clone(&ctx);
            let checks = Arc::clone(&checks);
            tasks.push(tokio::spawn(async move {
                let end = (start + chunk).min(checks.len());
                let mut out = Vec::with_capacity(end - start);
                for c in &checks[start..end] {
                    let answer =
                        match eval::check(&ctx, &c.resource, &c.permission, &c.subject).await {
                            Ok(r) => word(&r.permissionship).to_string(),
                            Err(e) => format!("error: {e}"),
                        };
                    out.push(answer);
                }
                out
            }));
        }
        let mut answers = Vec::with_capacity(checks.len());
        for t in tasks {
            answers.extend(t.await.unwrap());
        }
        answers
    })
}

/// Loads workload `size` into `engine`, answers all its checks and compares them with
/// SpiceDB's.
fn agrees_with_spicedb(size: &str, engine: crate::Engine) {
    let dir = PathBuf::from(DATA).join(size);
    let started = Instant::now();
    let schema = crate::compile(&read(&dir, "schema.zed"));
    let rels: Vec<Relationship> = data_lines(&read(&dir, "relationships.txt"))
        .map(|l| Relationship::parse(l).unwrap_or_else(|e| panic!("relationship `{l}`: {e}")))
        .collect();
    let (ctx, _dir) = crate::load_on(engine, schema, &rels, DEFAULT_MAX_DEPTH);
    let ctx = Arc::new(ctx);
    let loaded = started.elapsed();

    let checks: Vec<Check> = data_lines(&read(&dir, "checks.txt"))
        .map(parse_check)
        .collect();
    let expected: Vec<(String, String)> = data_lines(&read(&dir, "expected.txt"))
        .map(|l| {
            let (check, answer) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("expected.txt line without a tab: `{l}`"));
            (check.to_string(), answer.to_string())
        })
        .collect();
    assert_eq!(
        checks.len(),
        expected.len(),
        "{size}: checks.txt and expected.txt differ in length"
    );
    for (c, (e, _)) in checks.iter().zip(&expected) {
        assert_eq!(
            &c.line, e,
            "{size}: checks.txt and expected.txt are not aligned"
        );
    }

    let checks = Arc::new(checks);
    let t = Instant::now();
    let answers = answer_all(ctx, Arc::clone(&checks));
    let evaluated = t.elapsed();

    let mut differences = Vec::new();
    for ((check, (_, want)), got) in checks.iter().zip(&expected).zip(&answers) {
        if got != want {
            differences.push(format!("{}\tspicedb: {want}\tarbor: {got}", check.line));
        }
    }
    let trues = expected.iter().filter(|(_, a)| a == "true").count();
    // Durations are printed to size the test, not asserted: speed is the benchmarks' job.
    println!(
        "{size} on {engine:?}: {} relationships loaded in {loaded:.2?}; {} checks ({trues} true in SpiceDB's \
         answers) evaluated in {evaluated:.2?}; {} equal to SpiceDB's, {} different",
        rels.len(),
        checks.len(),
        checks.len() - differences.len(),
        differences.len()
    );
    assert!(
        differences.is_empty(),
        "{size}: {} of {} checks differ from SpiceDB (first {}):\n{}",
        differences.len(),
        checks.len(),
        SHOWN_DIFFERENCES.min(differences.len()),
        differences[..SHOWN_DIFFERENCES.min(differences.len())].join("\n")
    );
}

#[test]
fn workload_xs_agrees_with_spicedb() {
    agrees_with_spicedb("xs", crate::Engine::Memory);
}

#[test]
fn workload_s_agrees_with_spicedb() {
    agrees_with_spicedb("s", crate::Engine::Memory);
}

#[test]
fn workload_xs_agrees_with_spicedb_on_rocksdb() {
    agrees_with_spicedb("xs", crate::Engine::Rocks);
}

#[test]
fn workload_s_agrees_with_spicedb_on_rocksdb() {
    agrees_with_spicedb("s", crate::Engine::Rocks);
}
