//! Directory tests on both datastores, over the prelude schema: organizations (placement,
//! slugs, domains, moves, deletes with and without cascade), members, invitations,
//! credentials, impersonation sessions and user lifecycle, each mutation checked for exactly
//! one audit entry, and access checked with the evaluator at the change's revision.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arbor::eval::{self, EvalConfig, EvalContext};
use arbor::identity::audit::{self, AUDIT_FAMILY, AuditChange};
use arbor::identity::directory::{
    Branding, Directory, DirectoryConfig, ExternalId, InvitationState, NewOrganization, NewUser,
    OrgUpdate, Role, UserState,
};
use arbor::identity::{Actor, IdentityError, Source};
use arbor::model::{Relationship, RelationshipFilter, Revision, Timestamp};
use arbor::schema;
use arbor::store::memory::MemoryDatastore;
use arbor::store::rocks::{RocksDatastore, RocksOptions};
use arbor::store::{
    BulkImportOutcome, ChangeSet, Datastore, GcStats, ImportSummary, RecordFamily, Records,
    Snapshot, StoreError, Transaction,
};

#[derive(Debug, Clone, Copy)]
enum Engine {
    Memory,
    Rocks,
}

const ENGINES: [Engine; 2] = [Engine::Memory, Engine::Rocks];

/// A directory over a fresh datastore holding the prelude schema.
struct Fixture {
    store: Arc<dyn Datastore>,
    dir: Directory,
    actor: Actor,
    _tmp: Option<tempfile::TempDir>,
}

/// The `schema:` block of the prelude.
fn prelude() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema-examples/org-hierarchy.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    doc["schema"].as_str().unwrap().to_string()
}

fn open(engine: Engine) -> (Arc<dyn Datastore>, Option<tempfile::TempDir>) {
    match engine {
        Engine::Memory => (Arc::new(MemoryDatastore::new()), None),
        Engine::Rocks => {
            let tmp = tempfile::tempdir().unwrap();
            let options = RocksOptions {
                gc_interval: None,
                ..RocksOptions::default()
            };
            let store = RocksDatastore::open(tmp.path(), options).unwrap();
            (Arc::new(store), Some(tmp))
        }
    }
}

impl Fixture {
    fn new(engine: Engine) -> Self {
        let (store, tmp) = open(engine);
        Self::over(store, tmp)
    }

    fn over(store: Arc<dyn Datastore>, tmp: Option<tempfile::TempDir>) -> Self {
        let schema = Arc::new(schema::compile(&prelude()).unwrap());
        store
            .write(&mut |txn| txn.write_schema(Arc::clone(&schema)))
            .unwrap();
        let dir = Directory::new(Arc::clone(&store), DirectoryConfig::default());
        Fixture {
            store,
            dir,
            actor: Actor::new("platform-key:test", Source::Admin),
            _tmp: tmp,
        }
    }

    /// The audit chain's head seq (0 when empty).
    fn audit_seq(&self) -> u64 {
        audit::head(&*self.store).unwrap().map_or(0, |h| h.seq)
    }

    /// Runs a mutation and checks it appended exactly one audit entry, of `action`, at the
    /// revision it returned (or none when it failed). Returns the mutation's result and the
    /// entry's changes.
    fn audited<T>(
        &self,
        action: &str,
        f: impl FnOnce() -> Result<T, IdentityError>,
    ) -> Result<(T, Vec<AuditChange>), IdentityError> {
        let before = self.audit_seq();
        let head_before = self.store.head_revision().unwrap();
        match f() {
            Ok(value) => {
                let entries = audit::read_after(&*self.store, before, 10).unwrap();
                assert_eq!(entries.len(), 1, "`{action}` must append exactly one entry");
                let entry = &entries[0];
                assert_eq!(entry.action, action);
                assert_eq!(entry.actor, self.actor);
                assert_eq!(entry.revision, self.store.head_revision().unwrap());
                Ok((value, entry.changes.clone()))
            }
            Err(e) => {
                assert_eq!(
                    self.audit_seq(),
                    before,
                    "a failed `{action}` appends nothing"
                );
                assert_eq!(
                    self.store.head_revision().unwrap(),
                    head_before,
                    "a failed `{action}` commits nothing"
                );
                Err(e)
            }
        }
    }

    fn org(&self, id: &str, parent: Option<&str>) {
        self.audited("organization.create", || {
            self.dir.create_org(
                &self.actor,
                NewOrganization {
                    id: Some(id.to_string()),
                    parent: parent.map(str::to_string),
                    display_name: format!("Org {id}"),
                    ..NewOrganization::default()
                },
            )
        })
        .unwrap();
    }

    fn user(&self, id: &str) {
        self.audited("user.create", || {
            self.dir.create_user(
                &self.actor,
                NewUser {
                    id: Some(id.to_string()),
                    display_name: format!("User {id}"),
                    ..NewUser::default()
                },
            )
        })
        .unwrap();
    }

    fn add(&self, org: &str, user: &str, role: Role) -> Revision {
        self.audited("member.add", || {
            self.dir.add_member(&self.actor, org, user, role)
        })
        .unwrap()
        .0
    }

    /// Writes relationships directly (as the relationships API would).
    fn write(&self, rels: &[&str]) -> Revision {
        let rels: Vec<Relationship> = rels
            .iter()
            .map(|r| Relationship::parse(r).unwrap())
            .collect();
        self.store
            .write(&mut |txn| {
                for rel in &rels {
                    txn.touch(rel.clone())?;
                }
                Ok(())
            })
            .unwrap()
    }

    /// Every relationship at the head, as text, sorted.
    fn all(&self) -> Vec<String> {
        let snapshot = self
            .store
            .snapshot(self.store.head_revision().unwrap())
            .unwrap();
        let mut out: Vec<String> = snapshot
            .read(&RelationshipFilter::default(), None)
            .map(|r| r.unwrap().to_string())
            .collect();
        out.sort();
        out
    }

    /// Whether `resource#permission@subject` holds at `revision`.
    fn check_at(&self, revision: Revision, text: &str) -> bool {
        let rel = Relationship::parse(text).unwrap();
        let snapshot = self.store.snapshot(revision).unwrap();
        let ctx = EvalContext::new(
            snapshot,
            eval::dispatch_chain(),
            EvalConfig::default(),
            Timestamp::now(),
        )
        .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(eval::check(
                &ctx,
                rel.resource(),
                rel.relation(),
                rel.subject(),
            ))
            .unwrap()
            .permissionship
            .is_has()
    }

