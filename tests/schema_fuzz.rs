//! Fuzzing of the schema compiler and the relationship parser: random text, token soups and
//! mutations of valid inputs must give `Ok` or `Err`, never a panic or a stack overflow. Caveat
//! expressions get their own generator (random CEL over every parameter type, operator,
//! function and macro): type-checking them, and evaluating those that check with random
//! contexts (values of every shape, of the wrong types, missing), never panics either.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use arbor::eval::{CaveatResult, evaluate_caveat};
use arbor::model::{ContextMap, ContextValue, Relationship};
use arbor::schema::{Schema, compile};
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
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
    // Inside a caveat expression nesting is CEL's: too long or too deep for its parser is an
    // error, never a stack overflow.
    let braces = format!(
        "caveat cav(a int) {{ {}a{} }}",
        "{".repeat(n),
        "}".repeat(n)
    );
    assert!(compile(&braces).is_err());
    for cel in [
        format!("{}a{} == 1", "(".repeat(10_000), ")".repeat(10_000)),
        format!("{}a{} == 1", "[".repeat(10_000), "]".repeat(10_000)),
        format!("a{} == 1", " + a".repeat(10_000)),
        format!("a{} == 1", ".b".repeat(10_000)),
        format!("{}true", "a == 1 ? true : ".repeat(5_000)),
        format!("{}a{} == 1", "int(".repeat(10_000), ")".repeat(10_000)),
    ] {
        let errors = compile(&format!("caveat cav(a int) {{ {cel} }}")).unwrap_err();
        assert!(errors.to_string().contains("nested too deeply"), "{errors}");
    }
    // Long but flat chains of unions are fine.
    let flat = format!(
        "definition doc {{\n relation aaa: doc\n permission ppp = aaa{}\n}}",
        " + aaa".repeat(10_000)
    );
    assert!(compile(&flat).is_ok());
}

/// Caveat parameters the random expressions use, with their declared types.
const CEL_PARAMS: &[(&str, &str)] = &[
    ("pi", "int"),
    ("pu", "uint"),
    ("pd", "double"),
    ("pb", "bool"),
    ("ps", "string"),
    ("pby", "bytes"),
    ("pdu", "duration"),
    ("pt", "timestamp"),
    ("pip", "ipaddress"),
    ("pl", "list<int>"),
    ("pls", "list<string>"),
    ("pm", "map<any>"),
    ("pmi", "map<int>"),
    ("pa", "any"),
];

fn cel_leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(CEL_PARAMS.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>()),
        1 => prop::sample::select(vec![
            "0", "1", "-3", "9223372036854775807", "-9223372036854775808", "1u", "1.5", "0.0",
            "'a'", "''", "'10.0.0.0/8'", "\"hello\"", "true", "false", "null", "[]", "{}",
            "b'x'", "duration('1h')", "timestamp('2024-01-01T00:00:00Z')", "[1, 2]", "['a']",
            "{'k': 1}", "v", "int", "optional.none()",
        ]).prop_map(str::to_string),
    ]
}

/// Random CEL, mostly well-formed, over the parameters above.
fn cel_expression() -> impl Strategy<Value = String> {
    cel_leaf().prop_recursive(4, 48, 3, |inner| {
        let binary = prop::sample::select(vec![
            "+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "in",
        ]);
        let unary_call = prop::sample::select(vec![
            "{}.size()",
            "size({})",
            "int({})",
            "uint({})",
            "double({})",
            "string({})",
            "bytes({})",
            "bool({})",
            "timestamp({})",
            "duration({})",
            "dyn({})",
            "type({}) == int",
            "{}.getHours()",
            "{}.getDayOfWeek('UTC')",
            "{}.f",
            "has({}.f)",
            "!{}",
            "-{}",
            "{}.all(v, v > 0)",
            "{}.exists(v, v == 'a')",
            "{}.map(v, v)",
            "{}.filter(v, v != 1)",
            "{}.exists_one(v, true)",
            "[{}]",
            "{{'k': {}}}",
            "{}.hasValue()",
            "{}.value()",
            "optional.of({})",
            "{}[0]",
            "{}['k']",
            "{}.?k.orValue(1)",
        ]);
        let binary_call = prop::sample::select(vec![
            "{}.contains({})",
            "{}.startsWith({})",
            "{}.endsWith({})",
            "{}.matches({})",
            "{}.in_cidr({})",
            "{}[{}]",
            "{}[?{}]",
            "{}.isSubtreeOf({})",
            "{}.orValue({})",
            "[{}, {}]",
            "{{{}: {}}}",
            "{}.all(v, v == {})",
            "{}.map(v, v + {})",
        ]);
        prop_oneof![
            (inner.clone(), binary, inner.clone()).prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            (unary_call, inner.clone()).prop_map(|(f, a)| f.replacen("{}", &a, 1)),
            (binary_call, inner.clone(), inner.clone())
                .prop_map(|(f, a, b)| f.replacen("{}", &a, 1).replacen("{}", &b, 1)),
            (inner.clone(), inner.clone(), inner)
                .prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
        ]
    })
}

