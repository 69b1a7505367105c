//! Audit log tests: the chain on both datastores (append, head, reads, commit with the change
//! or not at all), queries with paging, verification against edits, removals, reordering, a
//! truncated tail and a recomputed chain (the last two only with an anchor), anchors and key
//! files, retention, and `arbor audit` run as the binary (`stream` against a server started
//! in-process).

use std::path::Path;
use std::process::{Command, Output};

use arbor::identity::audit::anchor::{
    Anchor, AnchorKey, AnchorPublicKey, read_anchor_file, write_anchor_file, write_key_files,
};
use arbor::identity::audit::{
    self, AUDIT_FAMILY, AuditChange, AuditDraft, AuditEntry, AuditQuery, ChainHead,
    QUERY_SCAN_BUDGET, stored,
};
use arbor::identity::{Actor, IdentityError, Source};
use arbor::model::{Relationship, Timestamp};
use arbor::store::memory::MemoryDatastore;
use arbor::store::rocks::{RocksDatastore, RocksOptions};
use arbor::store::{Datastore, StoreError};

/// 2025-01-01T00:00:00Z.
const T0: i64 = 1_735_689_600_000_000;
const SECOND: i64 = 1_000_000;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_micros(T0 + seconds * SECOND)
}

fn open_rocks(path: &Path) -> RocksDatastore {
    let options = RocksOptions {
        gc_interval: None,
        ..RocksOptions::default()
    };
    RocksDatastore::open(path, options).unwrap()
}

/// Runs `test` on a memory store and on a RocksDB store in a temporary directory.
fn on_both(test: impl Fn(&dyn Datastore)) {
    test(&MemoryDatastore::new());
    let dir = tempfile::tempdir().unwrap();
    test(&open_rocks(dir.path()));
}

fn draft(principal: &str, source: Source, org: &str, subject: &str) -> AuditDraft {
    AuditDraft {
        actor: Some(Actor::new(principal, source)),
        action: "relationships.write".into(),
        orgs: [org.to_string()].into(),
        subjects: [subject.to_string()].into(),
        changes: vec![AuditChange::Touch(format!("document:d#viewer@{subject}"))],
        details: vec![("count".into(), "1".into())],
    }
}

fn to_store(e: IdentityError) -> StoreError {
    StoreError::Refused(e.to_string())
}

/// Commits one write that appends `draft` at `time`; returns the entry.
fn append_at(store: &dyn Datastore, time: Timestamp, draft: AuditDraft) -> AuditEntry {
    let mut appended = None;
    store
        .write(&mut |txn| {
            let revision = txn.revision();
            appended = Some(audit::append(txn, revision, time, draft.clone()).map_err(to_store)?);
            Ok(())
        })
        .unwrap();
    appended.unwrap()
}

/// Appends `n` plain entries, one per write, at seconds 1..=n.
fn fill(store: &dyn Datastore, n: u32) -> Vec<AuditEntry> {
    (1..=n)
        .map(|i| {
            append_at(
                store,
                at(i64::from(i)),
                draft(
                    &format!("platform-key:k{i}"),
                    Source::Api,
                    "acme",
                    "user:bob",
                ),
            )
        })
        .collect()
}

fn all_entries(store: &dyn Datastore) -> Vec<AuditEntry> {
    audit::read_after(store, 0, usize::MAX).unwrap()
}

/// Replaces records in one committed write.
fn rewrite(store: &dyn Datastore, puts: Vec<(Vec<u8>, Vec<u8>)>, deletes: Vec<Vec<u8>>) {
    store
        .write(&mut |txn| {
            for (key, value) in &puts {
                txn.put_record(AUDIT_FAMILY, key, value.clone())?;
            }
            for key in &deletes {
                txn.delete_record(AUDIT_FAMILY, key)?;
            }
            Ok(())
        })
        .unwrap();
}

fn put_entry(entry: &AuditEntry) -> (Vec<u8>, Vec<u8>) {
    (
        stored::entry_key(entry.seq),
        stored::encode_entry(entry).unwrap(),
    )
}

fn put_head(point: ChainHead) -> (Vec<u8>, Vec<u8>) {
    (stored::HEAD_KEY.to_vec(), stored::encode_point(&point))
}

fn broken(result: Result<audit::VerifyReport, IdentityError>) -> String {
    match result {
        Err(IdentityError::AuditBroken(detail)) => detail,
        other => panic!("expected a broken log, got {other:?}"),
    }
}

#[test]
fn append_builds_a_linked_chain_on_both_stores() {
    on_both(|store| {
        assert_eq!(audit::head(store).unwrap(), None);
        assert!(all_entries(store).is_empty());
        let entries = fill(store, 5);
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.seq, i as u64 + 1);
            assert_eq!(e.computed_hash(), e.hash);
        }
        assert_eq!(entries[0].prev_hash, [0u8; 32]);
        for pair in entries.windows(2) {
            assert_eq!(pair[1].prev_hash, pair[0].hash);
            assert!(pair[1].revision > pair[0].revision);
        }
        let last = entries.last().unwrap();
        assert_eq!(
            audit::head(store).unwrap(),
            Some(ChainHead {
                seq: 5,
                hash: last.hash
            })
        );
        assert_eq!(all_entries(store), entries);
        let middle = audit::read_after(store, 2, 2).unwrap();
        assert_eq!(middle.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
        assert!(audit::read_after(store, 5, 10).unwrap().is_empty());
        let report = audit::verify(store, None).unwrap();
        assert_eq!(report.entries, 5);
        assert_eq!(report.first_seq, Some(1));
        assert_eq!(report.head.map(|h| h.seq), Some(5));
    });
}

