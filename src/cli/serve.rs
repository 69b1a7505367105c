//! `arbor serve`: the gRPC server's flags and environment variables, resolved with the optional
//! TOML file into `arbor::server::Config`; runs the server until SIGINT or SIGTERM, and re-reads
//! the preshared key file on SIGHUP.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use clap::builder::BoolishValueParser;

use arbor::server::Server;
use arbor::server::config::{
    self as defaults, Config, Engine, Overrides, parse_bytes, parse_duration, read_key_file,
};

/// Shown after the options of `arbor serve --help`.
pub const AFTER_HELP: &str = "\
Every option can also be set with its environment variable (shown with each option) or in the
TOML file given with --config, under the option's name without `--`, for example:

    grpc-addr = \"0.0.0.0:50051\"
    grpc-preshared-key-file = \"/etc/arbor/keys\"
    datastore-engine = \"rocksdb\"
    dispatch-max-depth = 50

A flag or environment variable wins over the file, which wins over the default.

Authentication: every call to PermissionsService, SchemaService, WatchService and Arbor's
OrganizationService, ImpersonationService and AuditService needs `authorization: Bearer <key>`
with a platform preshared key (which may do everything), a support key (also opens
impersonation sessions), an org-scoped credential (`arbor_cred_…`, made by CreateCredential:
acts only inside its organization's subtree, decided by `organization:<id>#administer`) or an
impersonation session token (`arbor_imp_…`: the impersonated user's rights, audited). The keys are kept only as SHA-256
hashes and never logged (logs name a key by an 8-hex-digit id). A missing key is refused with
UNAUTHENTICATED, and so is a wrong key (SpiceDB answers that with PERMISSION_DENIED). grpc.health.v1.Health
and server reflection (grpc.reflection.v1, v1alpha) need no key. Without any key, `arbor serve`
refuses to start unless --insecure-no-auth is given.

Signals: SIGINT or SIGTERM stop the server gracefully (no new connections, Watch streams end,
in-flight requests get --grpc-shutdown-grace-period to finish, the datastore is flushed);
SIGHUP re-reads --grpc-preshared-key-file.

Metrics: Prometheus text at http://<metrics-addr>/metrics (requests and latency per method,
errors, requests in flight, datastore head revision, dispatch cache hits and misses).

Logging goes to stderr, filtered by RUST_LOG (for example RUST_LOG=arbor=info).";

fn default_help(text: &str, default: impl std::fmt::Display) -> String {
    format!("{text} [default: {default}]")
}

/// The options of `arbor serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML file with any of the options below (flags and environment variables win over it).
    #[arg(long, value_name = "FILE", env = "ARBOR_CONFIG")]
    config: Option<PathBuf>,

    #[arg(long, value_name = "ADDR", env = "ARBOR_GRPC_ADDR",
        help = default_help("Address the gRPC API listens on", defaults::DEFAULT_GRPC_ADDR))]
    grpc_addr: Option<SocketAddr>,

    /// A preshared key that callers give as `authorization: Bearer <key>`; repeat the flag (or
    /// separate keys with commas in the environment variable) for several keys.
    #[arg(
        long = "grpc-preshared-key",
        value_name = "KEY",
        env = "ARBOR_GRPC_PRESHARED_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    grpc_preshared_key: Vec<String>,

    /// A file of preshared keys, one per line (`#` starts a comment line); re-read on SIGHUP.
    #[arg(long, value_name = "FILE", env = "ARBOR_GRPC_PRESHARED_KEY_FILE")]
    grpc_preshared_key_file: Option<PathBuf>,

    /// Serve without authentication: anyone who can reach the port can read and change
    /// everything. Only for local development.
    #[arg(long, env = "ARBOR_INSECURE_NO_AUTH", value_parser = BoolishValueParser::new(),
        num_args = 0..=1, default_missing_value = "true")]
    insecure_no_auth: Option<bool>,

    /// TLS certificate (PEM) for the gRPC port; needs --grpc-tls-key-path. Without both, gRPC
    /// is served in plaintext.
    #[arg(long, value_name = "FILE", env = "ARBOR_GRPC_TLS_CERT_PATH")]
    grpc_tls_cert_path: Option<PathBuf>,

    /// TLS private key (PEM) for the gRPC port; needs --grpc-tls-cert-path.
    #[arg(long, value_name = "FILE", env = "ARBOR_GRPC_TLS_KEY_PATH")]
    grpc_tls_key_path: Option<PathBuf>,

    #[arg(long, value_name = "ADDR", env = "ARBOR_METRICS_ADDR",
        help = default_help("Address of the Prometheus metrics endpoint (HTTP, path /metrics)", defaults::DEFAULT_METRICS_ADDR))]
    metrics_addr: Option<SocketAddr>,

    #[arg(long, value_name = "BOOL", env = "ARBOR_METRICS_ENABLED", value_parser = BoolishValueParser::new(),
        num_args = 0..=1, default_missing_value = "true",
        help = default_help("Serve metrics on --metrics-addr", true))]
    metrics_enabled: Option<bool>,

    #[arg(long, value_name = "ENGINE", env = "ARBOR_DATASTORE_ENGINE",
        help = default_help("Where data is kept: `rocksdb` (durable, in --data-dir) or `memory` (lost on exit)", "rocksdb"))]
    datastore_engine: Option<Engine>,

    #[arg(long, value_name = "DIR", env = "ARBOR_DATA_DIR",
        help = default_help("Data directory of the rocksdb engine (created if missing)", defaults::DEFAULT_DATA_DIR))]
    data_dir: Option<PathBuf>,

    #[arg(long, value_name = "DURATION", env = "ARBOR_DATASTORE_GC_WINDOW", value_parser = parse_duration,
        help = default_help("How long old revisions stay readable (ZedTokens older than this are refused with OUT_OF_RANGE)", "24h"))]
    datastore_gc_window: Option<Duration>,

    #[arg(long, value_name = "DURATION", env = "ARBOR_DATASTORE_REVISION_QUANTIZATION_INTERVAL", value_parser = parse_duration,
        help = default_help("Most a minimize_latency read may lag the newest revision (keeps the cache warm)", "5s"))]
    datastore_revision_quantization_interval: Option<Duration>,

    #[arg(long, value_name = "N", env = "ARBOR_DISPATCH_MAX_DEPTH",
        help = default_help("Most nested sub-problems one request may evaluate", arbor::eval::DEFAULT_MAX_DEPTH))]
    dispatch_max_depth: Option<u32>,

    #[arg(long, value_name = "BOOL", env = "ARBOR_DISPATCH_CACHE_ENABLED", value_parser = BoolishValueParser::new(),
        num_args = 0..=1, default_missing_value = "true",
        help = default_help("Cache check sub-problems across requests", true))]
    dispatch_cache_enabled: Option<bool>,

    #[arg(long, value_name = "SIZE", env = "ARBOR_DISPATCH_CACHE_MAX_COST", value_parser = parse_bytes,
        help = default_help("Memory budget of the dispatch cache (bytes, or with KiB/MiB/GiB)", "256MiB"))]
    dispatch_cache_max_cost: Option<usize>,

    #[arg(long, value_name = "SIZE", env = "ARBOR_DATASTORE_BLOCK_CACHE_SIZE", value_parser = parse_bytes,
        help = default_help("RocksDB block cache (uncompressed blocks, indexes, filters; bytes, or with KiB/MiB/GiB). Checks that miss it read, verify and decompress a block: size it to the data that checks touch", "256MiB"))]
    datastore_block_cache_size: Option<usize>,

    #[arg(long, value_name = "N", env = "ARBOR_WRITE_RELATIONSHIPS_MAX_UPDATES_PER_CALL",
        help = default_help("Most updates in one WriteRelationships", defaults::DEFAULT_MAX_UPDATES_PER_WRITE))]
    write_relationships_max_updates_per_call: Option<usize>,

    #[arg(long, value_name = "N", env = "ARBOR_UPDATE_RELATIONSHIPS_MAX_PRECONDITIONS_PER_CALL",
        help = default_help("Most preconditions in one WriteRelationships or DeleteRelationships", defaults::DEFAULT_MAX_PRECONDITIONS))]
    update_relationships_max_preconditions_per_call: Option<usize>,

    #[arg(long, value_name = "BYTES", env = "ARBOR_MAX_CAVEAT_CONTEXT_SIZE",
        help = default_help("Largest caveat context of a request, in encoded bytes", defaults::DEFAULT_MAX_CAVEAT_CONTEXT_BYTES))]
    max_caveat_context_size: Option<usize>,

    #[arg(long, value_name = "BYTES", env = "ARBOR_MAX_RELATIONSHIP_CONTEXT_SIZE",
        help = default_help("Largest caveat (name and context) on one relationship, in encoded bytes", defaults::DEFAULT_MAX_RELATIONSHIP_CONTEXT_BYTES))]
    max_relationship_context_size: Option<usize>,

    #[arg(long, value_name = "N", env = "ARBOR_MAX_READ_RELATIONSHIPS_LIMIT",
        help = default_help("Largest optional_limit of ReadRelationships", defaults::DEFAULT_MAX_READ_LIMIT))]
    max_read_relationships_limit: Option<u32>,

    #[arg(long, value_name = "N", env = "ARBOR_MAX_DELETE_RELATIONSHIPS_LIMIT",
        help = default_help("Largest optional_limit of DeleteRelationships", defaults::DEFAULT_MAX_DELETE_LIMIT))]
    max_delete_relationships_limit: Option<u32>,

    #[arg(long, value_name = "N", env = "ARBOR_MAX_LOOKUP_RESOURCES_LIMIT",
        help = default_help("Largest optional_limit of LookupResources", defaults::DEFAULT_MAX_LOOKUP_LIMIT))]
    max_lookup_resources_limit: Option<u32>,

    #[arg(long, value_name = "N", env = "ARBOR_MAX_BULK_EXPORT_RELATIONSHIPS_LIMIT",
        help = default_help("Largest (and default) batch of ExportBulkRelationships", defaults::DEFAULT_MAX_EXPORT_BATCH))]
    max_bulk_export_relationships_limit: Option<u32>,

    #[arg(long, value_name = "N", env = "ARBOR_MAX_BULK_CHECK_ITEMS",
        help = default_help("Most items in one CheckBulkPermissions", defaults::DEFAULT_MAX_BULK_CHECKS))]
    max_bulk_check_items: Option<usize>,

    #[arg(long, value_name = "SIZE", env = "ARBOR_GRPC_MAX_MESSAGE_SIZE", value_parser = parse_bytes,
        help = default_help("Largest request message (bytes, or with KiB/MiB); larger ones get RESOURCE_EXHAUSTED", "4MiB"))]
    grpc_max_message_size: Option<usize>,

    #[arg(long, value_name = "N", env = "ARBOR_MAX_CONCURRENT_REQUESTS",
        help = default_help("Requests and open streams served at once; past it requests get RESOURCE_EXHAUSTED", defaults::DEFAULT_MAX_CONCURRENT_REQUESTS))]
    max_concurrent_requests: Option<usize>,

    #[arg(long, value_name = "N", env = "ARBOR_GRPC_MAX_CONCURRENT_STREAMS",
        help = default_help("HTTP/2 streams one connection may have open", defaults::DEFAULT_MAX_CONCURRENT_STREAMS))]
    grpc_max_concurrent_streams: Option<u32>,

    #[arg(long, value_name = "DURATION", env = "ARBOR_MAX_REQUEST_DURATION", value_parser = parse_duration,
        help = default_help("Longest a request may evaluate, whatever its deadline (then DEADLINE_EXCEEDED)", "60s"))]
    max_request_duration: Option<Duration>,

    #[arg(long, value_name = "DURATION", env = "ARBOR_GRPC_SHUTDOWN_GRACE_PERIOD", value_parser = parse_duration,
        help = default_help("How long shutdown waits for in-flight requests", "10s"))]
    grpc_shutdown_grace_period: Option<Duration>,

    /// A platform preshared key with the support role: everything a platform key may do, plus
    /// opening impersonation sessions (ImpersonationService). Repeatable; comma-separated in
    /// the environment variable.
    #[arg(
        long = "grpc-support-key",
        value_name = "KEY",
        env = "ARBOR_GRPC_SUPPORT_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    grpc_support_key: Vec<String>,

    #[arg(long, value_name = "ID", env = "ARBOR_PLATFORM_ID",
        help = default_help("The platform object that root organizations attach to (`organization:x#platform@platform:<ID>`)", defaults::DEFAULT_PLATFORM_ID))]
    platform_id: Option<String>,

    /// After every commit, write the signed head of the audit chain to this file (keep it
    /// outside the data directory, ideally on other storage); `arbor audit verify
    /// --anchor-file` then detects a truncated or recomputed log. Needs --audit-anchor-key-file.
    #[arg(long, value_name = "FILE", env = "ARBOR_AUDIT_ANCHOR_FILE")]
    audit_anchor_file: Option<PathBuf>,

    /// The Ed25519 secret key that signs audit anchors (made by `arbor audit keygen`; keep it
    /// apart from the data directory). Its public key is derived from it for VerifyAudit.
    #[arg(long, value_name = "FILE", env = "ARBOR_AUDIT_ANCHOR_KEY_FILE")]
    audit_anchor_key_file: Option<PathBuf>,

    /// How long audit entries are kept (for example `400d`); pruning runs hourly and keeps a
    /// signed-off base so the rest of the chain still verifies. Unset or 0: kept for ever.
    /// Independent of --datastore-gc-window.
    #[arg(long, value_name = "DURATION", env = "ARBOR_AUDIT_RETENTION", value_parser = parse_duration)]
    audit_retention: Option<Duration>,

    /// Threads of the async runtime that serves requests and evaluates checks. Unset or 0: one
    /// per CPU core. Set it lower to leave cores to other processes, or to match a CPU limit.
    #[arg(long, value_name = "N", env = "ARBOR_WORKER_THREADS")]
    worker_threads: Option<usize>,
}