/// Well-typed CEL of one type, `depth` levels deep at most: most of these type-check, so
/// evaluation is exercised with every operator and function.
fn typed(ty: &'static str, depth: u32) -> BoxedStrategy<String> {
    let leaves: Vec<&'static str> = match ty {
        "int" => vec![
            "pi",
            "pu",
            "1",
            "-3",
            "9223372036854775807",
            "pl[0]",
            "size(ps)",
            "pmi['k']",
            "pt.getHours()",
            "pdu.getSeconds()",
            "int(pd)",
            "int(ps)",
            "pmi.size()",
            "pt.getDayOfWeek('Europe/Paris')",
            "int(pt)",
        ],
        "double" => vec!["pd", "1.5", "-0.0", "double(pi)", "double(ps)", "1e308"],
        "string" => vec![
            "ps",
            "'a'",
            "''",
            "'10.0.0.0/8'",
            "string(pi)",
            "pls[0]",
            "string(pt)",
            "string(pdu)",
            "string(pby)",
            "pm.k",
            "string(pd)",
        ],
        _ => vec![
            "pb",
            "true",
            "has(pm.f)",
            "pm.isSubtreeOf(pm)",
            "pa == 1",
            "pa.f == 'x'",
            "pm.k == pa",
            "pip.in_cidr('10.0.0.0/8')",
            "pt < pt + pdu",
            "pdu > duration('1h')",
            "pip == pip",
            "pby == b'hi'",
            "pl == [1, 2]",
            "pmi == {'k': 1}",
        ],
    };
    let leaf = prop::sample::select(leaves)
        .prop_map(|l| {
            if l.contains(' ') {
                format!("({l})")
            } else {
                l.to_string()
            }
        })
        .boxed();
    if depth == 0 {
        return leaf;
    }
    let d = depth - 1;
    let node = match ty {
        "int" => prop_oneof![
            (
                typed("int", d),
                prop::sample::select(vec!["+", "-", "*", "/", "%"]),
                typed("int", d)
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            (typed("bool", d), typed("int", d), typed("int", d))
                .prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
            typed("int", d).prop_map(|a| format!("pl.map(v, v + {a})[0]")),
            typed("int", d).prop_map(|a| format!("pmi[?'z'].orValue({a})")),
        ]
        .boxed(),
        "double" => (
            typed("double", d),
            prop::sample::select(vec!["+", "-", "*", "/"]),
            typed("double", d),
        )
            .prop_map(|(a, op, b)| format!("({a} {op} {b})"))
            .boxed(),
        "string" => prop_oneof![
            (typed("string", d), typed("string", d)).prop_map(|(a, b)| format!("({a} + {b})")),
            (typed("bool", d), typed("string", d), typed("string", d))
                .prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
        ]
        .boxed(),
        _ => prop_oneof![
            (
                typed("int", d),
                prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]),
                typed("int", d)
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            (
                typed("double", d),
                prop::sample::select(vec!["<", ">="]),
                typed("int", d)
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            (
                typed("string", d),
                prop::sample::select(vec!["==", "<", "!="]),
                typed("string", d)
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            (
                typed("bool", d),
                prop::sample::select(vec!["&&", "||", "==", "!="]),
                typed("bool", d)
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            typed("bool", d).prop_map(|a| format!("!{a}")),
            typed("string", d).prop_map(|a| format!("({a} in pls)")),
            typed("int", d).prop_map(|a| format!("({a} in pl)")),
            typed("string", d).prop_map(|a| format!("ps.contains({a})")),
            typed("string", d).prop_map(|a| format!("ps.startsWith({a})")),
            typed("string", d).prop_map(|a| format!("ps.matches({a})")),
            typed("string", d).prop_map(|a| format!("pip.in_cidr({a})")),
            typed("string", d).prop_map(|a| format!("({a} in pm)")),
            typed("int", d).prop_map(|a| format!("pl.all(v, v > {a})")),
            typed("int", d).prop_map(|a| format!("pl.exists(v, v == {a})")),
            typed("string", d).prop_map(|a| format!("pls.exists_one(v, v == {a})")),
            typed("int", d).prop_map(|a| format!("pl.filter(v, v > {a}).size() == 0")),
            typed("bool", d).prop_map(|a| format!("pm.all(k, {a})")),
            (typed("bool", d), typed("bool", d), typed("bool", d))
                .prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
        ]
        .boxed(),
    };
    prop_oneof![1 => leaf, 3 => node.prop_map(|n| format!("({n})"))].boxed()
}

/// Random context values: every JSON shape, and strings that parse as the special types.
fn context_value() -> impl Strategy<Value = ContextValue> {
    let leaf = prop_oneof![
        Just(ContextValue::Null),
        any::<bool>().prop_map(ContextValue::Bool),
        any::<i64>().prop_map(ContextValue::Int),
        prop::sample::select(vec![0i64, 1, 2, -1, 42]).prop_map(ContextValue::Int),
        any::<u64>().prop_map(ContextValue::UInt),
        prop::sample::select(vec![0.5f64, -1.5, 1e300, f64::INFINITY, 3.0])
            .prop_map(ContextValue::Double),
        prop::sample::select(vec![
            "",
            "a",
            "10.0.0.1",
            "::1",
            "10.0.0.0/8",
            "1h30m",
            "-5s",
            "2024-01-01T00:00:00Z",
            "aGk=",
            "42",
            "1e3",
            "not a value",
            "k",
        ])
        .prop_map(|s| ContextValue::String(s.to_string())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(ContextValue::List),
            prop::collection::btree_map(
                prop::sample::select(vec!["k", "f", "a", "x"]).prop_map(str::to_string),
                inner,
                0..3
            )
            .prop_map(ContextValue::Map),
        ]
    })
}

/// A value of the right type for parameter `name`, mostly.
fn typed_value(name: &str) -> BoxedStrategy<ContextValue> {
    let s = |v: &[&str]| {
        prop::sample::select(v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .prop_map(ContextValue::String)
            .boxed()
    };
    let ints = || (-5i64..5).prop_map(ContextValue::Int);
    let right = match name {
        "pi" | "pu" => ints().boxed(),
        "pd" => (-5.0f64..5.0).prop_map(ContextValue::Double).boxed(),
        "pb" => any::<bool>().prop_map(ContextValue::Bool).boxed(),
        "ps" => s(&["", "a", "hello", "10.0.0.0/8", "^h.*o$", "k", "["]),
        "pby" => s(&["", "aGk=", "AAEC"]),
        "pdu" => s(&["0", "1h", "-90m", "1.5s", "300ms"]),
        "pt" => s(&[
            "2024-01-01T00:00:00Z",
            "1970-01-01T00:00:00+02:00",
            "9999-12-31T23:59:59Z",
        ]),
        "pip" => s(&["10.0.0.1", "192.168.1.1", "::1", "::ffff:10.0.0.1"]),
        "pl" => prop::collection::vec(ints(), 0..4)
            .prop_map(ContextValue::List)
            .boxed(),
        "pls" => prop::collection::vec(
            prop::sample::select(vec!["a", "b", ""])
                .prop_map(|s| ContextValue::String(s.to_string())),
            0..4,
        )
        .prop_map(ContextValue::List)
        .boxed(),
        "pmi" => prop::collection::btree_map(
            prop::sample::select(vec!["k", "z"]).prop_map(str::to_string),
            ints(),
            0..3,
        )
        .prop_map(ContextValue::Map)
        .boxed(),
        _ => context_value().boxed(),
    };
    prop_oneof![40 => right, 1 => context_value()].boxed()
}

/// A context giving most parameters, mostly of the right type.
fn typed_context() -> impl Strategy<Value = ContextMap> {
    let entries: Vec<BoxedStrategy<Option<(String, ContextValue)>>> = CEL_PARAMS
        .iter()
        .map(|(n, _)| {
            let name = n.to_string();
            prop::option::weighted(0.8, typed_value(n).prop_map(move |v| (name.clone(), v))).boxed()
        })
        .collect();
    entries.prop_map(|items| items.into_iter().flatten().collect())
}

fn context() -> impl Strategy<Value = ContextMap> {
    prop::collection::btree_map(
        prop::sample::select(
            CEL_PARAMS
                .iter()
                .map(|(n, _)| n.to_string())
                .collect::<Vec<_>>(),
        ),
        context_value(),
        0..6,
    )
}

/// The caveat declaring exactly the parameters `expression` mentions.
fn caveat_schema(expression: &str) -> String {
    let words: Vec<&str> = expression
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .collect();
    let params: Vec<String> = CEL_PARAMS
        .iter()
        .filter(|(n, _)| words.contains(n))
        .map(|(n, t)| format!("{n} {t}"))
        .collect();
    if params.is_empty() {
        // A caveat needs a parameter.
        return format!("caveat fuzzed(pi int) {{\n  pi == pi && ({expression})\n}}\n");
    }
    format!(
        "caveat fuzzed({}) {{\n  {expression}\n}}\n",
        params.join(", ")
    )
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn random_caveats_type_check_and_evaluate_without_panics(
        expression in cel_expression(),
        relationship in context(),
        request in context(),
    ) {
        if let Some(schema) = compile_checked(&caveat_schema(&expression)) {
            let result = evaluate_caveat(&schema, "fuzzed", &relationship, &request, None);
            if let Ok(CaveatResult::Missing(names)) = &result {
                // Only declared parameters that neither context gives can be missing.
                let declared = schema.caveat("fuzzed").unwrap().parameters();
                for n in names {
                    prop_assert!(declared.iter().any(|(p, _)| p == n));
                    prop_assert!(!relationship.contains_key(n) && !request.contains_key(n));
                }
            }
        }
    }

    #[test]
    fn well_typed_caveats_evaluate_without_panics(
        expression in typed("bool", 4),
        relationship in typed_context(),
        request in typed_context(),
    ) {
        let schema = compile_checked(&caveat_schema(&expression));
        prop_assert!(schema.is_some(), "{expression} does not type-check");
        if let Some(schema) = schema {
            let result = evaluate_caveat(&schema, "fuzzed", &relationship, &request, None);
            if let Ok(CaveatResult::Missing(names)) = &result {
                for n in names {
                    prop_assert!(!relationship.contains_key(n) && !request.contains_key(n));
                }
            }
        }
    }

    #[test]
    fn cel_token_soup_never_panics(
        tokens in prop::collection::vec(prop::sample::select(vec![
            "pi", "ps", "pl", "pm", "(", ")", "[", "]", "{", "}", ".", ",", ":", "?", "+", "-",
            "*", "/", "%", "==", "<", "&&", "||", "!", "in", "all", "exists", "map", "has",
            "size", "'a'", "\"", "'", "1", "1.5", "2u", "true", "null", "b'", "r'", "\\",
            "`", "x", "\n", " ", "é", "optional", "?.", "[?",
        ]), 0..40),
        request in context(),
    ) {
        let expression: String = tokens.concat();
        if let Some(schema) = compile_checked(&caveat_schema(&expression)) {
            let _ = evaluate_caveat(&schema, "fuzzed", &ContextMap::new(), &request, None);
        }
    }
}
