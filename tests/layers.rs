//! Keeps DESIGN.md's layer rule and module-doc habit: a module imports only from its own layer
//! and those below it, and every source file starts with a `//!` line saying what it owns.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::path::{Path, PathBuf};

/// DESIGN.md's layer table, bottom to top. `bin` (src/main.rs, the modules it declares, and
/// src/cli/) sits above all of them.
const LAYERS: &[&str] = &[
    "model", "schema", "store", "eval", "identity", "validate", "api", "server",
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("reading {}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The position of a layer in the table (higher is further up).
fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == layer)
}

// ---------------------------------------------------------------------------------------------
// A small Rust scanner: enough to find paths in code, not in comments or string literals.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    /// Any other punctuation character.
    Punct(char),
}

/// Tokens of `source` with their 1-based line, comments and literals dropped.
fn tokenize(source: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = source.chars().collect();
    let mut toks = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            // Block comments nest in Rust.
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if (c == 'r' || c == 'b')
            && (at(i + 1) == '"' || at(i + 1) == '#' || (c == 'b' && at(i + 1) == 'r'))
            && raw_or_byte_string_start(&chars, i).is_some()
        {
            let (hashes, body_start, raw) = raw_or_byte_string_start(&chars, i).unwrap();
            i = body_start;
            while i < chars.len() {
                if chars[i] == '\n' {
                    line += 1;
                }
                if !raw && chars[i] == '\\' {
                    i += 2;
                    continue;
                }
                if chars[i] == '"' && (0..hashes).all(|k| at(i + 1 + k) == '#') {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if at(i) == '\n' {
                    line += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' {
            // A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a).
            if at(i + 1) == '\\' {
                i += 3; // the quote, the backslash and the escaped character
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1; // lifetime: the name is scanned as an identifier next
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            toks.push((Tok::Ident(chars[start..i].iter().collect()), line));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c == ':' && at(i + 1) == ':' {
            toks.push((Tok::PathSep, line));
            i += 2;
        } else {
            toks.push((Tok::Punct(c), line));
            i += 1;
        }
    }
    toks
}

/// If a raw string (`r"…"`, `r#"…"#`), byte string (`b"…"`) or raw byte string starts at `i`:
/// (number of `#`, index of the first body character, whether escapes are off).
fn raw_or_byte_string_start(chars: &[char], i: usize) -> Option<(usize, usize, bool)> {
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    let raw = chars.get(j) == Some(&'r');
    if raw {
        j += 1;
    }
    let mut hashes = 0;
    while raw && chars.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (chars.get(j) == Some(&'"') && j > i).then_some((hashes, j + 1, raw))
}

/// One crate-internal path found in code: the top-level module it names and its line.
#[derive(Debug, PartialEq)]
struct CratePath {
    module: String,
    line: usize,
    /// How it was written, for the message.
    written: String,
}

/// The first segments named right after a `::` at `toks[i]`: `x` or every item of `{x::…, y}`.
fn first_segments(toks: &[(Tok, usize)], i: usize) -> Vec<(String, usize)> {
    match toks.get(i) {
        Some((Tok::Ident(name), line)) => vec![(name.clone(), *line)],
        Some((Tok::Punct('{'), _)) => {
            let mut out = Vec::new();
            let mut depth = 0;
            let mut expect_item = true;
            for (tok, line) in &toks[i..] {
                match tok {
                    Tok::Punct('{') => {
                        depth += 1;
                        expect_item = depth == 1;
                    }
                    Tok::Punct('}') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Tok::Punct(',') if depth == 1 => expect_item = true,
                    Tok::Ident(name) if depth == 1 && expect_item => {
                        out.push((name.clone(), *line));
                        expect_item = false;
                    }
                    _ => {
                        if depth == 1 {
                            expect_item = false;
                        }
                    }
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

/// Every top-level module of the crate that `source` names through `crate::…` or through
/// enough `super::` to climb to the crate root. `module_path` is the file's module
/// (`["store", "memory"]` for src/store/memory.rs); inline `mod x { … }` blocks are followed.
fn crate_paths(source: &str, module_path: &[String]) -> Vec<CratePath> {
    let toks = tokenize(source);
    let mut out = Vec::new();
    // Inline modules entered: (name, brace depth at which their body opened).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let tok = |k: usize| toks.get(k).map(|(t, _)| t);
    for k in 0..toks.len() {
        let (t, line) = &toks[k];
        match t {
            Tok::Punct('{') => {
                depth += 1;
                if let (Some(Tok::Ident(m)), Some(Tok::Ident(name))) = (
                    k.checked_sub(2).and_then(tok),
                    k.checked_sub(1).and_then(tok),
                ) && m == "mod"
                {
                    inline.push((name.clone(), depth));
                }
            }
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Ident(word) if word == "crate" => {
                let after_dollar = k.checked_sub(1).and_then(tok) == Some(&Tok::Punct('$'));
                if !after_dollar && tok(k + 1) == Some(&Tok::PathSep) {
                    for (module, l) in first_segments(&toks, k + 2) {
                        out.push(CratePath {
                            written: format!("crate::{module}"),
                            module,
                            line: l,
                        });
                    }
                }
            }
            Tok::Ident(word) if word == "super" => {
                // Only the first `super` of a chain, and only at the start of a path.
                if k.checked_sub(1).and_then(tok) == Some(&Tok::PathSep) {
                    continue;
                }
                let mut ups = 0;
                let mut j = k;
                while tok(j) == Some(&Tok::Ident("super".to_string()))
                    && tok(j + 1) == Some(&Tok::PathSep)
                {
                    ups += 1;
                    j += 2;
                }
                let here = module_path.len() + inline.len();
                if ups >= here && ups > 0 {
                    for (module, l) in first_segments(&toks, j) {
                        out.push(CratePath {
                            written: format!("{}{module}", "super::".repeat(ups)),
                            module,
                            line: l.max(*line),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The module path of a file under src/: `store/memory.rs` → `["store", "memory"]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" && stem != "lib" && stem != "main" {
            parts.push(stem.to_string());
        }
    }
    parts
}

/// Modules that src/main.rs declares with `mod x;`: they belong to the binary, not the library.
fn bin_modules(src: &Path) -> Vec<String> {
    let Ok(main) = fs::read_to_string(src.join("main.rs")) else {
        return Vec::new();
    };
    let toks = tokenize(&main);
    toks.windows(3)
        .filter_map(|w| match (&w[0].0, &w[1].0, &w[2].0) {
            (Tok::Ident(m), Tok::Ident(name), Tok::Punct(';' | '{')) if m == "mod" => {
                Some(name.clone())
            }
            _ => None,
        })
        .collect()
}

/// Every layering violation of the library under `src`, as `file:line: message`.
fn layer_violations(src: &Path) -> Vec<String> {
    let bin = bin_modules(src);
    let mut problems = Vec::new();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).unwrap().to_path_buf();
        let shown = Path::new("src").join(&relative);
        let path = module_path(&relative);
        let Some(own) = path.first() else {
            continue; // lib.rs / main.rs: the crate roots declare and re-export
        };
        if relative.starts_with("bin") || relative.starts_with("cli") || bin.contains(own) {
            continue; // the binary is the top layer
        }
        let Some(own_rank) = rank(own) else {
            problems.push(format!(
                "{}:1: module `{own}` is not in DESIGN.md's layer table (add it there and to LAYERS in tests/layers.rs)",
                shown.display()
            ));
            continue;
        };
        let source = fs::read_to_string(&file).unwrap();
        for found in crate_paths(&source, &path) {
            if let Some(r) = rank(&found.module)
                && r > own_rank
            {
                problems.push(format!(
                    "{}:{}: `{}` goes up the layers: {own} may use only {}",
                    shown.display(),
                    found.line,
                    found.written,
                    LAYERS[..=own_rank].join(", ")
                ));
            }
        }
    }
    problems
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let src = src_dir();
    let files = rust_files(&src);
    assert!(!files.is_empty(), "no source files under {}", src.display());
    let problems = layer_violations(&src);
    assert!(
        problems.is_empty(),
        "imports that go up DESIGN.md's layer table (bottom→top: {}, bin):\n{}",
        LAYERS.join(", "),
        problems.join("\n")
    );
    println!("{} files checked against the layer table", files.len());
}

#[test]
fn every_source_file_starts_with_a_module_doc_line() {
    let src = src_dir();
    let mut missing = Vec::new();
    for file in rust_files(&src) {
        let text = fs::read_to_string(&file).unwrap();
        let first = text.lines().next().unwrap_or("");
        let doc = first.strip_prefix("//!").map(str::trim).unwrap_or("");
        if doc.is_empty() {
            missing.push(format!(
                "src/{}:1: starts with `{first}`, not a `//!` line saying what the module owns",
                file.strip_prefix(&src).unwrap().display()
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// Every place outside `src/store/rocks/` whose code names the `rocksdb` crate, as `file:line`.
fn rocksdb_outside_store_rocks(src: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).unwrap();
        if relative.starts_with("store/rocks") {
            continue;
        }
        let source = fs::read_to_string(&file).unwrap();
        let toks = tokenize(&source);
        for (i, (tok, line)) in toks.iter().enumerate() {
            // `rocksdb::…`, `use rocksdb` and `extern crate rocksdb`.
            let named = matches!(tok, Tok::Ident(name) if name == "rocksdb")
                && (matches!(toks.get(i + 1), Some((Tok::PathSep, _)))
                    || matches!(i.checked_sub(1).and_then(|p| toks.get(p)), Some((Tok::Ident(k), _)) if k == "use" || k == "crate"));
            if named {
                found.push(format!("src/{}:{line}", relative.display()));
            }
        }
    }
    found
}

#[test]
fn only_store_rocks_names_rocksdb() {
    let found = rocksdb_outside_store_rocks(&src_dir());
    assert!(
        found.is_empty(),
        "DESIGN.md: nothing outside src/store/rocks names RocksDB, but these do:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_rocksdb_rule_sees_paths_but_not_prose() {
    let dir = std::env::temp_dir().join(format!("arbor-layers-rocks-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("store/rocks")).unwrap();
    fs::create_dir_all(dir.join("cli")).unwrap();
    fs::write(
        dir.join("store/rocks/mod.rs"),
        "//! rocks\nuse rocksdb::DB;\n",
    )
    .unwrap();
    fs::write(
        dir.join("cli/backup.rs"),
        "//! backup\n// a RocksDB checkpoint, see rocksdb docs\nconst H: &str = \"rocksdb::x\";\nfn f() { let _ = rocksdb::DB::open; }\n",
    )
    .unwrap();
    let found = rocksdb_outside_store_rocks(&dir);
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(found, vec!["src/cli/backup.rs:4".to_string()]);
}

// The scanner itself, on snippets whose answer is known.

fn modules_named(source: &str, path: &[&str]) -> Vec<String> {
    let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    crate_paths(source, &path)
        .into_iter()
        .map(|p| p.module)
        .collect()
}

#[test]
fn scanner_finds_use_lines_groups_and_paths_in_code() {
    let src = "use crate::model::ObjectRef;\n\
               use crate::{schema::Schema, store::{Snapshot, memory}};\n\
               fn f() { let x = crate::eval::check; }\n\
               pub(crate) fn g() {}\n";
    assert_eq!(
        modules_named(src, &["store"]),
        ["model", "schema", "store", "eval"]
    );
    let lines: Vec<usize> = crate_paths(src, &["store".to_string()])
        .iter()
        .map(|p| p.line)
        .collect();
    assert_eq!(lines, [1, 2, 2, 3]);
}

#[test]
fn scanner_ignores_comments_strings_and_macro_crate() {
    let src = "//! see crate::api\n\
               /* crate::server /* nested crate::api */ still comment crate::api */\n\
               const S: &str = \"crate::api::x\";\n\
               const R: &str = r#\"crate::api \"quoted\" \"#;\n\
               const C: char = '\"'; fn h<'a>(x: &'a str) {}\n\
               macro_rules! m { () => { $crate::api::x } }\n\
               use crate::model::X;\n";
    assert_eq!(modules_named(src, &["schema"]), ["model"]);
}

#[test]
fn scanner_resolves_super_to_the_crate_root_only_when_it_gets_there() {
    // From src/store/memory.rs, `super::` is store; `super::super::` is the root.
    let src = "use super::Snapshot;\nuse super::super::api::Thing;\n";
    assert_eq!(modules_named(src, &["store", "memory"]), ["api"]);
    // Inside an inline test module one more `super` is needed to reach the root.
    let src = "mod tests {\n use super::super::model::X;\n use super::super::super::eval::Y;\n}\n\
               use super::super::validate::Z;\n";
    assert_eq!(
        modules_named(src, &["store", "memory"]),
        ["eval", "validate"]
    );
}

#[test]
fn an_upward_import_is_reported_with_file_and_line() {
    let dir = std::env::temp_dir().join(format!("arbor-layers-test-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("model")).unwrap();
    fs::create_dir_all(dir.join("eval")).unwrap();
    fs::write(
        dir.join("model/refs.rs"),
        "//! refs\nuse crate::model::X;\n\nuse crate::eval::check;\n",
    )
    .unwrap();
    fs::write(
        dir.join("eval/mod.rs"),
        "//! eval\nuse crate::{model::X, store::Y};\n",
    )
    .unwrap();
    fs::write(dir.join("main.rs"), "//! bin\nmod cli;\n").unwrap();
    fs::write(dir.join("cli.rs"), "//! cli\nuse arbor::server;\n").unwrap();
    let problems = layer_violations(&dir);
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("src/model/refs.rs:4: `crate::eval` goes up the layers"),
        "{problems:?}"
    );
}