#[test]
fn an_entry_commits_with_its_change_or_not_at_all() {
    on_both(|store| {
        fill(store, 2);
        let head = audit::head(store).unwrap();
        let failed = store.write(&mut |txn| {
            let revision = txn.revision();
            txn.touch(Relationship::parse("document:x#viewer@user:eve").unwrap())?;
            audit::append(
                txn,
                revision,
                at(9),
                draft("cli", Source::System, "acme", "user:eve"),
            )
            .map_err(to_store)?;
            Err(StoreError::Refused("changed my mind".into()))
        });
        assert!(failed.is_err());
        assert_eq!(audit::head(store).unwrap(), head);
        assert_eq!(all_entries(store).len(), 2);

        let mut no_actor = draft("cli", Source::System, "acme", "user:eve");
        no_actor.actor = None;
        let refused = store.write(&mut |txn| {
            let revision = txn.revision();
            audit::append(txn, revision, at(9), no_actor.clone()).map_err(to_store)?;
            Ok(())
        });
        assert!(refused.is_err());
        assert_eq!(audit::head(store).unwrap(), head);
    });
}

#[test]
fn a_bulk_import_commits_its_entry_atomically() {
    on_both(|store| {
        fill(store, 1);
        let rels = ["document:a#viewer@user:u1", "document:b#viewer@user:u2"]
            .map(|r| Ok(Relationship::parse(r).unwrap()));
        let mut entry = None;
        let outcome = store
            .bulk_import_with(&mut rels.into_iter(), &mut |summary, records| {
                let mut d = draft("cli", Source::System, "acme", "user:u1");
                d.action = "relationships.import".into();
                d.details = vec![("loaded".into(), summary.loaded.to_string())];
                entry = Some(audit::append(records, summary.revision, at(5), d).map_err(to_store)?);
                Ok(())
            })
            .unwrap();
        let entry = entry.unwrap();
        assert_eq!(entry.seq, 2);
        assert_eq!(entry.revision, outcome.revision);
        assert_eq!(all_entries(store).last(), Some(&entry));
        audit::verify(store, None).unwrap();

        // A duplicate fails the import: its entry is not committed either.
        let dup = [Ok(Relationship::parse("document:a#viewer@user:u1").unwrap())];
        let failed = store.bulk_import_with(&mut dup.into_iter(), &mut |summary, records| {
            audit::append(
                records,
                summary.revision,
                at(6),
                draft("cli", Source::System, "a", "u"),
            )
            .map(|_| ())
            .map_err(to_store)
        });
        assert!(failed.is_err());
        assert_eq!(audit::head(store).unwrap().map(|h| h.seq), Some(2));
    });
}

/// Entries 1..=8: (principal, on_behalf_of, initiated_by, source, org, subject), at seconds
/// equal to their seq.
/// One fixture row: principal, on_behalf_of, initiated_by, source, org, subject.
type FixtureRow<'a> = (
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Source,
    &'a str,
    &'a str,
);

fn query_fixture(store: &dyn Datastore) {
    let rows: [FixtureRow<'_>; 8] = [
        ("platform-key:k1", None, None, Source::Api, "acme", "user:a"),
        ("scim:okta", None, None, Source::Scim, "acme-eu", "user:b"),
        (
            "session:s1",
            Some("user:alice"),
            Some("user:root"),
            Source::Admin,
            "beta",
            "user:a",
        ),
        ("sso:google", None, None, Source::Sso, "acme-us", "user:c"),
        ("platform-key:k1", None, None, Source::Api, "beta", "user:b"),
        ("system", None, None, Source::System, "gamma", "user:a"),
        (
            "session:s2",
            Some("user:bob"),
            Some("user:alice"),
            Source::Admin,
            "acme",
            "user:d",
        ),
        (
            "platform-key:k2",
            None,
            None,
            Source::Api,
            "acme-eu",
            "user:a",
        ),
    ];
    for (i, (principal, obo, init, source, org, subject)) in rows.into_iter().enumerate() {
        let mut d = draft(principal, source, org, subject);
        let actor = d.actor.as_mut().unwrap();
        actor.on_behalf_of = obo.map(str::to_string);
        actor.initiated_by = init.map(str::to_string);
        append_at(store, at(i as i64 + 1), d);
    }
}

fn seqs(store: &dyn Datastore, q: &AuditQuery) -> Vec<u64> {
    let page = audit::query(store, q).unwrap();
    assert_eq!(page.next_after, None, "the fixture fits one page");
    page.entries.iter().map(|e| e.seq).collect()
}

