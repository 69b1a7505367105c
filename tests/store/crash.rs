//! Crash safety: a child process (this test binary, re-run as `crash::child_writer`) commits
//! small transactions and bulk imports in a loop and prints each acknowledged revision; the
//! test SIGKILLs it at random moments, reopens the store, and requires every acknowledged
//! batch to be present and every batch to be there whole or not at all.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use arbor::model::{RelationshipFilter, Revision};
use arbor::store::Datastore;
use arbor::store::rocks::{RocksDatastore, RocksOptions};
use rand::Rng;

use crate::rel;

const ENV_DIR: &str = "ARBOR_CRASH_CHILD_DIR";
const ENV_ROUND: &str = "ARBOR_CRASH_CHILD_ROUND";
/// Relationships per small transaction.
const BATCH: usize = 5;
/// Relationships per bulk import: more than one of the store's import batches.
const IMPORT: usize = 25_000;
/// Every how many transactions the child runs a bulk import instead.
const IMPORT_EVERY: u64 = 8;
const ROUNDS: u64 = 20;

fn options() -> RocksOptions {
    RocksOptions {
        gc_interval: None,
        ..RocksOptions::default()
    }
}

/// The child: writes until killed. Does nothing when run as an ordinary test.
#[test]
fn child_writer() {
    let (Some(dir), Ok(round)) = (std::env::var_os(ENV_DIR), std::env::var(ENV_ROUND)) else {
        return;
    };
    let store = RocksDatastore::open(Path::new(&dir), options()).unwrap();
    let mut out = std::io::stdout().lock();
    // On a line of its own: the test harness has printed `test … ... ` before it.
    writeln!(out, "\nopen").unwrap();
    out.flush().unwrap();
    for i in 0u64.. {
        let line = if i % IMPORT_EVERY == IMPORT_EVERY - 1 {
            let outcome = store
                .bulk_import(
                    &mut (0..IMPORT)
                        .map(|j| Ok(rel(&format!("imp:r{round}b{i}#viewer@user:u{j}")))),
                )
                .unwrap();
            format!("ack imp:r{round}b{i} {}", outcome.revision)
        } else {
            let revision = store
                .write(&mut |txn| {
                    for j in 0..BATCH {
                        txn.touch(rel(&format!("txn:r{round}b{i}#viewer@user:u{j}")))?;
                    }
                    Ok(())
                })
                .unwrap();
            format!("ack txn:r{round}b{i} {revision}")
        };
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    }
}

/// Relationships per resource (`txn:…` or `imp:…`) at the head.
fn counts(store: &RocksDatastore) -> BTreeMap<String, usize> {
    let snapshot = store.snapshot(store.head_revision().unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for r in snapshot.read(&RelationshipFilter::default(), None) {
        *out.entry(r.unwrap().resource().to_string()).or_insert(0) += 1;
    }
    out
}

#[test]
fn every_acknowledged_batch_survives_sigkill_and_none_is_torn() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut acked: Vec<(String, Revision)> = Vec::new();
    let mut killed_mid_import = 0;
    let started = Instant::now();
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "crash::child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_DIR, dir.path())
            .env(ENV_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until the child has the store open, then let it write for a random while; on
        // odd rounds, until it starts a bulk import, and kill it in the middle of that; on the
        // first, until an import was acknowledged.
        let wait_for = if round == 0 {
            format!("ack imp:r0b{} ", IMPORT_EVERY - 1)
        } else if round % 2 == 1 {
            format!("ack txn:r{round}b{} ", IMPORT_EVERY - 2)
        } else {
            "open".to_string()
        };
        let mut early = Vec::new();
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the child did not get far enough");
            let done = line.starts_with(&wait_for);
            early.push(line);
            if done {
                break;
            }
        }
        let pause = if round % 2 == 1 { 0..40 } else { 0..2500 };
        std::thread::sleep(Duration::from_millis(rng.gen_range(pause)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let mut round_acks = 0u64;
        let mut last_ack_import = false;
        for line in early.into_iter().chain(rx.try_iter()) {
            if let Some(rest) = line.strip_prefix("ack ") {
                let (resource, revision) = rest.split_once(' ').unwrap();
                acked.push((
                    resource.to_string(),
                    Revision::new(revision.parse().unwrap()),
                ));
                round_acks += 1;
                last_ack_import = resource.starts_with("imp:");
            }
        }
        // The batch after the last acknowledged one was in flight when the child died.
        if round_acks % IMPORT_EVERY == IMPORT_EVERY - 1 && !last_ack_import {
            killed_mid_import += 1;
        }

        let store = RocksDatastore::open(dir.path(), options()).unwrap();
        let head = store.head_revision().unwrap();
        let found = counts(&store);
        for (resource, count) in &found {
            let whole = if resource.starts_with("imp:") {
                IMPORT
            } else {
                BATCH
            };
            assert_eq!(*count, whole, "round {round}: `{resource}` is torn");
        }
        for (resource, revision) in &acked {
            assert!(
                found.contains_key(resource),
                "round {round}: acknowledged `{resource}` (revision {revision}) is lost"
            );
            assert!(*revision <= head);
        }
        assert!(acked.windows(2).all(|w| w[0].1 < w[1].1));
        // At most the one in-flight batch of this round may have landed unacknowledged.
        assert!(found.len() <= acked.len() + round as usize + 1);
    }
    println!(
        "{ROUNDS} rounds, {} acknowledged batches ({} imports), {killed_mid_import} kills during an import, {:.1?}",
        acked.len(),
        acked.iter().filter(|(r, _)| r.starts_with("imp:")).count(),
        started.elapsed()
    );
    assert!(
        acked.len() >= ROUNDS as usize,
        "the child acknowledged too little"
    );
    assert!(killed_mid_import > 0, "no kill landed during a bulk import");
    assert!(
        acked
            .iter()
            .any(|(resource, _)| resource.starts_with("imp:")),
        "no bulk import was acknowledged"
    );
}
