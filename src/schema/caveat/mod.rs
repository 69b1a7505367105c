//! The CEL side of caveat declarations: parses each expression with the `cel` crate, bounds
//! its size, type-checks it against the declared parameters as SpiceDB's caveat environment
//! would (`check`), and keeps the checked syntax tree in a `CaveatProgram` for evaluation.
//! Errors point into the schema text through the expression's span.

mod check;
mod scan;
mod types;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, LazyLock};

use cel::common::ast::{CallExpr, Expr, IdedExpr, LiteralValue, SourceInfo};
use cel::common::types::CelString;

use super::compiled::{CaveatType, Span};
use super::error::SchemaError;

pub(crate) use types::CelType;

/// Longest caveat expression accepted, in characters (SpiceDB's limit).
pub const MAX_EXPRESSION_CHARS: usize = 100_000;

/// Deepest parse accepted, in the units of `scan::too_deep`: a bracket level counts 4, each
/// operator of a left-associative chain (`a + b`, `x.y`, `l[0]`) 1. Real caveats stay far
/// below; the bound keeps the parser's recursion within `PARSE_STACK_BYTES`.
pub const MAX_PARSE_DEPTH: u32 = 256;

/// Stack given to the CEL parser. Its recursion is deep and its frames large (over 20 KiB a
/// level in debug builds); within `MAX_PARSE_DEPTH` it needs well under this. Only the pages
/// touched are committed.
const PARSE_STACK_BYTES: usize = 256 * 1024 * 1024;

/// The environment whose parser (macros, optional syntax) caveats are read with.
static PARSE_ENV: LazyLock<cel::Env> = LazyLock::new(cel::Env::stdlib);

/// A type-checked caveat expression, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct CaveatProgram {
    expr: Arc<IdedExpr>,
    referenced: Vec<String>,
    depth: usize,
}

impl CaveatProgram {
    /// The checked syntax tree (macros expanded; timestamp getters without a time zone are
    /// given `"UTC"`, as SpiceDB evaluates them).
    pub fn expression(&self) -> &IdedExpr {
        &self.expr
    }

    /// The parameters the expression refers to, in order of first reference.
    pub fn referenced_parameters(&self) -> &[String] {
        &self.referenced
    }

    /// The height of the syntax tree (a literal alone is 1): how deep an interpreter walking
    /// it recurses.
    pub fn depth(&self) -> usize {
        self.depth
    }
}