    fn check(&self, text: &str) -> bool {
        self.check_at(self.store.head_revision().unwrap(), text)
    }
}

fn is_precondition(e: &IdentityError, needle: &str) -> bool {
    matches!(e, IdentityError::FailedPrecondition(m) if m.contains(needle))
}

#[test]
fn create_root_and_sub_orgs_writes_placement_relationships() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        let ((acme, _), changes) = f
            .audited("organization.create", || {
                f.dir.create_org(
                    &f.actor,
                    NewOrganization {
                        id: Some("acme".into()),
                        display_name: "Acme Corp".into(),
                        branding: Branding {
                            logo_url: Some("https://acme.example/logo.png".into()),
                            login_url: None,
                        },
                        domains: vec!["Acme.Example".into()],
                        ..NewOrganization::default()
                    },
                )
            })
            .unwrap();
        assert_eq!(
            changes,
            vec![AuditChange::Touch(
                "organization:acme#platform@platform:saas".into()
            )]
        );
        assert_eq!(acme.slug, "acme-corp");
        assert_eq!(acme.parent, None);
        assert_eq!(acme.domains.len(), 1);
        assert_eq!(acme.domains[0].name, "acme.example");
        assert!(!acme.domains[0].verified);
        assert_eq!(f.dir.get_org("acme").unwrap(), acme);

        f.org("emea", Some("acme"));
        let ((generated, _), _) = f
            .audited("organization.create", || {
                f.dir.create_org(
                    &f.actor,
                    NewOrganization {
                        parent: Some("emea".into()),
                        display_name: "Acme Germany".into(),
                        ..NewOrganization::default()
                    },
                )
            })
            .unwrap();
        assert!(!generated.id.is_empty());
        let mut expected = vec![
            format!("organization:{}#parent@organization:emea", generated.id),
            "organization:acme#platform@platform:saas".to_string(),
            "organization:emea#parent@organization:acme".to_string(),
        ];
        expected.sort();
        assert_eq!(f.all(), expected);
        let mut subtree = vec!["acme".to_string(), "emea".to_string(), generated.id.clone()];
        subtree.sort();
        assert_eq!(
            f.dir
                .subtree("acme")
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            subtree
        );

        // Refusals commit nothing and append nothing.
        let dup = f.audited("organization.create", || {
            f.dir.create_org(
                &f.actor,
                NewOrganization {
                    id: Some("acme".into()),
                    display_name: "Again".into(),
                    ..NewOrganization::default()
                },
            )
        });
        assert!(
            matches!(dup, Err(IdentityError::AlreadyExists(_))),
            "{dup:?}"
        );
        let orphan = f.audited("organization.create", || {
            f.dir.create_org(
                &f.actor,
                NewOrganization {
                    parent: Some("nowhere".into()),
                    display_name: "Orphan".into(),
                    ..NewOrganization::default()
                },
            )
        });
        assert!(is_precondition(&orphan.unwrap_err(), "`nowhere`"));
        assert!(matches!(
            f.dir.get_org("nowhere"),
            Err(IdentityError::NotFound {
                kind: "organization",
                ..
            })
        ));
    }
}

#[test]
fn slugs_are_unique_and_derived_from_display_names() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        let create = |id: &str, name: &str, slug: Option<&str>| {
            f.audited("organization.create", || {
                f.dir.create_org(
                    &f.actor,
                    NewOrganization {
                        id: Some(id.into()),
                        display_name: name.into(),
                        slug: slug.map(str::to_string),
                        ..NewOrganization::default()
                    },
                )
            })
            .map(|((org, _), _)| org)
        };
        assert_eq!(create("a1", "Globex", None).unwrap().slug, "globex");
        assert_eq!(create("a2", "Globex!", None).unwrap().slug, "globex-2");
        let taken = create("a3", "Other", Some("globex")).unwrap_err();
        assert!(
            matches!(&taken, IdentityError::AlreadyExists(m) if m.contains("`globex`") && m.contains("`a1`")),
            "{taken}"
        );
        let bad = create("a4", "Other", Some("Not A Slug")).unwrap_err();
        assert!(
            matches!(&bad, IdentityError::InvalidArgument(m) if m.contains("`slug`") && m.contains("`Not A Slug`")),
            "{bad}"
        );
        // Renaming frees the old slug.
        f.audited("organization.update", || {
            f.dir.update_org(
                &f.actor,
                "a1",
                OrgUpdate {
                    slug: Some("globex-corp".into()),
                    ..OrgUpdate::default()
                },
            )
        })
        .unwrap();
        assert_eq!(create("a5", "X", Some("globex")).unwrap().slug, "globex");
        let clash = f.audited("organization.update", || {
            f.dir.update_org(
                &f.actor,
                "a2",
                OrgUpdate {
                    slug: Some("globex-corp".into()),
                    ..OrgUpdate::default()
                },
            )
        });
        assert!(matches!(clash, Err(IdentityError::AlreadyExists(_))));
    }
}

#[test]
fn domains_are_claimed_by_one_organization() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        let create = |id: &str, domains: &[&str]| {
            f.audited("organization.create", || {
                f.dir.create_org(
                    &f.actor,
                    NewOrganization {
                        id: Some(id.into()),
                        display_name: id.into(),
                        domains: domains.iter().map(|d| d.to_string()).collect(),
                        ..NewOrganization::default()
                    },
                )
            })
        };
        create("acme", &["acme.example", "ACME.example"]).unwrap();
        assert_eq!(f.dir.get_org("acme").unwrap().domains.len(), 1);
        assert!(matches!(
            create("globex", &["acme.example"]),
            Err(IdentityError::AlreadyExists(m)) if m.contains("`acme.example`")
        ));
        assert!(matches!(
            create("globex", &["not a domain"]),
            Err(IdentityError::InvalidArgument(m)) if m.contains("`domains`") && m.contains("`not a domain`")
        ));
        // Releasing a domain lets another organization claim it.
        f.audited("organization.update", || {
            f.dir.update_org(
                &f.actor,
                "acme",
                OrgUpdate {
                    domains: Some(vec!["acme.test".into()]),
                    display_name: Some("Acme".into()),
                    ..OrgUpdate::default()
                },
            )
        })
        .unwrap();
        create("globex", &["acme.example"]).unwrap();
        let acme = f.dir.get_org("acme").unwrap();
        assert_eq!(acme.display_name, "Acme");
        assert_eq!(acme.domains[0].name, "acme.test");
    }
}

