//! `arbor.v1.AuditService`: queries of the audit log (by organization subtree, actor, subject,
//! source and time, paginated), a stream of entries as they commit, and verification of the
//! chain. A caller scoped to an organization sees only entries touching its subtree.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use super::guard::Guard;
use super::organizations::subtree_at_head;
use super::proto::arbor::v1 as pb;
use super::{ResponseStream, Shared};
use crate::api::auth::Caller;
use crate::api::status::ApiError;
use crate::identity::audit::anchor::{Anchor, AnchorPublicKey, read_anchor_file};
use crate::identity::audit::{self, AuditChange, AuditEntry, AuditQuery, hex};
use crate::identity::{IdentityError, Source};
use crate::model::Timestamp;

use pb::audit_service_server::AuditService;

/// Entries read per step of a stream.
const STREAM_BATCH: usize = 256;
/// How often a stream looks for new entries when no commit wakes it.
const STREAM_POLL: Duration = Duration::from_secs(1);
/// Entries buffered for a slow stream client.
const STREAM_BUFFER: usize = 64;

/// Where the server's anchor of the chain head is kept and the key that checks its signature,
/// for VerifyAudit.
#[derive(Debug, Clone)]
pub struct AnchorSource {
    /// The anchor file (outside the data directory).
    pub file: std::path::PathBuf,
    /// The public key of the anchor signer.
    pub public_key: AnchorPublicKey,
}

impl AnchorSource {
    /// The anchor on file, with its signature checked.
    pub fn current(&self) -> Result<Anchor, IdentityError> {
        let anchor = read_anchor_file(&self.file)?;
        anchor.check_signature(&self.public_key)?;
        Ok(anchor)
    }
}

/// The AuditService implementation.
#[derive(Clone)]
pub struct AuditApi {
    shared: Arc<Shared>,
}

impl AuditApi {
    /// Serves the audit log of `shared`'s store.
    pub fn new(shared: Arc<Shared>) -> Self {
        AuditApi { shared }
    }

    /// The organizations a query may see: the asked one's subtree (which a delegated caller
    /// must have in scope), or, for a delegated caller that asks none, its own subtree.
    async fn visible_orgs(
        &self,
        guard: &Guard,
        asked: &str,
    ) -> Result<Option<BTreeSet<String>>, ApiError> {
        let org = if asked.is_empty() {
            match guard.caller() {
                caller if caller.is_platform() => return Ok(None),
                Caller::OrgCredential { org, .. } => org.clone(),
                _ => {
                    return Err(ApiError::field(
                        "organization",
                        "",
                        "is required for a caller scoped to organizations",
                    ));
                }
            }
        } else {
            asked.to_string()
        };
        if guard.scope().is_some() {
            let ctx = self
                .shared
                .head_context(crate::identity::scope::ORGANIZATION_TYPE)?;
            guard.require_org(&ctx, &org).await?;
        }
        Ok(Some(subtree_at_head(&self.shared, &org)?))
    }
}

fn optional_time(field: &str, text: &str) -> Result<Option<Timestamp>, ApiError> {
    if text.is_empty() {
        return Ok(None);
    }
    Timestamp::parse_rfc3339(text)
        .map(Some)
        .map_err(|e| ApiError::field(field, text, e.to_string()))
}

