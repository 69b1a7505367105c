//! `arbor bench`: a load generator that speaks `authzed.api.v1` to any server (Arbor or
//! SpiceDB), so both are driven by the same client. It reads a workload directory of
//! `shared/workloads/gen.py` (`schema.zed`, `relationships.txt`, `checks.txt`), optionally loads
//! it, runs one operation from N concurrent clients for a duration, and prints throughput and
//! latency percentiles (and, for Arbor with `--metrics-url`, the cache hit ratio and server RSS).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use arbor::api::grpc::proto::authzed::api::v1 as pb;
use arbor::model::Relationship;
use pb::permissions_service_client::PermissionsServiceClient;
use pb::schema_service_client::SchemaServiceClient;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

/// Relationships per ImportBulkRelationships message while loading.
const LOAD_BATCH: usize = 1_000;
/// Checks per CheckBulkPermissions call unless `--bulk-size` says otherwise.
const DEFAULT_BULK_SIZE: usize = 100;

/// The operation to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Op {
    /// CheckPermission, one line of checks.txt per call.
    Check,
    /// CheckBulkPermissions, `--bulk-size` lines per call.
    BulkCheck,
    /// LookupResources for the subject and permission of each check line (whole stream read).
    LookupResources,
    /// LookupSubjects (users) for the resource and permission of each check line.
    LookupSubjects,
    /// WriteRelationships: TOUCH one new viewer relationship per call.
    Write,
    /// `grpc.health.v1.Health/Check`: a no-op RPC, the cost of the transport itself.
    Health,
}

/// Consistency asked for on reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsistencyArg {
    /// `minimize_latency`: the server picks a recent, cache-friendly revision.
    MinimizeLatency,
    /// `fully_consistent`: the newest revision, every time.
    FullyConsistent,
}

/// Flags of `arbor bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Server address, `HOST:PORT` (plaintext gRPC).
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub target: String,
    /// Bearer token sent as `authorization: Bearer TOKEN` (none if empty).
    #[arg(
        long,
        env = "ARBOR_BENCH_TOKEN",
        default_value = "",
        hide_env_values = true
    )]
    pub token: String,
    /// Workload directory with `schema.zed`, `relationships.txt`, `checks.txt`.
    #[arg(long)]
    pub workload: PathBuf,
    /// Write the schema and import the relationships before running.
    #[arg(long)]
    pub load: bool,
    /// The operation to drive.
    #[arg(long, value_enum, default_value = "check")]
    pub op: Op,
    /// Concurrent clients (each with its own connection).
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// How long to drive the operation, e.g. `20s`, `500ms`, `2m`.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub duration: Duration,
    /// How long to run before measuring (warms caches), same syntax as `--duration`.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Consistency of reads.
    #[arg(long, value_enum, default_value = "minimize-latency")]
    pub consistency: ConsistencyArg,
    /// Checks per CheckBulkPermissions call.
    #[arg(long, default_value_t = DEFAULT_BULK_SIZE)]
    pub bulk_size: usize,
    /// Verify this many check answers against `expected.txt` (or `model_answers.txt`) before timing.
    #[arg(long, default_value_t = 50)]
    pub verify: usize,
    /// Ask every check of `checks.txt` once (fully consistent) before timing and write
    /// `check<TAB>answer` lines to this file, to compare servers' answers line by line.
    #[arg(long, value_name = "FILE")]
    pub answers_out: Option<PathBuf>,
    /// With `--answers-out`: ask only the first N checks (0: all of them).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub answers_limit: usize,
    /// Process id of a server on this machine whose resident memory (RSS) to report after
    /// the run, for servers without Arbor's metrics endpoint (e.g. the SpiceDB peer).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Arbor's Prometheus endpoint (e.g. `http://127.0.0.1:9090/metrics`) for the cache hit ratio and RSS.
    #[arg(long)]
    pub metrics_url: Option<String>,
    /// A label for this run in the output (e.g. `arbor-warm`).
    #[arg(long, default_value = "")]
    pub label: String,
    /// Threads of the load generator's async runtime (0: one per CPU core). Set it lower to
    /// leave cores to a server on the same machine.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub threads: usize,
    /// Print one JSON line with the results after the table.
    #[arg(long)]
    pub json: bool,
}

