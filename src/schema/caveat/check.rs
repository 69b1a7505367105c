//! The caveat type checker: walks the `cel` crate's AST of a caveat expression with the
//! declared parameter types and the functions SpiceDB's CEL environment offers (CEL's
//! standard library, optional values, `ipaddress.in_cidr`, `map.isSubtreeOf`), and reports
//! unknown names, operators and functions applied to the wrong types, and comprehensions it
//! cannot type. It also notes the timestamp getters called without a time zone, which SpiceDB
//! evaluates in UTC (its environment sets CEL's default time zone to UTC).

use std::collections::BTreeMap;

use cel::common::ast::{
    CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr, LiteralValue, SelectExpr, SourceInfo,
    operators,
};

use super::super::compiled::CaveatType;
use super::types::CelType;

/// Free stack below which the checker's recursion moves to a new stack segment.
const RED_ZONE_BYTES: usize = 128 * 1024;
/// Size of each new stack segment.
const SEGMENT_BYTES: usize = 2 * 1024 * 1024;

/// Most comprehensions (`all`, `exists`, `map`, ...) nested in one another: each level
/// multiplies the work of evaluation by the size of a list.
pub(super) const MAX_COMPREHENSION_NESTING: usize = 4;

/// Identifiers that name types (`type(x) == int`).
const TYPE_NAMES: &[&str] = &[
    "bool",
    "bytes",
    "double",
    "dyn",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "type",
    "uint",
    "google.protobuf.Duration",
    "google.protobuf.Timestamp",
];

/// Getters of a timestamp, each with an optional time-zone argument.
const TIMESTAMP_GETTERS: &[&str] = &[
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getFullYear",
    "getHours",
    "getMilliseconds",
    "getMinutes",
    "getMonth",
    "getSeconds",
];

/// Getters of a duration.
const DURATION_GETTERS: &[&str] = &["getHours", "getMilliseconds", "getMinutes", "getSeconds"];

/// Functions (global or member) the environment knows, for telling "wrong arguments" from
/// "no such function".
const KNOWN_FUNCTIONS: &[&str] = &[
    "bool",
    "bytes",
    "contains",
    "double",
    "duration",
    "dyn",
    "endsWith",
    "hasValue",
    "in_cidr",
    "int",
    "isSubtreeOf",
    "matches",
    "optional.none",
    "optional.of",
    "optional.ofNonZeroValue",
    "or",
    "orValue",
    "size",
    "startsWith",
    "string",
    "timestamp",
    "type",
    "uint",
    "value",
];

/// One problem, at a byte offset of the expression when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    pub(super) offset: Option<u32>,
    pub(super) message: String,
}

/// What checking found.
pub(super) struct Checked {
    /// The type of the whole expression.
    pub(super) result: CelType,
    /// Every problem, in the order found.
    pub(super) problems: Vec<Problem>,
    /// Parameters the expression refers to, in order of first reference.
    pub(super) referenced: Vec<String>,
    /// Ids of calls of timestamp getters without a time zone.
    pub(super) utc_calls: Vec<u64>,
}

/// Type-checks `expr` against `parameters`.
pub(super) fn check(
    expr: &IdedExpr,
    info: &SourceInfo,
    parameters: &[(String, CaveatType)],
) -> Checked {
    let mut checker = Checker {
        params: parameters
            .iter()
            .map(|(n, t)| (n.as_str(), CelType::of_parameter(t)))
            .collect(),
        info,
        problems: Vec::new(),
        referenced: Vec::new(),
        utc_calls: Vec::new(),
        comprehensions: 0,
    };
    let mut scope = Vec::new();
    let result = checker.check(expr, &mut scope, None);
    Checked {
        result,
        problems: checker.problems,
        referenced: checker.referenced,
        utc_calls: checker.utc_calls,
    }
}

/// Variables bound by enclosing comprehensions, innermost last.
type Scope = Vec<(String, CelType)>;