#[test]
fn move_rewires_parent_and_refuses_cycles() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        f.org("acme", None);
        f.org("emea", Some("acme"));
        f.org("us", Some("acme"));
        f.org("de", Some("emea"));
        for u in ["erin", "uma"] {
            f.user(u);
        }
        f.add("emea", "erin", Role::Admin);
        let before = f.add("us", "uma", Role::Admin);
        assert!(f.check("organization:de#administer@user:erin"));
        assert!(!f.check("organization:de#administer@user:uma"));

        let ((moved, revision), changes) = f
            .audited("organization.move", || f.dir.move_org(&f.actor, "de", "us"))
            .unwrap();
        assert_eq!(moved.parent.as_deref(), Some("us"));
        assert_eq!(
            changes,
            vec![
                AuditChange::Delete("organization:de#parent@organization:emea".into()),
                AuditChange::Touch("organization:de#parent@organization:us".into()),
            ]
        );
        assert!(f.check_at(revision, "organization:de#administer@user:uma"));
        assert!(!f.check_at(revision, "organization:de#administer@user:erin"));
        // The revision before the move still answers as before.
        assert!(f.check_at(before, "organization:de#administer@user:erin"));
        assert_eq!(f.dir.get_org("de").unwrap().parent.as_deref(), Some("us"));
        assert!(f.dir.subtree("us").unwrap().contains("de"));
        assert!(!f.dir.subtree("emea").unwrap().contains("de"));

        // Cycles, roots and missing parents are refused.
        let under_child = f
            .audited("organization.move", || f.dir.move_org(&f.actor, "us", "de"))
            .unwrap_err();
        assert!(is_precondition(&under_child, "subtree"), "{under_child}");
        let under_self = f
            .audited("organization.move", || f.dir.move_org(&f.actor, "us", "us"))
            .unwrap_err();
        assert!(is_precondition(&under_self, "itself"), "{under_self}");
        let root = f
            .audited("organization.move", || {
                f.dir.move_org(&f.actor, "acme", "us")
            })
            .unwrap_err();
        assert!(is_precondition(&root, "root"), "{root}");
        let missing = f
            .audited("organization.move", || {
                f.dir.move_org(&f.actor, "de", "nowhere")
            })
            .unwrap_err();
        assert!(is_precondition(&missing, "`nowhere`"), "{missing}");
        // Moving under the current parent changes nothing.
        let (_, changes) = f
            .audited("organization.move", || f.dir.move_org(&f.actor, "de", "us"))
            .unwrap();
        assert!(changes.is_empty());
    }
}

#[test]
fn delete_is_refused_with_children_or_resources() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        f.org("acme", None);
        f.org("emea", Some("acme"));
        f.org("globex", None);
        f.write(&["folder:plans#org@organization:globex"]);

        let children = f
            .audited("organization.delete", || {
                f.dir.delete_org(&f.actor, "acme", false)
            })
            .unwrap_err();
        assert!(
            is_precondition(&children, "1 child organization"),
            "{children}"
        );
        assert!(is_precondition(&children, "`emea`"), "{children}");
        let resources = f
            .audited("organization.delete", || {
                f.dir.delete_org(&f.actor, "globex", false)
            })
            .unwrap_err();
        assert!(is_precondition(&resources, "1 resource"), "{resources}");
        assert!(is_precondition(&resources, "`folder:plans`"), "{resources}");

        // A leaf without resources goes, with its own relationships.
        f.user("erin");
        f.add("emea", "erin", Role::Member);
        f.write(&["folder:shared#viewer@organization:emea#membership"]);
        let (_, changes) = f
            .audited("organization.delete", || {
                f.dir.delete_org(&f.actor, "emea", false)
            })
            .unwrap();
        let mut deleted: Vec<String> = changes
            .into_iter()
            .map(|c| match c {
                AuditChange::Delete(r) => r,
                AuditChange::Touch(r) => panic!("unexpected touch {r}"),
            })
            .collect();
        deleted.sort();
        assert_eq!(
            deleted,
            vec![
                "folder:shared#viewer@organization:emea#membership",
                "organization:emea#member@user:erin",
                "organization:emea#parent@organization:acme",
            ]
        );
        assert!(matches!(
            f.dir.get_org("emea"),
            Err(IdentityError::NotFound { .. })
        ));
        assert!(f.dir.subtree("acme").unwrap().len() == 1);
        // Now acme has no children and no resources.
        f.audited("organization.delete", || {
            f.dir.delete_org(&f.actor, "acme", false)
        })
        .unwrap();
        assert_eq!(
            f.all(),
            vec![
                "folder:plans#org@organization:globex",
                "organization:globex#platform@platform:saas",
            ]
        );
    }
}

/// A tree with resources, credentials, invitations and a shared folder; returns the ids of
/// the credential and the pending and accepted invitations of `emea`.
fn populated(f: &Fixture) -> (String, String, String) {
    f.org("acme", None);
    f.org("emea", Some("acme"));
    f.org("de", Some("emea"));
    f.org("globex", None);
    for u in ["alice", "erin", "dana", "gina"] {
        f.user(u);
    }
    f.add("acme", "alice", Role::Admin);
    f.add("emea", "erin", Role::Admin);
    f.add("de", "dana", Role::Member);
    f.add("globex", "gina", Role::Admin);
    f.write(&[
        "team:emea_eng#org@organization:emea",
        "team:emea_eng#member@user:erin",
        "folder:de_docs#org@organization:de",
        "folder:de_docs#owner@user:dana",
        "document:de_plan#org@organization:de",
        "document:de_plan#folder@folder:de_docs",
        "folder:globex_docs#org@organization:globex",
        "folder:globex_docs#viewer@organization:emea#membership",
        "folder:acme_docs#org@organization:acme",
    ]);
    let ((cred, _, _), _) = f
        .audited("credential.create", || {
            f.dir.create_credential(&f.actor, "emea", "ci")
        })
        .unwrap();
    let ((pending, _, _), _) = f
        .audited("invitation.create", || {
            f.dir.create_invitation(
                &f.actor,
                "emea",
                "gina",
                Role::Member,
                Duration::from_secs(60),
            )
        })
        .unwrap();
    let ((accepted, token, _), _) = f
        .audited("invitation.create", || {
            f.dir.create_invitation(
                &f.actor,
                "emea",
                "dana",
                Role::Member,
                Duration::from_secs(60),
            )
        })
        .unwrap();
    f.audited("invitation.accept", || {
        f.dir.accept_invitation(&f.actor, &token, "dana")
    })
    .unwrap();
    (cred.id, pending.id, accepted.id)
}

