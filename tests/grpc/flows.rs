//! The main flows over the wire: schema, writes with preconditions, checks, lookups, expand,
//! paged reads, deletes, Watch, bulk import and export, and consistency tokens.

use arbor::api::grpc::proto::authzed::api::v1 as pb;
use futures::StreamExt as _;
use pb::check_permission_response::Permissionship;
use pb::relationship_update::Operation;

use crate::harness::*;

const RELS: &[&str] = &[
    "document:plan#owner@user:ann",
    "document:plan#viewer@team:eng#member",
    "team:eng#member@user:bob",
    "document:memo#viewer@user:bob",
    "document:public#viewer@user:*",
    "document:public#banned@user:mallory",
];

async fn check(
    client: &mut pb::permissions_service_client::PermissionsServiceClient<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Auth>,
    >,
    resource: &str,
    permission: &str,
    subject: &str,
) -> Permissionship {
    let r = client
        .check_permission(check_request(resource, permission, subject))
        .await
        .unwrap()
        .into_inner();
    assert!(r.checked_at.is_some());
    r.permissionship()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_round_trips_and_checks_follow_the_graph() {
    let (server, _) = seeded(RELS).await;
    let read = server
        .schema()
        .await
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.schema_text, DOC_SCHEMA);
    let mut c = server.permissions().await;
    assert_eq!(
        check(&mut c, "document:plan", "view", "user:bob").await,
        Permissionship::HasPermission
    );
    assert_eq!(
        check(&mut c, "document:plan", "edit", "user:bob").await,
        Permissionship::NoPermission
    );
    assert_eq!(
        check(&mut c, "document:public", "view", "user:zed").await,
        Permissionship::HasPermission
    );
    assert_eq!(
        check(&mut c, "document:public", "view", "user:mallory").await,
        Permissionship::NoPermission
    );
    assert_eq!(
        check(&mut c, "document:plan", "viewer", "team:eng#member").await,
        Permissionship::HasPermission
    );

    let bulk = c
        .check_bulk_permissions(pb::CheckBulkPermissionsRequest {
            consistency: full(),
            items: ["ann", "bob", "cat"]
                .iter()
                .map(|u| pb::CheckBulkPermissionsRequestItem {
                    resource: Some(obj("document", "plan")),
                    permission: "edit".to_string(),
                    subject: Some(subj("user", u, "")),
                    context: None,
                })
                .chain(std::iter::once(pb::CheckBulkPermissionsRequestItem {
                    resource: Some(obj("nosuchtype", "x")),
                    permission: "edit".to_string(),
                    subject: Some(subj("user", "ann", "")),
                    context: None,
                }))
                .collect(),
            with_tracing: false,
        })
        .await
        .unwrap()
        .into_inner();
    let answers: Vec<String> = bulk
        .pairs
        .iter()
        .map(|p| match p.response.as_ref().unwrap() {
            pb::check_bulk_permissions_pair::Response::Item(i) => {
                format!("{:?}", i.permissionship())
            }
            pb::check_bulk_permissions_pair::Response::Error(e) => format!("error {}", e.code),
        })
        .collect();
    assert_eq!(
        answers,
        ["HasPermission", "NoPermission", "NoPermission", "error 9"],
        "a failed item carries its own status; the others still answer"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preconditions_gate_writes_and_a_failed_one_writes_nothing() {
    let (server, _) = seeded(RELS).await;
    let mut c = server.permissions().await;
    let must_match_owner = |id: &str| pb::Precondition {
        operation: pb::precondition::Operation::MustMatch as i32,
        filter: Some(pb::RelationshipFilter {
            resource_type: "document".to_string(),
            optional_resource_id: id.to_string(),
            optional_relation: "owner".to_string(),
            ..Default::default()
        }),
    };
    c.write_relationships(pb::WriteRelationshipsRequest {
        updates: vec![update(Operation::Touch, "document:plan#viewer@user:cat")],
        optional_preconditions: vec![must_match_owner("plan")],
        optional_transaction_metadata: None,
    })
    .await
    .unwrap();
    let e = c
        .write_relationships(pb::WriteRelationshipsRequest {
            updates: vec![update(Operation::Touch, "document:memo#viewer@user:dan")],
            optional_preconditions: vec![must_match_owner("memo")],
            optional_transaction_metadata: None,
        })
        .await
        .unwrap_err();
    assert_status(
        &e,
        tonic::Code::FailedPrecondition,
        Some("ERROR_REASON_WRITE_OR_DELETE_PRECONDITION_FAILURE"),
    );
    let info = error_info(&e).unwrap();
    assert_eq!(info.metadata["precondition_resource_id"], "memo");
    assert_eq!(
        info.metadata["precondition_operation"],
        "OPERATION_MUST_MATCH"
    );
    assert_eq!(
        check(&mut c, "document:plan", "view", "user:cat").await,
        Permissionship::HasPermission
    );
    assert_eq!(
        check(&mut c, "document:memo", "view", "user:dan").await,
        Permissionship::NoPermission
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_and_expand() {
    let (server, _) = seeded(RELS).await;
    let mut c = server.permissions().await;
    let mut found: Vec<String> = c
        .lookup_resources(pb::LookupResourcesRequest {
            consistency: full(),
            resource_object_type: "document".to_string(),
            permission: "view".to_string(),
            subject: Some(subj("user", "bob", "")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .map(|r| r.unwrap().resource_object_id)
        .collect()
        .await;
    found.sort();
    assert_eq!(found, ["memo", "plan", "public"]);

    // Paged: one at a time through the cursor.
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page: Vec<pb::LookupResourcesResponse> = c
            .lookup_resources(pb::LookupResourcesRequest {
                consistency: full(),
                resource_object_type: "document".to_string(),
                permission: "view".to_string(),
                subject: Some(subj("user", "bob", "")),
                optional_limit: 1,
                optional_cursor: cursor.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .map(Result::unwrap)
            .collect()
            .await;
        let Some(last) = page.last() else { break };
        cursor = last.after_result_cursor.clone();
        pages.extend(page.into_iter().map(|r| r.resource_object_id));
    }
    assert_eq!(pages, ["memo", "plan", "public"]);

    let subjects: Vec<pb::LookupSubjectsResponse> = c
        .lookup_subjects(pb::LookupSubjectsRequest {
            consistency: full(),
            resource: Some(obj("document", "public")),
            permission: "view".to_string(),
            subject_object_type: "user".to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .map(Result::unwrap)
        .collect()
        .await;
    let wildcard = subjects
        .iter()
        .find(|s| s.subject.as_ref().unwrap().subject_object_id == "*")
        .unwrap();
    let excluded: Vec<&str> = wildcard
        .excluded_subjects
        .iter()
        .map(|s| s.subject_object_id.as_str())
        .collect();
    assert_eq!(excluded, ["mallory"]);

    let tree = c
        .expand_permission_tree(pb::ExpandPermissionTreeRequest {
            consistency: full(),
            resource: Some(obj("document", "plan")),
            permission: "viewer".to_string(),
        })
        .await
        .unwrap()
        .into_inner()
        .tree_root
        .unwrap();
    assert_eq!(tree.expanded_relation, "viewer");
    let Some(pb::permission_relationship_tree::TreeType::Leaf(leaf)) = tree.tree_type else {
        panic!("a relation expands to a leaf: {tree:?}")
    };
    assert_eq!(leaf.subjects, vec![subj("team", "eng", "member")]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_page_deletes_limit_and_tokens_pin_snapshots() {
    let (server, before) = seeded(RELS).await;
    let mut c = server.permissions().await;
    let filter = Some(pb::RelationshipFilter {
        resource_type: "document".to_string(),
        ..Default::default()
    });
    let read = |cursor: Option<pb::Cursor>| pb::ReadRelationshipsRequest {
        consistency: full(),
        relationship_filter: filter.clone(),
        optional_limit: 2,
        optional_cursor: cursor,
    };
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let page: Vec<pb::ReadRelationshipsResponse> = c
            .read_relationships(read(cursor.clone()))
            .await
            .unwrap()
            .into_inner()
            .map(Result::unwrap)
            .collect()
            .await;
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        cursor = page.last().unwrap().after_result_cursor.clone();
        all.extend(page.into_iter().map(|r| r.relationship.unwrap()));
    }
    assert_eq!(all.len(), 5, "{all:?}");

    // A limited delete without partial deletion refuses when more match.
    let delete = |limit: u32, partial: bool| pb::DeleteRelationshipsRequest {
        relationship_filter: filter.clone(),
        optional_limit: limit,
        optional_allow_partial_deletions: partial,
        ..Default::default()
    };
    let e = c.delete_relationships(delete(2, false)).await.unwrap_err();
    assert_status(
        &e,
        tonic::Code::InvalidArgument,
        Some("ERROR_REASON_TOO_MANY_RELATIONSHIPS_FOR_TRANSACTIONAL_DELETE"),
    );
    let partial = c
        .delete_relationships(delete(2, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(partial.relationships_deleted_count, 2);
    assert_eq!(
        partial.deletion_progress(),
        pb::delete_relationships_response::DeletionProgress::Partial
    );
    let rest = c
        .delete_relationships(delete(0, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.relationships_deleted_count, 3);
    assert_eq!(
        rest.deletion_progress(),
        pb::delete_relationships_response::DeletionProgress::Complete
    );

    // The token of the first write still reads the old state; the head does not.
    let mut old = check_request("document:memo", "view", "user:bob");
    old.consistency = at_exact(&before);
    let r = c.check_permission(old).await.unwrap().into_inner();
    assert_eq!(r.permissionship(), Permissionship::HasPermission);
    assert_eq!(r.checked_at.unwrap(), before);
    assert_eq!(
        check(&mut c, "document:memo", "view", "user:bob").await,
        Permissionship::NoPermission
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_changes_after_a_token_and_ends_on_shutdown() {
    let (server, start) = seeded(RELS).await;
    let mut w = server.watch().await;
    let mut stream = w
        .watch(pb::WatchRequest {
            optional_object_types: vec!["team".to_string()],
            optional_start_cursor: Some(start),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut c = server.permissions().await;
    c.write_relationships(pb::WriteRelationshipsRequest {
        updates: vec![
            update(Operation::Touch, "document:new#viewer@user:eve"),
            update(Operation::Touch, "team:ops#member@user:eve"),
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    c.write_relationships(pb::WriteRelationshipsRequest {
        updates: vec![update(Operation::Delete, "team:eng#member@user:bob")],
        ..Default::default()
    })
    .await
    .unwrap();
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let texts: Vec<(i32, String)> = first
        .updates
        .iter()
        .map(|u| {
            (
                u.operation,
                u.relationship
                    .as_ref()
                    .unwrap()
                    .resource
                    .as_ref()
                    .unwrap()
                    .object_id
                    .clone(),
            )
        })
        .collect();
    assert_eq!(
        texts,
        [(Operation::Touch as i32, "ops".to_string())],
        "only team changes"
    );
    let second = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.updates[0].operation, Operation::Delete as i32);
    assert!(second.changes_through.is_some());
    // Shutdown ends the stream (UNAVAILABLE, so clients reconnect elsewhere) and the server stops.
    let stopping = tokio::spawn(server.stop());
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .unwrap();
    match end {
        None => {}
        Some(Err(s)) => assert_eq!(s.code(), tonic::Code::Unavailable, "{s:?}"),
        Some(Ok(r)) => panic!("unexpected watch response {r:?}"),
    }
    stopping.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_import_then_export_in_batches() {
    let (server, _) = seeded(&[]).await;
    let mut c = server.permissions().await;
    let batches: Vec<pb::ImportBulkRelationshipsRequest> = (0..3)
        .map(|b| pb::ImportBulkRelationshipsRequest {
            relationships: (0..400)
                .map(|i| rel(&format!("document:d{b}_{i}#viewer@user:u{i}")))
                .collect(),
        })
        .collect();
    let loaded = c
        .import_bulk_relationships(futures::stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(loaded.num_loaded, 1200);
    let pages: Vec<pb::ExportBulkRelationshipsResponse> = c
        .export_bulk_relationships(pb::ExportBulkRelationshipsRequest {
            consistency: full(),
            optional_limit: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(
        pages
            .iter()
            .map(|p| p.relationships.len())
            .collect::<Vec<_>>(),
        [500, 500, 200]
    );
    // Resuming from the first page's cursor gives the rest.
    let rest: usize = c
        .export_bulk_relationships(pb::ExportBulkRelationshipsRequest {
            optional_limit: 1000,
            optional_cursor: pages[0].after_result_cursor.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .map(|p| p.unwrap().relationships.len())
        .collect::<Vec<_>>()
        .await
        .iter()
        .sum();
    assert_eq!(rest, 700);
    // An import that repeats a stored relationship loads nothing.
    let again = vec![pb::ImportBulkRelationshipsRequest {
        relationships: vec![
            rel("document:fresh#viewer@user:x"),
            rel("document:d0_0#viewer@user:u0"),
        ],
    }];
    let e = c
        .import_bulk_relationships(futures::stream::iter(again))
        .await
        .unwrap_err();
    assert_status(
        &e,
        tonic::Code::AlreadyExists,
        Some("ERROR_REASON_ATTEMPT_TO_RECREATE_RELATIONSHIP"),
    );
    assert_eq!(
        check(&mut c, "document:fresh", "view", "user:x").await,
        Permissionship::NoPermission
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_needs_no_key_but_the_api_does() {
    let server = TestServer::start().await;
    let channel = server.channel().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "authzed.api.v1.PermissionsService".to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    let mut bare = pb::schema_service_client::SchemaServiceClient::new(channel.clone());
    let e = bare
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap_err();
    assert_status(&e, tonic::Code::Unauthenticated, None);
    let wrong = |mut r: tonic::Request<()>| -> Result<tonic::Request<()>, tonic::Status> {
        r.metadata_mut()
            .insert("authorization", "Bearer not-the-key".parse().unwrap());
        Ok(r)
    };
    let mut wrong =
        pb::schema_service_client::SchemaServiceClient::with_interceptor(channel, wrong);
    let e = wrong
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap_err();
    assert_status(&e, tonic::Code::Unauthenticated, None);
    // With the key: no schema yet is NOT_FOUND, as in SpiceDB.
    let e = server
        .schema()
        .await
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap_err();
    assert_status(&e, tonic::Code::NotFound, None);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services_without_a_key() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let server = TestServer::start().await;
    let mut client = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = client
        .server_reflection_info(futures::stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply {reply:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for wanted in [
        "authzed.api.v1.PermissionsService",
        "authzed.api.v1.SchemaService",
        "authzed.api.v1.WatchService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} not in {names:?}"
        );
    }
    server.stop().await;
}
