//! `arbor audit`: verifies the audit log of a data directory (optionally against a signed
//! anchor), queries and tails it as JSON lines, anchors its head, and makes anchor key pairs;
//! `stream` follows a running server's log over `arbor.v1.AuditService` as JSON lines.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use arbor::api::audit_json::{entry_json, proto_entry_json};
use arbor::api::grpc::proto::arbor::v1 as pb;
use arbor::identity::audit::anchor::{
    Anchor, AnchorKey, AnchorPublicKey, read_anchor_file, write_anchor_file, write_key_files,
};
use arbor::identity::audit::{self, AuditEntry, AuditQuery, VerifyReport};
use arbor::identity::{IdentityError, Source};
use arbor::model::{ObjectRef, SubjectFilter, Timestamp};
use arbor::store::Datastore;
use arbor::store::rocks::RocksDatastore;
use pb::audit_service_client::AuditServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use super::DataDirArgs;

/// Exit code: the log is intact (or the command did its work).
const EXIT_OK: u8 = 0;
/// Exit code: the log is not intact, or the anchor's signature does not hold.
const EXIT_BROKEN: u8 = 1;
/// Entries read per step by `tail` and `query`.
const PAGE: usize = 1_000;
/// The object type and relation that link an organization to its parent
/// (`organization:child#parent@organization:parent`).
const ORG_TYPE: &str = "organization";
const PARENT_RELATION: &str = "parent";
/// `arbor audit stream`: the first wait before reconnecting a broken stream; it doubles
/// with every failed attempt and starts over once a stream is open again.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// `arbor audit stream`: the longest wait between reconnection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// `arbor audit stream`: how long one connection attempt may take before it counts as
/// failed (and, while following, is retried).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// `arbor audit stream`: HTTP/2 pings on a quiet stream, so a connection that died without
/// a word (a dropped NAT entry, a vanished host) is noticed and replaced...
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// ...when a ping is not answered within this long.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// `arbor audit stream`: the largest entry accepted, in bytes. An organization deletion
/// lists every relationship it removed, so one entry can far exceed gRPC's 4 MiB default.
const MAX_ENTRY_BYTES: usize = 256 << 20;
/// `arbor audit stream --once`: entries asked per QueryAudit page (the server's maximum).
const ONCE_PAGE: u32 = 1_000;
/// `arbor audit stream`: the server asked when `--target` is not given (`arbor serve`'s
/// default gRPC address).
const DEFAULT_TARGET: &str = "127.0.0.1:50051";

pub const AFTER_HELP: &str = "\
Every change committed through Arbor appends one entry to a hash-chained audit log kept in the
data directory. `verify` checks every hash and link; with a signed anchor (written outside the
data directory by `arbor audit anchor` or the server) it also catches a removed tail or a
recomputed chain. `query` and `tail` print entries as JSON lines.

Exit status:
  0  success (for `verify`: the log is intact)
  1  the log is not intact, the anchor's signature does not hold, or the command failed
  2  the command line is wrong

The data directory is opened read-only, so these commands also work while `arbor serve` has
it open; they see its state as of the moment they open it. `stream` reads no data directory: it
asks a running server over gRPC (see `arbor audit stream --help`).";

pub const STREAM_AFTER_HELP: &str = "\
Prints each entry of the server's audit log after --after as one JSON line on stdout (the same
fields as `arbor audit tail`; `details` names in name order), flushed line by line, then keeps
printing new entries as they commit. A caller scoped to an organization sees only entries
touching its subtree.

When the stream breaks (the server restarts, the network drops), it reconnects after 1 s,
doubling the wait up to 30 s while attempts fail, and resumes after the last entry printed:
no entry is printed twice or skipped. Reconnections are reported on stderr.

With --once it prints the entries that exist when it runs, read page by page with QueryAudit,
and exits; it does not retry.

Exit status:
  0  stopped by Ctrl-C (SIGINT), --once finished, or the reader of stdout went away
  1  the token was refused (UNAUTHENTICATED), permission was denied, the request was refused
     (an unknown organization, ...), or, with --once, the server could not be reached
  2  the command line is wrong

The token is sent as `authorization: Bearer TOKEN` and never printed. Prefer ARBOR_TOKEN to
--token: a command line is visible to other users of the machine.

Example: ARBOR_TOKEN=... arbor audit stream --target arbor.internal:50051 \\
           --tls-ca ca.pem --organization acme >> acme-audit.jsonl";

