//! `arbor import`, `arbor export` and `arbor backup`, run as the binary: round trips of a
//! workload and a validation file, located errors for bad input with nothing imported, and
//! a backup that exports exactly what the original does.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const XS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/workloads/data/xs");
const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/schema-examples/org-hierarchy.yaml"
);

fn arbor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arbor"))
        .args(args)
        .env_remove("ARBOR_DATA_DIR")
        .output()
        .unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .map(str::to_string)
        .collect()
}

/// Exports `data` to a file and returns its lines (in file order).
fn export(data: &Path, out: &Path) -> Vec<String> {
    let o = arbor(&["export", "--data-dir", path(data), "--output", path(out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn import_then_export_round_trips_a_workload() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let xs = PathBuf::from(XS);
    let o = arbor(&[
        "import",
        "--data-dir",
        path(&data),
        "--schema",
        path(&xs.join("schema.zed")),
        path(&xs.join("relationships.txt")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let input = lines(&std::fs::read_to_string(xs.join("relationships.txt")).unwrap());
    let report = String::from_utf8_lossy(&o.stdout);
    assert!(
        report.contains(&format!("imported {} relationships", input.len())),
        "{report}"
    );

    let exported = export(&data, &dir.path().join("out.txt"));
    let mut sorted = exported.clone();
    sorted.sort();
    assert_eq!(exported, sorted, "the export is ordered");
    assert_eq!(exported.into_iter().collect::<BTreeSet<_>>(), input);

    let schema_out = dir.path().join("schema.zed");
    let o = arbor(&[
        "export",
        "--data-dir",
        path(&data),
        "--schema-output",
        path(&schema_out),
        "--revision",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "revision 1 holds only the schema");
    assert_eq!(
        std::fs::read_to_string(schema_out).unwrap(),
        std::fs::read_to_string(xs.join("schema.zed")).unwrap()
    );

    // Importing the same file again clashes on its first line and changes nothing.
    let o = arbor(&[
        "import",
        "--data-dir",
        path(&data),
        path(&xs.join("relationships.txt")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("relationships.txt:1:1: relationship `"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        export(&data, &dir.path().join("again.txt")).len(),
        input.len()
    );
}

#[test]
fn bad_input_is_reported_at_its_line_and_column_and_nothing_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let schema = dir.path().join("schema.zed");
    std::fs::write(
        &schema,
        "definition user {}\ndefinition doc {\n    relation viewer: user\n}\n",
    )
    .unwrap();
    let cases: [(&str, &[u8], &str); 5] = [
        (
            "syntax",
            b"doc:a#viewer@user:x\n\n// a comment\n  doc:b#viewer@user:x y\n",
            ":4:21: subject id `x y` is invalid",
        ),
        (
            "schema",
            b"doc:a#viewer@user:x\ndoc:a#editor@user:x\n",
            ":2:1: ",
        ),
        (
            "duplicate",
            b"doc:a#viewer@user:x\ndoc:b#viewer@user:x\ndoc:a#viewer@user:x\n",
            ":3:1: relationship `doc:a#viewer@user:x` already exists",
        ),
        (
            "not utf-8",
            b"doc:a#viewer@user:x\n\xff\xfe\n",
            ":2:1: cannot read the line",
        ),
        ("truncated", b"doc:a#viewer", ":1:13: expected `@`"),
    ];
    for (name, content, expected) in cases {
        let file = dir.path().join(format!("{}.txt", name.replace(' ', "_")));
        std::fs::write(&file, content).unwrap();
        let o = arbor(&[
            "import",
            "--data-dir",
            path(&data),
            "--schema",
            path(&schema),
            path(&file),
        ]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("{}{expected}", path(&file))),
            "{name}: expected `{expected}` in:\n{err}"
        );
        assert!(err.contains("nothing was imported"), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
    assert!(export(&data, &dir.path().join("out.txt")).is_empty());

    let o = arbor(&["import", "--data-dir", path(&data), "/nonexistent/file.txt"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot read `/nonexistent/file.txt`"),
        "{}",
        stderr(&o)
    );
    let bad_schema = dir.path().join("bad.zed");
    std::fs::write(&bad_schema, "definition user {\n relation x: nope\n}\n").unwrap();
    let o = arbor(&[
        "import",
        "--data-dir",
        path(&data),
        "--schema",
        path(&bad_schema),
        path(&schema),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("{}:2:", path(&bad_schema))),
        "{}",
        stderr(&o)
    );
    let o = arbor(&["export", "--data-dir", path(&dir.path().join("none"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not an Arbor data directory"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_validation_file_imports_its_schema_and_relationships() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let o = arbor(&["import", "--data-dir", path(&data), EXAMPLE]);
    assert!(o.status.success(), "{}", stderr(&o));
    let exported = export(&data, &dir.path().join("out.txt"));
    let file = arbor::validate::ValidationFile::load(Path::new(EXAMPLE)).unwrap();
    let expected: BTreeSet<String> = file
        .relationships
        .iter()
        .map(|r| r.relationship.to_string())
        .collect();
    assert_eq!(exported.into_iter().collect::<BTreeSet<_>>(), expected);
}

#[test]
fn a_backup_exports_exactly_what_the_original_does() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backup = dir.path().join("backup");
    let xs = PathBuf::from(XS);
    let o = arbor(&[
        "import",
        "--data-dir",
        path(&data),
        path(&xs.join("relationships.txt")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = arbor(&["backup", "--data-dir", path(&data), path(&backup)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("restore by pointing --data-dir at it"));
    let original = export(&data, &dir.path().join("a.txt"));
    let restored = export(&backup, &dir.path().join("b.txt"));
    assert!(!original.is_empty());
    assert_eq!(original, restored);
    let o = arbor(&["backup", "--data-dir", path(&data), path(&backup)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
}

#[test]
fn a_backup_of_a_directory_in_use_holds_every_acknowledged_write() {
    use arbor::model::{Relationship, RelationshipFilter};
    use arbor::store::Datastore;
    use arbor::store::rocks::{RocksDatastore, RocksOptions};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backup = dir.path().join("backup");
    let options = || RocksOptions {
        gc_interval: None,
        ..RocksOptions::default()
    };
    // This process holds the data directory open, as a server would.
    let live = RocksDatastore::open(&data, options()).unwrap();
    live.bulk_import(
        &mut (0..500)
            .map(|i| Ok(Relationship::parse(&format!("doc:d{i}#viewer@user:u{i}")).unwrap())),
    )
    .unwrap();
    let head = live
        .write(&mut |txn| txn.touch(Relationship::parse("doc:last#viewer@user:x").unwrap()))
        .unwrap();
    let o = arbor(&["backup", "--data-dir", path(&data), path(&backup)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("in use by another process"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let restored = RocksDatastore::open(&backup, options()).unwrap();
    assert_eq!(restored.head_revision().unwrap(), head);
    let count = restored
        .snapshot(head)
        .unwrap()
        .read(&RelationshipFilter::default(), None)
        .count();
    assert_eq!(count, 501);
    drop(live);
}

#[test]
fn every_flag_is_documented_in_help() {
    for (command, flags) in [
        ("import", &["--data-dir", "--schema", "FILE"][..]),
        (
            "export",
            &["--data-dir", "--output", "--schema-output", "--revision"][..],
        ),
        ("backup", &["--data-dir", "DIR", "Restore"][..]),
    ] {
        let o = arbor(&[command, "--help"]);
        assert!(o.status.success());
        let help = String::from_utf8_lossy(&o.stdout);
        for flag in flags {
            assert!(
                help.contains(flag),
                "`arbor {command} --help` lacks {flag}:\n{help}"
            );
        }
    }
}
