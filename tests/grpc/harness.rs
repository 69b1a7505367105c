//! Starts `arbor::server::Server` on 127.0.0.1:0 and builds authenticated tonic clients.

use std::net::SocketAddr;
use std::time::Duration;

use arbor::api::grpc::proto::authzed::api::v1 as pb;
use arbor::api::grpc::proto::google::rpc::{ErrorInfo, Status as RpcStatus};
use arbor::server::{Config, Engine, Overrides, Server};
use pb::permissions_service_client::PermissionsServiceClient;
use pb::schema_service_client::SchemaServiceClient;
use pb::watch_service_client::WatchServiceClient;
use prost::Message as _;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub const KEY: &str = "grpc-test-key";

pub type Auth = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;

fn bearer(mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    r.metadata_mut()
        .insert("authorization", format!("Bearer {KEY}").parse().unwrap());
    Ok(r)
}

pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// A fresh server with default limits (and `tweak` applied to its overrides).
    pub async fn start_with(tweak: impl FnOnce(&mut Overrides)) -> TestServer {
        let mut overrides = Overrides {
            grpc_addr: Some("127.0.0.1:0".parse().unwrap()),
            preshared_keys: vec![KEY.to_string()],
            engine: Some(Engine::Memory),
            metrics_enabled: Some(false),
            revision_quantization: Some(Duration::ZERO),
            shutdown_grace: Some(Duration::from_secs(2)),
            ..Overrides::default()
        };
        tweak(&mut overrides);
        let server = Server::bind(Config::resolve(overrides).unwrap())
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        TestServer {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn permissions(&self) -> PermissionsServiceClient<InterceptedService<Channel, Auth>> {
        PermissionsServiceClient::with_interceptor(self.channel().await, bearer as Auth)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20)
    }

    pub async fn schema(&self) -> SchemaServiceClient<InterceptedService<Channel, Auth>> {
        SchemaServiceClient::with_interceptor(self.channel().await, bearer as Auth)
    }

    pub async fn watch(&self) -> WatchServiceClient<InterceptedService<Channel, Auth>> {
        WatchServiceClient::with_interceptor(self.channel().await, bearer as Auth)
    }

    /// Stops the server and waits for it (a clean stop returns Ok).
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("server did not stop")
                .unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// The `ErrorInfo` of a status, if it has one.
pub fn error_info(status: &tonic::Status) -> Option<ErrorInfo> {
    if status.details().is_empty() {
        return None;
    }
    let rpc = RpcStatus::decode(status.details()).unwrap();
    let any = rpc.details.first()?;
    assert_eq!(any.type_url, "type.googleapis.com/google.rpc.ErrorInfo");
    let info = ErrorInfo::decode(any.value.as_slice()).unwrap();
    assert_eq!(info.domain, "authzed.com");
    Some(info)
}

/// Asserts the code and `ErrorInfo` reason (`None`: no details, as SpiceDB sends none).
#[track_caller]
pub fn assert_status(status: &tonic::Status, code: tonic::Code, reason: Option<&str>) {
    assert_eq!(status.code(), code, "{status:?}");
    let got = error_info(status).map(|i| i.reason);
    assert_eq!(got.as_deref(), reason, "{status:?}");
}

pub fn obj(t: &str, id: &str) -> pb::ObjectReference {
    pb::ObjectReference {
        object_type: t.to_string(),
        object_id: id.to_string(),
    }
}

pub fn subj(t: &str, id: &str, rel: &str) -> pb::SubjectReference {
    pb::SubjectReference {
        object: Some(obj(t, id)),
        optional_relation: rel.to_string(),
    }
}

/// A relationship from its text form.
pub fn rel(text: &str) -> pb::Relationship {
    arbor::api::grpc::convert::relationship_to_proto(
        &arbor::model::Relationship::parse(text).unwrap(),
    )
}

pub fn update(op: pb::relationship_update::Operation, text: &str) -> pb::RelationshipUpdate {
    pb::RelationshipUpdate {
        operation: op as i32,
        relationship: Some(rel(text)),
    }
}

pub fn full() -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
    })
}

pub fn at_exact(token: &pb::ZedToken) -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtExactSnapshot(token.clone())),
    })
}

pub fn check_request(
    resource: &str,
    permission: &str,
    subject: &str,
) -> pb::CheckPermissionRequest {
    let (rt, rid) = resource.split_once(':').unwrap();
    let (st, rest) = subject.split_once(':').unwrap();
    let (sid, srel) = rest.split_once('#').unwrap_or((rest, ""));
    pb::CheckPermissionRequest {
        consistency: full(),
        resource: Some(obj(rt, rid)),
        permission: permission.to_string(),
        subject: Some(subj(st, sid, srel)),
        context: None,
        with_tracing: false,
    }
}

pub const DOC_SCHEMA: &str = "
definition user {}
definition team {
    relation member: user | team#member
}
definition document {
    relation owner: user
    relation viewer: user | user:* | team#member
    relation banned: user
    permission edit = owner
    permission view = (viewer + edit) - banned
}
";

/// A server with `DOC_SCHEMA` and `rels` written; returns the token of the write.
pub async fn seeded(rels: &[&str]) -> (TestServer, pb::ZedToken) {
    let server = TestServer::start().await;
    server
        .schema()
        .await
        .write_schema(pb::WriteSchemaRequest {
            schema: DOC_SCHEMA.to_string(),
        })
        .await
        .unwrap();
    let written = server
        .permissions()
        .await
        .write_relationships(pb::WriteRelationshipsRequest {
            updates: rels
                .iter()
                .map(|r| update(pb::relationship_update::Operation::Create, r))
                .collect(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .written_at
        .unwrap();
    (server, written)
}