/// `arbor audit` options.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// The `arbor audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check every entry's hash and link, and the head; with an anchor, also that the chain
    /// still reaches the anchored entry with the anchored hash.
    Verify(VerifyArgs),
    /// Print the entries matching filters as JSON lines, in sequence order.
    Query(QueryArgs),
    /// Print every entry after a sequence number as JSON lines.
    Tail(TailArgs),
    /// Sign the current head of the log and write it to an anchor file (atomically).
    Anchor(AnchorArgs),
    /// Make an Ed25519 key pair for anchors: PREFIX.key (secret) and PREFIX.pub (public).
    Keygen(KeygenArgs),
    /// Follow a running server's audit log (arbor.v1.AuditService) and print each entry as
    /// a JSON line, reconnecting when the stream breaks: a feed for a SIEM.
    #[command(after_help = STREAM_AFTER_HELP)]
    Stream(StreamArgs),
}

/// `arbor audit verify` options.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub data: DataDirArgs,
    /// An anchor file (`arbor-audit-anchor v1 seq=… hash=… time=… sig=…`) kept outside the
    /// data directory; needs --anchor-public-key-file.
    #[arg(long, value_name = "FILE", requires = "anchor_public_key_file")]
    pub anchor_file: Option<PathBuf>,
    /// The public key file (`arbor-audit-key v1 ed25519-public <hex>`) that checks the
    /// anchor's signature.
    #[arg(long, value_name = "FILE", requires = "anchor_file")]
    pub anchor_public_key_file: Option<PathBuf>,
}

/// `arbor audit query` options.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub data: DataDirArgs,
    /// Only entries touching this organization or any organization below it (resolved from
    /// `organization:child#parent@organization:parent` at the newest revision); repeatable.
    #[arg(long = "org", value_name = "ORG")]
    pub orgs: Vec<String>,
    /// Only entries whose actor principal, on-behalf-of user or session initiator is this
    /// (`platform-key:k1`, `user:alice`, …).
    #[arg(long, value_name = "ACTOR")]
    pub actor: Option<String>,
    /// Only entries about this subject (`user:bob`, `team:t#member`).
    #[arg(long, value_name = "SUBJECT")]
    pub subject: Option<String>,
    /// Only entries from this source: api, admin, scim, sso or system.
    #[arg(long, value_name = "SOURCE", value_parser = parse_source)]
    pub source: Option<Source>,
    /// Only entries at or after this time (RFC 3339, e.g. 2025-01-31T00:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub from: Option<Timestamp>,
    /// Only entries before this time (RFC 3339; exclusive).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub to: Option<Timestamp>,
    /// Start after this sequence number (0: from the oldest kept entry).
    #[arg(long = "after", value_name = "SEQ", default_value_t = 0)]
    pub after_seq: u64,
    /// Print at most N entries (default: every match).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

/// `arbor audit tail` options.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub data: DataDirArgs,
    /// Print the entries after this sequence number (0: every kept entry).
    #[arg(long = "after", value_name = "SEQ", default_value_t = 0)]
    pub after_seq: u64,
}

/// `arbor audit anchor` options.
#[derive(Debug, clap::Args)]
pub struct AnchorArgs {
    #[command(flatten)]
    pub data: DataDirArgs,
    /// The secret key file (`arbor-audit-key v1 ed25519-secret <hex>`) that signs.
    #[arg(long, value_name = "FILE")]
    pub key_file: PathBuf,
    /// Where to write the anchor (replaced atomically); keep it outside the data directory.
    #[arg(long, value_name = "FILE")]
    pub anchor_file: PathBuf,
}

/// `arbor audit keygen` options.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Path prefix of the key files: writes PREFIX.key (secret, mode 0600) and PREFIX.pub;
    /// refuses to overwrite either.
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
}

