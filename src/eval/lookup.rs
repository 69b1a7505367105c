//! Streamed `lookup_resources`: results handed to the caller one by one as they are confirmed,
//! in the walk's order (the first arrive long before the walk ends) or by id, each resumable
//! after a given result; complete answers offered to the chain's cache and replayed from it.

use std::collections::HashSet;

use crate::model::{ObjectRef, Revision, SubjectRef, Timestamp};
use crate::schema::{RelationKind, Rewrite};

use super::context::EvalContext;
use super::dispatch::CheckRequest;
use super::error::EvalError;
use super::reverse::{Candidate, Part, Walk, implies};
use super::stack::grow_stack;
use super::types::{EvalHint, LookupResult, Permissionship};

/// The order of a streamed lookup, and where it resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupOrder<'a> {
    /// As the walk from the subject finds them: the first results come as soon as they are
    /// found. The order is fixed by the snapshot, so `after` (a result of an earlier call at
    /// the same revision) resumes right after that result.
    Walk {
        /// The last result already delivered.
        after: Option<&'a str>,
    },
    /// By id: every candidate is found before the first is confirmed. `after` resumes with
    /// the ids above it.
    ById {
        /// The last result already delivered.
        after: Option<&'a str>,
    },
}

/// A complete answer of one lookup at one revision, as a caching layer keeps it: every result
/// in the walk's order with the dispatch chain's answer (caveats not evaluated), and the
/// earliest expiration of a relationship it rests on.
#[derive(Debug)]
pub struct LookupAnswer {
    results: Vec<(Box<str>, Permissionship)>,
    expires_at: Option<Timestamp>,
}

impl LookupAnswer {
    /// How many results it holds.
    pub fn len(&self) -> usize {
        self.results.len()
    }

    /// Whether it holds no result.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }

    /// The earliest expiration it rests on: it must not be served at or after it.
    pub fn expires_at(&self) -> Option<Timestamp> {
        self.expires_at
    }

    /// Approximate bytes it holds.
    pub fn cost(&self) -> usize {
        /// Bytes of the answer besides its results (Arc, Vec header, map slot).
        const OVERHEAD_BYTES: usize = 96;
        OVERHEAD_BYTES
            + self
                .results
                .iter()
                .map(|(id, _)| id.len() + std::mem::size_of::<(Box<str>, Permissionship)>())
                .sum::<usize>()
    }
}

/// The key of a lookup's answer: its revision, resource type, permission and subject.
pub fn lookup_key(
    revision: Revision,
    resource_type: &str,
    permission: &str,
    subject: &SubjectRef,
) -> Box<[u8]> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&revision.get().to_be_bytes());
    for part in [
        resource_type,
        permission,
        subject.object_type(),
        subject.object_id(),
        subject.relation().unwrap_or(""),
    ] {
        out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out.into_boxed_slice()
}

/// Streams the resources of `resource_type` on which `subject` has `permission` (caveats
/// evaluated with the context's caveat context) to `emit`, in `order`, until the walk ends or
/// `emit` returns `false`. An error ends the stream. A complete answer kept by the chain's
/// cache (of the same revision, unexpired) is replayed instead of walking; a complete walk
/// from the start is offered to it.
pub async fn lookup_resources_with<F>(
    ctx: &EvalContext,
    resource_type: &str,
    permission: &str,
    subject: &SubjectRef,
    order: LookupOrder<'_>,
    mut emit: F,
) -> Result<(), EvalError>
where
    F: FnMut(LookupResult) -> bool + Send,
{
    ctx.validate_relation(resource_type, permission)?;
    ctx.validate_subject_type(subject)?;
    let depth = ctx.descend(ctx.max_depth())?;
    let revision = ctx.snapshot().revision();
    let key = lookup_key(revision, resource_type, permission, subject);
    let mut send = |id: &str, permissionship: Permissionship| -> Result<bool, EvalError> {
        Ok(match super::resolve_permissionship(ctx, permissionship)? {
            Permissionship::HasNot => true,
            permissionship => emit(LookupResult {
                resource_id: id.to_string(),
                permissionship,
            }),
        })
    };
    if let Some(answer) = ctx.dispatch().cached_lookup(&key, ctx.now()) {
        return replay(ctx, &answer, order, &mut send);
    }
    let found = Candidates {
        ctx,
        resource_type,
        permission,
        subject,
        depth,
    };
    let recording = order == LookupOrder::Walk { after: None };
    let mut kept: Vec<(Box<str>, Permissionship)> = Vec::new();
    let walked = found
        .confirm(order, |resource, permissionship| {
            if recording {
                kept.push((Box::from(resource.object_id()), permissionship.clone()));
            }
            send(resource.object_id(), permissionship)
        })
        .await?;
    if recording && walked.complete {
        let answer = LookupAnswer {
            results: kept,
            expires_at: walked.expires_at,
        };
        ctx.dispatch()
            .keep_lookup(key, revision, std::sync::Arc::new(answer));
    }
    Ok(())
}