/// Parses `20s`, `500ms`, `2m`, `1h`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((t, "s"), |i| {
            (t.get(..i).unwrap_or(t), t.get(i..).unwrap_or("s"))
        });
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (for example 20s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use ms, s, m or h)"
            ));
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("`{text}` is not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// One line of checks.txt: `type:id#permission@type:id[#relation]`.
#[derive(Debug, Clone)]
struct CheckLine {
    /// The line as written.
    text: String,
    resource_type: String,
    resource_id: String,
    permission: String,
    subject_type: String,
    subject_id: String,
    subject_relation: String,
}

fn parse_check(line: &str, lineno: usize) -> anyhow::Result<CheckLine> {
    let rel = Relationship::parse(line)
        .map_err(|e| anyhow!("checks.txt:{lineno}:{}: {}", e.column, e.message))?;
    Ok(CheckLine {
        text: line.to_string(),
        resource_type: rel.resource().object_type().to_string(),
        resource_id: rel.resource().object_id().to_string(),
        permission: rel.relation().to_string(),
        subject_type: rel.subject().object_type().to_string(),
        subject_id: rel.subject().object_id().to_string(),
        subject_relation: rel.subject().relation().unwrap_or("").to_string(),
    })
}

fn read_checks(dir: &Path) -> anyhow::Result<Vec<CheckLine>> {
    let path = dir.join("checks.txt");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let checks = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| parse_check(l.trim(), i + 1))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if checks.is_empty() {
        bail!("{} has no checks", path.display());
    }
    Ok(checks)
}

/// Expected answers: `expected.txt` (SpiceDB's, `check<TAB>answer`) or `model_answers.txt`.
fn read_expected(dir: &Path) -> Option<Vec<String>> {
    if let Ok(text) = std::fs::read_to_string(dir.join("expected.txt")) {
        return Some(
            text.lines()
                .map(|l| l.rsplit('\t').next().unwrap_or("").trim().to_string())
                .collect(),
        );
    }
    std::fs::read_to_string(dir.join("model_answers.txt"))
        .ok()
        .map(|t| t.lines().map(|l| l.trim().to_string()).collect())
}

fn object(t: &str, id: &str) -> pb::ObjectReference {
    pb::ObjectReference {
        object_type: t.to_string(),
        object_id: id.to_string(),
    }
}

fn subject(c: &CheckLine) -> pb::SubjectReference {
    pb::SubjectReference {
        object: Some(object(&c.subject_type, &c.subject_id)),
        optional_relation: c.subject_relation.clone(),
    }
}

fn to_proto(rel: &Relationship) -> pb::Relationship {
    pb::Relationship {
        resource: Some(object(
            rel.resource().object_type(),
            rel.resource().object_id(),
        )),
        relation: rel.relation().to_string(),
        subject: Some(pb::SubjectReference {
            object: Some(object(
                rel.subject().object_type(),
                rel.subject().object_id(),
            )),
            optional_relation: rel.subject().relation().unwrap_or("").to_string(),
        }),
        ..Default::default()
    }
}

fn consistency(arg: ConsistencyArg) -> Option<pb::Consistency> {
    use pb::consistency::Requirement;
    Some(pb::Consistency {
        requirement: Some(match arg {
            ConsistencyArg::MinimizeLatency => Requirement::MinimizeLatency(true),
            ConsistencyArg::FullyConsistent => Requirement::FullyConsistent(true),
        }),
    })
}

/// Adds the bearer token to a request.
fn authed<T>(msg: T, token: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut req = tonic::Request::new(msg);
    if !token.is_empty() {
        let value: MetadataValue<_> = format!("Bearer {token}")
            .parse()
            .map_err(|_| anyhow!("the token contains characters not allowed in a header"))?;
        req.metadata_mut().insert("authorization", value);
    }
    Ok(req)
}

async fn connect(target: &str) -> anyhow::Result<Channel> {
    let uri = if target.contains("://") {
        target.to_string()
    } else {
        format!("http://{target}")
    };
    Endpoint::from_shared(uri)
        .map_err(|e| anyhow!("bad --target `{target}`: {e}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connecting to {target}"))
}