/// `arbor audit stream` options.
#[derive(Debug, clap::Args)]
pub struct StreamArgs {
    /// The server's gRPC address, HOST:PORT (an `http://` or, with --tls-ca, `https://`
    /// prefix is accepted).
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_TARGET)]
    pub target: String,
    /// The bearer token: a platform key, or an organization's credential (which sees its
    /// subtree only). Never printed; prefer the environment variable.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "ARBOR_TOKEN",
        hide_env_values = true,
        value_parser = parse_token
    )]
    pub token: Token,
    /// Only entries touching this organization or any organization below it (an
    /// organization's credential must have it in scope; without this flag it sees its own
    /// subtree).
    #[arg(long, value_name = "ORG")]
    pub organization: Option<String>,
    /// Start after this sequence number (0: from the oldest kept entry); to resume a feed,
    /// give the `seq` of the last line received.
    #[arg(long = "after", value_name = "SEQ", default_value_t = 0)]
    pub after_seq: u64,
    /// Print the entries that exist now (paging through QueryAudit) and exit, instead of
    /// following the log.
    #[arg(long)]
    pub once: bool,
    /// Connect with TLS, checking the server's certificate against this CA certificate
    /// (PEM) and the host name of --target.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub tls_ca: Option<PathBuf>,
    /// Connect in plaintext (the default, as `arbor serve` without --grpc-tls-cert-path
    /// serves); the token then crosses the network in the clear.
    #[arg(long)]
    pub insecure: bool,
}

/// A bearer token; `Debug` never shows it.
#[derive(Clone)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Refuses only an empty token: clap repeats a refused value in its message, so nothing
/// that could be a real token is refused here (see `bearer`).
fn parse_token(text: &str) -> Result<Token, String> {
    if text.trim().is_empty() {
        Err("the token is empty".to_string())
    } else {
        Ok(Token(text.to_string()))
    }
}

fn parse_source(text: &str) -> Result<Source, String> {
    Source::parse(text)
        .ok_or_else(|| format!("`{text}` is not one of api, admin, scim, sso, system"))
}

fn parse_time(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(text).map_err(|_| format!("`{text}` is not an RFC 3339 time"))
}

/// Opens the data directory read-only: no lock, so a running server may keep it open; the
/// view is the directory's state as of opening.
fn open(dir: &Path) -> anyhow::Result<RocksDatastore> {
    Ok(RocksDatastore::open_read_only(dir)?)
}

/// Runs `arbor audit`.
pub fn run(args: &AuditArgs) -> anyhow::Result<u8> {
    match &args.command {
        AuditCommand::Verify(a) => run_verify(a),
        AuditCommand::Query(a) => run_query(a),
        AuditCommand::Tail(a) => run_tail(a),
        AuditCommand::Anchor(a) => run_anchor(a),
        AuditCommand::Keygen(a) => run_keygen(a),
        AuditCommand::Stream(a) => run_stream(a),
    }
}

fn run_verify(args: &VerifyArgs) -> anyhow::Result<u8> {
    let anchor = match (&args.anchor_file, &args.anchor_public_key_file) {
        (Some(anchor_file), Some(key_file)) => {
            let key = AnchorPublicKey::from_file(key_file)?;
            let anchor = read_anchor_file(anchor_file)?;
            if let Err(e) = anchor.check_signature(&key) {
                return Ok(report_broken(&e));
            }
            Some(anchor)
        }
        _ => None,
    };
    let store = open(&args.data.data_dir)?;
    match audit::verify(&store, anchor.as_ref()) {
        Ok(report) => {
            let _ = writeln!(std::io::stdout(), "{}", summary(&report, anchor.as_ref()));
            Ok(EXIT_OK)
        }
        Err(e @ IdentityError::AuditBroken(_)) => Ok(report_broken(&e)),
        Err(e) => Err(e.into()),
    }
}

fn report_broken(e: &IdentityError) -> u8 {
    let _ = writeln!(std::io::stderr(), "arbor: {e}");
    EXIT_BROKEN
}

/// One line: `audit log intact: 42 entries (seq 1..42), head 42 <hash>; anchored at 40`.
fn summary(report: &VerifyReport, anchor: Option<&Anchor>) -> String {
    let mut line = match (report.first_seq, report.head) {
        (Some(first), Some(head)) => format!(
            "audit log intact: {} entries (seq {first}..{}), head {}",
            report.entries,
            head.seq,
            arbor::identity::audit::hex(&head.hash)
        ),
        _ => "audit log intact: no entries".to_string(),
    };
    if let Some(base) = report.base {
        line.push_str(&format!("; entries up to seq {} were pruned", base.seq));
    }
    if let Some(anchor) = anchor {
        line.push_str(&format!(
            "; matches the anchor at seq {} ({})",
            anchor.seq, anchor.time
        ));
    }
    line
}

