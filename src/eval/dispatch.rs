//! The `Dispatch` trait (one sub-problem at a time), `Layer` (a link of the chain that forwards
//! what it does not intercept), and the one function that assembles the chain.

use std::sync::Arc;

use async_trait::async_trait;

use crate::model::{ObjectRef, Revision, SubjectRef, Timestamp};

use super::cache::{CacheStats, CachingDispatch};
use super::context::EvalContext;
use super::error::EvalError;
use super::key::CheckKey;
use super::local::LocalEvaluator;
use super::lookup::LookupAnswer;
use super::singleflight::SingleFlight;
use super::types::{CheckResult, EvalHint, ExpandMode, ExpandTree, FoundSubject, LookupResult};

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

    /// `check` of a sub-problem as the layers of the chain pass it down: with the key a layer
    /// above has built (so that the layers below reuse it) and the part of the permission to
    /// try first, if the caller knows one. By default, `check` (neither is needed to answer).
    async fn check_request(
        &self,
        ctx: &EvalContext,
        request: &CheckRequest<'_>,
        depth: u32,
    ) -> Result<CheckResult, EvalError> {
        self.check(
            ctx,
            request.resource,
            request.relation,
            request.subject,
            depth,
        )
        .await
    }

    /// Whether this layer keeps check answers across requests (a shared cache): a request
    /// that repeats sub-problems then needs no memo of its own. By default, no.
    fn caches_checks(&self) -> bool {
        false
    }

    /// The complete answer of a lookup (keyed by `lookup::lookup_key`) this layer keeps, if
    /// it keeps one still valid at `now`. By default, none.
    fn cached_lookup(&self, key: &[u8], now: Timestamp) -> Option<Arc<LookupAnswer>> {
        let _ = (key, now);
        None
    }

    /// Offers the complete answer of a lookup at `revision` to a layer that keeps answers.
    /// By default, declined.
    fn keep_lookup(&self, key: Box<[u8]>, revision: Revision, answer: Arc<LookupAnswer>) {
        let _ = (key, revision, answer);
    }

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

/// A layer of the chain in front of another dispatcher (`inner`): it handles check
/// sub-problems its own way (`check_request`) and passes everything else down unchanged, so a
/// layer writes only what it intercepts. Every `Layer` is a `Dispatch` (`check` is its
/// `check_request` without key or hint).
#[async_trait]
pub trait Layer: Send + Sync {
    /// The dispatcher below this layer.
    fn inner(&self) -> &dyn Dispatch;

    /// This layer's answer to a check sub-problem (it asks `inner()` for what it cannot answer).
    async fn check_request(
        &self,
        ctx: &EvalContext,
        request: &CheckRequest<'_>,
        depth: u32,
    ) -> Result<CheckResult, EvalError>;

    /// As `Dispatch::caches_checks`; by default, whether the layers below keep them.
    fn caches_checks(&self) -> bool {
        self.inner().caches_checks()
    }

    /// As `Dispatch::cached_lookup`; by default, the layers below's.
    fn cached_lookup(&self, key: &[u8], now: Timestamp) -> Option<Arc<LookupAnswer>> {
        self.inner().cached_lookup(key, now)
    }

    /// As `Dispatch::keep_lookup`; by default, offered to the layers below.
    fn keep_lookup(&self, key: Box<[u8]>, revision: Revision, answer: Arc<LookupAnswer>) {
        self.inner().keep_lookup(key, revision, answer);
    }
}

#[async_trait]
impl<L: Layer> Dispatch for L {
    async fn check(
        &self,
        ctx: &EvalContext,
        resource: &ObjectRef,
        relation: &str,
        subject: &SubjectRef,
        depth: u32,
    ) -> Result<CheckResult, EvalError> {
        let request = CheckRequest::new(resource, relation, subject);
        Layer::check_request(self, ctx, &request, depth).await
    }

    async fn check_request(
        &self,
        ctx: &EvalContext,
        request: &CheckRequest<'_>,
        depth: u32,
    ) -> Result<CheckResult, EvalError> {
        Layer::check_request(self, ctx, request, depth).await
    }