async fn load(args: &BenchArgs, channel: Channel) -> anyhow::Result<()> {
    let schema_path = args.workload.join("schema.zed");
    let schema = std::fs::read_to_string(&schema_path)
        .with_context(|| format!("reading {}", schema_path.display()))?;
    SchemaServiceClient::new(channel.clone())
        .write_schema(authed(pb::WriteSchemaRequest { schema }, &args.token)?)
        .await
        .map_err(|s| anyhow!("WriteSchema failed: {} {}", s.code(), s.message()))?;
    let rel_path = args.workload.join("relationships.txt");
    let text = std::fs::read_to_string(&rel_path)
        .with_context(|| format!("reading {}", rel_path.display()))?;
    let mut rels = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        let rel = Relationship::parse(line).map_err(|e| {
            anyhow!(
                "{}:{}:{}: {}",
                rel_path.display(),
                i + 1,
                e.column,
                e.message
            )
        })?;
        rels.push(to_proto(&rel));
    }
    let total = rels.len() as u64;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "loading {bar:40} {pos}/{len} relationships ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let batches: Vec<pb::ImportBulkRelationshipsRequest> = rels
        .chunks(LOAD_BATCH)
        .map(|c| pb::ImportBulkRelationshipsRequest {
            relationships: c.to_vec(),
        })
        .collect();
    let progress = bar.clone();
    let stream = tokio_stream::iter(
        batches
            .into_iter()
            .inspect(move |b| progress.inc(b.relationships.len() as u64)),
    );
    let resp = PermissionsServiceClient::new(channel)
        .import_bulk_relationships(authed(stream, &args.token)?)
        .await
        .map_err(|s| {
            anyhow!(
                "ImportBulkRelationships failed: {} {}",
                s.code(),
                s.message()
            )
        })?
        .into_inner();
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "loaded {} of {total} relationships in {secs:.1} s ({:.0}/s)",
        resp.num_loaded,
        resp.num_loaded as f64 / secs.max(1e-9)
    );
    Ok(())
}

fn answer_of(p: i32) -> &'static str {
    match pb::check_permission_response::Permissionship::try_from(p) {
        Ok(pb::check_permission_response::Permissionship::HasPermission) => "true",
        Ok(pb::check_permission_response::Permissionship::NoPermission) => "false",
        Ok(pb::check_permission_response::Permissionship::ConditionalPermission) => "conditional",
        _ => "unspecified",
    }
}

async fn verify(args: &BenchArgs, channel: Channel, checks: &[CheckLine]) -> anyhow::Result<usize> {
    let Some(expected) = read_expected(&args.workload) else {
        eprintln!("no expected.txt or model_answers.txt: answers not verified");
        return Ok(0);
    };
    let mut client = PermissionsServiceClient::new(channel);
    let n = args.verify.min(checks.len()).min(expected.len());
    for (i, (c, want)) in checks.iter().zip(&expected).take(n).enumerate() {
        let resp = client
            .check_permission(authed(
                pb::CheckPermissionRequest {
                    consistency: consistency(ConsistencyArg::FullyConsistent),
                    resource: Some(object(&c.resource_type, &c.resource_id)),
                    permission: c.permission.clone(),
                    subject: Some(subject(c)),
                    ..Default::default()
                },
                &args.token,
            )?)
            .await
            .map_err(|s| anyhow!("check {} failed: {} {}", i + 1, s.code(), s.message()))?
            .into_inner();
        let got = answer_of(resp.permissionship);
        if got != want {
            bail!(
                "check {} (`{}#{}`) answered {got}, expected {want}",
                i + 1,
                c.resource_id,
                c.permission
            );
        }
    }
    Ok(n)
}

/// Checks in flight while `--answers-out` asks every check.
const ANSWER_CONCURRENCY: usize = 8;

