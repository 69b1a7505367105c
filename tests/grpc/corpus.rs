//! SpiceDB's validation corpus (`../shared/conformance/spicedb/corpus.json`) through the API: a
//! fresh server per file, the schema by WriteSchema, the relationships by WriteRelationships,
//! assertions by CheckPermission, `validation:` entries by ExpandPermissionTree (expanded
//! recursively by the client, as the RPC answers one level). Each file's verdict must equal
//! `arbor validate`'s (passed / failed); a `reject` file passes when WriteSchema or
//! WriteRelationships refuses it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arbor::api::grpc::convert;
use arbor::api::grpc::proto::authzed::api::v1 as pb;
use arbor::eval::{
    CheckResult, Dispatch, EvalConfig, EvalContext, EvalError, ExpandMode, ExpandNode,
    ExpandSubject, ExpandTree, FoundSubject, LookupResult,
};
use arbor::model::{ObjectRef, Relationship, SubjectRef, Timestamp};
use arbor::store::memory::MemoryDatastore;
use arbor::store::{Datastore, StoreError};
use arbor::validate::{self, AssertionKind, Outcome, ValidationFile};
use pb::check_permission_response::Permissionship;
use pb::permissions_service_client::PermissionsServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::harness::*;

type Client = PermissionsServiceClient<InterceptedService<Channel, Auth>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Passed,
    Failed,
}

fn corpus_dir() -> PathBuf {
    match std::env::var_os("ARBOR_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/conformance/spicedb"
        )),
    }
}

/// Expands over gRPC: ExpandPermissionTree answers one level; userset leaves are expanded by
/// further calls, as the recursive expand of validation needs.
struct GrpcExpand {
    client: Client,
}

fn subject_of(s: &pb::SubjectReference) -> SubjectRef {
    let o = s.object.as_ref().unwrap();
    let rel = (!s.optional_relation.is_empty()).then_some(s.optional_relation.as_str());
    SubjectRef::new(&o.object_type, &o.object_id, rel).unwrap()
}

fn tree_of(t: &pb::PermissionRelationshipTree) -> ExpandTree {
    use pb::algebraic_subject_set::Operation;
    use pb::permission_relationship_tree::TreeType;
    let o = t.expanded_object.as_ref().unwrap();
    let node = match t.tree_type.as_ref().unwrap() {
        TreeType::Leaf(leaf) => ExpandNode::Leaf(
            leaf.subjects
                .iter()
                .map(|s| ExpandSubject {
                    subject: subject_of(s),
                    caveat: None,
                    expiration: None,
                })
                .collect(),
        ),
        TreeType::Intermediate(set) => {
            let children: Vec<ExpandTree> = set.children.iter().map(tree_of).collect();
            match set.operation() {
                Operation::Union => ExpandNode::Union(children),
                Operation::Intersection => ExpandNode::Intersection(children),
                Operation::Exclusion => {
                    let mut it = children.into_iter();
                    let (a, b) = (it.next().unwrap(), it.next().unwrap());
                    ExpandNode::Exclusion(Box::new(a), Box::new(b))
                }
                Operation::Unspecified => panic!("unspecified operation"),
            }
        }
    };
    ExpandTree {
        object: ObjectRef::new(&o.object_type, &o.object_id).unwrap(),
        relation: t.expanded_relation.clone(),
        node,
        caveat: None,
    }
}