fn expected_after_cascade() -> Vec<&'static str> {
    vec![
        "folder:acme_docs#org@organization:acme",
        "folder:globex_docs#org@organization:globex",
        "organization:acme#admin@user:alice",
        "organization:acme#platform@platform:saas",
        "organization:globex#admin@user:gina",
        "organization:globex#platform@platform:saas",
    ]
}

#[test]
fn cascade_delete_removes_subtree_and_owned_resources() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        let (cred, pending, accepted) = populated(&f);
        assert!(f.check("document:de_plan#view@user:erin"));

        let (revision, changes) = f
            .audited("organization.delete", || {
                f.dir.delete_org(&f.actor, "emea", true)
            })
            .unwrap();
        assert_eq!(f.all(), expected_after_cascade());
        assert!(changes.iter().all(|c| matches!(c, AuditChange::Delete(_))));
        assert_eq!(changes.len(), 12, "{changes:#?}");
        assert!(changes.contains(&AuditChange::Delete(
            "folder:globex_docs#viewer@organization:emea#membership".into()
        )));
        assert!(changes.contains(&AuditChange::Delete(
            "document:de_plan#folder@folder:de_docs".into()
        )));
        let entry = audit::read_after(&*f.store, f.audit_seq() - 1, 1)
            .unwrap()
            .remove(0);
        assert_eq!(
            entry.orgs.iter().cloned().collect::<Vec<_>>(),
            vec!["de".to_string(), "emea".to_string()]
        );
        assert!(
            entry
                .details
                .contains(&("deleted_credential".to_string(), cred.clone()))
        );
        assert!(!f.check_at(revision, "document:de_plan#view@user:erin"));

        for org in ["emea", "de"] {
            assert!(matches!(
                f.dir.get_org(org),
                Err(IdentityError::NotFound { .. })
            ));
        }
        assert!(matches!(
            f.dir.get_credential(&cred),
            Err(IdentityError::NotFound { .. })
        ));
        assert!(matches!(
            f.dir.get_invitation(&pending),
            Err(IdentityError::NotFound { .. })
        ));
        // Accepted invitations stay as history.
        assert_eq!(
            f.dir.get_invitation(&accepted).unwrap().state,
            InvitationState::Accepted
        );
        assert_eq!(f.dir.subtree("acme").unwrap().len(), 1);
        let (roots, _) = f.dir.list_orgs(None, true, None, 0).unwrap();
        assert_eq!(
            roots.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
            vec!["acme", "globex"]
        );
    }
}

/// A datastore that commits another write (a record, and the relationships in `late`)
/// before every write it is asked for, so a plan made at the head before the write is
/// always stale.
struct Interloper(Arc<dyn Datastore>, Mutex<Vec<Relationship>>);

/// Keys and values of records, in key order.
type RecordPage = Vec<(Vec<u8>, Vec<u8>)>;

const INTERLOPER: RecordFamily = RecordFamily::new("test.interloper");

impl Datastore for Interloper {
    fn head_revision(&self) -> Result<Revision, StoreError> {
        self.0.head_revision()
    }
    fn optimized_revision(&self, quantization: Duration) -> Result<Revision, StoreError> {
        self.0.optimized_revision(quantization)
    }
    fn check_revision(&self, revision: Revision) -> Result<(), StoreError> {
        self.0.check_revision(revision)
    }
    fn subscribe(&self) -> tokio::sync::watch::Receiver<Revision> {
        self.0.subscribe()
    }
    fn snapshot(&self, revision: Revision) -> Result<Arc<dyn Snapshot>, StoreError> {
        self.0.snapshot(revision)
    }
    fn write(
        &self,
        body: &mut dyn FnMut(&mut dyn Transaction) -> Result<(), StoreError>,
    ) -> Result<Revision, StoreError> {
        let late = std::mem::take(&mut *self.1.lock().unwrap());
        self.0.write(&mut |txn| {
            for rel in &late {
                txn.touch(rel.clone())?;
            }
            txn.put_record(INTERLOPER, b"k", b"v".to_vec())
        })?;
        self.0.write(body)
    }
    fn changes_since(&self, after: Revision, limit: usize) -> Result<Vec<ChangeSet>, StoreError> {
        self.0.changes_since(after, limit)
    }
    fn collect_garbage(&self, now: Timestamp) -> Result<GcStats, StoreError> {
        self.0.collect_garbage(now)
    }
    fn bulk_import_with(
        &self,
        relationships: &mut dyn Iterator<Item = Result<Relationship, StoreError>>,
        finish: &mut dyn FnMut(&ImportSummary, &mut dyn Records) -> Result<(), StoreError>,
    ) -> Result<BulkImportOutcome, StoreError> {
        self.0.bulk_import_with(relationships, finish)
    }
    fn get_record(&self, family: RecordFamily, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get_record(family, key)
    }
    fn scan_records(
        &self,
        family: RecordFamily,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<RecordPage, StoreError> {
        self.0.scan_records(family, prefix, after, limit)
    }
}

#[test]
fn cascade_delete_replans_inside_the_write_when_a_commit_intervenes() {
    for engine in ENGINES {
        let (inner, tmp) = open(engine);
        let interloper = Arc::new(Interloper(inner, Mutex::new(Vec::new())));
        let f = Fixture::over(Arc::clone(&interloper) as Arc<dyn Datastore>, tmp);
        populated(&f);
        // Committed after the plan at the head: the write must see it and delete it too.
        *interloper.1.lock().unwrap() = vec![
            Relationship::parse("folder:late#org@organization:de").unwrap(),
            Relationship::parse("folder:late#owner@user:dana").unwrap(),
        ];
        f.audited("organization.delete", || {
            f.dir.delete_org(&f.actor, "emea", true)
        })
        .unwrap();
        assert_eq!(f.all(), expected_after_cascade());
        // The interloper commits before every write, refused or not: no `audited` here.
        let refused = f.dir.delete_org(&f.actor, "acme", false).unwrap_err();
        assert!(is_precondition(&refused, "1 resource"), "{refused}");
    }
}

/// Grants elsewhere that name resources of `emea`'s subtree (its team `emea_eng`, the folder
/// `de_docs` of `de`) as their subject, in the surviving organization `globex`.
const NAMING_DELETED: [&str; 4] = [
    "organization:globex#member@team:emea_eng#member",
    "document:globex_plan#viewer@team:emea_eng#member",
    "team:globex_all#member@team:emea_eng#member",
    "folder:globex_sub#parent@folder:de_docs",
];

/// `populated`, plus resources of `globex` granted through `emea`'s team and folder, and a
/// user `tom` who reaches them only through the team.
fn populated_with_outside_grants(f: &Fixture) {
    populated(f);
    f.user("tom");
    f.write(&[
        "team:emea_eng#member@user:tom",
        "document:globex_plan#org@organization:globex",
        "team:globex_all#org@organization:globex",
        "folder:globex_sub#org@organization:globex",
    ]);
    f.write(&NAMING_DELETED);
}

fn expected_after_cascade_with_outside_grants() -> Vec<&'static str> {
    let mut expected = expected_after_cascade();
    expected.extend([
        "document:globex_plan#org@organization:globex",
        "folder:globex_sub#org@organization:globex",
        "team:globex_all#org@organization:globex",
    ]);
    expected.sort();
    expected
}