/// Asks every check (or the first `--answers-limit`) once, fully consistent, and writes
/// `check<TAB>answer` lines (`error: CODE` for a failed call) to `path`.
async fn write_answers(
    args: &BenchArgs,
    path: &Path,
    channel: Channel,
    checks: &[CheckLine],
) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    let n = if args.answers_limit == 0 {
        checks.len()
    } else {
        args.answers_limit.min(checks.len())
    };
    let bar = indicatif::ProgressBar::new(n as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "answers {bar:40} {pos}/{len} ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let token = args.token.as_str();
    let answers: Vec<String> = futures::stream::iter(checks.iter().take(n))
        .map(|c| {
            let mut client = PermissionsServiceClient::new(channel.clone());
            let bar = bar.clone();
            async move {
                let req = authed(
                    pb::CheckPermissionRequest {
                        consistency: consistency(ConsistencyArg::FullyConsistent),
                        resource: Some(object(&c.resource_type, &c.resource_id)),
                        permission: c.permission.clone(),
                        subject: Some(subject(c)),
                        ..Default::default()
                    },
                    token,
                );
                let answer = match req {
                    Ok(req) => match client.check_permission(req).await {
                        Ok(resp) => answer_of(resp.into_inner().permissionship).to_string(),
                        Err(s) => format!("error: {:?}", s.code()),
                    },
                    Err(e) => format!("error: {e}"),
                };
                bar.inc(1);
                format!("{}\t{answer}\n", c.text)
            }
        })
        .buffered(ANSWER_CONCURRENCY)
        .collect()
        .await;
    bar.finish_and_clear();
    std::fs::write(path, answers.concat())
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {n} answers to {}", path.display());
    Ok(())
}

/// Resident memory of a local process in MiB.
fn rss_of_pid(pid: u32) -> Option<f64> {
    arbor::server::metrics::resident_memory_bytes_of(&pid.to_string()).map(|b| b as f64 / 1048576.0)
}

/// What one client measured.
#[derive(Default)]
struct ClientResult {
    latencies_us: Vec<u32>,
    /// Of streamed calls: how long the first result took.
    first_us: Vec<u32>,
    errors: u64,
    items: u64,
}

/// What one call did.
struct CallOutcome {
    ok: bool,
    items: u64,
    /// Of a streamed call that returned something: when the first result arrived.
    first: Option<Duration>,
}

impl CallOutcome {
    fn of(ok: bool, items: u64) -> Self {
        CallOutcome {
            ok,
            items,
            first: None,
        }
    }
}

