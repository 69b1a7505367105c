//! `grow_stack`: polls a future on a stack segment that grows on demand, so deeply nested
//! dispatch (bounded only by the configured maximum depth) can never overflow the thread stack.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::future::BoxFuture;

/// Free stack below which a new segment is allocated before polling deeper.
const RED_ZONE_BYTES: usize = 128 * 1024;
/// Size of each new stack segment.
const SEGMENT_BYTES: usize = 2 * 1024 * 1024;

struct GrowStack<'a, T> {
    inner: BoxFuture<'a, T>,
}

impl<T> Future for GrowStack<'_, T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let inner = &mut self.inner;
        stacker::maybe_grow(RED_ZONE_BYTES, SEGMENT_BYTES, || inner.as_mut().poll(cx))
    }
}

/// Wraps `fut` so that each poll first makes sure enough stack is left.
pub(super) fn grow_stack<'a, T: 'a>(fut: BoxFuture<'a, T>) -> BoxFuture<'a, T> {
    Box::pin(GrowStack { inner: fut })
}