impl GrpcExpand {
    fn recurse<'a>(
        &'a self,
        tree: ExpandTree,
        depth: u32,
    ) -> futures::future::BoxFuture<'a, Result<ExpandTree, EvalError>> {
        Box::pin(async move {
            let ExpandTree {
                object,
                relation,
                node,
                caveat,
            } = tree;
            let node = match node {
                ExpandNode::Leaf(subjects) => {
                    let usersets: Vec<SubjectRef> = subjects
                        .iter()
                        .filter(|s| s.subject.relation().is_some())
                        .map(|s| s.subject.clone())
                        .collect();
                    let leaf = ExpandTree {
                        object: object.clone(),
                        relation: relation.clone(),
                        node: ExpandNode::Leaf(subjects),
                        caveat: None,
                    };
                    if usersets.is_empty() {
                        return Ok(ExpandTree { caveat, ..leaf });
                    }
                    let mut children = vec![leaf];
                    for s in usersets {
                        children.push(self.fetch(s.object(), s.relation().unwrap(), depth).await?);
                    }
                    ExpandNode::Union(children)
                }
                ExpandNode::Union(c) => ExpandNode::Union(self.all(c, depth).await?),
                ExpandNode::Intersection(c) => ExpandNode::Intersection(self.all(c, depth).await?),
                ExpandNode::Exclusion(a, b) => ExpandNode::Exclusion(
                    Box::new(self.recurse(*a, depth).await?),
                    Box::new(self.recurse(*b, depth).await?),
                ),
            };
            Ok(ExpandTree {
                object,
                relation,
                node,
                caveat,
            })
        })
    }

    async fn all(
        &self,
        children: Vec<ExpandTree>,
        depth: u32,
    ) -> Result<Vec<ExpandTree>, EvalError> {
        let mut out = Vec::with_capacity(children.len());
        for c in children {
            out.push(self.recurse(c, depth).await?);
        }
        Ok(out)
    }

    async fn fetch(
        &self,
        object: &ObjectRef,
        relation: &str,
        depth: u32,
    ) -> Result<ExpandTree, EvalError> {
        let depth = depth
            .checked_sub(1)
            .filter(|d| *d > 0)
            .ok_or(EvalError::DepthExceeded { max_depth: 50 })?;
        let reply = self
            .client
            .clone()
            .expand_permission_tree(pb::ExpandPermissionTreeRequest {
                consistency: full(),
                resource: Some(convert::object_to_proto(object)),
                permission: relation.to_string(),
            })
            .await
            .map_err(|s| EvalError::Store(StoreError::Internal(s.message().to_string())))?;
        let tree = tree_of(reply.get_ref().tree_root.as_ref().unwrap());
        self.recurse(tree, depth).await
    }
}

fn unsupported() -> EvalError {
    EvalError::Store(StoreError::Internal(
        "only expand goes over gRPC here".to_string(),
    ))
}

#[async_trait::async_trait]
impl Dispatch for GrpcExpand {
    async fn check(
        &self,
        _: &EvalContext,
        _: &ObjectRef,
        _: &str,
        _: &SubjectRef,
        _: u32,
    ) -> Result<CheckResult, EvalError> {
        Err(unsupported())
    }
    async fn expand(
        &self,
        _: &EvalContext,
        resource: &ObjectRef,
        relation: &str,
        _: ExpandMode,
        depth: u32,
    ) -> Result<ExpandTree, EvalError> {
        self.fetch(resource, relation, depth).await
    }
    async fn lookup_resources(
        &self,
        _: &EvalContext,
        _: &str,
        _: &str,
        _: &SubjectRef,
        _: u32,
    ) -> Result<Vec<LookupResult>, EvalError> {
        Err(unsupported())
    }
    async fn lookup_subjects(
        &self,
        _: &EvalContext,
        _: &ObjectRef,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: u32,
    ) -> Result<Vec<FoundSubject>, EvalError> {
        Err(unsupported())
    }
}

/// Writes relationships in calls of at most 1000 updates (CREATE, as the validator loads them).
async fn write_all(client: &mut Client, rels: &[Relationship]) -> Result<(), tonic::Status> {
    for chunk in rels.chunks(1000) {
        client
            .write_relationships(pb::WriteRelationshipsRequest {
                updates: chunk
                    .iter()
                    .map(|r| pb::RelationshipUpdate {
                        operation: pb::relationship_update::Operation::Create as i32,
                        relationship: Some(convert::relationship_to_proto(r)),
                    })
                    .collect(),
                ..Default::default()
            })
            .await?;
    }
    Ok(())
}

