//! Every error the API can return, and its one translation into a gRPC status with a
//! `google.rpc.ErrorInfo` (domain `authzed.com`, reason from `authzed.api.v1.ErrorReason`) as
//! SpiceDB returns it; the status is logged here, once.
//!
//! The codes and reasons follow SpiceDB v1.54 (the version the conformance corpus comes from):
//! `internal/services/shared/errors.go` (`rewriteError`), `internal/services/v1/errors.go`,
//! `internal/relationships/errors.go`, `internal/namespace/errors.go`,
//! `internal/dispatch/errors.go`, `pkg/datastore/errors.go`, `pkg/cursor/errors.go`,
//! `pkg/middleware/consistency/consistency.go`, `internal/auth/presharedkey.go`.

use std::collections::BTreeMap;

use prost::Message as _;
use tonic::Code;

use super::grpc::proto::authzed::api::v1::ErrorReason;
use super::grpc::proto::google::rpc::{ErrorInfo, Status as RpcStatus};
use crate::eval::EvalError;
use crate::identity::IdentityError;
use crate::schema::RelationshipSchemaError;
use crate::store::StoreError;

/// The `ErrorInfo.domain` of every reason (SpiceDB's `spiceerrors.Domain`).
pub const ERROR_DOMAIN: &str = "authzed.com";

/// Key-value details of an error, sent as `ErrorInfo.metadata`.
pub type Metadata = BTreeMap<String, String>;

