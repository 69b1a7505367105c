//! `authzed.api.v1.PermissionsService`: checks, expand, lookups, relationship reads and writes,
//! bulk import and export — each request validated, read at the revision its consistency picks,
//! and answered with the ZedToken of that revision.

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt as _;
use tonic::{Request, Response, Status, Streaming};

use super::consistency::{encode_zedtoken, pick_revision};
use super::convert::{self, relationship_key_text};
use super::cursor;
use super::guard::{Guard, ScopeFilter, append_relationship_audit};
use super::proto::authzed::api::v1 as pb;
use super::{ResponseStream, Shared, stream_blocking};
use crate::api::status::ApiError;
use crate::eval::{self, CaveatExpr, EvalContext, ExpandMode, Permissionship};
use crate::identity::Source;
use crate::identity::scope::UpdateKind;
use crate::model::{ObjectRef, Relationship, RelationshipFilter, Revision, SubjectRef, Timestamp};
use crate::schema::{AllowedKind, Schema};
use crate::store::{Precondition, StoreError, Transaction, check_preconditions};

use pb::check_permission_response::Permissionship as WirePermissionship;
use pb::permissions_service_server::PermissionsService;

/// The PermissionsService implementation.
#[derive(Clone)]
pub struct PermissionsApi {
    shared: Arc<Shared>,
}

impl PermissionsApi {
    /// Serves permissions over `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        PermissionsApi { shared }
    }
}

/// One relationship update, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UpdateOp {
    Create,
    Touch,
    Delete,
}

/// Has / conditional (with the context it is missing) / has not, on the wire.
fn wire_permissionship(
    ctx: &EvalContext,
    p: &Permissionship,
) -> (WirePermissionship, Option<pb::PartialCaveatInfo>) {
    match p {
        Permissionship::Has => (WirePermissionship::HasPermission, None),
        Permissionship::HasNot => (WirePermissionship::NoPermission, None),
        Permissionship::Conditional(expr) => (
            WirePermissionship::ConditionalPermission,
            Some(partial_info(ctx, expr)),
        ),
    }
}

fn partial_info(ctx: &EvalContext, expr: &CaveatExpr) -> pb::PartialCaveatInfo {
    pb::PartialCaveatInfo {
        missing_required_context: eval::missing_context(ctx, expr),
    }
}

fn lookup_permissionship(
    ctx: &EvalContext,
    caveat: Option<&CaveatExpr>,
) -> (pb::LookupPermissionship, Option<pb::PartialCaveatInfo>) {
    match caveat {
        None => (pb::LookupPermissionship::HasPermission, None),
        Some(expr) => (
            pb::LookupPermissionship::ConditionalPermission,
            Some(partial_info(ctx, expr)),
        ),
    }
}

/// Fails unless `rel` may be written (CREATE/TOUCH) or deleted under `schema`, with the status
/// SpiceDB's relationship validation gives. A DELETE without a caveat only needs its subject
/// type allowed in some form (with or without caveat or expiration), as in SpiceDB.
fn validate_update(
    schema: Option<&Schema>,
    op: UpdateOp,
    rel: &Relationship,
) -> Result<(), ApiError> {
    let resource_type = rel.resource().object_type();
    let Some(schema) = schema else {
        return Err(ApiError::UnknownDefinition(resource_type.to_string()));
    };
    let text = rel.to_string();
    if op != UpdateOp::Delete || rel.caveat().is_some() {
        return schema
            .validate_relationship(rel)
            .map_err(|e| ApiError::from_relationship_schema(e, &text));
    }
    convert::check_type_relation(Some(schema), resource_type, Some(rel.relation()))?;
    let subject = rel.subject();
    convert::check_type_relation(Some(schema), subject.object_type(), subject.relation())?;
    let Some(relation) = schema.relation(resource_type, rel.relation()) else {
        return Err(ApiError::UnknownRelation {
            definition: resource_type.to_string(),
            relation: rel.relation().to_string(),
        });
    };
    if relation.is_permission() {
        return Err(ApiError::CannotUpdatePermission {
            definition: resource_type.to_string(),
            permission: rel.relation().to_string(),
        });
    }
    let allowed = relation.allowed().iter().any(|a| {
        a.subject_type == subject.object_type()
            && match &a.kind {
                AllowedKind::Wildcard => subject.is_wildcard(),
                AllowedKind::Object => !subject.is_wildcard() && subject.relation().is_none(),
                AllowedKind::Relation(r) => subject.relation() == Some(r.as_str()),
            }
    });
    if allowed {
        return Ok(());
    }
    // Let the full check word the refusal.
    schema
        .validate_relationship(rel)
        .map_err(|e| ApiError::from_relationship_schema(e, &text))
}