/// The schema text and relationship lines of a file, read without the validator (for files it
/// refuses to load): `.zed` files are schema text.
fn raw_parts(path: &Path) -> (Option<String>, Vec<Relationship>, usize) {
    let text = std::fs::read_to_string(path).unwrap();
    if path.extension().is_some_and(|e| e == "zed") {
        return (Some(text), Vec::new(), 0);
    }
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let schema = match (
        doc.get("schema").and_then(|v| v.as_str()),
        doc.get("schemaFile").and_then(|v| v.as_str()),
    ) {
        (Some(s), _) => Some(s.to_string()),
        (None, Some(f)) => std::fs::read_to_string(path.parent().unwrap().join(f)).ok(),
        _ => None,
    };
    let mut rels = Vec::new();
    let mut unparsed = 0;
    for line in doc
        .get("relationships")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .lines()
    {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        match Relationship::parse(line) {
            Ok(r) => rels.push(r),
            Err(_) => unparsed += 1,
        }
    }
    (schema, rels, unparsed)
}

/// A `reject` file passes when the server refuses its schema or its relationships.
async fn run_reject(path: &Path) -> (Verdict, String) {
    let server = TestServer::start().await;
    let (schema, rels, unparsed) = raw_parts(path);
    assert_eq!(
        unparsed,
        0,
        "{}: relationship lines the client cannot send",
        path.display()
    );
    if let Some(schema) = schema {
        if let Err(e) = server
            .schema()
            .await
            .write_schema(pb::WriteSchemaRequest { schema })
            .await
        {
            return (
                Verdict::Passed,
                format!("WriteSchema refused it: {:?} {}", e.code(), e.message()),
            );
        }
    }
    let mut client = server.permissions().await;
    let verdict = match write_all(&mut client, &rels).await {
        Err(e) => (
            Verdict::Passed,
            format!(
                "WriteRelationships refused it: {:?} {}",
                e.code(),
                e.message()
            ),
        ),
        Ok(()) => (Verdict::Failed, "the server accepted the file".to_string()),
    };
    server.stop().await;
    verdict
}

async fn run_pass(path: &Path) -> (Verdict, String) {
    let file = match ValidationFile::load(path) {
        Ok(f) => f,
        Err(e) => return (Verdict::Failed, format!("cannot be loaded: {e}")),
    };
    let server = TestServer::start().await;
    if let Err(e) = server
        .schema()
        .await
        .write_schema(pb::WriteSchemaRequest {
            schema: file.schema.text.clone(),
        })
        .await
    {
        return (Verdict::Failed, format!("WriteSchema refused it: {e:?}"));
    }
    let mut client = server.permissions().await;
    let rels: Vec<Relationship> = file
        .relationships
        .iter()
        .map(|r| r.relationship.clone())
        .collect();
    if let Err(e) = write_all(&mut client, &rels).await {
        return (
            Verdict::Failed,
            format!("WriteRelationships refused it: {e:?}"),
        );
    }
    let mut failures = Vec::new();
    let mut unmarked = 0usize;
    for a in &file.assertions {
        let r = &a.relationship;
        let request = pb::CheckPermissionRequest {
            consistency: full(),
            resource: Some(convert::object_to_proto(r.resource())),
            permission: r.relation().to_string(),
            subject: Some(convert::subject_to_proto(r.subject())),
            context: a.context.as_ref().map(convert::map_to_struct),
            with_tracing: false,
        };
        let got = match client.check_permission(request).await {
            Ok(resp) => resp.into_inner().permissionship(),
            Err(e) => {
                failures.push(format!("`{}`: {e:?}", a.text));
                continue;
            }
        };
        match (got, a.kind) {
            (Permissionship::HasPermission, AssertionKind::True)
            | (Permissionship::NoPermission, AssertionKind::False)
            | (Permissionship::ConditionalPermission, AssertionKind::Caveated) => {}
            (other, kind) => failures.push(format!("`{}` ({kind:?}) got {other:?}", a.text)),
        }
    }
    // Validation entries: the wire tree has no caveats, so `[...]` markers are not comparable.
    let local = MemoryDatastore::new();
    let compiled = Arc::new(arbor::schema::compile(&file.schema.text).unwrap());
    let revision = local
        .write(&mut |txn| txn.write_schema(Arc::clone(&compiled)))
        .unwrap();
    let ctx = EvalContext::new(
        local.snapshot(revision).unwrap(),
        Arc::new(GrpcExpand {
            client: client.clone(),
        }),
        EvalConfig::default(),
        Timestamp::now(),
    )
    .unwrap();
    for entry in &file.validation {
        let found = match validate::expand_subjects(&ctx, &entry.target).await {
            Ok(f) => f,
            Err(e) => {
                failures.push(format!("`{}` could not be expanded: {e}", entry.key));
                continue;
            }
        };
        let mut listed = BTreeSet::new();
        for line in &entry.subjects {
            let Some(expected) = &line.parsed.subject else {
                failures.push(format!("`{}` has no subject", line.text));
                continue;
            };
            let subject = &expected.subject.subject;
            listed.insert(subject.to_string());
            if expected.subject.caveated || expected.exclusions.iter().any(|x| x.caveated) {
                // Compared below without the `[...]` marker, which the wire tree cannot carry.
                unmarked += 1;
            }
            let Some(actual) = found.iter().find(|f| &f.subject == subject) else {
                failures.push(format!("`{}`: `{subject}` not found", entry.key));
                continue;
            };
            let mut want: Vec<String> = line
                .parsed
                .resources
                .iter()
                .map(ToString::to_string)
                .collect();
            want.sort();
            want.dedup();
            if want != actual.resources {
                failures.push(format!(
                    "`{}`: `{subject}` through {:?}, expected {want:?}",
                    entry.key, actual.resources
                ));
            }
            let mut want_excl: Vec<String> = expected
                .exclusions
                .iter()
                .map(ToString::to_string)
                .collect();
            want_excl.sort();
            if subject.is_wildcard() && want_excl != actual.exclusion_texts() {
                failures.push(format!(
                    "`{}`: `{subject}` excludes {:?}",
                    entry.key,
                    actual.exclusion_texts()
                ));
            }
        }
        for f in &found {
            if !listed.contains(&f.subject.to_string()) {
                failures.push(format!(
                    "`{}`: `{}` has it but is not listed",
                    entry.key, f.subject
                ));
            }
        }
    }
    server.stop().await;
    if failures.is_empty() {
        (
            Verdict::Passed,
            format!("{unmarked} caveat markers compared without the marker"),
        )
    } else {
        (Verdict::Failed, failures.join("; "))
    }
}

