//! Graph evaluation at one snapshot: `check`, `expand`, `lookup_resources`, `lookup_subjects`.
//! Sub-problems go through the `Dispatch` chain carried in `EvalContext`, so caching and
//! coalescing can wrap the local evaluator without touching it.

mod cache;
mod caveat_expr;
mod context;
mod dispatch;
mod error;
mod local;
mod reverse;
mod singleflight;
mod stack;
mod subject_set;
mod types;

pub use cache::{CacheStats, CachingDispatch};
pub use caveat_expr::CaveatExpr;
pub use context::{DEFAULT_MAX_DEPTH, EvalConfig, EvalContext};
pub use dispatch::{
    DEFAULT_CACHE_MAX_COST_BYTES, Dispatch, DispatchChain, DispatchConfig, build_dispatch_chain,
    dispatch_chain,
};
pub use error::EvalError;
pub use local::LocalEvaluator;
pub use singleflight::SingleFlight;
pub use types::{
    CheckResult, ExpandMode, ExpandNode, ExpandSubject, ExpandTree, FoundSubject, LookupResult,
    Permissionship,
};

use crate::model::{ObjectRef, SubjectRef};

/// May `subject` have `permission` (or relation) on `resource`?
pub async fn check(
    ctx: &EvalContext,
    resource: &ObjectRef,
    permission: &str,
    subject: &SubjectRef,
) -> Result<CheckResult, EvalError> {
    ctx.validate_relation(resource.object_type(), permission)?;
    ctx.validate_subject_type(subject)?;
    ctx.dispatch()
        .check(ctx, resource, permission, subject, ctx.max_depth())
        .await
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
    ctx.dispatch()
        .lookup_resources(ctx, resource_type, permission, subject, ctx.max_depth())
        .await
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
    ctx.dispatch()
        .lookup_subjects(
            ctx,
            resource,
            permission,
            subject_type,
            subject_relation,
            ctx.max_depth(),
        )
        .await
}

#[cfg(test)]
mod tests;

/// The caveat parameters a conditional result still needs: those declared by the caveats in
/// `expr` that neither the relationship nor the request context (`ctx.caveat_context()`) gives,
/// in order of first appearance.
pub fn missing_context(ctx: &EvalContext, expr: &CaveatExpr) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    collect_missing(ctx, expr, &mut out);
    out
}

fn collect_missing(ctx: &EvalContext, expr: &CaveatExpr, out: &mut Vec<String>) {
    match expr {
        CaveatExpr::Caveat { name, context } => {
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