/// Checks the preconditions inside the transaction, naming the first that fails as SpiceDB does.
fn check_all_preconditions(
    txn: &dyn Transaction,
    preconditions: &[(Precondition, pb::Precondition)],
) -> Result<(), ApiError> {
    for (p, wire) in preconditions {
        match check_preconditions(txn, std::slice::from_ref(p)) {
            Ok(()) => {}
            Err(StoreError::PreconditionFailed(_)) => {
                return Err(convert::precondition_failure(wire));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn convert_preconditions(
    wire: &[pb::Precondition],
) -> Result<Vec<(Precondition, pb::Precondition)>, ApiError> {
    wire.iter()
        .enumerate()
        .map(|(i, p)| {
            convert::precondition(&format!("optional_preconditions[{i}]"), p)
                .map(|c| (c, p.clone()))
        })
        .collect()
}

/// A delegated caller's preconditions must each name one resource inside its scope, so they
/// cannot probe relationships outside it.
async fn require_preconditions_in_scope(
    guard: &Guard,
    ctx: &EvalContext,
    preconditions: &[(Precondition, pb::Precondition)],
) -> Result<(), ApiError> {
    for (p, _) in preconditions {
        let resource = match (&p.filter.resource_type, &p.filter.resource_id) {
            (Some(t), Some(id)) => ObjectRef::new(t, id).ok(),
            _ => None,
        };
        match resource {
            Some(r) => guard.require_resource(ctx, &r).await?,
            None => {
                return Err(ApiError::PermissionDenied(format!(
                    "`{}` is scoped to an organization: each precondition must name one resource (type and id) in its scope",
                    guard.caller().log_id()
                )));
            }
        }
    }
    Ok(())
}

/// The relationship a CREATE found, from the store's refusal.
fn already_exists(e: StoreError) -> ApiError {
    match e {
        StoreError::AlreadyExists(text) => match Relationship::parse(&text) {
            Ok(rel) => convert::already_exists(&rel),
            Err(_) => ApiError::from(StoreError::AlreadyExists(text)),
        },
        other => other.into(),
    }
}

impl PermissionsApi {
    /// The revision and resume position of a paged call: from its cursor if it has one (every
    /// page reads where the first did), else from its consistency.
    fn paged_revision(
        &self,
        consistency: Option<&pb::Consistency>,
        cursor: Option<&pb::Cursor>,
        hash: [u8; 8],
    ) -> Result<(Revision, Option<String>), ApiError> {
        match cursor {
            Some(c) => {
                let position = cursor::decode(c, hash)?;
                self.shared.datastore.check_revision(position.revision)?;
                Ok((position.revision, Some(position.after)))
            }
            None => Ok((
                pick_revision(
                    self.shared.datastore.as_ref(),
                    consistency,
                    self.shared.config.revision_quantization,
                )?,
                None,
            )),
        }
    }

    fn revision(&self, consistency: Option<&pb::Consistency>) -> Result<Revision, ApiError> {
        pick_revision(
            self.shared.datastore.as_ref(),
            consistency,
            self.shared.config.revision_quantization,
        )
    }

    fn check_limit(provided: u32, max: u32) -> Result<(), ApiError> {
        if provided > max {
            return Err(ApiError::LimitTooLarge {
                provided: u64::from(provided),
                max: u64::from(max),
            });
        }
        Ok(())
    }

    /// Reads the matches of `filter` after `after` and streams them in pages of `batch`
    /// (each a response built by `respond` with the cursor after its last relationship);
    /// stops after `limit` relationships when a limit is given.
    #[expect(
        clippy::too_many_arguments,
        reason = "the page settings of two RPCs; a struct would only rename them"
    )]
    fn stream_relationships<T: Send + 'static>(
        &self,
        revision: Revision,
        filter: RelationshipFilter,
        after: Option<Relationship>,
        hash: [u8; 8],
        batch: usize,
        limit: Option<usize>,
        mut scope: Option<ScopeFilter>,
        respond: impl Fn(Vec<Relationship>, pb::Cursor) -> T + Send + 'static,
    ) -> Result<ResponseStream<T>, ApiError> {
        let snapshot = self.shared.datastore.snapshot(revision)?;
        convert::check_filter_schema(snapshot.schema().as_deref(), &filter)?;
        let now = Timestamp::now();
        let batch = batch.max(1);
        Ok(stream_blocking(move |tx| {
            let mut sent = 0usize;
            let mut page: Vec<Relationship> = Vec::with_capacity(batch);
            let flush = |page: &mut Vec<Relationship>| -> bool {
                let Some(last) = page.last() else { return true };
                let c = cursor::encode(revision, hash, &relationship_key_text(last));
                tx.blocking_send(Ok(respond(std::mem::take(page), c)))
                    .is_ok()
            };
            for item in snapshot.read(&filter, after.as_ref()) {
                if limit.is_some_and(|l| sent >= l) {
                    break;
                }
                match item {
                    Ok(rel) if rel.is_expired_at(now) => {}
                    Ok(rel)
                        if match scope.as_mut().map(|f| f.keep(&rel)) {
                            None | Some(Ok(true)) => false,
                            Some(Ok(false)) => true,
                            Some(Err(e)) => {
                                let _ = tx.blocking_send(Err(e.into_status()));
                                return;
                            }
                        } => {}
                    Ok(rel) => {
                        page.push(rel);
                        sent += 1;
                        if page.len() >= batch && !flush(&mut page) {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(ApiError::from(e).into_status()));
                        return;
                    }
                }
            }
            flush(&mut page);
        }))
    }

    /// The filter that hides what a delegated caller may not see in a read at `revision`.
    fn scope_filter(
        &self,
        guard: &Guard,
        revision: Revision,
        resource_type: Option<&str>,
    ) -> Result<Option<ScopeFilter>, ApiError> {
        if guard.scope().is_none() {
            return Ok(None);
        }
        let deadline = std::time::Instant::now() + self.shared.config.max_request_duration;
        let ctx = self.shared.eval_context(
            revision,
            resource_type.unwrap_or_default(),
            crate::model::ContextMap::new(),
            deadline,
        )?;
        ScopeFilter::new(guard, ctx)
    }

    async fn check_one(
        &self,
        ctx: &EvalContext,
        resource: &ObjectRef,
        permission: &str,
        subject: &SubjectRef,
    ) -> Result<
        (
            WirePermissionship,
            Option<pb::PartialCaveatInfo>,
            Option<Timestamp>,
        ),
        ApiError,
    > {
        let result = eval::check(ctx, resource, permission, subject).await?;
        let (p, info) = wire_permissionship(ctx, &result.permissionship);
        Ok((p, info, result.expires_at))
    }
}

/// The parts of a check request, validated.
struct CheckItem {
    resource: ObjectRef,
    permission: String,
    subject: SubjectRef,
    context: crate::model::ContextMap,
}

#[tonic::async_trait]
impl PermissionsService for PermissionsApi {
    async fn read_relationships(
        &self,
        request: Request<pb::ReadRelationshipsRequest>,
    ) -> Result<Response<ResponseStream<pb::ReadRelationshipsResponse>>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        Self::check_limit(req.optional_limit, self.shared.config.max_read_limit)?;
        let filter = convert::filter("relationship_filter", req.relationship_filter.as_ref())?;
        let hash = cursor::parameter_hash(
            "ReadRelationships",
            &pb::ReadRelationshipsRequest {
                relationship_filter: req.relationship_filter.clone(),
                ..Default::default()
            },
        );
        let (revision, after) =
            self.paged_revision(req.consistency.as_ref(), req.optional_cursor.as_ref(), hash)?;
        let after = resume_after(after)?;
        let limit = (req.optional_limit > 0).then_some(req.optional_limit as usize);
        let token = encode_zedtoken(revision);
        let scope = self.scope_filter(&guard, revision, filter.resource_type.as_deref())?;
        let stream = self.stream_relationships(
            revision,
            filter,
            after,
            hash,
            1,
            limit,
            scope,
            move |mut rels, c| pb::ReadRelationshipsResponse {
                read_at: Some(token.clone()),
                relationship: rels.pop().as_ref().map(convert::relationship_to_proto),
                after_result_cursor: Some(c),
            },
        )?;
        Ok(Response::new(stream))
    }

    async fn write_relationships(
        &self,
        request: Request<pb::WriteRelationshipsRequest>,
    ) -> Result<Response<pb::WriteRelationshipsResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        let config = &self.shared.config;
        if req.updates.len() > config.max_updates_per_write {
            return Err(ApiError::TooManyUpdates {
                count: req.updates.len(),
                max: config.max_updates_per_write,
            }
            .into());
        }
        if req.optional_preconditions.len() > config.max_preconditions {
            return Err(ApiError::TooManyPreconditions {
                count: req.optional_preconditions.len(),
                max: config.max_preconditions,
            }
            .into());
        }
        let mut seen = HashSet::new();
        let mut updates = Vec::with_capacity(req.updates.len());
        for (i, u) in req.updates.iter().enumerate() {
            let field = format!("updates[{i}]");
            let rel =
                convert::relationship(&format!("{field}.relationship"), u.relationship.as_ref())?;
            let op = match pb::relationship_update::Operation::try_from(u.operation) {
                Ok(pb::relationship_update::Operation::Create) => UpdateOp::Create,
                Ok(pb::relationship_update::Operation::Touch) => UpdateOp::Touch,
                Ok(pb::relationship_update::Operation::Delete) => UpdateOp::Delete,
                _ => {
                    return Err(ApiError::field(
                        format!("{field}.operation"),
                        u.operation.to_string(),
                        "the operation must be OPERATION_CREATE, OPERATION_TOUCH or OPERATION_DELETE",
                    )
                    .into());
                }
            };
            let key = relationship_key_text(&rel);
            if !seen.insert(key.clone()) {
                return Err(ApiError::DuplicateUpdate {
                    definition: rel.resource().object_type().to_string(),
                    relationship: key,
                }
                .into());
            }
            let caveat_size = u
                .relationship
                .as_ref()
                .and_then(|r| r.optional_caveat.as_ref())
                .map_or(0, prost::Message::encoded_len);
            if caveat_size > config.max_relationship_context_bytes {
                return Err(ApiError::RelationshipContextTooLarge {
                    relationship: key,
                    size: caveat_size,
                    max: config.max_relationship_context_bytes,
                }
                .into());
            }
            updates.push((op, rel));
        }
        let preconditions = convert_preconditions(&req.optional_preconditions)?;
        if guard.scope().is_some() {
            let first_type = updates
                .first()
                .map(|(_, r)| r.resource().object_type().to_string())
                .unwrap_or_default();
            let ctx = self.shared.head_context(&first_type)?;
            let asked: Vec<(UpdateKind, Relationship)> = updates
                .iter()
                .map(|(op, rel)| {
                    let kind = if *op == UpdateOp::Delete {
                        UpdateKind::Delete
                    } else {
                        UpdateKind::Write
                    };
                    (kind, rel.clone())
                })
                .collect();
            guard.require_updates(&ctx, &asked).await?;
            require_preconditions_in_scope(&guard, &ctx, &preconditions).await?;
        }
        let actor = guard.actor(Source::Api, None);
        let revision = self
            .shared
            .write(move |txn| {
                let schema = txn.schema();
                for (p, _) in &preconditions {
                    convert::check_filter_schema(schema.as_deref(), &p.filter)?;
                }
                for (op, rel) in &updates {
                    validate_update(schema.as_deref(), *op, rel)?;
                }
                check_all_preconditions(txn, &preconditions)?;
                for (op, rel) in &updates {
                    match op {
                        UpdateOp::Create => txn.create(rel.clone()).map_err(|e| match e {
                            StoreError::AlreadyExists(_) => convert::already_exists(rel),
                            other => other.into(),
                        })?,
                        UpdateOp::Touch => txn.touch(rel.clone())?,
                        UpdateOp::Delete => txn.delete(rel)?,
                    }
                }
                let changes: Vec<(bool, Relationship)> = updates
                    .iter()
                    .map(|(op, rel)| (*op != UpdateOp::Delete, rel.clone()))
                    .collect();
                append_relationship_audit(
                    txn,
                    &actor,
                    "relationships.write",
                    &changes,
                    Vec::new(),
                )?;
                Ok(())
            })
            .await?;
        Ok(Response::new(pb::WriteRelationshipsResponse {
            written_at: Some(encode_zedtoken(revision)),
        }))
    }

    async fn delete_relationships(
        &self,
        request: Request<pb::DeleteRelationshipsRequest>,
    ) -> Result<Response<pb::DeleteRelationshipsResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        let config = &self.shared.config;
        if req.optional_preconditions.len() > config.max_preconditions {
            return Err(ApiError::TooManyPreconditions {
                count: req.optional_preconditions.len(),
                max: config.max_preconditions,
            }
            .into());
        }
        Self::check_limit(req.optional_limit, config.max_delete_limit)?;
        let filter = convert::filter("relationship_filter", req.relationship_filter.as_ref())?;
        let wire_filter = req.relationship_filter.clone().unwrap_or_default();
        let preconditions = convert_preconditions(&req.optional_preconditions)?;
        let limit = req.optional_limit;
        let allow_partial = req.optional_allow_partial_deletions;
        if guard.scope().is_some() {
            // Every relationship the filter matches now must be inside the caller's scope.
            let ctx = self
                .shared
                .head_context(filter.resource_type.as_deref().unwrap_or_default())?;
            require_preconditions_in_scope(&guard, &ctx, &preconditions).await?;
            let mut checked: HashSet<ObjectRef> = HashSet::new();
            for rel in ctx.snapshot().read(&filter, None) {
                let rel = rel.map_err(ApiError::from)?;
                if checked.insert(rel.resource().clone()) {
                    guard.require_resource(&ctx, rel.resource()).await?;
                }
            }
        }
        let actor = guard.actor(Source::Api, None);
        let outcome = Arc::new(std::sync::Mutex::new(crate::store::DeleteOutcome::default()));
        let seen = Arc::clone(&outcome);
        let revision = self
            .shared
            .write(move |txn| {
                let schema = txn.schema();
                convert::check_filter_schema(schema.as_deref(), &filter)?;
                for (p, _) in &preconditions {
                    convert::check_filter_schema(schema.as_deref(), &p.filter)?;
                }
                check_all_preconditions(txn, &preconditions)?;
                if limit > 0 && !allow_partial && txn.read(&filter)?.len() > limit as usize {
                    return Err(ApiError::TooManyForTransactionalDelete {
                        limit,
                        metadata: convert::delete_filter_metadata(limit, &wire_filter),
                    });
                }
                let mut doomed = txn.read(&filter)?;
                if limit > 0 {
                    doomed.truncate(limit as usize);
                }
                let done =
                    txn.delete_by_filter(&filter, (limit > 0).then_some(u64::from(limit)))?;
                let changes: Vec<(bool, Relationship)> =
                    doomed.into_iter().map(|rel| (false, rel)).collect();
                append_relationship_audit(
                    txn,
                    &actor,
                    "relationships.delete",
                    &changes,
                    vec![("deleted".to_string(), done.deleted.to_string())],
                )?;
                if let Ok(mut slot) = seen.lock() {
                    *slot = done;
                }
                Ok(())
            })
            .await?;
        let done = outcome.lock().map(|o| *o).unwrap_or_default();
        let progress = if done.partial {
            pb::delete_relationships_response::DeletionProgress::Partial
        } else {
            pb::delete_relationships_response::DeletionProgress::Complete
        };
        Ok(Response::new(pb::DeleteRelationshipsResponse {
            deleted_at: Some(encode_zedtoken(revision)),
            deletion_progress: progress as i32,
            relationships_deleted_count: done.deleted,
        }))
    }

    async fn check_permission(
        &self,
        request: Request<pb::CheckPermissionRequest>,
    ) -> Result<Response<pb::CheckPermissionResponse>, Status> {
        let deadline = self.shared.deadline(request.metadata());
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        let resource = convert::object_ref("resource", req.resource.as_ref())?;
        convert::relation_name("permission", &req.permission)?;
        let subject = convert::subject_ref("subject", req.subject.as_ref())?;
        let context = self
            .shared
            .caveat_context("context", req.context.as_ref())?;
        let revision = self.revision(req.consistency.as_ref())?;
        let ctx = self
            .shared
            .eval_context(revision, resource.object_type(), context, deadline)?;
        guard.require_resource(&ctx, &resource).await?;
        let (permissionship, info, expires) = self
            .check_one(&ctx, &resource, &req.permission, &subject)
            .await?;
        Ok(Response::new(pb::CheckPermissionResponse {
            checked_at: Some(encode_zedtoken(revision)),
            permissionship: permissionship as i32,
            partial_caveat_info: info,
            debug_trace: None,
            optional_expires_at: expires.map(convert::timestamp_to_proto),
        }))
    }

    async fn check_bulk_permissions(
        &self,
        request: Request<pb::CheckBulkPermissionsRequest>,
    ) -> Result<Response<pb::CheckBulkPermissionsResponse>, Status> {
        let deadline = self.shared.deadline(request.metadata());
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        let config = &self.shared.config;
        if req.items.len() > config.max_bulk_checks {
            return Err(ApiError::TooManyChecks {
                count: req.items.len(),
                max: config.max_bulk_checks,
            }
            .into());
        }
        let items = req
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| bulk_item(&self.shared, i, item))
            .collect::<Result<Vec<_>, _>>()?;
        let revision = self.revision(req.consistency.as_ref())?;
        let mut results = check_bulk_items(&self.shared, revision, &items, deadline).await;
        if guard.scope().is_some() {
            // Items on resources outside the caller's scope answer PERMISSION_DENIED, each on
            // its own, as any other per-item error.
            let first_type = items
                .first()
                .map(|i| i.resource.object_type().to_string())
                .unwrap_or_default();
            let ctx = self.shared.eval_context(
                revision,
                &first_type,
                crate::model::ContextMap::new(),
                deadline,
            )?;
            for (item, result) in items.iter().zip(results.iter_mut()) {
                if let Err(e) = guard.require_resource(&ctx, &item.resource).await {
                    *result = Err(e);
                }
            }
        }
        let pairs = req
            .items
            .into_iter()
            .zip(results)
            .map(|(request, result)| pb::CheckBulkPermissionsPair {
                request: Some(request),
                response: Some(match result {
                    Ok(item) => pb::check_bulk_permissions_pair::Response::Item(item),
                    Err(e) => {
                        tracing::debug!(error = %e, "bulk check item failed");
                        pb::check_bulk_permissions_pair::Response::Error(e.to_rpc_status())
                    }
                }),
            })
            .collect();
        Ok(Response::new(pb::CheckBulkPermissionsResponse {
            checked_at: Some(encode_zedtoken(revision)),
            pairs,
        }))
    }

    async fn expand_permission_tree(
        &self,
        request: Request<pb::ExpandPermissionTreeRequest>,
    ) -> Result<Response<pb::ExpandPermissionTreeResponse>, Status> {
        let deadline = self.shared.deadline(request.metadata());
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        let resource = convert::object_ref("resource", req.resource.as_ref())?;
        convert::relation_name("permission", &req.permission)?;
        let revision = self.revision(req.consistency.as_ref())?;
        let ctx = self.shared.eval_context(
            revision,
            resource.object_type(),
            crate::model::ContextMap::new(),
            deadline,
        )?;
        guard.require_resource(&ctx, &resource).await?;
        let tree = eval::expand(&ctx, &resource, &req.permission, ExpandMode::Shallow)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ExpandPermissionTreeResponse {
            expanded_at: Some(encode_zedtoken(revision)),
            tree_root: Some(convert::expand_tree_to_proto(&tree)),
        }))
    }

    async fn lookup_resources(
        &self,
        request: Request<pb::LookupResourcesRequest>,
    ) -> Result<Response<ResponseStream<pb::LookupResourcesResponse>>, Status> {
        let deadline = self.shared.deadline(request.metadata());
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        Self::check_limit(req.optional_limit, self.shared.config.max_lookup_limit)?;
        convert::object_type("resource_object_type", &req.resource_object_type)?;
        convert::relation_name("permission", &req.permission)?;
        let subject = convert::subject_ref("subject", req.subject.as_ref())?;
        let context = self
            .shared
            .caveat_context("context", req.context.as_ref())?;
        let hash = cursor::parameter_hash(
            "LookupResources",
            &pb::LookupResourcesRequest {
                consistency: None,
                optional_limit: 0,
                optional_cursor: None,
                ..req.clone()
            },
        );
        let (revision, resume) = lookup_position(&self.shared, &req, hash)?;
        let ctx =
            self.shared
                .eval_context(revision, &req.resource_object_type, context, deadline)?;
        // Refusals are the call's status, not an error inside its stream.
        ctx.validate_relation(&req.resource_object_type, &req.permission)
            .and_then(|()| ctx.validate_subject_type(&subject))
            .map_err(ApiError::from)?;
        let limit = if req.optional_limit == 0 {
            usize::MAX
        } else {
            req.optional_limit as usize
        };
        let scope = ScopeFilter::new(&guard, ctx.clone())?;
        let lookup = StreamedLookup {
            ctx,
            scope,
            resource_type: req.resource_object_type,
            permission: req.permission,
            subject,
            resume,
            limit,
            revision,
            hash,
        };
        Ok(Response::new(lookup.stream()))
    }

    async fn lookup_subjects(
        &self,
        request: Request<pb::LookupSubjectsRequest>,
    ) -> Result<Response<ResponseStream<pb::LookupSubjectsResponse>>, Status> {
        let deadline = self.shared.deadline(request.metadata());
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        if req.optional_concrete_limit != 0 {
            return Err(
                ApiError::Unimplemented("concrete limit is not yet supported".to_string()).into(),
            );
        }
        let resource = convert::object_ref("resource", req.resource.as_ref())?;
        convert::relation_name("permission", &req.permission)?;
        convert::object_type("subject_object_type", &req.subject_object_type)?;
        let subject_relation = (!req.optional_subject_relation.is_empty())
            .then_some(req.optional_subject_relation.as_str());
        if let Some(r) = subject_relation {
            convert::relation_name("optional_subject_relation", r)?;
        }
        let context = self
            .shared
            .caveat_context("context", req.context.as_ref())?;
        let revision = self.revision(req.consistency.as_ref())?;
        let ctx = self
            .shared
            .eval_context(revision, resource.object_type(), context, deadline)?;
        guard.require_resource(&ctx, &resource).await?;
        let found = eval::lookup_subjects(
            &ctx,
            &resource,
            &req.permission,
            &req.subject_object_type,
            subject_relation,
        )
        .await
        .map_err(ApiError::from)?;
        let exclude_wildcards = req.wildcard_option
            == pb::lookup_subjects_request::WildcardOption::ExcludeWildcards as i32;
        let token = encode_zedtoken(revision);
        let resolved = |id: &str, caveat: Option<&CaveatExpr>| {
            let (p, info) = lookup_permissionship(&ctx, caveat);
            pb::ResolvedSubject {
                subject_object_id: id.to_string(),
                permissionship: p as i32,
                partial_caveat_info: info,
            }
        };
        let responses: Vec<Result<pb::LookupSubjectsResponse, Status>> = found
            .iter()
            .filter(|s| !(exclude_wildcards && s.subject_id == crate::model::WILDCARD))
            .map(|s| {
                let subject = resolved(&s.subject_id, s.caveat.as_ref());
                Ok(pb::LookupSubjectsResponse {
                    looked_up_at: Some(token.clone()),
                    subject_object_id: s.subject_id.clone(),
                    excluded_subject_ids: s.excluded.iter().map(|e| e.subject_id.clone()).collect(),
                    permissionship: subject.permissionship,
                    partial_caveat_info: subject.partial_caveat_info.clone(),
                    subject: Some(subject),
                    excluded_subjects: s
                        .excluded
                        .iter()
                        .map(|e| resolved(&e.subject_id, e.caveat.as_ref()))
                        .collect(),
                    after_result_cursor: None,
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(responses))))
    }

    async fn import_bulk_relationships(
        &self,
        request: Request<Streaming<pb::ImportBulkRelationshipsRequest>>,
    ) -> Result<Response<pb::ImportBulkRelationshipsResponse>, Status> {
        /// Batches of relationships buffered between the network and the store.
        const IMPORT_BUFFER: usize = 8;
        let guard = Guard::of(&request)?;
        guard.require_platform("ImportBulkRelationships")?;
        let actor = guard.actor(Source::Api, None);
        let mut incoming = request.into_inner();
        let head = self
            .shared
            .datastore
            .head_revision()
            .map_err(ApiError::from)?;
        let schema = self
            .shared
            .datastore
            .snapshot(head)
            .map_err(ApiError::from)?
            .schema();
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<Result<Vec<Relationship>, ApiError>>(IMPORT_BUFFER);
        let datastore = Arc::clone(&self.shared.datastore);
        let importer = tokio::task::spawn_blocking(move || {
            let mut failure: Option<ApiError> = None;
            let mut pending = std::collections::VecDeque::new();
            let result = {
                let mut source = std::iter::from_fn(|| {
                    loop {
                        if failure.is_some() {
                            return None;
                        }
                        if let Some(rel) = pending.pop_front() {
                            return Some(Ok(rel));
                        }
                        match rx.blocking_recv()? {
                            Ok(batch) => pending.extend(batch),
                            Err(e) => {
                                failure = Some(e);
                                return Some(Err(StoreError::Refused(
                                    "the import was refused".to_string(),
                                )));
                            }
                        }
                    }
                });
                datastore.bulk_import_with(&mut source, &mut |summary, records| {
                    let draft = crate::identity::audit::AuditDraft {
                        actor: Some(actor.clone()),
                        action: "relationships.import".to_string(),
                        details: vec![
                            ("loaded".to_string(), summary.loaded.to_string()),
                            (
                                "digest_sha256".to_string(),
                                crate::identity::audit::hex(&summary.digest),
                            ),
                        ],
                        ..Default::default()
                    };
                    crate::identity::audit::append(
                        records,
                        summary.revision,
                        Timestamp::now(),
                        draft,
                    )
                    .map(|_| ())
                    .map_err(|e| StoreError::Internal(format!("audit entry of the import: {e}")))
                })
            };
            match (result, failure) {
                (_, Some(e)) => Err(e),
                (Ok(outcome), None) => Ok(outcome),
                (Err(e), None) => Err(already_exists(e)),
            }
        });
        let mut index = 0usize;
        let mut feed_error = None;
        while let Some(message) = incoming.next().await {
            let batch = match message {
                Ok(m) => m,
                Err(status) => {
                    feed_error = Some(ApiError::Cancelled(format!(
                        "the import stream failed: {}",
                        status.message()
                    )));
                    break;
                }
            };
            let mut rels = Vec::with_capacity(batch.relationships.len());
            let mut refused = None;
            for r in &batch.relationships {
                let field = format!("relationships[{index}]");
                index += 1;
                let checked = convert::relationship(&field, Some(r)).and_then(|rel| {
                    validate_update(schema.as_deref(), UpdateOp::Create, &rel).map(|()| rel)
                });
                match checked {
                    Ok(rel) => rels.push(rel),
                    Err(e) => {
                        refused = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = refused {
                feed_error = Some(e);
                break;
            }
            if tx.send(Ok(rels)).await.is_err() {
                break; // the importer stopped (it failed); its error is reported below
            }
        }
        if let Some(e) = feed_error {
            let _ = tx.send(Err(e)).await;
        }
        drop(tx);
        let outcome = importer
            .await
            .map_err(|e| ApiError::Internal(format!("import task failed: {e}")))??;
        Ok(Response::new(pb::ImportBulkRelationshipsResponse {
            num_loaded: outcome.loaded,
        }))
    }

    async fn export_bulk_relationships(
        &self,
        request: Request<pb::ExportBulkRelationshipsRequest>,
    ) -> Result<Response<ResponseStream<pb::ExportBulkRelationshipsResponse>>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        let max = self.shared.config.max_export_batch;
        Self::check_limit(req.optional_limit, max)?;
        let batch = if req.optional_limit == 0 {
            max
        } else {
            req.optional_limit
        };
        let filter = match &req.optional_relationship_filter {
            Some(f) => convert::filter("optional_relationship_filter", Some(f))?,
            None => RelationshipFilter::default(),
        };
        let hash = cursor::parameter_hash(
            "ExportBulkRelationships",
            &pb::ExportBulkRelationshipsRequest {
                optional_relationship_filter: req.optional_relationship_filter.clone(),
                ..Default::default()
            },
        );
        let (revision, after) =
            self.paged_revision(req.consistency.as_ref(), req.optional_cursor.as_ref(), hash)?;
        let after = resume_after(after)?;
        let scope = self.scope_filter(&guard, revision, filter.resource_type.as_deref())?;
        let stream = self.stream_relationships(
            revision,
            filter,
            after,
            hash,
            batch as usize,
            None,
            scope,
            |rels, c| pb::ExportBulkRelationshipsResponse {
                after_result_cursor: Some(c),
                relationships: rels.iter().map(convert::relationship_to_proto).collect(),
            },
        )?;
        Ok(Response::new(stream))
    }
}

/// The relationship a paged read resumes after, decoded from its cursor.
fn resume_after(after: Option<String>) -> Result<Option<Relationship>, ApiError> {
    after
        .map(|text| {
            Relationship::parse(&text).map_err(|_| {
                ApiError::InvalidCursor("could not parse resume relationship".to_string())
            })
        })
        .transpose()
}

/// Field names of a bulk check item's parts, for errors.
struct ItemFields<'a> {
    resource: &'a str,
    permission: &'a str,
    subject: &'a str,
    context: &'a str,
}

/// Item `i` of a CheckBulkPermissions, validated. Field names are only spelled out (with the
/// item's index) when the item is refused, so a valid item costs no formatting.
fn bulk_item(
    shared: &Shared,
    i: usize,
    item: &pb::CheckBulkPermissionsRequestItem,
) -> Result<CheckItem, ApiError> {
    let unnamed = ItemFields {
        resource: "items[].resource",
        permission: "items[].permission",
        subject: "items[].subject",
        context: "items[].context",
    };
    parse_bulk_item(shared, &unnamed, item).map_err(|_| {
        let field = format!("items[{i}]");
        let (resource, permission, subject, context) = (
            format!("{field}.resource"),
            format!("{field}.permission"),
            format!("{field}.subject"),
            format!("{field}.context"),
        );
        let named = ItemFields {
            resource: &resource,
            permission: &permission,
            subject: &subject,
            context: &context,
        };
        match parse_bulk_item(shared, &named, item) {
            Err(e) => e,
            Ok(_) => ApiError::Internal(format!("bulk check item {i} was refused once only")),
        }
    })
}

fn parse_bulk_item(
    shared: &Shared,
    fields: &ItemFields<'_>,
    item: &pb::CheckBulkPermissionsRequestItem,
) -> Result<CheckItem, ApiError> {
    let resource = convert::object_ref(fields.resource, item.resource.as_ref())?;
    convert::relation_name(fields.permission, &item.permission)?;
    let subject = convert::subject_ref(fields.subject, item.subject.as_ref())?;
    let context = shared.caveat_context(fields.context, item.context.as_ref())?;
    Ok(CheckItem {
        resource,
        permission: item.permission.clone(),
        subject,
        context,
    })
}

/// The answers of a bulk check, in request order: one context (one snapshot) for the whole
/// request, and the items evaluated together by `eval::check_bulk`, which checks the items
/// that share a subject, type and permission in one pass. If the context cannot be opened,
/// every item carries the error it would have had alone.
async fn check_bulk_items(
    shared: &Shared,
    revision: Revision,
    items: &[CheckItem],
    deadline: std::time::Instant,
) -> Vec<Result<pb::CheckBulkPermissionsResponseItem, ApiError>> {
    let Some(first) = items.first() else {
        return Vec::new();
    };
    let ctx = match shared.eval_context(
        revision,
        first.resource.object_type(),
        crate::model::ContextMap::new(),
        deadline,
    ) {
        Ok(ctx) => ctx,
        Err(e) => {
            return items
                .iter()
                .map(|item| {
                    Err(match &e {
                        ApiError::UnknownDefinition(_) => {
                            ApiError::UnknownDefinition(item.resource.object_type().to_string())
                        }
                        other => other.clone(),
                    })
                })
                .collect();
        }
    };
    let checks: Vec<eval::BulkCheck<'_>> = items
        .iter()
        .map(|item| eval::BulkCheck {
            resource: &item.resource,
            permission: &item.permission,
            subject: &item.subject,
            context: (!item.context.is_empty()).then_some(&item.context),
        })
        .collect();
    let answers = eval::check_bulk(&ctx, &checks).await;
    answers
        .into_iter()
        .zip(items)
        .map(|(answer, item)| {
            let result = answer.map_err(ApiError::from)?;
            let (p, info) = match &result.permissionship {
                Permissionship::Conditional(_) if !item.context.is_empty() => {
                    let own = ctx.clone().with_caveat_context(item.context.clone());
                    wire_permissionship(&own, &result.permissionship)
                }
                p => wire_permissionship(&ctx, p),
            };
            Ok(pb::CheckBulkPermissionsResponseItem {
                permissionship: p as i32,
                partial_caveat_info: info,
                debug_trace: None,
            })
        })
        .collect()
}

/// Where a LookupResources resumes: the order of its results (by id for a paged call, as the
/// walk finds them for an unlimited one, so that its first results come early; a cursor keeps
/// the order of the call that issued it) and the last result already delivered.
struct LookupResume {
    order: cursor::Order,
    after: Option<String>,
}

/// The revision and resume position of a LookupResources.
fn lookup_position(
    shared: &Shared,
    req: &pb::LookupResourcesRequest,
    hash: [u8; 8],
) -> Result<(Revision, LookupResume), ApiError> {
    match &req.optional_cursor {
        Some(c) => {
            let position = cursor::decode(c, hash)?;
            shared.datastore.check_revision(position.revision)?;
            Ok((
                position.revision,
                LookupResume {
                    order: position.order,
                    after: Some(position.after),
                },
            ))
        }
        None => {
            let revision = pick_revision(
                shared.datastore.as_ref(),
                req.consistency.as_ref(),
                shared.config.revision_quantization,
            )?;
            let order = if req.optional_limit == 0 {
                cursor::Order::Walk
            } else {
                cursor::Order::ByKey
            };
            Ok((revision, LookupResume { order, after: None }))
        }
    }
}

/// A validated LookupResources, ready to stream.
struct StreamedLookup {
    ctx: EvalContext,
    /// Hides results outside a delegated caller's scope.
    scope: Option<ScopeFilter>,
    resource_type: String,
    permission: String,
    subject: SubjectRef,
    resume: LookupResume,
    limit: usize,
    revision: Revision,
    hash: [u8; 8],
}

impl StreamedLookup {
    /// Most results in one message of the channel between the walk and the response.
    const BATCH: usize = 256;
    /// Messages buffered between the walk and the response.
    const BUFFER: usize = 16;
    /// Longest a found result waits for its batch to fill before it is sent anyway.
    const LINGER: std::time::Duration = std::time::Duration::from_millis(2);
    /// Results added to a batch between two looks at the clock.
    const CLOCK_STRIDE: usize = 16;

    /// Runs the lookup on a blocking thread (it reads the store synchronously) and streams its
    /// results as they are confirmed: the first alone, at once, then in batches. A client that
    /// goes away stops the walk; an error ends the stream.
    fn stream(self) -> ResponseStream<pb::LookupResourcesResponse> {
        type Batch = Vec<Result<pb::LookupResourcesResponse, Status>>;
        let (tx, rx) = tokio::sync::mpsc::channel::<Batch>(Self::BUFFER);
        tokio::task::spawn_blocking(move || {
            let StreamedLookup {
                ctx,
                mut scope,
                resource_type,
                permission,
                subject,
                resume,
                limit,
                revision,
                hash,
            } = self;
            let token = encode_zedtoken(revision);
            let order = match resume.order {
                cursor::Order::Walk => eval::LookupOrder::Walk {
                    after: resume.after.as_deref(),
                },
                cursor::Order::ByKey => eval::LookupOrder::ById {
                    after: resume.after.as_deref(),
                },
            };
            let mut batch: Batch = Vec::new();
            let mut sent = 0usize;
            let mut flushed_at: Option<std::time::Instant> = None;
            let mut open = true;
            let emit = |r: eval::LookupResult| {
                if let Some(filter) = scope.as_mut() {
                    let visible = ObjectRef::new(&resource_type, &r.resource_id)
                        .map_err(|e| ApiError::Internal(e.to_string()))
                        .and_then(|resource| filter.keep_resource(&resource));
                    match visible {
                        Ok(true) => {}
                        Ok(false) => return open && sent < limit,
                        Err(e) => {
                            // Stops the walk; the error goes out with the last batch.
                            batch.push(Err(e.into_status()));
                            return false;
                        }
                    }
                }
                let caveat = match &r.permissionship {
                    Permissionship::Conditional(expr) => Some(expr),
                    _ => None,
                };
                let (p, info) = lookup_permissionship(&ctx, caveat);
                let after_result_cursor = match resume.order {
                    cursor::Order::Walk => cursor::encode_walk(revision, hash, &r.resource_id),
                    cursor::Order::ByKey => cursor::encode(revision, hash, &r.resource_id),
                };
                batch.push(Ok(pb::LookupResourcesResponse {
                    looked_up_at: Some(token.clone()),
                    after_result_cursor: Some(after_result_cursor),
                    resource_object_id: r.resource_id,
                    permissionship: p as i32,
                    partial_caveat_info: info,
                }));
                sent += 1;
                // The first result goes at once; then the clock is read every few results.
                let due = flushed_at.is_none_or(|t| {
                    batch.len() % Self::CLOCK_STRIDE == 0 && t.elapsed() >= Self::LINGER
                });
                if batch.len() >= Self::BATCH || due {
                    open = tx.blocking_send(std::mem::take(&mut batch)).is_ok();
                    flushed_at = Some(std::time::Instant::now());
                }
                open && sent < limit
            };
            // Evaluation needs no runtime services (timers, I/O), so this thread drives it
            // itself, and may block on the channel when the client is slower than the walk.
            let result = futures::executor::block_on(eval::lookup_resources_with(
                &ctx,
                &resource_type,
                &permission,
                &subject,
                order,
                emit,
            ));
            if let Err(e) = result {
                batch.push(Err(ApiError::from(e).into_status()));
            }
            if open && !batch.is_empty() {
                let _ = tx.blocking_send(batch);
            }
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx).flat_map(futures::stream::iter))
    }
}
