//! The `authzed.api.v1` and `arbor.v1` services over tonic: proto ⇄ model conversion (`convert`), ZedTokens and
//! revision choice (`consistency`), result cursors (`cursor`), and one module per service
//! (`permissions`, `schema`, `watch`; Arbor's own `organizations` and `audit`), which share
//! one `Shared` state; `guard` decides what a caller may reach and audits its changes.

mod audit;
pub mod consistency;
pub mod convert;
pub mod cursor;
mod guard;
mod organizations;
mod permissions;
pub mod proto;
mod schema;
mod watch;

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;

pub use audit::{AnchorSource, AuditApi};
pub use organizations::OrganizationApi;
pub use permissions::PermissionsApi;
pub use schema::SchemaApi;
pub use watch::WatchApi;

use crate::api::status::ApiError;
use crate::eval::{Dispatch, EvalConfig, EvalContext};
use crate::model::{ContextMap, Revision, Timestamp};
use crate::store::Datastore;

/// Limits and settings of the API, resolved by the server from its configuration.
#[derive(Debug, Clone, Copy)]
pub struct ApiConfig {
    /// `minimize_latency` reads at a revision at most this old (SpiceDB's quantization).
    pub revision_quantization: Duration,
    /// Depth budget of one evaluation.
    pub max_depth: u32,
    /// Most updates in one WriteRelationships.
    pub max_updates_per_write: usize,
    /// Most preconditions in one WriteRelationships or DeleteRelationships.
    pub max_preconditions: usize,
    /// Largest request caveat context, in encoded bytes.
    pub max_caveat_context_bytes: usize,
    /// Largest caveat (name and context) on one relationship, in encoded bytes.
    pub max_relationship_context_bytes: usize,
    /// Largest `optional_limit` of ReadRelationships.
    pub max_read_limit: u32,
    /// Largest `optional_limit` of DeleteRelationships.
    pub max_delete_limit: u32,
    /// Largest `optional_limit` of LookupResources.
    pub max_lookup_limit: u32,
    /// Largest batch (`optional_limit`) of ExportBulkRelationships, and its default.
    pub max_export_batch: u32,
    /// Most items in one CheckBulkPermissions.
    pub max_bulk_checks: usize,
    /// Longest a request may evaluate, whatever deadline the client sets.
    pub max_request_duration: Duration,
    /// Change sets read per step of a Watch stream.
    pub watch_batch: usize,
}

/// What every service shares: the store, the head of the dispatch chain, the limits, and a
/// signal that the server is shutting down (long streams end on it).
pub struct Shared {
    datastore: Arc<dyn Datastore>,
    dispatch: Arc<dyn Dispatch>,
    config: ApiConfig,
    shutdown: tokio::sync::watch::Receiver<bool>,
    audit_anchor: Option<AnchorSource>,
}

/// A server-streaming response.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

