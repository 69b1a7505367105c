//! Streamed `lookup_resources`: results handed to the caller one by one as they are confirmed,
//! in the walk's order (the first arrive long before the walk ends) or by id, each resumable
//! after a given result; complete answers offered to the chain's cache and replayed from it.

use crate::model::{ObjectRef, Revision, SubjectRef, Timestamp};

use super::context::EvalContext;
use super::dispatch::CheckRequest;
use super::error::EvalError;
use super::reverse::Walk;
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

impl Candidates<'_> {
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
        let mut expires_at = None;
        let mut complete = true;
        match order {
            LookupOrder::Walk { after } => {
                let mut skip_through = after;
                while let Some((candidate, via)) = walk.next_candidate()? {
                    if let Some(last) = skip_through {
                        if candidate.object_id() == last {
                            skip_through = None;
                        }
                        continue;
                    }
                    if !self
                        .check(&candidate, via.hint(), &mut expires_at, &mut emit)
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
                all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                for (candidate, via) in all
                    .iter()
                    .filter(|(c, _)| after.is_none_or(|a| c.object_id() > a))
                {
                    if !self
                        .check(candidate, via.hint(), &mut expires_at, &mut emit)
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
            expires_at,
        })
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

fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}