#[test]
fn query_filters_by_org_actor_subject_source_and_time() {
    on_both(|store| {
        query_fixture(store);
        let q = AuditQuery::default;
        assert_eq!(seqs(store, &q()), (1..=8).collect::<Vec<_>>());
        let orgs = ["acme", "acme-eu", "acme-us"].map(String::from).into();
        assert_eq!(
            seqs(
                store,
                &AuditQuery {
                    orgs: Some(orgs),
                    ..q()
                }
            ),
            vec![1, 2, 4, 7, 8]
        );
        let actor = |a: &str| AuditQuery {
            actor: Some(a.into()),
            ..q()
        };
        assert_eq!(seqs(store, &actor("platform-key:k1")), vec![1, 5]);
        assert_eq!(seqs(store, &actor("user:alice")), vec![3, 7]);
        assert_eq!(seqs(store, &actor("user:root")), vec![3]);
        assert_eq!(seqs(store, &actor("user:nobody")), Vec::<u64>::new());
        let subject = AuditQuery {
            subject: Some("user:a".into()),
            ..q()
        };
        assert_eq!(seqs(store, &subject), vec![1, 3, 6, 8]);
        let source = AuditQuery {
            source: Some(Source::Admin),
            ..q()
        };
        assert_eq!(seqs(store, &source), vec![3, 7]);
        let window = AuditQuery {
            from: Some(at(3)),
            to: Some(at(6)),
            ..q()
        };
        assert_eq!(seqs(store, &window), vec![3, 4, 5]);
        let combined = AuditQuery {
            subject: Some("user:a".into()),
            source: Some(Source::Api),
            from: Some(at(2)),
            ..q()
        };
        assert_eq!(seqs(store, &combined), vec![8]);
        let after = AuditQuery {
            after_seq: 6,
            ..q()
        };
        assert_eq!(seqs(store, &after), vec![7, 8]);
    });
}

#[test]
fn query_pages_through_matches() {
    on_both(|store| {
        query_fixture(store);
        let mut q = AuditQuery {
            subject: Some("user:a".into()),
            limit: 3,
            ..AuditQuery::default()
        };
        let first = audit::query(store, &q).unwrap();
        assert_eq!(
            first.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 3, 6]
        );
        assert_eq!(first.next_after, Some(6));
        q.after_seq = 6;
        let second = audit::query(store, &q).unwrap();
        assert_eq!(
            second.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![8]
        );
        assert_eq!(second.next_after, None);
    });
}

#[test]
fn query_work_per_call_is_bounded() {
    let store = MemoryDatastore::new();
    let total = QUERY_SCAN_BUDGET as u64 + 50;
    store
        .write(&mut |txn| {
            let revision = txn.revision();
            for i in 0..total {
                let subject = if i + 1 == total {
                    "user:needle"
                } else {
                    "user:hay"
                };
                audit::append(
                    txn,
                    revision,
                    at(1),
                    draft("cli", Source::System, "acme", subject),
                )
                .map_err(to_store)?;
            }
            Ok(())
        })
        .unwrap();
    let mut q = AuditQuery {
        subject: Some("user:needle".into()),
        ..AuditQuery::default()
    };
    let first = audit::query(&store, &q).unwrap();
    assert!(first.entries.is_empty());
    assert_eq!(first.next_after, Some(QUERY_SCAN_BUDGET as u64));
    q.after_seq = QUERY_SCAN_BUDGET as u64;
    let second = audit::query(&store, &q).unwrap();
    assert_eq!(
        second.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![total]
    );
    assert_eq!(second.next_after, None);
}

#[test]
fn verify_catches_an_edited_entry() {
    on_both(|store| {
        let entries = fill(store, 5);
        let mut edited = entries[2].clone();
        edited.actor.principal = "platform-key:innocent".into();
        rewrite(store, vec![put_entry(&edited)], vec![]);
        let detail = broken(audit::verify(store, None));
        assert!(detail.contains("entry 3"), "{detail}");
    });
}

#[test]
fn verify_catches_an_edited_entry_whose_hash_was_recomputed() {
    on_both(|store| {
        let entries = fill(store, 5);
        let mut edited = entries[1].clone();
        edited.changes.clear();
        edited.hash = edited.computed_hash();
        rewrite(store, vec![put_entry(&edited)], vec![]);
        let detail = broken(audit::verify(store, None));
        assert!(detail.contains("entry 3"), "the next link breaks: {detail}");
    });
}

#[test]
fn verify_catches_a_removed_entry() {
    on_both(|store| {
        fill(store, 5);
        rewrite(store, vec![], vec![stored::entry_key(3)]);
        let detail = broken(audit::verify(store, None));
        assert!(detail.contains("entry 3 is missing"), "{detail}");
    });
}

#[test]
fn verify_catches_a_removed_last_entry_and_a_wrong_head() {
    on_both(|store| {
        fill(store, 5);
        rewrite(store, vec![], vec![stored::entry_key(5)]);
        let detail = broken(audit::verify(store, None));
        assert!(detail.contains("head"), "{detail}");
        rewrite(store, vec![], vec![stored::HEAD_KEY.to_vec()]);
        let detail = broken(audit::verify(store, None));
        assert!(detail.contains("head record is missing"), "{detail}");
    });
}

#[test]
fn verify_catches_a_head_moved_back() {
    on_both(|store| {
        let entries = fill(store, 5);
        rewrite(
            store,
            vec![put_head(ChainHead {
                seq: 4,
                hash: entries[3].hash,
            })],
            vec![],
        );
        let detail = broken(audit::verify(store, None));
        assert!(
            detail.contains("entry 5 is stored past the head"),
            "{detail}"
        );
    });
}

