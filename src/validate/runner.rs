//! Running a validation file: compile the schema, check and load the relationships into a
//! fresh in-memory datastore, run every assertion with `check` (its `with {...}` context as
//! the request's caveat context) and every `validation:` entry with a recursive `expand`, and
//! collect the results into a `Report`.

use std::path::Path;
use std::sync::Arc;

use crate::eval::{self, EvalConfig, EvalContext, EvalError, ExpandMode, Permissionship};
use crate::model::Timestamp;
use crate::schema::{self, Schema};
use crate::store::memory::MemoryDatastore;
use crate::store::{Datastore, StoreError};

use super::error::{ErrorKind, ValidateError};
use super::expected::ResourceRelation;
use super::file::{Assertion, AssertionKind, ExpectedEntry, ValidationFile};
use super::membership::{ExpandedSubject, SubjectSet};
use super::report::{CheckKind, Failure, Report};

/// Reads, loads and runs the validation file at `path`, evaluating at the current time.
pub async fn run_file(path: &Path) -> Result<Report, ValidateError> {
    let file = ValidationFile::load(path)?;
    run(&file, Timestamp::now()).await
}

/// Runs validation-file text named `name` (for messages); a `schemaFile` is resolved
/// against `base_dir`. Evaluates at the current time.
pub async fn run_text(name: &str, text: &str, base_dir: &Path) -> Result<Report, ValidateError> {
    let file = ValidationFile::parse(name, text, base_dir)?;
    run(&file, Timestamp::now()).await
}

/// Runs a parsed validation file, evaluating at `now` (relationships expired at `now` do not
/// count). A file that cannot be loaded (schema or relationship errors) is an `Err`; failing
/// checks are in the `Report`.
pub async fn run(file: &ValidationFile, now: Timestamp) -> Result<Report, ValidateError> {
    run_on(file, now, &MemoryDatastore::new()).await
}

/// As [`run`], loading into `datastore` (empty) instead of a fresh in-memory one, so the
/// same files run on every datastore.
pub async fn run_on(
    file: &ValidationFile,
    now: Timestamp,
    datastore: &dyn Datastore,
) -> Result<Report, ValidateError> {
    let ctx = load_into(file, now, datastore)?;
    tracing::debug!(
        file = %file.name,
        relationships = file.relationships.len(),
        assertions = file.assertions.len(),
        validation_entries = file.validation.len(),
        "validation file loaded"
    );
    let mut report = Report {
        file: file.name.clone(),
        relationships: file.relationships.len(),
        ..Report::default()
    };
    for assertion in &file.assertions {
        report.assertions += 1;
        run_assertion(&ctx, assertion, &mut report).await;
    }
    for entry in &file.validation {
        report.validation_entries += entry.subjects.len().max(1);
        run_validation(&ctx, entry, &mut report).await;
    }
    Ok(report)
}

/// Compiles the file's schema, checks every relationship against it and loads both into a
/// fresh in-memory datastore; returns the context to evaluate against, at `now`.
pub fn load(file: &ValidationFile, now: Timestamp) -> Result<EvalContext, ValidateError> {
    load_into(file, now, &MemoryDatastore::new())
}

/// As [`load`], into `datastore` (empty) instead of a fresh in-memory one.
pub fn load_into(
    file: &ValidationFile,
    now: Timestamp,
    datastore: &dyn Datastore,
) -> Result<EvalContext, ValidateError> {
    let schema = Arc::new(compile_schema(file)?);
    for r in &file.relationships {
        schema.validate_relationship(&r.relationship).map_err(|e| {
            ValidateError::new(
                &file.name,
                Some(r.position),
                ErrorKind::NotAllowed {
                    text: r.text.clone(),
                    message: e.to_string(),
                },
            )
        })?;
    }

    let store_err =
        |e: StoreError| ValidateError::new(&file.name, None, ErrorKind::Store(e.to_string()));
    let revision = datastore
        .write(&mut |txn| {
            txn.write_schema(Arc::clone(&schema))?;
            for r in &file.relationships {
                txn.create(r.relationship.clone())?;
            }
            Ok(())
        })
        .map_err(store_err)?;
    let snapshot = datastore.snapshot(revision).map_err(store_err)?;
    EvalContext::new(snapshot, eval::dispatch_chain(), EvalConfig::default(), now)
        .map_err(|e| ValidateError::new(&file.name, None, ErrorKind::Store(e.to_string())))
}

