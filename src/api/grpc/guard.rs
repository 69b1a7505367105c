//! What a caller may reach and what its changes record: the `Guard` of one request (its
//! caller, the scope the evaluator decides for it, its request id), the PERMISSION_DENIED
//! refusals of delegated callers, a filter that hides out-of-scope relationships from reads,
//! and the audit entry every committed relationship change appends in its own transaction.

use std::collections::{BTreeSet, HashMap};

use crate::api::auth::{Caller, caller_of, request_id_of};
use crate::api::status::ApiError;
use crate::eval::EvalContext;
use crate::identity::audit::{self, AuditChange, AuditDraft};
use crate::identity::scope::{self, ORGANIZATION_TYPE, OWNER_RELATION};
use crate::identity::{Actor, Source};
use crate::model::{ObjectRef, Relationship, RelationshipFilter, SubjectRef, Timestamp};
use crate::store::{Records, Transaction};

/// The caller of one request and what it may reach.
#[derive(Debug, Clone)]
pub struct Guard {
    caller: Caller,
    scope: Option<SubjectRef>,
    request_id: Option<String>,
}

impl Guard {
    /// The guard of a request the auth interceptor let through.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<Guard, ApiError> {
        let caller = caller_of(request)?;
        let scope = caller.scope()?;
        Ok(Guard {
            caller,
            scope,
            request_id: request_id_of(request),
        })
    }

    /// The caller.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The subject that decides the caller's scope; `None` when it may reach everything.
    pub fn scope(&self) -> Option<&SubjectRef> {
        self.scope.as_ref()
    }

    /// Refuses a caller that is not a platform key: `what` names the operation.
    pub fn require_platform(&self, what: &str) -> Result<(), ApiError> {
        if self.caller.is_platform() {
            Ok(())
        } else {
            Err(ApiError::PermissionDenied(format!(
                "{what} requires a platform key; `{}` is scoped to an organization",
                self.caller.log_id()
            )))
        }
    }

    /// Refuses a delegated caller unless `resource` is inside its scope at `ctx`'s revision.
    pub async fn require_resource(
        &self,
        ctx: &EvalContext,
        resource: &ObjectRef,
    ) -> Result<(), ApiError> {
        let Some(principal) = &self.scope else {
            return Ok(());
        };
        if scope::resource_in_scope(ctx, principal, resource).await? {
            Ok(())
        } else {
            Err(self.denied(&format!("`{resource}`")))
        }
    }

    /// Refuses a delegated caller unless organization `org` is inside its scope.
    pub async fn require_org(&self, ctx: &EvalContext, org: &str) -> Result<(), ApiError> {
        let Some(principal) = &self.scope else {
            return Ok(());
        };
        if scope::org_in_scope(ctx, principal, org).await? {
            Ok(())
        } else {
            Err(self.denied(&format!("organization `{org}`")))
        }
    }

    /// Refuses relationship updates that reach outside a delegated caller's scope (rules in
    /// `identity::scope::authorize_updates`), decided at `ctx`'s revision.
    pub async fn require_updates(
        &self,
        ctx: &EvalContext,
        updates: &[(scope::UpdateKind, Relationship)],
    ) -> Result<(), ApiError> {
        let Some(principal) = &self.scope else {
            return Ok(());
        };
        match scope::authorize_updates(ctx, principal, updates).await? {
            None => Ok(()),
            Some(denial) => Err(ApiError::PermissionDenied(format!(
                "`{}` may not make this change: {denial}",
                self.caller.log_id()
            ))),
        }
    }

    /// A PERMISSION_DENIED naming the caller and what it tried to reach.
    pub fn denied(&self, what: &str) -> ApiError {
        ApiError::PermissionDenied(format!(
            "`{}` may not act on {what}: it is outside the caller's organization scope",
            self.caller.log_id()
        ))
    }

    /// The audit actor of a change this request makes from `source`.
    pub fn actor(&self, source: Source, reason: Option<String>) -> Actor {
        self.caller.actor(source, reason, self.request_id.clone())
    }
}

