//! `LocalEvaluator`: applies the schema's rewrites against the snapshot in the context.
//! Union stops at the first unconditional yes, intersection at the first no, exclusion at a no
//! base or a yes subtrahend; nested sub-problems are re-dispatched through the head of the
//! chain, each spending depth. The operands of a rewrite (and the usersets of a relation, the
//! targets of an arrow) are evaluated in order, one after another while each answers at once;
//! one that has to wait (on a sub-problem in flight elsewhere) is polled beside the next ones,
//! so they can decide the answer meanwhile (`combine`).

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};

use crate::model::{ObjectRef, Relationship, SubjectRef, Timestamp};
use crate::schema::{ArrowKind, RelationKind, Rewrite};
use crate::store::StoreError;

use super::caveat_expr::CaveatExpr;
use super::context::EvalContext;
use super::dispatch::{CheckRequest, Dispatch};
use super::error::EvalError;
use super::lookup::{Candidates, LookupOrder};
use super::stack::grow_stack;
use super::subject_set::SubjectSet;
use super::types::{
    CheckResult, EvalHint, ExpandMode, ExpandNode, ExpandSubject, ExpandTree, FoundSubject,
    LookupResult, Permissionship,
};

/// Evaluates sub-problems against the snapshot in the context.
#[derive(Debug, Default)]
pub struct LocalEvaluator;

impl LocalEvaluator {
    /// A new evaluator.
    pub fn new() -> Self {
        LocalEvaluator
    }
}

/// The live (unexpired) relationships of `resource#relation`.
pub(super) fn read_live(
    ctx: &EvalContext,
    resource: &ObjectRef,
    relation: &str,
) -> Result<Vec<Relationship>, EvalError> {
    let now = ctx.now();
    let mut out = Vec::new();
    for rel in ctx.snapshot().read_resource(resource, relation) {
        let rel = rel?;
        if !rel.is_expired_at(now) {
            out.push(rel);
        }
    }
    Ok(out)
}

fn caveat_of(rel: &Relationship) -> Option<CaveatExpr> {
    rel.caveat().map(|c| CaveatExpr::Caveat {
        name: c.name().to_string(),
        context: c.context().clone(),
        relationship: Some(Arc::from(
            format!("{}#{}@{}", rel.resource(), rel.relation(), rel.subject()).as_str(),
        )),
    })
}

