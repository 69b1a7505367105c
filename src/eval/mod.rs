//! Graph evaluation at one snapshot: `check`, `expand`, `lookup_resources`, `lookup_subjects`.
//! Sub-problems go through the `Dispatch` chain carried in `EvalContext`, so caching and
//! coalescing can wrap the local evaluator without touching it. Dispatch results are
//! independent of the request's caveat context: caveats are evaluated here, on the answer of
//! the top-level call (`caveat`), never inside the chain.

mod bulk;
mod cache;
mod caveat;
mod caveat_expr;
mod context;
mod dispatch;
mod error;
mod key;
mod local;
mod lookup;
mod reverse;
mod singleflight;
mod stack;
mod subject_set;
mod types;

pub use bulk::{BulkCheck, check_bulk, check_many};
pub use cache::{CacheStats, CachingDispatch};
pub use caveat::{
    CaveatResult, MAX_CONTEXT_BYTES, MAX_CONTEXT_DEPTH, MAX_EVALUATION_STEPS, evaluate_caveat,
};
pub use caveat_expr::CaveatExpr;
pub use context::{DEFAULT_MAX_DEPTH, EvalConfig, EvalContext};
pub use dispatch::{
    CheckRequest, DEFAULT_CACHE_MAX_COST_BYTES, Dispatch, DispatchChain, DispatchConfig, Layer,
    build_dispatch_chain, dispatch_chain,
};
pub use error::EvalError;
pub use key::CheckKey;
pub use local::LocalEvaluator;
pub use lookup::{LookupAnswer, LookupOrder, lookup_key, lookup_resources_with};
pub use singleflight::SingleFlight;
pub use types::{
    CheckResult, EvalHint, ExpandMode, ExpandNode, ExpandSubject, ExpandTree, FoundSubject,
    LookupResult, Permissionship,
};

use crate::model::{ContextMap, ObjectRef, SubjectRef};

/// May `subject` have `permission` (or relation) on `resource`?
pub async fn check(
    ctx: &EvalContext,
    resource: &ObjectRef,
    permission: &str,
    subject: &SubjectRef,
) -> Result<CheckResult, EvalError> {
    ctx.validate_relation(resource.object_type(), permission)?;
    ctx.validate_subject_type(subject)?;
    let result = ctx
        .dispatch()
        .check(ctx, resource, permission, subject, ctx.max_depth())
        .await?;
    Ok(CheckResult {
        permissionship: resolve_permissionship(ctx, result.permissionship)?,
        expires_at: result.expires_at,
    })
}

/// The userset tree of `resource#permission`: one level (`Shallow`, as the gRPC API) or
/// with every userset expanded down to its subjects (`Recursive`, as validation files need).
pub async fn expand(
    ctx: &EvalContext,
    resource: &ObjectRef,
    permission: &str,
    mode: ExpandMode,
) -> Result<ExpandTree, EvalError> {
    ctx.validate_relation(resource.object_type(), permission)?;
    ctx.dispatch()
        .expand(ctx, resource, permission, mode, ctx.max_depth())
        .await
}

/// Every resource of `resource_type` on which `subject` has `permission`, ordered by id.
pub async fn lookup_resources(
    ctx: &EvalContext,
    resource_type: &str,
    permission: &str,
    subject: &SubjectRef,
) -> Result<Vec<LookupResult>, EvalError> {
    ctx.validate_relation(resource_type, permission)?;
    ctx.validate_subject_type(subject)?;
    let found = ctx
        .dispatch()
        .lookup_resources(ctx, resource_type, permission, subject, ctx.max_depth())
        .await?;
    let mut out = Vec::with_capacity(found.len());
    for r in found {
        match resolve_permissionship(ctx, r.permissionship)? {
            Permissionship::HasNot => {}
            permissionship => out.push(LookupResult {
                resource_id: r.resource_id,
                permissionship,
            }),
        }
    }
    Ok(out)
}