impl ServeArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            config_file: self.config.clone(),
            grpc_addr: self.grpc_addr,
            preshared_keys: self.grpc_preshared_key.clone(),
            preshared_key_file: self.grpc_preshared_key_file.clone(),
            insecure_no_auth: self.insecure_no_auth.unwrap_or(false),
            tls_cert_path: self.grpc_tls_cert_path.clone(),
            tls_key_path: self.grpc_tls_key_path.clone(),
            metrics_addr: self.metrics_addr,
            metrics_enabled: self.metrics_enabled,
            engine: self.datastore_engine,
            data_dir: self.data_dir.clone(),
            gc_window: self.datastore_gc_window,
            revision_quantization: self.datastore_revision_quantization_interval,
            max_depth: self.dispatch_max_depth,
            dispatch_cache_enabled: self.dispatch_cache_enabled,
            dispatch_cache_max_cost_bytes: self.dispatch_cache_max_cost,
            block_cache_bytes: self.datastore_block_cache_size,
            max_updates_per_write: self.write_relationships_max_updates_per_call,
            max_preconditions: self.update_relationships_max_preconditions_per_call,
            max_caveat_context_bytes: self.max_caveat_context_size,
            max_relationship_context_bytes: self.max_relationship_context_size,
            max_read_limit: self.max_read_relationships_limit,
            max_delete_limit: self.max_delete_relationships_limit,
            max_lookup_limit: self.max_lookup_resources_limit,
            max_export_batch: self.max_bulk_export_relationships_limit,
            max_bulk_checks: self.max_bulk_check_items,
            max_message_bytes: self.grpc_max_message_size,
            max_concurrent_requests: self.max_concurrent_requests,
            max_concurrent_streams: self.grpc_max_concurrent_streams,
            max_request_duration: self.max_request_duration,
            shutdown_grace: self.grpc_shutdown_grace_period,
            support_keys: self.grpc_support_key.clone(),
            platform_id: self.platform_id.clone(),
            audit_anchor_file: self.audit_anchor_file.clone(),
            audit_anchor_key_file: self.audit_anchor_key_file.clone(),
            audit_retention: self.audit_retention,
            worker_threads: self.worker_threads,
        }
    }
}