#[test]
fn cascade_delete_removes_grants_naming_owned_resources() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        populated_with_outside_grants(&f);
        let before = f.store.head_revision().unwrap();
        assert!(f.check("document:globex_plan#view@user:tom"));
        assert!(f.check("organization:globex#membership@user:tom"));
        assert!(f.check("folder:globex_sub#view@user:dana"));

        let (revision, changes) = f
            .audited("organization.delete", || {
                f.dir.delete_org(&f.actor, "emea", true)
            })
            .unwrap();
        assert_eq!(f.all(), expected_after_cascade_with_outside_grants());
        assert!(changes.iter().all(|c| matches!(c, AuditChange::Delete(_))));
        // The 12 of `cascade_delete_removes_subtree_and_owned_resources`, tom's membership of
        // the deleted team, and the grants naming the deleted team and folder.
        assert_eq!(changes.len(), 12 + 1 + NAMING_DELETED.len(), "{changes:#?}");
        for rel in NAMING_DELETED
            .iter()
            .chain(&["team:emea_eng#member@user:tom"])
        {
            assert!(
                changes.contains(&AuditChange::Delete(rel.to_string())),
                "{rel} missing from {changes:#?}"
            );
        }
        let entry = audit::read_after(&*f.store, f.audit_seq() - 1, 1)
            .unwrap()
            .remove(0);
        assert!(
            entry
                .details
                .contains(&("relationships".to_string(), changes.len().to_string()))
        );

        assert!(!f.check_at(revision, "document:globex_plan#view@user:tom"));
        assert!(!f.check_at(revision, "organization:globex#membership@user:tom"));
        assert!(!f.check_at(revision, "folder:globex_sub#view@user:dana"));
        // The revision before the delete still answers as before.
        assert!(f.check_at(before, "document:globex_plan#view@user:tom"));

        // A team re-created with the old id inherits none of the old grants.
        f.user("newbie");
        f.write(&[
            "team:emea_eng#org@organization:acme",
            "team:emea_eng#member@user:newbie",
            "folder:de_docs#org@organization:acme",
            "folder:de_docs#owner@user:newbie",
        ]);
        assert!(!f.check("document:globex_plan#view@user:newbie"));
        assert!(!f.check("organization:globex#membership@user:newbie"));
        assert!(!f.check("folder:globex_sub#view@user:newbie"));
    }
}

#[test]
fn cascade_delete_replans_grants_naming_owned_resources() {
    for engine in ENGINES {
        let (inner, tmp) = open(engine);
        let interloper = Arc::new(Interloper(inner, Mutex::new(Vec::new())));
        let f = Fixture::over(Arc::clone(&interloper) as Arc<dyn Datastore>, tmp);
        populated_with_outside_grants(&f);
        // Committed after the plan at the head: grants naming the team, the folder, and a
        // resource the plan at the head did not know `de` owns.
        *interloper.1.lock().unwrap() = [
            "document:globex_late#org@organization:globex",
            "document:globex_late#editor@team:emea_eng#member",
            "folder:late#org@organization:de",
            "folder:globex_late#org@organization:globex",
            "folder:globex_late#parent@folder:late",
            "folder:globex_late#viewer@team:emea_eng#member",
        ]
        .iter()
        .map(|r| Relationship::parse(r).unwrap())
        .collect();
        let (revision, changes) = f
            .audited("organization.delete", || {
                f.dir.delete_org(&f.actor, "emea", true)
            })
            .unwrap();
        let mut expected = expected_after_cascade_with_outside_grants();
        expected.extend([
            "document:globex_late#org@organization:globex",
            "folder:globex_late#org@organization:globex",
        ]);
        expected.sort();
        assert_eq!(f.all(), expected);
        for rel in NAMING_DELETED.iter().chain(&[
            "document:globex_late#editor@team:emea_eng#member",
            "folder:globex_late#parent@folder:late",
            "folder:globex_late#viewer@team:emea_eng#member",
        ]) {
            assert!(
                changes.contains(&AuditChange::Delete(rel.to_string())),
                "{rel} missing from {changes:#?}"
            );
        }
        assert!(!f.check_at(revision, "document:globex_late#view@user:tom"));
        assert!(!f.check_at(revision, "document:globex_plan#view@user:tom"));
    }
}

