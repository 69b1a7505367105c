//! `EvalContext`: what one request evaluates against (snapshot, schema, dispatch chain, depth
//! budget, clock, deadline), passed explicitly to every sub-problem.

use std::sync::Arc;
use std::time::Instant;

use crate::model::{ContextMap, SubjectRef, Timestamp};
use crate::schema::Schema;
use crate::store::Snapshot;

use super::dispatch::Dispatch;
use super::error::EvalError;

/// Default maximum dispatch depth (SpiceDB's `--dispatch-max-depth` default is 50).
pub const DEFAULT_MAX_DEPTH: u32 = 50;

/// Settings of an evaluation.
#[derive(Debug, Clone, Copy)]
pub struct EvalConfig {
    /// How many nested sub-problems one request may dispatch before failing.
    pub max_depth: u32,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

/// What one request evaluates against. Cloning is cheap (shared snapshot, schema and chain):
/// a clone with another caveat context (`with_caveat_context`) evaluates the same snapshot.
#[derive(Clone)]
pub struct EvalContext {
    snapshot: Arc<dyn Snapshot>,
    schema: Arc<Schema>,
    dispatch: Arc<dyn Dispatch>,
    config: EvalConfig,
    now: Timestamp,
    deadline: Option<Instant>,
    caveat_context: ContextMap,
}

impl EvalContext {
    /// A context reading `snapshot` with the schema in force there, evaluated at `now`
    /// (relationships expired at `now` are invisible).
    pub fn new(
        snapshot: Arc<dyn Snapshot>,
        dispatch: Arc<dyn Dispatch>,
        config: EvalConfig,
        now: Timestamp,
    ) -> Result<Self, EvalError> {
        let schema = snapshot.schema().ok_or(EvalError::NoSchema)?;
        Ok(EvalContext {
            snapshot,
            schema,
            dispatch,
            config,
            now,
            deadline: None,
            caveat_context: ContextMap::new(),
        })
    }

    /// The same context with a deadline.
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The same context with the request's caveat context (values bound on a relationship
    /// win over these, as in SpiceDB).
    pub fn with_caveat_context(mut self, context: ContextMap) -> Self {
        self.caveat_context = context;
        self
    }

    /// The same context dispatching through `dispatch` (a request-scoped layer in front of
    /// the chain, such as a bulk request's memo).
    pub(super) fn with_dispatch(mut self, dispatch: Arc<dyn Dispatch>) -> Self {
        self.dispatch = dispatch;
        self
    }

    /// The head of the dispatch chain, shared.
    pub(super) fn dispatch_arc(&self) -> Arc<dyn Dispatch> {
        Arc::clone(&self.dispatch)
    }

    /// The request's caveat context.
    pub fn caveat_context(&self) -> &ContextMap {
        &self.caveat_context
    }

    /// The snapshot read.
    pub fn snapshot(&self) -> &dyn Snapshot {
        self.snapshot.as_ref()
    }

    /// The schema in force.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The head of the dispatch chain.
    pub fn dispatch(&self) -> &dyn Dispatch {
        self.dispatch.as_ref()
    }

    /// The depth budget of a whole request.
    pub fn max_depth(&self) -> u32 {
        self.config.max_depth
    }

    /// The evaluation clock.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Fails once the deadline has passed.
    pub fn check_deadline(&self) -> Result<(), EvalError> {
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(EvalError::DeadlineExceeded),
            _ => Ok(()),
        }
    }

    /// Spends one level of depth; fails at zero.
    pub fn descend(&self, depth: u32) -> Result<u32, EvalError> {
        self.check_deadline()?;
        depth
            .checked_sub(1)
            .filter(|d| *d > 0)
            .ok_or(EvalError::DepthExceeded {
                max_depth: self.config.max_depth,
            })
    }

    /// Fails unless `object_type` is defined.
    pub fn validate_type(&self, object_type: &str) -> Result<(), EvalError> {
        self.schema
            .definition(object_type)
            .map(|_| ())
            .ok_or_else(|| EvalError::UnknownType(object_type.to_string()))
    }

    /// Fails unless `object_type#relation` is a relation or permission.
    pub fn validate_relation(&self, object_type: &str, relation: &str) -> Result<(), EvalError> {
        let def = self
            .schema
            .definition(object_type)
            .ok_or_else(|| EvalError::UnknownType(object_type.to_string()))?;
        def.relation(relation)
            .map(|_| ())
            .ok_or_else(|| EvalError::UnknownRelation {
                object_type: object_type.to_string(),
                relation: relation.to_string(),
            })
    }

    /// Fails unless the subject's type (and relation, if any) exist.
    pub fn validate_subject_type(&self, subject: &SubjectRef) -> Result<(), EvalError> {
        match subject.relation() {
            Some(rel) => self.validate_relation(subject.object_type(), rel),
            None => self.validate_type(subject.object_type()),
        }
    }
}