/// Runs the server until SIGINT or SIGTERM; exit code 0 after a clean stop.
pub fn run(args: &ServeArgs) -> anyhow::Result<u8> {
    let config = Config::resolve(args.overrides())?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if config.worker_threads > 0 {
        builder.worker_threads(config.worker_threads);
    }
    let runtime = builder
        .enable_all()
        .thread_name("arbor-worker")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config))?;
    Ok(0)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let server = Server::bind(config).await?;
    let config = server.config().clone();
    let authenticator = server.authenticator();
    let addr = server
        .local_addr()
        .map_or_else(|| config.grpc_addr.to_string(), |a| a.to_string());
    let auth = if config.insecure_no_auth && authenticator.key_ids().is_empty() {
        "WITHOUT AUTHENTICATION (--insecure-no-auth)".to_string()
    } else {
        format!("preshared keys {}", authenticator.key_ids().join(", "))
    };
    let metrics = server
        .metrics_addr()
        .map_or_else(|| "off".to_string(), |a| format!("http://{a}/metrics"));
    let store = match config.engine {
        Engine::Rocksdb => format!("rocksdb at {}", config.data_dir.display()),
        Engine::Memory => "memory (nothing is kept after exit)".to_string(),
    };
    let _ = writeln!(
        std::io::stderr(),
        "arbor: serving authzed.api.v1 on {addr}{tls}; datastore: {store}; auth: {auth}; metrics: {metrics}",
        tls = if config.tls.is_some() { " (TLS)" } else { "" },
    );
    tracing::info!(%addr, "serving");

    if let Some(path) = config.preshared_key_file.clone() {
        let keys = config.preshared_keys.clone();
        let authenticator = authenticator.clone();
        tokio::spawn(async move {
            let Ok(mut hangups) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                tracing::error!("cannot listen for SIGHUP; the key file will not be re-read");
                return;
            };
            while hangups.recv().await.is_some() {
                let reloaded = read_key_file(&path).map(|mut from_file| {
                    from_file.extend(keys.iter().cloned());
                    from_file
                });
                match reloaded
                    .map_err(|e| e.to_string())
                    .and_then(|all| authenticator.replace_keys(&all).map_err(|e| e.to_string()))
                {
                    Ok(()) => tracing::warn!(
                        keys = %authenticator.key_ids().join(","),
                        "SIGHUP: preshared keys reloaded"
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "SIGHUP: keys not reloaded; the old keys stay")
                    }
                }
            }
        });
    }

    server.serve(shutdown_signal()).await?;
    let _ = writeln!(std::io::stderr(), "arbor: stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    let _ = writeln!(std::io::stderr(), "arbor: stopping (signal received)");
}
