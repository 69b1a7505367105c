//! Partial evaluation of one caveat expression, as SpiceDB runs CEL (`cel-go` with partial
//! evaluation, the parameters not given marked unknown): a value that depends on an unknown
//! parameter is unknown and carries the names it depends on; `&&` and `||` decide without
//! an unknown or failing side when the other side decides (false, true), `?:` needs only the
//! branch taken, every other operation is unknown if one of its operands is.
//!
//! The walk over the tree and the comprehension loops are ours (so unknowns can be tracked and
//! every iteration is counted against a cost budget); each individual operation — arithmetic,
//! comparison, indexing, functions — is the `cel` crate's, applied to the operand values. An
//! expression that needs no unknown and has no comprehension is handed to the crate whole.

use std::collections::BTreeSet;

use cel::common::ast::{
    CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedEntryExpr, IdedExpr, ListExpr, MapEntryExpr,
    MapExpr, SelectExpr, operators,
};
use cel::common::types::{CelBool, CelList};
use cel::common::value::Val;
use cel::{Context, ExecutionError, Value};

/// Free stack below which the walk moves to a new stack segment.
const RED_ZONE_BYTES: usize = 1024 * 1024;
/// Size of each new stack segment.
const SEGMENT_BYTES: usize = 16 * 1024 * 1024;

/// What part of the expression has been worked out.
pub(super) enum Pv {
    /// The value of a parameter that was given, by name (bound in the root context, not
    /// copied).
    Param(String),
    /// A computed value.
    Value(Box<dyn Val>),
    /// Depends on parameters that were not given.
    Unknown(BTreeSet<String>),
    /// Evaluation failed (a later `&&`, `||` or `?:` may still not need it).
    Error(ExecutionError),
}

/// How evaluating a whole expression ended.
pub(super) enum Outcome {
    /// A definite answer.
    Decided(bool),
    /// It depends on these parameters, which were not given.
    Unknown(BTreeSet<String>),
}

/// Why evaluating an expression failed.
pub(super) enum Failure {
    /// CEL raised an error that nothing absorbed.
    Cel(ExecutionError),
    /// The expression did not give a `bool`.
    NotBool(String),
    /// The evaluation spent more than its budget.
    Cost(u64),
}

/// The variables bound by enclosing comprehensions, innermost last.
type Scope = Vec<(String, Pv)>;

/// Evaluates one expression against a root context holding the given parameters.
pub(super) struct Evaluator<'c, 'p> {
    root: &'c Context<'p, 'static>,
    /// Parameters bound in `root`.
    given: &'c BTreeSet<String>,
    /// Declared parameters that were not given.
    missing: &'c BTreeSet<String>,
    /// Budget left, in steps (nodes visited, loop iterations, values copied).
    budget: u64,
    limit: u64,
    exhausted: bool,
}

impl<'c, 'p> Evaluator<'c, 'p> {
    pub(super) fn new(
        root: &'c Context<'p, 'static>,
        given: &'c BTreeSet<String>,
        missing: &'c BTreeSet<String>,
        limit: u64,
    ) -> Self {
        Evaluator {
            root,
            given,
            missing,
            budget: limit,
            limit,
            exhausted: false,
        }
    }

    /// Evaluates `expr`; `simple` says it has no comprehension, so when it needs no missing
    /// parameter it is handed to the crate in one piece.
    pub(super) fn run(
        &mut self,
        expr: &IdedExpr,
        referenced: &[String],
        simple: bool,
    ) -> Result<Outcome, Failure> {
        let needs_missing = referenced.iter().any(|r| self.missing.contains(r));
        let result = if simple && !needs_missing {
            self.resolve(expr, Vec::new())
        } else {
            let mut scope = Vec::new();
            self.eval(expr, &mut scope)
        };
        if self.exhausted {
            return Err(Failure::Cost(self.limit));
        }
        match result {
            Pv::Unknown(names) => Ok(Outcome::Unknown(names)),
            Pv::Error(e) => Err(Failure::Cel(e)),
            known => match self.as_bool(&known) {
                Some(b) => Ok(Outcome::Decided(b)),
                None => Err(Failure::NotBool(self.type_name(&known))),
            },
        }
    }

    /// Spends `n` steps; false (and marks the evaluation exhausted) when over budget.
    fn spend(&mut self, n: u64) -> bool {
        match self.budget.checked_sub(n) {
            Some(left) => {
                self.budget = left;
                true
            }
            None => {
                self.budget = 0;
                self.exhausted = true;
                false
            }
        }
    }