/// Why a request was refused or failed. Each variant knows its code and reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// A request field is malformed (SpiceDB's protovalidate rules; no `ErrorInfo`).
    #[error("invalid `{field}` `{value}`: {problem}")]
    InvalidField {
        /// The field path, e.g. `resource.object_id`.
        field: String,
        /// The rejected value (cut to a readable length).
        value: String,
        /// The rule it breaks.
        problem: String,
    },
    /// A ZedToken that Arbor did not issue (SpiceDB: "invalid revision requested").
    #[error("invalid revision requested: the zedtoken `{0}` is malformed")]
    InvalidZedToken(String),
    /// A ZedToken's revision can no longer (or not yet) be read.
    #[error("invalid revision: {0}")]
    RevisionUnavailable(String),
    /// A cursor that is garbage or belongs to another request.
    #[error("the cursor provided is not valid: {0}")]
    InvalidCursor(String),
    /// The object type has no definition.
    #[error("object definition `{0}` not found")]
    UnknownDefinition(String),
    /// The type has no such relation or permission.
    #[error("relation/permission `{relation}` not found under definition `{definition}`")]
    UnknownRelation {
        /// The type.
        definition: String,
        /// The relation or permission.
        relation: String,
    },
    /// The caveat is not defined.
    #[error("the caveat `{caveat}` was not found for relationship `{relationship}`")]
    UnknownCaveat {
        /// The caveat.
        caveat: String,
        /// The relationship that names it.
        relationship: String,
    },
    /// ReadSchema before any WriteSchema.
    #[error("no schema has been defined; please call WriteSchema to start")]
    SchemaNotDefined,
    /// The schema text does not parse.
    #[error("{message}")]
    SchemaParse {
        /// Every problem, `line:column: message`, one per line.
        message: String,
        /// 1-based line of the first problem.
        line: u32,
        /// 1-based column of the first problem.
        column: u32,
    },
    /// The schema parses but does not type-check.
    #[error("{message}")]
    SchemaType {
        /// Every problem, `line:column: message`, one per line.
        message: String,
        /// 1-based line of the first problem.
        line: u32,
        /// 1-based column of the first problem.
        column: u32,
    },
    /// The new schema would leave stored relationships unreferenced.
    #[error("{0}")]
    SchemaChangeRefused(String),
    /// A relationship to a permission.
    #[error(
        "cannot write a relationship to permission `{permission}` under definition `{definition}`"
    )]
    CannotUpdatePermission {
        /// The type.
        definition: String,
        /// The permission.
        permission: String,
    },
    /// The subject type (or caveat, wildcard, expiration) is not allowed on the relation.
    #[error("{message}")]
    InvalidSubjectType {
        /// SpiceDB-shaped message.
        message: String,
        /// `definition_name`, `relation_name`, `subject_type` (and `allowed_caveats`).
        metadata: Metadata,
    },
    /// Caveat context on a relationship that does not fit the caveat's parameters.
    #[error("type error for parameters for caveat `{caveat}`: {message}")]
    CaveatParameter {
        /// The caveat.
        caveat: String,
        /// What is wrong.
        message: String,
    },
    /// A caveat failed to evaluate.
    #[error("evaluation error for caveat {caveat}: {message}")]
    CaveatEvaluation {
        /// The caveat.
        caveat: String,
        /// What went wrong.
        message: String,
    },
    /// The request's caveat context is larger than allowed.
    #[error("request caveat context should have less than {max} bytes but had {size}")]
    CaveatContextTooLarge {
        /// Its encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A relationship's caveat (name and context) is larger than allowed.
    #[error("provided relationship `{relationship}` exceeded maximum allowed caveat size of {max}")]
    RelationshipContextTooLarge {
        /// The relationship.
        relationship: String,
        /// Its encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// More updates in one WriteRelationships than allowed.
    #[error(
        "too many updates ({count}) for WriteRelationships call (maximum: {max}); consider using ImportBulkRelationships API instead"
    )]
    TooManyUpdates {
        /// Given.
        count: usize,
        /// Allowed.
        max: usize,
    },
    /// More preconditions than allowed.
    #[error("precondition count of {count} is greater than maximum allowed of {max}")]
    TooManyPreconditions {
        /// Given.
        count: usize,
        /// Allowed.
        max: usize,
    },
    /// More items in one CheckBulkPermissions than allowed.
    #[error("check count of {count} is greater than maximum allowed of {max}")]
    TooManyChecks {
        /// Given.
        count: usize,
        /// Allowed.
        max: usize,
    },
    /// A page or batch limit above the server's maximum.
    #[error("provided limit {provided} is greater than maximum allowed of {max}")]
    LimitTooLarge {
        /// Given.
        provided: u64,
        /// Allowed.
        max: u64,
    },
    /// Two updates of one request name the same relationship.
    #[error(
        "found more than one update with relationship `{relationship}` in this request; a relationship can only be specified in an update once per overall WriteRelationships request"
    )]
    DuplicateUpdate {
        /// The resource type.
        definition: String,
        /// The relationship.
        relationship: String,
    },
    /// A precondition with no filter.
    #[error("one of the specified preconditions is empty")]
    EmptyPrecondition,
    /// A relationship filter that cannot be used.
    #[error("the relationship filter provided is not valid: {reason}")]
    InvalidFilter {
        /// Why.
        reason: String,
        /// The filter, as text.
        filter: String,
    },
    /// A write precondition did not hold.
    #[error("unable to satisfy write precondition `{description}`")]
    PreconditionFailed {
        /// The precondition, as text.
        description: String,
        /// `precondition_operation`, `precondition_resource_type`, ...
        metadata: Metadata,
    },
    /// CREATE of an existing relationship.
    #[error(
        "could not CREATE relationship `{relationship}`, as it already existed. If this is persistent, please switch to TOUCH operations or specify a precondition"
    )]
    AlreadyExists {
        /// The relationship (without caveat or expiration).
        relationship: String,
        /// Its parts, as SpiceDB lists them.
        metadata: Metadata,
    },
    /// A delete with a limit, no partial deletion, and more matches than the limit.
    #[error(
        "found more than {limit} relationships to be deleted and partial deletion was not requested"
    )]
    TooManyForTransactionalDelete {
        /// The limit.
        limit: u32,
        /// `filter_resource_type`, ...
        metadata: Metadata,
    },
    /// Evaluation went deeper than `--dispatch-max-depth`.
    #[error(
        "max depth exceeded: this usually indicates a recursive or too deep data dependency (the maximum is {max_depth}; see --dispatch-max-depth)"
    )]
    MaxDepthExceeded {
        /// The configured maximum.
        max_depth: u32,
    },
    /// The request's deadline passed.
    #[error("the request deadline was exceeded")]
    DeadlineExceeded,
    /// The server is shutting down or the client went away.
    #[error("{0}")]
    Cancelled(String),
    /// A server limit (concurrency, size) was reached.
    #[error("{0}")]
    ResourceExhausted(String),
    /// The RPC or option is not implemented.
    #[error("{0}")]
    Unimplemented(String),
    /// No credentials, or unreadable ones.
    #[error("{0}")]
    Unauthenticated(String),
    /// Credentials that match no key.
    #[error("{0}")]
    PermissionDenied(String),
    /// An argument of an administration request is malformed (the message names it).
    #[error("{0}")]
    InvalidArgument(String),
    /// A named record (organization, user, credential, invitation, session) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A record with this id or unique attribute exists already.
    #[error("{0}")]
    RecordExists(String),
    /// The operation conflicts with the current state of the records it touches.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A failure of the server itself (storage, a bug).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// A malformed field.
    pub fn field(
        field: impl Into<String>,
        value: impl AsRef<str>,
        problem: impl Into<String>,
    ) -> Self {
        ApiError::InvalidField {
            field: field.into(),
            value: shorten(value.as_ref()),
            problem: problem.into(),
        }
    }

    /// The gRPC code (as SpiceDB returns it for the same condition).
    pub fn code(&self) -> Code {
        use ApiError::*;
        match self {
            InvalidField { .. }
            | InvalidZedToken(_)
            | InvalidCursor(_)
            | SchemaParse { .. }
            | SchemaChangeRefused(_)
            | CannotUpdatePermission { .. }
            | InvalidSubjectType { .. }
            | CaveatParameter { .. }
            | CaveatEvaluation { .. }
            | CaveatContextTooLarge { .. }
            | RelationshipContextTooLarge { .. }
            | TooManyUpdates { .. }
            | TooManyPreconditions { .. }
            | TooManyChecks { .. }
            | LimitTooLarge { .. }
            | DuplicateUpdate { .. }
            | EmptyPrecondition
            | InvalidFilter { .. }
            | TooManyForTransactionalDelete { .. }
            | InvalidArgument(_) => Code::InvalidArgument,
            RevisionUnavailable(_) => Code::OutOfRange,
            UnknownDefinition(_)
            | UnknownRelation { .. }
            | UnknownCaveat { .. }
            | SchemaType { .. }
            | PreconditionFailed { .. }
            | MaxDepthExceeded { .. } => Code::FailedPrecondition,
            SchemaNotDefined | NotFound(_) => Code::NotFound,
            RecordExists(_) => Code::AlreadyExists,
            FailedPrecondition(_) => Code::FailedPrecondition,
            AlreadyExists { .. } => Code::AlreadyExists,
            DeadlineExceeded => Code::DeadlineExceeded,
            Cancelled(_) => Code::Cancelled,
            ResourceExhausted(_) => Code::ResourceExhausted,
            Unimplemented(_) => Code::Unimplemented,
            Unauthenticated(_) => Code::Unauthenticated,
            PermissionDenied(_) => Code::PermissionDenied,
            Internal(_) => Code::Internal,
        }
    }

    /// The `ErrorInfo` reason and metadata, where SpiceDB sends one.
    pub fn reason(&self) -> Option<(ErrorReason, Metadata)> {
        use ApiError::*;
        use ErrorReason as R;
        let meta = |pairs: &[(&str, String)]| -> Metadata {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.clone()))
                .collect()
        };
        Some(match self {
            InvalidField { .. }
            | InvalidZedToken(_)
            | RevisionUnavailable(_)
            | SchemaNotDefined
            | CaveatContextTooLarge { .. }
            | DeadlineExceeded
            | Cancelled(_)
            | ResourceExhausted(_)
            | Unimplemented(_)
            | Unauthenticated(_)
            | PermissionDenied(_)
            | NotFound(_)
            | InvalidArgument(_)
            | RecordExists(_)
            | FailedPrecondition(_)
            | Internal(_) => return None,
            InvalidCursor(_) => (R::InvalidCursor, Metadata::new()),
            UnknownDefinition(name) => (
                R::UnknownDefinition,
                meta(&[("definition_name", name.clone())]),
            ),
            UnknownRelation {
                definition,
                relation,
            } => (
                R::UnknownRelationOrPermission,
                meta(&[
                    ("definition_name", definition.clone()),
                    ("relation_or_permission_name", relation.clone()),
                ]),
            ),
            UnknownCaveat { caveat, .. } => {
                (R::UnknownCaveat, meta(&[("caveat_name", caveat.clone())]))
            }
            SchemaParse { line, column, .. } => (
                R::SchemaParseError,
                meta(&[
                    ("start_line_number", line.to_string()),
                    ("start_column_position", column.to_string()),
                ]),
            ),
            SchemaType { line, column, .. } => (
                R::SchemaTypeError,
                meta(&[
                    ("start_line_number", line.to_string()),
                    ("start_column_position", column.to_string()),
                ]),
            ),
            SchemaChangeRefused(_) => (R::SchemaTypeError, Metadata::new()),
            CannotUpdatePermission {
                definition,
                permission,
            } => (
                R::CannotUpdatePermission,
                meta(&[
                    ("definition_name", definition.clone()),
                    ("permission_name", permission.clone()),
                ]),
            ),
            InvalidSubjectType { metadata, .. } => (R::InvalidSubjectType, metadata.clone()),
            CaveatParameter { caveat, .. } => (
                R::CaveatParameterTypeError,
                meta(&[("caveat_name", caveat.clone())]),
            ),
            CaveatEvaluation { caveat, .. } => (
                R::CaveatEvaluationError,
                meta(&[("caveat_name", caveat.clone())]),
            ),
            RelationshipContextTooLarge {
                relationship,
                size,
                max,
            } => (
                R::MaxRelationshipContextSize,
                meta(&[
                    ("relationship", relationship.clone()),
                    ("max_allowed_size", max.to_string()),
                    ("context_size", size.to_string()),
                ]),
            ),
            TooManyUpdates { count, max } => (
                R::TooManyUpdatesInRequest,
                meta(&[
                    ("update_count", count.to_string()),
                    ("maximum_updates_allowed", max.to_string()),
                ]),
            ),
            TooManyPreconditions { count, max } => (
                R::TooManyPreconditionsInRequest,
                meta(&[
                    ("precondition_count", count.to_string()),
                    ("maximum_updates_allowed", max.to_string()),
                ]),
            ),
            TooManyChecks { count, max } => (
                R::Unspecified,
                meta(&[
                    ("check_count", count.to_string()),
                    ("maximum_checks_allowed", max.to_string()),
                ]),
            ),
            LimitTooLarge { provided, max } => (
                R::ExceedsMaximumAllowableLimit,
                meta(&[
                    ("limit_provided", provided.to_string()),
                    ("maximum_limit_allowed", max.to_string()),
                ]),
            ),
            DuplicateUpdate {
                definition,
                relationship,
            } => (
                R::UpdatesOnSameRelationship,
                meta(&[
                    ("definition_name", definition.clone()),
                    ("relationship", relationship.clone()),
                ]),
            ),
            EmptyPrecondition => (R::Unspecified, Metadata::new()),
            InvalidFilter { filter, .. } => (R::InvalidFilter, meta(&[("filter", filter.clone())])),
            PreconditionFailed { metadata, .. } => {
                (R::WriteOrDeletePreconditionFailure, metadata.clone())
            }
            AlreadyExists { metadata, .. } => (R::AttemptToRecreateRelationship, metadata.clone()),
            TooManyForTransactionalDelete { metadata, .. } => (
                R::TooManyRelationshipsForTransactionalDelete,
                metadata.clone(),
            ),
            MaxDepthExceeded { .. } => (R::MaximumDepthExceeded, Metadata::new()),
        })
    }

    /// The message and details as a `google.rpc.Status` (also what a failed bulk-check item carries).
    pub fn to_rpc_status(&self) -> RpcStatus {
        let details = self
            .reason()
            .map(|(reason, metadata)| prost_types::Any {
                type_url: "type.googleapis.com/google.rpc.ErrorInfo".to_string(),
                value: ErrorInfo {
                    reason: reason.as_str_name().to_string(),
                    domain: ERROR_DOMAIN.to_string(),
                    metadata: metadata.into_iter().collect(),
                }
                .encode_to_vec(),
            })
            .into_iter()
            .collect();
        RpcStatus {
            code: self.code() as i32,
            message: self.to_string(),
            details,
        }
    }

    /// The gRPC status: code, message, and `grpc-status-details-bin` with the `ErrorInfo`.
    /// Logs it once: server failures at `error`, refusals of the request at `debug`.
    pub fn into_status(self) -> tonic::Status {
        let code = self.code();
        match code {
            Code::Internal | Code::Unknown | Code::DataLoss => {
                tracing::error!(code = ?code, error = %self, "request failed");
            }
            _ => tracing::debug!(code = ?code, error = %self, "request refused"),
        }
        let rpc = self.to_rpc_status();
        if rpc.details.is_empty() {
            return tonic::Status::new(code, rpc.message);
        }
        let message = rpc.message.clone();
        tonic::Status::with_details(code, message, rpc.encode_to_vec().into())
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        e.into_status()
    }
}