/// An audit entry on the wire.
pub fn entry_to_proto(e: &AuditEntry) -> pb::AuditEntry {
    pb::AuditEntry {
        seq: e.seq,
        revision: e.revision.get(),
        time: e.time.to_string(),
        principal: e.actor.principal.clone(),
        on_behalf_of: e.actor.on_behalf_of.clone().unwrap_or_default(),
        initiated_by: e.actor.initiated_by.clone().unwrap_or_default(),
        source: e.actor.source.as_str().to_string(),
        reason: e.actor.reason.clone().unwrap_or_default(),
        request_id: e.actor.request_id.clone().unwrap_or_default(),
        action: e.action.clone(),
        organizations: e.orgs.iter().cloned().collect(),
        subjects: e.subjects.iter().cloned().collect(),
        changes: e
            .changes
            .iter()
            .map(|c| match c {
                AuditChange::Touch(r) => pb::AuditChange {
                    operation: "touch".to_string(),
                    relationship: r.clone(),
                },
                AuditChange::Delete(r) => pb::AuditChange {
                    operation: "delete".to_string(),
                    relationship: r.clone(),
                },
            })
            .collect(),
        details: e.details.iter().cloned().collect(),
        prev_hash: hex(&e.prev_hash),
        hash: hex(&e.hash),
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn query_audit(
        &self,
        request: Request<pb::QueryAuditRequest>,
    ) -> Result<Response<pb::QueryAuditResponse>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        let orgs = self.visible_orgs(&guard, &req.organization).await?;
        let source = if req.source.is_empty() {
            None
        } else {
            Some(Source::parse(&req.source).ok_or_else(|| {
                ApiError::field(
                    "source",
                    &req.source,
                    "must be api, admin, scim, sso or system",
                )
            })?)
        };
        let after_seq = if req.page_token.is_empty() {
            0
        } else {
            req.page_token.parse::<u64>().map_err(|_| {
                ApiError::field(
                    "page_token",
                    &req.page_token,
                    "is not a token this API gave",
                )
            })?
        };
        let query = AuditQuery {
            orgs,
            actor: (!req.actor.is_empty()).then(|| req.actor.clone()),
            subject: (!req.subject.is_empty()).then(|| req.subject.clone()),
            source,
            from: optional_time("from", &req.from)?,
            to: optional_time("to", &req.to)?,
            after_seq,
            limit: req.page_size as usize,
        };
        let shared = Arc::clone(&self.shared);
        let page =
            tokio::task::spawn_blocking(move || audit::query(shared.datastore.as_ref(), &query))
                .await
                .map_err(|e| ApiError::Internal(format!("audit query task failed: {e}")))?
                .map_err(ApiError::from)?;
        Ok(Response::new(pb::QueryAuditResponse {
            entries: page.entries.iter().map(entry_to_proto).collect(),
            next_page_token: page.next_after.map(|s| s.to_string()).unwrap_or_default(),
        }))
    }

    async fn stream_audit(
        &self,
        request: Request<pb::StreamAuditRequest>,
    ) -> Result<Response<ResponseStream<pb::AuditEntry>>, Status> {
        let guard = Guard::of(&request)?;
        let req = request.into_inner();
        let orgs = self.visible_orgs(&guard, &req.organization).await?;
        let shared = Arc::clone(&self.shared);
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            let mut after = req.after_seq;
            let mut heads = shared.datastore.subscribe();
            let mut shutdown = shared.shutdown.clone();
            loop {
                let store = Arc::clone(&shared.datastore);
                let read = tokio::task::spawn_blocking(move || {
                    audit::read_after(store.as_ref(), after, STREAM_BATCH)
                })
                .await;
                let entries = match read {
                    Ok(Ok(entries)) => entries,
                    Ok(Err(e)) => {
                        let _ = tx.send(Err(ApiError::from(e).into_status())).await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx
                            .send(Err(ApiError::Internal(format!("audit stream failed: {e}"))
                                .into_status()))
                            .await;
                        return;
                    }
                };
                let full = entries.len() >= STREAM_BATCH;
                for entry in entries {
                    after = entry.seq;
                    let visible = orgs
                        .as_ref()
                        .is_none_or(|o| entry.orgs.iter().any(|x| o.contains(x)));
                    if visible && tx.send(Ok(entry_to_proto(&entry))).await.is_err() {
                        return;
                    }
                }
                if full {
                    continue;
                }
                tokio::select! {
                    _ = heads.changed() => {}
                    _ = tokio::time::sleep(STREAM_POLL) => {}
                    _ = shutdown.changed() => return,
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn verify_audit(
        &self,
        request: Request<pb::VerifyAuditRequest>,
    ) -> Result<Response<pb::VerifyAuditResponse>, Status> {
        let guard = Guard::of(&request)?;
        guard.require_platform("VerifyAudit")?;
        let shared = Arc::clone(&self.shared);
        let anchor = self.shared.audit_anchor.clone();
        let report = tokio::task::spawn_blocking(move || {
            let anchor = match &anchor {
                Some(a) => Some(a.current()?),
                None => None,
            };
            audit::verify(shared.datastore.as_ref(), anchor.as_ref())
        })
        .await
        .map_err(|e| ApiError::Internal(format!("audit verification task failed: {e}")))?
        .map_err(|e: IdentityError| match e {
            IdentityError::AuditBroken(m) => {
                ApiError::FailedPrecondition(format!("audit log is not intact: {m}"))
            }
            other => other.into(),
        })?;
        Ok(Response::new(pb::VerifyAuditResponse {
            entries: report.entries,
            head_seq: report.head.map(|h| h.seq).unwrap_or_default(),
            head_hash: report.head.map(|h| hex(&h.hash)).unwrap_or_default(),
        }))
    }
}
