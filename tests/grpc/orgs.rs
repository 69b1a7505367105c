//! Organizations through the real server: isolation of org-scoped credentials across every
//! OrganizationService method and the relationship APIs (each attempt PERMISSION_DENIED and
//! nothing changed, compared by export and audit head), re-parenting with access following
//! the new parent from the move's revision, and one audit entry per committed change with the
//! right actor and source — on the memory and the RocksDB datastore.

use std::collections::BTreeSet;

use apb::audit_service_client::AuditServiceClient;
use apb::impersonation_service_client::ImpersonationServiceClient;
use apb::organization_service_client::OrganizationServiceClient;
use arbor::api::grpc::proto::arbor::v1 as apb;
use arbor::api::grpc::proto::authzed::api::v1 as pb;
use arbor::server::Engine;
use pb::permissions_service_client::PermissionsServiceClient;
use pb::relationship_update::Operation;
use pb::schema_service_client::SchemaServiceClient;
use pb::watch_service_client::WatchServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::harness::{KEY, TestServer, at_exact, check_request, full, update};

const SUPPORT_KEY: &str = "grpc-test-support-key";

/// Sends `authorization: Bearer <token>`.
#[derive(Clone)]
struct Bearer(String);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        r.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", self.0).parse().unwrap(),
        );
        Ok(r)
    }
}

type Svc = InterceptedService<Channel, Bearer>;

/// Every client of one caller.
struct As {
    orgs: OrganizationServiceClient<Svc>,
    perms: PermissionsServiceClient<Svc>,
    schema: SchemaServiceClient<Svc>,
    watch: WatchServiceClient<Svc>,
    audit: AuditServiceClient<Svc>,
    imp: ImpersonationServiceClient<Svc>,
}

async fn as_token(server: &TestServer, token: &str) -> As {
    let ch = server.channel().await;
    let b = Bearer(token.to_string());
    As {
        orgs: OrganizationServiceClient::with_interceptor(ch.clone(), b.clone()),
        perms: PermissionsServiceClient::with_interceptor(ch.clone(), b.clone()),
        schema: SchemaServiceClient::with_interceptor(ch.clone(), b.clone()),
        watch: WatchServiceClient::with_interceptor(ch.clone(), b.clone()),
        audit: AuditServiceClient::with_interceptor(ch.clone(), b.clone()),
        imp: ImpersonationServiceClient::with_interceptor(ch, b),
    }
}

/// The prelude schema from the project's example file.
fn prelude_schema() -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema-examples/org-hierarchy.yaml"
    ))
    .unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    doc["schema"].as_str().unwrap().to_string()
}

async fn start(engine: Engine) -> (TestServer, Option<tempfile::TempDir>) {
    let dir = (engine == Engine::Rocksdb).then(|| tempfile::tempdir().unwrap());
    let data_dir = dir.as_ref().map(|d| d.path().join("data"));
    let server = TestServer::start_with(|o| {
        o.engine = Some(engine);
        o.data_dir = data_dir;
        o.support_keys = vec![SUPPORT_KEY.to_string()];
    })
    .await;
    (server, dir)
}

