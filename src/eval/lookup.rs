//! Streamed `lookup_resources`: results handed to the caller one by one as they are confirmed,
//! in the walk's order (the first arrive long before the walk ends) or by id, each resumable
//! after a given result.

use crate::model::{ObjectRef, SubjectRef};

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

/// Streams the resources of `resource_type` on which `subject` has `permission` (caveats
/// evaluated with the context's caveat context) to `emit`, in `order`, until the walk ends or
/// `emit` returns `false`. An error ends the stream.
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
    let found = Candidates {
        ctx,
        resource_type,
        permission,
        subject,
        depth,
    };
    found
        .confirm(order, |resource, permissionship| {
            Ok(match super::resolve_permissionship(ctx, permissionship)? {
                Permissionship::HasNot => true,
                permissionship => emit(LookupResult {
                    resource_id: resource.object_id().to_string(),
                    permissionship,
                }),
            })
        })
        .await
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
    ) -> Result<(), EvalError>
    where
        F: FnMut(&ObjectRef, Permissionship) -> Result<bool, EvalError> + Send,
    {
        let ctx = self.ctx;
        let mut walk = Walk::new(ctx, self.resource_type, self.permission, self.subject);
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
                    if !self.check(&candidate, via.hint(), &mut emit).await? {
                        break;
                    }
                }
            }
            LookupOrder::ById { after } => {
                let mut all = Vec::new();
                while let Some(found) = walk.next_candidate()? {
                    all.push(found);
                }
                drop(walk);
                all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                for (candidate, via) in all
                    .iter()
                    .filter(|(c, _)| after.is_none_or(|a| c.object_id() > a))
                {
                    if !self.check(candidate, via.hint(), &mut emit).await? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks one candidate; `false` once `emit` wants no more.
    async fn check<F>(
        &self,
        candidate: &ObjectRef,
        hint: Option<EvalHint<'_>>,
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
        match r.permissionship {
            Permissionship::HasNot => Ok(true),
            p => emit(candidate, p),
        }
    }
}