/// Parses and type-checks the expression of caveat `caveat`, whose text starts at `start`
/// in the schema. Every problem comes back with its position in the schema.
pub(crate) fn compile(
    caveat: &str,
    parameters: &[(String, CaveatType)],
    expression: &str,
    start: Span,
) -> Result<CaveatProgram, Vec<SchemaError>> {
    let at = |line: usize, column: usize| span_at(start, line, column);
    let length = expression.chars().count();
    if length > MAX_EXPRESSION_CHARS {
        return Err(vec![SchemaError {
            span: start,
            message: format!(
                "the expression of caveat `{caveat}` is {length} characters long; at most {MAX_EXPRESSION_CHARS} are allowed"
            ),
        }]);
    }
    if let Some(offset) = scan::too_deep(expression, MAX_PARSE_DEPTH) {
        let (line, column) = line_column_of_char(expression, offset);
        return Err(vec![SchemaError {
            span: at(line, column),
            message: format!(
                "the expression of caveat `{caveat}` is nested too deeply (brackets, `?:` and chains of operators such as `a + b + c` or `x.y.z`)"
            ),
        }]);
    }
    let (expr, info) = parse(caveat, expression, start)?;
    let checked = check::check(&expr, &info, parameters);
    let position = |offset: Option<u32>| match offset {
        Some(o) => {
            let (line, column) = line_column_of_byte(expression, o as usize);
            at(line, column)
        }
        None => start,
    };
    let mut errors: Vec<SchemaError> = checked
        .problems
        .iter()
        .map(|p| SchemaError {
            span: position(p.offset),
            message: format!("caveat `{caveat}`: {}", p.message),
        })
        .collect();
    if errors.is_empty() && checked.result != CelType::Bool {
        errors.push(SchemaError {
            span: start,
            message: format!(
                "caveat `{caveat}`: the expression must evaluate to a `bool`, but its type is `{}`",
                checked.result
            ),
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut expr = expr;
    if !checked.utc_calls.is_empty() {
        let mut next_id = max_id(&expr).saturating_add(1);
        add_utc(&mut expr, &checked.utc_calls, &mut next_id);
    }
    Ok(CaveatProgram {
        depth: height(&expr),
        expr: Arc::new(expr),
        referenced: checked.referenced,
    })
}

/// Parses on a stack of its own; a panic inside the parser (a bug there) is reported as an
/// error instead of taking the process down.
fn parse(
    caveat: &str,
    expression: &str,
    start: Span,
) -> Result<(IdedExpr, SourceInfo), Vec<SchemaError>> {
    let parsed = stacker::grow(PARSE_STACK_BYTES, || {
        catch_unwind(AssertUnwindSafe(|| {
            PARSE_ENV.parser().parse_with_source_info(expression)
        }))
    });
    match parsed {
        Ok(Ok(parsed)) => Ok(parsed),
        Ok(Err(errors)) => {
            let mut out: Vec<SchemaError> = errors
                .errors
                .iter()
                .map(|e| {
                    let (line, column) = e.pos;
                    let span = match (usize::try_from(line), usize::try_from(column)) {
                        (Ok(l), Ok(c)) if l > 0 && c > 0 => span_at(start, l, c),
                        _ => start,
                    };
                    let message = e
                        .msg
                        .strip_prefix("Syntax error: ")
                        .unwrap_or(&e.msg)
                        .to_string();
                    SchemaError {
                        span,
                        message: format!("invalid CEL in caveat `{caveat}`: {message}"),
                    }
                })
                .collect();
            if out.is_empty() {
                out.push(SchemaError {
                    span: start,
                    message: format!("invalid CEL in caveat `{caveat}`"),
                });
            }
            Err(out)
        }
        Err(_) => Err(vec![SchemaError {
            span: start,
            message: format!("the expression of caveat `{caveat}` could not be parsed"),
        }]),
    }
}

/// The schema position of 1-based `line` and `column` (in characters) of the expression
/// text that starts at `start`.
fn span_at(start: Span, line: usize, column: usize) -> Span {
    let line_offset = u32::try_from(line.saturating_sub(1)).unwrap_or(u32::MAX);
    let column = u32::try_from(column).unwrap_or(u32::MAX);
    if line_offset == 0 {
        Span {
            line: start.line,
            column: start.column.saturating_add(column.saturating_sub(1)),
        }
    } else {
        Span {
            line: start.line.saturating_add(line_offset),
            column,
        }
    }
}

/// 1-based line and column (in characters) of the `offset`-th character.
fn line_column_of_char(text: &str, offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut column = 1;
    for c in text.chars().take(offset) {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

/// 1-based line and column (in characters) of the character at byte `offset`.
fn line_column_of_byte(text: &str, offset: usize) -> (usize, usize) {
    let chars = text.char_indices().take_while(|(i, _)| *i < offset).count();
    line_column_of_char(text, chars)
}

/// The largest node id in the tree.
fn max_id(e: &IdedExpr) -> u64 {
    let mut max = e.id;
    visit(e, &mut |node| max = max.max(node.id));
    max
}

/// The height of the tree under `e` (a leaf is 1).
fn height(e: &IdedExpr) -> usize {
    let mut max = 0;
    let mut stack = vec![(e, 1usize)];
    while let Some((node, depth)) = stack.pop() {
        max = max.max(depth);
        stack.extend(children(node).into_iter().map(|c| (c, depth + 1)));
    }
    max
}

/// Calls `f` on every node under `e` (not `e` itself), depth first.
fn visit(e: &IdedExpr, f: &mut dyn FnMut(&IdedExpr)) {
    let mut stack: Vec<&IdedExpr> = children(e);
    while let Some(node) = stack.pop() {
        f(node);
        stack.extend(children(node));
    }
}

/// The direct children of a node.
fn children(e: &IdedExpr) -> Vec<&IdedExpr> {
    match &e.expr {
        Expr::Call(c) => c.target.iter().map(|t| &**t).chain(c.args.iter()).collect(),
        Expr::Select(s) => vec![&*s.operand],
        Expr::List(l) => l.elements.iter().collect(),
        Expr::Map(m) => m
            .entries
            .iter()
            .flat_map(|entry| match &entry.expr {
                cel::common::ast::EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
                cel::common::ast::EntryExpr::StructField(f) => vec![&f.value],
            })
            .collect(),
        Expr::Struct(s) => s
            .entries
            .iter()
            .flat_map(|entry| match &entry.expr {
                cel::common::ast::EntryExpr::MapEntry(m) => vec![&m.key, &m.value],
                cel::common::ast::EntryExpr::StructField(f) => vec![&f.value],
            })
            .collect(),
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => Vec::new(),
    }
}

/// Gives the calls with ids in `ids` (timestamp getters) the time-zone argument `"UTC"`.
fn add_utc(e: &mut IdedExpr, ids: &[u64], next_id: &mut u64) {
    let mut stack: Vec<&mut IdedExpr> = vec![e];
    while let Some(node) = stack.pop() {
        let id = node.id;
        match &mut node.expr {
            Expr::Call(CallExpr { target, args, .. }) => {
                if ids.contains(&id) && args.is_empty() {
                    args.push(IdedExpr {
                        id: *next_id,
                        expr: Expr::Literal(LiteralValue::String(CelString::from(
                            "UTC".to_string(),
                        ))),
                    });
                    *next_id = next_id.saturating_add(1);
                }
                if let Some(t) = target {
                    stack.push(t);
                }
                stack.extend(args.iter_mut());
            }
            Expr::Select(s) => stack.push(&mut s.operand),
            Expr::List(l) => stack.extend(l.elements.iter_mut()),
            Expr::Map(m) => {
                for entry in &mut m.entries {
                    if let cel::common::ast::EntryExpr::MapEntry(m) = &mut entry.expr {
                        stack.push(&mut m.key);
                        stack.push(&mut m.value);
                    }
                }
            }
            Expr::Comprehension(c) => {
                let c = &mut **c;
                stack.push(&mut c.iter_range);
                stack.push(&mut c.accu_init);
                stack.push(&mut c.loop_cond);
                stack.push(&mut c.loop_step);
                stack.push(&mut c.result);
            }
            Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) | Expr::Struct(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