/// Streams a kept answer as a walk would have: in its order, or by id.
fn replay(
    ctx: &EvalContext,
    answer: &LookupAnswer,
    order: LookupOrder<'_>,
    send: &mut impl FnMut(&str, Permissionship) -> Result<bool, EvalError>,
) -> Result<(), EvalError> {
    /// Results sent between two looks at the deadline.
    const DEADLINE_STRIDE: usize = 1024;
    let results: Vec<&(Box<str>, Permissionship)> = match order {
        LookupOrder::Walk { after } => {
            let start = match after {
                None => 0,
                Some(last) => answer
                    .results
                    .iter()
                    .position(|(id, _)| &**id == last)
                    .map_or(answer.results.len(), |i| i + 1),
            };
            answer.results.iter().skip(start).collect()
        }
        LookupOrder::ById { after } => {
            let mut above: Vec<_> = answer
                .results
                .iter()
                .filter(|(id, _)| after.is_none_or(|a| &**id > a))
                .collect();
            above.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            above
        }
    };
    for (i, (id, permissionship)) in results.into_iter().enumerate() {
        if i % DEADLINE_STRIDE == 0 {
            ctx.check_deadline()?;
        }
        if !send(id, permissionship.clone())? {
            break;
        }
    }
    Ok(())
}

/// How a confirmation pass ended.
pub(super) struct Walked {
    /// Whether every candidate was checked (the walk was not stopped).
    pub(super) complete: bool,
    /// The earliest expiration of a relationship the walk read or an answer rested on.
    pub(super) expires_at: Option<Timestamp>,
}

/// The candidates of one lookup (`resource_type#permission` for `subject`), to be confirmed
/// by checks that spend `depth`.
pub(super) struct Candidates<'a> {
    pub(super) ctx: &'a EvalContext,
    pub(super) resource_type: &'a str,
    pub(super) permission: &'a str,
    pub(super) subject: &'a SubjectRef,
    pub(super) depth: u32,
}

impl<'a> Candidates<'a> {
    /// Checks the candidates in `order` (each first through the part of the permission the
    /// walk reached it by) and hands each that is not a plain no to `emit` with the chain's
    /// answer (caveats not evaluated), until `emit` returns `false`.
    pub(super) async fn confirm<F>(
        &self,
        order: LookupOrder<'_>,
        mut emit: F,
    ) -> Result<Walked, EvalError>
    where
        F: FnMut(&ObjectRef, Permissionship) -> Result<bool, EvalError> + Send,
    {
        let ctx = self.ctx;
        let mut walk = Walk::new(ctx, self.resource_type, self.permission, self.subject);
        let mut shortcuts = Shortcuts::new(self);
        let mut expires_at = None;
        let mut complete = true;
        match order {
            LookupOrder::Walk { after } => {
                let mut skip_through = after;
                while let Some(candidate) = walk.next_candidate()? {
                    if let Some(last) = skip_through {
                        if candidate.resource.object_id() == last {
                            skip_through = None;
                        }
                        continue;
                    }
                    if !self
                        .confirm_one(&candidate, &mut shortcuts, &mut expires_at, &mut emit)
                        .await?
                    {
                        complete = false;
                        break;
                    }
                }
                expires_at = earliest(expires_at, walk.expires_at());
            }
            LookupOrder::ById { after } => {
                let mut all = Vec::new();
                while let Some(found) = walk.next_candidate()? {
                    all.push(found);
                }
                expires_at = walk.expires_at();
                drop(walk);
                all.sort_unstable_by(|a, b| a.resource.cmp(&b.resource));
                for candidate in all
                    .iter()
                    .filter(|c| after.is_none_or(|a| c.resource.object_id() > a))
                {
                    if !self
                        .confirm_one(candidate, &mut shortcuts, &mut expires_at, &mut emit)
                        .await?
                    {
                        complete = false;
                        break;
                    }
                }
            }
        }
        Ok(Walked {
            complete,
            expires_at: earliest(expires_at, shortcuts.expires_at),
        })
    }