/// One client's connection: the generated client, a raw one for the calls whose messages are
/// built once before timing (CheckBulkPermissions) or only counted (streams), and the
/// CheckBulkPermissions requests it has encoded, by the index of their first check. The load
/// generator shares the machine with the server, so it spends as little CPU per item as it can.
struct Wire {
    client: PermissionsServiceClient<Channel>,
    health: tonic_health::pb::health_client::HealthClient<Channel>,
    raw: tonic::client::Grpc<Channel>,
    encoded_bulk: std::collections::HashMap<usize, prost::bytes::Bytes>,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

async fn run_client(
    id: usize,
    args: Arc<BenchArgs>,
    channel: Channel,
    checks: Arc<Vec<CheckLine>>,
    measure_from: Instant,
    stop_at: Instant,
) -> ClientResult {
    let mut wire = Wire {
        client: PermissionsServiceClient::new(channel.clone()),
        health: tonic_health::pb::health_client::HealthClient::new(channel.clone()),
        raw: tonic::client::Grpc::new(channel),
        encoded_bulk: std::collections::HashMap::new(),
    };
    let mut out = ClientResult::default();
    let n = checks.len();
    let stride = (n / args.clients.max(1)).max(1);
    let mut i = id.wrapping_mul(stride) % n.max(1);
    let mut seq: u64 = 0;
    while Instant::now() < stop_at {
        let started = Instant::now();
        let call = one_call(&args, &mut wire, &checks, i, id, seq).await;
        let elapsed = started.elapsed();
        if started >= measure_from {
            out.latencies_us.push(micros(elapsed));
            if let Some(first) = call.first {
                out.first_us.push(micros(first));
            }
            out.items += call.items;
            if !call.ok {
                out.errors += 1;
            }
        }
        i = (i + if args.op == Op::BulkCheck {
            args.bulk_size
        } else {
            1
        }) % n.max(1);
        seq += 1;
    }
    out
}

async fn one_call(
    args: &BenchArgs,
    wire: &mut Wire,
    checks: &[CheckLine],
    i: usize,
    client_id: usize,
    seq: u64,
) -> CallOutcome {
    let Some(c) = checks.get(i) else {
        return CallOutcome::of(false, 0);
    };
    let token = args.token.as_str();
    let client = &mut wire.client;
    match args.op {
        Op::Check => {
            let req = pb::CheckPermissionRequest {
                consistency: consistency(args.consistency),
                resource: Some(object(&c.resource_type, &c.resource_id)),
                permission: c.permission.clone(),
                subject: Some(subject(c)),
                ..Default::default()
            };
            let Ok(req) = authed(req, token) else {
                return CallOutcome::of(false, 0);
            };
            CallOutcome::of(client.check_permission(req).await.is_ok(), 1)
        }
        Op::BulkCheck => {
            let count = args.bulk_size.max(1) as u64;
            let body = wire
                .encoded_bulk
                .entry(i)
                .or_insert_with(|| encode_bulk(args, checks, i))
                .clone();
            let Ok(req) = authed(body, token) else {
                return CallOutcome::of(false, 0);
            };
            if wire.raw.ready().await.is_err() {
                return CallOutcome::of(false, count);
            }
            let path = http::uri::PathAndQuery::from_static(
                "/authzed.api.v1.PermissionsService/CheckBulkPermissions",
            );
            match wire.raw.unary(req, path, RawBulkCodec).await {
                Ok(resp) => {
                    let summary = resp.into_inner();
                    let failed = summary.pairs.iter().any(|p| p.error.is_some());
                    CallOutcome::of(!failed && summary.pairs.len() as u64 == count, count)
                }
                Err(_) => CallOutcome::of(false, count),
            }
        }
        Op::LookupResources => {
            let req = pb::LookupResourcesRequest {
                consistency: consistency(args.consistency),
                resource_object_type: c.resource_type.clone(),
                permission: c.permission.clone(),
                subject: Some(subject(c)),
                ..Default::default()
            };
            let Ok(req) = authed(req, token) else {
                return CallOutcome::of(false, 0);
            };
            let path = http::uri::PathAndQuery::from_static(
                "/authzed.api.v1.PermissionsService/LookupResources",
            );
            count_stream(&mut wire.raw, req, path).await
        }
        Op::LookupSubjects => {
            let req = pb::LookupSubjectsRequest {
                consistency: consistency(args.consistency),
                resource: Some(object(&c.resource_type, &c.resource_id)),
                permission: c.permission.clone(),
                subject_object_type: c.subject_type.clone(),
                ..Default::default()
            };
            let Ok(req) = authed(req, token) else {
                return CallOutcome::of(false, 0);
            };
            let path = http::uri::PathAndQuery::from_static(
                "/authzed.api.v1.PermissionsService/LookupSubjects",
            );
            count_stream(&mut wire.raw, req, path).await
        }
        Op::Write => {
            let rel = pb::Relationship {
                resource: Some(object(&c.resource_type, &c.resource_id)),
                relation: "viewer".to_string(),
                subject: Some(pb::SubjectReference {
                    object: Some(object("user", &format!("bench_{client_id}_{seq}"))),
                    optional_relation: String::new(),
                }),
                ..Default::default()
            };
            let req = pb::WriteRelationshipsRequest {
                updates: vec![pb::RelationshipUpdate {
                    operation: pb::relationship_update::Operation::Touch as i32,
                    relationship: Some(rel),
                }],
                ..Default::default()
            };
            let Ok(req) = authed(req, token) else {
                return CallOutcome::of(false, 0);
            };
            CallOutcome::of(client.write_relationships(req).await.is_ok(), 1)
        }
        Op::Health => {
            let req = tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            };
            let Ok(req) = authed(req, token) else {
                return CallOutcome::of(false, 0);
            };
            CallOutcome::of(wire.health.check(req).await.is_ok(), 1)
        }
    }
}