/// What `arbor validate` says of the file (the library it runs).
async fn validator_verdict(path: &Path, expect: &str) -> Verdict {
    match (expect, validate::run_file(path).await) {
        ("pass", Ok(report)) => match report.outcome() {
            Outcome::Passed => Verdict::Passed,
            Outcome::Failed => Verdict::Failed,
        },
        ("reject", Err(_)) => Verdict::Passed,
        _ => Verdict::Failed,
    }
}

#[derive(serde::Deserialize)]
struct Corpus {
    files: Vec<CorpusFile>,
}

#[derive(serde::Deserialize)]
struct CorpusFile {
    path: String,
    expect: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_through_grpc_matches_arbor_validate() {
    let dir = corpus_dir();
    let corpus: Corpus =
        serde_json::from_str(&std::fs::read_to_string(dir.join("corpus.json")).unwrap()).unwrap();
    let (mut passed, mut failed, mut v_passed) = (0, 0, 0);
    let mut disagreements = Vec::new();
    for f in &corpus.files {
        let path = dir.join(&f.path);
        let (verdict, why) = match f.expect.as_str() {
            "reject" => run_reject(&path).await,
            _ => run_pass(&path).await,
        };
        let expected = validator_verdict(&path, &f.expect).await;
        match verdict {
            Verdict::Passed => passed += 1,
            Verdict::Failed => failed += 1,
        }
        match expected {
            Verdict::Passed => v_passed += 1,
            Verdict::Failed => {}
        }
        if verdict != expected {
            disagreements.push(format!(
                "{}: over gRPC {verdict:?} ({why}), arbor validate {expected:?}",
                f.path
            ));
        }
        if verdict == Verdict::Failed {
            println!("FAILED {}: {why}", f.path);
        }
    }
    println!("over gRPC: {passed} passed, {failed} failed (arbor validate: {v_passed} passed)");
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    assert_eq!(
        passed, v_passed,
        "the same files pass over gRPC as with arbor validate"
    );
    assert!(passed >= 40, "only {passed} passed");
}