/// Every subject of `subject_type` (with `subject_relation`, if given) that has `permission`
/// on `resource`, ordered by id; a wildcard result carries the subjects it excludes.
pub async fn lookup_subjects(
    ctx: &EvalContext,
    resource: &ObjectRef,
    permission: &str,
    subject_type: &str,
    subject_relation: Option<&str>,
) -> Result<Vec<FoundSubject>, EvalError> {
    ctx.validate_relation(resource.object_type(), permission)?;
    ctx.validate_type(subject_type)?;
    if let Some(rel) = subject_relation {
        ctx.validate_relation(subject_type, rel)?;
    }
    let found = ctx
        .dispatch()
        .lookup_subjects(
            ctx,
            resource,
            permission,
            subject_type,
            subject_relation,
            ctx.max_depth(),
        )
        .await?;
    let mut out = Vec::with_capacity(found.len());
    for subject in found {
        let Some(caveat) = resolve_condition(ctx, subject.caveat)? else {
            continue;
        };
        let mut excluded = Vec::with_capacity(subject.excluded.len());
        for e in subject.excluded {
            // An exclusion that cannot hold excludes nobody; one that must, unconditionally.
            if let Some(caveat) = resolve_condition(ctx, e.caveat)? {
                excluded.push(FoundSubject { caveat, ..e });
            }
        }
        out.push(FoundSubject {
            subject_id: subject.subject_id,
            excluded,
            caveat,
        });
    }
    Ok(out)
}

/// Evaluates a caveat formula (of a conditional answer, an expand tree or a lookup result)
/// against the request's context (`ctx.caveat_context()`): `Has` if it holds, `HasNot` if it
/// cannot, else `Conditional` with what is left of it.
pub fn evaluate_caveats(ctx: &EvalContext, expr: &CaveatExpr) -> Result<Permissionship, EvalError> {
    resolve_permissionship(ctx, Permissionship::Conditional(expr.clone()))
}

/// A permissionship with its caveats evaluated against the request's context.
fn resolve_permissionship(
    ctx: &EvalContext,
    permissionship: Permissionship,
) -> Result<Permissionship, EvalError> {
    resolve_in(ctx, ctx.caveat_context(), permissionship)
}

/// A permissionship with its caveats evaluated against `context` (a bulk item's own).
fn resolve_in(
    ctx: &EvalContext,
    context: &ContextMap,
    permissionship: Permissionship,
) -> Result<Permissionship, EvalError> {
    let Permissionship::Conditional(expr) = permissionship else {
        return Ok(permissionship);
    };
    Ok(match caveat::resolve(ctx.schema(), &expr, context)? {
        caveat::Resolved::True => Permissionship::Has,
        caveat::Resolved::False => Permissionship::HasNot,
        caveat::Resolved::Partial { expr, .. } => Permissionship::Conditional(expr),
    })
}

/// A member's condition evaluated against the request's context: `None` when it cannot hold,
/// `Some(None)` when it holds, `Some(Some(rest))` when it still depends on missing context.
fn resolve_condition(
    ctx: &EvalContext,
    condition: Option<CaveatExpr>,
) -> Result<Option<Option<CaveatExpr>>, EvalError> {
    let Some(expr) = condition else {
        return Ok(Some(None));
    };
    Ok(
        match caveat::resolve(ctx.schema(), &expr, ctx.caveat_context())? {
            caveat::Resolved::True => Some(None),
            caveat::Resolved::False => None,
            caveat::Resolved::Partial { expr, .. } => Some(Some(expr)),
        },
    )
}

#[cfg(test)]
mod tests;

/// The caveat parameters a conditional result still needs, sorted: those that the caveats
/// still undecided after evaluating `expr` with the request's context
/// (`ctx.caveat_context()`) depend on. Empty when the formula is decided. If evaluation fails
/// (a context value of the wrong type), every declared parameter that neither the
/// relationships nor the request give.
pub fn missing_context(ctx: &EvalContext, expr: &CaveatExpr) -> Vec<String> {
    match caveat::resolve(ctx.schema(), expr, ctx.caveat_context()) {
        Ok(caveat::Resolved::Partial { missing, .. }) => missing.into_iter().collect(),
        Ok(caveat::Resolved::True | caveat::Resolved::False) => Vec::new(),
        Err(_) => {
            let mut out: Vec<String> = Vec::new();
            collect_missing(ctx, expr, &mut out);
            out.sort();
            out
        }
    }
}

fn collect_missing(ctx: &EvalContext, expr: &CaveatExpr, out: &mut Vec<String>) {
    match expr {
        CaveatExpr::Caveat { name, context, .. } => {
            if let Some(def) = ctx.schema().caveat(name) {
                for (param, _) in def.parameters() {
                    let given =
                        context.contains_key(param) || ctx.caveat_context().contains_key(param);
                    if !given && !out.contains(param) {
                        out.push(param.clone());
                    }
                }
            }
        }
        CaveatExpr::And(items) | CaveatExpr::Or(items) => {
            items.iter().for_each(|i| collect_missing(ctx, i, out));
        }
        CaveatExpr::Not(inner) => collect_missing(ctx, inner, out),
    }
}
