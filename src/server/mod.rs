//! The server: wiring of store → dispatch chain → services → listeners from one resolved
//! `Config`, the metrics endpoint, and graceful shutdown (stop accepting, let in-flight
//! requests finish within a grace period, end Watch streams, flush the store).

mod audit_tasks;
pub mod config;
pub mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Identity, ServerTlsConfig};

pub use config::{Config, ConfigError, Engine, Overrides};
use metrics::{Gauges, Metrics, RequestLayer};

use crate::api::auth::{AuthInterceptor, Authenticator};
use crate::api::grpc::proto::arbor::v1::{
    audit_service_server::AuditServiceServer,
    impersonation_service_server::ImpersonationServiceServer,
    organization_service_server::OrganizationServiceServer,
};
use crate::api::grpc::proto::authzed::api::v1::{
    permissions_service_server::PermissionsServiceServer,
    schema_service_server::SchemaServiceServer, watch_service_server::WatchServiceServer,
};
use crate::api::grpc::{
    AnchorSource, AuditApi, OrganizationApi, PermissionsApi, SchemaApi, Shared, WatchApi, proto,
};
use crate::eval::{CacheStats, DispatchConfig, build_dispatch_chain};
use crate::identity::directory::{Directory, DirectoryConfig};
use crate::store::memory::MemoryDatastore;
use crate::store::rocks::{RocksDatastore, RocksOptions};
use crate::store::{Datastore, StoreError};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The datastore could not be opened.
    #[error("cannot open the datastore: {0}")]
    Store(#[from] StoreError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// TLS files could not be read or used.
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    /// The gRPC server failed.
    #[error("the gRPC server failed: {0}")]
    Transport(String),
}

/// A server with its store open and its sockets bound, ready to serve.
pub struct Server {
    config: Config,
    datastore: Arc<dyn Datastore>,
    rocks: Option<Arc<RocksDatastore>>,
    authenticator: Authenticator,
    directory: Directory,
    anchor: Option<audit_tasks::Anchoring>,
    listener: tokio::net::TcpListener,
    metrics_listener: Option<tokio::net::TcpListener>,
}