#[test]
fn verify_holds_while_entries_are_appended() {
    let store = std::sync::Arc::new(MemoryDatastore::new());
    fill(store.as_ref(), 3);
    let writer = {
        let store = std::sync::Arc::clone(&store);
        std::thread::spawn(move || fill(store.as_ref(), 300))
    };
    let mut checked = 0;
    while !writer.is_finished() {
        audit::verify(store.as_ref(), None).unwrap();
        checked += 1;
    }
    writer.join().unwrap();
    assert!(checked > 0);
    assert_eq!(audit::verify(store.as_ref(), None).unwrap().entries, 303);
}

#[test]
fn verify_catches_reordered_entries() {
    on_both(|store| {
        let entries = fill(store, 5);
        let swapped = vec![
            (
                stored::entry_key(2),
                stored::encode_entry(&entries[2]).unwrap(),
            ),
            (
                stored::entry_key(3),
                stored::encode_entry(&entries[1]).unwrap(),
            ),
        ];
        rewrite(store, swapped, vec![]);
        let detail = broken(audit::verify(store, None));
        assert!(detail.contains("seq 2"), "{detail}");

        // Renumbered as well: the hashes no longer hold.
        let mut a = entries[2].clone();
        a.seq = 2;
        let mut b = entries[1].clone();
        b.seq = 3;
        rewrite(store, vec![put_entry(&a), put_entry(&b)], vec![]);
        let detail = broken(audit::verify(store, None));
        assert!(detail.contains("entry 2"), "{detail}");
    });
}

#[test]
fn a_truncated_tail_is_caught_only_with_the_anchor() {
    on_both(|store| {
        let entries = fill(store, 5);
        let key = AnchorKey::generate().unwrap();
        let head = audit::head(store).unwrap().unwrap();
        let anchor = Anchor::sign(&key, &head, at(100));
        audit::verify(store, Some(&anchor)).unwrap();

        rewrite(
            store,
            vec![put_head(ChainHead {
                seq: 4,
                hash: entries[3].hash,
            })],
            vec![stored::entry_key(5)],
        );
        let report = audit::verify(store, None).unwrap();
        assert_eq!(report.entries, 4);
        let detail = broken(audit::verify(store, Some(&anchor)));
        assert!(detail.contains("seq 4") && detail.contains("5"), "{detail}");
    });
}

#[test]
fn a_recomputed_chain_is_caught_only_with_the_anchor() {
    on_both(|store| {
        let entries = fill(store, 5);
        let key = AnchorKey::generate().unwrap();
        let anchor = Anchor::sign(&key, &audit::head(store).unwrap().unwrap(), at(100));

        let mut prev = entries[0].hash;
        let mut puts = Vec::new();
        for e in &entries[1..] {
            let mut e = e.clone();
            if e.seq == 2 {
                e.subjects = ["user:someone-else".to_string()].into();
            }
            e.prev_hash = prev;
            e.hash = e.computed_hash();
            prev = e.hash;
            puts.push(put_entry(&e));
        }
        puts.push(put_head(ChainHead { seq: 5, hash: prev }));
        rewrite(store, puts, vec![]);

        audit::verify(store, None).unwrap();
        let detail = broken(audit::verify(store, Some(&anchor)));
        assert!(
            detail.contains("entry 5") && detail.contains("rewritten"),
            "{detail}"
        );
    });
}

#[test]
fn an_anchor_past_an_empty_log_is_a_truncation() {
    let store = MemoryDatastore::new();
    audit::verify(&store, None).unwrap();
    let key = AnchorKey::generate().unwrap();
    let anchor = Anchor::sign(
        &key,
        &ChainHead {
            seq: 3,
            hash: [1; 32],
        },
        at(1),
    );
    broken(audit::verify(&store, Some(&anchor)));
}

#[test]
fn anchors_and_key_files_round_trip_and_tampering_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let key = AnchorKey::generate().unwrap();
    let (secret, public) = write_key_files(&key, &dir.path().join("audit")).unwrap();
    assert_eq!(secret, dir.path().join("audit.key"));
    assert_eq!(public, dir.path().join("audit.pub"));
    assert!(
        write_key_files(&key, &dir.path().join("audit")).is_err(),
        "no overwrite"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the secret key is private");
    }
    let key = AnchorKey::from_file(&secret).unwrap();
    let public = AnchorPublicKey::from_file(&public).unwrap();
    assert_eq!(key.public_key(), public);

    let head = ChainHead {
        seq: 17,
        hash: [0x5a; 32],
    };
    let anchor = Anchor::sign(&key, &head, at(3));
    let file = dir.path().join("anchor");
    write_anchor_file(&file, &anchor).unwrap();
    write_anchor_file(&file, &anchor).unwrap();
    let read = read_anchor_file(&file).unwrap();
    assert_eq!(read, anchor);
    assert_eq!(read.head(), head);
    read.check_signature(&public).unwrap();

    let line = anchor.to_line();
    let tampered_hash = line.replace(&"5a".repeat(32), &"5b".repeat(32));
    let tampered_time = line.replace("2025-01-01T00:00:03Z", "2025-01-01T00:00:04Z");
    for tampered in [tampered_hash, tampered_time] {
        assert_ne!(tampered, line);
        let parsed = Anchor::parse_line(&tampered).unwrap();
        assert!(matches!(
            parsed.check_signature(&public),
            Err(IdentityError::AuditBroken(_))
        ));
    }
    assert!(Anchor::parse_line("arbor-audit-anchor v1 seq=x").is_err());
    assert!(AnchorPublicKey::from_file(&secret).is_err());
}