/// Writes one entry as a JSON line.
fn print_entry(out: &mut impl Write, entry: &AuditEntry) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &entry_json(entry))?;
    out.write_all(b"\n")
}

/// Whether an output error means the reader went away (`| head`): then stop quietly.
fn closed_pipe(result: std::io::Result<()>) -> anyhow::Result<bool> {
    match result {
        Ok(()) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(true),
        Err(e) => Err(e).context("cannot write the entries"),
    }
}

fn run_tail(args: &TailArgs) -> anyhow::Result<u8> {
    let store = open(&args.data.data_dir)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut after = args.after_seq;
    loop {
        let entries = audit::read_after(&store, after, PAGE)?;
        for entry in &entries {
            if closed_pipe(print_entry(&mut out, entry))? {
                return Ok(EXIT_OK);
            }
        }
        match entries.last() {
            Some(last) if entries.len() == PAGE => after = last.seq,
            _ => break,
        }
    }
    closed_pipe(out.flush())?;
    Ok(EXIT_OK)
}

/// `root` and every organization below it, following `organization:child#parent@organization:parent`
/// backwards at the store's newest revision.
fn org_subtree(store: &dyn Datastore, roots: &[String]) -> anyhow::Result<BTreeSet<String>> {
    let snapshot = store.snapshot(store.head_revision()?)?;
    let mut found: BTreeSet<String> = BTreeSet::new();
    let mut queue: Vec<String> = Vec::new();
    for root in roots {
        // Validates the id the same way relationships do.
        ObjectRef::new(ORG_TYPE, root)
            .map_err(|e| anyhow::anyhow!("`{root}` is not an organization id: {e}"))?;
        if found.insert(root.clone()) {
            queue.push(root.clone());
        }
    }
    while let Some(parent) = queue.pop() {
        let filter = SubjectFilter {
            subject_type: ORG_TYPE.to_string(),
            subject_id: Some(parent),
            relation: Some(None),
        };
        for rel in snapshot.read_by_subject(ORG_TYPE, PARENT_RELATION, &filter) {
            let child = rel?.resource().object_id().to_string();
            if found.insert(child.clone()) {
                queue.push(child);
            }
        }
    }
    Ok(found)
}

fn run_query(args: &QueryArgs) -> anyhow::Result<u8> {
    let store = open(&args.data.data_dir)?;
    let orgs = if args.orgs.is_empty() {
        None
    } else {
        Some(org_subtree(&store, &args.orgs)?)
    };
    let mut q = AuditQuery {
        orgs,
        actor: args.actor.clone(),
        subject: args.subject.clone(),
        source: args.source,
        from: args.from,
        to: args.to,
        after_seq: args.after_seq,
        limit: PAGE,
    };
    let mut remaining = args.limit.unwrap_or(usize::MAX);
    let mut out = BufWriter::new(std::io::stdout().lock());
    while remaining > 0 {
        q.limit = remaining.min(PAGE);
        let page = audit::query(&store, &q)?;
        for entry in &page.entries {
            if closed_pipe(print_entry(&mut out, entry))? {
                return Ok(EXIT_OK);
            }
        }
        remaining = remaining.saturating_sub(page.entries.len());
        match page.next_after {
            Some(next) => q.after_seq = next,
            None => break,
        }
    }
    closed_pipe(out.flush())?;
    Ok(EXIT_OK)
}

fn run_anchor(args: &AnchorArgs) -> anyhow::Result<u8> {
    let key = AnchorKey::from_file(&args.key_file)?;
    let store = open(&args.data.data_dir)?;
    let Some(head) = audit::head(&store)? else {
        anyhow::bail!("the audit log is empty: nothing to anchor");
    };
    let anchor = Anchor::sign(&key, &head, Timestamp::now());
    write_anchor_file(&args.anchor_file, &anchor)?;
    let _ = writeln!(std::io::stdout(), "{}", anchor.to_line());
    Ok(EXIT_OK)
}

fn run_keygen(args: &KeygenArgs) -> anyhow::Result<u8> {
    let key = AnchorKey::generate()?;
    let (secret, public) = write_key_files(&key, &args.out)?;
    let _ = writeln!(
        std::io::stdout(),
        "wrote the secret key to {} and the public key to {}",
        secret.display(),
        public.display()
    );
    Ok(EXIT_OK)
}