#[test]
fn members_and_admins_are_granted_removed_and_listed() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        f.org("acme", None);
        f.org("emea", Some("acme"));
        for u in ["u1", "u2", "u3", "boss"] {
            f.user(u);
        }
        let (_, changes) = f
            .audited("member.add", || {
                f.dir.add_member(&f.actor, "acme", "u2", Role::Member)
            })
            .unwrap();
        assert_eq!(
            changes,
            vec![AuditChange::Touch(
                "organization:acme#member@user:u2".into()
            )]
        );
        f.add("acme", "u1", Role::Member);
        f.add("acme", "u3", Role::Member);
        f.add("acme", "boss", Role::Admin);
        f.write(&["organization:acme#member@team:eng#member"]);
        assert!(f.check("organization:emea#membership@user:u1"));
        assert!(f.check("organization:emea#administer@user:boss"));
        assert!(!f.check("organization:emea#administer@user:u1"));

        let (page, next) = f.dir.list_members("acme", Role::Member, None, 2).unwrap();
        assert_eq!(page, vec!["u1", "u2"]);
        assert_eq!(next.as_deref(), Some("u2"));
        let (page, next) = f
            .dir
            .list_members("acme", Role::Member, next.as_deref(), 2)
            .unwrap();
        assert_eq!(page, vec!["u3"]);
        assert_eq!(next, None);
        assert_eq!(
            f.dir.list_members("acme", Role::Admin, None, 0).unwrap().0,
            vec!["boss"]
        );

        let (revision, changes) = f
            .audited("member.remove", || {
                f.dir.remove_member(&f.actor, "acme", "u1", Role::Member)
            })
            .unwrap();
        assert_eq!(
            changes,
            vec![AuditChange::Delete(
                "organization:acme#member@user:u1".into()
            )]
        );
        assert!(!f.check_at(revision, "organization:emea#membership@user:u1"));
        let again = f.audited("member.remove", || {
            f.dir.remove_member(&f.actor, "acme", "u1", Role::Member)
        });
        assert!(matches!(
            again,
            Err(IdentityError::NotFound {
                kind: "membership",
                ..
            })
        ));

        let unknown = f
            .audited("member.add", || {
                f.dir.add_member(&f.actor, "acme", "ghost", Role::Member)
            })
            .unwrap_err();
        assert!(is_precondition(&unknown, "`ghost`"), "{unknown}");
        let no_org = f.audited("member.add", || {
            f.dir.add_member(&f.actor, "nowhere", "u1", Role::Member)
        });
        assert!(matches!(
            no_org,
            Err(IdentityError::NotFound {
                kind: "organization",
                ..
            })
        ));
    }
}

#[test]
fn users_have_unique_external_ids() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        let create = |id: Option<&str>, ext: &str| {
            f.audited("user.create", || {
                f.dir.create_user(
                    &f.actor,
                    NewUser {
                        id: id.map(str::to_string),
                        display_name: "Pat".into(),
                        email: Some("pat@acme.example".into()),
                        external: vec![ExternalId {
                            source: "okta:acme".into(),
                            id: ext.into(),
                        }],
                    },
                )
            })
            .map(|((u, _), _)| u)
        };
        let pat = create(None, "00u1").unwrap();
        assert!(uuid::Uuid::parse_str(&pat.id).is_ok(), "{}", pat.id);
        assert_eq!(pat.state, UserState::Active);
        assert_eq!(f.dir.get_user(&pat.id).unwrap(), pat);
        assert!(matches!(
            create(None, "00u1"),
            Err(IdentityError::AlreadyExists(_))
        ));
        assert!(matches!(
            create(Some(&pat.id), "00u2"),
            Err(IdentityError::AlreadyExists(_))
        ));
        assert!(matches!(
            create(Some("bad id!"), "00u3"),
            Err(IdentityError::InvalidArgument(m)) if m.contains("`id`") && m.contains("`bad id!`")
        ));
        assert!(matches!(
            f.dir.get_user("nobody"),
            Err(IdentityError::NotFound { kind: "user", .. })
        ));
    }
}

#[test]
fn suspension_removes_memberships_and_reactivation_restores_them() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        f.org("acme", None);
        f.org("emea", Some("acme"));
        f.user("u1");
        f.add("acme", "u1", Role::Member);
        f.add("emea", "u1", Role::Admin);

        let ((user, revision), changes) = f
            .audited("user.state", || {
                f.dir.set_user_state(&f.actor, "u1", UserState::Suspended)
            })
            .unwrap();
        assert_eq!(user.state, UserState::Suspended);
        assert_eq!(user.suspended_memberships.len(), 2);
        assert_eq!(changes.len(), 2);
        assert!(!f.check_at(revision, "organization:acme#membership@user:u1"));
        assert!(f.all().iter().all(|r| !r.ends_with("@user:u1")));
        let refused = f
            .audited("member.add", || {
                f.dir.add_member(&f.actor, "acme", "u1", Role::Member)
            })
            .unwrap_err();
        assert!(is_precondition(&refused, "suspended"), "{refused}");

        let ((user, revision), _) = f
            .audited("user.state", || {
                f.dir.set_user_state(&f.actor, "u1", UserState::Active)
            })
            .unwrap();
        assert!(user.suspended_memberships.is_empty());
        assert!(f.check_at(revision, "organization:acme#membership@user:u1"));
        assert!(f.check_at(revision, "organization:emea#administer@user:u1"));

        f.audited("user.state", || {
            f.dir.set_user_state(&f.actor, "u1", UserState::Deleted)
        })
        .unwrap();
        assert!(f.all().iter().all(|r| !r.ends_with("@user:u1")));
        let revive = f
            .audited("user.state", || {
                f.dir.set_user_state(&f.actor, "u1", UserState::Active)
            })
            .unwrap_err();
        assert!(is_precondition(&revive, "deleted"), "{revive}");
    }
}

#[test]
fn suspension_replans_inside_the_write_when_a_commit_intervenes() {
    for engine in ENGINES {
        let (inner, tmp) = open(engine);
        let interloper = Arc::new(Interloper(inner, Mutex::new(Vec::new())));
        let f = Fixture::over(Arc::clone(&interloper) as Arc<dyn Datastore>, tmp);
        f.org("acme", None);
        f.org("globex", None);
        f.user("u1");
        f.add("acme", "u1", Role::Admin);
        *interloper.1.lock().unwrap() =
            vec![Relationship::parse("organization:globex#member@user:u1").unwrap()];
        let ((user, _), _) = f
            .audited("user.state", || {
                f.dir.set_user_state(&f.actor, "u1", UserState::Suspended)
            })
            .unwrap();
        assert_eq!(user.suspended_memberships.len(), 2);
        assert!(f.all().iter().all(|r| !r.ends_with("@user:u1")));
    }
}