fn min_expiry(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// `result AND caveat` for a result reached through a caveated relationship.
fn gate(
    result: CheckResult,
    caveat: Option<CaveatExpr>,
    expiration: Option<Timestamp>,
) -> CheckResult {
    let expires_at = min_expiry(result.expires_at, expiration);
    let permissionship = match (result.permissionship, caveat) {
        (Permissionship::HasNot, _) => Permissionship::HasNot,
        (p, None) => p,
        (Permissionship::Has, Some(c)) => Permissionship::Conditional(c),
        (Permissionship::Conditional(e), Some(c)) => {
            Permissionship::Conditional(CaveatExpr::and(c, e))
        }
    };
    CheckResult {
        permissionship,
        expires_at,
    }
}

/// Combines the answers of a rewrite's operands in whatever order they arrive; the answer
/// never depends on that order. An error is the answer only when the answer depends on the
/// operand that failed: an operand that decides it alone (a yes in a union, a no in an
/// intersection, a no base or a yes subtrahend in an exclusion) wins over errors elsewhere.
trait Combine: Default {
    /// Takes the answer of operand `index` (operands are numbered in the order they start).
    fn add(&mut self, index: usize, r: Result<CheckResult, EvalError>);

    /// Whether the answer is decided, whatever the operands still out would say.
    fn done(&self) -> bool;

    /// The answer, once every operand has answered or `done()`.
    fn finish(self) -> Result<CheckResult, EvalError>;
}

/// What a union and an intersection keep of their operands' answers besides yes and no: the
/// conditions, the earliest expiration, the first error.
#[derive(Default)]
struct Kept {
    conditions: Vec<CaveatExpr>,
    expires_at: Option<Timestamp>,
    error: Option<EvalError>,
}

impl Kept {
    /// Keeps what `r` adds; `Some(true)` for an unconditional yes, `Some(false)` for a no.
    fn keep(&mut self, r: Result<CheckResult, EvalError>) -> Option<bool> {
        match r {
            Ok(r) => {
                self.expires_at = min_expiry(self.expires_at, r.expires_at);
                match r.permissionship {
                    Permissionship::Has => Some(true),
                    Permissionship::HasNot => Some(false),
                    Permissionship::Conditional(c) => {
                        self.conditions.push(c);
                        None
                    }
                }
            }
            Err(e) => {
                if self.error.is_none() {
                    self.error = Some(e);
                }
                None
            }
        }
    }

    /// The answer: `decided` if an operand decided it, else the first error, else `empty`
    /// when no condition is left, else the conditions joined by `join`.
    fn answer(
        self,
        decided: Option<Permissionship>,
        empty: Permissionship,
        join: fn(CaveatExpr, CaveatExpr) -> CaveatExpr,
    ) -> Result<CheckResult, EvalError> {
        let permissionship = match (decided, self.error) {
            (Some(p), _) => p,
            (None, Some(e)) => return Err(e),
            (None, None) => self
                .conditions
                .into_iter()
                .reduce(join)
                .map_or(empty, Permissionship::Conditional),
        };
        Ok(CheckResult {
            permissionship,
            expires_at: self.expires_at,
        })
    }
}

/// Accumulates a union (`UNION`) or an intersection of results; `done()` once an operand
/// decides it: an unconditional yes for a union, a no for an intersection.
#[derive(Default)]
struct Junction<const UNION: bool> {
    decided: bool,
    kept: Kept,
}

/// A union of results.
type UnionAcc = Junction<true>;
/// An intersection of results.
type IntersectAcc = Junction<false>;

impl<const UNION: bool> Combine for Junction<UNION> {
    fn add(&mut self, _: usize, r: Result<CheckResult, EvalError>) {
        if self.kept.keep(r) == Some(UNION) {
            self.decided = true;
        }
    }

    fn done(&self) -> bool {
        self.decided
    }

    fn finish(self) -> Result<CheckResult, EvalError> {
        let (decides, empty, join): (_, _, fn(CaveatExpr, CaveatExpr) -> CaveatExpr) = if UNION {
            (Permissionship::Has, Permissionship::HasNot, CaveatExpr::or)
        } else {
            (Permissionship::HasNot, Permissionship::Has, CaveatExpr::and)
        };
        self.kept
            .answer(self.decided.then_some(decides), empty, join)
    }
}

/// Accumulates an exclusion: operand 0 is the base, operand 1 what is subtracted; `done()`
/// once the base is a no or the subtrahend a yes.
#[derive(Default)]
struct ExcludeAcc {
    base: Option<Result<CheckResult, EvalError>>,
    sub: Option<Result<CheckResult, EvalError>>,
}

impl Combine for ExcludeAcc {
    fn add(&mut self, index: usize, r: Result<CheckResult, EvalError>) {
        if index == 0 {
            self.base = Some(r);
        } else {
            self.sub = Some(r);
        }
    }

    fn done(&self) -> bool {
        let is = |r: &Option<Result<CheckResult, EvalError>>, p: Permissionship| matches!(r, Some(Ok(r)) if r.permissionship == p);
        is(&self.base, Permissionship::HasNot)
            || is(&self.sub, Permissionship::Has)
            || (self.base.is_some() && self.sub.is_some())
    }

    fn finish(self) -> Result<CheckResult, EvalError> {
        match (self.base, self.sub) {
            (Some(Ok(b)), _) if b.permissionship == Permissionship::HasNot => Ok(b),
            (Some(Ok(b)), Some(Ok(s))) => Ok(exclude(b, s)),
            (b, Some(Ok(s))) if s.permissionship == Permissionship::Has => Ok(CheckResult {
                permissionship: Permissionship::HasNot,
                expires_at: min_expiry(
                    b.and_then(|b| b.ok()).and_then(|b| b.expires_at),
                    s.expires_at,
                ),
            }),
            (Some(Err(e)), _) | (_, Some(Err(e))) => Err(e),
            (None, _) | (_, None) => Err(EvalError::Store(StoreError::Internal(
                "an exclusion finished before its operands answered".to_string(),
            ))),
        }
    }
}

/// A future tagged with the number of its operand.
struct Indexed<F> {
    index: usize,
    inner: F,
}

impl<F: Future + Unpin> Future for Indexed<F> {
    type Output = (usize, F::Output);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let index = self.index;
        self.inner.poll_unpin(cx).map(|r| (index, r))
    }
}

