//! `arbor import FILE`: loads relationships (a `relationships.txt`-style file, or a validation
//! YAML file with its schema) into a data directory at one revision, all or nothing, parsing
//! on one thread while the datastore writes on another, with a progress bar.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

use anyhow::Context as _;
use arbor::model::Relationship;
use arbor::schema::{self, Schema};
use arbor::store::rocks::RocksDatastore;
use arbor::store::{Datastore, StoreError, check_schema_change};
use arbor::validate::ValidationFile;
use indicatif::{ProgressBar, ProgressStyle};

use super::{DataDirArgs, directory_bytes, human_bytes, open_store};

/// Exit code: imported.
const EXIT_OK: u8 = 0;
/// Exit code: nothing imported (a bad line, a duplicate, a refused schema).
const EXIT_FAILED: u8 = 1;

/// Relationships the parser hands over at a time.
const PARSE_BATCH: usize = 4_096;
/// Parsed batches that may wait for the writer (bounds memory while the writer is busy).
const PARSE_QUEUE: usize = 8;

pub const AFTER_HELP: &str = "\
FILE is either
  - a text file with one relationship per line, as `shared/workloads/*/relationships.txt`:
      document:q3#viewer@team:eng#member
      document:q3#viewer@user:tom[only_weekdays:{\"tz\":\"UTC\"}][expiration:2030-01-01T00:00:00Z]
    (blank lines and lines starting with `//` are skipped), or
  - a validation file (`.yaml` / `.yml`, the format `arbor validate` reads): its schema is
    written first, then its `relationships:` are imported.

Every relationship is loaded at one new revision, all or nothing: a line that does not parse,
one that the schema does not allow, or one that exists already (in the data directory, or
earlier in FILE) stops the import, nothing is written, and the problem is printed as
`FILE:line:column: message`. Relationships are checked against the schema in force (the one
given with --schema or in the YAML file, else the one stored); with no schema anywhere they
are loaded unchecked.

Exit status: 0 imported, 1 nothing imported (the reason is printed), 2 bad command line.";

/// `arbor import` options.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The relationships to load (see below for the formats).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// A schema file (`.zed`) to write before the relationships; refused if it would orphan
    /// relationships already stored.
    #[arg(long, value_name = "SCHEMA_FILE")]
    pub schema: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataDirArgs,
}

/// A problem at a place in a file.
#[derive(Debug)]
struct Located {
    file: String,
    line: usize,
    column: usize,
    message: String,
}

impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Runs `arbor import`.
pub fn run(args: &ImportArgs) -> anyhow::Result<u8> {
    let is_yaml = args
        .file
        .extension()
        .is_some_and(|e| e == "yaml" || e == "yml");
    let store = open_store(&args.data.data_dir, true)?;
    let started = Instant::now();
    let outcome = if is_yaml {
        import_yaml(&store, args)?
    } else {
        import_text(&store, args)?
    };
    let Some((loaded, revision)) = outcome else {
        return Ok(EXIT_FAILED);
    };
    let imported_in = started.elapsed();
    store.flush()?;
    let total = started.elapsed();
    drop(store);
    let bytes = directory_bytes(&args.data.data_dir);
    let rate = loaded as f64 / imported_in.as_secs_f64().max(1e-9);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "imported {loaded} relationships from `{}` into `{}` at revision {revision} in {:.2}s ({rate:.0} relationships/s; {:.2}s with the final flush)",
        args.file.display(),
        args.data.data_dir.display(),
        imported_in.as_secs_f64(),
        total.as_secs_f64()
    )?;
    writeln!(out, "data directory: {}", human_bytes(bytes))?;
    Ok(EXIT_OK)
}

/// Compiles a schema file, printing every error as `FILE:line:column: message`.
fn compile_schema_file(path: &Path) -> anyhow::Result<Option<Schema>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read schema file `{}`", path.display()))?;
    match schema::compile(&text) {
        Ok(s) => Ok(Some(s)),
        Err(errors) => {
            let mut stderr = std::io::stderr().lock();
            for e in &errors.0 {
                let _ = writeln!(stderr, "{}:{e}", path.display());
            }
            Ok(None)
        }
    }
}