/// Hides relationships whose resource is outside a delegated caller's scope, for reads that
/// stream from a blocking thread (it waits on the evaluator there). Verdicts are remembered
/// per resource for the life of one stream.
pub struct ScopeFilter {
    ctx: EvalContext,
    principal: SubjectRef,
    runtime: tokio::runtime::Handle,
    verdicts: HashMap<ObjectRef, bool>,
}

/// Most verdicts one stream remembers before it starts again.
const MAX_REMEMBERED_VERDICTS: usize = 100_000;

impl ScopeFilter {
    /// A filter for `guard`'s caller reading at `ctx`'s revision, or `None` for a caller that
    /// sees everything. Must be created inside the tokio runtime.
    pub fn new(guard: &Guard, ctx: EvalContext) -> Result<Option<ScopeFilter>, ApiError> {
        let Some(principal) = guard.scope().cloned() else {
            return Ok(None);
        };
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| ApiError::Internal(format!("no runtime for the scope filter: {e}")))?;
        Ok(Some(ScopeFilter {
            ctx,
            principal,
            runtime,
            verdicts: HashMap::new(),
        }))
    }

    /// Whether the caller may see `rel` (called from a blocking thread, never from async code).
    pub fn keep(&mut self, rel: &Relationship) -> Result<bool, ApiError> {
        self.keep_resource(rel.resource())
    }

    /// Whether the caller may see `resource` (from a blocking thread, as `keep`).
    pub fn keep_resource(&mut self, resource: &ObjectRef) -> Result<bool, ApiError> {
        if let Some(v) = self.verdicts.get(resource) {
            return Ok(*v);
        }
        let verdict = self.runtime.block_on(scope::resource_in_scope(
            &self.ctx,
            &self.principal,
            resource,
        ))?;
        if self.verdicts.len() >= MAX_REMEMBERED_VERDICTS {
            self.verdicts.clear();
        }
        self.verdicts.insert(resource.clone(), verdict);
        Ok(verdict)
    }
}

/// Appends the audit entry of relationship changes to `txn`: the organizations they touch
/// (owners of each resource, read inside the transaction, and organizations written to
/// directly), their subjects, and the changes themselves.
pub fn append_relationship_audit(
    txn: &mut dyn Transaction,
    actor: &Actor,
    action: &str,
    changes: &[(bool, Relationship)],
    details: Vec<(String, String)>,
) -> Result<(), ApiError> {
    let mut orgs = BTreeSet::new();
    let mut subjects = BTreeSet::new();
    let mut seen_resources: BTreeSet<&ObjectRef> = BTreeSet::new();
    for (_, rel) in changes {
        subjects.insert(rel.subject().to_string());
        let subject = rel.subject();
        if subject.object_type() == ORGANIZATION_TYPE && subject.relation().is_none() {
            orgs.insert(subject.object_id().to_string());
        }
        let resource = rel.resource();
        if resource.object_type() == ORGANIZATION_TYPE {
            orgs.insert(resource.object_id().to_string());
        } else if seen_resources.insert(resource) {
            let owners = txn.read(&RelationshipFilter {
                resource_type: Some(resource.object_type().to_string()),
                resource_id: Some(resource.object_id().to_string()),
                relation: Some(OWNER_RELATION.to_string()),
                ..RelationshipFilter::default()
            })?;
            for owner in owners {
                if owner.subject().object_type() == ORGANIZATION_TYPE {
                    orgs.insert(owner.subject().object_id().to_string());
                }
            }
        }
    }
    let draft = AuditDraft {
        actor: Some(actor.clone()),
        action: action.to_string(),
        orgs,
        subjects,
        changes: changes
            .iter()
            .map(|(touch, rel)| {
                if *touch {
                    AuditChange::Touch(rel.to_string())
                } else {
                    AuditChange::Delete(rel.to_string())
                }
            })
            .collect(),
        details,
    };
    append(txn, draft)
}

/// Appends `draft` to the audit log inside `txn`.
pub fn append(txn: &mut dyn Transaction, draft: AuditDraft) -> Result<(), ApiError> {
    let revision = txn.revision();
    let records: &mut dyn Records = txn;
    audit::append(records, revision, Timestamp::now(), draft)?;
    Ok(())
}