/// Cuts a rejected value to a length that fits a message.
fn shorten(value: &str) -> String {
    const MAX_CHARS: usize = 128;
    if value.chars().count() <= MAX_CHARS {
        return value.to_string();
    }
    let cut: String = value.chars().take(MAX_CHARS).collect();
    format!("{cut}…")
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AlreadyExists(rel) => ApiError::AlreadyExists {
                relationship: rel,
                metadata: Metadata::new(),
            },
            StoreError::RevisionAhead { .. } => {
                ApiError::RevisionUnavailable("revision was invalid".to_string())
            }
            StoreError::RevisionExpired(_) => {
                ApiError::RevisionUnavailable("revision has expired".to_string())
            }
            StoreError::PreconditionFailed(message) => ApiError::PreconditionFailed {
                description: message,
                metadata: Metadata::new(),
            },
            StoreError::SchemaChangeRefused(message) => ApiError::SchemaChangeRefused(message),
            StoreError::Refused(message) => ApiError::PreconditionFailed {
                description: message,
                metadata: Metadata::new(),
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<EvalError> for ApiError {
    fn from(e: EvalError) -> Self {
        match e {
            // Without a schema every type is unknown; callers that know the type map this
            // to `UnknownDefinition` themselves.
            EvalError::NoSchema => ApiError::UnknownDefinition(String::new()),
            EvalError::UnknownType(t) => ApiError::UnknownDefinition(t),
            EvalError::UnknownRelation {
                object_type,
                relation,
            } => ApiError::UnknownRelation {
                definition: object_type,
                relation,
            },
            EvalError::DepthExceeded { max_depth } => ApiError::MaxDepthExceeded { max_depth },
            EvalError::DeadlineExceeded => ApiError::DeadlineExceeded,
            EvalError::Store(s) => ApiError::from(s),
            EvalError::Caveat { caveat, message } => ApiError::CaveatEvaluation { caveat, message },
            #[allow(unreachable_patterns)]
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            IdentityError::AlreadyExists(m) => ApiError::RecordExists(m),
            IdentityError::InvalidArgument(m) => ApiError::InvalidArgument(m),
            IdentityError::FailedPrecondition(m) => ApiError::FailedPrecondition(m),
            IdentityError::Store(s) => ApiError::from(s),
            IdentityError::Eval(ev) => ApiError::from(ev),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl ApiError {
    /// A relationship the schema refuses, as SpiceDB's write validation reports it.
    pub fn from_relationship_schema(e: RelationshipSchemaError, relationship: &str) -> Self {
        match e {
            RelationshipSchemaError::UnknownType(t) => ApiError::UnknownDefinition(t),
            RelationshipSchemaError::UnknownRelation {
                object_type,
                relation,
            } => ApiError::UnknownRelation {
                definition: object_type,
                relation,
            },
            RelationshipSchemaError::WriteToPermission {
                object_type,
                relation,
            } => ApiError::CannotUpdatePermission {
                definition: object_type,
                permission: relation,
            },
            RelationshipSchemaError::SubjectNotAllowed {
                object_type,
                relation,
                subject,
                allowed,
            } => ApiError::InvalidSubjectType {
                message: format!(
                    "subjects of type `{subject}` are not allowed on relation `{object_type}#{relation}` (allowed: {allowed})"
                ),
                metadata: [
                    ("definition_name", object_type),
                    ("relation_name", relation),
                    ("subject_type", subject),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            },
            RelationshipSchemaError::CaveatRequired {
                object_type,
                relation,
                subject,
                caveats,
            } => ApiError::InvalidSubjectType {
                message: format!(
                    "subjects of type `{subject}` are not allowed on relation `{object_type}#{relation}` without one of the following caveats: {caveats}"
                ),
                metadata: [
                    ("definition_name", object_type),
                    ("relation_name", relation),
                    ("subject_type", subject),
                    ("allowed_caveats", caveats.replace('`', "")),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            },
            RelationshipSchemaError::UnknownCaveat(caveat) => ApiError::UnknownCaveat {
                caveat,
                relationship: relationship.to_string(),
            },
            RelationshipSchemaError::UnknownCaveatParameter { caveat, parameter } => {
                ApiError::CaveatParameter {
                    caveat,
                    message: format!("unknown parameter `{parameter}`"),
                }
            }
            #[allow(unreachable_patterns)]
            other => ApiError::InvalidSubjectType {
                message: other.to_string(),
                metadata: Metadata::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_error_info_with_the_authzed_domain() {
        let e = ApiError::UnknownDefinition("nope".to_string());
        let rpc = e.to_rpc_status();
        assert_eq!(rpc.code, Code::FailedPrecondition as i32);
        assert_eq!(rpc.message, "object definition `nope` not found");
        let any = rpc.details.first().unwrap();
        assert_eq!(any.type_url, "type.googleapis.com/google.rpc.ErrorInfo");
        let info = ErrorInfo::decode(any.value.as_slice()).unwrap();
        assert_eq!(info.reason, "ERROR_REASON_UNKNOWN_DEFINITION");
        assert_eq!(info.domain, "authzed.com");
        assert_eq!(info.metadata.get("definition_name").unwrap(), "nope");

        let status = ApiError::MaxDepthExceeded { max_depth: 50 }.into_status();
        assert_eq!(status.code(), Code::FailedPrecondition);
        let decoded = RpcStatus::decode(status.details()).unwrap();
        let info = ErrorInfo::decode(decoded.details[0].value.as_slice()).unwrap();
        assert_eq!(info.reason, "ERROR_REASON_MAXIMUM_DEPTH_EXCEEDED");
    }

    #[test]
    fn field_errors_have_no_details_and_name_the_field() {
        let status = ApiError::field("resource.object_id", "a b", "ids are letters").into_status();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.details().is_empty());
        assert_eq!(
            status.message(),
            "invalid `resource.object_id` `a b`: ids are letters"
        );
        let long = ApiError::field("x", "y".repeat(1000), "too long").to_string();
        assert!(long.len() < 300, "{long}");
    }
}
