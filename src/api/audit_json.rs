//! The JSON form of an audit entry, used by `arbor audit query` / `tail` / `stream` and any
//! JSON endpoint: hashes as lowercase hex, time as RFC 3339, changes as `{"op", "relationship"}`.
//! An entry read from a data directory and one received over `arbor.v1.AuditService` render
//! through the same function, so the two shapes cannot drift apart.

use serde_json::{Map, Value, json};

use crate::api::grpc::proto::arbor::v1 as pb;
use crate::identity::audit::{AuditChange, AuditEntry, hex};

/// The fields of one entry as text, whichever form it came in; `render` is the only place
/// that names the JSON fields.
struct View<'a> {
    seq: u64,
    revision: u64,
    time: String,
    principal: &'a str,
    on_behalf_of: Option<&'a str>,
    initiated_by: Option<&'a str>,
    source: &'a str,
    reason: Option<&'a str>,
    request_id: Option<&'a str>,
    action: &'a str,
    orgs: Vec<&'a str>,
    subjects: Vec<&'a str>,
    /// `(op, relationship)`.
    changes: Vec<(&'a str, &'a str)>,
    /// `(name, value)` in output order.
    details: Vec<(&'a str, &'a str)>,
    prev_hash: String,
    hash: String,
}

/// An optional actor field: absent and empty are both `null` (the wire cannot tell them
/// apart, so neither form does).
fn optional(value: Option<&str>) -> Value {
    match value {
        Some(text) if !text.is_empty() => Value::String(text.to_string()),
        _ => Value::Null,
    }
}

fn render(v: View<'_>) -> Value {
    let changes: Vec<Value> = v
        .changes
        .iter()
        .map(|(op, relationship)| json!({ "op": op, "relationship": relationship }))
        .collect();
    let details: Map<String, Value> = v
        .details
        .iter()
        .map(|(name, value)| (name.to_string(), Value::String(value.to_string())))
        .collect();
    json!({
        "seq": v.seq,
        "revision": v.revision,
        "time": v.time,
        "actor": {
            "principal": v.principal,
            "on_behalf_of": optional(v.on_behalf_of),
            "initiated_by": optional(v.initiated_by),
            "source": v.source,
            "reason": optional(v.reason),
            "request_id": optional(v.request_id),
        },
        "action": v.action,
        "orgs": v.orgs,
        "subjects": v.subjects,
        "changes": changes,
        "details": details,
        "prev_hash": v.prev_hash,
        "hash": v.hash,
    })
}

/// One entry as a JSON object:
///
/// ```text
/// {"seq": 7, "revision": 12, "time": "2025-01-02T03:04:05.123456Z",
///  "actor": {"principal": "…", "on_behalf_of": null, "initiated_by": null, "source": "api",
///            "reason": null, "request_id": "…"},
///  "action": "relationships.write", "orgs": ["acme"], "subjects": ["user:bob"],
///  "changes": [{"op": "touch", "relationship": "document:d#viewer@user:bob"}],
///  "details": {"count": "1"}, "prev_hash": "<64 hex>", "hash": "<64 hex>"}
/// ```
///
/// Absent (or empty) optional actor fields are `null`; `details` keep their order (a
/// repeated name keeps its last value).
pub fn entry_json(entry: &AuditEntry) -> Value {
    let actor = &entry.actor;
    render(View {
        seq: entry.seq,
        revision: entry.revision.get(),
        time: entry.time.to_rfc3339(),
        principal: &actor.principal,
        on_behalf_of: actor.on_behalf_of.as_deref(),
        initiated_by: actor.initiated_by.as_deref(),
        source: actor.source.as_str(),
        reason: actor.reason.as_deref(),
        request_id: actor.request_id.as_deref(),
        action: &entry.action,
        orgs: entry.orgs.iter().map(String::as_str).collect(),
        subjects: entry.subjects.iter().map(String::as_str).collect(),
        changes: entry
            .changes
            .iter()
            .map(|change| match change {
                AuditChange::Touch(r) => ("touch", r.as_str()),
                AuditChange::Delete(r) => ("delete", r.as_str()),
            })
            .collect(),
        details: entry
            .details
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect(),
        prev_hash: hex(&entry.prev_hash),
        hash: hex(&entry.hash),
    })
}

