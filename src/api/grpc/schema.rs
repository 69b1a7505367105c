//! `authzed.api.v1.SchemaService`: ReadSchema and WriteSchema (compiled, checked against the
//! stored relationships, written at a new revision). The reflection RPCs answer UNIMPLEMENTED.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::Shared;
use super::consistency::encode_zedtoken;
use super::guard::{Guard, append};
use super::proto::authzed::api::v1 as pb;
use crate::api::status::ApiError;
use crate::identity::Source;
use crate::identity::audit::AuditDraft;
use crate::identity::prelude;
use crate::schema::{self, SchemaErrors};
use crate::store::check_schema_change;

use pb::schema_service_server::SchemaService;

/// Largest schema text accepted, in bytes (SpiceDB's request validation allows 4 MiB).
pub const MAX_SCHEMA_BYTES: usize = 4 * 1024 * 1024;

/// The SchemaService implementation.
#[derive(Clone)]
pub struct SchemaApi {
    shared: Arc<Shared>,
}

impl SchemaApi {
    /// Serves the schema over `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        SchemaApi { shared }
    }
}

/// Messages the lexer and parser give (SpiceDB's compiler errors: INVALID_ARGUMENT with
/// `SCHEMA_PARSE_ERROR`); every other compile error is a type error (FAILED_PRECONDITION with
/// `SCHEMA_TYPE_ERROR`), as SpiceDB's type-system validation reports it.
const SYNTAX_PREFIXES: &[&str] = &[
    "expected ",
    "unexpected ",
    "unterminated ",
    "nested arrows",
    "partial references",
    "permission expression is nested",
    "caveat parameter type is nested",
    "the expression of caveat",
    "unknown use flag",
    "`use ",
];

fn is_syntax_error(message: &str) -> bool {
    SYNTAX_PREFIXES.iter().any(|p| message.starts_with(p))
        || message.ends_with("has an empty expression")
        || message.ends_with("must have at least one parameter")
}

/// The status of a schema that does not compile.
pub fn schema_error(errors: &SchemaErrors) -> ApiError {
    let (line, column) = errors
        .first()
        .map_or((0, 0), |e| (e.span.line, e.span.column));
    let message = errors.to_string();
    if errors.0.iter().any(|e| is_syntax_error(&e.message)) {
        ApiError::SchemaParse {
            message,
            line,
            column,
        }
    } else {
        ApiError::SchemaType {
            message,
            line,
            column,
        }
    }
}

impl SchemaApi {
    /// Whether organizations were created through the directory (then the schema must keep
    /// the prelude; before that, any SpiceDB schema is accepted, even one with its own
    /// `organization` type).
    fn organizations_exist(&self) -> Result<bool, ApiError> {
        Ok(crate::identity::directory::organizations_exist(
            self.shared.datastore.as_ref(),
        )?)
    }
}

#[tonic::async_trait]
impl SchemaService for SchemaApi {
    async fn read_schema(
        &self,
        _request: Request<pb::ReadSchemaRequest>,
    ) -> Result<Response<pb::ReadSchemaResponse>, Status> {
        let datastore = &self.shared.datastore;
        let head = datastore.head_revision().map_err(ApiError::from)?;
        let schema = datastore
            .snapshot(head)
            .map_err(ApiError::from)?
            .schema()
            .ok_or(ApiError::SchemaNotDefined)?;
        Ok(Response::new(pb::ReadSchemaResponse {
            schema_text: schema.source().to_string(),
            read_at: Some(encode_zedtoken(head)),
        }))
    }

    async fn write_schema(
        &self,
        request: Request<pb::WriteSchemaRequest>,
    ) -> Result<Response<pb::WriteSchemaResponse>, Status> {
        let guard = Guard::of(&request)?;
        guard.require_platform("WriteSchema")?;
        let text = request.into_inner().schema;
        if text.len() > MAX_SCHEMA_BYTES {
            return Err(ApiError::field(
                "schema",
                format!("{} bytes", text.len()),
                format!("the schema may be at most {MAX_SCHEMA_BYTES} bytes"),
            )
            .into());
        }
        let compiled = Arc::new(schema::compile(&text).map_err(|e| schema_error(&e))?);
        if self.organizations_exist()? {
            let problems = prelude::violations(&compiled).await;
            if !problems.is_empty() {
                return Err(ApiError::FailedPrecondition(format!(
                    "the schema must keep Arbor's organization prelude while organizations exist: {}",
                    problems.join("; ")
                ))
                .into());
            }
        }
        let actor = guard.actor(Source::Api, None);
        let digest = {
            use sha2::Digest as _;
            crate::identity::audit::hex(&sha2::Sha256::digest(text.as_bytes()))
        };
        let revision = self
            .shared
            .write(move |txn| {
                let old = txn.schema();
                check_schema_change(txn, old.as_deref(), &compiled)?;
                txn.write_schema(Arc::clone(&compiled))?;
                append(
                    txn,
                    AuditDraft {
                        actor: Some(actor.clone()),
                        action: "schema.write".to_string(),
                        details: vec![
                            ("schema_sha256".to_string(), digest.clone()),
                            (
                                "definitions".to_string(),
                                compiled.definitions().count().to_string(),
                            ),
                        ],
                        ..AuditDraft::default()
                    },
                )?;
                Ok(())
            })
            .await?;
        Ok(Response::new(pb::WriteSchemaResponse {
            written_at: Some(encode_zedtoken(revision)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(text: &str) -> tonic::Code {
        schema_error(&schema::compile(text).unwrap_err()).code()
    }

    #[test]
    fn parse_errors_and_type_errors_get_spicedb_codes() {
        assert_eq!(classify("definition user {"), tonic::Code::InvalidArgument);
        assert_eq!(classify("definiton user {}"), tonic::Code::InvalidArgument);
        assert_eq!(
            classify("definition doc {\n relation viewer: user\n}"),
            tonic::Code::FailedPrecondition
        );
        assert_eq!(
            classify("definition user {}\ndefinition doc {\n permission view = nope\n}"),
            tonic::Code::FailedPrecondition
        );
    }
}