impl Server {
    /// Opens the datastore, loads the keys and binds the listeners.
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let insecure = config.insecure_no_auth
            && config.preshared_keys.is_empty()
            && config.preshared_key_file.is_none()
            && config.support_keys.is_empty();
        let authenticator = if insecure {
            Authenticator::insecure()
        } else {
            Authenticator::with_roles(&config.all_keys()?, &config.support_keys).map_err(|e| {
                ServerError::Config(ConfigError::Value {
                    setting: "grpc-preshared-key",
                    message: e.to_string(),
                })
            })?
        };
        let anchor = match (&config.audit_anchor_file, &config.audit_anchor_key_file) {
            (Some(file), Some(key)) => {
                Some(audit_tasks::Anchoring::load(file, key).map_err(|e| {
                    ServerError::Config(ConfigError::Value {
                        setting: "audit-anchor-key-file",
                        message: e.to_string(),
                    })
                })?)
            }
            _ => None,
        };
        let (datastore, rocks): (Arc<dyn Datastore>, Option<Arc<RocksDatastore>>) = match config
            .engine
        {
            Engine::Memory => {
                let memory: Arc<dyn Datastore> =
                    Arc::new(MemoryDatastore::with_gc_window(config.gc_window));
                spawn_memory_gc(Arc::clone(&memory));
                (memory, None)
            }
            Engine::Rocksdb => {
                let path = config.data_dir.clone();
                let options = RocksOptions {
                    gc_window: config.gc_window,
                    block_cache_bytes: config.block_cache_bytes,
                    ..RocksOptions::default()
                };
                let rocks =
                    tokio::task::spawn_blocking(move || RocksDatastore::open(&path, options))
                        .await
                        .map_err(|e| ServerError::Store(StoreError::Internal(e.to_string())))??;
                let rocks = Arc::new(rocks);
                (Arc::clone(&rocks) as Arc<dyn Datastore>, Some(rocks))
            }
        };
        let directory = Directory::new(
            Arc::clone(&datastore),
            DirectoryConfig {
                platform_id: config.platform_id.clone(),
                ..DirectoryConfig::default()
            },
        );
        let authenticator = if insecure {
            authenticator
        } else {
            authenticator.with_directory(directory.clone())
        };
        let listener = bind(config.grpc_addr).await?;
        let metrics_listener = match config.metrics_addr {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Server {
            config,
            datastore,
            rocks,
            authenticator,
            directory,
            anchor,
            listener,
            metrics_listener,
        })
    }

    /// The address gRPC is served on (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// The address metrics are served on, if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The key checker, whose keys can be replaced while serving (SIGHUP).
    pub fn authenticator(&self) -> Authenticator {
        self.authenticator.clone()
    }

    /// The resolved configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Serves until `shutdown` completes, then stops accepting, ends Watch streams, waits up to
    /// the grace period for in-flight requests, and flushes the store.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Server {
            config,
            datastore,
            rocks,
            authenticator,
            directory,
            anchor,
            listener,
            metrics_listener,
        } = self;
        let chain = build_dispatch_chain(DispatchConfig {
            cache_enabled: config.dispatch_cache_enabled,
            cache_max_cost_bytes: config.dispatch_cache_max_cost_bytes,
        });
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let shared = Shared::with_anchor(
            Arc::clone(&datastore),
            chain.head,
            config.api,
            stop_rx.clone(),
            anchor.as_ref().map(|a| AnchorSource {
                file: a.file().to_path_buf(),
                public_key: a.public_key(),
            }),
        );
        let audit_task = tokio::spawn(audit_tasks::run(
            Arc::clone(&datastore),
            anchor,
            config.audit_retention,
            config::AUDIT_PRUNE_INTERVAL,
            stop_rx.clone(),
        ));
        let interceptor = AuthInterceptor::new(authenticator);
        let max = config.max_message_bytes;

        let permissions = InterceptedService::new(
            PermissionsServiceServer::new(PermissionsApi::new(Arc::clone(&shared)))
                .max_decoding_message_size(max),
            interceptor.clone(),
        );
        let schema = InterceptedService::new(
            SchemaServiceServer::new(SchemaApi::new(Arc::clone(&shared)))
                .max_decoding_message_size(max),
            interceptor.clone(),
        );
        let watch = InterceptedService::new(
            WatchServiceServer::new(WatchApi::new(Arc::clone(&shared)))
                .max_decoding_message_size(max),
            interceptor.clone(),
        );
        let organizations_api = OrganizationApi::new(Arc::clone(&shared), directory);
        let organizations = InterceptedService::new(
            OrganizationServiceServer::new(organizations_api.clone())
                .max_decoding_message_size(max),
            interceptor.clone(),
        );
        let impersonation = InterceptedService::new(
            ImpersonationServiceServer::new(organizations_api).max_decoding_message_size(max),
            interceptor.clone(),
        );
        let audit = InterceptedService::new(
            AuditServiceServer::new(AuditApi::new(Arc::clone(&shared)))
                .max_decoding_message_size(max),
            interceptor,
        );

        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<PermissionsServiceServer<PermissionsApi>>()
            .await;
        health.set_serving::<SchemaServiceServer<SchemaApi>>().await;
        health.set_serving::<WatchServiceServer<WatchApi>>().await;
        health
            .set_serving::<OrganizationServiceServer<OrganizationApi>>()
            .await;
        health.set_serving::<AuditServiceServer<AuditApi>>().await;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| ServerError::Transport(e.to_string()))?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|e| ServerError::Transport(e.to_string()))?;

        let metrics = Arc::new(Metrics::default());
        let slots = Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_requests));
        let mut builder = tonic::transport::Server::builder()
            .max_concurrent_streams(config.max_concurrent_streams);
        if let Some((cert, key)) = &config.tls {
            let cert = std::fs::read(cert)
                .map_err(|e| ServerError::Tls(format!("{}: {e}", cert.display())))?;
            let key = std::fs::read(key)
                .map_err(|e| ServerError::Tls(format!("{}: {e}", key.display())))?;
            builder = builder
                .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
                .map_err(|e| ServerError::Tls(e.to_string()))?;
        }
        let router = builder
            .layer(RequestLayer::new(Arc::clone(&metrics), Arc::clone(&slots)))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(permissions)
            .add_service(schema)
            .add_service(watch)
            .add_service(organizations)
            .add_service(impersonation)
            .add_service(audit);

        // Metrics endpoint.
        let (metrics_stop_tx, metrics_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let metrics_task = metrics_listener.map(|l| {
            tokio::spawn(serve_metrics(
                l,
                Arc::clone(&metrics),
                Arc::clone(&datastore),
                chain.cache_stats.clone(),
                Arc::clone(&slots),
                config.max_concurrent_requests,
                metrics_stop_rx,
            ))
        });

        // Shutdown: the signal stops accepting and ends streams; the grace period bounds the drain.
        let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
        let stop_streams = stop_tx;
        let grace = config.shutdown_grace;
        let health_on_stop = health.clone();
        // TCP_NODELAY on every accepted connection: without it, Nagle's algorithm holds back
        // the tail of a response until the client's delayed ACK (~40 ms on Linux), which is
        // what a larger message (a CheckBulkPermissions answer) otherwise waits for.
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let serving = router.serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections; draining in-flight requests");
            health_on_stop
                .set_not_serving::<PermissionsServiceServer<PermissionsApi>>()
                .await;
            let _ = stop_streams.send(true);
            let _ = signalled_tx.send(());
        });
        tokio::pin!(serving);
        let result = tokio::select! {
            r = &mut serving => r.map_err(|e| ServerError::Transport(e.to_string())),
            () = async {
                let _ = signalled_rx.await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_seconds = grace.as_secs_f64(), "in-flight requests did not finish within the grace period; dropping them");
                Ok(())
            }
        };
        drop(stop_rx);
        if let Err(e) = audit_task.await {
            tracing::error!(error = %e, "the audit anchoring task failed");
        }
        let _ = metrics_stop_tx.send(());
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
        if let Some(rocks) = rocks {
            let flushed = tokio::task::spawn_blocking(move || rocks.flush()).await;
            match flushed {
                Ok(Ok(())) => tracing::info!("datastore flushed"),
                Ok(Err(e)) => tracing::error!(error = %e, "flushing the datastore failed"),
                Err(e) => tracing::error!(error = %e, "flushing the datastore failed"),
            }
        }
        result
    }
}

