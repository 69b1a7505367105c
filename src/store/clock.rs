//! Revision bookkeeping shared by every datastore: the commit clock (timestamps that never go
//! backwards), optimized (quantized) revisions, the garbage-collection horizon, and the
//! registry of live snapshots that garbage collection must not pull the floor from under.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::model::{Revision, Timestamp};

/// How long old revisions stay readable unless configured otherwise: SpiceDB's default
/// `--datastore-gc-window`, long enough for a day of ZedTokens to stay usable.
pub const DEFAULT_GC_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// The newest revision committed at or before the start of the current quantization window
/// (the head if none is older, or if `quantization` is zero). `times` is ordered by revision
/// and by time.
pub(crate) fn quantized(
    times: &[(Revision, Timestamp)],
    head: Revision,
    now: Timestamp,
    quantization: Duration,
) -> Revision {
    let q = i64::try_from(quantization.as_micros()).unwrap_or(i64::MAX);
    if q <= 0 {
        return head;
    }
    let window_start = now.as_micros() - now.as_micros().rem_euclid(q);
    let idx = times.partition_point(|(_, t)| t.as_micros() <= window_start);
    match idx.checked_sub(1).and_then(|i| times.get(i)) {
        Some((rev, _)) => *rev,
        None => head,
    }
}

/// The commit times of the revisions still inside the GC window, and the horizon below
/// which revisions can no longer be read.
///
/// The horizon at time `now` is the newest revision committed at or before `now - window`:
/// it was the head at the start of the window, so it stays readable; everything older is
/// expired. The head itself never expires, however quiet the store.
#[derive(Debug, Clone, Default)]
pub(crate) struct RevisionClock {
    /// Commit times, oldest first; times never decrease.
    times: Vec<(Revision, Timestamp)>,
    /// The horizon the last garbage collection used (0 before any).
    collected: Revision,
}

impl RevisionClock {
    /// A clock restored from stored commit times (oldest first) and the last GC horizon.
    pub(crate) fn restore(times: Vec<(Revision, Timestamp)>, collected: Revision) -> Self {
        RevisionClock { times, collected }
    }

    /// The commit time for a revision committed now: the wall clock, unless it stepped back
    /// behind the previous commit, in which case the previous commit's time.
    pub(crate) fn stamp(&self, now: Timestamp) -> Timestamp {
        match self.times.last() {
            Some((_, last)) => now.max(*last),
            None => now,
        }
    }

    /// Records the commit time of a new head revision.
    pub(crate) fn record(&mut self, revision: Revision, timestamp: Timestamp) {
        self.times.push((revision, timestamp));
    }

    /// How many recorded revisions are older than `revision`.
    pub(crate) fn count_before(&self, revision: Revision) -> u64 {
        self.times.partition_point(|(r, _)| *r < revision) as u64
    }

    /// See [`quantized`].
    pub(crate) fn optimized(
        &self,
        head: Revision,
        now: Timestamp,
        quantization: Duration,
    ) -> Revision {
        quantized(&self.times, head, now, quantization)
    }

    /// The oldest readable revision at `now` for a GC window of `window`.
    pub(crate) fn horizon(&self, now: Timestamp, window: Duration) -> Revision {
        let window = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
        let cutoff = now.as_micros().saturating_sub(window);
        let idx = self.times.partition_point(|(_, t)| t.as_micros() <= cutoff);
        let by_time = idx
            .checked_sub(1)
            .and_then(|i| self.times.get(i))
            .map_or(Revision::ZERO, |(r, _)| *r);
        by_time.max(self.collected)
    }

    /// The horizon the last garbage collection used.
    pub(crate) fn collected(&self) -> Revision {
        self.collected
    }