/// Evaluates a rewrite's operands into `acc`, stopping as soon as the answer is decided.
/// Operands start in order, and each is polled to its answer before the next starts as long as
/// it answers at once — storage reads are synchronous, so that is every operand that waits on
/// nothing, and the common path is the sequential one, with nothing allocated. An operand that
/// has to wait (in practice: on the same sub-problem in flight for another request, through
/// single-flight) is set aside and polled beside the operands that follow, so they can decide
/// the answer meanwhile. Operands still out when it is decided are dropped (cancelled). Every
/// operand is polled from this task: nothing runs on another thread.
async fn combine<A, F>(
    mut acc: A,
    operands: impl Iterator<Item = F>,
) -> Result<CheckResult, EvalError>
where
    A: Combine,
    F: Future<Output = Result<CheckResult, EvalError>> + Unpin,
{
    let mut operands = operands.enumerate();
    let mut waiting: Option<FuturesUnordered<Indexed<F>>> = None;
    poll_fn(move |cx| {
        loop {
            if let Some(waiting) = waiting.as_mut() {
                while let Poll::Ready(Some((index, r))) = waiting.poll_next_unpin(cx) {
                    acc.add(index, r);
                    if acc.done() {
                        return Poll::Ready(std::mem::take(&mut acc).finish());
                    }
                }
            }
            let Some((index, mut operand)) = operands.next() else {
                if waiting.as_ref().is_none_or(FuturesUnordered::is_empty) {
                    return Poll::Ready(std::mem::take(&mut acc).finish());
                }
                return Poll::Pending;
            };
            match operand.poll_unpin(cx) {
                Poll::Ready(r) => {
                    acc.add(index, r);
                    if acc.done() {
                        return Poll::Ready(std::mem::take(&mut acc).finish());
                    }
                }
                Poll::Pending => waiting
                    .get_or_insert_with(FuturesUnordered::new)
                    .push(Indexed {
                        index,
                        inner: operand,
                    }),
            }
        }
    })
    .await
}

/// The check of `target#relation@subject`, reached through `rel`: gated by its caveat and
/// expiration.
fn through<'r>(
    ctx: &'r EvalContext,
    rel: &'r Relationship,
    target: &'r ObjectRef,
    relation: &'r str,
    subject: &'r SubjectRef,
    depth: u32,
) -> impl Future<Output = Result<CheckResult, EvalError>> + Unpin + Send + 'r {
    grow_stack(ctx.dispatch().check(ctx, target, relation, subject, depth))
        .map(move |r| r.map(|r| gate(r, caveat_of(rel), rel.expiration())))
}

/// The checks of `computed` on the targets of an arrow's relationships `rels` (those whose
/// type has it), in order.
fn arrow_targets<'r>(
    ctx: &'r EvalContext,
    rels: &'r [Relationship],
    computed: &'r str,
    subject: &'r SubjectRef,
    depth: u32,
) -> impl Iterator<Item = impl Future<Output = Result<CheckResult, EvalError>> + Unpin + Send + 'r>
+ Send
+ 'r {
    rels.iter().filter_map(move |rel| {
        let target = rel.subject().object();
        ctx.schema().relation(target.object_type(), computed)?;
        Some(through(ctx, rel, target, computed, subject, depth))
    })
}

/// Whether `rewrite` contains the part `hint` names (through unions, intersections and the
/// base of an exclusion).
fn mentions(rewrite: &Rewrite, hint: &EvalHint<'_>) -> bool {
    match (rewrite, hint) {
        (Rewrite::Computed(r), EvalHint::Computed(h)) => r == h,
        (
            Rewrite::Arrow {
                tupleset, computed, ..
            },
            EvalHint::Arrow {
                tupleset: t,
                computed: c,
                ..
            },
        ) => tupleset == t && computed == c,
        (Rewrite::Union(items) | Rewrite::Intersection(items), _) => {
            items.iter().any(|i| mentions(i, hint))
        }
        (Rewrite::Exclusion(base, _), _) => mentions(base, hint),
        _ => false,
    }
}

