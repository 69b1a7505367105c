//! `arbor export`: writes every relationship of a data directory, at one revision, in the
//! `relationships.txt` format that `arbor import` reads, reading page by page with a cursor.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use arbor::model::{Relationship, RelationshipFilter, Revision};
use arbor::store::Datastore;

use super::{DataDirArgs, open_store};

/// Relationships read per page: big enough that the cursor's re-seek costs nothing, small
/// enough that a page is a few MiB.
const PAGE: usize = 10_000;

pub const AFTER_HELP: &str = "\
The output has one relationship per line (`document:q3#viewer@user:tom`, with `[caveat:{...}]`
and `[expiration:...]` when set), ordered by resource, relation and subject: the format that
`arbor import` reads, so `arbor export --data-dir A | arbor import --data-dir B /dev/stdin`
copies a store's relationships (add the schema with --schema-output / --schema).

Every line comes from one snapshot: writes that commit while the export runs are not in it.
The data directory must not be open in another process (stop `arbor serve`, or use
`arbor backup` and export the backup).";

/// `arbor export` options.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Write the relationships to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Also write the schema in force to SCHEMA_FILE.
    #[arg(long, value_name = "SCHEMA_FILE")]
    pub schema_output: Option<PathBuf>,
    /// Export as of this revision instead of the newest (it must still be inside the
    /// garbage-collection window).
    #[arg(long, value_name = "REVISION")]
    pub revision: Option<u64>,
    #[command(flatten)]
    pub data: DataDirArgs,
}

/// Runs `arbor export`.
pub fn run(args: &ExportArgs) -> anyhow::Result<u8> {
    let store = open_store(&args.data.data_dir, false)?;
    let revision = match args.revision {
        Some(r) => Revision::new(r),
        None => store.head_revision()?,
    };
    let snapshot = store.snapshot(revision)?;
    if let Some(path) = &args.schema_output {
        let text = snapshot
            .schema()
            .map(|s| s.source().to_string())
            .unwrap_or_default();
        std::fs::write(path, text).with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    let started = Instant::now();
    let sink: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            File::create(path).with_context(|| format!("cannot create `{}`", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    let filter = RelationshipFilter::default();
    let mut cursor: Option<Relationship> = None;
    let mut count = 0u64;
    loop {
        let page: Vec<Relationship> = snapshot
            .read(&filter, cursor.as_ref())
            .take(PAGE)
            .collect::<Result<_, _>>()?;
        for rel in &page {
            writeln!(out, "{rel}").context("cannot write the export")?;
        }
        count += page.len() as u64;
        match page.into_iter().last() {
            Some(last) => cursor = Some(last),
            None => break,
        }
    }
    out.flush().context("cannot write the export")?;
    let _ = writeln!(
        std::io::stderr(),
        "exported {count} relationships at revision {revision} in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    Ok(0)
}
