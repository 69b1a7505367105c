//! Tests of caveat evaluation: every parameter type and operator family, conversions of context
//! values, partial evaluation with missing parameters (as SpiceDB's `pkg/caveats/eval_test.go`
//! cases), the three-valued formula, errors and limits.

use super::*;
use crate::model::ContextValue;
use crate::schema;

fn schema_with(params: &str, expression: &str) -> Schema {
    match schema::compile(&format!("caveat cav({params}) {{\n  {expression}\n}}\n")) {
        Ok(s) => s,
        Err(e) => panic!("`{expression}` does not compile:\n{e}"),
    }
}

fn ctx(json: &str) -> ContextMap {
    ContextValue::parse_object(json).unwrap()
}

/// Evaluates caveat `c(params) { expression }` with `relationship` context over `request`.
fn run(params: &str, expression: &str, relationship: &str, request: &str) -> CaveatResult {
    let s = schema_with(params, expression);
    match evaluate_caveat(&s, "cav", &ctx(relationship), &ctx(request), None) {
        Ok(r) => r,
        Err(e) => panic!("`{expression}` with {relationship} over {request}: {e}"),
    }
}

fn is(params: &str, expression: &str, context: &str) -> bool {
    match run(params, expression, context, "{}") {
        CaveatResult::True => true,
        CaveatResult::False => false,
        CaveatResult::Missing(m) => panic!("`{expression}` with {context}: missing {m:?}"),
    }
}

fn error(params: &str, expression: &str, relationship: &str, request: &str) -> String {
    let s = schema_with(params, expression);
    match evaluate_caveat(
        &s,
        "cav",
        &ctx(relationship),
        &ctx(request),
        Some("doc:d#viewer@user:u"),
    ) {
        Ok(r) => panic!("`{expression}` should fail, gave {r:?}"),
        Err(e) => e.to_string(),
    }
}

fn missing(names: &[&str]) -> CaveatResult {
    CaveatResult::Missing(names.iter().map(|n| n.to_string()).collect())
}