#[test]
fn invitations_are_accepted_once_by_the_named_user() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        f.org("acme", None);
        f.user("ann");
        f.user("bob");
        let ((inv, token, _), _) = f
            .audited("invitation.create", || {
                f.dir.create_invitation(
                    &f.actor,
                    "acme",
                    "ann",
                    Role::Admin,
                    Duration::from_secs(600),
                )
            })
            .unwrap();
        assert!(token.starts_with(&format!("arbor_inv_{}_", inv.id)));
        assert_eq!(inv.state, InvitationState::Pending);
        assert!(!f.check("organization:acme#administer@user:ann"));

        let other = f
            .audited("invitation.accept", || {
                f.dir.accept_invitation(&f.actor, &token, "bob")
            })
            .unwrap_err();
        assert!(is_precondition(&other, "another user"), "{other}");
        // A wrong secret for an existing id and an unknown id are refused alike.
        let wrong = format!("arbor_inv_{}_{}", inv.id, "A".repeat(43));
        let unknown = format!("arbor_inv_{}_{}", uuid::Uuid::new_v4(), "A".repeat(43));
        let e1 = f
            .audited("invitation.accept", || {
                f.dir.accept_invitation(&f.actor, &wrong, "ann")
            })
            .unwrap_err();
        let e2 = f
            .audited("invitation.accept", || {
                f.dir.accept_invitation(&f.actor, &unknown, "ann")
            })
            .unwrap_err();
        assert!(matches!(e1, IdentityError::NotFound { .. }));
        assert_eq!(e1, e2);
        assert!(!e1.to_string().contains(&inv.id));

        let ((accepted, revision), changes) = f
            .audited("invitation.accept", || {
                f.dir.accept_invitation(&f.actor, &token, "ann")
            })
            .unwrap();
        assert_eq!(accepted.state, InvitationState::Accepted);
        assert_eq!(
            changes,
            vec![AuditChange::Touch(
                "organization:acme#admin@user:ann".into()
            )]
        );
        assert!(f.check_at(revision, "organization:acme#administer@user:ann"));
        let twice = f
            .audited("invitation.accept", || {
                f.dir.accept_invitation(&f.actor, &token, "ann")
            })
            .unwrap_err();
        assert!(is_precondition(&twice, "accepted"), "{twice}");
        let revoke_used = f
            .audited("invitation.revoke", || {
                f.dir.revoke_invitation(&f.actor, &inv.id)
            })
            .unwrap_err();
        assert!(is_precondition(&revoke_used, "accepted"), "{revoke_used}");

        let (listed, next) = f.dir.list_invitations("acme", None, 10).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(next, None);
        assert_eq!(listed[0].state, InvitationState::Accepted);
        // The record keeps only the token's hash.
        let raw = f
            .store
            .get_record(RecordFamily::new("invite"), inv.id.as_bytes())
            .unwrap()
            .unwrap();
        assert!(!contains(&raw, token.as_bytes()));
    }
}

#[test]
fn invitations_expire_and_can_be_revoked() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        f.org("acme", None);
        f.user("ann");
        let too_long = f
            .audited("invitation.create", || {
                f.dir.create_invitation(
                    &f.actor,
                    "acme",
                    "ann",
                    Role::Member,
                    Duration::from_secs(31 * 24 * 3600),
                )
            })
            .unwrap_err();
        assert!(
            matches!(&too_long, IdentityError::InvalidArgument(m) if m.contains("`ttl`")),
            "{too_long}"
        );
        let ((short, short_token, _), _) = f
            .audited("invitation.create", || {
                f.dir.create_invitation(
                    &f.actor,
                    "acme",
                    "ann",
                    Role::Member,
                    Duration::from_millis(1),
                )
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            f.dir
                .get_invitation(&short.id)
                .unwrap()
                .is_expired_at(Timestamp::now())
        );
        let expired = f
            .audited("invitation.accept", || {
                f.dir.accept_invitation(&f.actor, &short_token, "ann")
            })
            .unwrap_err();
        assert!(is_precondition(&expired, "expired"), "{expired}");

        let ((inv, token, _), _) = f
            .audited("invitation.create", || {
                f.dir.create_invitation(
                    &f.actor,
                    "acme",
                    "ann",
                    Role::Member,
                    Duration::from_secs(60),
                )
            })
            .unwrap();
        f.audited("invitation.revoke", || {
            f.dir.revoke_invitation(&f.actor, &inv.id)
        })
        .unwrap();
        assert_eq!(
            f.dir.get_invitation(&inv.id).unwrap().state,
            InvitationState::Revoked
        );
        let revoked = f
            .audited("invitation.accept", || {
                f.dir.accept_invitation(&f.actor, &token, "ann")
            })
            .unwrap_err();
        assert!(is_precondition(&revoked, "revoked"), "{revoked}");
        assert!(!f.check("organization:acme#membership@user:ann"));
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn credentials_return_the_secret_once_and_store_its_hash() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        f.org("acme", None);
        let ((cred, token, _), _) = f
            .audited("credential.create", || {
                f.dir.create_credential(&f.actor, "acme", "ci")
            })
            .unwrap();
        let secret = token
            .strip_prefix(&format!("arbor_cred_{}_", cred.id))
            .expect("token names the credential id");
        assert!(secret.len() >= 43, "{secret}");

        let raw = f
            .store
            .get_record(RecordFamily::new("cred"), cred.id.as_bytes())
            .unwrap()
            .unwrap();
        assert!(!contains(&raw, token.as_bytes()));
        assert!(!contains(&raw, secret.as_bytes()));
        let entry = audit::read_after(&*f.store, f.audit_seq() - 1, 1)
            .unwrap()
            .remove(0);
        assert!(!format!("{entry:?}").contains(secret));
        // Nothing the directory stores or returns later holds the token.
        let stored = f
            .store
            .scan_records(RecordFamily::new("cred"), b"", None, 100)
            .unwrap();
        assert!(stored.iter().all(|(_, v)| !contains(v, secret.as_bytes())));
        assert!(
            f.store
                .scan_records(AUDIT_FAMILY, b"", None, 1000)
                .unwrap()
                .iter()
                .all(|(_, v)| !contains(v, secret.as_bytes()))
        );

        let authed = f.dir.authenticate_credential(&token).unwrap().unwrap();
        assert_eq!(authed.id, cred.id);
        assert_eq!(authed.org, "acme");
        let mut wrong = token.clone();
        wrong.pop();
        wrong.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(f.dir.authenticate_credential(&wrong).unwrap(), None);
        assert_eq!(
            f.dir.authenticate_credential("arbor_cred_nope").unwrap(),
            None
        );
        assert_eq!(f.dir.authenticate_credential("").unwrap(), None);

        let (listed, _) = f.dir.list_credentials("acme", None, 0).unwrap();
        assert_eq!(listed, vec![cred.clone()]);
        f.audited("credential.revoke", || {
            f.dir.revoke_credential(&f.actor, &cred.id)
        })
        .unwrap();
        assert!(f.dir.get_credential(&cred.id).unwrap().revoked_at.is_some());
        assert_eq!(f.dir.authenticate_credential(&token).unwrap(), None);
        let twice = f
            .audited("credential.revoke", || {
                f.dir.revoke_credential(&f.actor, &cred.id)
            })
            .unwrap_err();
        assert!(is_precondition(&twice, "revoked"), "{twice}");
        let missing = f.audited("credential.create", || {
            f.dir.create_credential(&f.actor, "nowhere", "ci")
        });
        assert!(matches!(missing, Err(IdentityError::NotFound { .. })));
    }
}

