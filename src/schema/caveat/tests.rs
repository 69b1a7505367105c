//! Tests of caveat type-checking: every parameter type and operator family, errors mapped to
//! the schema's line:column, and the compile-time limits.

use super::super::{Schema, compile as compile_schema};
use super::*;

fn schema(params: &str, expression: &str) -> Result<Schema, Vec<String>> {
    compile_schema(&format!("caveat cav({params}) {{\n  {expression}\n}}\n"))
        .map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
}

fn ok(params: &str, expression: &str) {
    if let Err(e) = schema(params, expression) {
        panic!("`{expression}` should type-check:\n{}", e.join("\n"));
    }
}

fn err(params: &str, expression: &str) -> String {
    match schema(params, expression) {
        Ok(_) => panic!("`{expression}` should not type-check"),
        Err(e) => e.join("\n"),
    }
}

#[test]
fn every_parameter_type_checks_in_its_operators() {
    let cases: &[(&str, &str)] = &[
        (
            "a int",
            "a + 1 > 2 && a % 2 == 0 && -a < 0 && a / 2 * 3 != 7",
        ),
        ("a uint, b uint", "a < b && a == b"),
        ("a uint", "a > 5"),
        ("u uint", "u + 1 == 2 || u >= 0.5"),
        // As SpiceDB, which declares `uint` parameters as CEL `int`s.
        ("u uint", "u < 10u"),
        ("d double", "d * 2.0 >= 1.5 && d < 3 && double(1) == d"),
        ("b bool", "!b || b == true"),
        (
            "s string",
            "s.startsWith('a') && s.endsWith(\"z\") && s.contains('m') && s.size() > 2 && size(s) < 9 && s.matches('^a.*z$') && s + 'x' != s",
        ),
        ("b bytes", "b == b'abc' && size(b) == 3 && b + b'd' != b"),
        (
            "d duration",
            "d > duration('1h') && d + d < duration('5h') && d.getHours() >= 1",
        ),
        (
            "t timestamp, d duration",
            "t + d > timestamp('2024-01-01T00:00:00Z') && t - d < t && t - t == duration('0s') && t.getHours() == 9 && t.getDayOfWeek('Europe/Paris') >= 0",
        ),
        ("ip ipaddress", "ip.in_cidr('10.0.0.0/8')"),
        ("ip ipaddress, other ipaddress", "ip == other"),
        (
            "l list<string>",
            "'a' in l && l.size() > 0 && l[0] == 'a' && l + ['b'] != l",
        ),
        (
            "l list<int>",
            "l.all(x, x > 0) && l.exists(x, x == 2) && l.exists_one(x, x == 3) && l.map(x, x * 2)[0] == 2 && l.filter(x, x > 1).size() >= 0",
        ),
        (
            "m map<int>",
            "m['k'] == 1 && m.k == 1 && 'k' in m && has(m.k) && m.size() == 1",
        ),
        (
            "m map<list<bool>>",
            "m.flags[0] && m.all(k, k.startsWith('f'))",
        ),
        ("m map<any>", "m.isSubtreeOf({'a': 1}) && m.a.b == 'c'"),
        ("a any", "a == 1 && a.b.c && a[0] > 2 && a + 1 == 2"),
        (
            "m map<int>",
            "m[?'k'].orValue(0) == 1 && m.?k.hasValue() && optional.of(1).value() == 1",
        ),
        (
            "a int",
            "type(a) == int && dyn(a) == 1 && string(a) == '1' && int('1') == a",
        ),
        ("a int", "a == 1 ? true : false"),
        (
            "a int",
            "[1, 'two', 3.0].size() == a && {'x': 1, 'y': 'z'}.size() == 2",
        ),
    ];
    for (params, expression) in cases {
        ok(params, expression);
    }
}

#[test]
fn unknown_names_are_errors_at_their_position() {
    assert_eq!(
        err("a int", "a == 1 && b == 2"),
        "2:13: caveat `cav`: undeclared reference to `b`"
    );
    assert_eq!(
        err("a int", "a == 1 &&\n  missing(a)"),
        "3:10: caveat `cav`: undeclared function `missing`"
    );
    // A comprehension variable is only bound inside its comprehension.
    assert!(
        err("l list<int>", "l.all(x, x > 0) && x == 1").contains("undeclared reference to `x`")
    );
}

