//! The `Dispatch` trait (one sub-problem at a time) and the one function that assembles the chain.

use std::sync::Arc;

use async_trait::async_trait;

use crate::model::{ObjectRef, SubjectRef};

use super::context::EvalContext;
use super::error::EvalError;
use super::local::LocalEvaluator;
use super::types::{CheckResult, ExpandMode, ExpandTree, FoundSubject, LookupResult};

/// Answers one sub-problem. Implementations re-dispatch nested sub-problems through
/// `ctx.dispatch()` (the head of the chain), passing the depth they were given.
#[async_trait]
pub trait Dispatch: Send + Sync {
    /// Does `subject` have `relation` on `resource`?
    async fn check(
        &self,
        ctx: &EvalContext,
        resource: &ObjectRef,
        relation: &str,
        subject: &SubjectRef,
        depth: u32,
    ) -> Result<CheckResult, EvalError>;

    /// The userset tree of `resource#relation`.
    async fn expand(
        &self,
        ctx: &EvalContext,
        resource: &ObjectRef,
        relation: &str,
        mode: ExpandMode,
        depth: u32,
    ) -> Result<ExpandTree, EvalError>;

    /// Resources of `resource_type` where `subject` has `relation`, ordered by id.
    async fn lookup_resources(
        &self,
        ctx: &EvalContext,
        resource_type: &str,
        relation: &str,
        subject: &SubjectRef,
        depth: u32,
    ) -> Result<Vec<LookupResult>, EvalError>;

    /// Subjects of `subject_type[#subject_relation]` with `relation` on `resource`, ordered by id.
    async fn lookup_subjects(
        &self,
        ctx: &EvalContext,
        resource: &ObjectRef,
        relation: &str,
        subject_type: &str,
        subject_relation: Option<&str>,
        depth: u32,
    ) -> Result<Vec<FoundSubject>, EvalError>;
}

/// Assembles the dispatch chain. Today: the local evaluator alone; caching and
/// single-flight wrap it here.
pub fn dispatch_chain() -> Arc<dyn Dispatch> {
    Arc::new(LocalEvaluator::new())
}