fn exclude(base: CheckResult, sub: CheckResult) -> CheckResult {
    let expires_at = min_expiry(base.expires_at, sub.expires_at);
    let permissionship = match (base.permissionship, sub.permissionship) {
        (Permissionship::HasNot, _) | (_, Permissionship::Has) => Permissionship::HasNot,
        (b, Permissionship::HasNot) => b,
        (Permissionship::Has, Permissionship::Conditional(s)) => {
            Permissionship::Conditional(CaveatExpr::negate(s))
        }
        (Permissionship::Conditional(b), Permissionship::Conditional(s)) => {
            Permissionship::Conditional(CaveatExpr::and(b, CaveatExpr::negate(s)))
        }
    };
    CheckResult {
        permissionship,
        expires_at,
    }
}

impl LocalEvaluator {
    /// Check of a relation: direct subjects first, then wildcards, then usersets.
    async fn check_relation(
        &self,
        ctx: &EvalContext,
        resource: &ObjectRef,
        relation: &str,
        subject: &SubjectRef,
        depth: u32,
    ) -> Result<CheckResult, EvalError> {
        let rels = read_live(ctx, resource, relation)?;
        let mut acc = UnionAcc::default();
        let mut usersets = Vec::new();
        for rel in &rels {
            let s = rel.subject();
            let direct = s == subject
                || (s.is_wildcard()
                    && subject.relation().is_none()
                    && s.object_type() == subject.object_type());
            if direct {
                acc.add(
                    0,
                    Ok(gate(
                        CheckResult::new(Permissionship::Has),
                        caveat_of(rel),
                        rel.expiration(),
                    )),
                );
                if acc.done() {
                    return acc.finish();
                }
            } else if s.relation().is_some() {
                usersets.push(rel);
            }
        }
        let usersets = usersets.into_iter().filter_map(|rel| {
            let s = rel.subject();
            Some(through(ctx, rel, s.object(), s.relation()?, subject, depth))
        });
        combine(acc, usersets).await
    }

    /// `check`, trying first the part of a permission that `hint` names.
    async fn check_hinted(
        &self,
        ctx: &EvalContext,
        resource: &ObjectRef,
        relation: &str,
        subject: &SubjectRef,
        hint: Option<EvalHint<'_>>,
        depth: u32,
    ) -> Result<CheckResult, EvalError> {
        let depth = ctx.descend(depth)?;

        // A userset contains itself.
        if subject.relation() == Some(relation) && subject.object() == resource {
            return Ok(CheckResult::new(Permissionship::Has));
        }
        let def = ctx
            .schema()
            .relation(resource.object_type(), relation)
            .ok_or_else(|| EvalError::UnknownRelation {
                object_type: resource.object_type().to_string(),
                relation: relation.to_string(),
            })?;
        match def.kind() {
            RelationKind::Relation(_) => {
                self.check_relation(ctx, resource, relation, subject, depth)
                    .await
            }
            RelationKind::Permission(rewrite) => {
                self.check_rewrite(ctx, resource, rewrite, subject, hint, depth)
                    .await
            }
        }
    }