    /// Fails with `RevisionExpired` when `revision` is older than the horizon at `now`.
    pub(crate) fn check_not_expired(
        &self,
        revision: Revision,
        now: Timestamp,
        window: Duration,
    ) -> Result<(), super::StoreError> {
        let horizon = self.horizon(now, window);
        if revision < horizon {
            return Err(super::StoreError::RevisionExpired(revision));
        }
        Ok(())
    }

    /// Marks everything older than `horizon` as collected and forgets its commit times
    /// (the horizon's own time is kept).
    pub(crate) fn collect(&mut self, horizon: Revision) {
        if horizon <= self.collected {
            return;
        }
        self.collected = horizon;
        let keep_from = self.times.partition_point(|(r, _)| *r < horizon);
        self.times.drain(..keep_from);
    }
}

/// Revisions that live snapshots read at, counted. Garbage collection never collects a
/// version that one of them can still see.
#[derive(Debug, Clone, Default)]
pub(crate) struct SnapshotLeases {
    live: Arc<Mutex<BTreeMap<Revision, usize>>>,
}

impl SnapshotLeases {
    /// Registers a snapshot at `revision` until the returned lease is dropped.
    pub(crate) fn acquire(&self, revision: Revision) -> SnapshotLease {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        *live.entry(revision).or_insert(0) += 1;
        SnapshotLease {
            live: Arc::clone(&self.live),
            revision,
        }
    }

    /// The oldest revision a live snapshot reads at.
    pub(crate) fn oldest(&self) -> Option<Revision> {
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.keys().next().copied()
    }
}

/// Keeps one snapshot's revision registered while it is alive.
#[derive(Debug)]
pub(crate) struct SnapshotLease {
    live: Arc<Mutex<BTreeMap<Revision, usize>>>,
    revision: Revision,
}

impl Drop for SnapshotLease {
    fn drop(&mut self) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = live.get_mut(&self.revision) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                live.remove(&self.revision);
            }
        }
    }
}

/// What one garbage-collection pass removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GcStats {
    /// The oldest revision still readable after the pass.
    pub horizon: Revision,
    /// Relationship versions removed (replaced or deleted before the horizon, deletion
    /// markers included, and expired relationships).
    pub versions_removed: u64,
    /// Of those, relationships removed because their expiration had passed.
    pub expired_removed: u64,
    /// Revisions whose changelog entries were removed.
    pub changes_removed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(micros: i64) -> Timestamp {
        Timestamp::from_micros(micros)
    }

    #[test]
    fn stamps_never_go_backwards() {
        let mut clock = RevisionClock::default();
        let a = clock.stamp(t(100));
        clock.record(Revision::new(1), a);
        let b = clock.stamp(t(50));
        assert_eq!(b, t(100));
    }

    #[test]
    fn horizon_is_the_head_at_the_start_of_the_window() {
        let mut clock = RevisionClock::default();
        for (r, at) in [(1, 10), (2, 20), (3, 30)] {
            clock.record(Revision::new(r), t(at));
        }
        let w = Duration::from_micros(5);
        assert_eq!(clock.horizon(t(12), w), Revision::ZERO);
        assert_eq!(clock.horizon(t(26), w), Revision::new(2));
        assert_eq!(clock.horizon(t(1000), w), Revision::new(3));
        clock.collect(Revision::new(2));
        assert_eq!(clock.horizon(t(0), w), Revision::new(2));
        assert_eq!(clock.count_before(Revision::new(3)), 1);
    }

    #[test]
    fn leases_count_per_revision() {
        let leases = SnapshotLeases::default();
        let a = leases.acquire(Revision::new(3));
        let b = leases.acquire(Revision::new(3));
        let c = leases.acquire(Revision::new(5));
        assert_eq!(leases.oldest(), Some(Revision::new(3)));
        drop(a);
        assert_eq!(leases.oldest(), Some(Revision::new(3)));
        drop(b);
        assert_eq!(leases.oldest(), Some(Revision::new(5)));
        drop(c);
        assert_eq!(leases.oldest(), None);
    }
}
