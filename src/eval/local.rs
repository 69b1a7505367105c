//! `LocalEvaluator`: applies the schema's rewrites against the snapshot in the context.
//! Union stops at the first unconditional yes, intersection at the first no; nested
//! sub-problems are re-dispatched through the head of the chain, each spending depth.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::model::{ObjectRef, Relationship, SubjectRef, Timestamp};
use crate::schema::{ArrowKind, RelationKind, Rewrite};

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

/// Accumulates a union of results; `done()` once an unconditional yes is found.
#[derive(Default)]
struct UnionAcc {
    has: bool,
    conditions: Vec<CaveatExpr>,
    expires_at: Option<Timestamp>,
    error: Option<EvalError>,
}

impl UnionAcc {
    fn add(&mut self, r: Result<CheckResult, EvalError>) {
        match r {
            Ok(r) => {
                self.expires_at = min_expiry(self.expires_at, r.expires_at);
                match r.permissionship {
                    Permissionship::Has => self.has = true,
                    Permissionship::HasNot => {}
                    Permissionship::Conditional(c) => self.conditions.push(c),
                }
            }
            Err(e) => {
                if self.error.is_none() {
                    self.error = Some(e);
                }
            }
        }
    }

    fn done(&self) -> bool {
        self.has
    }

    fn finish(self) -> Result<CheckResult, EvalError> {
        let permissionship = if self.has {
            Permissionship::Has
        } else if let Some(e) = self.error {
            return Err(e);
        } else {
            match self.conditions.len() {
                0 => Permissionship::HasNot,
                _ => Permissionship::Conditional(
                    self.conditions
                        .into_iter()
                        .reduce(CaveatExpr::or)
                        .unwrap_or(CaveatExpr::Or(Vec::new())),
                ),
            }
        };
        Ok(CheckResult {
            permissionship,
            expires_at: self.expires_at,
        })
    }
}

/// Accumulates an intersection; `done()` once a no is found.
struct IntersectAcc {
    has_not: bool,
    conditions: Vec<CaveatExpr>,
    expires_at: Option<Timestamp>,
}

impl IntersectAcc {
    fn new() -> Self {
        IntersectAcc {
            has_not: false,
            conditions: Vec::new(),
            expires_at: None,
        }
    }

    fn add(&mut self, r: CheckResult) {
        self.expires_at = min_expiry(self.expires_at, r.expires_at);
        match r.permissionship {
            Permissionship::Has => {}
            Permissionship::HasNot => self.has_not = true,
            Permissionship::Conditional(c) => self.conditions.push(c),
        }
    }

    fn done(&self) -> bool {
        self.has_not
    }

    fn finish(self) -> CheckResult {
        let permissionship = if self.has_not {
            Permissionship::HasNot
        } else {
            match self.conditions.into_iter().reduce(CaveatExpr::and) {
                None => Permissionship::Has,
                Some(c) => Permissionship::Conditional(c),
            }
        };
        CheckResult {
            permissionship,
            expires_at: self.expires_at,
        }
    }
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
                acc.add(Ok(gate(
                    CheckResult::new(Permissionship::Has),
                    caveat_of(rel),
                    rel.expiration(),
                )));
                if acc.done() {
                    return acc.finish();
                }
            } else if s.relation().is_some() {
                usersets.push(rel);
            }
        }
        for rel in usersets {
            let s = rel.subject();
            let Some(srel) = s.relation() else { continue };
            let r = grow_stack(ctx.dispatch().check(ctx, s.object(), srel, subject, depth))
                .await
                .map(|r| gate(r, caveat_of(rel), rel.expiration()));
            acc.add(r);
            if acc.done() {
                break;
            }
        }
        acc.finish()
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
                    let mut acc = UnionAcc::default();
                    if let Some(item) = first.and_then(|f| items.get(f)) {
                        acc.add(
                            self.check_rewrite(ctx, resource, item, subject, hint, depth)
                                .await,
                        );
                    }
                    for (i, item) in items.iter().enumerate() {
                        if acc.done() {
                            break;
                        }
                        if Some(i) == first {
                            continue;
                        }
                        acc.add(
                            self.check_rewrite(ctx, resource, item, subject, None, depth)
                                .await,
                        );
                    }
                    acc.finish()
                }
                Rewrite::Intersection(items) => {
                    let mut acc = IntersectAcc::new();
                    for item in items {
                        let hint = hint.filter(|h| mentions(item, h));
                        acc.add(
                            self.check_rewrite(ctx, resource, item, subject, hint, depth)
                                .await?,
                        );
                        if acc.done() {
                            break;
                        }
                    }
                    Ok(acc.finish())
                }
                Rewrite::Exclusion(base, sub) => {
                    let b = self
                        .check_rewrite(ctx, resource, base, subject, hint, depth)
                        .await?;
                    if matches!(b.permissionship, Permissionship::HasNot) {
                        return Ok(b);
                    }
                    let s = self
                        .check_rewrite(ctx, resource, sub, subject, None, depth)
                        .await?;
                    Ok(exclude(b, s))
                }
                Rewrite::Arrow {
                    tupleset,
                    computed,
                    kind,
                } => {
                    let mut rels = read_live(ctx, resource, tupleset)?;
                    match kind {
                        ArrowKind::Any => {
                            // The hinted target first (any order gives the same answer).
                            if let Some(EvalHint::Arrow { target, .. }) =
                                hint.filter(|h| mentions(rewrite, h))
                            {
                                if let Some(i) =
                                    rels.iter().position(|r| r.subject().object() == target)
                                {
                                    rels.swap(0, i);
                                }
                            }
                            let mut acc = UnionAcc::default();
                            for rel in &rels {
                                let target = rel.subject().object();
                                if ctx
                                    .schema()
                                    .relation(target.object_type(), computed)
                                    .is_none()
                                {
                                    continue;
                                }
                                let r = grow_stack(
                                    ctx.dispatch().check(ctx, target, computed, subject, depth),
                                )
                                .await
                                .map(|r| gate(r, caveat_of(rel), rel.expiration()));
                                acc.add(r);
                                if acc.done() {
                                    break;
                                }
                            }
                            acc.finish()
                        }
                        ArrowKind::All => {
                            let mut acc = IntersectAcc::new();
                            let mut any = false;
                            for rel in &rels {
                                let target = rel.subject().object();
                                if ctx
                                    .schema()
                                    .relation(target.object_type(), computed)
                                    .is_none()
                                {
                                    continue;
                                }
                                any = true;
                                let r = grow_stack(
                                    ctx.dispatch().check(ctx, target, computed, subject, depth),
                                )
                                .await?;
                                acc.add(gate(r, caveat_of(rel), rel.expiration()));
                                if acc.done() {
                                    break;
                                }
                            }
                            if any {
                                Ok(acc.finish())
                            } else {
                                Ok(CheckResult::new(Permissionship::HasNot))
                            }
                        }
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
