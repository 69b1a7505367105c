//! External conformance: SpiceDB's own validation files (see
//! `../shared/conformance/spicedb/README.md`), run through the validator library, plus
//! mutants of every passing file that must fail. Caveated assertions are decided by caveat
//! evaluation, so no file is skipped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod spicedb {
    use std::path::{Path, PathBuf};

    use arbor::validate::{self, Outcome, Report, ValidateError};
    use serde::Deserialize;
    use serde_yaml::Value;

    #[derive(Debug, Deserialize)]
    struct Corpus {
        files: Vec<CorpusFile>,
    }

    #[derive(Debug, Deserialize)]
    pub(super) struct CorpusFile {
        pub(super) path: String,
        pub(super) expect: String,
    }

    fn corpus_dir() -> PathBuf {
        match std::env::var_os("ARBOR_CONFORMANCE_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../shared/conformance/spicedb"
            )),
        }
    }

    pub(super) fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    pub(super) fn load_corpus() -> (PathBuf, Vec<CorpusFile>) {
        let dir = corpus_dir();
        let text = std::fs::read_to_string(dir.join("corpus.json"))
            .unwrap_or_else(|e| panic!("cannot read {}/corpus.json: {e}", dir.display()));
        let corpus: Corpus = serde_json::from_str(&text).unwrap();
        (dir, corpus.files)
    }

    /// What happened to one corpus file.
    enum Verdict {
        Passed,
        Failed(String),
    }

    fn judge(expect: &str, result: Result<Report, ValidateError>) -> Verdict {
        match (expect, result) {
            ("pass", Ok(report)) => match report.outcome() {
                Outcome::Passed => Verdict::Passed,
                Outcome::Failed => Verdict::Failed(report.render()),
            },
            ("pass", Err(e)) => Verdict::Failed(format!("could not be loaded: {e}")),
            ("reject", Err(e)) => {
                let message = e.kind.to_string();
                if message.trim().is_empty() {
                    Verdict::Failed("rejected without a message".to_string())
                } else {
                    println!("  rejected as expected: {e}");
                    Verdict::Passed
                }
            }
            ("reject", Ok(report)) => Verdict::Failed(format!(
                "expected to be rejected, but it loaded:\n{}",
                report.render()
            )),
            (other, _) => Verdict::Failed(format!("unknown expectation `{other}` in corpus.json")),
        }
    }

    /// Every file of the corpus gives its expected verdict; none is skipped (caveats and
    /// expiration are evaluated, so every assertion is decided).
    #[test]
    fn corpus_files_hold() {
        let (dir, files) = load_corpus();
        let rt = runtime();
        let (mut passed, mut failed) = (Vec::new(), Vec::new());
        for f in &files {
            let result = rt.block_on(validate::run_file(&dir.join(&f.path)));
            match judge(&f.expect, result) {
                Verdict::Passed => passed.push(f.path.clone()),
                Verdict::Failed(why) => failed.push((f.path.clone(), why)),
            }
        }
        let skipped = files.len() - passed.len() - failed.len();
        println!(
            "{} passed, {} failed, {skipped} skipped",
            passed.len(),
            failed.len(),
        );
        for (path, why) in &failed {
            println!("FAILED {path}: {why}");
        }
        assert!(failed.is_empty(), "{} corpus files failed", failed.len());
        assert_eq!(skipped, 0);
        assert_eq!(passed.len(), files.len());
    }

    /// Every copy of the file with one `assertTrue` item moved to `assertFalse` or one
    /// `assertFalse` item moved to `assertTrue`, each named.
    fn flipped_assertions(doc: &Value) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for (from, to) in [("assertTrue", "assertFalse"), ("assertFalse", "assertTrue")] {
            let count = doc["assertions"][from].as_sequence().map_or(0, Vec::len);
            for index in 0..count {
                let mut mutant = doc.clone();
                let assertions = mutant["assertions"].as_mapping_mut().unwrap();
                let item = assertions[from].as_sequence_mut().unwrap().remove(index);
                let name = format!(
                    "`{}` moved from {from} to {to}",
                    item.as_str().unwrap_or("?")
                );
                match assertions.get_mut(to).and_then(Value::as_sequence_mut) {
                    Some(items) => items.push(item),
                    None => {
                        assertions.insert(Value::from(to), Value::Sequence(vec![item]));
                    }
                }
                out.push((name, mutant));
            }
        }
        out
    }

    /// Every copy of the file with one expected subject dropped from a validation entry.
    fn dropped_expected_subjects(doc: &Value) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        let Some(validation) = doc["validation"].as_mapping() else {
            return out;
        };
        for (key, subjects) in validation {
            let count = subjects.as_sequence().map_or(0, Vec::len);
            for index in 0..count {
                let mut mutant = doc.clone();
                let items = mutant["validation"][key].as_sequence_mut().unwrap();
                let item = items.remove(index);
                let name = format!(
                    "`{}` dropped from `{}`",
                    item.as_str().unwrap_or("?"),
                    key.as_str().unwrap_or("?")
                );
                out.push((name, mutant));
            }
        }
        out
    }

    #[test]
    fn mutants_of_passing_files_fail() {
        let (dir, files) = load_corpus();
        let rt = runtime();
        let mut checked = 0;
        let mut survivors = Vec::new();
        for f in files.iter().filter(|f| f.expect == "pass") {
            let path = dir.join(&f.path);
            let Ok(report) = rt.block_on(validate::run_file(&path)) else {
                continue;
            };
            if report.outcome() != Outcome::Passed {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let doc: Value = serde_yaml::from_str(&text).unwrap();
            let base = path.parent().unwrap_or(Path::new("."));
            let mutants = flipped_assertions(&doc)
                .into_iter()
                .chain(dropped_expected_subjects(&doc));
            for (what, mutant) in mutants {
                let mutant_text = serde_yaml::to_string(&mutant).unwrap();
                let name = format!("{} ({what})", f.path);
                checked += 1;
                match rt.block_on(validate::run_text(&name, &mutant_text, base)) {
                    Ok(r) if r.outcome() == Outcome::Failed => {}
                    Ok(r) => survivors.push(format!("{name}: {:?}\n{}", r.outcome(), r.render())),
                    Err(e) => survivors.push(format!("{name}: could not be loaded: {e}")),
                }
            }
        }
        println!("{checked} mutants checked, {} survived", survivors.len());
        for s in &survivors {
            println!("SURVIVED {s}");
        }
        assert!(checked > 0, "no passing file to mutate");
        assert!(
            survivors.is_empty(),
            "{} mutants did not fail",
            survivors.len()
        );
    }
}