    /// Decides one candidate, by what the walk proved when that is enough, else by a check;
    /// `false` once `emit` wants no more.
    async fn confirm_one<F>(
        &self,
        candidate: &Candidate<'a>,
        shortcuts: &mut Shortcuts<'a>,
        expires_at: &mut Option<Timestamp>,
        emit: &mut F,
    ) -> Result<bool, EvalError>
    where
        F: FnMut(&ObjectRef, Permissionship) -> Result<bool, EvalError> + Send,
    {
        match shortcuts.decide(candidate)? {
            Decided::Has => emit(&candidate.resource, Permissionship::Has),
            Decided::HasNot => Ok(true),
            Decided::Check => {
                self.check(&candidate.resource, candidate.via.hint(), expires_at, emit)
                    .await
            }
        }
    }

    /// Checks one candidate; `false` once `emit` wants no more.
    async fn check<F>(
        &self,
        candidate: &ObjectRef,
        hint: Option<EvalHint<'_>>,
        expires_at: &mut Option<Timestamp>,
        emit: &mut F,
    ) -> Result<bool, EvalError>
    where
        F: FnMut(&ObjectRef, Permissionship) -> Result<bool, EvalError> + Send,
    {
        let ctx = self.ctx;
        let request = CheckRequest {
            hint,
            ..CheckRequest::new(candidate, self.permission, self.subject)
        };
        let r = grow_stack(ctx.dispatch().check_request(ctx, &request, self.depth)).await?;
        *expires_at = earliest(*expires_at, r.expires_at);
        match r.permissionship {
            Permissionship::HasNot => Ok(true),
            p => emit(candidate, p),
        }
    }
}

/// How a candidate is decided without checking it.
enum Decided {
    /// It has the permission, unconditionally.
    Has,
    /// It has not.
    HasNot,
    /// Unknown: check it.
    Check,
}

/// What is left of a permission once a part of it is known to hold: it holds iff every
/// `required` relation (or permission) of the resource holds and no `excluded` one does.
#[derive(Debug, Default)]
struct Residual<'s> {
    required: Vec<&'s str>,
    excluded: Vec<&'s str>,
}

/// What is left of `rewrite` once `part` is known to hold, if it comes down to relations of
/// the same resource (`None`: something else is left, such as an arrow or a union without the
/// part).
fn residual<'s>(rewrite: &'s Rewrite, part: Part<'_>) -> Option<Residual<'s>> {
    if implies(rewrite, part) {
        return Some(Residual::default());
    }
    match rewrite {
        Rewrite::Exclusion(base, sub) => {
            let mut left = residual(base, part)?;
            let Rewrite::Computed(excluded) = &**sub else {
                return None;
            };
            left.excluded.push(excluded);
            Some(left)
        }
        Rewrite::Intersection(items) => {
            let mut left = Residual::default();
            for item in items {
                if implies(item, part) {
                    continue;
                }
                match (residual(item, part), item) {
                    (Some(r), _) => {
                        left.required.extend(r.required);
                        left.excluded.extend(r.excluded);
                    }
                    (None, Rewrite::Computed(required)) => left.required.push(required),
                    (None, _) => return None,
                }
            }
            Some(left)
        }
        _ => None,
    }
}

/// Candidates beyond which the resources that might have a residual relation are not listed
/// (their candidates are checked one by one instead): bounds the memory and the time before
/// the first result.
const RESIDUAL_WALK_LIMIT: usize = 20_000;

