//! Caveat evaluation: each caveat of a `CaveatExpr` is evaluated with the context bound on its
//! relationship merged over the request's (the relationship's values win, as in SpiceDB),
//! giving true, false, or unknown with the parameters still missing; the formula is then
//! simplified with three-valued logic as SpiceDB's caveat runner does (`internal/caveats/
//! run.go`: AND stops at the first false, OR at the first true, NOT inverts, partial results
//! stay partial and collect their missing parameters).

mod convert;
mod env;
mod partial;

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use cel::Context;
use cel::common::ast::{Expr, IdedExpr};
use cel::common::value::Val;

use crate::model::{ContextMap, ContextValue};
use crate::schema::Schema;

use super::caveat_expr::CaveatExpr;
use super::error::EvalError;

pub use convert::{MAX_CONTEXT_BYTES, MAX_CONTEXT_DEPTH};

/// Most steps (nodes visited, loop iterations, values copied) one caveat evaluation may take.
pub const MAX_EVALUATION_STEPS: u64 = 1_000_000;

/// Free stack an evaluation needs besides the interpreter's recursion.
const EVAL_BASE_STACK_BYTES: usize = 256 * 1024;
/// Stack the `cel` crate's interpreter uses per level of the expression's tree: its frames are
/// large (measured at 30 to 50 KiB a level in debug builds, far less optimized). The tree's
/// height is bounded when the schema is compiled.
const EVAL_STACK_PER_LEVEL_BYTES: usize = 64 * 1024;

/// The result of evaluating one caveat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaveatResult {
    /// The caveat holds.
    True,
    /// It does not.
    False,
    /// It depends on these parameters, which neither context gives (sorted).
    Missing(Vec<String>),
}

