//! The server's configuration, resolved once into a typed `Config`: command-line flags and
//! environment variables (`Overrides`, filled by the binary) win over an optional TOML file,
//! which wins over the defaults below. Every default is a named constant saying why.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::api::grpc::ApiConfig;
use crate::eval::{DEFAULT_CACHE_MAX_COST_BYTES, DEFAULT_MAX_DEPTH};
use crate::store::DEFAULT_GC_WINDOW;

/// gRPC listen address: SpiceDB's port 50051, on loopback so that a server started by hand is
/// not reachable from the network until an address is chosen on purpose.
pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50051";
/// Metrics (Prometheus) listen address: SpiceDB's port 9090, on loopback for the same reason.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9090";
/// Data directory of the RocksDB datastore, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./arbor-data";
/// How often `minimize_latency` reads may lag the head: SpiceDB's default of 5 s, which keeps
/// the dispatch cache warm across requests within one window.
pub const DEFAULT_REVISION_QUANTIZATION: Duration = Duration::from_secs(5);
/// Most updates per WriteRelationships: SpiceDB's default of 1000.
pub const DEFAULT_MAX_UPDATES_PER_WRITE: usize = 1000;
/// Most preconditions per write or delete: SpiceDB's default of 1000.
pub const DEFAULT_MAX_PRECONDITIONS: usize = 1000;
/// Largest request caveat context in bytes: SpiceDB's default of 4096.
pub const DEFAULT_MAX_CAVEAT_CONTEXT_BYTES: usize = 4096;
/// Largest caveat on one relationship in bytes: SpiceDB's default of 25 000.
pub const DEFAULT_MAX_RELATIONSHIP_CONTEXT_BYTES: usize = 25_000;
/// Largest ReadRelationships page: SpiceDB's default of 1000.
pub const DEFAULT_MAX_READ_LIMIT: u32 = 1000;
/// Largest DeleteRelationships limit: SpiceDB's default of 1000.
pub const DEFAULT_MAX_DELETE_LIMIT: u32 = 1000;
/// Largest LookupResources page: SpiceDB's default of 1000.
pub const DEFAULT_MAX_LOOKUP_LIMIT: u32 = 1000;
/// Largest ExportBulkRelationships batch: SpiceDB's default of 10 000.
pub const DEFAULT_MAX_EXPORT_BATCH: u32 = 10_000;
/// Most items per CheckBulkPermissions: SpiceDB's fixed maximum of 10 000.
pub const DEFAULT_MAX_BULK_CHECKS: usize = 10_000;
/// Largest request message in bytes: gRPC's customary 4 MiB, which holds a full
/// WriteRelationships of 1000 updates with room to spare.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Requests (unary calls and open streams) served at once across all connections; past it a
/// request is refused with RESOURCE_EXHAUSTED rather than queued without bound.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 10_000;
/// HTTP/2 streams one connection may have open: generous for clients that multiplex, but
/// bounded so that one connection cannot take every request slot.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 1000;
/// Longest any request may evaluate, whatever deadline the client sets: long enough for large
/// lookups, short enough that a runaway request cannot hold resources for long.
pub const DEFAULT_MAX_REQUEST_DURATION: Duration = Duration::from_secs(60);
/// How long a stopping server waits for in-flight requests before it drops them.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Change sets a Watch stream reads per step: bounds the memory of one catch-up step.
pub const DEFAULT_WATCH_BATCH: usize = 256;
/// The platform object root organizations attach to (`organization:x#platform@platform:saas`),
/// as in the prelude's documentation.
pub const DEFAULT_PLATFORM_ID: &str = "saas";
/// How often retention prunes the audit log, when a retention is set.
pub const AUDIT_PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Which datastore keeps the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// RocksDB in `--data-dir` (durable).
    Rocksdb,
    /// In memory: everything is lost when the server stops.
    Memory,
}

impl std::str::FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rocksdb" => Ok(Engine::Rocksdb),
            "memory" => Ok(Engine::Memory),
            other => Err(format!(
                "unknown datastore engine `{other}`: use `rocksdb` or `memory`"
            )),
        }
    }
}