    fn over_budget() -> Pv {
        Pv::Error(ExecutionError::function_error(
            "caveat",
            "evaluation cost limit exceeded",
        ))
    }

    fn eval(&mut self, e: &IdedExpr, scope: &mut Scope) -> Pv {
        if !self.spend(1) {
            return Self::over_budget();
        }
        stacker::maybe_grow(RED_ZONE_BYTES, SEGMENT_BYTES, || self.node(e, scope))
    }

    fn node(&mut self, e: &IdedExpr, scope: &mut Scope) -> Pv {
        match &e.expr {
            Expr::Ident(name) => {
                if let Some((_, v)) = scope.iter().rev().find(|(n, _)| n == name) {
                    return duplicate(v);
                }
                if self.missing.contains(name) {
                    return Pv::Unknown(BTreeSet::from([name.clone()]));
                }
                if self.given.contains(name) {
                    return Pv::Param(name.clone());
                }
                // A type name, resolved by the crate.
                self.resolve(e, Vec::new())
            }
            Expr::Literal(_) | Expr::Struct(_) | Expr::Unspecified => self.resolve(e, Vec::new()),
            Expr::Select(s) => {
                if !s.test && self.is_namespace(e, scope) {
                    return self.resolve(e, Vec::new());
                }
                let operand = self.eval(&s.operand, scope);
                if let Some(failed) = failed(vec![&operand]) {
                    return failed;
                }
                let (field, test) = (s.field.clone(), s.test);
                self.apply(vec![operand], move |mut ops: Vec<IdedExpr>| {
                    Expr::Select(SelectExpr {
                        operand: Box::new(ops.pop().unwrap_or_default()),
                        field,
                        test,
                    })
                })
            }
            Expr::Call(c) => self.call(c, scope),
            Expr::List(l) => {
                let items: Vec<Pv> = l.elements.iter().map(|i| self.eval(i, scope)).collect();
                if let Some(failed) = failed(items.iter().collect()) {
                    return failed;
                }
                let optional_indices = l.optional_indices.clone();
                self.apply(items, move |ops| {
                    Expr::List(ListExpr::new_with_optionals(ops, optional_indices))
                })
            }
            Expr::Map(m) => {
                let mut operands = Vec::with_capacity(m.entries.len() * 2);
                let mut optional = Vec::with_capacity(m.entries.len());
                for entry in &m.entries {
                    let EntryExpr::MapEntry(entry) = &entry.expr else {
                        return self.resolve(e, Vec::new());
                    };
                    operands.push(self.eval(&entry.key, scope));
                    operands.push(self.eval(&entry.value, scope));
                    optional.push(entry.optional);
                }
                if let Some(failed) = failed(operands.iter().collect()) {
                    return failed;
                }
                self.apply(operands, move |ops| {
                    let mut ops = ops.into_iter();
                    let entries = optional
                        .into_iter()
                        .enumerate()
                        .map(|(i, optional)| IdedEntryExpr {
                            id: u64::try_from(i).unwrap_or(u64::MAX),
                            expr: EntryExpr::MapEntry(MapEntryExpr {
                                key: ops.next().unwrap_or_default(),
                                value: ops.next().unwrap_or_default(),
                                optional,
                            }),
                        })
                        .collect();
                    Expr::Map(MapExpr { entries })
                })
            }
            Expr::Comprehension(c) => self.comprehension(c, scope),
        }
    }

    fn call(&mut self, c: &CallExpr, scope: &mut Scope) -> Pv {
        if c.target.is_none() {
            match (c.func_name.as_str(), c.args.as_slice()) {
                (operators::LOGICAL_AND, [a, b]) => return self.logic(a, b, false, scope),
                (operators::LOGICAL_OR, [a, b]) => return self.logic(a, b, true, scope),
                (operators::CONDITIONAL, [cond, yes, no]) => {
                    let cond = self.eval(cond, scope);
                    return match (self.as_bool(&cond), cond) {
                        (Some(true), _) => self.eval(yes, scope),
                        (Some(false), _) => self.eval(no, scope),
                        (None, failed @ (Pv::Unknown(_) | Pv::Error(_))) => failed,
                        (None, other) => Pv::Error(ExecutionError::no_such_overload(
                            operators::CONDITIONAL,
                            vec![self.type_name(&other)],
                        )),
                    };
                }
                (operators::NOT_STRICTLY_FALSE, [a]) => {
                    let v = self.eval(a, scope);
                    return bool_value(self.as_bool(&v).unwrap_or(true));
                }
                _ => {}
            }
        }
        let mut operands = Vec::with_capacity(c.args.len() + 1);
        let mut namespace = None;
        if let Some(target) = &c.target {
            if self.is_namespace(target, scope) {
                namespace = Some((**target).clone());
            } else {
                operands.push(self.eval(target, scope));
            }
        }
        for a in &c.args {
            operands.push(self.eval(a, scope));
        }
        if let Some(failed) = failed(operands.iter().collect()) {
            return failed;
        }
        let has_target = c.target.is_some() && namespace.is_none();
        let func_name = c.func_name.clone();
        self.apply(operands, move |ops| {
            let mut ops = ops.into_iter();
            let target = match namespace {
                Some(ns) => Some(Box::new(ns)),
                None if has_target => ops.next().map(Box::new),
                None => None,
            };
            Expr::Call(CallExpr {
                func_name,
                target,
                args: ops.collect(),
            })
        })
    }