/// Sends a streaming call and counts its messages without decoding their fields; notes when
/// the first arrived.
async fn count_stream<M: prost::Message + Send + Sync + 'static>(
    raw: &mut tonic::client::Grpc<Channel>,
    req: tonic::Request<M>,
    path: http::uri::PathAndQuery,
) -> CallOutcome {
    let started = Instant::now();
    if raw.ready().await.is_err() {
        return CallOutcome::of(false, 0);
    }
    let codec = tonic_prost::ProstCodec::<M, Skipped>::default();
    let Ok(resp) = raw.server_streaming(req, path, codec).await else {
        return CallOutcome::of(false, 0);
    };
    let mut stream = resp.into_inner();
    let mut out = CallOutcome::of(false, 0);
    loop {
        match stream.message().await {
            Ok(Some(_)) => {
                if out.first.is_none() {
                    out.first = Some(started.elapsed());
                }
                out.items += 1;
            }
            Ok(None) => {
                out.ok = true;
                return out;
            }
            Err(_) => return out,
        }
    }
}

/// Any message, its fields skipped: what a stream is counted with.
#[derive(Clone, PartialEq, prost::Message)]
struct Skipped {}

/// What the bench reads of a CheckBulkPermissionsResponse: one entry per pair, with whether it
/// is an error (field numbers of `authzed.api.v1`; every other field is skipped undecoded).
#[derive(Clone, PartialEq, prost::Message)]
struct BulkSummary {
    #[prost(message, repeated, tag = "2")]
    pairs: Vec<PairSummary>,
}

/// One pair of a CheckBulkPermissionsResponse: only its `error` (field 3).
#[derive(Clone, PartialEq, prost::Message)]
struct PairSummary {
    #[prost(message, optional, tag = "3")]
    error: Option<Skipped>,
}

/// The CheckBulkPermissionsRequest of the `--bulk-size` checks from line `i` on, encoded.
fn encode_bulk(args: &BenchArgs, checks: &[CheckLine], i: usize) -> prost::bytes::Bytes {
    let items: Vec<_> = (0..args.bulk_size.max(1))
        .filter_map(|k| checks.get((i + k) % checks.len().max(1)))
        .map(|c| pb::CheckBulkPermissionsRequestItem {
            resource: Some(object(&c.resource_type, &c.resource_id)),
            permission: c.permission.clone(),
            subject: Some(subject(c)),
            context: None,
        })
        .collect();
    let req = pb::CheckBulkPermissionsRequest {
        consistency: consistency(args.consistency),
        items,
        with_tracing: false,
    };
    prost::bytes::Bytes::from(prost::Message::encode_to_vec(&req))
}

/// Sends pre-encoded CheckBulkPermissions requests and decodes `BulkSummary`.
#[derive(Debug, Clone, Copy, Default)]
struct RawBulkCodec;

impl tonic::codec::Codec for RawBulkCodec {
    type Encode = prost::bytes::Bytes;
    type Decode = BulkSummary;
    type Encoder = RawBulkCodec;
    type Decoder = RawBulkCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawBulkCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawBulkCodec
    }
}

impl tonic::codec::Encoder for RawBulkCodec {
    type Item = prost::bytes::Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Self::Item,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Self::Error> {
        prost::bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawBulkCodec {
    type Item = BulkSummary;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Self::Item>, Self::Error> {
        <BulkSummary as prost::Message>::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("undecodable response: {e}")))
    }
}

/// Fetches a Prometheus text page over plain HTTP/1.0.
async fn fetch_metrics(url: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("--metrics-url must start with http://"))?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .with_context(|| format!("connecting to {host}"))?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    Ok(body
        .split_once("\r\n\r\n")
        .map_or(body.clone(), |(_, b)| b.to_string()))
}

/// Sums every sample of a metric family (all label sets).
fn metric_sum(page: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in page.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            found = Some(found.unwrap_or(0.0) + v);
        }
    }
    found
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted.get(idx).copied().unwrap_or(0)) / 1000.0
}