/// The resolved configuration of `arbor serve`.
#[derive(Debug, Clone)]
pub struct Config {
    /// gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// Preshared keys given directly (flags, environment, file config).
    pub preshared_keys: Vec<String>,
    /// A file of preshared keys, one per line, re-read on SIGHUP.
    pub preshared_key_file: Option<PathBuf>,
    /// Serve without authentication.
    pub insecure_no_auth: bool,
    /// TLS certificate and key (PEM), both or neither.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Metrics listen address, if metrics are served.
    pub metrics_addr: Option<SocketAddr>,
    /// The datastore.
    pub engine: Engine,
    /// RocksDB data directory.
    pub data_dir: PathBuf,
    /// How long old revisions stay readable.
    pub gc_window: Duration,
    /// Whether check results are cached across requests.
    pub dispatch_cache_enabled: bool,
    /// Memory budget of the dispatch cache, in bytes.
    pub dispatch_cache_max_cost_bytes: usize,
    /// Size of RocksDB's block cache (uncompressed blocks, indexes and filters), in bytes.
    pub block_cache_bytes: usize,
    /// Largest request message, in bytes.
    pub max_message_bytes: usize,
    /// Requests served at once.
    pub max_concurrent_requests: usize,
    /// HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// What the API enforces.
    pub api: ApiConfig,
    /// Platform preshared keys with the support role (may open impersonation sessions).
    pub support_keys: Vec<String>,
    /// The platform object id root organizations attach to.
    pub platform_id: String,
    /// The file the signed anchor of the audit chain head is written to after each commit.
    pub audit_anchor_file: Option<PathBuf>,
    /// The Ed25519 secret key that signs anchors (kept apart from the data directory).
    pub audit_anchor_key_file: Option<PathBuf>,
    /// How long audit entries are kept; `None` keeps them for ever.
    pub audit_retention: Option<Duration>,
    /// Threads of the async runtime that serves requests; 0: one per CPU core.
    pub worker_threads: usize,
}