#[test]
fn sessions_expire_and_can_be_revoked() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        f.user("ann");
        let blank = f
            .audited("session.open", || {
                f.dir
                    .open_session(&f.actor, "ann", "  ", Duration::from_secs(60))
            })
            .unwrap_err();
        assert!(
            matches!(&blank, IdentityError::InvalidArgument(m) if m.contains("`reason`")),
            "{blank}"
        );
        let too_long = f.audited("session.open", || {
            f.dir
                .open_session(&f.actor, "ann", "ticket 42", Duration::from_secs(9 * 3600))
        });
        assert!(matches!(too_long, Err(IdentityError::InvalidArgument(_))));

        let ((session, token, _), _) = f
            .audited("session.open", || {
                f.dir
                    .open_session(&f.actor, "ann", "ticket 42", Duration::from_secs(3600))
            })
            .unwrap();
        assert_eq!(session.initiator, "platform-key:test");
        assert_eq!(session.user, "ann");
        assert!(token.starts_with(&format!("arbor_imp_{}_", session.id)));
        let now = Timestamp::now();
        let later = Timestamp::from_micros(session.expires_at.as_micros() + 1);
        assert_eq!(
            f.dir
                .authenticate_session(&token, now)
                .unwrap()
                .map(|s| s.id),
            Some(session.id.clone())
        );
        assert_eq!(f.dir.authenticate_session(&token, later).unwrap(), None);
        assert_eq!(
            f.dir
                .authenticate_session(&token.replace("arbor_imp_", "arbor_cred_"), now)
                .unwrap(),
            None
        );
        assert_eq!(f.dir.list_sessions(false, now).unwrap().len(), 1);
        assert!(f.dir.list_sessions(false, later).unwrap().is_empty());
        assert_eq!(f.dir.list_sessions(true, later).unwrap().len(), 1);

        f.audited("session.revoke", || {
            f.dir.revoke_session(&f.actor, &session.id)
        })
        .unwrap();
        assert_eq!(f.dir.authenticate_session(&token, now).unwrap(), None);
        assert!(f.dir.list_sessions(false, now).unwrap().is_empty());
        let twice = f
            .audited("session.revoke", || {
                f.dir.revoke_session(&f.actor, &session.id)
            })
            .unwrap_err();
        assert!(is_precondition(&twice, "revoked"), "{twice}");

        // A session stops working when its user is suspended.
        let ((_, token, _), _) = f
            .audited("session.open", || {
                f.dir
                    .open_session(&f.actor, "ann", "ticket 43", Duration::from_secs(60))
            })
            .unwrap();
        f.audited("user.state", || {
            f.dir.set_user_state(&f.actor, "ann", UserState::Suspended)
        })
        .unwrap();
        assert_eq!(
            f.dir
                .authenticate_session(&token, Timestamp::now())
                .unwrap(),
            None
        );
    }
}

#[test]
fn list_orgs_pages_roots_children_and_subtrees() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        for root in ["r1", "r2", "r3"] {
            f.org(root, None);
        }
        for (child, parent) in [("c1", "r1"), ("c2", "r1"), ("g1", "c1")] {
            f.org(child, Some(parent));
        }
        let ids = |orgs: Vec<arbor::identity::directory::Organization>| {
            orgs.into_iter().map(|o| o.id).collect::<Vec<_>>()
        };
        let (page, next) = f.dir.list_orgs(None, false, None, 2).unwrap();
        assert_eq!(ids(page), vec!["r1", "r2"]);
        let (page, next) = f.dir.list_orgs(None, false, next.as_deref(), 2).unwrap();
        assert_eq!(ids(page), vec!["r3"]);
        assert_eq!(next, None);
        assert_eq!(
            ids(f.dir.list_orgs(Some("r1"), false, None, 0).unwrap().0),
            vec!["c1", "c2"]
        );
        assert_eq!(
            ids(f.dir.list_orgs(Some("r1"), true, None, 0).unwrap().0),
            vec!["c1", "c2", "g1"]
        );
        let (page, next) = f.dir.list_orgs(None, true, None, 4).unwrap();
        assert_eq!(ids(page), vec!["c1", "c2", "g1", "r1"]);
        assert_eq!(
            ids(f.dir.list_orgs(None, true, next.as_deref(), 4).unwrap().0),
            vec!["r2", "r3"]
        );
        assert!(matches!(
            f.dir.list_orgs(Some("nowhere"), false, None, 0),
            Err(IdentityError::NotFound { .. })
        ));
    }
}

#[test]
fn writes_without_the_prelude_schema_are_refused_whole() {
    let store: Arc<dyn Datastore> = Arc::new(MemoryDatastore::new());
    let schema = Arc::new(schema::compile("definition user {}").unwrap());
    store
        .write(&mut |txn| txn.write_schema(Arc::clone(&schema)))
        .unwrap();
    let dir = Directory::new(Arc::clone(&store), DirectoryConfig::default());
    let actor = Actor::new("cli", Source::System);
    let head = store.head_revision().unwrap();
    let e = dir
        .create_org(
            &actor,
            NewOrganization {
                id: Some("acme".into()),
                display_name: "Acme".into(),
                ..NewOrganization::default()
            },
        )
        .unwrap_err();
    assert!(is_precondition(&e, "does not accept"), "{e}");
    assert_eq!(store.head_revision().unwrap(), head);
    assert!(matches!(
        dir.get_org("acme"),
        Err(IdentityError::NotFound { .. })
    ));
    assert!(
        store
            .scan_records(AUDIT_FAMILY, b"", None, 10)
            .unwrap()
            .is_empty()
    );
}