fn run_stream(args: &StreamArgs) -> anyhow::Result<u8> {
    let endpoint = endpoint(args)?;
    let auth = bearer(&args.token)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let mut printer = Printer {
            out: std::io::stdout(),
            last: args.after_seq,
        };
        let work = async {
            if args.once {
                print_existing(&endpoint, &auth, args, &mut printer).await
            } else {
                follow(&endpoint, &auth, args, &mut printer).await
            }
        };
        // Cancelling `work` at an await point never cuts a line: each line is written and
        // flushed without awaiting in between.
        tokio::select! {
            result = work => result,
            signal = tokio::signal::ctrl_c() => {
                signal.context("cannot listen for Ctrl-C")?;
                Ok(EXIT_OK)
            }
        }
    })
}

/// The endpoint `--target` names, in plaintext or with TLS against `--tls-ca`.
fn endpoint(args: &StreamArgs) -> anyhow::Result<Endpoint> {
    let target = args.target.trim().trim_end_matches('/');
    let tls = args.tls_ca.is_some();
    let authority = if let Some(rest) = target.strip_prefix("https://") {
        if !tls {
            bail!(
                "--target `{target}` asks for TLS: give --tls-ca FILE, the CA certificate that \
                 signed the server's"
            );
        }
        rest
    } else if let Some(rest) = target.strip_prefix("http://") {
        if tls {
            bail!("--target `{target}` asks for plaintext, but --tls-ca asks for TLS");
        }
        rest
    } else if target.contains("://") {
        bail!("--target `{target}` is not HOST:PORT");
    } else {
        target
    };
    let scheme = if tls { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{authority}"))
        .map_err(|e| anyhow!("--target `{target}` is not HOST:PORT: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    if let Some(ca) = &args.tls_ca {
        let pem = std::fs::read(ca)
            .with_context(|| format!("cannot read the CA certificate {}", ca.display()))?;
        endpoint = endpoint
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
            .map_err(|e| anyhow!("cannot set up TLS: {}", error_chain(&e)))?;
    }
    Ok(endpoint)
}

/// The `authorization` header value, marked sensitive so no log of the HTTP/2 layer shows it.
fn bearer(token: &Token) -> anyhow::Result<MetadataValue<Ascii>> {
    let mut value: MetadataValue<Ascii> = format!("Bearer {}", token.0)
        .parse()
        .map_err(|_| anyhow!("the token contains characters not allowed in a header"))?;
    value.set_sensitive(true);
    Ok(value)
}

fn authed<T>(message: T, auth: &MetadataValue<Ascii>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", auth.clone());
    request
}

/// An error with its causes (tonic's transport errors say little at the top), each said
/// once: some layers repeat their cause's message.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut previous = text.clone();
    let mut source = e.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if said != previous {
            text.push_str(": ");
            text.push_str(&said);
        }
        previous = said;
        source = cause.source();
    }
    text
}

/// Prints entries as JSON lines, each flushed, and remembers the last seq printed so a
/// resumed stream neither repeats nor skips one.
struct Printer<W> {
    out: W,
    last: u64,
}

impl<W: Write> Printer<W> {
    /// Prints `entry` unless it is at or before the last one printed; `false` when the
    /// reader of the output went away.
    fn print(&mut self, entry: &pb::AuditEntry) -> anyhow::Result<bool> {
        if entry.seq <= self.last {
            return Ok(true);
        }
        let mut line = serde_json::to_string(&proto_entry_json(entry))
            .context("cannot render an audit entry")?;
        line.push('\n');
        let written = self
            .out
            .write_all(line.as_bytes())
            .and_then(|()| self.out.flush());
        if closed_pipe(written)? {
            return Ok(false);
        }
        self.last = entry.seq;
        Ok(true)
    }
}

/// How one attempt at following the stream ended.
enum Ended {
    /// The reader of stdout went away.
    Closed,
    /// The stream broke or could not be opened; worth another try. `opened`: it had been
    /// open (so the backoff starts over).
    Broken { opened: bool, reason: String },
    /// Retrying cannot help.
    Fatal(anyhow::Error),
}

