//! `authzed.api.v1.WatchService`: streams committed relationship changes from a ZedToken (or
//! from now), filtered by object type or relationship filter; ends when the client leaves or
//! the server shuts down.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::consistency::{decode_zedtoken, encode_zedtoken};
use super::proto::authzed::api::v1 as pb;
use super::{ResponseStream, Shared, convert};
use crate::api::status::ApiError;
use crate::model::{Relationship, RelationshipFilter, Revision};
use crate::store::{Change, ChangeSet};

use pb::watch_service_server::WatchService;

/// The WatchService implementation.
#[derive(Clone)]
pub struct WatchApi {
    shared: Arc<Shared>,
}

impl WatchApi {
    /// Serves Watch over `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        WatchApi { shared }
    }
}

/// Which changes a watcher asked for.
struct Selection {
    object_types: Vec<String>,
    filters: Vec<RelationshipFilter>,
    relationships: bool,
    schema: bool,
    checkpoints: bool,
}

impl Selection {
    fn wants(&self, rel: &Relationship) -> bool {
        let type_ok = self.object_types.is_empty()
            || self
                .object_types
                .iter()
                .any(|t| t == rel.resource().object_type());
        let filter_ok = self.filters.is_empty() || self.filters.iter().any(|f| f.matches(rel));
        type_ok && filter_ok
    }

    /// The response for one change set, if the watcher wants to see it.
    fn response(&self, set: &ChangeSet) -> Option<pb::WatchResponse> {
        use pb::relationship_update::Operation;
        let updates: Vec<pb::RelationshipUpdate> = if self.relationships {
            set.changes
                .iter()
                .filter_map(|c| {
                    let (op, rel) = match c {
                        Change::Touch(r) => (Operation::Touch, r),
                        Change::Delete(r) => (Operation::Delete, r),
                    };
                    self.wants(rel).then(|| pb::RelationshipUpdate {
                        operation: op as i32,
                        relationship: Some(convert::relationship_to_proto(rel)),
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        let schema_updated = self.schema && set.schema_changed;
        if updates.is_empty() && !schema_updated && !self.checkpoints {
            return None;
        }
        Some(pb::WatchResponse {
            is_checkpoint: updates.is_empty() && !schema_updated,
            updates,
            changes_through: Some(encode_zedtoken(set.revision)),
            optional_transaction_metadata: None,
            schema_updated,
            full_revision_metadata: Vec::new(),
        })
    }
}

fn selection(req: &pb::WatchRequest) -> Result<Selection, ApiError> {
    for (i, t) in req.optional_object_types.iter().enumerate() {
        convert::object_type(&format!("optional_object_types[{i}]"), t)?;
    }
    if !req.optional_object_types.is_empty() && !req.optional_relationship_filters.is_empty() {
        return Err(ApiError::field(
            "optional_relationship_filters",
            "",
            "cannot be given together with optional_object_types",
        ));
    }
    let filters = req
        .optional_relationship_filters
        .iter()
        .enumerate()
        .map(|(i, f)| convert::filter(&format!("optional_relationship_filters[{i}]"), Some(f)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut relationships = req.optional_update_kinds.is_empty();
    let (mut schema, mut checkpoints) = (false, false);
    for (i, k) in req.optional_update_kinds.iter().enumerate() {
        match pb::WatchKind::try_from(*k) {
            Ok(pb::WatchKind::IncludeRelationshipUpdates) => relationships = true,
            Ok(pb::WatchKind::IncludeSchemaUpdates) => schema = true,
            Ok(pb::WatchKind::IncludeCheckpoints) => checkpoints = true,
            _ => {
                return Err(ApiError::field(
                    format!("optional_update_kinds[{i}]"),
                    k.to_string(),
                    "not a known WatchKind",
                ));
            }
        }
    }
    Ok(Selection {
        object_types: req.optional_object_types.clone(),
        filters,
        relationships,
        schema,
        checkpoints,
    })
}

#[tonic::async_trait]
impl WatchService for WatchApi {
    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<ResponseStream<pb::WatchResponse>>, Status> {
        /// Watch responses buffered for a slow client before the producer waits.
        const WATCH_BUFFER: usize = 32;
        super::guard::Guard::of(&request)?.require_platform("Watch")?;
        let req = request.into_inner();
        let selection = selection(&req)?;
        let datastore = Arc::clone(&self.shared.datastore);
        let start = match &req.optional_start_cursor {
            Some(token) => {
                let revision = decode_zedtoken(token)?;
                datastore.check_revision(revision).map_err(ApiError::from)?;
                revision
            }
            None => datastore.head_revision().map_err(ApiError::from)?,
        };
        let batch = self.shared.config.watch_batch.max(1);
        let mut heads = datastore.subscribe();
        let mut shutdown = self.shared.shutdown.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(WATCH_BUFFER);
        tokio::spawn(async move {
            let mut after: Revision = start;
            loop {
                if *shutdown.borrow_and_update() {
                    let _ = tx
                        .send(Err(Status::unavailable("the server is shutting down")))
                        .await;
                    return;
                }
                heads.borrow_and_update();
                let sets = match datastore.changes_since(after, batch) {
                    Ok(sets) => sets,
                    Err(e) => {
                        let _ = tx.send(Err(ApiError::from(e).into_status())).await;
                        return;
                    }
                };
                let full = sets.len() >= batch;
                for set in &sets {
                    after = after.max(set.revision);
                    if let Some(response) = selection.response(set) {
                        if tx.send(Ok(response)).await.is_err() {
                            return;
                        }
                    }
                }
                if full {
                    continue;
                }
                tokio::select! {
                    changed = heads.changed() => if changed.is_err() { return },
                    stopped = shutdown.changed() => if stopped.is_err() { return },
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
