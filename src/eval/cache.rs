//! `CachingDispatch`: a shared, bounded cache of check sub-problem results, keyed by the
//! revision they were computed at and never served at another (and, in a quarter of its
//! budget, of complete lookup answers, under the same rules). Results are context-free
//! (caveats stay unevaluated until the top-level call), so a conditional result is cached as
//! its caveat formula; an answer is never served at or after the earliest expiration it rests on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dashmap::DashMap;

use crate::model::{Revision, Timestamp};

use super::context::EvalContext;
use super::dispatch::{CheckRequest, Dispatch, Layer};
use super::error::EvalError;
use super::key::CheckKey;
use super::lookup::LookupAnswer;
use super::types::CheckResult;

struct Entry {
    result: CheckResult,
    cost: usize,
    /// The insertion clock when it was last used, for eviction.
    last_used: AtomicU64,
}

/// One part in this many of the cache's budget holds complete lookup answers.
const LOOKUP_SHARE: usize = 4;

/// One kept lookup answer.
struct LookupEntry {
    answer: Arc<LookupAnswer>,
    revision: Revision,
    cost: usize,
    /// The lookup clock when it was last served, for eviction.
    last_used: u64,
}

/// The kept lookup answers (few and large, so one lock is enough).
#[derive(Default)]
struct LookupEntries {
    map: HashMap<Box<[u8]>, LookupEntry>,
    cost: usize,
    clock: u64,
    newest_revision: Revision,
}

impl LookupEntries {
    /// Brings the answers down to `target` bytes: older revisions first, then the least
    /// recently served.
    fn evict(&mut self, target: usize) {
        let newest = self.newest_revision;
        let mut freed = 0usize;
        self.map.retain(|_, e| {
            let keep = e.revision >= newest;
            if !keep {
                freed += e.cost;
            }
            keep
        });
        self.cost = self.cost.saturating_sub(freed);
        if self.cost <= target {
            return;
        }
        let mut by_age: Vec<(u64, usize)> =
            self.map.values().map(|e| (e.last_used, e.cost)).collect();
        by_age.sort_unstable();
        let mut cutoff = 0u64;
        let mut left = self.cost;
        for (used, cost) in by_age {
            if left <= target {
                break;
            }
            left = left.saturating_sub(cost);
            cutoff = used;
        }
        let mut freed = 0usize;
        self.map.retain(|_, e| {
            let keep = e.last_used > cutoff;
            if !keep {
                freed += e.cost;
            }
            keep
        });
        self.cost = self.cost.saturating_sub(freed);
    }
}

/// Shards of the entry map: each has its own lock, and many shards make two threads rarely
/// take the same one (dashmap's default is four per core).
const CACHE_SHARDS: usize = 64;

/// Stripes of a counter: threads counting at once each add to their own cache line.
const STRIPES: usize = 8;

/// One stripe, alone on its cache line (two lines: adjacent-line prefetch pairs them).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe(AtomicU64);

/// A counter that many threads bump without contending for one cache line.
#[derive(Debug, Default)]
struct StripedCounter([Stripe; STRIPES]);

impl StripedCounter {
    fn add(&self, n: u64) {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
        }
        let i = STRIPE.with(|i| *i);
        if let Some(stripe) = self.0.get(i) {
            stripe.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn sum(&self) -> u64 {
        self.0.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
}

/// Counters of the cache, for metrics.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    hits: StripedCounter,
    /// Lookups that had to be computed.
    misses: StripedCounter,
    /// Entries removed to stay within the budget.
    evictions: AtomicU64,
}

impl CacheStats {
    /// Hits, misses, evictions.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.hits.sum(),
            self.misses.sum(),
            self.evictions.load(Ordering::Relaxed),
        )
    }
}

/// Wraps a dispatcher with a bounded cache of check results.
pub struct CachingDispatch {
    inner: Arc<dyn Dispatch>,
    entries: DashMap<CheckKey, Entry>,
    /// Complete lookup answers.
    lookups: Mutex<LookupEntries>,
    /// Budget of the lookup answers.
    max_lookup_cost: usize,
    /// Budget of the check answers.
    max_cost: usize,
    cost: AtomicUsize,
    clock: AtomicU64,
    newest_revision: AtomicU64,
    stats: Arc<CacheStats>,
}

impl CachingDispatch {
    /// A cache of at most about `max_cost` bytes in front of `inner`: a quarter of it for
    /// complete lookup answers, the rest for check answers.
    pub fn new(inner: Arc<dyn Dispatch>, max_cost: usize) -> Self {
        let max_lookup_cost = max_cost / LOOKUP_SHARE;
        CachingDispatch {
            inner,
            entries: DashMap::with_shard_amount(CACHE_SHARDS),
            lookups: Mutex::new(LookupEntries::default()),
            max_lookup_cost,
            max_cost: max_cost - max_lookup_cost,
            cost: AtomicUsize::new(0),
            clock: AtomicU64::new(0),
            newest_revision: AtomicU64::new(0),
            stats: Arc::new(CacheStats::default()),
        }
    }