/// Values from flags and environment variables; `None` falls back to the file, then the default.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config`.
    pub config_file: Option<PathBuf>,
    /// `--grpc-addr`.
    pub grpc_addr: Option<SocketAddr>,
    /// `--grpc-preshared-key` (repeatable).
    pub preshared_keys: Vec<String>,
    /// `--grpc-preshared-key-file`.
    pub preshared_key_file: Option<PathBuf>,
    /// `--insecure-no-auth`.
    pub insecure_no_auth: bool,
    /// `--grpc-tls-cert-path`.
    pub tls_cert_path: Option<PathBuf>,
    /// `--grpc-tls-key-path`.
    pub tls_key_path: Option<PathBuf>,
    /// `--metrics-addr`.
    pub metrics_addr: Option<SocketAddr>,
    /// `--metrics-enabled`.
    pub metrics_enabled: Option<bool>,
    /// `--datastore-engine`.
    pub engine: Option<Engine>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--datastore-gc-window`.
    pub gc_window: Option<Duration>,
    /// `--datastore-revision-quantization-interval`.
    pub revision_quantization: Option<Duration>,
    /// `--dispatch-max-depth`.
    pub max_depth: Option<u32>,
    /// `--dispatch-cache-enabled`.
    pub dispatch_cache_enabled: Option<bool>,
    /// `--dispatch-cache-max-cost`.
    pub dispatch_cache_max_cost_bytes: Option<usize>,
    /// `--datastore-block-cache-size`.
    pub block_cache_bytes: Option<usize>,
    /// `--write-relationships-max-updates-per-call`.
    pub max_updates_per_write: Option<usize>,
    /// `--update-relationships-max-preconditions-per-call`.
    pub max_preconditions: Option<usize>,
    /// `--max-caveat-context-size`.
    pub max_caveat_context_bytes: Option<usize>,
    /// `--max-relationship-context-size`.
    pub max_relationship_context_bytes: Option<usize>,
    /// `--max-read-relationships-limit`.
    pub max_read_limit: Option<u32>,
    /// `--max-delete-relationships-limit`.
    pub max_delete_limit: Option<u32>,
    /// `--max-lookup-resources-limit`.
    pub max_lookup_limit: Option<u32>,
    /// `--max-bulk-export-relationships-limit`.
    pub max_export_batch: Option<u32>,
    /// `--max-bulk-check-items`.
    pub max_bulk_checks: Option<usize>,
    /// `--grpc-max-message-size`.
    pub max_message_bytes: Option<usize>,
    /// `--max-concurrent-requests`.
    pub max_concurrent_requests: Option<usize>,
    /// `--grpc-max-concurrent-streams`.
    pub max_concurrent_streams: Option<u32>,
    /// `--max-request-duration`.
    pub max_request_duration: Option<Duration>,
    /// `--grpc-shutdown-grace-period`.
    pub shutdown_grace: Option<Duration>,
    /// `--grpc-support-key` (repeatable).
    pub support_keys: Vec<String>,
    /// `--platform-id`.
    pub platform_id: Option<String>,
    /// `--audit-anchor-file`.
    pub audit_anchor_file: Option<PathBuf>,
    /// `--audit-anchor-key-file`.
    pub audit_anchor_key_file: Option<PathBuf>,
    /// `--audit-retention`.
    pub audit_retention: Option<Duration>,
    /// `--worker-threads`.
    pub worker_threads: Option<usize>,
}

/// The TOML file: the same settings as the flags, named as the flags without `--`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    grpc_addr: Option<SocketAddr>,
    grpc_preshared_key: Option<Vec<String>>,
    grpc_preshared_key_file: Option<PathBuf>,
    insecure_no_auth: Option<bool>,
    grpc_tls_cert_path: Option<PathBuf>,
    grpc_tls_key_path: Option<PathBuf>,
    metrics_addr: Option<SocketAddr>,
    metrics_enabled: Option<bool>,
    datastore_engine: Option<Engine>,
    data_dir: Option<PathBuf>,
    datastore_gc_window: Option<String>,
    datastore_revision_quantization_interval: Option<String>,
    dispatch_max_depth: Option<u32>,
    dispatch_cache_enabled: Option<bool>,
    dispatch_cache_max_cost: Option<String>,
    datastore_block_cache_size: Option<String>,
    write_relationships_max_updates_per_call: Option<usize>,
    update_relationships_max_preconditions_per_call: Option<usize>,
    max_caveat_context_size: Option<usize>,
    max_relationship_context_size: Option<usize>,
    max_read_relationships_limit: Option<u32>,
    max_delete_relationships_limit: Option<u32>,
    max_lookup_resources_limit: Option<u32>,
    max_bulk_export_relationships_limit: Option<u32>,
    max_bulk_check_items: Option<usize>,
    grpc_max_message_size: Option<String>,
    max_concurrent_requests: Option<usize>,
    grpc_max_concurrent_streams: Option<u32>,
    max_request_duration: Option<String>,
    grpc_shutdown_grace_period: Option<String>,
    grpc_support_key: Option<Vec<String>>,
    platform_id: Option<String>,
    audit_anchor_file: Option<PathBuf>,
    audit_anchor_key_file: Option<PathBuf>,
    audit_retention: Option<String>,
    worker_threads: Option<usize>,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read the config file `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for these settings.
    #[error("the config file `{path}` is invalid: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A setting has an invalid value.
    #[error("`{setting}` is invalid: {message}")]
    Value {
        /// The setting.
        setting: &'static str,
        /// Why.
        message: String,
    },
    /// No key and no `--insecure-no-auth`.
    #[error(
        "no preshared key is configured: give --grpc-preshared-key (or ARBOR_GRPC_PRESHARED_KEY, or --grpc-preshared-key-file), or run without authentication with --insecure-no-auth"
    )]
    NoKey,
    /// A key file that cannot be used.
    #[error("cannot read the preshared key file `{path}`: {message}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Only one of the TLS paths.
    #[error("--grpc-tls-cert-path and --grpc-tls-key-path must be given together")]
    HalfTls,
    /// Only one of the anchor paths.
    #[error("--audit-anchor-file and --audit-anchor-key-file must be given together")]
    HalfAnchor,
}