#[test]
fn prune_keeps_a_base_that_verify_starts_from() {
    on_both(|store| {
        fill(store, 6);
        let key = AnchorKey::generate().unwrap();
        let old_anchor = Anchor::sign(
            &key,
            &ChainHead {
                seq: 2,
                hash: all_entries(store)[1].hash,
            },
            at(100),
        );
        assert_eq!(
            audit::prune(store, at(1)).unwrap(),
            0,
            "nothing before second 1"
        );
        let revision = store.head_revision().unwrap();
        assert_eq!(audit::prune(store, at(4)).unwrap(), 3);
        assert!(store.head_revision().unwrap() > revision);
        let report = audit::verify(store, None).unwrap();
        assert_eq!(report.entries, 3);
        assert_eq!(report.first_seq, Some(4));
        assert_eq!(report.base.map(|b| b.seq), Some(3));
        assert_eq!(all_entries(store)[0].seq, 4);
        // The anchored entry was pruned: it cannot be checked any more.
        broken(audit::verify(store, Some(&old_anchor)));

        // The newest entry is never removed.
        assert_eq!(audit::prune(store, at(1_000)).unwrap(), 2);
        let revision = store.head_revision().unwrap();
        assert_eq!(audit::prune(store, at(1_000)).unwrap(), 0);
        assert_eq!(
            store.head_revision().unwrap(),
            revision,
            "an empty prune writes nothing"
        );
        let head = audit::head(store).unwrap().unwrap();
        assert_eq!(head.seq, 6);
        let anchor = Anchor::sign(&key, &head, at(100));
        audit::verify(store, Some(&anchor)).unwrap();

        // The chain goes on from the head after pruning.
        let next = append_at(store, at(7), draft("cli", Source::System, "acme", "user:z"));
        assert_eq!(next.seq, 7);
        assert_eq!(next.prev_hash, head.hash);
        let report = audit::verify(store, Some(&anchor)).unwrap();
        assert_eq!((report.first_seq, report.entries), (Some(6), 2));

        // Removing the kept entries after the base is caught.
        rewrite(store, vec![], vec![stored::entry_key(6)]);
        broken(audit::verify(store, None));
    });
}

#[test]
fn prune_refuses_to_remove_a_broken_stretch() {
    on_both(|store| {
        let entries = fill(store, 4);
        let mut edited = entries[0].clone();
        edited.action = "nothing.happened".into();
        rewrite(store, vec![put_entry(&edited)], vec![]);
        let result = audit::prune(store, at(3));
        assert!(
            matches!(result, Err(IdentityError::AuditBroken(_))),
            "{result:?}"
        );
        assert_eq!(all_entries(store).len(), 4);
    });
}

mod cli {
    use super::*;

    fn arbor(args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_arbor"))
            .args(args)
            .env_remove("ARBOR_DATA_DIR")
            .output()
            .unwrap()
    }

