//! Fuzzing of the schema compiler and the relationship parser: random text, token soups and
//! mutations of valid inputs must give `Ok` or `Err`, never a panic or a stack overflow.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use arbor::model::Relationship;
use arbor::schema::{Schema, compile};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Valid schemas the mutations start from (every feature of the language at least once).
const SEEDS: &[&str] = &[
    r#"use expiration

/** a person */
definition user {}

definition org/team {
    relation member: user | org/team#member
    permission members = member
}

caveat ip_allowed(ip ipaddress, cidrs list<string>, attrs map<any>) {
    cidrs.exists(c, ip.in_cidr(c)) && attrs["k"] == "}" && {'a': 1}.size() > 0
}

definition document {
    /** who may read */
    relation viewer: user | user:* | org/team#member | user with ip_allowed | user with expiration | org/team#member with ip_allowed and expiration
    relation parent: document
    relation banned: user
    permission view = (viewer + parent->view) - banned
    permission all_parents = parent.all(view) & parent.any(view)
    permission nothing = nil
}
"#,
    "definition user {}\n\ndefinition document {\n  relation writer: user\n  relation reader: user\n  permission edit = writer\n  permission view = reader + edit\n}\n",
    "definition aaa/bbb/ccc/user {}\ndefinition aaa/bbb/ccc/doc {\n relation rrr: aaa/bbb/ccc/user; permission ppp = rrr & rrr - nil; }\n",
    "caveat is_weekday(day string) {\n  day != 'saturday' && day != \"sunday\"\n}\n\ndefinition user {}\ndefinition doc {\n  relation viewer: user with is_weekday | user\n  permission view = viewer\n}\n",
    "definition user {}\ndefinition group {\n relation member: user | group#member\n relation manager: user\n permission admin = manager + (member & manager) - (nil + member)\n}\n",
];

/// Valid relationships the mutations start from.
const RELATIONSHIP_SEEDS: &[&str] = &[
    "document:q3#viewer@team:eng#member",
    "document:q3#viewer@user:*",
    "folder:company#owner@user:owner#...",
    r#"resource:first#reader@user:sarah[some_caveat:{"somecondition": 42, "x": "a]b"}]"#,
    "folder:expired#viewer@user:tom[expiration:2023-12-01T00:00:00Z]",
    "a_b:x#rel@user:tom[cav][expiration:2023-12-01T00:00:00Z]",
];

/// Pieces of the schema language, glued together at random.
const PIECES: &[&str] = &[
    "definition",
    "caveat",
    "relation",
    "permission",
    "use",
    "expiration",
    "and",
    "with",
    "nil",
    "any",
    "all",
    "user",
    "team",
    "member",
    "view",
    "parent",
    "doc",
    "int",
    "list",
    "map",
    "string",
    "self",
    "import",
    "partial",
    "typechecking",
    "{",
    "}",
    "(",
    ")",
    "<",
    ">",
    "|",
    "||",
    "+",
    "-",
    "->",
    "&",
    "&&",
    "/",
    "=",
    "==",
    ":",
    ";",
    "#",
    "...",
    ".",
    "*",
    ",",
    "!",
    "?",
    "\"",
    "'",
    "\"\"\"",
    "/*",
    "*/",
    "/**",
    "//",
    "\n",
    "\r\n",
    " ",
    "\t",
    "é",
    "@",
    "0",
    "_",
    "[",
    "]",
];

/// Characters random strings are drawn from, biased towards the language's own.
fn schema_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(
            "abcdefghijklmnopqrstuvwxyz_0123456789 \n\t{}()<>|+-&/=:;#.*,!?\"'[]@\\\r".chars().collect::<Vec<_>>()
        ),
        1 => any::<char>(),
    ]
}

fn random_text() -> impl Strategy<Value = String> {
    prop::collection::vec(schema_char(), 0..200).prop_map(|cs| cs.into_iter().collect())
}

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..80).prop_map(|ps| ps.join(" "))
}

/// One edit: 0 insert, 1 delete, 2 replace, 3 duplicate a span, at a position (taken modulo the length).
#[derive(Debug, Clone)]
struct Edit {
    op: u8,
    at: usize,
    len: usize,
    ch: char,
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(
        (0u8..4, any::<usize>(), 1usize..12, schema_char()).prop_map(|(op, at, len, ch)| Edit {
            op,
            at,
            len,
            ch,
        }),
        1..6,
    )
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let n = chars.len();
        let at = if n == 0 { 0 } else { e.at % (n + 1) };
        match e.op {
            0 => chars.insert(at, e.ch),
            1 => {
                let end = (at + e.len).min(n);
                chars.drain(at..end);
            }
            2 if at < n => chars[at] = e.ch,
            3 => {
                let end = (at + e.len).min(n);
                let copy: Vec<char> = chars[at..end].to_vec();
                chars.splice(at..at, copy);
            }
            _ => chars.insert(at, e.ch),
        }
    }
    chars.into_iter().collect()
}