fn parsed<T>(
    setting: &'static str,
    value: Option<String>,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    value
        .map(|v| parse(&v).map_err(|message| ConfigError::Value { setting, message }))
        .transpose()
}

impl Config {
    /// Resolves `overrides` over the config file (if one is named) over the defaults.
    pub fn resolve(o: Overrides) -> Result<Config, ConfigError> {
        let file = match &o.config_file {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let default_addr = |text: &str| -> Result<SocketAddr, ConfigError> {
            text.parse()
                .map_err(|e: std::net::AddrParseError| ConfigError::Value {
                    setting: "default address",
                    message: e.to_string(),
                })
        };
        let gc_window = parsed(
            "datastore-gc-window",
            file.datastore_gc_window,
            parse_duration,
        )?;
        let quantization = parsed(
            "datastore-revision-quantization-interval",
            file.datastore_revision_quantization_interval,
            parse_duration,
        )?;
        let cache_cost = parsed(
            "dispatch-cache-max-cost",
            file.dispatch_cache_max_cost,
            parse_bytes,
        )?;
        let block_cache = parsed(
            "datastore-block-cache-size",
            file.datastore_block_cache_size,
            parse_bytes,
        )?;
        let message_bytes = parsed(
            "grpc-max-message-size",
            file.grpc_max_message_size,
            parse_bytes,
        )?;
        let request_duration = parsed(
            "max-request-duration",
            file.max_request_duration,
            parse_duration,
        )?;
        let grace = parsed(
            "grpc-shutdown-grace-period",
            file.grpc_shutdown_grace_period,
            parse_duration,
        )?;
        let retention = parsed("audit-retention", file.audit_retention, parse_duration)?;
        let mut support_keys = o.support_keys.clone();
        if support_keys.is_empty() {
            support_keys = file.grpc_support_key.unwrap_or_default();
        }
        support_keys.retain(|k| !k.trim().is_empty());
        let platform_id = o
            .platform_id
            .or(file.platform_id)
            .unwrap_or_else(|| DEFAULT_PLATFORM_ID.to_string());
        if crate::model::ObjectRef::new("platform", &platform_id).is_err() {
            return Err(ConfigError::Value {
                setting: "platform-id",
                message: format!("`{platform_id}` is not a valid object id"),
            });
        }
        let audit_anchor_file = o.audit_anchor_file.or(file.audit_anchor_file);
        let audit_anchor_key_file = o.audit_anchor_key_file.or(file.audit_anchor_key_file);
        if audit_anchor_file.is_some() != audit_anchor_key_file.is_some() {
            return Err(ConfigError::HalfAnchor);
        }
        let audit_retention = o.audit_retention.or(retention).filter(|d| !d.is_zero());

        let mut preshared_keys = o.preshared_keys.clone();
        if preshared_keys.is_empty() {
            preshared_keys = file.grpc_preshared_key.unwrap_or_default();
        }
        preshared_keys.retain(|k| !k.trim().is_empty());
        let preshared_key_file = o.preshared_key_file.or(file.grpc_preshared_key_file);
        let insecure_no_auth = o.insecure_no_auth || file.insecure_no_auth.unwrap_or(false);
        if preshared_keys.is_empty()
            && preshared_key_file.is_none()
            && support_keys.is_empty()
            && !insecure_no_auth
        {
            return Err(ConfigError::NoKey);
        }
        let cert = o.tls_cert_path.or(file.grpc_tls_cert_path);
        let key = o.tls_key_path.or(file.grpc_tls_key_path);
        let tls = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err(ConfigError::HalfTls),
        };
        let metrics_enabled = o.metrics_enabled.or(file.metrics_enabled).unwrap_or(true);
        let metrics_addr = match o.metrics_addr.or(file.metrics_addr) {
            Some(a) => a,
            None => default_addr(DEFAULT_METRICS_ADDR)?,
        };
        let api = ApiConfig {
            revision_quantization: o
                .revision_quantization
                .or(quantization)
                .unwrap_or(DEFAULT_REVISION_QUANTIZATION),
            max_depth: o
                .max_depth
                .or(file.dispatch_max_depth)
                .unwrap_or(DEFAULT_MAX_DEPTH),
            max_updates_per_write: o
                .max_updates_per_write
                .or(file.write_relationships_max_updates_per_call)
                .unwrap_or(DEFAULT_MAX_UPDATES_PER_WRITE),
            max_preconditions: o
                .max_preconditions
                .or(file.update_relationships_max_preconditions_per_call)
                .unwrap_or(DEFAULT_MAX_PRECONDITIONS),
            max_caveat_context_bytes: o
                .max_caveat_context_bytes
                .or(file.max_caveat_context_size)
                .unwrap_or(DEFAULT_MAX_CAVEAT_CONTEXT_BYTES),
            max_relationship_context_bytes: o
                .max_relationship_context_bytes
                .or(file.max_relationship_context_size)
                .unwrap_or(DEFAULT_MAX_RELATIONSHIP_CONTEXT_BYTES),
            max_read_limit: o
                .max_read_limit
                .or(file.max_read_relationships_limit)
                .unwrap_or(DEFAULT_MAX_READ_LIMIT),
            max_delete_limit: o
                .max_delete_limit
                .or(file.max_delete_relationships_limit)
                .unwrap_or(DEFAULT_MAX_DELETE_LIMIT),
            max_lookup_limit: o
                .max_lookup_limit
                .or(file.max_lookup_resources_limit)
                .unwrap_or(DEFAULT_MAX_LOOKUP_LIMIT),
            max_export_batch: o
                .max_export_batch
                .or(file.max_bulk_export_relationships_limit)
                .unwrap_or(DEFAULT_MAX_EXPORT_BATCH),
            max_bulk_checks: o
                .max_bulk_checks
                .or(file.max_bulk_check_items)
                .unwrap_or(DEFAULT_MAX_BULK_CHECKS),
            max_request_duration: o
                .max_request_duration
                .or(request_duration)
                .unwrap_or(DEFAULT_MAX_REQUEST_DURATION),
            watch_batch: DEFAULT_WATCH_BATCH,
        };
        if api.max_depth == 0 {
            return Err(ConfigError::Value {
                setting: "dispatch-max-depth",
                message: "must be at least 1".to_string(),
            });
        }
        Ok(Config {
            grpc_addr: match o.grpc_addr.or(file.grpc_addr) {
                Some(a) => a,
                None => default_addr(DEFAULT_GRPC_ADDR)?,
            },
            preshared_keys,
            preshared_key_file,
            insecure_no_auth,
            tls,
            metrics_addr: metrics_enabled.then_some(metrics_addr),
            engine: o
                .engine
                .or(file.datastore_engine)
                .unwrap_or(Engine::Rocksdb),
            data_dir: o
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            gc_window: o.gc_window.or(gc_window).unwrap_or(DEFAULT_GC_WINDOW),
            dispatch_cache_enabled: o
                .dispatch_cache_enabled
                .or(file.dispatch_cache_enabled)
                .unwrap_or(true),
            dispatch_cache_max_cost_bytes: o
                .dispatch_cache_max_cost_bytes
                .or(cache_cost)
                .unwrap_or(DEFAULT_CACHE_MAX_COST_BYTES),
            block_cache_bytes: o
                .block_cache_bytes
                .or(block_cache)
                .unwrap_or(crate::store::rocks::DEFAULT_BLOCK_CACHE_BYTES),
            max_message_bytes: o
                .max_message_bytes
                .or(message_bytes)
                .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
            max_concurrent_requests: o
                .max_concurrent_requests
                .or(file.max_concurrent_requests)
                .unwrap_or(DEFAULT_MAX_CONCURRENT_REQUESTS)
                .max(1),
            max_concurrent_streams: o
                .max_concurrent_streams
                .or(file.grpc_max_concurrent_streams)
                .unwrap_or(DEFAULT_MAX_CONCURRENT_STREAMS)
                .max(1),
            shutdown_grace: o.shutdown_grace.or(grace).unwrap_or(DEFAULT_SHUTDOWN_GRACE),
            api,
            support_keys,
            platform_id,
            audit_anchor_file,
            audit_anchor_key_file,
            audit_retention,
            worker_threads: o.worker_threads.or(file.worker_threads).unwrap_or(0),
        })
    }