struct Checker<'a> {
    params: BTreeMap<&'a str, CelType>,
    info: &'a SourceInfo,
    problems: Vec<Problem>,
    referenced: Vec<String>,
    utc_calls: Vec<u64>,
    /// Comprehensions enclosing the node being checked.
    comprehensions: usize,
}

/// How an operator is written, for messages (`_+_` is `+`).
fn operator_text(name: &str) -> &str {
    match name {
        operators::ADD => "+",
        operators::SUBSTRACT => "-",
        operators::MULTIPLY => "*",
        operators::DIVIDE => "/",
        operators::MODULO => "%",
        operators::EQUALS => "==",
        operators::NOT_EQUALS => "!=",
        operators::LESS => "<",
        operators::LESS_EQUALS => "<=",
        operators::GREATER => ">",
        operators::GREATER_EQUALS => ">=",
        operators::IN => "in",
        operators::LOGICAL_AND => "&&",
        operators::LOGICAL_OR => "||",
        operators::LOGICAL_NOT => "!",
        operators::NEGATE => "-",
        operators::INDEX | operators::OPT_INDEX => "[]",
        operators::CONDITIONAL => "?:",
        other => other,
    }
}

/// `(int, string)`.
fn type_list(types: &[CelType]) -> String {
    let shown: Vec<String> = types.iter().map(ToString::to_string).collect();
    format!("({})", shown.join(", "))
}

/// The result types of the arithmetic overloads of `op` on (lhs, rhs), open types matching
/// anything.
fn arithmetic(op: &str, lhs: &CelType, rhs: &CelType) -> Option<CelType> {
    use CelType::{Bytes, Double, Duration, Int, String, Timestamp, UInt};
    if op == operators::ADD && (matches!(lhs, CelType::List(_)) || matches!(rhs, CelType::List(_)))
    {
        let elem = |t: &CelType| match t {
            CelType::List(e) => Some((**e).clone()),
            t if t.is_open() => Some(CelType::Free),
            _ => None,
        };
        return Some(CelType::List(Box::new(CelType::join(
            &elem(lhs)?,
            &elem(rhs)?,
        )?)));
    }
    let table: &[(CelType, CelType, CelType)] = match op {
        operators::ADD => &[
            (Int, Int, Int),
            (UInt, UInt, UInt),
            (Double, Double, Double),
            (String, String, String),
            (Bytes, Bytes, Bytes),
            (Timestamp, Duration, Timestamp),
            (Duration, Timestamp, Timestamp),
            (Duration, Duration, Duration),
        ],
        operators::SUBSTRACT => &[
            (Int, Int, Int),
            (UInt, UInt, UInt),
            (Double, Double, Double),
            (Timestamp, Timestamp, Duration),
            (Timestamp, Duration, Timestamp),
            (Duration, Duration, Duration),
        ],
        operators::MULTIPLY | operators::DIVIDE => &[
            (Int, Int, Int),
            (UInt, UInt, UInt),
            (Double, Double, Double),
        ],
        operators::MODULO => &[(Int, Int, Int), (UInt, UInt, UInt)],
        _ => &[],
    };
    let mut results = table
        .iter()
        .filter(|(l, r, _)| lhs.fits(l) && rhs.fits(r))
        .map(|(_, _, out)| out);
    let first = results.next()?;
    if results.all(|r| r == first) {
        Some(first.clone())
    } else {
        Some(CelType::Dyn)
    }
}