/// Decides candidates from what the walk proved: a candidate whose proven part makes the
/// permission hold needs no check; one whose permission also excludes (or intersects with)
/// other relations is decided by walks from the subject to those relations, done once for
/// the whole lookup. A resource such a walk does not reach does not have that relation (the
/// walk over-approximates); one it reaches is checked.
struct Shortcuts<'a> {
    ctx: &'a EvalContext,
    resource_type: &'a str,
    subject: &'a SubjectRef,
    /// The permission's rewrite (`None`: it is a relation).
    rewrite: Option<&'a Rewrite>,
    /// The residual of each part met so far.
    residuals: Vec<(Part<'a>, Option<Residual<'a>>)>,
    /// The resources that might have each residual relation (`None`: too many to list).
    possible: Vec<(&'a str, Option<HashSet<ObjectRef>>)>,
    /// The earliest expiration of a relationship those walks read.
    expires_at: Option<Timestamp>,
}

impl<'a> Shortcuts<'a> {
    fn new(candidates: &Candidates<'a>) -> Self {
        let rewrite = candidates
            .ctx
            .schema()
            .relation(candidates.resource_type, candidates.permission)
            .and_then(|d| match d.kind() {
                RelationKind::Permission(rewrite) => Some(rewrite),
                RelationKind::Relation(_) => None,
            });
        Shortcuts {
            ctx: candidates.ctx,
            resource_type: candidates.resource_type,
            subject: candidates.subject,
            rewrite,
            residuals: Vec::new(),
            possible: Vec::new(),
            expires_at: None,
        }
    }

    fn decide(&mut self, candidate: &Candidate<'a>) -> Result<Decided, EvalError> {
        if !candidate.proven {
            return Ok(Decided::Check);
        }
        // Direct: the subject itself, or a relation that holds.
        let Some(part) = candidate.via.part() else {
            return Ok(Decided::Has);
        };
        let Some(rewrite) = self.rewrite else {
            return Ok(Decided::Check);
        };
        let at = match self.residuals.iter().position(|(p, _)| *p == part) {
            Some(at) => at,
            None => {
                self.residuals.push((part, residual(rewrite, part)));
                self.residuals.len() - 1
            }
        };
        let mut check = false;
        for i in 0.. {
            let Some((_, Some(left))) = self.residuals.get(at) else {
                return Ok(Decided::Check);
            };
            let (relation, required) = match left.required.get(i) {
                Some(r) => (*r, true),
                None => match left.excluded.get(i - left.required.len()) {
                    Some(r) => (*r, false),
                    None => break,
                },
            };
            match (self.might_have(relation, &candidate.resource)?, required) {
                (Some(false), true) => return Ok(Decided::HasNot),
                (Some(false), false) => {}
                (Some(true) | None, _) => check = true,
            }
        }
        Ok(if check { Decided::Check } else { Decided::Has })
    }

    /// Whether `resource` might have `relation` for the subject (`None`: unknown).
    fn might_have(
        &mut self,
        relation: &'a str,
        resource: &ObjectRef,
    ) -> Result<Option<bool>, EvalError> {
        let at = match self.possible.iter().position(|(r, _)| *r == relation) {
            Some(at) => at,
            None => {
                let listed = self.list(relation)?;
                self.possible.push((relation, listed));
                self.possible.len() - 1
            }
        };
        Ok(self
            .possible
            .get(at)
            .and_then(|(_, set)| set.as_ref())
            .map(|set| !set.is_empty() && set.contains(resource)))
    }

    /// The resources that might have `relation` for the subject, if there are not too many.
    fn list(&mut self, relation: &'a str) -> Result<Option<HashSet<ObjectRef>>, EvalError> {
        if self
            .ctx
            .schema()
            .relation(self.resource_type, relation)
            .is_none()
        {
            return Ok(None);
        }
        let mut walk = Walk::new(self.ctx, self.resource_type, relation, self.subject);
        let mut found = HashSet::new();
        while let Some(candidate) = walk.next_candidate()? {
            if found.len() >= RESIDUAL_WALK_LIMIT {
                return Ok(None);
            }
            found.insert(candidate.resource);
        }
        self.expires_at = earliest(self.expires_at, walk.expires_at());
        Ok(Some(found))
    }
}

fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}