/// A refused call's error, or `None` when another try may succeed.
fn refusal(status: &tonic::Status) -> Option<anyhow::Error> {
    use tonic::Code;
    match status.code() {
        // The message is not shown: there is nothing in it but the refusal.
        Code::Unauthenticated => Some(anyhow!(
            "the token was refused (UNAUTHENTICATED): check --token or ARBOR_TOKEN"
        )),
        Code::PermissionDenied => Some(anyhow!("permission denied: {}", status.message())),
        Code::Unimplemented => Some(anyhow!(
            "the server does not serve arbor.v1.AuditService: {}",
            status.message()
        )),
        Code::InvalidArgument
        | Code::NotFound
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::AlreadyExists => Some(anyhow!(
            "the server refused the request ({:?}): {}",
            status.code(),
            status.message()
        )),
        _ => None,
    }
}

fn describe(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// Follows the stream, reconnecting with backoff, until stdout closes or a call is refused.
async fn follow<W: Write>(
    endpoint: &Endpoint,
    auth: &MetadataValue<Ascii>,
    args: &StreamArgs,
    printer: &mut Printer<W>,
) -> anyhow::Result<u8> {
    let mut backoff = BACKOFF_FIRST;
    loop {
        match follow_once(endpoint, auth, args, printer).await {
            Ended::Closed => return Ok(EXIT_OK),
            Ended::Fatal(e) => return Err(e),
            Ended::Broken { opened, reason } => {
                if opened {
                    backoff = BACKOFF_FIRST;
                }
                let _ = writeln!(
                    std::io::stderr(),
                    "arbor: {reason}; reconnecting in {} s, resuming after seq {}",
                    backoff.as_secs(),
                    printer.last
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// One connection: opens StreamAudit after the last seq printed and prints until it ends.
async fn follow_once<W: Write>(
    endpoint: &Endpoint,
    auth: &MetadataValue<Ascii>,
    args: &StreamArgs,
    printer: &mut Printer<W>,
) -> Ended {
    let channel = match endpoint.connect().await {
        Ok(channel) => channel,
        Err(e) => {
            return Ended::Broken {
                opened: false,
                reason: format!("cannot connect to {}: {}", args.target, error_chain(&e)),
            };
        }
    };
    let mut client = AuditServiceClient::new(channel).max_decoding_message_size(MAX_ENTRY_BYTES);
    let request = pb::StreamAuditRequest {
        after_seq: printer.last,
        organization: args.organization.clone().unwrap_or_default(),
    };
    let broken = |status: tonic::Status, opened: bool| match refusal(&status) {
        Some(e) => Ended::Fatal(e),
        None => Ended::Broken {
            opened,
            reason: format!("the audit stream broke ({})", describe(&status)),
        },
    };
    let mut stream = match client.stream_audit(authed(request, auth)).await {
        Ok(response) => response.into_inner(),
        Err(status) => return broken(status, false),
    };
    loop {
        match stream.message().await {
            Ok(Some(entry)) => match printer.print(&entry) {
                Ok(true) => {}
                Ok(false) => return Ended::Closed,
                Err(e) => return Ended::Fatal(e),
            },
            Ok(None) => {
                return Ended::Broken {
                    opened: true,
                    reason: "the server ended the audit stream".to_string(),
                };
            }
            Err(status) => return broken(status, true),
        }
    }
}

/// `--once`: pages through QueryAudit from the last seq printed to the end of the log.
/// The page token Arbor's QueryAudit gives is the seq to resume after, so `--after` starts
/// there directly.
async fn print_existing<W: Write>(
    endpoint: &Endpoint,
    auth: &MetadataValue<Ascii>,
    args: &StreamArgs,
    printer: &mut Printer<W>,
) -> anyhow::Result<u8> {
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| anyhow!("cannot connect to {}: {}", args.target, error_chain(&e)))?;
    let mut client = AuditServiceClient::new(channel).max_decoding_message_size(MAX_ENTRY_BYTES);
    let mut page_token = match printer.last {
        0 => String::new(),
        after => after.to_string(),
    };
    loop {
        let request = pb::QueryAuditRequest {
            organization: args.organization.clone().unwrap_or_default(),
            page_size: ONCE_PAGE,
            page_token,
            ..pb::QueryAuditRequest::default()
        };
        let page = client
            .query_audit(authed(request, auth))
            .await
            .map_err(|status| {
                refusal(&status)
                    .unwrap_or_else(|| anyhow!("QueryAudit failed ({})", describe(&status)))
            })?
            .into_inner();
        for entry in &page.entries {
            if !printer.print(entry)? {
                return Ok(EXIT_OK);
            }
        }
        if page.next_page_token.is_empty() {
            return Ok(EXIT_OK);
        }
        page_token = page.next_page_token;
    }
}
