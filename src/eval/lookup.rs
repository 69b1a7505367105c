//! Streamed `lookup_resources`: results handed to the caller one by one as they are confirmed,
//! in the walk's order (the first arrive long before the walk ends) or by id, each resumable
//! after a given result.

use crate::model::{ObjectRef, SubjectRef};

use super::context::EvalContext;
use super::dispatch::CheckRequest;
use super::error::EvalError;
use super::reverse::{self, Walk};
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
    let confirm = Confirm {
        ctx,
        permission,
        subject,
        depth,
    };
    match order {
        LookupOrder::Walk { after } => {
            let mut walk = Walk::new(ctx, resource_type, permission, subject);
            let mut skip_through = after;
            while let Some((candidate, via)) = walk.next_candidate()? {
                if let Some(last) = skip_through {
                    if candidate.object_id() == last {
                        skip_through = None;
                    }
                    continue;
                }
                if let Some(found) = confirm.check(&candidate, via.hint()).await? {
                    if !emit(found) {
                        break;
                    }
                }
            }
        }
        LookupOrder::ById { after } => {
            let candidates = reverse::candidates(ctx, resource_type, permission, subject)?;
            for candidate in candidates
                .iter()
                .filter(|c| after.is_none_or(|a| c.object_id() > a))
            {
                if let Some(found) = confirm.check(candidate, None).await? {
                    if !emit(found) {
                        break;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Confirms candidates with a check through the dispatch chain.
struct Confirm<'a> {
    ctx: &'a EvalContext,
    permission: &'a str,
    subject: &'a SubjectRef,
    depth: u32,
}

impl Confirm<'_> {
    /// The candidate as a result, or `None` if the subject lacks the permission on it. The
    /// part of the permission `hint` names is evaluated first.
    async fn check(
        &self,
        candidate: &ObjectRef,
        hint: Option<EvalHint<'_>>,
    ) -> Result<Option<LookupResult>, EvalError> {
        let ctx = self.ctx;
        let request = CheckRequest {
            hint,
            ..CheckRequest::new(candidate, self.permission, self.subject)
        };
        let r = grow_stack(ctx.dispatch().check_request(ctx, &request, self.depth)).await?;
        Ok(match super::resolve_permissionship(ctx, r.permissionship)? {
            Permissionship::HasNot => None,
            permissionship => Some(LookupResult {
                resource_id: candidate.object_id().to_string(),
                permissionship,
            }),
        })
    }
}