/// Every subject that has `target` (a resource and permission or relation): a recursive
/// expand, flattened as SpiceDB's developer validation flattens it, ordered by subject type,
/// relation and id. Expected-subject strings are compared against these.
pub async fn expand_subjects(
    ctx: &EvalContext,
    target: &ResourceRelation,
) -> Result<Vec<ExpandedSubject>, EvalError> {
    let tree = eval::expand(
        ctx,
        &target.resource,
        &target.relation,
        ExpandMode::Recursive,
    )
    .await?;
    Ok(SubjectSet::from_tree(&tree).subjects())
}

fn compile_schema(file: &ValidationFile) -> Result<Schema, ValidateError> {
    schema::compile(&file.schema.text).map_err(|errors| {
        let mut located = errors.0.iter().map(|e| {
            let (name, pos) = file.schema.locate(&file.name, e.span);
            (name, pos, e.message.clone())
        });
        let Some((name, position, message)) = located.next() else {
            return ValidateError::new(
                &file.name,
                None,
                ErrorKind::Schema {
                    message: "the schema does not compile".to_string(),
                    others: Vec::new(),
                },
            );
        };
        let others = located
            .map(|(n, p, m)| match p {
                Some(p) => format!("{n}:{p}: {m}"),
                None => format!("{n}: {m}"),
            })
            .collect();
        ValidateError::new(&name, position, ErrorKind::Schema { message, others })
    })
}

fn check_kind(kind: AssertionKind) -> CheckKind {
    match kind {
        AssertionKind::True => CheckKind::AssertTrue,
        AssertionKind::False => CheckKind::AssertFalse,
        AssertionKind::Caveated => CheckKind::AssertCaveated,
    }
}

fn describe(ctx: &EvalContext, p: &Permissionship) -> String {
    match p {
        Permissionship::Has => "has the permission".to_string(),
        Permissionship::HasNot => "does not have the permission".to_string(),
        Permissionship::Conditional(expr) => {
            let missing = eval::missing_context(ctx, expr)
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ");
            format!("conditional on caveats ({expr}), missing context {missing}")
        }
    }
}

// As SpiceDB's developer assertions (`pkg/development/assertions.go`): the check runs with the
// assertion's context as the request's caveat context; `assertTrue` needs the permission,
// `assertFalse` its absence, `assertCaveated` a conditional answer (the caveats still need
// context that was not given).
async fn run_assertion(ctx: &EvalContext, assertion: &Assertion, report: &mut Report) {
    let check = check_kind(assertion.kind);
    let fail = |message: String, expected: Option<String>, actual: Option<String>| Failure {
        check,
        position: assertion.position,
        message,
        expected,
        actual,
    };
    let rel = &assertion.relationship;
    if rel.caveat().is_some() {
        report.failures.push(fail(
            format!("cannot give a caveat on an assertion: `{}`", assertion.text),
            None,
            None,
        ));
        return;
    }
    let ctx = ctx
        .clone()
        .with_caveat_context(assertion.context.clone().unwrap_or_default());
    let result = match eval::check(&ctx, rel.resource(), rel.relation(), rel.subject()).await {
        Ok(r) => r.permissionship,
        Err(e) => {
            report.failures.push(fail(
                format!("`{}` could not be checked: {e}", assertion.text),
                None,
                None,
            ));
            return;
        }
    };
    let expected_text = match assertion.kind {
        AssertionKind::True => "has the permission",
        AssertionKind::False => "does not have the permission",
        AssertionKind::Caveated => "conditional on caveats (missing context)",
    };
    let holds = matches!(
        (&result, assertion.kind),
        (Permissionship::Has, AssertionKind::True)
            | (Permissionship::HasNot, AssertionKind::False)
            | (Permissionship::Conditional(_), AssertionKind::Caveated)
    );
    if !holds {
        report.failures.push(fail(
            format!("`{}` does not hold", assertion.text),
            Some(expected_text.to_string()),
            Some(describe(&ctx, &result)),
        ));
    }
}