    fn path(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    /// A data directory with an org tree acme > acme-eu > acme-eu-de and 4 entries.
    fn populate(data: &Path) -> Vec<AuditEntry> {
        let store = open_rocks(data);
        store
            .write(&mut |txn| {
                for r in [
                    "organization:acme-eu#parent@organization:acme",
                    "organization:acme-eu-de#parent@organization:acme-eu",
                    "organization:other-child#parent@organization:other",
                ] {
                    txn.touch(Relationship::parse(r).unwrap())?;
                }
                Ok(())
            })
            .unwrap();
        let mut entries = Vec::new();
        for (i, org) in ["acme", "other", "acme-eu-de", "other-child"]
            .iter()
            .enumerate()
        {
            let source = if i % 2 == 0 {
                Source::Admin
            } else {
                Source::Scim
            };
            entries.push(append_at(
                &store,
                at(i as i64 + 1),
                draft(&format!("credential:c{i}"), source, org, "user:bob"),
            ));
        }
        entries
    }

    #[test]
    fn audit_verify_passes_on_an_intact_directory_and_fails_on_a_tampered_one() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let entries = populate(&data);

        let o = arbor(&["audit", "verify", "--data-dir", path(&data)]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let out = text(&o.stdout);
        assert!(out.contains("intact") && out.contains("4 entries"), "{out}");

        // Anchored with keys made by `keygen`, written by `anchor`.
        let prefix = dir.path().join("keys/audit");
        std::fs::create_dir_all(prefix.parent().unwrap()).unwrap();
        let o = arbor(&["audit", "keygen", "--out", path(&prefix)]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let secret = dir.path().join("keys/audit.key");
        let public = dir.path().join("keys/audit.pub");
        let anchor_file = dir.path().join("anchor.txt");
        let o = arbor(&[
            "audit",
            "anchor",
            "--data-dir",
            path(&data),
            "--key-file",
            path(&secret),
            "--anchor-file",
            path(&anchor_file),
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let anchored = [
            "audit",
            "verify",
            "--data-dir",
            path(&data),
            "--anchor-file",
            path(&anchor_file),
            "--anchor-public-key-file",
            path(&public),
        ];
        let o = arbor(&anchored);
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert!(
            text(&o.stdout).contains("anchor at seq 4"),
            "{}",
            text(&o.stdout)
        );

        // A forged anchor line is refused.
        let line = std::fs::read_to_string(&anchor_file).unwrap();
        let forged = dir.path().join("forged.txt");
        std::fs::write(&forged, line.replace("seq=4", "seq=3")).unwrap();
        let mut args = anchored;
        args[5] = path(&forged);
        let o = arbor(&args);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            text(&o.stderr).contains("not signed"),
            "{}",
            text(&o.stderr)
        );

        // Tamper with entry 2 in the directory.
        {
            let store = open_rocks(&data);
            let mut edited = entries[1].clone();
            edited.details = vec![("count".into(), "0".into())];
            rewrite(&store, vec![put_entry(&edited)], vec![]);
        }
        let o = arbor(&["audit", "verify", "--data-dir", path(&data)]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
        let err = text(&o.stderr);
        assert!(
            err.contains("not intact") && err.contains("entry 2"),
            "{err}"
        );
    }

    #[test]
    fn audit_query_and_tail_print_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        populate(&data);

        let seqs = |o: &Output| -> Vec<u64> {
            assert!(o.status.success(), "{}", text(&o.stderr));
            text(&o.stdout)
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                        .as_u64()
                        .unwrap()
                })
                .collect()
        };
        let d = path(&data);
        assert_eq!(
            seqs(&arbor(&["audit", "tail", "--data-dir", d])),
            vec![1, 2, 3, 4]
        );
        assert_eq!(
            seqs(&arbor(&["audit", "tail", "--data-dir", d, "--after", "2"])),
            vec![3, 4]
        );
        assert_eq!(
            seqs(&arbor(&[
                "audit",
                "query",
                "--data-dir",
                d,
                "--org",
                "acme"
            ])),
            vec![1, 3],
            "acme and its subtree"
        );
        assert_eq!(
            seqs(&arbor(&[
                "audit",
                "query",
                "--data-dir",
                d,
                "--org",
                "acme-eu",
                "--org",
                "other"
            ])),
            vec![2, 3, 4]
        );
        assert_eq!(
            seqs(&arbor(&[
                "audit",
                "query",
                "--data-dir",
                d,
                "--source",
                "scim"
            ])),
            vec![2, 4]
        );
        assert_eq!(
            seqs(&arbor(&[
                "audit",
                "query",
                "--data-dir",
                d,
                "--actor",
                "credential:c2"
            ])),
            vec![3]
        );
        assert_eq!(
            seqs(&arbor(&[
                "audit",
                "query",
                "--data-dir",
                d,
                "--from",
                "2025-01-01T00:00:02Z",
                "--to",
                "2025-01-01T00:00:04Z",
            ])),
            vec![2, 3]
        );
        assert_eq!(
            seqs(&arbor(&[
                "audit",
                "query",
                "--data-dir",
                d,
                "--subject",
                "user:bob",
                "--limit",
                "1",
                "--after",
                "1"
            ])),
            vec![2]
        );
        let o = arbor(&["audit", "tail", "--data-dir", d, "--after", "3"]);
        let line: serde_json::Value = serde_json::from_str(text(&o.stdout).trim()).unwrap();
        assert_eq!(line["actor"]["source"], "scim");
        assert_eq!(line["time"], "2025-01-01T00:00:04Z");
        assert_eq!(line["changes"][0]["op"], "touch");
        assert_eq!(line["hash"].as_str().unwrap().len(), 64);

        let o = arbor(&["audit", "query", "--data-dir", d, "--source", "email"]);
        assert_eq!(o.status.code(), Some(2));
    }

    // ---- `arbor audit stream`, against a server started in-process ----

    use std::io::{BufRead as _, BufReader, Read as _};
    use std::net::SocketAddr;
    use std::process::{Child, Stdio};
    use std::sync::{Arc, Mutex, mpsc};
    use std::time::Duration;

    use arbor::api::grpc::proto::authzed::api::v1 as pb;
    use arbor::server::{Config, Engine, Overrides, Server};
    use serde_json::Value;
    use tokio::runtime::Runtime;

    const KEY: &str = "audit-stream-test-key";
    /// The longest a test waits for a line (the follow-after-restart test may sit out a 1 s
    /// and a 2 s backoff).
    const WAIT: Duration = Duration::from_secs(30);
    const SCHEMA: &str =
        "definition user {}\ndefinition document {\n    relation viewer: user\n}\n";

    /// A server on 127.0.0.1, as `tests/grpc/harness.rs` starts one; stopped on drop.
    struct TestServer {
        addr: SocketAddr,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        task: Option<tokio::task::JoinHandle<()>>,
    }

    impl TestServer {
        /// Port 0 picks a free port; `data_dir` only with `Engine::Rocksdb`.
        fn start(rt: &Runtime, port: u16, engine: Engine, data_dir: Option<&Path>) -> TestServer {
            let overrides = Overrides {
                grpc_addr: Some(SocketAddr::from(([127, 0, 0, 1], port))),
                preshared_keys: vec![KEY.to_string()],
                engine: Some(engine),
                data_dir: data_dir.map(Path::to_path_buf),
                metrics_enabled: Some(false),
                revision_quantization: Some(Duration::ZERO),
                shutdown_grace: Some(Duration::from_secs(2)),
                ..Overrides::default()
            };
            let server = rt
                .block_on(Server::bind(Config::resolve(overrides).unwrap()))
                .unwrap();
            let addr = server.local_addr().unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let task = rt.spawn(async move {
                server
                    .serve(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
            TestServer {
                addr,
                stop: Some(tx),
                task: Some(task),
            }
        }

        fn target(&self) -> String {
            self.addr.to_string()
        }

        /// Stops the server and waits until it has let go of its port and data directory.
        fn stop(mut self, rt: &Runtime) {
            let _ = self.stop.take().unwrap().send(());
            let task = self.task.take().unwrap();
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), task).await })
                .expect("the server did not stop")
                .unwrap();
        }

        fn channel(&self, rt: &Runtime) -> tonic::transport::Channel {
            rt.block_on(
                tonic::transport::Channel::from_shared(format!("http://{}", self.addr))
                    .unwrap()
                    .connect(),
            )
            .unwrap()
        }

        /// Writes the schema: one `schema.write` entry.
        fn write_schema(&self, rt: &Runtime) {
            let mut client = pb::schema_service_client::SchemaServiceClient::new(self.channel(rt));
            let request = authed(pb::WriteSchemaRequest {
                schema: SCHEMA.to_string(),
            });
            rt.block_on(client.write_schema(request)).unwrap();
        }

        /// Touches `document:{doc}#viewer@user:{user}`: one `relationships.write` entry.
        fn write_viewer(&self, rt: &Runtime, doc: &str, user: &str) {
            let object = |t: &str, id: &str| pb::ObjectReference {
                object_type: t.to_string(),
                object_id: id.to_string(),
            };
            let update = pb::RelationshipUpdate {
                operation: pb::relationship_update::Operation::Touch as i32,
                relationship: Some(pb::Relationship {
                    resource: Some(object("document", doc)),
                    relation: "viewer".to_string(),
                    subject: Some(pb::SubjectReference {
                        object: Some(object("user", user)),
                        optional_relation: String::new(),
                    }),
                    ..Default::default()
                }),
            };
            let mut client =
                pb::permissions_service_client::PermissionsServiceClient::new(self.channel(rt));
            let request = authed(pb::WriteRelationshipsRequest {
                updates: vec![update],
                ..Default::default()
            });
            rt.block_on(client.write_relationships(request)).unwrap();
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            if let Some(tx) = self.stop.take() {
                let _ = tx.send(());
            }
        }
    }