/// Writes `schema` unless the same text is in force; refuses orphaning changes.
fn write_schema(store: &RocksDatastore, schema: Arc<Schema>) -> Result<(), StoreError> {
    let head = store.head_revision()?;
    if let Some(current) = store.snapshot(head)?.schema()
        && current.source() == schema.source()
    {
        return Ok(());
    }
    store.write(&mut |txn| {
        let old = txn.schema();
        check_schema_change(txn, old.as_deref(), &schema)?;
        txn.write_schema(Arc::clone(&schema))
    })?;
    Ok(())
}

/// The schema to check relationships against: `given`, else the stored one.
fn schema_in_force(
    store: &RocksDatastore,
    given: Option<Arc<Schema>>,
) -> anyhow::Result<Option<Arc<Schema>>> {
    if given.is_some() {
        return Ok(given);
    }
    let stored = store.snapshot(store.head_revision()?)?.schema();
    if stored.is_none() {
        let _ = writeln!(
            std::io::stderr(),
            "arbor: note: no schema in the data directory and none given with --schema: relationships are loaded unchecked"
        );
    }
    Ok(stored)
}

fn import_text(
    store: &RocksDatastore,
    args: &ImportArgs,
) -> anyhow::Result<Option<(u64, arbor::model::Revision)>> {
    let file_name = args.file.display().to_string();
    let file = File::open(&args.file).with_context(|| format!("cannot read `{file_name}`"))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let given = match &args.schema {
        Some(path) => match compile_schema_file(path)? {
            Some(s) => Some(Arc::new(s)),
            None => return Ok(None),
        },
        None => None,
    };
    if let Some(schema) = &given
        && let Err(e) = write_schema(store, Arc::clone(schema))
    {
        let _ = writeln!(std::io::stderr(), "arbor: {e}");
        return Ok(None);
    }
    let schema = schema_in_force(store, given)?;

    let bar = progress_bar(size);
    let (tx, rx) = sync_channel(PARSE_QUEUE);
    let parser = {
        let bar = bar.clone();
        let file_name = file_name.clone();
        std::thread::Builder::new()
            .name("arbor-import-parse".to_string())
            .spawn(move || {
                parse_lines(
                    BufReader::with_capacity(1 << 20, file),
                    &file_name,
                    schema,
                    &tx,
                    &bar,
                )
            })
            .context("cannot start the parser thread")?
    };
    let mut source = Source::new(rx);
    let result = store.bulk_import(&mut source);
    let last_line = source.last_line;
    let failure = source.failure.take();
    drop(source); // unblocks the parser if it is waiting to send
    if parser.join().is_err() {
        anyhow::bail!("the parser thread panicked");
    }
    bar.finish_and_clear();
    finish(result, failure, &file_name, last_line)
}

/// Reports the outcome of a bulk import.
fn finish(
    result: Result<arbor::store::BulkImportOutcome, StoreError>,
    failure: Option<Located>,
    file_name: &str,
    last_line: usize,
) -> anyhow::Result<Option<(u64, arbor::model::Revision)>> {
    let mut stderr = std::io::stderr().lock();
    match (result, failure) {
        (Ok(outcome), _) => Ok(Some((outcome.loaded, outcome.revision))),
        (Err(_), Some(located)) => {
            let _ = writeln!(stderr, "{located}");
            let _ = writeln!(stderr, "arbor: nothing was imported");
            Ok(None)
        }
        (Err(StoreError::AlreadyExists(rel)), None) => {
            let _ = writeln!(
                stderr,
                "{file_name}:{last_line}:1: relationship `{rel}` already exists (in the data directory, or earlier in this file)"
            );
            let _ = writeln!(stderr, "arbor: nothing was imported");
            Ok(None)
        }
        (Err(e), None) => Err(e.into()),
    }
}

