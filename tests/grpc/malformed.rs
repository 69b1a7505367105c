//! Malformed and refused requests: each gets SpiceDB's status code and error reason, and none
//! changes what is stored.

use arbor::api::grpc::proto::authzed::api::v1 as pb;
use futures::StreamExt as _;
use pb::relationship_update::Operation;

use crate::harness::*;

const RELS: &[&str] = &[
    "document:plan#owner@user:ann",
    "document:plan#viewer@user:bob",
];

/// Every stored relationship, as text, sorted.
async fn stored(server: &TestServer) -> Vec<String> {
    let mut out: Vec<String> = server
        .permissions()
        .await
        .export_bulk_relationships(pb::ExportBulkRelationshipsRequest {
            consistency: full(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .flat_map(|page| futures::stream::iter(page.unwrap().relationships))
        .map(|r| {
            let res = r.resource.unwrap();
            let sub = r.subject.unwrap();
            let so = sub.object.unwrap();
            format!(
                "{}:{}#{}@{}:{}#{}",
                res.object_type,
                res.object_id,
                r.relation,
                so.object_type,
                so.object_id,
                sub.optional_relation
            )
        })
        .collect()
        .await;
    out.sort();
    out
}

fn write(updates: Vec<pb::RelationshipUpdate>) -> pb::WriteRelationshipsRequest {
    pb::WriteRelationshipsRequest {
        updates,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_writes_change_nothing() {
    let (server, _) = seeded(RELS).await;
    let before = stored(&server).await;
    let mut c = server.permissions().await;

    let mut bad_id = rel("document:plan#viewer@user:cat");
    bad_id.resource.as_mut().unwrap().object_id = "has space".to_string();
    let cases: Vec<(
        &str,
        pb::WriteRelationshipsRequest,
        tonic::Code,
        Option<&str>,
    )> = vec![
        (
            "malformed id",
            write(vec![pb::RelationshipUpdate {
                operation: Operation::Create as i32,
                relationship: Some(bad_id),
            }]),
            tonic::Code::InvalidArgument,
            None,
        ),
        (
            "unknown type",
            write(vec![update(Operation::Create, "folder:x#viewer@user:cat")]),
            tonic::Code::FailedPrecondition,
            Some("ERROR_REASON_UNKNOWN_DEFINITION"),
        ),
        (
            "unknown relation",
            write(vec![update(
                Operation::Create,
                "document:plan#reader@user:cat",
            )]),
            tonic::Code::FailedPrecondition,
            Some("ERROR_REASON_UNKNOWN_RELATION_OR_PERMISSION"),
        ),
        (
            "write to a permission",
            write(vec![update(
                Operation::Create,
                "document:plan#view@user:cat",
            )]),
            tonic::Code::InvalidArgument,
            Some("ERROR_REASON_CANNOT_UPDATE_PERMISSION"),
        ),
        (
            "subject type not allowed",
            write(vec![update(
                Operation::Create,
                "document:plan#owner@team:eng#member",
            )]),
            tonic::Code::InvalidArgument,
            Some("ERROR_REASON_INVALID_SUBJECT_TYPE"),
        ),
        (
            "recreate",
            write(vec![
                update(Operation::Touch, "document:plan#viewer@user:cat"),
                update(Operation::Create, "document:plan#owner@user:ann"),
            ]),
            tonic::Code::AlreadyExists,
            Some("ERROR_REASON_ATTEMPT_TO_RECREATE_RELATIONSHIP"),
        ),
        (
            "same relationship twice",
            write(vec![
                update(Operation::Touch, "document:plan#viewer@user:cat"),
                update(Operation::Delete, "document:plan#viewer@user:cat"),
            ]),
            tonic::Code::InvalidArgument,
            Some("ERROR_REASON_UPDATES_ON_SAME_RELATIONSHIP"),
        ),
        (
            "unspecified operation",
            write(vec![pb::RelationshipUpdate {
                operation: 0,
                relationship: Some(rel("document:plan#viewer@user:cat")),
            }]),
            tonic::Code::InvalidArgument,
            None,
        ),
        (
            "oversized batch",
            write(
                (0..1001)
                    .map(|i| update(Operation::Touch, &format!("document:d{i}#viewer@user:cat")))
                    .collect(),
            ),
            tonic::Code::InvalidArgument,
            Some("ERROR_REASON_TOO_MANY_UPDATES_IN_REQUEST"),
        ),
        (
            "empty precondition",
            pb::WriteRelationshipsRequest {
                updates: vec![update(Operation::Touch, "document:plan#viewer@user:cat")],
                optional_preconditions: vec![pb::Precondition::default()],
                optional_transaction_metadata: None,
            },
            tonic::Code::InvalidArgument,
            Some("ERROR_REASON_UNSPECIFIED"),
        ),
    ];
    for (name, request, code, reason) in cases {
        let e = c.write_relationships(request).await.unwrap_err();
        assert_eq!(e.code(), code, "{name}: {e:?}");
        assert_eq!(
            error_info(&e).map(|i| i.reason).as_deref(),
            reason,
            "{name}: {e:?}"
        );
        assert!(!e.message().is_empty(), "{name}");
    }
    let e = c
        .write_relationships(write(vec![pb::RelationshipUpdate {
            operation: Operation::Create as i32,
            relationship: Some({
                let mut r = rel("document:plan#viewer@user:cat");
                r.resource.as_mut().unwrap().object_id = "has space".to_string();
                r
            }),
        }]))
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        "invalid `updates[0].relationship.resource.object_id` `has space`: ids are 1 to 1024 characters of letters, digits and `/ _ | - = +`"
    );

    let e = c
        .delete_relationships(pb::DeleteRelationshipsRequest {
            relationship_filter: Some(pb::RelationshipFilter::default()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_status(
        &e,
        tonic::Code::InvalidArgument,
        Some("ERROR_REASON_INVALID_FILTER"),
    );
    let e = c
        .delete_relationships(pb::DeleteRelationshipsRequest {
            relationship_filter: Some(pb::RelationshipFilter {
                resource_type: "document".to_string(),
                ..Default::default()
            }),
            optional_limit: 5000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_status(
        &e,
        tonic::Code::InvalidArgument,
        Some("ERROR_REASON_EXCEEDS_MAXIMUM_ALLOWABLE_LIMIT"),
    );

    let e = server
        .schema()
        .await
        .write_schema(pb::WriteSchemaRequest {
            schema: "definition user {".to_string(),
        })
        .await
        .unwrap_err();
    assert_status(
        &e,
        tonic::Code::InvalidArgument,
        Some("ERROR_REASON_SCHEMA_PARSE_ERROR"),
    );
    let e = server
        .schema()
        .await
        .write_schema(pb::WriteSchemaRequest {
            schema: "definition doc {\n relation viewer: nobody\n}".to_string(),
        })
        .await
        .unwrap_err();
    assert_status(
        &e,
        tonic::Code::FailedPrecondition,
        Some("ERROR_REASON_SCHEMA_TYPE_ERROR"),
    );

    // Removing a relation that stored relationships use would orphan them.
    let orphaning = DOC_SCHEMA
        .replace("relation viewer: user | user:* | team#member", "")
        .replace("(viewer + edit)", "edit");
    let e = server
        .schema()
        .await
        .write_schema(pb::WriteSchemaRequest { schema: orphaning })
        .await
        .unwrap_err();
    assert_status(
        &e,
        tonic::Code::InvalidArgument,
        Some("ERROR_REASON_SCHEMA_TYPE_ERROR"),
    );

    assert_eq!(stored(&server).await, before);
    let read = server
        .schema()
        .await
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        read.schema_text, DOC_SCHEMA,
        "a refused schema write leaves the schema"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reads_get_spicedb_statuses() {
    let (server, token) = seeded(RELS).await;
    let mut c = server.permissions().await;
    let cases: Vec<(&str, pb::CheckPermissionRequest, tonic::Code, Option<&str>)> = vec![
        (
            "unknown resource type",
            check_request("folder:x", "view", "user:ann"),
            tonic::Code::FailedPrecondition,
            Some("ERROR_REASON_UNKNOWN_DEFINITION"),
        ),
        (
            "unknown permission",
            check_request("document:plan", "destroy", "user:ann"),
            tonic::Code::FailedPrecondition,
            Some("ERROR_REASON_UNKNOWN_RELATION_OR_PERMISSION"),
        ),
        (
            "unknown subject type",
            check_request("document:plan", "view", "robot:r2"),
            tonic::Code::FailedPrecondition,
            Some("ERROR_REASON_UNKNOWN_DEFINITION"),
        ),
        (
            "malformed permission",
            check_request("document:plan", "View!", "user:ann"),
            tonic::Code::InvalidArgument,
            None,
        ),
        (
            "wildcard resource",
            check_request("document:*", "view", "user:ann"),
            tonic::Code::InvalidArgument,
            None,
        ),
        (
            "garbage token",
            pb::CheckPermissionRequest {
                consistency: Some(pb::Consistency {
                    requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(pb::ZedToken {
                        token: "garbage!".to_string(),
                    })),
                }),
                ..check_request("document:plan", "view", "user:ann")
            },
            tonic::Code::InvalidArgument,
            None,
        ),
        (
            "token ahead of head",
            pb::CheckPermissionRequest {
                consistency: at_exact(&arbor::api::grpc::consistency::encode_zedtoken(
                    arbor::model::Revision::new(1_000_000),
                )),
                ..check_request("document:plan", "view", "user:ann")
            },
            tonic::Code::OutOfRange,
            None,
        ),
        (
            "huge context",
            pb::CheckPermissionRequest {
                context: Some(prost_types::Struct {
                    fields: [(
                        "blob".to_string(),
                        prost_types::Value {
                            kind: Some(prost_types::value::Kind::StringValue("x".repeat(5000))),
                        },
                    )]
                    .into_iter()
                    .collect(),
                }),
                ..check_request("document:plan", "view", "user:ann")
            },
            tonic::Code::InvalidArgument,
            None,
        ),
    ];
    for (name, request, code, reason) in cases {
        let e = c.check_permission(request).await.unwrap_err();
        assert_eq!(e.code(), code, "{name}: {e:?}");
        assert_eq!(
            error_info(&e).map(|i| i.reason).as_deref(),
            reason,
            "{name}: {e:?}"
        );
    }
    // The token itself still works.
    let mut ok = check_request("document:plan", "view", "user:ann");
    ok.consistency = at_exact(&token);
    assert!(c.check_permission(ok).await.is_ok());

    let e = c
        .read_relationships(pb::ReadRelationshipsRequest {
            relationship_filter: Some(pb::RelationshipFilter {
                resource_type: "document".to_string(),
                ..Default::default()
            }),
            optional_cursor: Some(pb::Cursor {
                token: "bm90IGEgY3Vyc29y".to_string(),
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_status(
        &e,
        tonic::Code::InvalidArgument,
        Some("ERROR_REASON_INVALID_CURSOR"),
    );
    let e = c
        .lookup_subjects(pb::LookupSubjectsRequest {
            resource: Some(obj("document", "plan")),
            permission: "view".to_string(),
            subject_object_type: "user".to_string(),
            optional_concrete_limit: 3,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_status(&e, tonic::Code::Unimplemented, None);
    server.stop().await;
}

/// Bytes that are not a CheckPermissionRequest: field 2 (`resource`) as a varint.
#[derive(Clone, PartialEq, prost::Message)]
struct Garbage {
    #[prost(uint64, tag = "2")]
    resource: u64,
    #[prost(bytes = "vec", tag = "4")]
    subject: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_and_oversized_messages_are_refused_and_the_server_lives_on() {
    let (server, _) = seeded(RELS).await;
    let channel = server.channel().await;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(Garbage {
        resource: 7,
        subject: vec![0xff; 16],
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {KEY}").parse().unwrap());
    let e = grpc
        .unary::<Garbage, pb::CheckPermissionResponse, _>(
            request,
            "/authzed.api.v1.PermissionsService/CheckPermission"
                .parse()
                .unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Internal, "{e:?}");

    // Above the 4 MiB message limit: RESOURCE_EXHAUSTED, as gRPC servers answer.
    let mut c = server.permissions().await;
    let e = c
        .write_relationships(write(
            (0..5000)
                .map(|i| {
                    update(
                        Operation::Touch,
                        &format!("document:{}#viewer@user:u{i}", "x".repeat(1000)),
                    )
                })
                .collect(),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");

    let r = c
        .check_permission(check_request("document:plan", "view", "user:bob"))
        .await
        .unwrap();
    assert_eq!(
        r.into_inner().permissionship(),
        pb::check_permission_response::Permissionship::HasPermission
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursion_past_the_depth_limit_is_failed_precondition() {
    let server = TestServer::start_with(|o| o.max_depth = Some(5)).await;
    server
        .schema()
        .await
        .write_schema(pb::WriteSchemaRequest {
            schema: DOC_SCHEMA.to_string(),
        })
        .await
        .unwrap();
    let mut c = server.permissions().await;
    let chain: Vec<pb::RelationshipUpdate> = (0..10)
        .map(|i| {
            update(
                Operation::Create,
                &format!("team:t{i}#member@team:t{}#member", i + 1),
            )
        })
        .chain(std::iter::once(update(
            Operation::Create,
            "document:deep#viewer@team:t0#member",
        )))
        .collect();
    c.write_relationships(write(chain)).await.unwrap();
    let e = c
        .check_permission(check_request("document:deep", "view", "user:nobody"))
        .await
        .unwrap_err();
    assert_status(
        &e,
        tonic::Code::FailedPrecondition,
        Some("ERROR_REASON_MAXIMUM_DEPTH_EXCEEDED"),
    );
    server.stop().await;
}
