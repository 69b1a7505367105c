//! `SingleFlight`: identical check sub-problems in flight at the same time are computed once;
//! later callers wait for the first one's answer. Keys include the remaining depth, so a
//! request can never wait on itself through a cycle (depth strictly falls along a chain).

use std::sync::Arc;

use async_trait::async_trait;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use tokio::sync::watch;

use super::context::EvalContext;
use super::dispatch::{CheckRequest, Dispatch, Layer};
use super::error::EvalError;
use super::key::CheckKey;
use super::types::CheckResult;

/// A sub-problem and the depth it is asked with.
type FlightKey = (CheckKey, u32);

type Outcome = Option<Result<CheckResult, EvalError>>;

/// Coalesces identical concurrent checks in front of `inner`.
pub struct SingleFlight {
    inner: Arc<dyn Dispatch>,
    in_flight: DashMap<FlightKey, watch::Receiver<Outcome>>,
}

impl SingleFlight {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Dispatch>) -> Self {
        SingleFlight {
            inner,
            in_flight: DashMap::new(),
        }
    }
}

/// Removes the in-flight entry when the leader finishes or is cancelled.
struct Landing<'a> {
    map: &'a DashMap<FlightKey, watch::Receiver<Outcome>>,
    key: Option<FlightKey>,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.map.remove(&key);
        }
    }
}

#[async_trait]
impl Layer for SingleFlight {
    fn inner(&self) -> &dyn Dispatch {
        self.inner.as_ref()
    }

    async fn check_request(
        &self,
        ctx: &EvalContext,
        request: &CheckRequest<'_>,
        depth: u32,
    ) -> Result<CheckResult, EvalError> {
        let key = request.owned_key(ctx.snapshot().revision());
        let below = request.keyed(&key);
        let sender = match self.in_flight.entry((key.clone(), depth)) {
            Entry::Occupied(existing) => {
                let mut rx = existing.get().clone();
                drop(existing);
                // Wait for the leader; if it was cancelled, compute it ourselves.
                if let Ok(outcome) = rx.wait_for(Option::is_some).await {
                    if let Some(result) = outcome.clone() {
                        let fresh = match &result {
                            Ok(r) => r.expires_at.is_none_or(|e| e > ctx.now()),
                            // The leader's error may be its own (its deadline): retry here.
                            Err(_) => false,
                        };
                        if fresh {
                            return result;
                        }
                    }
                }
                return self.inner.check_request(ctx, &below, depth).await;
            }
            Entry::Vacant(slot) => {
                let (tx, rx) = watch::channel(None);
                slot.insert(rx);
                tx
            }
        };
        let landing = Landing {
            map: &self.in_flight,
            key: Some((key.clone(), depth)),
        };
        let result = self.inner.check_request(ctx, &below, depth).await;
        drop(landing);
        sender.send_replace(Some(result.clone()));
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::eval::{EvalConfig, LocalEvaluator, Permissionship};
    use crate::model::{ObjectRef, SubjectRef, Timestamp};
    use crate::schema;
    use crate::store::Datastore;
    use crate::store::memory::MemoryDatastore;

    /// Counts checks and takes a while to answer each (everything else goes to a local
    /// evaluator).
    struct Slow {
        calls: AtomicUsize,
        local: LocalEvaluator,
    }

    #[async_trait]
    impl Layer for Slow {
        fn inner(&self) -> &dyn Dispatch {
            &self.local
        }

        async fn check_request(
            &self,
            _: &EvalContext,
            _: &CheckRequest<'_>,
            _: u32,
        ) -> Result<CheckResult, EvalError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(CheckResult::new(Permissionship::Has))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_the_same_check_is_computed_once() {
        let ds = MemoryDatastore::new();
        let schema = Arc::new(
            schema::compile("definition user {}\ndefinition doc {\n relation viewer: user\n}\n")
                .unwrap(),
        );
        ds.write(&mut |txn| txn.write_schema(Arc::clone(&schema)))
            .unwrap();
        let slow = Arc::new(Slow {
            calls: AtomicUsize::new(0),
            local: LocalEvaluator::new(),
        });
        let flight = Arc::new(SingleFlight::new(slow.clone()));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let flight = Arc::clone(&flight);
            let snap = ds.snapshot(ds.head_revision().unwrap()).unwrap();
            tasks.push(tokio::spawn(async move {
                let ctx = EvalContext::new(
                    snap,
                    flight.clone(),
                    EvalConfig::default(),
                    Timestamp::now(),
                )
                .unwrap();
                flight
                    .check(
                        &ctx,
                        &ObjectRef::new("doc", "d").unwrap(),
                        "viewer",
                        &SubjectRef::new("user", "u", None).unwrap(),
                        50,
                    )
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(
                t.await.unwrap().unwrap().permissionship,
                Permissionship::Has
            );
        }
        assert_eq!(slow.calls.load(Ordering::SeqCst), 1);
        assert!(flight.in_flight.is_empty());
    }
}