fn progress_bar(total_bytes: u64) -> ProgressBar {
    let bar = ProgressBar::new(total_bytes);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} ({bytes_per_sec}) {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// One message from the parser: parsed relationships with their line numbers, or the first
/// problem (after which the parser stops).
type Parsed = Result<Vec<(Relationship, usize)>, Located>;

/// Reads, parses and checks every line, sending batches to the writer.
fn parse_lines(
    mut reader: BufReader<File>,
    file_name: &str,
    schema: Option<Arc<Schema>>,
    tx: &SyncSender<Parsed>,
    bar: &ProgressBar,
) {
    let mut batch = Vec::with_capacity(PARSE_BATCH);
    let mut line = String::new();
    let mut line_no = 0usize;
    let mut count = 0u64;
    let located = |line: usize, column: usize, message: String| Located {
        file: file_name.to_string(),
        line,
        column,
        message,
    };
    loop {
        line.clear();
        let read = match reader.read_line(&mut line) {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Err(located(
                    line_no + 1,
                    1,
                    format!("cannot read the line: {e}"),
                )));
                return;
            }
        };
        if read == 0 {
            break;
        }
        line_no += 1;
        bar.inc(read as u64);
        let text = line.trim();
        if text.is_empty() || text.starts_with("//") {
            continue;
        }
        let rel = match Relationship::parse(line.trim_end_matches(['\n', '\r'])) {
            Ok(rel) => rel,
            Err(e) => {
                let _ = tx.send(Err(located(line_no, e.column, e.message)));
                return;
            }
        };
        if let Some(schema) = &schema
            && let Err(e) = schema.validate_relationship(&rel)
        {
            let column = line.len() - line.trim_start().len() + 1;
            let _ = tx.send(Err(located(line_no, column, e.to_string())));
            return;
        }
        batch.push((rel, line_no));
        if batch.len() >= PARSE_BATCH {
            count += batch.len() as u64;
            bar.set_message(format!("{count} relationships"));
            if tx.send(Ok(std::mem::take(&mut batch))).is_err() {
                return; // the writer stopped
            }
            batch.reserve(PARSE_BATCH);
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(Ok(batch));
    }
    bar.set_message("committing");
}

/// The iterator `bulk_import` pulls from: relationships from the parser, remembering the
/// line of the last one handed out and the parser's problem, if any.
struct Source {
    rx: Receiver<Parsed>,
    current: std::vec::IntoIter<(Relationship, usize)>,
    last_line: usize,
    failure: Option<Located>,
}

impl Source {
    fn new(rx: Receiver<Parsed>) -> Self {
        Source {
            rx,
            current: Vec::new().into_iter(),
            last_line: 0,
            failure: None,
        }
    }
}

impl Iterator for Source {
    type Item = Result<Relationship, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((rel, line)) = self.current.next() {
                self.last_line = line;
                return Some(Ok(rel));
            }
            match self.rx.recv() {
                Ok(Ok(batch)) => self.current = batch.into_iter(),
                Ok(Err(located)) => {
                    self.failure = Some(located);
                    return Some(Err(StoreError::Refused(
                        "the import stopped at a bad line".to_string(),
                    )));
                }
                Err(_) => return None, // the parser is done
            }
        }
    }
}

fn import_yaml(
    store: &RocksDatastore,
    args: &ImportArgs,
) -> anyhow::Result<Option<(u64, arbor::model::Revision)>> {
    let mut stderr = std::io::stderr().lock();
    let file = match ValidationFile::load(&args.file) {
        Ok(file) => file,
        Err(e) => {
            let _ = writeln!(stderr, "{e}");
            return Ok(None);
        }
    };
    let schema = match &args.schema {
        Some(path) => match compile_schema_file(path)? {
            Some(s) => s,
            None => return Ok(None),
        },
        None => match schema::compile(&file.schema.text) {
            Ok(s) => s,
            Err(errors) => {
                for e in &errors.0 {
                    match file.schema.locate(&file.name, e.span) {
                        (name, Some(pos)) => {
                            let _ = writeln!(stderr, "{name}:{pos}: {}", e.message);
                        }
                        (name, None) => {
                            let _ = writeln!(stderr, "{name}: {}", e.message);
                        }
                    }
                }
                return Ok(None);
            }
        },
    };
    let schema = Arc::new(schema);
    for r in &file.relationships {
        if let Err(e) = schema.validate_relationship(&r.relationship) {
            let _ = writeln!(stderr, "{}:{}: {e}", file.name, r.position);
            return Ok(None);
        }
    }
    if let Err(e) = write_schema(store, Arc::clone(&schema)) {
        let _ = writeln!(stderr, "arbor: {e}");
        return Ok(None);
    }
    let mut last_line = 0;
    let mut rels = file.relationships.iter().map(|r| {
        last_line = r.position.line;
        Ok(r.relationship.clone())
    });
    let result = store.bulk_import(&mut rels);
    drop(rels);
    drop(stderr);
    finish(result, None, &file.name, last_line)
}