    /// Evaluates a permission's rewrite; the part `hint` names (if any) is tried first.
    fn check_rewrite<'a>(
        &'a self,
        ctx: &'a EvalContext,
        resource: &'a ObjectRef,
        rewrite: &'a Rewrite,
        subject: &'a SubjectRef,
        hint: Option<EvalHint<'a>>,
        depth: u32,
    ) -> BoxFuture<'a, Result<CheckResult, EvalError>> {
        grow_stack(Box::pin(async move {
            match rewrite {
                Rewrite::Nil => Ok(CheckResult::new(Permissionship::HasNot)),
                Rewrite::Computed(rel) => {
                    grow_stack(ctx.dispatch().check(ctx, resource, rel, subject, depth)).await
                }
                Rewrite::Union(items) => {
                    // The hinted item first: a union's answer does not depend on the order.
                    let first = hint.and_then(|h| items.iter().position(|i| mentions(i, &h)));
                    let hinted = first.and_then(|f| items.get(f)).map(|item| (item, hint));
                    let rest = items
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| Some(*i) != first)
                        .map(|(_, item)| (item, None));
                    let operands = hinted.into_iter().chain(rest).map(|(item, hint)| {
                        self.check_rewrite(ctx, resource, item, subject, hint, depth)
                    });
                    combine(UnionAcc::default(), operands).await
                }
                Rewrite::Intersection(items) => {
                    let operands = items.iter().map(|item| {
                        let hint = hint.filter(|h| mentions(item, h));
                        self.check_rewrite(ctx, resource, item, subject, hint, depth)
                    });
                    combine(IntersectAcc::default(), operands).await
                }
                Rewrite::Exclusion(base, sub) => {
                    let operands = [(base, hint), (sub, None)].into_iter().map(|(item, hint)| {
                        self.check_rewrite(ctx, resource, item, subject, hint, depth)
                    });
                    combine(ExcludeAcc::default(), operands).await
                }
                Rewrite::Arrow {
                    tupleset,
                    computed,
                    kind,
                } => {
                    let mut rels = read_live(ctx, resource, tupleset)?;
                    // The hinted target of an `any` arrow first (any order gives the same
                    // answer).
                    if let Some(EvalHint::Arrow { target, .. }) =
                        hint.filter(|h| matches!(kind, ArrowKind::Any) && mentions(rewrite, h))
                    {
                        if let Some(i) = rels.iter().position(|r| r.subject().object() == target) {
                            rels.swap(0, i);
                        }
                    }
                    let mut targets =
                        arrow_targets(ctx, &rels, computed, subject, depth).peekable();
                    match kind {
                        ArrowKind::Any => combine(UnionAcc::default(), targets).await,
                        // Over no target at all, `all` is false.
                        ArrowKind::All if targets.peek().is_none() => {
                            Ok(CheckResult::new(Permissionship::HasNot))
                        }
                        ArrowKind::All => combine(IntersectAcc::default(), targets).await,
                    }
                }
            }
        }))
    }

    fn expand_rewrite<'a>(
        &'a self,
        ctx: &'a EvalContext,
        resource: &'a ObjectRef,
        relation: &'a str,
        rewrite: &'a Rewrite,
        mode: ExpandMode,
        depth: u32,
    ) -> BoxFuture<'a, Result<ExpandTree, EvalError>> {
        grow_stack(Box::pin(async move {
            let tree = |node| ExpandTree {
                object: resource.clone(),
                relation: relation.to_string(),
                node,
                caveat: None,
            };
            match rewrite {
                Rewrite::Nil => Ok(tree(ExpandNode::Leaf(Vec::new()))),
                Rewrite::Computed(rel) => {
                    grow_stack(ctx.dispatch().expand(ctx, resource, rel, mode, depth)).await
                }
                Rewrite::Union(items) | Rewrite::Intersection(items) => {
                    let mut children = Vec::with_capacity(items.len());
                    for item in items {
                        children.push(
                            self.expand_rewrite(ctx, resource, relation, item, mode, depth)
                                .await?,
                        );
                    }
                    Ok(tree(if matches!(rewrite, Rewrite::Union(_)) {
                        ExpandNode::Union(children)
                    } else {
                        ExpandNode::Intersection(children)
                    }))
                }
                Rewrite::Exclusion(base, sub) => {
                    let b = self
                        .expand_rewrite(ctx, resource, relation, base, mode, depth)
                        .await?;
                    let s = self
                        .expand_rewrite(ctx, resource, relation, sub, mode, depth)
                        .await?;
                    Ok(tree(ExpandNode::Exclusion(Box::new(b), Box::new(s))))
                }
                Rewrite::Arrow {
                    tupleset,
                    computed,
                    kind,
                } => {
                    let rels = read_live(ctx, resource, tupleset)?;
                    let mut children = Vec::new();
                    for rel in &rels {
                        let target = rel.subject().object();
                        if ctx
                            .schema()
                            .relation(target.object_type(), computed)
                            .is_none()
                        {
                            continue;
                        }
                        let mut child =
                            grow_stack(ctx.dispatch().expand(ctx, target, computed, mode, depth))
                                .await?;
                        if let Some(c) = caveat_of(rel) {
                            child.caveat = Some(match child.caveat.take() {
                                Some(existing) => CaveatExpr::and(c, existing),
                                None => c,
                            });
                        }
                        children.push(child);
                    }
                    Ok(tree(match kind {
                        ArrowKind::Any => ExpandNode::Union(children),
                        ArrowKind::All => ExpandNode::Intersection(children),
                    }))
                }
            }
        }))
    }

    fn subjects_rewrite<'a>(
        &'a self,
        ctx: &'a EvalContext,
        resource: &'a ObjectRef,
        rewrite: &'a Rewrite,
        subject_type: &'a str,
        subject_relation: Option<&'a str>,
        depth: u32,
    ) -> BoxFuture<'a, Result<SubjectSet, EvalError>> {
        grow_stack(Box::pin(async move {
            match rewrite {
                Rewrite::Nil => Ok(SubjectSet::default()),
                Rewrite::Computed(rel) => {
                    let found = grow_stack(ctx.dispatch().lookup_subjects(
                        ctx,
                        resource,
                        rel,
                        subject_type,
                        subject_relation,
                        depth,
                    ))
                    .await?;
                    Ok(SubjectSet::from_found(found))
                }
                Rewrite::Union(items) => {
                    let mut set = SubjectSet::default();
                    for item in items {
                        let s = self
                            .subjects_rewrite(
                                ctx,
                                resource,
                                item,
                                subject_type,
                                subject_relation,
                                depth,
                            )
                            .await?;
                        set = set.union(s);
                    }
                    Ok(set)
                }
                Rewrite::Intersection(items) => {
                    let mut set: Option<SubjectSet> = None;
                    for item in items {
                        let s = self
                            .subjects_rewrite(
                                ctx,
                                resource,
                                item,
                                subject_type,
                                subject_relation,
                                depth,
                            )
                            .await?;
                        set = Some(match set {
                            None => s,
                            Some(acc) => acc.intersect(s),
                        });
                    }
                    Ok(set.unwrap_or_default())
                }
                Rewrite::Exclusion(base, sub) => {
                    let b = self
                        .subjects_rewrite(
                            ctx,
                            resource,
                            base,
                            subject_type,
                            subject_relation,
                            depth,
                        )
                        .await?;
                    if b.is_empty() {
                        return Ok(b);
                    }
                    let s = self
                        .subjects_rewrite(ctx, resource, sub, subject_type, subject_relation, depth)
                        .await?;
                    Ok(b.exclude(s))
                }
                Rewrite::Arrow {
                    tupleset,
                    computed,
                    kind,
                } => {
                    let rels = read_live(ctx, resource, tupleset)?;
                    let mut set: Option<SubjectSet> = None;
                    for rel in &rels {
                        let target = rel.subject().object();
                        if ctx
                            .schema()
                            .relation(target.object_type(), computed)
                            .is_none()
                        {
                            continue;
                        }
                        let found = grow_stack(ctx.dispatch().lookup_subjects(
                            ctx,
                            target,
                            computed,
                            subject_type,
                            subject_relation,
                            depth,
                        ))
                        .await?;
                        let s = SubjectSet::from_found(found).gate(caveat_of(rel));
                        set = Some(match (set, kind) {
                            (None, _) => s,
                            (Some(acc), ArrowKind::Any) => acc.union(s),
                            (Some(acc), ArrowKind::All) => acc.intersect(s),
                        });
                    }
                    Ok(set.unwrap_or_default())
                }
            }
        }))
    }
}