/// An entry received from `arbor.v1.AuditService` (QueryAudit, StreamAudit) as the same
/// JSON object `entry_json` makes of the entry it was sent from. The one difference the wire
/// forces: `details` is a map there, so its names come in name order here rather than in the
/// order they were recorded (the values are the same).
pub fn proto_entry_json(entry: &pb::AuditEntry) -> Value {
    let mut details: Vec<(&str, &str)> = entry
        .details
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    details.sort_unstable();
    render(View {
        seq: entry.seq,
        revision: entry.revision,
        time: entry.time.clone(),
        principal: &entry.principal,
        on_behalf_of: Some(entry.on_behalf_of.as_str()),
        initiated_by: Some(entry.initiated_by.as_str()),
        source: &entry.source,
        reason: Some(entry.reason.as_str()),
        request_id: Some(entry.request_id.as_str()),
        action: &entry.action,
        orgs: entry.organizations.iter().map(String::as_str).collect(),
        subjects: entry.subjects.iter().map(String::as_str).collect(),
        changes: entry
            .changes
            .iter()
            .map(|c| (c.operation.as_str(), c.relationship.as_str()))
            .collect(),
        details,
        prev_hash: entry.prev_hash.clone(),
        hash: entry.hash.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Actor, Source};
    use crate::model::{Revision, Timestamp};

    #[test]
    fn renders_every_field() {
        let entry = AuditEntry {
            seq: 3,
            revision: Revision::new(9),
            time: Timestamp::from_micros(1_700_000_000_000_000),
            actor: Actor::new("cli", Source::System),
            action: "relationships.write".into(),
            orgs: ["acme".to_string()].into(),
            subjects: ["user:bob".to_string()].into(),
            changes: vec![
                AuditChange::Touch("document:d#viewer@user:bob".into()),
                AuditChange::Delete("document:e#viewer@user:bob".into()),
            ],
            details: vec![("count".into(), "2".into())],
            prev_hash: [0; 32],
            hash: [0xab; 32],
        };
        let v = entry_json(&entry);
        assert_eq!(v["seq"], 3);
        assert_eq!(v["revision"], 9);
        assert_eq!(v["time"], "2023-11-14T22:13:20Z");
        assert_eq!(v["actor"]["source"], "system");
        assert_eq!(v["actor"]["on_behalf_of"], Value::Null);
        assert_eq!(v["changes"][1]["op"], "delete");
        assert_eq!(
            v["changes"][0]["relationship"],
            "document:d#viewer@user:bob"
        );
        assert_eq!(v["details"]["count"], "2");
        assert_eq!(v["hash"], "ab".repeat(32));
        assert_eq!(v["orgs"][0], "acme");
    }

    /// The entry as `arbor.v1.AuditService` sends it (field for field as
    /// `api::grpc::audit::entry_to_proto` fills it; the identity tests also compare
    /// `arbor audit stream` against `arbor audit tail` through a real server).
    fn wire(e: &AuditEntry) -> pb::AuditEntry {
        pb::AuditEntry {
            seq: e.seq,
            revision: e.revision.get(),
            time: e.time.to_string(),
            principal: e.actor.principal.clone(),
            on_behalf_of: e.actor.on_behalf_of.clone().unwrap_or_default(),
            initiated_by: e.actor.initiated_by.clone().unwrap_or_default(),
            source: e.actor.source.as_str().to_string(),
            reason: e.actor.reason.clone().unwrap_or_default(),
            request_id: e.actor.request_id.clone().unwrap_or_default(),
            action: e.action.clone(),
            organizations: e.orgs.iter().cloned().collect(),
            subjects: e.subjects.iter().cloned().collect(),
            changes: e
                .changes
                .iter()
                .map(|c| {
                    let (operation, relationship) = match c {
                        AuditChange::Touch(r) => ("touch", r),
                        AuditChange::Delete(r) => ("delete", r),
                    };
                    pb::AuditChange {
                        operation: operation.to_string(),
                        relationship: relationship.clone(),
                    }
                })
                .collect(),
            details: e.details.iter().cloned().collect(),
            prev_hash: hex(&e.prev_hash),
            hash: hex(&e.hash),
        }
    }

    fn full_entry() -> AuditEntry {
        let mut actor = Actor::new("session:s1", Source::Admin);
        actor.on_behalf_of = Some("user:alice".into());
        actor.initiated_by = Some("platform-key:support".into());
        actor.reason = Some("ticket 42".into());
        actor.request_id = Some("req-7".into());
        AuditEntry {
            seq: 12,
            revision: Revision::new(40),
            time: Timestamp::from_micros(1_700_000_000_123_456),
            actor,
            action: "organization.delete".into(),
            orgs: ["acme".to_string(), "acme-eu".to_string()].into(),
            subjects: ["user:alice".to_string(), "team:t#member".to_string()].into(),
            changes: vec![
                AuditChange::Delete("organization:acme-eu#parent@organization:acme".into()),
                AuditChange::Touch("document:d#viewer@user:alice".into()),
            ],
            // Out of name order, with a repeated name (the last value wins in both forms).
            details: vec![
                ("organization".into(), "acme-eu".into()),
                ("deleted_organization".into(), "acme-eu-de".into()),
                ("cascade".into(), "true".into()),
                ("deleted_organization".into(), "acme-eu".into()),
            ],
            prev_hash: [0x5a; 32],
            hash: [0xc3; 32],
        }
    }

    #[test]
    fn an_entry_renders_alike_from_the_store_and_from_the_wire() {
        let minimal = AuditEntry {
            actor: Actor::new("cli", Source::System),
            orgs: Default::default(),
            subjects: Default::default(),
            changes: Vec::new(),
            details: Vec::new(),
            ..full_entry()
        };
        for entry in [full_entry(), minimal] {
            let stored = entry_json(&entry);
            let sent = proto_entry_json(&wire(&entry));
            // Object equality ignores key order: every field name and value agrees.
            assert_eq!(stored, sent);
            // Every field but the order of `details` names is the same text, too.
            let mut sorted = entry.clone();
            // A stable sort by name keeps a repeated name's values in recorded order.
            sorted.details.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(
                serde_json::to_string(&entry_json(&sorted)).unwrap(),
                serde_json::to_string(&sent).unwrap()
            );
        }
        let v = proto_entry_json(&wire(&full_entry()));
        assert_eq!(v["actor"]["on_behalf_of"], "user:alice");
        assert_eq!(v["details"]["deleted_organization"], "acme-eu");
        assert_eq!(v["time"], "2023-11-14T22:13:20.123456Z");
    }
}