#[test]
fn type_mismatches_are_errors() {
    assert_eq!(
        err("a int, s string", "a + s == 1"),
        "2:5: caveat `cav`: operator `+` cannot be applied to `(int, string)`"
    );
    assert!(
        err("a int", "a == 'x'").contains("operator `==` cannot be applied to `(int, string)`")
    );
    assert!(
        err("a int", "a + 1.0 > 2.0").contains("operator `+` cannot be applied to `(int, double)`")
    );
    assert!(err("s string", "s < 1").contains("operator `<` cannot be applied to `(string, int)`"));
    assert!(err("l list<int>", "'a' in l").contains("operator `in` cannot be applied"));
    assert!(
        err("a int", "a.size() > 0").contains("no matching overload of `size` for `int.size()`")
    );
    assert!(
        err("s string", "s.in_cidr('10.0.0.0/8')").contains("no matching overload of `in_cidr`")
    );
    assert!(
        err("ip ipaddress", "ip == '10.0.0.1'")
            .contains("cannot be applied to `(ipaddress, string)`")
    );
    assert!(err("a int", "a.field == 1").contains("type `int` does not support field selection"));
    assert!(err("a int", "!a").contains("operator `!` cannot be applied to `(int)`"));
    assert!(err("a int", "a ? true : false").contains("condition of `?:` must be a `bool`"));
    assert!(err("a int", "a == 1 ? 1 : 'x'").contains("operator `?:` cannot be applied"));
    assert!(err("a int", "a.all(x, x > 0)").contains("cannot iterate over a value of type `int`"));
}

#[test]
fn the_result_must_be_a_bool() {
    assert_eq!(
        err("a int", "a + 1"),
        "2:3: caveat `cav`: the expression must evaluate to a `bool`, but its type is `int`"
    );
    // As SpiceDB: a `dyn` result (an `any` parameter alone) is not a `bool`.
    assert!(err("a any", "a").contains("its type is `dyn`"));
    assert!(err("m map<int>", "m.k").contains("its type is `int`"));
}

#[test]
fn parse_errors_point_into_the_schema() {
    let e = err("a int", "a == 1 &&\n  (a > ");
    assert!(
        e.starts_with("3:7: invalid CEL in caveat `cav`: mismatched input"),
        "{e}"
    );
    let e = err("a int", "a == 1 2");
    assert!(
        e.starts_with("2:10: invalid CEL in caveat `cav`: extraneous input '2'"),
        "{e}"
    );
}

#[test]
fn timestamp_getters_default_to_utc() {
    let s = schema(
        "t timestamp",
        "t.getHours() == 9 && t.getMinutes('UTC') == 0",
    )
    .unwrap();
    let program = s.caveat("cav").unwrap().program();
    let text = format!("{:?}", program.expression());
    assert_eq!(text.matches("String(\"UTC\")").count(), 2, "{text}");
    assert_eq!(program.referenced_parameters(), ["t"]);
}

#[test]
fn limits_are_errors_not_crashes() {
    let long = format!("a == 1{}", " || a == 1".repeat(MAX_EXPRESSION_CHARS / 10));
    assert!(err("a int", &long).contains("characters long; at most 100000 are allowed"));
    let deep = format!("{}a{} == 1", "(".repeat(200), ")".repeat(200));
    assert!(err("a int", &deep).contains("nested too deeply"));
    let chain = format!("a{} == 1", " + a".repeat(300));
    assert!(err("a int", &chain).contains("nested too deeply"));
    let nested = "l.all(a, l.all(b, l.all(c, l.all(d, l.all(e, a == e)))))";
    assert!(err("l list<int>", nested).contains("nested more than 4 deep"));
    // Just inside the limits: parses, checks, and compiles.
    let inside = format!("{}a{} == 1", "(".repeat(40), ")".repeat(40));
    ok("a int", &inside);
    let chain = format!("a{} == 1", " + a".repeat(150));
    ok("a int", &chain);
}