    /// Every key in force: the configured ones plus those of the key file.
    pub fn all_keys(&self) -> Result<Vec<String>, ConfigError> {
        let mut keys = self.preshared_keys.clone();
        if let Some(path) = &self.preshared_key_file {
            keys.extend(read_key_file(path)?);
        }
        Ok(keys)
    }
}

fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The keys of a key file: one per line; blank lines and lines starting with `#` are skipped.
pub fn read_key_file(path: &Path) -> Result<Vec<String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::KeyFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if keys.is_empty() {
        return Err(ConfigError::KeyFile {
            path: path.to_path_buf(),
            message: "it holds no key".to_string(),
        });
    }
    Ok(keys)
}

/// Parses a duration: one or more `<number><unit>` with units `ns`, `us`, `ms`, `s`, `m`, `h`,
/// `d` (`24h`, `1m30s`, `250ms`), or `0`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let bad = || format!("`{text}` is not a duration (for example `5s`, `24h`, `1m30s`, `250ms`)");
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, after) = rest.split_at_checked(digits).ok_or_else(bad)?;
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, next) = after.split_at_checked(unit_len).ok_or_else(bad)?;
        let n: u64 = number.parse().map_err(|_| bad())?;
        let part = match unit {
            "ns" => Duration::from_nanos(n),
            "us" | "µs" => Duration::from_micros(n),
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
            "d" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        total = total.checked_add(part).ok_or_else(bad)?;
        rest = next;
    }
    Ok(total)
}