async fn create_org(
    c: &mut As,
    id: &str,
    parent: &str,
) -> Result<apb::Organization, tonic::Status> {
    c.orgs
        .create_organization(apb::CreateOrganizationRequest {
            id: id.to_string(),
            parent: parent.to_string(),
            display_name: format!("Org {id}"),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().organization.unwrap())
}

async fn create_user(c: &mut As, id: &str) {
    c.orgs
        .create_user(apb::CreateUserRequest {
            id: id.to_string(),
            display_name: id.to_string(),
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn add(c: &mut As, org: &str, user: &str, role: apb::Role) -> Result<(), tonic::Status> {
    c.orgs
        .add_member(apb::AddMemberRequest {
            organization: org.to_string(),
            user: user.to_string(),
            role: role as i32,
            reason: String::new(),
        })
        .await
        .map(|_| ())
}

async fn credential(c: &mut As, org: &str) -> (apb::Credential, String) {
    let r = c
        .orgs
        .create_credential(apb::CreateCredentialRequest {
            organization: org.to_string(),
            name: format!("{org} automation"),
            reason: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    (r.credential.unwrap(), r.secret)
}

async fn write(c: &mut As, op: Operation, rels: &[&str]) -> Result<pb::ZedToken, tonic::Status> {
    c.perms
        .write_relationships(pb::WriteRelationshipsRequest {
            updates: rels.iter().map(|r| update(op, r)).collect(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().written_at.unwrap())
}

/// Every relationship, as text, sorted.
async fn export(c: &mut As) -> BTreeSet<String> {
    let mut stream = c
        .perms
        .export_bulk_relationships(pb::ExportBulkRelationshipsRequest {
            consistency: full(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut out = BTreeSet::new();
    while let Some(batch) = stream.message().await.unwrap() {
        for r in batch.relationships {
            let o = r.resource.unwrap();
            let s = r.subject.unwrap();
            let so = s.object.unwrap();
            let rel = if s.optional_relation.is_empty() {
                String::new()
            } else {
                format!("#{}", s.optional_relation)
            };
            out.insert(format!(
                "{}:{}#{}@{}:{}{rel}",
                o.object_type, o.object_id, r.relation, so.object_type, so.object_id
            ));
        }
    }
    out
}

/// Every audit entry, oldest first.
async fn audit_entries(c: &mut As) -> Vec<apb::AuditEntry> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .audit
            .query_audit(apb::QueryAuditRequest {
                page_size: 1000,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        out.extend(page.entries);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

async fn allowed(c: &mut As, resource: &str, permission: &str, subject: &str) -> bool {
    let r = c
        .perms
        .check_permission(check_request(resource, permission, subject))
        .await
        .unwrap()
        .into_inner();
    r.permissionship == pb::check_permission_response::Permissionship::HasPermission as i32
}

/// The tree: platform → acme (→ acme_emea, acme_us), globex; documents owned by each.
async fn seed(platform: &mut As) {
    platform
        .schema
        .write_schema(pb::WriteSchemaRequest {
            schema: prelude_schema(),
        })
        .await
        .unwrap();
    create_org(platform, "acme", "").await.unwrap();
    create_org(platform, "acme_emea", "acme").await.unwrap();
    create_org(platform, "acme_us", "acme").await.unwrap();
    create_org(platform, "globex", "").await.unwrap();
    for u in ["alice", "erin", "uma", "gina", "lena"] {
        create_user(platform, u).await;
    }
    add(platform, "acme", "alice", apb::Role::Admin)
        .await
        .unwrap();
    add(platform, "acme_emea", "erin", apb::Role::Admin)
        .await
        .unwrap();
    add(platform, "acme_us", "uma", apb::Role::Admin)
        .await
        .unwrap();
    add(platform, "globex", "gina", apb::Role::Admin)
        .await
        .unwrap();
    write(
        platform,
        Operation::Touch,
        &[
            "document:emea_doc#org@organization:acme_emea",
            "document:us_doc#org@organization:acme_us",
            "document:acme_doc#org@organization:acme",
            "document:g_doc#org@organization:globex",
            "team:globex_legal#org@organization:globex",
            "team:globex_legal#member@user:lena",
        ],
    )
    .await
    .unwrap();
}

#[track_caller]
fn denied<T: std::fmt::Debug>(what: &str, r: Result<T, tonic::Status>) {
    match r {
        Err(s) => assert_eq!(
            s.code(),
            tonic::Code::PermissionDenied,
            "{what}: expected PERMISSION_DENIED, got {s:?}"
        ),
        Ok(v) => panic!("{what}: expected PERMISSION_DENIED, got {v:?}"),
    }
}

/// Drains a server stream, returning its first error.
async fn stream_result<T>(
    r: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>,
) -> Result<Vec<T>, tonic::Status> {
    let mut s = r?.into_inner();
    let mut out = Vec::new();
    while let Some(m) = s.message().await? {
        out.push(m);
    }
    Ok(out)
}

async fn isolation(engine: Engine) {
    let (server, _dir) = start(engine).await;
    let mut platform = as_token(&server, KEY).await;
    seed(&mut platform).await;
    let (_, emea_token) = credential(&mut platform, "acme_emea").await;
    let (acme_cred, acme_token) = credential(&mut platform, "acme").await;
    let (_, us_token) = credential(&mut platform, "acme_us").await;
    let invite_us = platform
        .orgs
        .create_invitation(apb::CreateInvitationRequest {
            organization: "acme_us".to_string(),
            user: "gina".to_string(),
            role: apb::Role::Member as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .invitation
        .unwrap();
    let _ = us_token;

    let before = export(&mut platform).await;
    let audit_before = audit_entries(&mut platform).await.len();
    let mut emea = as_token(&server, &emea_token).await;

    // OrganizationService, every method, against a sibling (acme_us), the parent (acme), and
    // another customer (globex).
    for org in ["acme_us", "acme", "globex"] {
        denied(
            &format!("GetOrganization {org}"),
            emea.orgs
                .get_organization(apb::GetOrganizationRequest {
                    id: org.to_string(),
                })
                .await,
        );
        denied(
            &format!("UpdateOrganization {org}"),
            emea.orgs
                .update_organization(apb::UpdateOrganizationRequest {
                    id: org.to_string(),
                    update_mask: vec!["display_name".to_string()],
                    display_name: "hijacked".to_string(),
                    ..Default::default()
                })
                .await,
        );
        denied(
            &format!("DeleteOrganization {org}"),
            emea.orgs
                .delete_organization(apb::DeleteOrganizationRequest {
                    id: org.to_string(),
                    cascade: true,
                    ..Default::default()
                })
                .await,
        );
        denied(
            &format!("CreateOrganization under {org}"),
            create_org(&mut emea, &format!("{org}_x"), org).await,
        );
        denied(
            &format!("ListOrganizations under {org}"),
            emea.orgs
                .list_organizations(apb::ListOrganizationsRequest {
                    under: org.to_string(),
                    subtree: true,
                    ..Default::default()
                })
                .await,
        );
        denied(
            &format!("AddMember {org}"),
            add(&mut emea, org, "erin", apb::Role::Admin).await,
        );
        denied(
            &format!("RemoveMember {org}"),
            emea.orgs
                .remove_member(apb::RemoveMemberRequest {
                    organization: org.to_string(),
                    user: "alice".to_string(),
                    role: apb::Role::Admin as i32,
                    ..Default::default()
                })
                .await,
        );
        denied(
            &format!("ListMembers {org}"),
            emea.orgs
                .list_members(apb::ListMembersRequest {
                    organization: org.to_string(),
                    role: apb::Role::Admin as i32,
                    ..Default::default()
                })
                .await,
        );
        denied(
            &format!("CreateInvitation {org}"),
            emea.orgs
                .create_invitation(apb::CreateInvitationRequest {
                    organization: org.to_string(),
                    user: "erin".to_string(),
                    role: apb::Role::Admin as i32,
                    ..Default::default()
                })
                .await,
        );
        denied(
            &format!("ListInvitations {org}"),
            emea.orgs
                .list_invitations(apb::ListInvitationsRequest {
                    organization: org.to_string(),
                    ..Default::default()
                })
                .await,
        );
        denied(
            &format!("CreateCredential {org}"),
            emea.orgs
                .create_credential(apb::CreateCredentialRequest {
                    organization: org.to_string(),
                    name: "stolen".to_string(),
                    ..Default::default()
                })
                .await,
        );
        denied(
            &format!("ListCredentials {org}"),
            emea.orgs
                .list_credentials(apb::ListCredentialsRequest {
                    organization: org.to_string(),
                    ..Default::default()
                })
                .await,
        );
        denied(
            &format!("QueryAudit {org}"),
            emea.audit
                .query_audit(apb::QueryAuditRequest {
                    organization: org.to_string(),
                    ..Default::default()
                })
                .await,
        );
    }
    denied(
        "CreateOrganization root",
        create_org(&mut emea, "rogue", "").await,
    );
    denied(
        "MoveOrganization sibling under self",
        emea.orgs
            .move_organization(apb::MoveOrganizationRequest {
                id: "acme_us".to_string(),
                new_parent: "acme_emea".to_string(),
                ..Default::default()
            })
            .await,
    );
    denied(
        "MoveOrganization self out from under its parent",
        emea.orgs
            .move_organization(apb::MoveOrganizationRequest {
                id: "acme_emea".to_string(),
                new_parent: "globex".to_string(),
                ..Default::default()
            })
            .await,
    );
    denied(
        "DeleteOrganization self",
        emea.orgs
            .delete_organization(apb::DeleteOrganizationRequest {
                id: "acme_emea".to_string(),
                ..Default::default()
            })
            .await,
    );
    denied(
        "RevokeCredential of the parent",
        emea.orgs
            .revoke_credential(apb::RevokeCredentialRequest {
                id: acme_cred.id.clone(),
                ..Default::default()
            })
            .await,
    );
    denied(
        "RevokeInvitation of a sibling",
        emea.orgs
            .revoke_invitation(apb::RevokeInvitationRequest {
                id: invite_us.id.clone(),
                ..Default::default()
            })
            .await,
    );
    denied(
        "GetUser of another customer",
        emea.orgs
            .get_user(apb::GetUserRequest {
                id: "gina".to_string(),
            })
            .await,
    );
    denied(
        "OpenSession",
        emea.imp
            .open_session(apb::OpenSessionRequest {
                user: "alice".to_string(),
                reason: "curious".to_string(),
                ttl_seconds: 60,
            })
            .await,
    );
    denied(
        "ListSessions",
        emea.imp
            .list_sessions(apb::ListSessionsRequest::default())
            .await,
    );
    denied(
        "VerifyAudit",
        emea.audit.verify_audit(apb::VerifyAuditRequest {}).await,
    );

    // The relationship APIs.
    for rels in [
        vec!["document:us_doc#viewer@user:erin"],
        vec!["document:acme_doc#viewer@user:erin"],
        vec!["document:g_doc#viewer@user:erin"],
        vec!["organization:acme_us#admin@user:erin"],
        vec!["organization:acme#admin@user:erin"],
        vec!["organization:acme_emea#parent@organization:globex"],
        vec!["organization:acme_emea#platform@platform:saas"],
        vec!["document:new_doc#org@organization:acme_us"],
        vec!["document:orphan#viewer@user:erin"],
        vec!["team:globex_legal#member@user:erin"],
        // Claiming a sibling's document for itself.
        vec!["document:us_doc#org@organization:acme_emea"],
    ] {
        denied(
            &format!("WriteRelationships {rels:?}"),
            write(&mut emea, Operation::Touch, &rels).await,
        );
    }
    denied(
        "a precondition probing a sibling's document",
        emea.perms
            .write_relationships(pb::WriteRelationshipsRequest {
                updates: vec![update(
                    Operation::Touch,
                    "document:emea_doc#viewer@user:erin",
                )],
                optional_preconditions: vec![pb::Precondition {
                    operation: pb::precondition::Operation::MustMatch as i32,
                    filter: Some(pb::RelationshipFilter {
                        resource_type: "document".to_string(),
                        optional_resource_id: "us_doc".to_string(),
                        ..Default::default()
                    }),
                }],
                ..Default::default()
            })
            .await,
    );
    denied(
        "WriteRelationships delete of the parent link",
        write(
            &mut emea,
            Operation::Delete,
            &["organization:acme_emea#parent@organization:acme"],
        )
        .await,
    );
    denied(
        "DeleteRelationships of a sibling's document",
        emea.perms
            .delete_relationships(pb::DeleteRelationshipsRequest {
                relationship_filter: Some(pb::RelationshipFilter {
                    resource_type: "document".to_string(),
                    optional_resource_id: "us_doc".to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await,
    );
    denied(
        "DeleteRelationships of every document",
        emea.perms
            .delete_relationships(pb::DeleteRelationshipsRequest {
                relationship_filter: Some(pb::RelationshipFilter {
                    resource_type: "document".to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await,
    );
    for resource in [
        "document:us_doc",
        "document:acme_doc",
        "organization:acme",
        "organization:acme_us",
    ] {
        let permission = if resource.starts_with("document") {
            "view"
        } else {
            "administer"
        };
        denied(
            &format!("CheckPermission {resource}"),
            emea.perms
                .check_permission(check_request(resource, permission, "user:erin"))
                .await,
        );
        let (t, id) = resource.split_once(':').unwrap();
        denied(
            &format!("ExpandPermissionTree {resource}"),
            emea.perms
                .expand_permission_tree(pb::ExpandPermissionTreeRequest {
                    consistency: full(),
                    resource: Some(super::harness::obj(t, id)),
                    permission: permission.to_string(),
                })
                .await,
        );
        denied(
            &format!("LookupSubjects {resource}"),
            stream_result(
                emea.perms
                    .lookup_subjects(pb::LookupSubjectsRequest {
                        consistency: full(),
                        resource: Some(super::harness::obj(t, id)),
                        permission: permission.to_string(),
                        subject_object_type: "user".to_string(),
                        ..Default::default()
                    })
                    .await,
            )
            .await,
        );
    }
    denied(
        "WriteSchema",
        emea.schema
            .write_schema(pb::WriteSchemaRequest {
                schema: prelude_schema(),
            })
            .await,
    );
    denied(
        "ImportBulkRelationships",
        emea.perms
            .import_bulk_relationships(tokio_stream::iter(vec![
                pb::ImportBulkRelationshipsRequest {
                    relationships: vec![super::harness::rel("document:emea_doc#viewer@user:erin")],
                },
            ]))
            .await,
    );
    denied(
        "Watch",
        stream_result(emea.watch.watch(pb::WatchRequest::default()).await).await,
    );

    // Reads and lookups see only the caller's subtree.
    let read = stream_result(
        emea.perms
            .read_relationships(pb::ReadRelationshipsRequest {
                consistency: full(),
                relationship_filter: Some(pb::RelationshipFilter {
                    resource_type: "document".to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await,
    )
    .await
    .unwrap();
    let seen: BTreeSet<String> = read
        .iter()
        .map(|r| {
            r.relationship
                .as_ref()
                .unwrap()
                .resource
                .as_ref()
                .unwrap()
                .object_id
                .clone()
        })
        .collect();
    assert_eq!(seen, BTreeSet::from(["emea_doc".to_string()]));
    // Lookups list only resources in scope (alice, an acme admin, may view every document).
    let mut looked = stream_result(
        emea.perms
            .lookup_resources(pb::LookupResourcesRequest {
                consistency: full(),
                resource_object_type: "document".to_string(),
                permission: "view".to_string(),
                subject: Some(super::harness::subj("user", "alice", "")),
                ..Default::default()
            })
            .await,
    )
    .await
    .unwrap()
    .into_iter()
    .map(|r| r.resource_object_id)
    .collect::<Vec<_>>();
    looked.sort();
    assert_eq!(looked, vec!["emea_doc".to_string()]);
    let everything = stream_result(
        platform
            .perms
            .lookup_resources(pb::LookupResourcesRequest {
                consistency: full(),
                resource_object_type: "document".to_string(),
                permission: "view".to_string(),
                subject: Some(super::harness::subj("user", "alice", "")),
                ..Default::default()
            })
            .await,
    )
    .await
    .unwrap();
    assert_eq!(
        everything.len(),
        3,
        "the platform sees acme's three documents"
    );
    // Bulk checks answer PERMISSION_DENIED per item outside the scope.
    let bulk = emea
        .perms
        .check_bulk_permissions(pb::CheckBulkPermissionsRequest {
            consistency: full(),
            items: ["emea_doc", "us_doc", "g_doc"]
                .iter()
                .map(|d| pb::CheckBulkPermissionsRequestItem {
                    resource: Some(super::harness::obj("document", d)),
                    permission: "view".to_string(),
                    subject: Some(super::harness::subj("user", "alice", "")),
                    context: None,
                })
                .collect(),
            with_tracing: false,
        })
        .await
        .unwrap()
        .into_inner();
    let verdicts: Vec<Option<i32>> = bulk
        .pairs
        .iter()
        .map(|p| match p.response.as_ref().unwrap() {
            pb::check_bulk_permissions_pair::Response::Item(i) => Some(i.permissionship),
            pb::check_bulk_permissions_pair::Response::Error(e) => {
                assert_eq!(e.code, tonic::Code::PermissionDenied as i32, "{e:?}");
                None
            }
        })
        .collect();
    assert_eq!(
        verdicts,
        vec![
            Some(pb::check_permission_response::Permissionship::HasPermission as i32),
            None,
            None
        ]
    );
    let exported = stream_result(
        emea.perms
            .export_bulk_relationships(pb::ExportBulkRelationshipsRequest {
                consistency: full(),
                ..Default::default()
            })
            .await,
    )
    .await
    .unwrap();
    for batch in exported {
        for r in batch.relationships {
            let res = r.resource.unwrap();
            assert!(
                res.object_id.starts_with("acme_emea") || res.object_id == "emea_doc",
                "export leaked {}:{}",
                res.object_type,
                res.object_id
            );
        }
    }

    // Nothing changed: the same relationships and not one audit entry more.
    assert_eq!(export(&mut platform).await, before);
    assert_eq!(audit_entries(&mut platform).await.len(), audit_before);

    // Inside its subtree the credential works, and may share with another org's team.
    create_org(&mut emea, "acme_emea_de", "acme_emea")
        .await
        .unwrap();
    add(&mut emea, "acme_emea", "lena", apb::Role::Member)
        .await
        .unwrap();
    write(
        &mut emea,
        Operation::Touch,
        &[
            "document:emea_plan#org@organization:acme_emea",
            "document:emea_plan#viewer@team:globex_legal#member",
        ],
    )
    .await
    .unwrap();
    assert!(allowed(&mut emea, "document:emea_plan", "view", "user:lena").await);
    assert!(
        allowed(
            &mut emea,
            "organization:acme_emea_de",
            "administer",
            "user:erin"
        )
        .await
    );

    // The parent's credential reaches down into both divisions.
    let mut acme = as_token(&server, &acme_token).await;
    assert!(allowed(&mut acme, "document:us_doc", "view", "user:alice").await);
    add(&mut acme, "acme_us", "erin", apb::Role::Member)
        .await
        .unwrap();

    // A sub-org's credential cannot reach its parent.
    let (_, de_token) = credential(&mut platform, "acme_emea_de").await;
    let mut de = as_token(&server, &de_token).await;
    denied(
        "sub-org GetOrganization parent",
        de.orgs
            .get_organization(apb::GetOrganizationRequest {
                id: "acme_emea".to_string(),
            })
            .await,
    );
    denied(
        "sub-org CheckPermission parent document",
        de.perms
            .check_permission(check_request("document:emea_doc", "view", "user:erin"))
            .await,
    );

    // A revoked credential no longer authenticates.
    platform
        .orgs
        .revoke_credential(apb::RevokeCredentialRequest {
            id: acme_cred.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let err = acme
        .orgs
        .get_organization(apb::GetOrganizationRequest {
            id: "acme".to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    server.stop().await;
}

#[tokio::test]
async fn org_credentials_are_isolated_on_memory() {
    isolation(Engine::Memory).await;
}

#[tokio::test]
async fn org_credentials_are_isolated_on_rocksdb() {
    isolation(Engine::Rocksdb).await;
}

#[tokio::test]
async fn a_move_reparents_access_from_its_revision_and_is_audited() {
    let (server, _dir) = start(Engine::Rocksdb).await;
    let mut platform = as_token(&server, KEY).await;
    seed(&mut platform).await;
    let (_, emea_token) = credential(&mut platform, "acme_emea").await;
    let mut emea = as_token(&server, &emea_token).await;

    assert!(
        !allowed(
            &mut platform,
            "organization:acme_us",
            "administer",
            "user:erin"
        )
        .await
    );
    assert!(!allowed(&mut platform, "document:us_doc", "view", "user:erin").await);
    denied(
        "emea credential on acme_us before the move",
        emea.orgs
            .get_organization(apb::GetOrganizationRequest {
                id: "acme_us".to_string(),
            })
            .await,
    );
    let before_move = write(
        &mut platform,
        Operation::Touch,
        &["document:marker#org@organization:acme"],
    )
    .await
    .unwrap();

    let moved = platform
        .orgs
        .move_organization(apb::MoveOrganizationRequest {
            id: "acme_us".to_string(),
            new_parent: "acme_emea".to_string(),
            reason: "regional restructuring".to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.organization.as_ref().unwrap().parent, "acme_emea");
    let at_move = moved.written_at.unwrap();

    // From the move's revision on, erin (admin of acme_emea) administers acme_us and its docs.
    let mut check = check_request("organization:acme_us", "administer", "user:erin");
    check.consistency = at_exact(&at_move);
    let r = platform
        .perms
        .check_permission(check)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.permissionship,
        pb::check_permission_response::Permissionship::HasPermission as i32
    );
    assert!(allowed(&mut platform, "document:us_doc", "view", "user:erin").await);
    // Still the parent's admin.
    assert!(allowed(&mut platform, "document:us_doc", "view", "user:alice").await);
    // Before the move it was not so.
    let mut old = check_request("organization:acme_us", "administer", "user:erin");
    old.consistency = at_exact(&before_move);
    let r = platform
        .perms
        .check_permission(old)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.permissionship,
        pb::check_permission_response::Permissionship::NoPermission as i32
    );
    // The emea credential now reaches acme_us.
    emea.orgs
        .get_organization(apb::GetOrganizationRequest {
            id: "acme_us".to_string(),
        })
        .await
        .unwrap();

    // A move under its own subtree is refused.
    let cycle = platform
        .orgs
        .move_organization(apb::MoveOrganizationRequest {
            id: "acme_emea".to_string(),
            new_parent: "acme_us".to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(cycle.code(), tonic::Code::FailedPrecondition, "{cycle:?}");

    // The move is one audit entry, at the move's revision, with the relationship changes.
    let entries = audit_entries(&mut platform).await;
    let moves: Vec<_> = entries
        .iter()
        .filter(|e| e.action.contains("move"))
        .collect();
    assert_eq!(moves.len(), 1, "{moves:?}");
    let m = moves[0];
    assert_eq!(
        m.principal,
        format!("platform-key:{}", arbor::api::auth::key_id(KEY))
    );
    assert_eq!(m.source, "admin");
    assert_eq!(m.reason, "regional restructuring");
    let changes: BTreeSet<(String, String)> = m
        .changes
        .iter()
        .map(|c| (c.operation.clone(), c.relationship.clone()))
        .collect();
    assert!(
        changes.contains(&(
            "delete".to_string(),
            "organization:acme_us#parent@organization:acme".to_string()
        )),
        "{changes:?}"
    );
    assert!(
        changes.contains(&(
            "touch".to_string(),
            "organization:acme_us#parent@organization:acme_emea".to_string()
        )),
        "{changes:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn every_committed_change_leaves_one_audit_entry_with_its_actor_and_source() {
    let (server, _dir) = start(Engine::Rocksdb).await;
    let mut platform = as_token(&server, KEY).await;
    let platform_id = format!("platform-key:{}", arbor::api::auth::key_id(KEY));
    let support_id = format!("platform-key:{}", arbor::api::auth::key_id(SUPPORT_KEY));
    let mut seen = audit_entries(&mut platform).await.len();
    assert_eq!(seen, 0);

    /// Asserts exactly one new entry and returns it.
    async fn one_more(platform: &mut As, seen: &mut usize, what: &str) -> apb::AuditEntry {
        let entries = audit_entries(platform).await;
        assert_eq!(entries.len(), *seen + 1, "{what}: {:?}", &entries[*seen..]);
        *seen += 1;
        entries.last().unwrap().clone()
    }

    platform
        .schema
        .write_schema(pb::WriteSchemaRequest {
            schema: prelude_schema(),
        })
        .await
        .unwrap();
    let e = one_more(&mut platform, &mut seen, "WriteSchema").await;
    assert_eq!(
        (e.principal.as_str(), e.source.as_str()),
        (platform_id.as_str(), "api")
    );

    create_org(&mut platform, "acme", "").await.unwrap();
    let e = one_more(&mut platform, &mut seen, "CreateOrganization").await;
    assert_eq!(
        (e.principal.as_str(), e.source.as_str()),
        (platform_id.as_str(), "admin")
    );
    assert!(e.organizations.contains(&"acme".to_string()));
    create_org(&mut platform, "acme_emea", "acme")
        .await
        .unwrap();
    one_more(&mut platform, &mut seen, "CreateOrganization child").await;
    create_org(&mut platform, "acme_us", "acme").await.unwrap();
    one_more(&mut platform, &mut seen, "CreateOrganization child").await;

    platform
        .orgs
        .update_organization(apb::UpdateOrganizationRequest {
            id: "acme".to_string(),
            update_mask: vec!["display_name".to_string()],
            display_name: "Acme Corp".to_string(),
            ..Default::default()
        })
        .await
        .unwrap();
    one_more(&mut platform, &mut seen, "UpdateOrganization").await;

    for u in ["alice", "bob"] {
        create_user(&mut platform, u).await;
        one_more(&mut platform, &mut seen, "CreateUser").await;
    }
    add(&mut platform, "acme", "alice", apb::Role::Admin)
        .await
        .unwrap();
    let e = one_more(&mut platform, &mut seen, "AddMember").await;
    assert!(e.subjects.contains(&"user:alice".to_string()), "{e:?}");
    platform
        .orgs
        .remove_member(apb::RemoveMemberRequest {
            organization: "acme".to_string(),
            user: "alice".to_string(),
            role: apb::Role::Admin as i32,
            reason: "left the company".to_string(),
        })
        .await
        .unwrap();
    let e = one_more(&mut platform, &mut seen, "RemoveMember").await;
    assert_eq!(e.reason, "left the company");

    let inv = platform
        .orgs
        .create_invitation(apb::CreateInvitationRequest {
            organization: "acme_emea".to_string(),
            user: "bob".to_string(),
            role: apb::Role::Member as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let e = one_more(&mut platform, &mut seen, "CreateInvitation").await;
    assert!(
        !format!("{e:?}").contains(&inv.token),
        "the token must not be audited"
    );
    // The wrong user cannot accept it, and a refusal writes nothing.
    let wrong = platform
        .orgs
        .accept_invitation(apb::AcceptInvitationRequest {
            token: inv.token.clone(),
            user: "alice".to_string(),
        })
        .await
        .unwrap_err();
    assert_ne!(wrong.code(), tonic::Code::Ok);
    assert_eq!(audit_entries(&mut platform).await.len(), seen);
    platform
        .orgs
        .accept_invitation(apb::AcceptInvitationRequest {
            token: inv.token.clone(),
            user: "bob".to_string(),
        })
        .await
        .unwrap();
    one_more(&mut platform, &mut seen, "AcceptInvitation").await;
    assert!(
        allowed(
            &mut platform,
            "organization:acme_emea",
            "membership",
            "user:bob"
        )
        .await
    );
    // One-time: a second accept fails.
    assert!(
        platform
            .orgs
            .accept_invitation(apb::AcceptInvitationRequest {
                token: inv.token.clone(),
                user: "bob".to_string(),
            })
            .await
            .is_err()
    );
    let inv2 = platform
        .orgs
        .create_invitation(apb::CreateInvitationRequest {
            organization: "acme_us".to_string(),
            user: "bob".to_string(),
            role: apb::Role::Admin as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    one_more(&mut platform, &mut seen, "CreateInvitation").await;
    platform
        .orgs
        .revoke_invitation(apb::RevokeInvitationRequest {
            id: inv2.invitation.unwrap().id,
            ..Default::default()
        })
        .await
        .unwrap();
    one_more(&mut platform, &mut seen, "RevokeInvitation").await;

    let (cred, secret) = credential(&mut platform, "acme_emea").await;
    let e = one_more(&mut platform, &mut seen, "CreateCredential").await;
    assert!(
        !format!("{e:?}").contains(&secret),
        "the secret must not be audited"
    );

    // A relationship write through the org credential is recorded as that credential.
    let mut emea = as_token(&server, &secret).await;
    write(
        &mut emea,
        Operation::Touch,
        &[
            "document:d1#org@organization:acme_emea",
            "document:d1#viewer@user:bob",
        ],
    )
    .await
    .unwrap();
    let e = one_more(&mut platform, &mut seen, "WriteRelationships").await;
    assert_eq!(e.principal, format!("credential:{}", cred.id));
    assert_eq!(e.source, "api");
    assert_eq!(e.changes.len(), 2);
    assert!(e.organizations.contains(&"acme_emea".to_string()), "{e:?}");

    emea.perms
        .delete_relationships(pb::DeleteRelationshipsRequest {
            relationship_filter: Some(pb::RelationshipFilter {
                resource_type: "document".to_string(),
                optional_resource_id: "d1".to_string(),
                optional_relation: "viewer".to_string(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let e = one_more(&mut platform, &mut seen, "DeleteRelationships").await;
    assert_eq!(e.changes.len(), 1);
    assert_eq!(e.changes[0].operation, "delete");

    platform
        .perms
        .import_bulk_relationships(tokio_stream::iter(vec![
            pb::ImportBulkRelationshipsRequest {
                relationships: (0..50)
                    .map(|i| {
                        super::harness::rel(&format!("document:bulk{i}#org@organization:acme"))
                    })
                    .collect(),
            },
        ]))
        .await
        .unwrap();
    let e = one_more(&mut platform, &mut seen, "ImportBulkRelationships").await;
    assert_eq!(
        e.details.get("loaded").map(String::as_str),
        Some("50"),
        "{e:?}"
    );

    platform
        .orgs
        .move_organization(apb::MoveOrganizationRequest {
            id: "acme_us".to_string(),
            new_parent: "acme_emea".to_string(),
            ..Default::default()
        })
        .await
        .unwrap();
    one_more(&mut platform, &mut seen, "MoveOrganization").await;

    // Impersonation: only a support key opens a session, with a reason; what happens inside is
    // recorded with who initiated it and on whose behalf.
    add(&mut platform, "acme_emea", "alice", apb::Role::Admin)
        .await
        .unwrap();
    one_more(&mut platform, &mut seen, "AddMember").await;
    denied(
        "OpenSession with a plain platform key",
        platform
            .imp
            .open_session(apb::OpenSessionRequest {
                user: "alice".to_string(),
                reason: "ticket 42".to_string(),
                ttl_seconds: 600,
            })
            .await,
    );
    let mut support = as_token(&server, SUPPORT_KEY).await;
    let no_reason = support
        .imp
        .open_session(apb::OpenSessionRequest {
            user: "alice".to_string(),
            reason: "  ".to_string(),
            ttl_seconds: 600,
        })
        .await
        .unwrap_err();
    assert_eq!(no_reason.code(), tonic::Code::InvalidArgument);
    let opened = support
        .imp
        .open_session(apb::OpenSessionRequest {
            user: "alice".to_string(),
            reason: "ticket 42".to_string(),
            ttl_seconds: 600,
        })
        .await
        .unwrap()
        .into_inner();
    let e = one_more(&mut platform, &mut seen, "OpenSession").await;
    assert_eq!(e.principal, support_id);
    let session = opened.session.unwrap();
    let mut as_alice = as_token(&server, &opened.token).await;
    write(
        &mut as_alice,
        Operation::Touch,
        &["document:d2#org@organization:acme_emea"],
    )
    .await
    .unwrap();
    let e = one_more(&mut platform, &mut seen, "write in a session").await;
    assert_eq!(e.principal, format!("session:{}", session.id));
    assert_eq!(e.on_behalf_of, "user:alice");
    assert_eq!(e.initiated_by, support_id);
    assert_eq!(e.reason, "ticket 42");
    // The impersonated user's rights: alice administers acme_emea (and acme_us below it) only.
    denied(
        "session outside the user's rights",
        write(
            &mut as_alice,
            Operation::Touch,
            &["document:d3#org@organization:acme"],
        )
        .await,
    );
    support
        .imp
        .revoke_session(apb::RevokeSessionRequest {
            id: session.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    one_more(&mut platform, &mut seen, "RevokeSession").await;
    let revoked = write(
        &mut as_alice,
        Operation::Touch,
        &["document:d4#org@organization:acme_emea"],
    )
    .await
    .unwrap_err();
    assert_eq!(revoked.code(), tonic::Code::Unauthenticated);

    platform
        .orgs
        .revoke_credential(apb::RevokeCredentialRequest {
            id: cred.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    one_more(&mut platform, &mut seen, "RevokeCredential").await;

    // Delete is refused while the org has children or resources, unless cascading.
    let refused = platform
        .orgs
        .delete_organization(apb::DeleteOrganizationRequest {
            id: "acme_emea".to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert_eq!(audit_entries(&mut platform).await.len(), seen);
    platform
        .orgs
        .delete_organization(apb::DeleteOrganizationRequest {
            id: "acme_emea".to_string(),
            cascade: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let e = one_more(&mut platform, &mut seen, "DeleteOrganization").await;
    assert!(
        e.changes
            .iter()
            .any(|c| c.relationship.starts_with("document:d2#org")),
        "{e:?}"
    );
    assert!(
        !allowed(
            &mut platform,
            "organization:acme_us",
            "administer",
            "user:alice"
        )
        .await
    );

    // The chain verifies, and entries stream to a SIEM from any point.
    let v = platform
        .audit
        .verify_audit(apb::VerifyAuditRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.entries, seen as u64);
    assert_eq!(v.head_seq, seen as u64);
    let mut stream = platform
        .audit
        .stream_audit(apb::StreamAuditRequest {
            after_seq: (seen - 2) as u64,
            organization: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let a = stream.message().await.unwrap().unwrap();
    let b = stream.message().await.unwrap().unwrap();
    assert_eq!((a.seq, b.seq), ((seen - 1) as u64, seen as u64));
    create_user(&mut platform, "carol").await;
    let c = tokio::time::timeout(std::time::Duration::from_secs(10), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(c.seq, seen as u64 + 1);
    assert_eq!(c.prev_hash, b.hash);
    drop(stream);

    // Queries by actor and subject.
    let by_actor = platform
        .audit
        .query_audit(apb::QueryAuditRequest {
            actor: "user:alice".to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!by_actor.entries.is_empty());
    assert!(
        by_actor
            .entries
            .iter()
            .all(|e| e.on_behalf_of == "user:alice")
    );
    let by_subject = platform
        .audit
        .query_audit(apb::QueryAuditRequest {
            subject: "user:bob".to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        by_subject
            .entries
            .iter()
            .all(|e| e.subjects.contains(&"user:bob".to_string()))
    );
    assert!(by_subject.entries.len() >= 2);
    server.stop().await;
}

#[tokio::test]
async fn a_schema_that_drops_the_prelude_is_refused_once_organizations_exist() {
    let (server, _dir) = start(Engine::Memory).await;
    let mut platform = as_token(&server, KEY).await;
    // Without organizations any schema goes (SpiceDB compatibility).
    platform
        .schema
        .write_schema(pb::WriteSchemaRequest {
            schema: "definition user {}".to_string(),
        })
        .await
        .unwrap();
    platform
        .schema
        .write_schema(pb::WriteSchemaRequest {
            schema: prelude_schema(),
        })
        .await
        .unwrap();
    create_org(&mut platform, "acme", "").await.unwrap();
    let dropped = prelude_schema().replace(
        "permission administer = admin + parent->administer + platform->staff",
        "permission administer = admin",
    );
    let err = platform
        .schema
        .write_schema(pb::WriteSchemaRequest { schema: dropped })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("administer"), "{err:?}");
    let err = platform
        .schema
        .write_schema(pb::WriteSchemaRequest {
            schema: "definition user {}\ndefinition organization {}".to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(
        err.message().contains("definition `platform` is missing"),
        "{err:?}"
    );
    // A schema that extends the prelude is fine.
    platform
        .schema
        .write_schema(pb::WriteSchemaRequest {
            schema: format!(
                "{}\ndefinition invoice {{\n relation org: organization\n}}",
                prelude_schema()
            ),
        })
        .await
        .unwrap();
    server.stop().await;
}