    fn authed<T>(message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {KEY}").parse().unwrap());
        request
    }

    /// `arbor audit stream --target …` plus `args`, the token from `ARBOR_TOKEN`.
    fn stream_command(target: &str, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_arbor"));
        command
            .args(["audit", "stream", "--target", target])
            .args(args)
            .env("ARBOR_TOKEN", KEY);
        command
    }

    fn json_lines(o: &Output) -> Vec<Value> {
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn seqs_of(lines: &[Value]) -> Vec<u64> {
        lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect()
    }

    /// Each line's `prev_hash` is the previous line's `hash` (the first's is zeros when it
    /// is entry 1); every hash is 64 hex digits.
    #[track_caller]
    fn assert_chained(lines: &[Value]) {
        for (i, line) in lines.iter().enumerate() {
            let hash = line["hash"].as_str().unwrap();
            assert_eq!(hash.len(), 64, "{line}");
            assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
            if i == 0 && line["seq"] == 1 {
                assert_eq!(line["prev_hash"], "0".repeat(64), "{line}");
            }
            if i > 0 {
                assert_eq!(line["prev_hash"], lines[i - 1]["hash"], "{line}");
            }
        }
    }

    /// A running `arbor audit stream`: its stdout lines arrive on a channel, its stderr is
    /// collected.
    struct Feed {
        child: Child,
        lines: mpsc::Receiver<String>,
        stderr: Arc<Mutex<String>>,
    }

    impl Feed {
        fn spawn(mut command: Command) -> Feed {
            let mut child = command
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let stdout = child.stdout.take().unwrap();
            let (tx, lines) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            let mut stderr_pipe = child.stderr.take().unwrap();
            let stderr = Arc::new(Mutex::new(String::new()));
            let sink = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = stderr_pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
            Feed {
                child,
                lines,
                stderr,
            }
        }

        fn stderr(&self) -> String {
            self.stderr.lock().unwrap().clone()
        }

        /// The next line as JSON (fails after `WAIT`).
        fn next(&self) -> Value {
            match self.lines.recv_timeout(WAIT) {
                Ok(line) => serde_json::from_str(&line).unwrap(),
                Err(e) => panic!(
                    "no line from `arbor audit stream` ({e}); stderr: {}",
                    self.stderr()
                ),
            }
        }

        /// Asserts no further line arrives for a moment.
        fn assert_quiet(&self) {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
                panic!("unexpected line: {line}");
            }
        }

        /// Sends SIGINT (what Ctrl-C sends) and waits for a clean exit.
        fn interrupt(mut self) {
            let pid = self.child.id().to_string();
            let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
            assert!(sent.success());
            let deadline = std::time::Instant::now() + WAIT;
            loop {
                if let Some(status) = self.child.try_wait().unwrap() {
                    assert!(status.success(), "{status}; stderr: {}", self.stderr());
                    return;
                }
                if std::time::Instant::now() > deadline {
                    let _ = self.child.kill();
                    panic!("`arbor audit stream` did not stop on SIGINT");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    impl Drop for Feed {
        fn drop(&mut self) {
            // Only if a test failed before stopping it.
            if let Ok(None) = self.child.try_wait() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }

    #[test]
    fn audit_stream_once_prints_every_entry_as_chained_json_lines() {
        let rt = Runtime::new().unwrap();
        let server = TestServer::start(&rt, 0, Engine::Memory, None);
        let target = server.target();
        server.write_schema(&rt);
        for (doc, user) in [("d1", "alice"), ("d2", "bob"), ("d3", "carol")] {
            server.write_viewer(&rt, doc, user);
        }

        let lines = json_lines(&stream_command(&target, &["--once"]).output().unwrap());
        assert_eq!(seqs_of(&lines), vec![1, 2, 3, 4]);
        let actions: Vec<&str> = lines
            .iter()
            .map(|l| l["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            [
                "schema.write",
                "relationships.write",
                "relationships.write",
                "relationships.write"
            ]
        );
        assert_chained(&lines);
        let last = &lines[3];
        assert_eq!(last["changes"][0]["op"], "touch");
        assert_eq!(
            last["changes"][0]["relationship"],
            "document:d3#viewer@user:carol"
        );
        assert_eq!(last["actor"]["source"], "api");
        assert_eq!(last["actor"]["on_behalf_of"], Value::Null);
        assert!(last["revision"].as_u64().unwrap() > lines[0]["revision"].as_u64().unwrap());
        // The same fields, in the same order, as `entry_json` gives an entry read from a
        // data directory.
        let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
        let offline = arbor::api::audit_json::entry_json(&AuditEntry {
            seq: 1,
            revision: arbor::model::Revision::new(1),
            time: at(0),
            actor: Actor::new("cli", Source::System),
            action: "x".into(),
            orgs: Default::default(),
            subjects: Default::default(),
            changes: Vec::new(),
            details: Vec::new(),
            prev_hash: [0; 32],
            hash: [0; 32],
        });
        assert_eq!(keys(last), keys(&offline));
        assert_eq!(keys(&last["actor"]), keys(&offline["actor"]));

        // --after resumes; --token works as well as ARBOR_TOKEN.
        let o = stream_command(&target, &["--once", "--after", "2"])
            .env_remove("ARBOR_TOKEN")
            .args(["--token", KEY])
            .output()
            .unwrap();
        assert_eq!(json_lines(&o), lines[2..].to_vec());

        // A refused token: exit 1, a clear message, the token not repeated.
        let o = stream_command(&target, &["--once"])
            .env("ARBOR_TOKEN", "not-the-key-4711")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        let err = text(&o.stderr);
        assert!(err.contains("the token was refused"), "{err}");
        assert!(!err.contains("not-the-key-4711"), "{err}");
        assert!(o.stdout.is_empty());
        let o = stream_command(&target, &[])
            .env("ARBOR_TOKEN", "not-the-key-4711")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "following stops too");
        assert!(text(&o.stderr).contains("the token was refused"));

        // Without a token at all, the command line is wrong.
        let o = stream_command(&target, &["--once"])
            .env_remove("ARBOR_TOKEN")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2));
        server.stop(&rt);
    }

    #[test]
    fn audit_stream_follows_new_entries_until_interrupted() {
        let rt = Runtime::new().unwrap();
        let server = TestServer::start(&rt, 0, Engine::Memory, None);
        server.write_schema(&rt);
        server.write_viewer(&rt, "d1", "alice");
        server.write_viewer(&rt, "d2", "bob");

        let feed = Feed::spawn(stream_command(&server.target(), &[]));
        let mut lines: Vec<Value> = (0..3).map(|_| feed.next()).collect();
        assert_eq!(seqs_of(&lines), vec![1, 2, 3]);
        feed.assert_quiet();

        server.write_viewer(&rt, "d3", "carol");
        lines.push(feed.next());
        assert_eq!(seqs_of(&lines), vec![1, 2, 3, 4]);
        assert_eq!(
            lines[3]["changes"][0]["relationship"],
            "document:d3#viewer@user:carol"
        );
        assert_chained(&lines);
        feed.assert_quiet();
        feed.interrupt();
        server.stop(&rt);
    }

    #[test]
    fn audit_stream_resumes_after_a_server_restart_and_matches_tail() {
        let rt = Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let server = TestServer::start(&rt, 0, Engine::Rocksdb, Some(&data));
        let port = server.addr.port();
        let target = server.target();
        server.write_schema(&rt);
        server.write_viewer(&rt, "d1", "alice");

        let feed = Feed::spawn(stream_command(&target, &[]));
        let mut lines: Vec<Value> = (0..2).map(|_| feed.next()).collect();

        // The stream breaks; entries committed while it is down arrive once it is back.
        server.stop(&rt);
        let server = TestServer::start(&rt, port, Engine::Rocksdb, Some(&data));
        server.write_viewer(&rt, "d2", "bob");
        server.write_viewer(&rt, "d3", "carol");
        lines.push(feed.next());
        lines.push(feed.next());
        assert_eq!(seqs_of(&lines), vec![1, 2, 3, 4], "none twice, none lost");
        assert_chained(&lines);
        feed.assert_quiet();
        assert!(feed.stderr().contains("reconnecting"), "{}", feed.stderr());
        feed.interrupt();

        // The stream's lines are what `arbor audit tail` prints from the data directory:
        // the server's wire form and the offline form render alike.
        let once = json_lines(&stream_command(&target, &["--once"]).output().unwrap());
        assert_eq!(once, lines);
        server.stop(&rt);
        let tail = json_lines(&arbor(&["audit", "tail", "--data-dir", path(&data)]));
        assert_eq!(tail, lines);
    }
}