/// Parses a size in bytes: a number with an optional unit `B`, `KiB`, `MiB`, `GiB` (or `KB`,
/// `MB`, `GB`, powers of 1000).
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let bad = || format!("`{text}` is not a size (for example `4096`, `64KiB`, `256MiB`, `1GiB`)");
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at_checked(digits).ok_or_else(bad)?;
    let n: usize = number.parse().map_err(|_| bad())?;
    let factor: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(factor).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_parse() {
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "5", "s", "5x", "-1s", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_bytes("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("12 parsecs").is_err());
    }

    #[test]
    fn no_key_is_refused_unless_insecure_and_flags_win_over_the_file() {
        assert!(matches!(
            Config::resolve(Overrides::default()),
            Err(ConfigError::NoKey)
        ));
        let dir = std::env::temp_dir().join(format!("arbor-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("arbor.toml");
        std::fs::write(
            &file,
            "grpc-addr = \"127.0.0.1:6000\"\ndispatch-max-depth = 7\ngrpc-preshared-key = [\"k\"]\ndatastore-gc-window = \"1h\"\nworker-threads = 1\ndatastore-block-cache-size = \"1GiB\"\n",
        )
        .unwrap();
        let c = Config::resolve(Overrides {
            config_file: Some(file.clone()),
            max_depth: Some(9),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(c.grpc_addr.port(), 6000);
        assert_eq!(c.api.max_depth, 9);
        assert_eq!(c.gc_window, Duration::from_secs(3600));
        assert_eq!(c.preshared_keys, vec!["k".to_string()]);
        assert_eq!(c.engine, Engine::Rocksdb);
        assert_eq!(c.worker_threads, 1);
        assert_eq!(c.block_cache_bytes, 1 << 30);
        std::fs::write(&file, "no-such-setting = 1\n").unwrap();
        assert!(matches!(
            Config::resolve(Overrides {
                config_file: Some(file),
                insecure_no_auth: true,
                ..Overrides::default()
            }),
            Err(ConfigError::File { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