    /// The shared counters.
    pub fn stats(&self) -> Arc<CacheStats> {
        Arc::clone(&self.stats)
    }

    /// Entries currently held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn lookup(&self, key: &[u8], now: Timestamp) -> Option<CheckResult> {
        let entry = self.entries.get(key)?;
        if entry.result.expires_at.is_some_and(|e| e <= now) {
            drop(entry);
            if let Some((_, old)) = self.entries.remove(key) {
                self.cost.fetch_sub(old.cost, Ordering::Relaxed);
            }
            return None;
        }
        // The clock only moves on insertion, and an entry is only written when it moves: a hit
        // writes no memory another thread reads.
        let tick = self.clock.load(Ordering::Relaxed);
        if entry.last_used.load(Ordering::Relaxed) != tick {
            entry.last_used.store(tick, Ordering::Relaxed);
        }
        Some(entry.result.clone())
    }

    fn insert(&self, key: CheckKey, result: CheckResult) {
        let cost = key.cost();
        if cost > self.max_cost {
            return;
        }
        self.newest_revision
            .fetch_max(key.revision().get(), Ordering::Relaxed);
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let entry = Entry {
            result,
            cost,
            last_used: AtomicU64::new(tick),
        };
        if let Some(old) = self.entries.insert(key, entry) {
            self.cost.fetch_sub(old.cost, Ordering::Relaxed);
        }
        let total = self.cost.fetch_add(cost, Ordering::Relaxed) + cost;
        if total > self.max_cost {
            self.evict();
        }
    }

    /// Brings the cache down to three quarters of its budget: first every entry of an older
    /// revision than the newest seen, then the least recently used.
    fn evict(&self) {
        let target = self.max_cost / 4 * 3;
        let newest = Revision::new(self.newest_revision.load(Ordering::Relaxed));
        let mut removed = 0u64;
        let mut freed = 0usize;
        self.entries.retain(|k, e| {
            if k.revision() < newest {
                removed += 1;
                freed += e.cost;
                false
            } else {
                true
            }
        });
        self.cost.fetch_sub(freed, Ordering::Relaxed);
        if self.cost.load(Ordering::Relaxed) > target {
            // Drop everything used before the median tick of a sample of entries.
            let mut ticks: Vec<u64> = self
                .entries
                .iter()
                .step_by(16)
                .map(|e| e.last_used.load(Ordering::Relaxed))
                .collect();
            ticks.sort_unstable();
            let cutoff = ticks.get(ticks.len() / 2).copied().unwrap_or(u64::MAX);
            let mut freed = 0usize;
            self.entries.retain(|_, e| {
                if e.last_used.load(Ordering::Relaxed) <= cutoff {
                    removed += 1;
                    freed += e.cost;
                    false
                } else {
                    true
                }
            });
            self.cost.fetch_sub(freed, Ordering::Relaxed);
        }
        self.stats.evictions.fetch_add(removed, Ordering::Relaxed);
    }
}