/// Every operation must agree with every other on the corpus data: for every resource and
/// relation or permission of the files that pass, and every concrete subject in them, `check`
/// and the flattened recursive `expand` (which `validation:` blocks are judged by) must give
/// the same has / has-not / conditional answer — before caveat evaluation (the dispatch
/// chain's answer against the flattened tree's markers) and after it (`check` against the
/// tree's caveat formulas evaluated in three-valued logic).
mod expand_vs_check {
    use std::collections::BTreeSet;

    use arbor::eval::{self, CaveatExpr, EvalContext, Permissionship};
    use arbor::model::{ObjectRef, SubjectRef, Timestamp};
    use arbor::validate::{self, ExpandedSubject, ResourceRelation, ValidationFile};

    use super::spicedb::{load_corpus, runtime};

    /// What the flattened expand says about one concrete subject.
    fn verdict_from_expand(found: &[ExpandedSubject], subject: &SubjectRef) -> &'static str {
        let direct = found
            .iter()
            .find(|f| &f.subject == subject)
            .map(|f| f.caveat.is_some());
        let via_wildcard = found
            .iter()
            .find(|f| {
                f.subject.is_wildcard()
                    && f.subject.object_type() == subject.object_type()
                    && f.subject.relation().is_none()
            })
            .and_then(|w| match w.excluded.iter().find(|(e, _)| e == subject) {
                None => Some(w.caveat.is_some()),
                Some((_, None)) => None,
                Some((_, Some(_))) => Some(true),
            });
        match (direct, via_wildcard) {
            (Some(false), _) | (_, Some(false)) => "has",
            (None, None) => "has not",
            _ => "conditional",
        }
    }

    /// Three-valued truth.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Tv {
        True,
        False,
        Unknown,
    }

    impl Tv {
        fn and(self, other: Tv) -> Tv {
            match (self, other) {
                (Tv::False, _) | (_, Tv::False) => Tv::False,
                (Tv::True, Tv::True) => Tv::True,
                _ => Tv::Unknown,
            }
        }

        fn or(self, other: Tv) -> Tv {
            match (self, other) {
                (Tv::True, _) | (_, Tv::True) => Tv::True,
                (Tv::False, Tv::False) => Tv::False,
                _ => Tv::Unknown,
            }
        }

        fn not(self) -> Tv {
            match self {
                Tv::True => Tv::False,
                Tv::False => Tv::True,
                Tv::Unknown => Tv::Unknown,
            }
        }

        fn of(p: &Permissionship) -> Tv {
            match p {
                Permissionship::Has => Tv::True,
                Permissionship::HasNot => Tv::False,
                Permissionship::Conditional(_) => Tv::Unknown,
            }
        }
    }

    /// A member's condition, evaluated.
    fn condition(ctx: &EvalContext, caveat: &Option<CaveatExpr>) -> Tv {
        match caveat {
            None => Tv::True,
            Some(expr) => Tv::of(&eval::evaluate_caveats(ctx, expr).unwrap()),
        }
    }

    /// What the flattened expand's formulas, evaluated, say about one concrete subject.
    fn evaluated_from_expand(
        ctx: &EvalContext,
        found: &[ExpandedSubject],
        subject: &SubjectRef,
    ) -> Tv {
        let direct = found
            .iter()
            .find(|f| &f.subject == subject)
            .map_or(Tv::False, |f| condition(ctx, &f.caveat));
        let via_wildcard = found
            .iter()
            .find(|f| {
                f.subject.is_wildcard()
                    && f.subject.object_type() == subject.object_type()
                    && f.subject.relation().is_none()
            })
            .map_or(Tv::False, |w| {
                let excluded = w
                    .excluded
                    .iter()
                    .find(|(e, _)| e == subject)
                    .map_or(Tv::False, |(_, c)| condition(ctx, c));
                condition(ctx, &w.caveat).and(excluded.not())
            });
        direct.or(via_wildcard)
    }

    fn verdict_from_check(p: &Permissionship) -> &'static str {
        match p {
            Permissionship::Has => "has",
            Permissionship::HasNot => "has not",
            Permissionship::Conditional(_) => "conditional",
        }
    }

    #[test]
    fn expand_agrees_with_check() {
        let (dir, files) = load_corpus();
        let rt = runtime();
        let mut compared = 0usize;
        let mut disagreements = Vec::new();
        for f in files.iter().filter(|f| f.expect == "pass") {
            let Ok(file) = ValidationFile::load(&dir.join(&f.path)) else {
                continue;
            };
            let Ok(ctx) = validate::load(&file, Timestamp::now()) else {
                continue;
            };
            let mut objects: BTreeSet<ObjectRef> = BTreeSet::new();
            for r in &file.relationships {
                objects.insert(r.relationship.resource().clone());
                if !r.relationship.subject().is_wildcard() {
                    objects.insert(r.relationship.subject().object().clone());
                }
            }
            let subjects: Vec<SubjectRef> = objects
                .iter()
                .cloned()
                .map(SubjectRef::from_object)
                .collect();
            for resource in &objects {
                let Some(def) = ctx.schema().definition(resource.object_type()) else {
                    continue;
                };
                let relations: Vec<String> =
                    def.relations().map(|r| r.name().to_string()).collect();
                for relation in relations {
                    let target = ResourceRelation {
                        resource: resource.clone(),
                        relation: relation.clone(),
                    };
                    let found = match rt.block_on(validate::expand_subjects(&ctx, &target)) {
                        Ok(found) => found,
                        Err(e) => {
                            disagreements.push(format!("{}: expand {target} failed: {e}", f.path));
                            continue;
                        }
                    };
                    for subject in &subjects {
                        // Before caveat evaluation: the dispatch chain's answer.
                        let raw = rt.block_on(ctx.dispatch().check(
                            &ctx,
                            resource,
                            &relation,
                            subject,
                            ctx.max_depth(),
                        ));
                        let evaluated =
                            rt.block_on(eval::check(&ctx, resource, &relation, subject));
                        let (raw, evaluated) = match (raw, evaluated) {
                            (Ok(raw), Ok(evaluated)) => (raw, evaluated),
                            (Err(e), _) | (_, Err(e)) => {
                                disagreements.push(format!(
                                    "{}: check {target}@{subject} failed: {e}",
                                    f.path
                                ));
                                continue;
                            }
                        };
                        let checked = verdict_from_check(&raw.permissionship);
                        let expanded = verdict_from_expand(&found, subject);
                        compared += 1;
                        if checked != expanded {
                            disagreements.push(format!(
                                "{}: {target}@{subject}: check says {checked}, expand says {expanded}",
                                f.path
                            ));
                        }
                        let checked = Tv::of(&evaluated.permissionship);
                        let expanded = evaluated_from_expand(&ctx, &found, subject);
                        if checked != expanded {
                            disagreements.push(format!(
                                "{}: {target}@{subject}: evaluated check says {checked:?}, evaluated expand says {expanded:?}",
                                f.path
                            ));
                        }
                    }
                }
            }
        }
        println!(
            "{compared} (resource, permission, subject) triples compared, {} disagreements",
            disagreements.len()
        );
        for d in &disagreements {
            println!("DISAGREE {d}");
        }
        assert!(compared > 0);
        assert!(
            disagreements.is_empty(),
            "{} disagreements between check and expand",
            disagreements.len()
        );
    }
}