/// Evaluates caveat `name` of `schema` with the context bound on a relationship merged over
/// the request's context (the relationship's values win). `relationship` names the
/// relationship in error messages.
pub fn evaluate_caveat(
    schema: &Schema,
    name: &str,
    relationship_context: &ContextMap,
    request_context: &ContextMap,
    relationship: Option<&str>,
) -> Result<CaveatResult, EvalError> {
    let fail = |message: String| EvalError::Caveat {
        caveat: name.to_string(),
        message: match relationship {
            Some(r) => format!("{message} (relationship `{r}`)"),
            None => message,
        },
    };
    let def = schema
        .caveat(name)
        .ok_or_else(|| fail("the caveat is not defined in the schema".to_string()))?;
    let mut merged: Vec<(&String, &ContextValue, &'static str)> = Vec::new();
    for (k, v) in request_context {
        if !relationship_context.contains_key(k) {
            merged.push((k, v, "the request's context"));
        }
    }
    for (k, v) in relationship_context {
        merged.push((k, v, "the relationship's context"));
    }
    let mut size = 2usize;
    for context in [relationship_context, request_context] {
        size = size.saturating_add(convert::context_size(context).map_err(&fail)?);
    }
    if size > MAX_CONTEXT_BYTES {
        return Err(fail(format!(
            "the caveat context is about {size} bytes; at most {MAX_CONTEXT_BYTES} are allowed"
        )));
    }
    let mut given: Vec<(String, Box<dyn Val>)> = Vec::new();
    let mut missing = BTreeSet::new();
    for (param, ty) in def.parameters() {
        // As SpiceDB: context entries that are not parameters are ignored.
        match merged.iter().find(|(k, _, _)| *k == param) {
            Some((_, value, origin)) => {
                let v = convert::convert(ty, value).map_err(|e| {
                    fail(format!(
                        "parameter `{param}` is declared `{ty}`, but {origin} gives `{}`: {e}",
                        shown(value)
                    ))
                })?;
                given.push((param.clone(), v));
            }
            None => {
                missing.insert(param.clone());
            }
        }
    }
    let program = def.program();
    let expr = program.expression();
    let referenced = program.referenced_parameters();
    let run = || -> Result<partial::Outcome, partial::Failure> {
        let cel_env = env::env()
            .map_err(|e| partial::Failure::Cel(cel::ExecutionError::function_error("caveat", e)))?;
        let mut root = Context::with_env(cel_env);
        let names: BTreeSet<String> = given.iter().map(|(n, _)| n.clone()).collect();
        for (n, v) in given {
            root.add_variable_as_val(n, v);
        }
        let mut evaluator = partial::Evaluator::new(&root, &names, &missing, MAX_EVALUATION_STEPS);
        evaluator.run(expr, referenced, !has_comprehension(expr))
    };
    let red_zone = EVAL_BASE_STACK_BYTES
        .saturating_add(program.depth().saturating_mul(EVAL_STACK_PER_LEVEL_BYTES));
    let outcome = stacker::maybe_grow(red_zone, red_zone.saturating_mul(2), || {
        catch_unwind(AssertUnwindSafe(run))
    })
    .map_err(|_| fail("the CEL interpreter failed (a bug in it)".to_string()))?;
    match outcome {
        Ok(partial::Outcome::Decided(true)) => Ok(CaveatResult::True),
        Ok(partial::Outcome::Decided(false)) => Ok(CaveatResult::False),
        Ok(partial::Outcome::Unknown(names)) => {
            Ok(CaveatResult::Missing(names.into_iter().collect()))
        }
        Err(partial::Failure::Cel(e)) => Err(fail(format!("evaluation failed: {e}"))),
        Err(partial::Failure::NotBool(t)) => {
            Err(fail(format!("the expression gave a `{t}`, not a `bool`")))
        }
        Err(partial::Failure::Cost(limit)) => Err(fail(format!(
            "evaluation exceeded its cost limit of {limit} steps"
        ))),
    }
}

fn shown(value: &ContextValue) -> String {
    let text = value.to_string();
    if text.chars().count() > 64 {
        let cut: String = text.chars().take(61).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// Whether the tree holds a comprehension (`all`, `exists`, `map`, ...).
fn has_comprehension(e: &IdedExpr) -> bool {
    let mut stack = vec![e];
    while let Some(node) = stack.pop() {
        match &node.expr {
            Expr::Comprehension(_) => return true,
            Expr::Call(c) => {
                stack.extend(c.target.iter().map(|t| &**t));
                stack.extend(c.args.iter());
            }
            Expr::Select(s) => stack.push(&s.operand),
            Expr::List(l) => stack.extend(l.elements.iter()),
            Expr::Map(m) => {
                for entry in &m.entries {
                    if let cel::common::ast::EntryExpr::MapEntry(e) = &entry.expr {
                        stack.push(&e.key);
                        stack.push(&e.value);
                    }
                }
            }
            Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) | Expr::Struct(_) => {}
        }
    }
    false
}

/// A caveat formula after evaluation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Resolved {
    /// It holds.
    True,
    /// It does not.
    False,
    /// It depends on parameters not given: what is left of the formula, and those
    /// parameters (sorted).
    Partial {
        expr: CaveatExpr,
        missing: BTreeSet<String>,
    },
}

/// Evaluates every caveat of `expr` that must be, with `request` as the request's context,
/// and simplifies the formula.
pub(crate) fn resolve(
    schema: &Schema,
    expr: &CaveatExpr,
    request: &ContextMap,
) -> Result<Resolved, EvalError> {
    stacker::maybe_grow(128 * 1024, 2 * 1024 * 1024, || match expr {
        CaveatExpr::Caveat {
            name,
            context,
            relationship,
        } => Ok(
            match evaluate_caveat(schema, name, context, request, relationship.as_deref())? {
                CaveatResult::True => Resolved::True,
                CaveatResult::False => Resolved::False,
                CaveatResult::Missing(missing) => Resolved::Partial {
                    expr: expr.clone(),
                    missing: missing.into_iter().collect(),
                },
            },
        ),
        CaveatExpr::And(items) | CaveatExpr::Or(items) => {
            let is_and = matches!(expr, CaveatExpr::And(_));
            let mut left = Vec::new();
            let mut missing = BTreeSet::new();
            for item in items {
                match resolve(schema, item, request)? {
                    Resolved::True if !is_and => return Ok(Resolved::True),
                    Resolved::False if is_and => return Ok(Resolved::False),
                    Resolved::True | Resolved::False => {}
                    Resolved::Partial { expr, missing: m } => {
                        left.push(expr);
                        missing.extend(m);
                    }
                }
            }
            let combine = if is_and {
                CaveatExpr::and
            } else {
                CaveatExpr::or
            };
            Ok(match left.into_iter().reduce(combine) {
                None if is_and => Resolved::True,
                None => Resolved::False,
                Some(expr) => Resolved::Partial { expr, missing },
            })
        }
        CaveatExpr::Not(inner) => Ok(match resolve(schema, inner, request)? {
            Resolved::True => Resolved::False,
            Resolved::False => Resolved::True,
            Resolved::Partial { expr, missing } => Resolved::Partial {
                expr: CaveatExpr::negate(expr),
                missing,
            },
        }),
    })
}

#[cfg(test)]
mod tests;
