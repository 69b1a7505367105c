//! Subcommands of the `arbor` binary that work on a data directory: `import`, `export`,
//! `backup` and `audit` (each in its own module), and the `--data-dir` option they share.

pub mod audit;
pub mod backup;
pub mod bench;
pub mod export;
pub mod import;
pub mod serve;

use std::path::{Path, PathBuf};

use arbor::store::rocks::{RocksDatastore, RocksOptions};

/// Where the data directory is unless `--data-dir` or `ARBOR_DATA_DIR` says otherwise:
/// beside where the command runs, so a first try needs no flag.
pub const DEFAULT_DATA_DIR: &str = "./arbor-data";

/// The `--data-dir` option.
#[derive(Debug, Clone, clap::Args)]
pub struct DataDirArgs {
    /// The data directory (a RocksDB database; created by `import` if missing).
    #[arg(long, value_name = "DIR", env = "ARBOR_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

/// Opens the data directory for a one-shot command: no background garbage collection;
/// created only if `create`.
pub fn open_store(dir: &Path, create: bool) -> anyhow::Result<RocksDatastore> {
    let options = RocksOptions {
        gc_interval: None,
        create_if_missing: create,
        ..RocksOptions::default()
    };
    Ok(RocksDatastore::open(dir, options)?)
}

/// The total size of the files under `dir`, in bytes (0 if unreadable).
pub fn directory_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(m) if m.is_dir() => directory_bytes(&entry.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// `n` bytes for people: `12.3 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("B");
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {name}")
    }
}
