//! Request metrics and the per-request tower layer: a request id and a `tracing` span for every
//! gRPC call, a bound on concurrent requests (RESOURCE_EXHAUSTED past it), counts and latency
//! per method and status code, rendered in Prometheus text format on the metrics port.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame};
use tracing::Instrument as _;

/// Latency bucket bounds in seconds: from a cached check (well under a millisecond) to a
/// large lookup.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Counts {
    /// (method, code) → requests.
    requests: BTreeMap<(String, String), u64>,
    /// method → latency.
    latency: BTreeMap<String, Histogram>,
    rejected_overload: u64,
}

/// Counters of the gRPC requests served.
#[derive(Debug, Default)]
pub struct Metrics {
    counts: Mutex<Counts>,
}

/// Values read when metrics are scraped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// The datastore's head revision, if it could be read.
    pub head_revision: Option<u64>,
    /// Dispatch cache hits, misses and evictions, if the cache is on.
    pub cache: Option<(u64, u64, u64)>,
    /// Requests in flight.
    pub in_flight: usize,
}

impl Metrics {
    /// Records one finished request.
    pub fn record(&self, method: &str, code: &str, seconds: f64) {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        *c.requests
            .entry((method.to_string(), code.to_string()))
            .or_insert(0) += 1;
        let h = c.latency.entry(method.to_string()).or_default();
        if h.buckets.is_empty() {
            h.buckets = vec![0; LATENCY_BUCKETS.len()];
        }
        for (bound, n) in LATENCY_BUCKETS.iter().zip(h.buckets.iter_mut()) {
            if seconds <= *bound {
                *n += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    fn record_overload(&self) {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        c.rejected_overload += 1;
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self, gauges: Gauges) -> String {
        let c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP arbor_grpc_requests_total gRPC requests served, by method and status code."
        );
        let _ = writeln!(out, "# TYPE arbor_grpc_requests_total counter");
        for ((method, code), n) in &c.requests {
            let _ = writeln!(
                out,
                "arbor_grpc_requests_total{{method=\"{method}\",code=\"{code}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP arbor_grpc_errors_total gRPC requests that ended with a status other than OK."
        );
        let _ = writeln!(out, "# TYPE arbor_grpc_errors_total counter");
        let mut errors: BTreeMap<&str, u64> = BTreeMap::new();
        for ((method, code), n) in &c.requests {
            if code != "OK" {
                *errors.entry(method).or_insert(0) += n;
            }
        }
        for (method, n) in &errors {
            let _ = writeln!(out, "arbor_grpc_errors_total{{method=\"{method}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP arbor_grpc_request_duration_seconds Time from request to the end of the response."
        );
        let _ = writeln!(out, "# TYPE arbor_grpc_request_duration_seconds histogram");
        for (method, h) in &c.latency {
            for (bound, n) in LATENCY_BUCKETS.iter().zip(&h.buckets) {
                let _ = writeln!(
                    out,
                    "arbor_grpc_request_duration_seconds_bucket{{method=\"{method}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "arbor_grpc_request_duration_seconds_bucket{{method=\"{method}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "arbor_grpc_request_duration_seconds_sum{{method=\"{method}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "arbor_grpc_request_duration_seconds_count{{method=\"{method}\"}} {}",
                h.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP arbor_grpc_requests_rejected_total Requests refused because --max-concurrent-requests were in flight."
        );
        let _ = writeln!(out, "# TYPE arbor_grpc_requests_rejected_total counter");
        let _ = writeln!(
            out,
            "arbor_grpc_requests_rejected_total {}",
            c.rejected_overload
        );
        let _ = writeln!(
            out,
            "# HELP arbor_grpc_requests_in_flight gRPC requests being served."
        );
        let _ = writeln!(out, "# TYPE arbor_grpc_requests_in_flight gauge");
        let _ = writeln!(out, "arbor_grpc_requests_in_flight {}", gauges.in_flight);
        if let Some(rss) = resident_memory_bytes() {
            let _ = writeln!(
                out,
                "# HELP process_resident_memory_bytes Resident memory of the server process."
            );
            let _ = writeln!(out, "# TYPE process_resident_memory_bytes gauge");
            let _ = writeln!(out, "process_resident_memory_bytes {rss}");
        }
        if let Some(head) = gauges.head_revision {
            let _ = writeln!(
                out,
                "# HELP arbor_datastore_head_revision The newest committed revision."
            );
            let _ = writeln!(out, "# TYPE arbor_datastore_head_revision gauge");
            let _ = writeln!(out, "arbor_datastore_head_revision {head}");
        }
        if let Some((hits, misses, evictions)) = gauges.cache {
            let _ = writeln!(
                out,
                "# HELP arbor_dispatch_cache_hits_total Check sub-problems answered from the cache."
            );
            let _ = writeln!(out, "# TYPE arbor_dispatch_cache_hits_total counter");
            let _ = writeln!(out, "arbor_dispatch_cache_hits_total {hits}");
            let _ = writeln!(
                out,
                "# HELP arbor_dispatch_cache_misses_total Check sub-problems computed."
            );
            let _ = writeln!(out, "# TYPE arbor_dispatch_cache_misses_total counter");
            let _ = writeln!(out, "arbor_dispatch_cache_misses_total {misses}");
            let _ = writeln!(
                out,
                "# HELP arbor_dispatch_cache_evictions_total Cache entries evicted to stay within budget."
            );
            let _ = writeln!(out, "# TYPE arbor_dispatch_cache_evictions_total counter");
            let _ = writeln!(out, "arbor_dispatch_cache_evictions_total {evictions}");
            let total = hits.saturating_add(misses);
            #[allow(clippy::cast_precision_loss, reason = "a ratio of counters")]
            let ratio = if total == 0 {
                0.0
            } else {
                hits as f64 / total as f64
            };
            let _ = writeln!(
                out,
                "# HELP arbor_dispatch_cache_hit_ratio Share of check sub-problems answered from the cache."
            );
            let _ = writeln!(out, "# TYPE arbor_dispatch_cache_hit_ratio gauge");
            let _ = writeln!(out, "arbor_dispatch_cache_hit_ratio {ratio}");
        }
        out
    }
}

/// The name of a gRPC status code as Prometheus labels show it.
fn code_name(code: &str) -> String {
    let name = match code.trim() {
        "0" => "OK",
        "1" => "CANCELLED",
        "2" => "UNKNOWN",
        "3" => "INVALID_ARGUMENT",
        "4" => "DEADLINE_EXCEEDED",
        "5" => "NOT_FOUND",
        "6" => "ALREADY_EXISTS",
        "7" => "PERMISSION_DENIED",
        "8" => "RESOURCE_EXHAUSTED",
        "9" => "FAILED_PRECONDITION",
        "10" => "ABORTED",
        "11" => "OUT_OF_RANGE",
        "12" => "UNIMPLEMENTED",
        "13" => "INTERNAL",
        "14" => "UNAVAILABLE",
        "15" => "DATA_LOSS",
        "16" => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    };
    name.to_string()
}

/// The tower layer that observes every gRPC request.
#[derive(Clone)]
pub struct RequestLayer {
    metrics: Arc<Metrics>,
    slots: Arc<tokio::sync::Semaphore>,
}

impl RequestLayer {
    /// Records into `metrics`; at most `max_in_flight` requests are served at once.
    pub fn new(metrics: Arc<Metrics>, slots: Arc<tokio::sync::Semaphore>) -> Self {
        RequestLayer { metrics, slots }
    }
}

impl<S> tower::Layer<S> for RequestLayer {
    type Service = RequestService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestService {
            inner,
            metrics: Arc::clone(&self.metrics),
            slots: Arc::clone(&self.slots),
        }
    }
}

/// The service of `RequestLayer`.
#[derive(Clone)]
pub struct RequestService<S> {
    inner: S,
    metrics: Arc<Metrics>,
    slots: Arc<tokio::sync::Semaphore>,
}

/// Longest request id accepted from a client's `x-request-id`.
const MAX_REQUEST_ID_LEN: usize = 128;

fn request_id(headers: &http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_REQUEST_ID_LEN
                && v.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string)
}

/// Finishes the record of one request when its response ends (or is dropped).
struct Finish {
    metrics: Arc<Metrics>,
    method: String,
    start: Instant,
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
    span: tracing::Span,
}

impl Finish {
    fn done(self, code: &str) {
        let seconds = self.start.elapsed().as_secs_f64();
        let name = code_name(code);
        self.span.in_scope(|| {
            tracing::info!(code = %name, seconds, "request finished");
        });
        self.metrics.record(&self.method, &name, seconds);
    }
}

/// A response body that records the request when it sees the status trailer.
pub struct ObservedBody<B> {
    inner: B,
    finish: Option<Finish>,
}

impl<B> Drop for ObservedBody<B> {
    fn drop(&mut self) {
        if let Some(f) = self.finish.take() {
            f.done("1"); // the client went away before the status was sent
        }
    }
}

impl<B> Body for ObservedBody<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &mut polled {
            if let Some(trailers) = frame.trailers_mut() {
                oversize_as_resource_exhausted(trailers);
            }
        }
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame
                    .trailers_ref()
                    .and_then(|t| t.get("grpc-status"))
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                {
                    if let Some(f) = self.finish.take() {
                        f.done(&code);
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(f) = self.finish.take() {
                    f.done("0");
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(f) = self.finish.take() {
                    f.done("2");
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// tonic refuses an oversized request message with OUT_OF_RANGE; gRPC (and so SpiceDB) says
/// RESOURCE_EXHAUSTED for a message above the server's limit. Rewrites the status in place.
fn oversize_as_resource_exhausted(headers: &mut http::HeaderMap) {
    let oversized = headers.get("grpc-status").is_some_and(|v| v == "11")
        && headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| {
                // `grpc-message` is percent-encoded on the wire.
                m.replace("%20", " ")
                    .contains("decoded message length too large")
            });
    if oversized {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
}

/// A response that carries only a status (for requests refused before they reach a service).
fn status_response<B: Default>(status: &tonic::Status) -> http::Response<B> {
    let mut response = http::Response::new(B::default());
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    let _ = status.add_header(headers);
    response
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for RequestService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body + Default + Unpin + Send + 'static,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let method = request.uri().path().to_string();
        let id = request_id(request.headers());
        let span = tracing::info_span!("grpc", request_id = %id, method = %method);
        let metrics = Arc::clone(&self.metrics);
        let start = Instant::now();
        let header_id = http::HeaderValue::from_str(&id).ok();
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            metrics.record_overload();
            let status = tonic::Status::resource_exhausted(
                "too many requests in flight (--max-concurrent-requests); retry later",
            );
            span.in_scope(|| tracing::warn!("request refused: too many in flight"));
            let response = status_response::<ResBody>(&status);
            let finish = Finish {
                metrics,
                method,
                start,
                _slot: None,
                span,
            };
            finish.done("8");
            return Box::pin(async move {
                Ok(response.map(|inner| ObservedBody {
                    inner,
                    finish: None,
                }))
            });
        };
        // The inner service was polled ready; take it and leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let fut_span = span.clone();
        Box::pin(
            async move {
                let mut response = inner.call(request).await?;
                oversize_as_resource_exhausted(response.headers_mut());
                let mut finish = Some(Finish {
                    metrics,
                    method,
                    start,
                    _slot: Some(slot),
                    span,
                });
                let early = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                if let Some(code) = early {
                    if let Some(f) = finish.take() {
                        f.done(&code);
                    }
                }
                let mut response = response.map(|inner| ObservedBody { inner, finish });
                if let Some(v) = header_id {
                    response.headers_mut().insert("x-request-id", v);
                }
                Ok(response)
            }
            .instrument(fut_span),
        )
    }
}

/// Bytes of this process's resident set (Linux); `None` elsewhere.
fn resident_memory_bytes() -> Option<u64> {
    resident_memory_bytes_of("self")
}

/// Bytes of the resident set of process `pid` (a number, or `self`), from `/proc/PID/statm`
/// (Linux); `None` elsewhere or if there is no such process.
pub fn resident_memory_bytes_of(pid: &str) -> Option<u64> {
    /// Page size assumed for `statm` (4 KiB on the platforms Arbor is built for).
    const PAGE_BYTES: u64 = 4096;
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * PAGE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lists_counts_latency_and_gauges() {
        let m = Metrics::default();
        m.record(
            "/authzed.api.v1.PermissionsService/CheckPermission",
            "OK",
            0.002,
        );
        m.record(
            "/authzed.api.v1.PermissionsService/CheckPermission",
            "INVALID_ARGUMENT",
            0.001,
        );
        let text = m.render(Gauges {
            head_revision: Some(7),
            cache: Some((3, 1, 0)),
            in_flight: 0,
        });
        assert!(text.contains("arbor_grpc_requests_total{method=\"/authzed.api.v1.PermissionsService/CheckPermission\",code=\"OK\"} 1"), "{text}");
        assert!(text.contains("arbor_grpc_errors_total{method=\"/authzed.api.v1.PermissionsService/CheckPermission\"} 1"));
        assert!(text.contains("arbor_grpc_request_duration_seconds_count{method=\"/authzed.api.v1.PermissionsService/CheckPermission\"} 2"));
        assert!(text.contains("arbor_datastore_head_revision 7"));
        assert!(text.contains("arbor_dispatch_cache_hit_ratio 0.75"));
        assert_eq!(code_name("9"), "FAILED_PRECONDITION");
    }
}
