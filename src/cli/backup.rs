//! `arbor backup DIR`: a consistent copy of a data directory (a RocksDB checkpoint: table files
//! hard-linked where possible), itself a data directory that restores by pointing at it.

use std::io::Write as _;
use std::path::PathBuf;

use arbor::store::rocks::RocksDatastore;
use arbor::store::{Datastore, StoreError};

use super::{DataDirArgs, directory_bytes, human_bytes, open_store};

pub const AFTER_HELP: &str = "\
DIR must not exist; it becomes a complete data directory holding the store as of the
newest committed revision (an import that has not committed is left out). The data directory
may be in use: while `arbor serve` runs on it, the backup is taken from a read-only view of
what it has made durable, which includes every acknowledged write. Table files are
hard-linked when DIR is on the same file system (the backup then takes almost no time or
space until the data directory changes); copy DIR elsewhere for safe keeping.

Restore: stop the server, then either point it at the backup (`--data-dir DIR`) or replace
the data directory with a copy of DIR (`rm -r arbor-data && cp -r DIR arbor-data`). Keep DIR
itself read-only if it must stay a pristine backup: opening it as a data directory writes to
it.";

/// `arbor backup` options.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The new directory to write the backup to (it must not exist).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub data: DataDirArgs,
}

/// Runs `arbor backup`.
pub fn run(args: &BackupArgs) -> anyhow::Result<u8> {
    let at = match open_store(&args.data.data_dir, false) {
        Ok(store) => {
            let revision = store.head_revision()?;
            store.backup(&args.dir)?;
            format!("at revision {revision}")
        }
        Err(e) if in_use(&e) => {
            RocksDatastore::backup_in_use(&args.data.data_dir, &args.dir)?;
            "as of its last durable state (it is in use by another process)".to_string()
        }
        Err(e) => return Err(e),
    };
    let _ = writeln!(
        std::io::stdout(),
        "backed up `{}` {at} to `{}` ({}); restore by pointing --data-dir at it",
        args.data.data_dir.display(),
        args.dir.display(),
        human_bytes(directory_bytes(&args.dir))
    );
    Ok(0)
}

/// Whether opening failed because another process has the directory open.
fn in_use(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<StoreError>(), Some(StoreError::DataDirectory(m)) if m.contains("in use"))
}