/// Runs `arbor bench`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    let checks = Arc::new(read_checks(&args.workload)?);
    let first = connect(&args.target).await?;
    if args.load {
        load(&args, first.clone()).await?;
    }
    if matches!(args.op, Op::Check | Op::BulkCheck) {
        let n = verify(&args, first.clone(), &checks).await?;
        if n > 0 {
            eprintln!("verified {n} answers against the workload's expected answers");
        }
    }
    if let Some(path) = &args.answers_out {
        write_answers(&args, path, first.clone(), &checks).await?;
    }
    let before = match &args.metrics_url {
        Some(url) => Some(fetch_metrics(url).await?),
        None => None,
    };
    let args = Arc::new(args);
    let started = Instant::now();
    let measure_from = started + args.warmup;
    let stop_at = measure_from + args.duration;
    let mut tasks = Vec::with_capacity(args.clients);
    for id in 0..args.clients {
        let channel = connect(&args.target).await?;
        tasks.push(tokio::spawn(run_client(
            id,
            Arc::clone(&args),
            channel,
            Arc::clone(&checks),
            measure_from,
            stop_at,
        )));
    }
    let mut latencies = Vec::new();
    let mut firsts = Vec::new();
    let mut errors = 0;
    let mut items = 0;
    for t in tasks {
        let r = t.await.map_err(|e| anyhow!("a client task failed: {e}"))?;
        latencies.extend(r.latencies_us);
        firsts.extend(r.first_us);
        errors += r.errors;
        items += r.items;
    }
    let secs = args.duration.as_secs_f64().max(1e-9);
    latencies.sort_unstable();
    firsts.sort_unstable();
    let calls = latencies.len();
    let (mut hit_ratio, mut rss_mib) = (None, None);
    if let (Some(url), Some(before)) = (&args.metrics_url, before) {
        let after = fetch_metrics(url).await?;
        let delta = |name: &str| {
            metric_sum(&after, name).unwrap_or(0.0) - metric_sum(&before, name).unwrap_or(0.0)
        };
        let (hits, misses) = (
            delta("arbor_dispatch_cache_hits_total"),
            delta("arbor_dispatch_cache_misses_total"),
        );
        if hits + misses > 0.0 {
            hit_ratio = Some(hits / (hits + misses));
        }
        rss_mib = metric_sum(&after, "process_resident_memory_bytes").map(|b| b / 1048576.0);
    }
    if rss_mib.is_none() {
        rss_mib = args.server_pid.and_then(rss_of_pid);
    }
    let op = format!("{:?}", args.op).to_lowercase();
    println!(
        "{:<14} {:<16} {:>7} {:>9} {:>11} {:>11} {:>8} {:>8} {:>8} {:>8} {:>6} {:>9} {:>8}",
        "label",
        "op",
        "clients",
        "calls",
        "calls/s",
        "items/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "errors",
        "cache hit",
        "RSS MiB"
    );
    println!(
        "{:<14} {:<16} {:>7} {:>9} {:>11.0} {:>11.0} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>6} {:>9} {:>8}",
        if args.label.is_empty() {
            "-"
        } else {
            &args.label
        },
        op,
        args.clients,
        calls,
        calls as f64 / secs,
        items as f64 / secs,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
        errors,
        hit_ratio.map_or("-".to_string(), |h| format!("{:.1}%", h * 100.0)),
        rss_mib.map_or("-".to_string(), |r| format!("{r:.0}")),
    );
    if !firsts.is_empty() {
        println!(
            "first result of a stream: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} streams with results)",
            percentile(&firsts, 0.50),
            percentile(&firsts, 0.90),
            percentile(&firsts, 0.99),
            percentile(&firsts, 1.0),
            firsts.len()
        );
    }
    let first_json = if firsts.is_empty() {
        "null".to_string()
    } else {
        format!(
            "{{\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
            percentile(&firsts, 0.50),
            percentile(&firsts, 0.99),
            percentile(&firsts, 1.0)
        )
    };
    if args.json {
        println!(
            "{{\"label\":\"{}\",\"op\":\"{op}\",\"clients\":{},\"seconds\":{secs},\"calls\":{calls},\"calls_per_s\":{:.1},\"items_per_s\":{:.1},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3},\"errors\":{errors},\"cache_hit_ratio\":{},\"rss_mib\":{},\"first_result\":{first_json}}}",
            args.label,
            args.clients,
            calls as f64 / secs,
            items as f64 / secs,
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.90),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0),
            hit_ratio.map_or("null".to_string(), |h| format!("{h:.4}")),
            rss_mib.map_or("null".to_string(), |r| format!("{r:.1}")),
        );
    }
    if calls > 0 && errors as usize == calls {
        bail!("every call failed: is the server up, and the token right?");
    }
    Ok(())
}