    /// `a && b` (`or`: `a || b`), commutative over errors and unknowns as CEL's logic is.
    fn logic(&mut self, a: &IdedExpr, b: &IdedExpr, or: bool, scope: &mut Scope) -> Pv {
        let left = self.eval(a, scope);
        if self.as_bool(&left) == Some(or) {
            return bool_value(or);
        }
        let right = self.eval(b, scope);
        if self.as_bool(&right) == Some(or) {
            return bool_value(or);
        }
        let (l, r) = (self.as_bool(&left), self.as_bool(&right));
        if l.is_some() && r.is_some() {
            return bool_value(!or);
        }
        match (left, right) {
            (Pv::Unknown(mut x), Pv::Unknown(y)) => {
                x.extend(y);
                Pv::Unknown(x)
            }
            (u @ Pv::Unknown(_), _) | (_, u @ Pv::Unknown(_)) => u,
            (e @ Pv::Error(_), _) | (_, e @ Pv::Error(_)) => e,
            (left, right) => Pv::Error(ExecutionError::no_such_overload(
                if or {
                    operators::LOGICAL_OR
                } else {
                    operators::LOGICAL_AND
                },
                vec![self.type_name(&left), self.type_name(&right)],
            )),
        }
    }

    fn comprehension(&mut self, c: &ComprehensionExpr, scope: &mut Scope) -> Pv {
        let range = self.eval(&c.iter_range, scope);
        if let Some(failed) = failed(vec![&range]) {
            return failed;
        }
        let items = match self.items(&range) {
            Ok(items) => items,
            Err(e) => return Pv::Error(e),
        };
        let count = u64::try_from(items.len()).unwrap_or(u64::MAX);
        if !self.spend(count) {
            return Self::over_budget();
        }
        if let Some((filter, element)) = append_step(c) {
            return self.fold_append(c, filter, element, items, scope);
        }
        let mut accu = self.eval(&c.accu_init, scope);
        for item in items {
            if !self.spend(1) {
                return Self::over_budget();
            }
            scope.push((c.iter_var.clone(), Pv::Value(item)));
            scope.push((c.accu_var.clone(), accu));
            let cond = self.eval(&c.loop_cond, scope);
            let go_on = self.as_bool(&cond) == Some(true);
            if go_on {
                let step = self.eval(&c.loop_step, scope);
                if let Some(slot) = scope.last_mut() {
                    slot.1 = step;
                }
            }
            accu = scope.pop().map_or(Pv::Unknown(BTreeSet::new()), |(_, v)| v);
            scope.pop();
            if !go_on {
                break;
            }
        }
        scope.push((c.accu_var.clone(), accu));
        let result = self.eval(&c.result, scope);
        scope.pop();
        result
    }

    /// `map` and `filter`: the accumulator only ever grows by one element, kept in a vector
    /// rather than copied at every step.
    fn fold_append(
        &mut self,
        c: &ComprehensionExpr,
        filter: Option<&IdedExpr>,
        element: &IdedExpr,
        items: Vec<Box<dyn Val>>,
        scope: &mut Scope,
    ) -> Pv {
        let mut out: Vec<Box<dyn Val>> = Vec::with_capacity(items.len());
        let mut failure: Option<Pv> = None;
        for item in items {
            if !self.spend(1) {
                return Self::over_budget();
            }
            scope.push((c.iter_var.clone(), Pv::Value(item)));
            let keep = match filter {
                None => Some(true),
                Some(f) => {
                    let v = self.eval(f, scope);
                    let b = self.as_bool(&v);
                    if b.is_none() {
                        failure = Some(merge_failure(failure, v));
                    }
                    b
                }
            };
            if keep == Some(true) {
                let v = self.eval(element, scope);
                match self.take_value(v) {
                    Ok(v) => out.push(v),
                    Err(f) => failure = Some(merge_failure(failure, f)),
                }
            }
            scope.pop();
        }
        let result = match failure {
            Some(f) => f,
            None => Pv::Value(Box::new(CelList::from(out))),
        };
        scope.push((c.accu_var.clone(), result));
        let result = self.eval(&c.result, scope);
        scope.pop();
        result
    }