#[async_trait]
impl Layer for CachingDispatch {
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
        if let Some(hit) = request.with_key_bytes(revision, |key| self.lookup(key, ctx.now())) {
            self.stats.hits.add(1);
            return Ok(hit);
        }
        self.stats.misses.add(1);
        let key = request.owned_key(revision);
        let result = self
            .inner
            .check_request(ctx, &request.keyed(&key), depth)
            .await?;
        self.insert(key, result.clone());
        Ok(result)
    }

    fn caches_checks(&self) -> bool {
        true
    }

    fn cached_lookup(&self, key: &[u8], now: Timestamp) -> Option<Arc<LookupAnswer>> {
        let mut lookups = self.lookups.lock().ok()?;
        lookups.clock += 1;
        let tick = lookups.clock;
        let entry = lookups.map.get_mut(key)?;
        if entry.answer.expires_at().is_some_and(|e| e <= now) {
            if let Some(old) = lookups.map.remove(key) {
                lookups.cost = lookups.cost.saturating_sub(old.cost);
            }
            return None;
        }
        entry.last_used = tick;
        Some(Arc::clone(&entry.answer))
    }

    fn keep_lookup(&self, key: Box<[u8]>, revision: Revision, answer: Arc<LookupAnswer>) {
        let cost = answer.cost() + key.len();
        if cost > self.max_lookup_cost / 2 {
            return;
        }
        let Ok(mut lookups) = self.lookups.lock() else {
            return;
        };
        lookups.clock += 1;
        let entry = LookupEntry {
            answer,
            revision,
            cost,
            last_used: lookups.clock,
        };
        lookups.newest_revision = lookups.newest_revision.max(revision);
        if let Some(old) = lookups.map.insert(key, entry) {
            lookups.cost = lookups.cost.saturating_sub(old.cost);
        }
        lookups.cost += cost;
        if lookups.cost > self.max_lookup_cost {
            lookups.evict(self.max_lookup_cost / 4 * 3);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::eval::{
        DispatchConfig, EvalConfig, EvalContext, Permissionship, build_dispatch_chain, check,
    };
    use crate::model::{ObjectRef, Relationship, SubjectRef, Timestamp};
    use crate::schema;
    use crate::store::Datastore;
    use crate::store::memory::MemoryDatastore;

    const SCHEMA: &str = "use expiration\ndefinition user {}\ndefinition team {\n relation member: user | user with expiration | team#member\n}\ndefinition doc {\n relation viewer: team#member\n permission view = viewer\n}\n";

    fn write(ds: &MemoryDatastore, rels: &[&str], schema_too: bool) {
        let schema = Arc::new(schema::compile(SCHEMA).unwrap());
        ds.write(&mut |txn| {
            if schema_too {
                txn.write_schema(Arc::clone(&schema))?;
            }
            for r in rels {
                txn.touch(Relationship::parse(r).unwrap())?;
            }
            Ok(())
        })
        .unwrap();
    }

    fn ctx(
        ds: &MemoryDatastore,
        chain: &crate::eval::DispatchChain,
        now: Timestamp,
    ) -> EvalContext {
        let snap = ds.snapshot(ds.head_revision().unwrap()).unwrap();
        EvalContext::new(snap, Arc::clone(&chain.head), EvalConfig::default(), now).unwrap()
    }

    async fn view(ctx: &EvalContext, user: &str) -> Permissionship {
        check(
            ctx,
            &ObjectRef::new("doc", "d").unwrap(),
            "view",
            &SubjectRef::new("user", user, None).unwrap(),
        )
        .await
        .unwrap()
        .permissionship
    }

    #[tokio::test]
    async fn hits_are_per_revision_and_writes_are_seen_at_new_revisions() {
        let ds = MemoryDatastore::new();
        write(
            &ds,
            &["doc:d#viewer@team:t#member", "team:t#member@user:a"],
            true,
        );
        let chain = build_dispatch_chain(DispatchConfig::default());
        let stats = chain.cache_stats.clone().unwrap();
        let c1 = ctx(&ds, &chain, Timestamp::now());
        assert_eq!(view(&c1, "b").await, Permissionship::HasNot);
        let (_, misses, _) = stats.snapshot();
        assert_eq!(view(&c1, "b").await, Permissionship::HasNot);
        let (hits, misses2, _) = stats.snapshot();
        assert!(hits >= 1 && misses2 == misses, "second check must be a hit");

        write(&ds, &["team:t#member@user:b"], false);
        let c2 = ctx(&ds, &chain, Timestamp::now());
        assert_eq!(
            view(&c2, "b").await,
            Permissionship::Has,
            "new revision sees the write"
        );
        assert_eq!(
            view(&c1, "b").await,
            Permissionship::HasNot,
            "old revision keeps its answer"
        );
    }

    #[tokio::test]
    async fn cached_answer_never_outlives_an_expiration_it_rests_on() {
        let ds = MemoryDatastore::new();
        write(
            &ds,
            &[
                "doc:d#viewer@team:t#member",
                "team:t#member@user:a[expiration:2030-01-01T00:00:00Z]",
            ],
            true,
        );
        let chain = build_dispatch_chain(DispatchConfig::default());
        let before = Timestamp::parse_rfc3339("2029-12-31T23:59:59Z").unwrap();
        let after = Timestamp::parse_rfc3339("2030-01-01T00:00:01Z").unwrap();
        assert_eq!(
            view(&ctx(&ds, &chain, before), "a").await,
            Permissionship::Has
        );
        assert_eq!(
            view(&ctx(&ds, &chain, before), "a").await,
            Permissionship::Has
        );
        assert_eq!(
            view(&ctx(&ds, &chain, after), "a").await,
            Permissionship::HasNot
        );
    }

    #[tokio::test]
    async fn budget_is_enforced_by_eviction() {
        let ds = MemoryDatastore::new();
        write(&ds, &["doc:d#viewer@team:t#member"], true);
        let chain = build_dispatch_chain(DispatchConfig {
            cache_enabled: true,
            cache_max_cost_bytes: 20_000,
        });
        let stats = chain.cache_stats.clone().unwrap();
        let c = ctx(&ds, &chain, Timestamp::now());
        for i in 0..2_000 {
            assert_eq!(view(&c, &format!("u{i}")).await, Permissionship::HasNot);
        }
        let (_, _, evictions) = stats.snapshot();
        assert!(evictions > 0);
    }
}
