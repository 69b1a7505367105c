//! The `arbor` command line: clap subcommands, logging setup, and the one place where an
//! outcome or error becomes an exit code.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use arbor::validate::{self, ErrorKind, Outcome};

mod cli;

/// jemalloc instead of the system allocator: under load glibc `malloc` took a quarter to a
/// third of the server's CPU, and after a large lookup its deferred trimming stalled the next call.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Exit code: every file holds.
const EXIT_OK: u8 = 0;
/// Exit code: a check failed or a file could not be loaded.
const EXIT_FAILED: u8 = 1;

const VALIDATE_AFTER_HELP: &str = "\
Each FILE is a SpiceDB validation file (the format `zed validate` reads): `schema:` or
`schemaFile:`, `relationships:`, `assertions:` (assertTrue / assertFalse / assertCaveated)
and `validation:` (expected subjects, found through a recursive expand).

Exit status:
  0  every file holds
  1  a check failed in some file, or a file could not be loaded
     (printed as `path:line:column: message`)
  2  the command line is wrong

Logging goes to stderr and is set with RUST_LOG (for example RUST_LOG=arbor=debug).";

/// Arbor: a relationship-based authorization server compatible with SpiceDB.
#[derive(Debug, Parser)]
#[command(
    name = "arbor",
    version,
    about,
    long_about = None,
    after_help = "Logging goes to stderr, filtered by RUST_LOG (default `warn`)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check SpiceDB-format validation files: schema, relationships, assertions and
    /// expected subjects.
    #[command(after_help = VALIDATE_AFTER_HELP)]
    Validate(ValidateArgs),
    /// Serve the authzed.api.v1 gRPC API (SpiceDB-compatible), with health, reflection and metrics.
    #[command(after_help = cli::serve::AFTER_HELP)]
    Serve(Box<cli::serve::ServeArgs>),
    /// Load relationships from a file into a data directory, at one revision, all or nothing.
    #[command(after_help = cli::import::AFTER_HELP)]
    Import(cli::import::ImportArgs),
    /// Write every relationship of a data directory, one per line, from one snapshot.
    #[command(after_help = cli::export::AFTER_HELP)]
    Export(cli::export::ExportArgs),
    /// Copy a data directory consistently into a new directory (a RocksDB checkpoint).
    #[command(after_help = cli::backup::AFTER_HELP)]
    Backup(cli::backup::BackupArgs),
    /// Verify, query and tail the audit log of a data directory; anchor its head; make
    /// anchor keys; stream a running server's new entries as JSON lines.
    #[command(after_help = cli::audit::AFTER_HELP)]
    Audit(cli::audit::AuditArgs),
    /// Drive any authzed.api.v1 server (Arbor or SpiceDB) with a workload and report
    /// throughput and latency percentiles.
    Bench(cli::bench::BenchArgs),
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// The validation files (YAML) to check; a `schemaFile:` in one is read relative to it.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Prints help, version or the usage error, and exits with clap's code (0 or 2).
        Err(e) => e.exit(),
    };
    init_logging();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "arbor: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // `try_init` fails only if a subscriber is already set; then the existing one is kept.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cli.command {
        Command::Validate(args) => Ok(runtime.block_on(validate_files(&args.files))),
        Command::Serve(args) => cli::serve::run(&args),
        Command::Import(args) => cli::import::run(&args),
        Command::Export(args) => cli::export::run(&args),
        Command::Backup(args) => cli::backup::run(&args),
        Command::Audit(args) => cli::audit::run(&args),
        Command::Bench(args) => {
            drop(runtime);
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if args.threads > 0 {
                builder.worker_threads(args.threads);
            }
            let runtime = builder
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(cli::bench::run(args))?;
            Ok(EXIT_OK)
        }
    }
}

async fn validate_files(files: &[PathBuf]) -> u8 {
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    let (mut passed, mut failed) = (0usize, 0usize);
    for path in files {
        match validate::run_file(path).await {
            Ok(report) => {
                // Write errors (a closed pipe) are ignored: the exit code still tells.
                let _ = write!(stdout, "{}", report.render());
                match report.outcome() {
                    Outcome::Passed => passed += 1,
                    Outcome::Failed => failed += 1,
                }
            }
            Err(e) => {
                failed += 1;
                let _ = stdout.flush();
                let _ = writeln!(stderr, "{e}");
                if let ErrorKind::Schema { others, .. } = &e.kind {
                    for other in others {
                        let _ = writeln!(stderr, "{other}");
                    }
                }
            }
        }
    }
    if files.len() > 1 {
        let _ = writeln!(stdout, "{passed} passed, {failed} failed");
    }
    let _ = stdout.flush();
    if failed > 0 { EXIT_FAILED } else { EXIT_OK }
}