#[async_trait]
impl Dispatch for LocalEvaluator {
    async fn check(
        &self,
        ctx: &EvalContext,
        resource: &ObjectRef,
        relation: &str,
        subject: &SubjectRef,
        depth: u32,
    ) -> Result<CheckResult, EvalError> {
        self.check_hinted(ctx, resource, relation, subject, None, depth)
            .await
    }

    async fn check_request(
        &self,
        ctx: &EvalContext,
        request: &CheckRequest<'_>,
        depth: u32,
    ) -> Result<CheckResult, EvalError> {
        self.check_hinted(
            ctx,
            request.resource,
            request.relation,
            request.subject,
            request.hint,
            depth,
        )
        .await
    }

    async fn expand(
        &self,
        ctx: &EvalContext,
        resource: &ObjectRef,
        relation: &str,
        mode: ExpandMode,
        depth: u32,
    ) -> Result<ExpandTree, EvalError> {
        let depth = ctx.descend(depth)?;
        let def = ctx
            .schema()
            .relation(resource.object_type(), relation)
            .ok_or_else(|| EvalError::UnknownRelation {
                object_type: resource.object_type().to_string(),
                relation: relation.to_string(),
            })?;
        match def.kind() {
            RelationKind::Permission(rewrite) => {
                self.expand_rewrite(ctx, resource, relation, rewrite, mode, depth)
                    .await
            }
            RelationKind::Relation(_) => {
                let rels = read_live(ctx, resource, relation)?;
                let leaf = ExpandTree {
                    object: resource.clone(),
                    relation: relation.to_string(),
                    node: ExpandNode::Leaf(
                        rels.iter()
                            .map(|r| ExpandSubject {
                                subject: r.subject().clone(),
                                caveat: caveat_of(r),
                                expiration: r.expiration(),
                            })
                            .collect(),
                    ),
                    caveat: None,
                };
                if mode == ExpandMode::Shallow {
                    return Ok(leaf);
                }
                let mut children = vec![leaf];
                for rel in &rels {
                    let s = rel.subject();
                    let Some(srel) = s.relation() else { continue };
                    let mut child =
                        grow_stack(ctx.dispatch().expand(ctx, s.object(), srel, mode, depth))
                            .await?;
                    if let Some(c) = caveat_of(rel) {
                        child.caveat = Some(match child.caveat.take() {
                            Some(existing) => CaveatExpr::and(c, existing),
                            None => c,
                        });
                    }
                    children.push(child);
                }
                if children.len() == 1 {
                    return Ok(children.into_iter().next().unwrap_or_else(|| ExpandTree {
                        object: resource.clone(),
                        relation: relation.to_string(),
                        node: ExpandNode::Leaf(Vec::new()),
                        caveat: None,
                    }));
                }
                Ok(ExpandTree {
                    object: resource.clone(),
                    relation: relation.to_string(),
                    node: ExpandNode::Union(children),
                    caveat: None,
                })
            }
        }
    }

