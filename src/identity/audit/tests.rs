//! Unit tests of the audit chain against an in-memory fake of `Records`: append, the stored
//! encoding, the hash's sensitivity to every field, and anchors.

use std::collections::BTreeMap;

use super::anchor::{Anchor, AnchorKey, AnchorPublicKey};
use super::codec::{self, HEAD_KEY};
use super::*;
use crate::identity::{IdentityError, Source};
use crate::store::{Records, StoreError};

/// Records in a map, keyed by (family, key).
#[derive(Default)]
struct FakeRecords(BTreeMap<(&'static str, Vec<u8>), Vec<u8>>);

impl Records for FakeRecords {
    fn get_record(&self, family: RecordFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.get(&(family.name(), key.to_vec())).cloned())
    }

    fn put_record(
        &mut self,
        family: RecordFamily,
        key: &[u8],
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.0.insert((family.name(), key.to_vec()), value);
        Ok(())
    }

    fn delete_record(&mut self, family: RecordFamily, key: &[u8]) -> Result<(), StoreError> {
        self.0.remove(&(family.name(), key.to_vec()));
        Ok(())
    }

    fn scan_records(
        &self,
        family: RecordFamily,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<crate::store::Record>, StoreError> {
        Ok(self
            .0
            .iter()
            .filter(|((f, k), _)| *f == family.name() && k.starts_with(prefix))
            .filter(|((_, k), _)| after.is_none_or(|a| k.as_slice() > a))
            .take(limit)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }
}

fn draft(n: u32) -> AuditDraft {
    let mut actor = Actor::new(format!("platform-key:k{n}"), Source::Api);
    actor.on_behalf_of = Some("user:alice".into());
    actor.reason = Some("ticket 12".into());
    AuditDraft {
        actor: Some(actor),
        action: "relationships.write".into(),
        orgs: ["acme".to_string()].into(),
        subjects: ["user:bob".to_string()].into(),
        changes: vec![
            AuditChange::Touch("document:d1#viewer@user:bob".into()),
            AuditChange::Delete("document:d2#viewer@user:bob".into()),
        ],
        details: vec![("count".into(), "2".into())],
    }
}

#[test]
fn append_links_entries_and_moves_the_head() {
    let mut records = FakeRecords::default();
    let first = append(
        &mut records,
        Revision::new(3),
        Timestamp::from_micros(10),
        draft(1),
    )
    .unwrap();
    let second = append(
        &mut records,
        Revision::new(4),
        Timestamp::from_micros(20),
        draft(2),
    )
    .unwrap();
    assert_eq!((first.seq, second.seq), (1, 2));
    assert_eq!(first.prev_hash, [0u8; 32]);
    assert_eq!(second.prev_hash, first.hash);
    assert_eq!(codec::entry_hash(&second), second.hash);
    let head_bytes = records.get_record(AUDIT_FAMILY, HEAD_KEY).unwrap().unwrap();
    assert_eq!(
        codec::decode_point(&head_bytes, "head").unwrap(),
        ChainHead {
            seq: 2,
            hash: second.hash
        }
    );
    let stored = records
        .get_record(AUDIT_FAMILY, &codec::entry_key(2))
        .unwrap()
        .unwrap();
    assert_eq!(codec::decode_entry(2, &stored).unwrap(), second);
}

#[test]
fn append_without_actor_is_invalid() {
    let mut records = FakeRecords::default();
    let mut d = draft(1);
    d.actor = None;
    let err = append(&mut records, Revision::new(1), Timestamp::from_micros(1), d).unwrap_err();
    assert!(matches!(err, IdentityError::InvalidArgument(_)), "{err:?}");
    assert!(records.0.is_empty());
}

#[test]
fn append_refuses_entries_without_a_head() {
    let mut records = FakeRecords::default();
    append(
        &mut records,
        Revision::new(1),
        Timestamp::from_micros(1),
        draft(1),
    )
    .unwrap();
    records.delete_record(AUDIT_FAMILY, HEAD_KEY).unwrap();
    let err = append(
        &mut records,
        Revision::new(2),
        Timestamp::from_micros(2),
        draft(2),
    )
    .unwrap_err();
    assert!(matches!(err, IdentityError::Corrupt { .. }), "{err:?}");
}

#[test]
fn decoding_rejects_a_wrong_seq_and_garbage() {
    let mut records = FakeRecords::default();
    append(
        &mut records,
        Revision::new(1),
        Timestamp::from_micros(1),
        draft(1),
    )
    .unwrap();
    let stored = records
        .get_record(AUDIT_FAMILY, &codec::entry_key(1))
        .unwrap()
        .unwrap();
    assert!(matches!(
        codec::decode_entry(2, &stored),
        Err(IdentityError::Corrupt { .. })
    ));
    assert!(matches!(
        codec::decode_entry(1, &[1, 2, 3]),
        Err(IdentityError::Corrupt { .. })
    ));
    assert!(matches!(
        codec::decode_entry(1, &[]),
        Err(IdentityError::Corrupt { .. })
    ));
    assert!(matches!(
        codec::decode_point(&[0; 39], "head"),
        Err(IdentityError::Corrupt { .. })
    ));
}

#[test]
fn the_hash_covers_every_field() {
    let mut records = FakeRecords::default();
    let entry = append(
        &mut records,
        Revision::new(1),
        Timestamp::from_micros(1),
        draft(1),
    )
    .unwrap();
    type Edit = Box<dyn Fn(&mut AuditEntry)>;
    let edits: Vec<Edit> = vec![
        Box::new(|e| e.seq += 1),
        Box::new(|e| e.revision = Revision::new(9)),
        Box::new(|e| e.time = Timestamp::from_micros(2)),
        Box::new(|e| e.actor.principal.push('x')),
        Box::new(|e| e.actor.on_behalf_of = None),
        Box::new(|e| e.actor.initiated_by = Some("user:eve".into())),
        Box::new(|e| e.actor.source = Source::Admin),
        Box::new(|e| e.actor.reason = None),
        Box::new(|e| e.actor.request_id = Some("r".into())),
        Box::new(|e| e.action.push('x')),
        Box::new(|e| {
            e.orgs.insert("other".into());
        }),
        Box::new(|e| e.subjects.clear()),
        Box::new(|e| e.changes.swap(0, 1)),
        Box::new(|e| e.changes[0] = AuditChange::Delete("document:d1#viewer@user:bob".into())),
        Box::new(|e| e.details[0].1 = "3".into()),
        Box::new(|e| e.prev_hash[0] ^= 1),
    ];
    for (i, edit) in edits.iter().enumerate() {
        let mut changed = entry.clone();
        edit(&mut changed);
        assert_ne!(
            codec::entry_hash(&changed),
            entry.hash,
            "edit {i} kept the hash"
        );
    }
    // Moving bytes between adjacent fields changes the hash (length prefixes).
    let mut a = entry.clone();
    a.details = vec![("ab".into(), "c".into())];
    let mut b = entry.clone();
    b.details = vec![("a".into(), "bc".into())];
    assert_ne!(codec::entry_hash(&a), codec::entry_hash(&b));
}

#[test]
fn hex_round_trips() {
    let bytes = [0u8, 1, 0xab, 0xff];
    assert_eq!(codec::hex(&bytes), "0001abff");
    assert_eq!(codec::parse_hex::<4>("0001ABff"), Some(bytes));
    assert_eq!(codec::parse_hex::<4>("0001abf"), None);
    assert_eq!(codec::parse_hex::<4>("0001abfg"), None);
}

#[test]
fn anchors_sign_round_trip_and_reject_tampering() {
    let key = AnchorKey::generate().unwrap();
    let public = key.public_key();
    let head = ChainHead {
        seq: 42,
        hash: [7u8; 32],
    };
    let anchor = Anchor::sign(&key, &head, Timestamp::from_micros(1_700_000_000_123_456));
    anchor.check_signature(&public).unwrap();
    let line = anchor.to_line();
    assert!(
        line.starts_with("arbor-audit-anchor v1 seq=42 hash=0707"),
        "{line}"
    );
    let parsed = Anchor::parse_line(&line).unwrap();
    assert_eq!(parsed, anchor);
    parsed.check_signature(&public).unwrap();

    let tampered = Anchor::parse_line(&line.replace("seq=42", "seq=41")).unwrap();
    assert!(matches!(
        tampered.check_signature(&public),
        Err(IdentityError::AuditBroken(_))
    ));
    let other = AnchorKey::generate().unwrap().public_key();
    assert!(matches!(
        anchor.check_signature(&other),
        Err(IdentityError::AuditBroken(_))
    ));

    for bad in [
        "",
        "arbor-audit-anchor v1 seq=1",
        "nope seq=1",
        &format!("{line} seq=3"),
        &format!("{line} x=1"),
    ] {
        assert!(
            matches!(
                Anchor::parse_line(bad),
                Err(IdentityError::InvalidArgument(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn key_files_round_trip_and_keep_their_kind() {
    let key = AnchorKey::generate().unwrap();
    let secret_text = key.to_file_text();
    let public_text = key.public_key().to_file_text();
    assert!(secret_text.starts_with("arbor-audit-key v1 ed25519-secret "));
    assert!(public_text.starts_with("arbor-audit-key v1 ed25519-public "));
    let again = AnchorKey::parse(&secret_text).unwrap();
    assert_eq!(again.public_key(), key.public_key());
    assert_eq!(
        AnchorPublicKey::parse(&public_text).unwrap(),
        key.public_key()
    );
    assert!(AnchorKey::parse(&public_text).is_err());
    assert!(AnchorPublicKey::parse(&secret_text).is_err());
    assert!(!format!("{key:?}").contains(&secret_text[34..]));
}