/// The evaluator's answers must not depend on the datastore: every corpus file, run with its
/// relationships loaded into a RocksDB data directory, gives the same report (or the same load
/// error) as with the in-memory store.
mod on_rocksdb {
    use arbor::model::Timestamp;
    use arbor::store::rocks::{RocksDatastore, RocksOptions};
    use arbor::validate::{self, ValidationFile};

    use super::spicedb::{load_corpus, runtime};

    #[test]
    fn corpus_reports_are_the_same_on_rocksdb() {
        let (dir, files) = load_corpus();
        let rt = runtime();
        let mut compared = 0;
        for f in &files {
            let Ok(file) = ValidationFile::load(&dir.join(&f.path)) else {
                continue;
            };
            let now = Timestamp::now();
            let data = tempfile::tempdir().unwrap();
            let options = RocksOptions {
                gc_interval: None,
                ..RocksOptions::default()
            };
            let rocks = RocksDatastore::open(data.path(), options).unwrap();
            let on_memory = rt.block_on(validate::run(&file, now));
            let on_rocks = rt.block_on(validate::run_on(&file, now, &rocks));
            match (on_memory, on_rocks) {
                (Ok(m), Ok(r)) => assert_eq!(m.render(), r.render(), "{}", f.path),
                (Err(m), Err(r)) => assert_eq!(m, r, "{}", f.path),
                (m, r) => panic!("{}: memory {m:?}, rocksdb {r:?}", f.path),
            }
            compared += 1;
        }
        println!("{compared} corpus files gave the same report on both datastores");
        assert!(compared > 0);
    }
}