    async fn lookup_resources(
        &self,
        ctx: &EvalContext,
        resource_type: &str,
        relation: &str,
        subject: &SubjectRef,
        depth: u32,
    ) -> Result<Vec<LookupResult>, EvalError> {
        let depth = ctx.descend(depth)?;
        let candidates = Candidates {
            ctx,
            resource_type,
            permission: relation,
            subject,
            depth,
        };
        let mut out = Vec::new();
        candidates
            .confirm(LookupOrder::Walk { after: None }, |resource, p| {
                out.push(LookupResult {
                    resource_id: resource.object_id().to_string(),
                    permissionship: p,
                });
                Ok(true)
            })
            .await?;
        out.sort_unstable_by(|a, b| a.resource_id.cmp(&b.resource_id));
        Ok(out)
    }

    async fn lookup_subjects(
        &self,
        ctx: &EvalContext,
        resource: &ObjectRef,
        relation: &str,
        subject_type: &str,
        subject_relation: Option<&str>,
        depth: u32,
    ) -> Result<Vec<FoundSubject>, EvalError> {
        let depth = ctx.descend(depth)?;
        let def = ctx
            .schema()
            .relation(resource.object_type(), relation)
            .ok_or_else(|| EvalError::UnknownRelation {
                object_type: resource.object_type().to_string(),
                relation: relation.to_string(),
            })?;
        let set = match def.kind() {
            RelationKind::Permission(rewrite) => {
                self.subjects_rewrite(
                    ctx,
                    resource,
                    rewrite,
                    subject_type,
                    subject_relation,
                    depth,
                )
                .await?
            }
            RelationKind::Relation(_) => {
                let mut set = SubjectSet::default();
                for rel in read_live(ctx, resource, relation)? {
                    let s = rel.subject();
                    if s.object_type() == subject_type && s.relation() == subject_relation {
                        set = set.union(SubjectSet::single(s.object_id(), caveat_of(&rel)));
                    }
                    if let Some(srel) = s.relation() {
                        let found = grow_stack(ctx.dispatch().lookup_subjects(
                            ctx,
                            s.object(),
                            srel,
                            subject_type,
                            subject_relation,
                            depth,
                        ))
                        .await?;
                        set = set.union(SubjectSet::from_found(found).gate(caveat_of(&rel)));
                    }
                }
                set
            }
        };
        Ok(set.into_found())
    }
}