/// How a found subject is written in a validation block, with its resources.
// Comparison follows SpiceDB's developer validation (`pkg/development/validation.go`), which
// is what `zed validate` runs: every listed subject must be found, with the same set of
// resources (`is <...>/<...>`, order-insensitive), the same exclusions (for a wildcard) and the
// same caveat marker; and every subject found must be listed. So the relations after `is` are
// compared too, not only the subject set.
async fn run_validation(ctx: &EvalContext, entry: &ExpectedEntry, report: &mut Report) {
    let fail_at =
        |position, message: String, expected: Option<String>, actual: Option<String>| Failure {
            check: CheckKind::Validation,
            position,
            message,
            expected,
            actual,
        };
    let target = &entry.target;
    let tree = match eval::expand(
        ctx,
        &target.resource,
        &target.relation,
        ExpandMode::Recursive,
    )
    .await
    {
        Ok(t) => t,
        Err(e) => {
            report.failures.push(fail_at(
                entry.position,
                format!("`{}` could not be expanded: {e}", entry.key),
                None,
                None,
            ));
            return;
        }
    };
    let found = SubjectSet::from_tree(&tree);
    let mut listed = std::collections::BTreeSet::new();

    for line in &entry.subjects {
        let Some(expected) = &line.parsed.subject else {
            report.failures.push(fail_at(
                line.position,
                format!(
                    "for `{}`, no expected subject is given in `{}`",
                    entry.key, line.text
                ),
                None,
                None,
            ));
            continue;
        };
        let subject = &expected.subject.subject;
        listed.insert(subject.to_string());
        let Some(actual) = found.get(subject) else {
            report.failures.push(fail_at(
                line.position,
                format!(
                    "for `{}`, expected subject `{subject}` does not have it",
                    entry.key
                ),
                Some(line.text.clone()),
                Some(found_summary(&found)),
            ));
            continue;
        };

        let mut expected_resources: Vec<String> = line
            .parsed
            .resources
            .iter()
            .map(ToString::to_string)
            .collect();
        expected_resources.sort();
        expected_resources.dedup();
        let actual_resources = actual.resources.clone();
        if expected_resources != actual_resources {
            report.failures.push(fail_at(
                line.position,
                format!(
                    "for `{}`, subject `{subject}` is found through different resources",
                    entry.key
                ),
                Some(wrap(&expected_resources, "/")),
                Some(wrap(&actual_resources, "/")),
            ));
        }

        let mut expected_exclusions: Vec<String> = expected
            .exclusions
            .iter()
            .map(ToString::to_string)
            .collect();
        expected_exclusions.sort();
        if subject.is_wildcard() {
            let actual_exclusions = actual.exclusion_texts();
            if expected_exclusions != actual_exclusions {
                report.failures.push(fail_at(
                    line.position,
                    format!(
                        "for `{}`, wildcard `{subject}` has different exclusions",
                        entry.key
                    ),
                    Some(format!("{{{}}}", expected_exclusions.join(", "))),
                    Some(format!("{{{}}}", actual_exclusions.join(", "))),
                ));
            }
        } else if !expected_exclusions.is_empty() {
            report.failures.push(fail_at(
                line.position,
                format!(
                    "for `{}`, subject `{subject}` is not a wildcard and cannot have exclusions",
                    entry.key
                ),
                Some(line.text.clone()),
                Some(actual.validation_string()),
            ));
        }

        let actual_caveated = actual.caveat.is_some();
        if actual_caveated != expected.subject.caveated {
            let how = |c: bool| {
                if c {
                    "conditional on a caveat (`[...]`)"
                } else {
                    "unconditional"
                }
            };
            report.failures.push(fail_at(
                line.position,
                format!(
                    "for `{}`, subject `{subject}` has a different caveat marker",
                    entry.key
                ),
                Some(how(expected.subject.caveated).to_string()),
                Some(format!(
                    "{}: {}",
                    how(actual_caveated),
                    actual.validation_string()
                )),
            ));
        }
    }

    for subject in found.subjects() {
        if !listed.contains(&subject.subject.to_string()) {
            report.failures.push(fail_at(
                entry.position,
                format!(
                    "for `{}`, subject `{}` has it but is not listed",
                    entry.key, subject.subject
                ),
                None,
                Some(subject.validation_string()),
            ));
        }
    }
}