    /// The elements of a list, or the keys of a map.
    fn items(&self, range: &Pv) -> Result<Vec<Box<dyn Val>>, ExecutionError> {
        match range {
            Pv::Param(name) => match self.root.get_variable(name) {
                Some(v) => collect_items(v.as_ref()),
                None => Err(ExecutionError::undeclared_reference(name)),
            },
            Pv::Value(v) => collect_items(v.as_ref()),
            Pv::Unknown(_) | Pv::Error(_) => Ok(Vec::new()),
        }
    }

    /// Whether `e` spells a dotted name whose root is no variable (`optional` in
    /// `optional.of(x)`, `google.protobuf.Duration`): it is resolved by name.
    fn is_namespace(&self, e: &IdedExpr, scope: &Scope) -> bool {
        let mut node = e;
        loop {
            match &node.expr {
                Expr::Ident(name) => {
                    return !scope.iter().any(|(n, _)| n == name)
                        && !self.given.contains(name)
                        && !self.missing.contains(name);
                }
                Expr::Select(s) if !s.test => node = &s.operand,
                _ => return false,
            }
        }
    }

    /// Applies one operation, built by `build` over expressions standing for the operands,
    /// with the crate's interpreter.
    fn apply(&mut self, operands: Vec<Pv>, build: impl FnOnce(Vec<IdedExpr>) -> Expr) -> Pv {
        let mut bound: Vec<(String, Box<dyn Val>)> = Vec::new();
        let mut exprs = Vec::with_capacity(operands.len());
        for (i, operand) in operands.into_iter().enumerate() {
            match operand {
                Pv::Param(name) => exprs.push(ident(&name)),
                Pv::Value(v) => {
                    let name = format!("$arg{i}");
                    exprs.push(ident(&name));
                    bound.push((name, v));
                }
                failed @ (Pv::Unknown(_) | Pv::Error(_)) => return failed,
            }
        }
        let copied: u64 = bound.iter().map(|(_, v)| size_of_value(v.as_ref())).sum();
        if !self.spend(copied) {
            return Self::over_budget();
        }
        let expr = IdedExpr {
            id: 0,
            expr: build(exprs),
        };
        self.resolve(&expr, bound)
    }

    /// Evaluates `e` with the crate, `bound` variables added in a scope of their own.
    fn resolve(&mut self, e: &IdedExpr, bound: Vec<(String, Box<dyn Val>)>) -> Pv {
        let mut child = self.root.new_inner_scope();
        for (name, v) in bound {
            child.add_variable_as_val(name, v);
        }
        match Value::resolve_val(e, &child) {
            Ok(v) => Pv::Value(v.into_owned()),
            Err(err) => Pv::Error(err),
        }
    }

    /// The value of a known operand, copied out (`Err` gives back what is not known).
    fn take_value(&self, v: Pv) -> Result<Box<dyn Val>, Pv> {
        match v {
            Pv::Value(v) => Ok(v),
            Pv::Param(name) => match self.root.get_variable(&name) {
                Some(v) => Ok(v.as_ref().clone_as_boxed()),
                None => Err(Pv::Error(ExecutionError::undeclared_reference(&name))),
            },
            other => Err(other),
        }
    }

    fn as_bool(&self, v: &Pv) -> Option<bool> {
        match v {
            Pv::Value(v) => v.downcast_ref::<CelBool>().map(|b| *b.inner()),
            Pv::Param(name) => self
                .root
                .get_variable(name)
                .and_then(|v| v.downcast_ref::<CelBool>().map(|b| *b.inner())),
            Pv::Unknown(_) | Pv::Error(_) => None,
        }
    }

    fn type_name(&self, v: &Pv) -> String {
        match v {
            Pv::Value(v) => v.get_type().name().to_owned(),
            Pv::Param(name) => self
                .root
                .get_variable(name)
                .map_or_else(|| "unknown".to_owned(), |v| v.get_type().name().to_owned()),
            Pv::Unknown(_) => "unknown".to_owned(),
            Pv::Error(_) => "error".to_owned(),
        }
    }
}