impl Shared {
    /// The state of the services; `shutdown` turns true when the server begins to stop.
    pub fn new(
        datastore: Arc<dyn Datastore>,
        dispatch: Arc<dyn Dispatch>,
        config: ApiConfig,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Arc<Self> {
        Self::with_anchor(datastore, dispatch, config, shutdown, None)
    }

    /// `new`, with the anchor VerifyAudit checks the chain against.
    pub fn with_anchor(
        datastore: Arc<dyn Datastore>,
        dispatch: Arc<dyn Dispatch>,
        config: ApiConfig,
        shutdown: tokio::sync::watch::Receiver<bool>,
        audit_anchor: Option<AnchorSource>,
    ) -> Arc<Self> {
        Arc::new(Shared {
            datastore,
            dispatch,
            config,
            shutdown,
            audit_anchor,
        })
    }

    /// The instant after which evaluation stops: the client's `grpc-timeout`, capped by
    /// `max_request_duration`.
    fn deadline(&self, metadata: &tonic::metadata::MetadataMap) -> Instant {
        let cap = self.config.max_request_duration;
        let timeout = metadata
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map_or(cap, |t| t.min(cap));
        Instant::now() + timeout
    }

    /// An evaluation context at `revision` with the request's caveat context. Without a schema
    /// every type is unknown: `UnknownDefinition(resource_type)`, as SpiceDB answers.
    fn eval_context(
        &self,
        revision: Revision,
        resource_type: &str,
        caveat_context: ContextMap,
        deadline: Instant,
    ) -> Result<EvalContext, ApiError> {
        let snapshot = self.datastore.snapshot(revision)?;
        if snapshot.schema().is_none() {
            return Err(ApiError::UnknownDefinition(resource_type.to_string()));
        }
        #[allow(
            clippy::needless_update,
            reason = "EvalConfig may gain settings; those keep their defaults"
        )]
        let config = EvalConfig {
            max_depth: self.config.max_depth,
            ..EvalConfig::default()
        };
        let ctx = EvalContext::new(
            snapshot,
            Arc::clone(&self.dispatch),
            config,
            Timestamp::now(),
        )
        .map_err(ApiError::from)?;
        Ok(ctx
            .with_caveat_context(caveat_context)
            .with_deadline(deadline))
    }

    /// An evaluation context at the head revision without caveat context, for deciding a
    /// delegated caller's scope before a change (and for audit queries).
    fn head_context(&self, resource_type: &str) -> Result<EvalContext, ApiError> {
        let head = self.datastore.head_revision()?;
        let deadline = Instant::now() + self.config.max_request_duration;
        self.eval_context(head, resource_type, ContextMap::new(), deadline)
    }

    /// A request caveat context, refused above `max_caveat_context_bytes` (as SpiceDB measures:
    /// the encoded size of the `Struct`).
    fn caveat_context(
        &self,
        field: &str,
        context: Option<&prost_types::Struct>,
    ) -> Result<ContextMap, ApiError> {
        if let Some(c) = context {
            let size = prost::Message::encoded_len(c);
            if size > self.config.max_caveat_context_bytes {
                return Err(ApiError::CaveatContextTooLarge {
                    size,
                    max: self.config.max_caveat_context_bytes,
                });
            }
        }
        convert::context(field, context)
    }

    /// Runs a store transaction (synchronous) off the async threads. `body` reports refusals
    /// as `ApiError`; the store sees them as an aborted transaction.
    async fn write<F>(self: &Arc<Self>, body: F) -> Result<Revision, ApiError>
    where
        F: FnMut(&mut dyn crate::store::Transaction) -> Result<(), ApiError> + Send + 'static,
    {
        let shared = Arc::clone(self);
        let mut body = body;
        tokio::task::spawn_blocking(move || {
            let mut refusal: Option<ApiError> = None;
            let result = shared.datastore.write(&mut |txn| {
                refusal = None;
                body(txn).map_err(|e| {
                    refusal = Some(e);
                    crate::store::StoreError::Refused("the request was refused".to_string())
                })
            });
            match result {
                Ok(revision) => Ok(revision),
                Err(e) => Err(refusal.take().unwrap_or_else(|| ApiError::from(e))),
            }
        })
        .await
        .map_err(|e| ApiError::Internal(format!("write task failed: {e}")))?
    }
}

/// Parses gRPC's `grpc-timeout` header: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at_checked(value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Runs `produce` on a blocking thread and streams what it sends; it should stop when a send
/// fails (the client went away).
fn stream_blocking<T, F>(produce: F) -> ResponseStream<T>
where
    T: Send + 'static,
    F: FnOnce(&tokio::sync::mpsc::Sender<Result<T, tonic::Status>>) + Send + 'static,
{
    /// Responses buffered between the producer and the client.
    const STREAM_BUFFER: usize = 64;
    let (tx, rx) = tokio::sync::mpsc::channel(STREAM_BUFFER);
    tokio::task::spawn_blocking(move || produce(&tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        for bad in ["", "S", "5", "123456789S", "5x", "-1S", "é"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }
}