impl Checker<'_> {
    fn problem(&mut self, at: Option<u32>, message: String) -> CelType {
        self.problems.push(Problem {
            offset: at,
            message,
        });
        CelType::Error
    }

    fn check(&mut self, e: &IdedExpr, scope: &mut Scope, at: Option<u32>) -> CelType {
        let at = self.info.offset_for(e.id).map(|(start, _)| start).or(at);
        stacker::maybe_grow(RED_ZONE_BYTES, SEGMENT_BYTES, || self.node(e, scope, at))
    }

    fn node(&mut self, e: &IdedExpr, scope: &mut Scope, at: Option<u32>) -> CelType {
        match &e.expr {
            Expr::Unspecified => self.problem(at, "empty expression".to_string()),
            Expr::Literal(l) => match l {
                LiteralValue::Boolean(_) => CelType::Bool,
                LiteralValue::Bytes(_) => CelType::Bytes,
                LiteralValue::Double(_) => CelType::Double,
                LiteralValue::Int(_) => CelType::Int,
                LiteralValue::Null => CelType::Null,
                LiteralValue::String(_) => CelType::String,
                LiteralValue::UInt(_) => CelType::UInt,
            },
            Expr::Ident(name) => self.ident(name, scope, at),
            Expr::Select(select) => self.select(select, scope, at),
            Expr::Call(call) => self.call(e.id, call, scope, at),
            Expr::List(list) => {
                let mut elem = CelType::Free;
                for (index, item) in list.elements.iter().enumerate() {
                    let mut t = self.check(item, scope, at);
                    if list.optional_indices.contains(&index) {
                        t = match t {
                            CelType::Optional(inner) => *inner,
                            t if t.is_open() => t,
                            other => {
                                return self.problem(
                                    at,
                                    format!("`?` list element must be optional, found `{other}`"),
                                );
                            }
                        };
                    }
                    elem = CelType::join_or_dyn(&elem, &t);
                }
                CelType::List(Box::new(elem))
            }
            Expr::Map(map) => {
                let (mut key, mut value) = (CelType::Free, CelType::Free);
                for entry in &map.entries {
                    let EntryExpr::MapEntry(entry) = &entry.expr else {
                        return self.problem(at, "struct fields in a map literal".to_string());
                    };
                    let k = self.check(&entry.key, scope, at);
                    if !k.is_open()
                        && !matches!(
                            k,
                            CelType::Int | CelType::UInt | CelType::String | CelType::Bool
                        )
                    {
                        return self.problem(
                            at,
                            format!(
                                "map keys must be `int`, `uint`, `string` or `bool`, found `{k}`"
                            ),
                        );
                    }
                    let mut v = self.check(&entry.value, scope, at);
                    if entry.optional {
                        v = match v {
                            CelType::Optional(inner) => *inner,
                            t if t.is_open() => t,
                            other => {
                                return self.problem(
                                    at,
                                    format!("`?` map entry must be optional, found `{other}`"),
                                );
                            }
                        };
                    }
                    key = CelType::join_or_dyn(&key, &k);
                    value = CelType::join_or_dyn(&value, &v);
                }
                CelType::Map(Box::new(key), Box::new(value))
            }
            Expr::Struct(s) => self.problem(
                at,
                format!(
                    "message construction `{}{{...}}` is not supported in caveats",
                    s.type_name
                ),
            ),
            Expr::Comprehension(c) => self.comprehension(c, scope, at),
        }
    }

    fn ident(&mut self, name: &str, scope: &Scope, at: Option<u32>) -> CelType {
        if let Some((_, t)) = scope.iter().rev().find(|(n, _)| n == name) {
            return t.clone();
        }
        if let Some(t) = self.params.get(name) {
            let t = t.clone();
            if !self.referenced.iter().any(|r| r == name) {
                self.referenced.push(name.to_string());
            }
            return t;
        }
        if TYPE_NAMES.contains(&name) {
            return CelType::Type;
        }
        self.problem(at, format!("undeclared reference to `{name}`"))
    }

    /// Whether `name` is a variable here (a parameter or a comprehension variable).
    fn is_variable(&self, name: &str, scope: &Scope) -> bool {
        scope.iter().any(|(n, _)| n == name) || self.params.contains_key(name)
    }

    fn select(&mut self, select: &SelectExpr, scope: &mut Scope, at: Option<u32>) -> CelType {
        if !select.test
            && let Some(name) = qualified_name(&select.operand)
        {
            let full = format!("{name}.{}", select.field);
            if TYPE_NAMES.contains(&full.as_str()) && !self.is_variable(root(&name), scope) {
                return CelType::Type;
            }
        }
        let operand = self.check(&select.operand, scope, at);
        let field = &select.field;
        match operand {
            CelType::Map(k, v) if k.fits(&CelType::String) => {
                if select.test {
                    CelType::Bool
                } else {
                    *v
                }
            }
            t if t.is_open() => {
                if select.test {
                    CelType::Bool
                } else if t == CelType::Error {
                    CelType::Error
                } else {
                    CelType::Dyn
                }
            }
            other => {
                let what = if select.test { "has() on" } else { "field" };
                self.problem(
                    at,
                    format!("type `{other}` does not support field selection ({what} `.{field}`)"),
                )
            }
        }
    }

    fn call(&mut self, id: u64, call: &CallExpr, scope: &mut Scope, at: Option<u32>) -> CelType {
        let name = call.func_name.as_str();
        if call.target.is_none()
            && let Some(t) = self.operator(name, &call.args, scope, at)
        {
            return t;
        }
        // `optional.of(x)`: a function named by a qualified name, not a method of a variable.
        let mut receiver = None;
        let mut function = name.to_string();
        if let Some(target) = &call.target {
            match qualified_name(target) {
                Some(prefix)
                    if !self.is_variable(root(&prefix), scope)
                        && KNOWN_FUNCTIONS.contains(&format!("{prefix}.{name}").as_str()) =>
                {
                    function = format!("{prefix}.{name}");
                }
                _ => receiver = Some(self.check(target, scope, at)),
            }
        }
        let args: Vec<CelType> = call.args.iter().map(|a| self.check(a, scope, at)).collect();
        if receiver.as_ref() == Some(&CelType::Error) || args.contains(&CelType::Error) {
            return CelType::Error;
        }
        match self.function(id, &function, receiver.as_ref(), &args) {
            Some(t) => t,
            None => {
                let shown = match &receiver {
                    Some(r) => format!("{r}.{function}{}", type_list(&args)),
                    None => format!("{function}{}", type_list(&args)),
                };
                if KNOWN_FUNCTIONS.contains(&function.as_str())
                    || TIMESTAMP_GETTERS.contains(&function.as_str())
                {
                    self.problem(
                        at,
                        format!("no matching overload of `{function}` for `{shown}`"),
                    )
                } else {
                    self.problem(at, format!("undeclared function `{function}`"))
                }
            }
        }
    }

    /// Operators (calls without a target); `None` if `name` is not one.
    fn operator(
        &mut self,
        name: &str,
        args: &[IdedExpr],
        scope: &mut Scope,
        at: Option<u32>,
    ) -> Option<CelType> {
        let arity = match name {
            operators::LOGICAL_NOT | operators::NEGATE | operators::NOT_STRICTLY_FALSE => 1,
            operators::CONDITIONAL => 3,
            operators::LOGICAL_AND
            | operators::LOGICAL_OR
            | operators::EQUALS
            | operators::NOT_EQUALS
            | operators::LESS
            | operators::LESS_EQUALS
            | operators::GREATER
            | operators::GREATER_EQUALS
            | operators::ADD
            | operators::SUBSTRACT
            | operators::MULTIPLY
            | operators::DIVIDE
            | operators::MODULO
            | operators::IN
            | operators::INDEX
            | operators::OPT_INDEX
            | operators::OPT_SELECT => 2,
            _ => return None,
        };
        if args.len() != arity {
            return Some(self.problem(
                at,
                format!("operator `{}` takes {arity} operands", operator_text(name)),
            ));
        }
        if name == operators::OPT_SELECT {
            let operand = self.check(args.first()?, scope, at);
            return Some(self.optional_select(operand, at));
        }
        let types: Vec<CelType> = args.iter().map(|a| self.check(a, scope, at)).collect();
        if types.contains(&CelType::Error) {
            return Some(CelType::Error);
        }
        let (a, b, c) = (types.first()?, types.get(1), types.get(2));
        let mismatch = |types: &[CelType]| {
            format!(
                "operator `{}` cannot be applied to `{}`",
                operator_text(name),
                type_list(types)
            )
        };
        let result = match (name, b, c) {
            (operators::LOGICAL_NOT, _, _) => a.fits(&CelType::Bool).then_some(CelType::Bool),
            (operators::NOT_STRICTLY_FALSE, _, _) => Some(CelType::Bool),
            (operators::NEGATE, _, _) => match a {
                CelType::Int | CelType::Double => Some(a.clone()),
                t if t.is_open() => Some(CelType::Dyn),
                _ => None,
            },
            (operators::CONDITIONAL, Some(b), Some(c)) => {
                if !a.fits(&CelType::Bool) {
                    return Some(self.problem(
                        at,
                        format!("the condition of `?:` must be a `bool`, found `{a}`"),
                    ));
                }
                CelType::join(b, c)
            }
            (operators::LOGICAL_AND | operators::LOGICAL_OR, Some(b), _) => {
                (a.fits(&CelType::Bool) && b.fits(&CelType::Bool)).then_some(CelType::Bool)
            }
            (operators::EQUALS | operators::NOT_EQUALS, Some(b), _) => {
                (a.fits(b) || b.fits(a)).then_some(CelType::Bool)
            }
            (
                operators::LESS
                | operators::LESS_EQUALS
                | operators::GREATER
                | operators::GREATER_EQUALS,
                Some(b),
                _,
            ) => a.orders_with(b).then_some(CelType::Bool),
            (
                operators::ADD
                | operators::SUBSTRACT
                | operators::MULTIPLY
                | operators::DIVIDE
                | operators::MODULO,
                Some(b),
                _,
            ) => arithmetic(name, a, b),
            (operators::IN, Some(b), _) => match b {
                CelType::List(e) => a.fits(e).then_some(CelType::Bool),
                CelType::Map(k, _) => a.fits(k).then_some(CelType::Bool),
                t if t.is_open() => Some(CelType::Bool),
                _ => None,
            },
            (operators::INDEX | operators::OPT_INDEX, Some(b), _) => {
                let optional = name == operators::OPT_INDEX;
                self.index(a, b, optional)
            }
            _ => None,
        };
        Some(match result {
            Some(t) => t,
            None => self.problem(at, mismatch(&types)),
        })
    }

    /// `container[index]` (`optional`: `container[?index]`).
    fn index(&self, container: &CelType, index: &CelType, optional: bool) -> Option<CelType> {
        let wrap = |t: CelType| {
            if optional && !matches!(t, CelType::Optional(_)) {
                CelType::Optional(Box::new(t))
            } else {
                t
            }
        };
        match container {
            CelType::List(e) => (index.fits(&CelType::Int) || index.fits(&CelType::UInt))
                .then(|| wrap((**e).clone())),
            CelType::Map(k, v) => index.fits(k).then(|| wrap((**v).clone())),
            CelType::Optional(inner) => self.index(inner, index, optional).map(|t| match t {
                CelType::Optional(_) => t,
                other => CelType::Optional(Box::new(other)),
            }),
            t if t.is_open() => Some(wrap(CelType::Dyn)),
            _ => None,
        }
    }

    /// `operand.?field`.
    fn optional_select(&mut self, operand: CelType, at: Option<u32>) -> CelType {
        match operand {
            CelType::Map(k, v) if k.fits(&CelType::String) => CelType::Optional(v),
            CelType::Optional(inner) => match *inner {
                CelType::Map(k, v) if k.fits(&CelType::String) => CelType::Optional(v),
                t if t.is_open() => CelType::Optional(Box::new(CelType::Dyn)),
                other => self.problem(
                    at,
                    format!("type `optional({other})` does not support field selection"),
                ),
            },
            CelType::Error => CelType::Error,
            t if t.is_open() => CelType::Optional(Box::new(CelType::Dyn)),
            other => self.problem(
                at,
                format!("type `{other}` does not support field selection"),
            ),
        }
    }

    /// The result of calling `name` (a member function when `receiver` is given).
    fn function(
        &mut self,
        id: u64,
        name: &str,
        receiver: Option<&CelType>,
        args: &[CelType],
    ) -> Option<CelType> {
        use CelType as T;
        let is = |t: &CelType, want: &CelType| t.fits(want);
        let one_of = |t: &CelType, wants: &[CelType]| t.is_open() || wants.contains(t);
        match (name, receiver, args) {
            ("size", None, [x]) | ("size", Some(x), []) => (x.is_open()
                || matches!(x, T::String | T::Bytes | T::List(_) | T::Map(..)))
            .then_some(T::Int),
            ("contains" | "startsWith" | "endsWith" | "matches", Some(s), [x]) => {
                (is(s, &T::String) && is(x, &T::String)).then_some(T::Bool)
            }
            ("matches", None, [s, x]) => {
                (is(s, &T::String) && is(x, &T::String)).then_some(T::Bool)
            }
            ("int", None, [x]) => {
                one_of(x, &[T::Int, T::UInt, T::Double, T::String, T::Timestamp]).then_some(T::Int)
            }
            ("uint", None, [x]) => {
                one_of(x, &[T::Int, T::UInt, T::Double, T::String]).then_some(T::UInt)
            }
            ("double", None, [x]) => {
                one_of(x, &[T::Int, T::UInt, T::Double, T::String]).then_some(T::Double)
            }
            ("string", None, [x]) => one_of(
                x,
                &[
                    T::Int,
                    T::UInt,
                    T::Double,
                    T::Bool,
                    T::String,
                    T::Bytes,
                    T::Timestamp,
                    T::Duration,
                ],
            )
            .then_some(T::String),
            ("bytes", None, [x]) => one_of(x, &[T::String, T::Bytes]).then_some(T::Bytes),
            ("bool", None, [x]) => one_of(x, &[T::Bool, T::String]).then_some(T::Bool),
            ("timestamp", None, [x]) => {
                one_of(x, &[T::String, T::Int, T::Timestamp]).then_some(T::Timestamp)
            }
            ("duration", None, [x]) => one_of(x, &[T::String, T::Duration]).then_some(T::Duration),
            ("dyn", None, [_]) => Some(T::Dyn),
            ("type", None, [_]) => Some(T::Type),
            (getter, Some(r), args) if TIMESTAMP_GETTERS.contains(&getter) => match (r, args) {
                (T::Timestamp, []) => {
                    self.utc_calls.push(id);
                    Some(T::Int)
                }
                (T::Timestamp, [tz]) => is(tz, &T::String).then_some(T::Int),
                (T::Duration, []) => DURATION_GETTERS.contains(&getter).then_some(T::Int),
                (r, []) if r.is_open() => Some(T::Int),
                (r, [tz]) if r.is_open() => is(tz, &T::String).then_some(T::Int),
                _ => None,
            },
            ("optional.of" | "optional.ofNonZeroValue", None, [x]) => {
                Some(T::Optional(Box::new(x.clone())))
            }
            ("optional.none", None, []) => Some(T::Optional(Box::new(T::Free))),
            ("hasValue", Some(o), []) => {
                (o.is_open() || matches!(o, T::Optional(_))).then_some(T::Bool)
            }
            ("value", Some(o), []) => match o {
                T::Optional(inner) => Some((**inner).clone()),
                o if o.is_open() => Some(T::Dyn),
                _ => None,
            },
            ("orValue", Some(o), [x]) => match o {
                T::Optional(inner) => T::join(inner, x),
                o if o.is_open() => Some(T::Dyn),
                _ => None,
            },
            ("or", Some(o), [x]) => match (o, x) {
                (T::Optional(a), T::Optional(b)) => Some(T::Optional(Box::new(T::join(a, b)?))),
                (o, x) if o.is_open() || x.is_open() => Some(T::Optional(Box::new(T::Dyn))),
                _ => None,
            },
            ("in_cidr", Some(ip), [cidr]) => {
                (is(ip, &T::IpAddress) && is(cidr, &T::String)).then_some(T::Bool)
            }
            ("isSubtreeOf", Some(a), [b]) => {
                let map =
                    |t: &CelType| t.is_open() || matches!(t, T::Map(k, _) if k.fits(&T::String));
                (map(a) && map(b)).then_some(T::Bool)
            }
            _ => None,
        }
    }

    fn comprehension(
        &mut self,
        c: &ComprehensionExpr,
        scope: &mut Scope,
        at: Option<u32>,
    ) -> CelType {
        if c.iter_var2.is_some() {
            return self.problem(
                at,
                "comprehensions over two variables are not supported".to_string(),
            );
        }
        if self.comprehensions >= MAX_COMPREHENSION_NESTING {
            return self.problem(
                at,
                format!(
                    "comprehensions (`all`, `exists`, `map`, ...) are nested more than {MAX_COMPREHENSION_NESTING} deep"
                ),
            );
        }
        let range = self.check(&c.iter_range, scope, at);
        let elem = match &range {
            CelType::List(e) => (**e).clone(),
            CelType::Map(k, _) => (**k).clone(),
            CelType::Error => CelType::Error,
            t if t.is_open() => CelType::Dyn,
            other => {
                return self.problem(at, format!("cannot iterate over a value of type `{other}`"));
            }
        };
        let init = self.check(&c.accu_init, scope, at);
        self.comprehensions += 1;
        scope.push((c.iter_var.clone(), elem));
        // `map` and `filter` start from `[]`: learn the element type from one step, quietly.
        let mut accu = init.clone();
        if init.has_free() {
            let (problems, utc, referenced) = (
                self.problems.len(),
                self.utc_calls.len(),
                self.referenced.len(),
            );
            scope.push((c.accu_var.clone(), init.clone()));
            let step = self.check(&c.loop_step, scope, at);
            scope.pop();
            self.problems.truncate(problems);
            self.utc_calls.truncate(utc);
            self.referenced.truncate(referenced);
            accu = CelType::join(&init, &step).unwrap_or(init.clone());
        }
        scope.push((c.accu_var.clone(), accu.clone()));
        let cond = self.check(&c.loop_cond, scope, at);
        let step = self.check(&c.loop_step, scope, at);
        scope.pop();
        scope.pop();
        self.comprehensions -= 1;
        if !cond.fits(&CelType::Bool) {
            return self.problem(
                at,
                format!("the loop condition must be a `bool`, found `{cond}`"),
            );
        }
        if !(step.fits(&accu) || accu.fits(&step)) {
            return self.problem(
                at,
                format!("the loop step gives `{step}` where `{accu}` is accumulated"),
            );
        }
        scope.push((c.accu_var.clone(), accu));
        let result = self.check(&c.result, scope, at);
        scope.pop();
        result
    }
}

/// The dotted name an expression spells (`a.b.c`), if it is only identifiers and fields.
fn qualified_name(e: &IdedExpr) -> Option<String> {
    match &e.expr {
        Expr::Ident(name) => Some(name.clone()),
        Expr::Select(s) if !s.test => Some(format!("{}.{}", qualified_name(&s.operand)?, s.field)),
        _ => None,
    }
}

/// The first segment of a dotted name.
fn root(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}