/// Compiles and checks the result's shape: errors are non-empty, sorted and inside the text.
fn compile_checked(text: &str) -> Option<Schema> {
    let lines = text.chars().filter(|c| matches!(c, '\n' | '\r')).count() as u32 + 1;
    match compile(text) {
        Ok(schema) => {
            // Whatever compiled compiles again to the same thing.
            assert_eq!(compile(schema.source()).ok().as_ref(), Some(&schema));
            Some(schema)
        }
        Err(errors) => {
            assert!(!errors.0.is_empty());
            assert!(
                errors.0.windows(2).all(|w| w[0].span <= w[1].span),
                "unsorted: {errors}"
            );
            for e in &errors.0 {
                assert!(
                    e.span.line >= 1 && e.span.line <= lines && e.span.column >= 1,
                    "{e} in {text:?}"
                );
                assert!(!e.message.is_empty());
            }
            None
        }
    }
}

/// Every relationship check on a compiled schema returns, whatever the relationship.
fn validate_some(schema: &Schema, rels: &[&str]) {
    for text in rels {
        if let Ok(rel) = Relationship::parse(text) {
            let _ = schema.validate_relationship(&rel);
        }
    }
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn random_text_never_panics(text in random_text()) {
        compile_checked(&text);
    }

    #[test]
    fn token_soup_never_panics(text in token_soup()) {
        if let Some(schema) = compile_checked(&text) {
            validate_some(&schema, RELATIONSHIP_SEEDS);
        }
    }

    #[test]
    fn mutated_schemas_never_panic(seed in 0..SEEDS.len(), edits in edits()) {
        let text = apply(SEEDS[seed], &edits);
        if let Some(schema) = compile_checked(&text) {
            validate_some(&schema, &[
                "document:d#viewer@user:alice",
                "document:d#viewer@user:*",
                "document:d#viewer@org/team:eng#member[ip_allowed:{\"ip\":\"10.0.0.1\",\"nope\":1}]",
                "doc:d#viewer@user:alice[is_weekday]",
                "group:g#member@group:h#member[expiration:2030-01-01T00:00:00Z]",
            ]);
        }
    }
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn random_relationships_never_panic(text in random_text()) {
        let _ = Relationship::parse(&text);
    }

    #[test]
    fn mutated_relationships_never_panic(seed in 0..RELATIONSHIP_SEEDS.len(), edits in edits()) {
        let text = apply(RELATIONSHIP_SEEDS[seed], &edits);
        if let Ok(rel) = Relationship::parse(&text) {
            // What parses prints back to something that parses to the same relationship.
            prop_assert_eq!(Relationship::parse(&rel.to_string()).ok(), Some(rel));
        }
    }
}

#[test]
fn seeds_are_valid() {
    for seed in SEEDS {
        assert!(
            compile(seed).is_ok(),
            "{seed}: {:?}",
            compile(seed).err().map(|e| e.to_string())
        );
    }
    for seed in RELATIONSHIP_SEEDS {
        assert!(Relationship::parse(seed).is_ok(), "{seed}");
    }
}

#[test]
fn huge_nesting_is_an_error_not_a_stack_overflow() {
    let n = 100_000;
    for text in [
        format!(
            "definition doc {{\n permission p = {}a{}\n}}",
            "(".repeat(n),
            ")".repeat(n)
        ),
        format!("definition doc {{\n permission p = {}\n}}", "(".repeat(n)),
        format!(
            "definition doc {{\n permission p = aaa{}\n}}",
            " - aaa".repeat(n)
        ),
        format!(
            "definition doc {{\n permission p = aaa{}\n}}",
            " + aaa".repeat(n)
        ),
        format!(
            "caveat cav(a {}int{}) {{ a }}",
            "list<".repeat(n),
            ">".repeat(n)
        ),
        "/*".repeat(n),
        "\"".repeat(n),
    ] {
        assert!(compile(&text).is_err());
    }
    // Braces inside a caveat expression are CEL's business: only their matching matters.
    let braces = format!(
        "caveat cav(a int) {{ {}a{} }}",
        "{".repeat(n),
        "}".repeat(n)
    );
    assert!(compile(&braces).is_ok());
    // Long but flat chains of unions are fine.
    let flat = format!(
        "definition doc {{\n relation aaa: doc\n permission ppp = aaa{}\n}}",
        " + aaa".repeat(10_000)
    );
    assert!(compile(&flat).is_ok());
}