fn wrap(items: &[String], sep: &str) -> String {
    if items.is_empty() {
        return "(none)".to_string();
    }
    items
        .iter()
        .map(|i| format!("<{i}>"))
        .collect::<Vec<_>>()
        .join(sep)
}

fn found_summary(found: &SubjectSet) -> String {
    let lines: Vec<String> = found
        .subjects()
        .iter()
        .map(ExpandedSubject::validation_string)
        .collect();
    if lines.is_empty() {
        "no subject has it".to_string()
    } else {
        lines.join("; ")
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;
    use crate::validate::locate::Position;
    use crate::validate::report::Outcome;

    const SCHEMA: &str = "schema: |-
  use expiration
  definition user {}
  caveat cav(a int) {
    a == 1
  }
  definition document {
    relation viewer: user | user:* | user with cav | user with expiration
    relation banned: user
    permission view = viewer - banned
  }
";

    fn run_yaml(rest: &str) -> Report {
        let text = format!("{SCHEMA}{rest}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run_text("t.yaml", &text, Path::new(".")))
            .unwrap()
    }

    #[test]
    fn passes_and_fails() {
        let ok = run_yaml(
            "relationships: |-
  document:a#viewer@user:tom
  document:a#viewer@user:old[expiration:2020-01-01T00:00:00Z]
  document:a#viewer@user:new[expiration:2999-01-01T00:00:00Z]
assertions:
  assertTrue:
    - document:a#view@user:tom
    - document:a#view@user:new
  assertFalse:
    - document:a#view@user:old
validation:
  document:a#view:
    - \"[user:new] is <document:a#viewer>\"
    - \"[user:tom] is <document:a#viewer>\"
",
        );
        assert_eq!(ok.outcome(), Outcome::Passed, "{}", ok.render());

        let failed = run_yaml(
            "relationships: |-
  document:a#viewer@user:tom
assertions:
  assertFalse:
    - document:a#view@user:tom
",
        );
        assert_eq!(failed.outcome(), Outcome::Failed);
        assert_eq!(failed.failures[0].position, Position::new(16, 7));

        // Caveats are evaluated with the assertion's context as the request's context.
        let caveated = run_yaml(
            "relationships: |-
  document:a#viewer@user:tom[cav]
  document:a#viewer@user:ann[cav:{\"a\": 1}]
assertions:
  assertTrue:
    - 'document:a#view@user:tom with {\"a\": 1}'
    - document:a#view@user:ann
    - 'document:a#view@user:ann with {\"a\": 2}'
  assertCaveated:
    - document:a#view@user:tom
    - 'document:a#view@user:tom with {\"b\": 1}'
  assertFalse:
    - 'document:a#view@user:tom with {\"a\": 2}'
    - document:a#view@user:fred
",
        );
        assert_eq!(caveated.outcome(), Outcome::Passed, "{}", caveated.render());

        // Each kind fails when the evaluated answer is another.
        for (kind, item) in [
            ("assertTrue", "document:a#view@user:tom"),
            ("assertTrue", "'document:a#view@user:tom with {\"a\": 2}'"),
            ("assertFalse", "document:a#view@user:tom"),
            (
                "assertCaveated",
                "'document:a#view@user:tom with {\"a\": 1}'",
            ),
            (
                "assertCaveated",
                "'document:a#view@user:tom with {\"a\": 2}'",
            ),
            ("assertCaveated", "document:a#view@user:ann"),
        ] {
            let r = run_yaml(&format!(
                "relationships: |-\n  document:a#viewer@user:tom[cav]\n  document:a#viewer@user:ann[cav:{{\"a\": 1}}]\nassertions:\n  {kind}:\n    - {item}\n"
            ));
            assert_eq!(
                r.outcome(),
                Outcome::Failed,
                "{kind} {item}\n{}",
                r.render()
            );
        }
        let r = run_yaml(
            "relationships: |-
  document:a#viewer@user:tom[cav]
assertions:
  assertTrue:
    - document:a#view@user:tom
",
        );
        assert_eq!(
            r.failures[0].actual.as_deref(),
            Some("conditional on caveats (cav), missing context `a`")
        );

        // A context value of the wrong type is a failure naming it.
        let r = run_yaml(
            "relationships: |-
  document:a#viewer@user:tom[cav]
assertions:
  assertTrue:
    - 'document:a#view@user:tom with {\"a\": \"x\"}'
",
        );
        assert_eq!(r.outcome(), Outcome::Failed);
        assert!(
            r.failures[0]
                .message
                .contains("parameter `a` is declared `int`"),
            "{}",
            r.render()
        );
    }

    #[test]
    fn validation_compares_subjects_resources_exclusions_and_caveats() {
        let rels = "relationships: |-
  document:a#viewer@user:*
  document:a#viewer@user:tom[cav]
  document:a#banned@user:fred
";
        let good = run_yaml(&format!(
            "{rels}validation:
  document:a#view:
    - \"[user:* - {{user:fred}}] is <document:a#viewer>\"
    - \"[user:tom[...]] is <document:a#viewer>\"
"
        ));
        assert_eq!(good.outcome(), Outcome::Passed, "{}", good.render());

        for wrong in [
            "    - \"[user:*] is <document:a#viewer>\"\n    - \"[user:tom[...]] is <document:a#viewer>\"\n",
            "    - \"[user:* - {user:fred}] is <document:a#viewer>\"\n    - \"[user:tom] is <document:a#viewer>\"\n",
            "    - \"[user:* - {user:fred}] is <document:a#banned>\"\n    - \"[user:tom[...]] is <document:a#viewer>\"\n",
            "    - \"[user:* - {user:fred}] is <document:a#viewer>\"\n",
            "    - \"[user:* - {user:fred}] is <document:a#viewer>\"\n    - \"[user:tom[...]] is <document:a#viewer>\"\n    - \"[user:sam] is <document:a#viewer>\"\n",
        ] {
            let r = run_yaml(&format!("{rels}validation:\n  document:a#view:\n{wrong}"));
            assert_eq!(r.outcome(), Outcome::Failed, "{wrong}\n{}", r.render());
        }
    }

    #[test]
    fn load_errors_carry_positions() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let text = format!(
            "{SCHEMA}relationships: |-\n  document:a#viewer@user:tom\n  document:a#banned@user:*\n"
        );
        let e = rt
            .block_on(run_text("t.yaml", &text, Path::new(".")))
            .unwrap_err();
        assert_eq!(e.position, Some(Position::new(14, 3)), "{e}");
        assert!(matches!(e.kind, ErrorKind::NotAllowed { .. }));

        let bad_schema = "schema: |-\n  definition user {}\n  definition doc {\n    permission view = nope\n  }\n";
        let e = rt
            .block_on(run_text("t.yaml", bad_schema, Path::new(".")))
            .unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Schema { .. }));
        assert_eq!(e.position.map(|p| p.line), Some(4), "{e}");
    }
}