/// The first operand that is not known: unknowns (merged) before errors.
fn failed(operands: Vec<&Pv>) -> Option<Pv> {
    let mut unknown: Option<BTreeSet<String>> = None;
    let mut error = None;
    for operand in operands {
        match operand {
            Pv::Unknown(names) => unknown
                .get_or_insert_with(BTreeSet::new)
                .extend(names.iter().cloned()),
            Pv::Error(e) if error.is_none() => error = Some(e.clone()),
            _ => {}
        }
    }
    unknown.map(Pv::Unknown).or(error.map(Pv::Error))
}

/// Keeps the first failure, unknowns taking precedence over errors and merging.
fn merge_failure(existing: Option<Pv>, new: Pv) -> Pv {
    match (existing, new) {
        (Some(Pv::Unknown(mut a)), Pv::Unknown(b)) => {
            a.extend(b);
            Pv::Unknown(a)
        }
        (Some(u @ Pv::Unknown(_)), _) => u,
        (_, u @ Pv::Unknown(_)) => u,
        (Some(e @ Pv::Error(_)), _) => e,
        (_, new) => new,
    }
}

fn duplicate(v: &Pv) -> Pv {
    match v {
        Pv::Param(name) => Pv::Param(name.clone()),
        Pv::Value(v) => Pv::Value(v.clone_as_boxed()),
        Pv::Unknown(names) => Pv::Unknown(names.clone()),
        Pv::Error(e) => Pv::Error(e.clone()),
    }
}

fn bool_value(b: bool) -> Pv {
    Pv::Value(Box::new(CelBool::from(b)))
}

fn ident(name: &str) -> IdedExpr {
    IdedExpr {
        id: 0,
        expr: Expr::Ident(name.to_string()),
    }
}

/// What copying a value costs, roughly: one step, plus one per element of a list or map.
fn size_of_value(v: &dyn Val) -> u64 {
    let elements = v
        .as_sizer()
        .map_or(0, |s| u64::try_from(*s.size().inner()).unwrap_or(0));
    1 + elements
}

/// For the `map` and `filter` macros (the accumulator starts as `[]`, each step appends one
/// element, optionally under a condition, and the result is the accumulator): the condition
/// and the element.
fn append_step(c: &ComprehensionExpr) -> Option<(Option<&IdedExpr>, &IdedExpr)> {
    let starts_empty = matches!(&c.accu_init.expr, Expr::List(l) if l.elements.is_empty());
    let always = matches!(
        &c.loop_cond.expr,
        Expr::Literal(cel::common::ast::LiteralValue::Boolean(b)) if *b.inner()
    );
    let result_is_accu = matches!(&c.result.expr, Expr::Ident(n) if *n == c.accu_var);
    if !(starts_empty && always && result_is_accu) {
        return None;
    }
    let is_accu = |e: &IdedExpr| matches!(&e.expr, Expr::Ident(n) if *n == c.accu_var);
    let appended = |e| appended_element(e, &c.accu_var);
    if let Some(element) = appended(&c.loop_step) {
        return Some((None, element));
    }
    let Expr::Call(call) = &c.loop_step.expr else {
        return None;
    };
    match (call.func_name.as_str(), &call.target, call.args.as_slice()) {
        (operators::CONDITIONAL, None, [cond, yes, no]) if is_accu(no) => {
            appended(yes).map(|element| (Some(cond), element))
        }
        _ => None,
    }
}

/// The element `e` in `accu + [e]`.
fn appended_element<'e>(step: &'e IdedExpr, accu: &str) -> Option<&'e IdedExpr> {
    let Expr::Call(call) = &step.expr else {
        return None;
    };
    match (call.func_name.as_str(), &call.target, call.args.as_slice()) {
        (operators::ADD, None, [lhs, list]) if matches!(&lhs.expr, Expr::Ident(n) if n == accu) => {
            match &list.expr {
                Expr::List(l) if l.optional_indices.is_empty() => match l.elements.as_slice() {
                    [element] => Some(element),
                    _ => None,
                },
                _ => None,
            }
        }
        _ => None,
    }
}

/// Copies of the elements of a list, or of the keys of a map.
fn collect_items(v: &(dyn Val + 'static)) -> Result<Vec<Box<dyn Val>>, ExecutionError> {
    let iterable = v.as_iterable().ok_or_else(|| {
        ExecutionError::no_such_overload("@comprehension", vec![v.get_type().name().to_owned()])
    })?;
    let mut it = iterable.iter();
    let mut out = Vec::new();
    while let Some(item) = it.next() {
        out.push(item.clone_as_boxed());
    }
    Ok(out)
}
