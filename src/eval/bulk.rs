//! `check_bulk`: the checks of one bulk request, against one snapshot. Items asking about the
//! same subject and permission on resources of one type form a group that is validated once
//! and checked in one pass (`check_many`) through the dispatch chain; when the chain keeps no
//! shared cache, a memo scoped to the request lets items share their sub-problems anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::model::{ContextMap, ObjectRef, SubjectRef};
use crate::store::StoreError;

use super::context::EvalContext;
use super::dispatch::{CheckRequest, Dispatch, Layer};
use super::error::EvalError;
use super::key::CheckKey;
use super::types::CheckResult;

/// One check of a bulk request.
#[derive(Debug, Clone, Copy)]
pub struct BulkCheck<'a> {
    /// The resource.
    pub resource: &'a ObjectRef,
    /// The permission or relation.
    pub permission: &'a str,
    /// The subject.
    pub subject: &'a SubjectRef,
    /// The item's own caveat context; `None` for the context's (`ctx.caveat_context()`).
    pub context: Option<&'a ContextMap>,
}

/// Answers every item, in order, each with its own answer or error; caveats are evaluated
/// with the item's context.
pub async fn check_bulk(
    ctx: &EvalContext,
    items: &[BulkCheck<'_>],
) -> Vec<Result<CheckResult, EvalError>> {
    let memo;
    let ctx = if ctx.dispatch().caches_checks() || items.len() < 2 {
        ctx
    } else {
        memo = ctx
            .clone()
            .with_dispatch(Arc::new(RequestMemo::new(ctx.dispatch_arc())));
        &memo
    };
    // Items grouped by (type, permission, subject), request order kept within a group.
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_unstable_by(|&a, &b| match (items.get(a), items.get(b)) {
        (Some(x), Some(y)) => group_of(x).cmp(&group_of(y)).then(a.cmp(&b)),
        _ => a.cmp(&b),
    });
    let mut out: Vec<Option<Result<CheckResult, EvalError>>> = vec![None; items.len()];
    for group in order.chunk_by(|&a, &b| items.get(a).map(group_of) == items.get(b).map(group_of)) {
        let Some(first) = group.first().and_then(|&i| items.get(i)) else {
            continue;
        };
        let valid = validate(
            ctx,
            first.resource.object_type(),
            first.permission,
            first.subject,
        );
        for &i in group {
            let Some(item) = items.get(i) else { continue };
            let answer = match &valid {
                Err(e) => Err(e.clone()),
                Ok(()) => ctx
                    .dispatch()
                    .check(
                        ctx,
                        item.resource,
                        item.permission,
                        item.subject,
                        ctx.max_depth(),
                    )
                    .await
                    .and_then(|r| {
                        let context = item.context.unwrap_or_else(|| ctx.caveat_context());
                        Ok(CheckResult {
                            permissionship: super::resolve_in(ctx, context, r.permissionship)?,
                            expires_at: r.expires_at,
                        })
                    }),
            };
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(answer);
            }
        }
    }
    out.into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(EvalError::Store(StoreError::Internal(
                    "a bulk check item was not evaluated".to_string(),
                )))
            })
        })
        .collect()
}

/// What items of one group share.
fn group_of<'a>(item: &BulkCheck<'a>) -> (&'a str, &'a str, &'a SubjectRef) {
    (item.resource.object_type(), item.permission, item.subject)
}

/// Fails unless `resource_type#permission` and the subject's type exist.
fn validate(
    ctx: &EvalContext,
    resource_type: &str,
    permission: &str,
    subject: &SubjectRef,
) -> Result<(), EvalError> {
    ctx.validate_relation(resource_type, permission)
        .and_then(|()| ctx.validate_subject_type(subject))
}

/// Whether `subject` has `permission` on each of `resources` (all of type `resource_type`),
/// in order: the dispatch chain's answers, caveats not yet evaluated. The type, permission and
/// subject are validated once; a failure is every item's answer.
pub async fn check_many(
    ctx: &EvalContext,
    resource_type: &str,
    permission: &str,
    subject: &SubjectRef,
    resources: &[&ObjectRef],
) -> Vec<Result<CheckResult, EvalError>> {
    if let Err(e) = validate(ctx, resource_type, permission, subject) {
        return vec![Err(e); resources.len()];
    }
    let mut out = Vec::with_capacity(resources.len());
    for resource in resources {
        out.push(
            ctx.dispatch()
                .check(ctx, resource, permission, subject, ctx.max_depth())
                .await,
        );
    }
    out
}

/// Check answers of one request, in front of a chain without a shared cache: the request's
/// items share sub-problems through it. Every answer was computed at the request's revision
/// and clock, so none can expire within the request.
struct RequestMemo {
    inner: Arc<dyn Dispatch>,
    checks: Mutex<HashMap<CheckKey, CheckResult>>,
}

impl RequestMemo {
    fn new(inner: Arc<dyn Dispatch>) -> Self {
        RequestMemo {
            inner,
            checks: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &[u8]) -> Option<CheckResult> {
        self.checks.lock().ok()?.get(key).cloned()
    }
}

#[async_trait]
impl Layer for RequestMemo {
    fn inner(&self) -> &dyn Dispatch {
        self.inner.as_ref()
    }

    async fn check_request(
        &self,
        ctx: &EvalContext,
        request: &CheckRequest<'_>,
        depth: u32,
    ) -> Result<CheckResult, EvalError> {
        let revision = ctx.snapshot().revision();
        if let Some(hit) = request.with_key_bytes(revision, |key| self.get(key)) {
            return Ok(hit);
        }
        let key = request.owned_key(revision);
        let result = self
            .inner
            .check_request(ctx, &request.keyed(&key), depth)
            .await?;
        if let Ok(mut checks) = self.checks.lock() {
            checks.insert(key, result.clone());
        }
        Ok(result)
    }

    fn caches_checks(&self) -> bool {
        true
    }
}