/// The memory store collects garbage only when asked: ask on the RocksDB store's schedule,
/// for as long as the store lives.
fn spawn_memory_gc(store: Arc<dyn Datastore>) {
    let weak = Arc::downgrade(&store);
    drop(store);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::store::rocks::DEFAULT_GC_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(store) = weak.upgrade() else { return };
            let done = tokio::task::spawn_blocking(move || {
                store.collect_garbage(crate::model::Timestamp::now())
            })
            .await;
            if let Ok(Err(e)) = done {
                tracing::error!(error = %e, "garbage collection of the memory store failed");
            }
        }
    });
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServerError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    datastore: Arc<dyn Datastore>,
    cache: Option<Arc<CacheStats>>,
    slots: Arc<tokio::sync::Semaphore>,
    max_slots: usize,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    let handler = move || {
        let metrics = Arc::clone(&metrics);
        let datastore = Arc::clone(&datastore);
        let cache = cache.clone();
        let slots = Arc::clone(&slots);
        async move {
            let gauges = Gauges {
                head_revision: datastore.head_revision().ok().map(|r| r.get()),
                cache: cache.map(|c| c.snapshot()),
                in_flight: max_slots.saturating_sub(slots.available_permits()),
            };
            (
                [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                metrics.render(gauges),
            )
        }
    };
    let app = axum::Router::new().route("/metrics", axum::routing::get(handler));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = stop.await;
        })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "the metrics endpoint failed");
    }
}