    fn caches_checks(&self) -> bool {
        Layer::caches_checks(self)
    }

    fn cached_lookup(&self, key: &[u8], now: Timestamp) -> Option<Arc<LookupAnswer>> {
        Layer::cached_lookup(self, key, now)
    }

    fn keep_lookup(&self, key: Box<[u8]>, revision: Revision, answer: Arc<LookupAnswer>) {
        Layer::keep_lookup(self, key, revision, answer);
    }

    async fn expand(
        &self,
        ctx: &EvalContext,
        resource: &ObjectRef,
        relation: &str,
        mode: ExpandMode,
        depth: u32,
    ) -> Result<ExpandTree, EvalError> {
        self.inner()
            .expand(ctx, resource, relation, mode, depth)
            .await
    }

    async fn lookup_resources(
        &self,
        ctx: &EvalContext,
        resource_type: &str,
        relation: &str,
        subject: &SubjectRef,
        depth: u32,
    ) -> Result<Vec<LookupResult>, EvalError> {
        self.inner()
            .lookup_resources(ctx, resource_type, relation, subject, depth)
            .await
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
        self.inner()
            .lookup_subjects(
                ctx,
                resource,
                relation,
                subject_type,
                subject_relation,
                depth,
            )
            .await
    }
}

/// One check sub-problem on its way down the chain.
#[derive(Debug, Clone, Copy)]
pub struct CheckRequest<'a> {
    /// The resource.
    pub resource: &'a ObjectRef,
    /// The relation or permission.
    pub relation: &'a str,
    /// The subject.
    pub subject: &'a SubjectRef,
    /// Its key, if a layer above has built it.
    pub key: Option<&'a CheckKey>,
    /// The part of the permission to evaluate first (a lookup knows which part led it to the
    /// resource); the answer does not depend on it.
    pub hint: Option<EvalHint<'a>>,
}

impl<'a> CheckRequest<'a> {
    /// `resource#relation@subject`, without key or hint.
    pub fn new(resource: &'a ObjectRef, relation: &'a str, subject: &'a SubjectRef) -> Self {
        CheckRequest {
            resource,
            relation,
            subject,
            key: None,
            hint: None,
        }
    }
}

/// Default budget of the sub-problem cache (SpiceDB sizes its dispatch cache as a share of
/// memory; 256 MiB holds about a million typical entries and suits a small server).
pub const DEFAULT_CACHE_MAX_COST_BYTES: usize = 256 * 1024 * 1024;

/// How the dispatch chain is assembled.
#[derive(Debug, Clone, Copy)]
pub struct DispatchConfig {
    /// Whether check sub-problems are cached across requests.
    pub cache_enabled: bool,
    /// Approximate memory budget of the cache, in bytes.
    pub cache_max_cost_bytes: usize,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            cache_enabled: true,
            cache_max_cost_bytes: DEFAULT_CACHE_MAX_COST_BYTES,
        }
    }
}

/// The assembled chain: its head, and the cache's counters when it has a cache.
#[derive(Clone)]
pub struct DispatchChain {
    /// Where every request and sub-problem is dispatched.
    pub head: Arc<dyn Dispatch>,
    /// Hit / miss / eviction counters of the cache, if enabled.
    pub cache_stats: Option<Arc<CacheStats>>,
}

/// Assembles the chain: cache → single-flight → local evaluator (the one place it is built).
pub fn build_dispatch_chain(config: DispatchConfig) -> DispatchChain {
    let local: Arc<dyn Dispatch> = Arc::new(LocalEvaluator::new());
    let coalesced: Arc<dyn Dispatch> = Arc::new(SingleFlight::new(local));
    if !config.cache_enabled {
        return DispatchChain {
            head: coalesced,
            cache_stats: None,
        };
    }
    let cache = CachingDispatch::new(coalesced, config.cache_max_cost_bytes);
    let stats = cache.stats();
    DispatchChain {
        head: Arc::new(cache),
        cache_stats: Some(stats),
    }
}

/// The chain with default settings (cache on).
pub fn dispatch_chain() -> Arc<dyn Dispatch> {
    build_dispatch_chain(DispatchConfig::default()).head
}