#[test]
fn int_uint_double_bool_string_bytes() {
    assert!(is("a int", "a + 2 == 4", r#"{"a": 2}"#));
    assert!(!is("a int", "a + 2 == 4", r#"{"a": 3}"#));
    assert!(is(
        "a int",
        "a % 3 == 1 && a / 2 == 3 && -a < 0",
        r#"{"a": 7}"#
    ));
    // Numbers given as numeric strings or integral doubles, as SpiceDB accepts them.
    assert!(is("a int", "a == 42", r#"{"a": "42"}"#));
    assert!(is("a int", "a == 4", r#"{"a": 4.0}"#));
    assert!(is(
        "limit uint, count uint",
        "count < limit",
        r#"{"limit": 4, "count": 3}"#
    ));
    assert!(!is(
        "limit uint, count uint",
        "count < limit",
        r#"{"limit": 2, "count": 3}"#
    ));
    assert!(is("u uint", "u > 5 && u == 7", r#"{"u": 7}"#));
    assert!(is("d double", "d * 2.0 > 3.0 && d < 2", r#"{"d": 1.6}"#));
    assert!(is("d double", "d == 2.0", r#"{"d": 2}"#));
    assert!(is("b bool", "!b", r#"{"b": false}"#));
    assert!(is(
        "s string",
        "s.startsWith('he') && s.endsWith('lo') && s.contains('ll') && size(s) == 5 && s.matches('^h.*o$') && s + '!' == 'hello!'",
        r#"{"s": "hello"}"#
    ));
    assert!(is(
        "b bytes",
        "b == b'hello' && size(b) == 5",
        r#"{"b": "aGVsbG8="}"#
    ));
}

#[test]
fn timestamps_and_durations() {
    let t = r#"{"t": "2024-01-01T10:30:00+02:00", "d": "1h30m", "now": "2024-01-01T09:00:00Z"}"#;
    assert!(is(
        "t timestamp, d duration",
        "t + d == timestamp('2024-01-01T10:00:00Z')",
        t
    ));
    assert!(is(
        "t timestamp, now timestamp",
        "now - t == duration('30m')",
        t
    ));
    assert!(is(
        "t timestamp, d duration, now timestamp",
        "t < now && now - d < t",
        t
    ));
    assert!(is(
        "d duration",
        "d > duration('1h') && d.getMinutes() == 90",
        t
    ));
    // Getters without a time zone are in UTC, as SpiceDB's environment sets.
    assert!(is(
        "t timestamp",
        "t.getHours() == 8 && t.getMinutes() == 30",
        t
    ));
    assert!(is("t timestamp", "t.getHours('+02:00') == 10", t));
    assert!(is(
        "t timestamp",
        "t.getFullYear() == 2024 && t.getDayOfWeek() == 1",
        t
    ));
    assert!(is(
        "d duration",
        "d == duration('-1.5h')",
        r#"{"d": "-1.5h"}"#
    ));
    assert!(is(
        "d duration",
        "d == duration('300ms')",
        r#"{"d": "300ms"}"#
    ));
}

#[test]
fn ip_addresses_and_cidrs() {
    let p = "ip ipaddress, cidr string";
    assert!(is(
        p,
        "ip.in_cidr(cidr)",
        r#"{"ip": "10.2.3.4", "cidr": "10.0.0.0/8"}"#
    ));
    assert!(!is(
        p,
        "ip.in_cidr(cidr)",
        r#"{"ip": "1.2.3.4", "cidr": "10.0.0.0/8"}"#
    ));
    assert!(is(
        p,
        "ip.in_cidr(cidr)",
        r#"{"ip": "10.1.3.4", "cidr": "10.1.0.0/16"}"#
    ));
    assert!(is(
        p,
        "ip.in_cidr(cidr)",
        r#"{"ip": "2001:db8::1", "cidr": "2001:db8::/32"}"#
    ));
    // An IPv4-mapped address is its IPv4 address (Go's `Unmap`).
    assert!(is(
        p,
        "ip.in_cidr(cidr)",
        r#"{"ip": "::ffff:10.0.0.1", "cidr": "10.0.0.0/8"}"#
    ));
    assert!(!is(
        p,
        "ip.in_cidr(cidr)",
        r#"{"ip": "10.0.0.1", "cidr": "::/0"}"#
    ));
    assert!(is(
        "a ipaddress, b ipaddress",
        "a == b",
        r#"{"a": "10.0.0.1", "b": "10.0.0.1"}"#
    ));
    assert!(
        error(
            p,
            "ip.in_cidr(cidr)",
            r#"{"ip": "10.0.0.1", "cidr": "10.0.0.0/33"}"#,
            "{}"
        )
        .contains("invalid CIDR string: `10.0.0.0/33`")
    );
    assert!(
        error(
            p,
            "ip.in_cidr(cidr)",
            r#"{"ip": "10.0.0.300", "cidr": "10.0.0.0/8"}"#,
            "{}"
        )
        .contains("parameter `ip` is declared `ipaddress`")
    );
}

#[test]
fn lists_maps_and_any() {
    assert!(is(
        "l list<string>",
        "'b' in l && l[0] == 'a' && l.size() == 2",
        r#"{"l": ["a", "b"]}"#
    ));
    assert!(!is("l list<string>", "'c' in l", r#"{"l": ["a", "b"]}"#));
    assert!(is(
        "l list<int>",
        "l.all(x, x > 0) && l.exists(x, x == 2) && l.exists_one(x, x == 3) && l.map(x, x * 2) == [2, 4, 6] && l.filter(x, x > 1) == [2, 3]",
        r#"{"l": [1, 2, 3]}"#
    ));
    assert!(is(
        "m map<int>",
        "m['k'] == 1 && m.k == 1 && 'k' in m && has(m.k) && !has(m.z)",
        r#"{"m": {"k": 1}}"#
    ));
    assert!(is(
        "m map<list<bool>>",
        "m.flags[1]",
        r#"{"m": {"flags": [false, true]}}"#
    ));
    assert!(is(
        "m map<int>",
        "m[?'z'].orValue(5) == 5 && m.?k.hasValue()",
        r#"{"m": {"k": 1}}"#
    ));
    // `any` keeps the JSON shape; numbers are doubles, as SpiceDB receives them.
    assert!(is(
        "a any",
        "a.x.y == 'z' && a.n == 1 && a.n == 1.0 && a.l[1] == true",
        r#"{"a": {"x": {"y": "z"}, "n": 1, "l": [null, true]}}"#
    ));
    assert!(is(
        "m map<any>",
        "m.isSubtreeOf({'a': 1.0, 'b': {'c': 'd'}, 'e': 2.0})",
        r#"{"m": {"a": 1, "b": {"c": "d"}}}"#
    ));
    assert!(!is(
        "m map<any>",
        "m.isSubtreeOf({'a': 2.0})",
        r#"{"m": {"a": 1}}"#
    ));
}

#[test]
fn relationship_context_wins_over_the_request() {
    let p = "a int";
    assert_eq!(
        run(p, "a == 1", r#"{"a": 1}"#, r#"{"a": 2}"#),
        CaveatResult::True
    );
    assert_eq!(run(p, "a == 1", "{}", r#"{"a": 2}"#), CaveatResult::False);
    // Entries that are not parameters are ignored.
    assert_eq!(
        run(p, "a == 1", "{}", r#"{"a": 1, "zzz": "x"}"#),
        CaveatResult::True
    );
}

#[test]
fn partial_evaluation_reports_only_what_is_still_needed() {
    // The cases of SpiceDB's pkg/caveats/eval_test.go.
    let ab = "a int, b int";
    assert_eq!(run("a int", "a + 2 == 4", "{}", "{}"), missing(&["a"]));
    assert_eq!(
        run(ab, "(a == 2) || (b == 6)", r#"{"a": 2}"#, "{}"),
        CaveatResult::True
    );
    assert_eq!(
        run(ab, "(a == 2) || (b == 6)", r#"{"b": 6}"#, "{}"),
        CaveatResult::True
    );
    assert_eq!(
        run(ab, "(a == 2) || (b == 6)", "{}", "{}"),
        missing(&["a", "b"])
    );
    assert_eq!(
        run(ab, "(a == 2) && (b == 6)", r#"{"b": 6}"#, "{}"),
        missing(&["a"])
    );
    assert_eq!(
        run(ab, "(a == 2) && (b == 6)", r#"{"a": 2}"#, "{}"),
        missing(&["b"])
    );
    assert_eq!(
        run(ab, "(a == 2) && (b == 6)", r#"{"b": 7}"#, "{}"),
        CaveatResult::False
    );
    let m = "m map<bool>, idx string";
    assert_eq!(run(m, "m[idx]", r#"{"idx": "1"}"#, "{}"), missing(&["m"]));
    assert_eq!(run("m map<bool>", "m.first", "{}", "{}"), missing(&["m"]));
    // Deeper: `?:` needs only its branch; functions and comprehensions propagate unknowns.
    let abc = "a int, b int, c bool";
    assert_eq!(
        run(abc, "c ? a == 1 : b == 1", r#"{"c": true, "a": 1}"#, "{}"),
        CaveatResult::True
    );
    assert_eq!(
        run(abc, "c ? a == 1 : b == 1", r#"{"c": false}"#, "{}"),
        missing(&["b"])
    );
    assert_eq!(run(abc, "c ? a == 1 : b == 1", "{}", "{}"), missing(&["c"]));
    assert_eq!(
        run(abc, "(a == 1 && c) || b == 2", r#"{"c": false}"#, "{}"),
        missing(&["b"])
    );
    assert_eq!(
        run(
            "l list<int>, x int",
            "l.exists(e, e == x)",
            r#"{"l": [1, 2]}"#,
            "{}"
        ),
        missing(&["x"])
    );
    assert_eq!(
        run(
            "l list<int>, x int",
            "l.exists(e, e == 2 || e == x)",
            r#"{"l": [1, 2]}"#,
            "{}"
        ),
        CaveatResult::True
    );
    assert_eq!(
        run(
            "l list<int>, x int",
            "l.exists(e, e == x)",
            "{}",
            r#"{"x": 1}"#
        ),
        missing(&["l"])
    );
    assert_eq!(
        run(
            "l list<int>, x int",
            "l.map(e, e + x).size() == 2",
            r#"{"l": [1, 2]}"#,
            "{}"
        ),
        missing(&["x"])
    );
    assert_eq!(
        run("x int", "[].exists(e, e == x)", "{}", "{}"),
        CaveatResult::False
    );
    // An error on one side of `||` is absorbed by a true other side, not by an unknown one.
    assert_eq!(
        run(ab, "a / 0 == 1 || b == 1", r#"{"a": 1, "b": 1}"#, "{}"),
        CaveatResult::True
    );
    assert_eq!(
        run(ab, "a / 0 == 1 || b == 1", r#"{"a": 1}"#, "{}"),
        missing(&["b"])
    );
}

#[test]
fn errors_name_the_caveat_parameter_value_and_relationship() {
    let e = error(
        "t timestamp",
        "t < timestamp('2030-01-01T00:00:00Z')",
        "{}",
        r#"{"t": "yesterday"}"#,
    );
    assert_eq!(
        e,
        "caveat `cav` could not be evaluated: parameter `t` is declared `timestamp`, but the request's context gives `\"yesterday\"`: expected an RFC 3339 timestamp string such as `2024-01-31T12:00:00Z`, found `\"yesterday\"` (relationship `doc:d#viewer@user:u`)"
    );
    let e = error("a int", "a == 1", r#"{"a": "one"}"#, "{}");
    assert!(
        e.contains("the relationship's context gives `\"one\"`"),
        "{e}"
    );
    let e = error("l list<int>", "l.size() == 1", r#"{"l": [1, "x"]}"#, "{}");
    assert!(e.contains("at index 1: expected an integer"), "{e}");
    let e = error("a int", "a / 0 == 1", r#"{"a": 1}"#, "{}");
    assert!(
        e.contains("evaluation failed") && e.contains("doc:d#viewer@user:u"),
        "{e}"
    );
    let e = error("m map<int>", "m.missing == 1", r#"{"m": {}}"#, "{}");
    assert!(e.contains("No such key"), "{e}");
}

#[test]
fn evaluation_cost_and_context_size_are_bounded() {
    let list: Vec<String> = (0..2000).map(|i| i.to_string()).collect();
    let context = format!(r#"{{"l": [{}]}}"#, list.join(","));
    // One pass over 2,000 elements is fine; 2,000 × 2,000 is over the budget.
    assert!(is("l list<int>", "l.exists(x, x == 1999)", &context));
    let e = error(
        "l list<int>",
        "l.exists(x, l.exists(y, x + y == -1))",
        &context,
        "{}",
    );
    assert!(e.contains("exceeded its cost limit"), "{e}");
    let big = format!(r#"{{"s": "{}"}}"#, "x".repeat(MAX_CONTEXT_BYTES));
    let e = error("s string", "s == ''", &big, "{}");
    assert!(e.contains("at most 65536 are allowed"), "{e}");
}

#[test]
fn formulas_simplify_with_three_valued_logic() {
    let s = schema::compile(
        "caveat cav_a(x int) { x == 1 }\ncaveat cav_b(y int) { y == 1 }\ndefinition user {}",
    )
    .unwrap();
    let leaf = |name: &str, json: &str| CaveatExpr::Caveat {
        name: name.to_string(),
        context: ctx(json),
        relationship: None,
    };
    let known_true = leaf("cav_a", r#"{"x": 1}"#);
    let known_false = leaf("cav_a", r#"{"x": 2}"#);
    let unknown = leaf("cav_b", "{}");
    let resolve_in = |e: &CaveatExpr| resolve(&s, e, &ContextMap::new()).unwrap();
    assert_eq!(
        resolve_in(&CaveatExpr::and(known_true.clone(), unknown.clone())),
        Resolved::Partial {
            expr: unknown.clone(),
            missing: BTreeSet::from(["y".to_string()])
        }
    );
    assert_eq!(
        resolve_in(&CaveatExpr::and(known_false.clone(), unknown.clone())),
        Resolved::False
    );
    assert_eq!(
        resolve_in(&CaveatExpr::or(unknown.clone(), known_true.clone())),
        Resolved::True
    );
    assert_eq!(
        resolve_in(&CaveatExpr::negate(CaveatExpr::or(
            known_false.clone(),
            unknown.clone()
        ))),
        Resolved::Partial {
            expr: CaveatExpr::negate(unknown.clone()),
            missing: BTreeSet::from(["y".to_string()])
        }
    );
    assert_eq!(resolve_in(&CaveatExpr::negate(known_false)), Resolved::True);
    // With the request's context, the unknown leaf decides.
    let with_y = ctx(r#"{"y": 1}"#);
    assert_eq!(
        resolve(&s, &CaveatExpr::and(known_true, unknown), &with_y).unwrap(),
        Resolved::True
    );
}

#[test]
fn the_deepest_expressions_compiled_evaluate_on_a_small_thread_stack() {
    // As deep as the compiler accepts: a long `+` chain, nested parentheses and `?:`.
    let chain = format!("a{} == 151", " + a".repeat(150));
    let parens = format!("{}a{} == 1", "(".repeat(40), ")".repeat(40));
    let ternary = format!("{}false", "a == 2 ? false : ".repeat(40));
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            for e in [&chain, &parens] {
                assert_eq!(run("a int", e, r#"{"a": 1}"#, "{}"), CaveatResult::True);
                assert_eq!(run("a int", e, "{}", "{}"), missing(&["a"]));
            }
            assert_eq!(
                run("a int", &ternary, r#"{"a": 1}"#, "{}"),
                CaveatResult::False
            );
        })
        .unwrap();
    handle.join().unwrap();
}
