"""Interop: the official `authzed` Python client (PyPI) against a real `arbor serve`.

The server binary comes from $ARBOR_BIN (default: target/debug/arbor); it is started on a random
port with a temporary RocksDB data directory and a preshared key, and stopped with SIGTERM.
"""

import os
import pathlib
import signal
import socket
import subprocess
import time

import grpc
import pytest
from authzed.api.v1 import (
    CheckBulkPermissionsRequest,
    CheckBulkPermissionsRequestItem,
    CheckPermissionRequest,
    CheckPermissionResponse,
    Client,
    Consistency,
    DeleteRelationshipsRequest,
    ExpandPermissionTreeRequest,
    LookupResourcesRequest,
    LookupSubjectsRequest,
    ObjectReference,
    Precondition,
    ReadRelationshipsRequest,
    ReadSchemaRequest,
    Relationship,
    RelationshipFilter,
    RelationshipUpdate,
    SubjectFilter,
    SubjectReference,
    WatchRequest,
    WriteRelationshipsRequest,
    WriteSchemaRequest,
)
from authzed.api.v1.permission_service_pb2 import (
    ExportBulkRelationshipsRequest,
    ImportBulkRelationshipsRequest,
)
from grpcutil import insecure_bearer_token_credentials

ROOT = pathlib.Path(__file__).resolve().parents[2]
KEY = "interop-test-key"
DOC_SCHEMA = """
definition user {}

definition team {
    relation member: user | team#member
}

definition document {
    relation owner: user
    relation viewer: user | team#member
    permission edit = owner
    permission view = viewer + edit
}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    binary = os.environ.get("ARBOR_BIN", str(ROOT / "target" / "debug" / "arbor"))
    data = tmp_path_factory.mktemp("arbor-data")
    port, metrics_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            binary,
            "serve",
            "--grpc-addr",
            f"127.0.0.1:{port}",
            "--metrics-addr",
            f"127.0.0.1:{metrics_port}",
            "--data-dir",
            str(data / "db"),
            "--grpc-preshared-key",
            KEY,
            "--datastore-revision-quantization-interval",
            "0",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"arbor serve exited: {proc.stderr.read()}")
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("arbor serve did not start listening")
    yield f"127.0.0.1:{port}"
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, proc.stderr.read()


@pytest.fixture(scope="module")
def client(server):
    return Client(server, insecure_bearer_token_credentials(KEY))


def obj(t, i):
    return ObjectReference(object_type=t, object_id=i)


def subj(t, i, rel=""):
    return SubjectReference(object=obj(t, i), optional_relation=rel)


def rel(res, relation, sub):
    (rt, ri), sub = res.split(":"), sub
    st, rest = sub.split(":")
    si, _, srel = rest.partition("#")
    return Relationship(resource=obj(rt, ri), relation=relation, subject=subj(st, si, srel))


def update(op, r):
    return RelationshipUpdate(operation=op, relationship=r)


CREATE = RelationshipUpdate.Operation.OPERATION_CREATE
TOUCH = RelationshipUpdate.Operation.OPERATION_TOUCH
FULL = Consistency(fully_consistent=True)
HAS = CheckPermissionResponse.PERMISSIONSHIP_HAS_PERMISSION
NO = CheckPermissionResponse.PERMISSIONSHIP_NO_PERMISSION


def check(client, res, perm, sub, consistency=FULL):
    rt, ri = res.split(":")
    st, si = sub.split(":")
    return client.CheckPermission(
        CheckPermissionRequest(
            consistency=consistency, resource=obj(rt, ri), permission=perm, subject=subj(st, si)
        )
    ).permissionship


def test_01_write_and_read_schema(client):
    written = client.WriteSchema(WriteSchemaRequest(schema=DOC_SCHEMA))
    assert written.written_at.token
    read = client.ReadSchema(ReadSchemaRequest())
    assert "definition document" in read.schema_text


def test_02_schema_errors_are_invalid_argument(client):
    with pytest.raises(grpc.RpcError) as e:
        client.WriteSchema(WriteSchemaRequest(schema="definition user {"))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_03_write_relationships_with_preconditions(client):
    w = client.WriteRelationships(
        WriteRelationshipsRequest(
            updates=[
                update(CREATE, rel("document:plan", "owner", "user:ann")),
                update(CREATE, rel("document:plan", "viewer", "team:eng#member")),
                update(CREATE, rel("team:eng", "member", "user:bob")),
                update(CREATE, rel("document:memo", "viewer", "user:bob")),
            ]
        )
    )
    assert w.written_at.token
    # A precondition that holds: ann owns the plan.
    must_match = Precondition(
        operation=Precondition.Operation.OPERATION_MUST_MATCH,
        filter=RelationshipFilter(
            resource_type="document", optional_resource_id="plan", optional_relation="owner"
        ),
    )
    client.WriteRelationships(
        WriteRelationshipsRequest(
            updates=[update(TOUCH, rel("document:plan", "viewer", "user:cat"))],
            optional_preconditions=[must_match],
        )
    )
    # One that fails: nobody may own the memo, but the write requires it; nothing is written.
    must_match_memo = Precondition(
        operation=Precondition.Operation.OPERATION_MUST_MATCH,
        filter=RelationshipFilter(
            resource_type="document", optional_resource_id="memo", optional_relation="owner"
        ),
    )
    with pytest.raises(grpc.RpcError) as e:
        client.WriteRelationships(
            WriteRelationshipsRequest(
                updates=[update(TOUCH, rel("document:memo", "viewer", "user:dan"))],
                optional_preconditions=[must_match_memo],
            )
        )
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert b"ERROR_REASON_WRITE_OR_DELETE_PRECONDITION_FAILURE" in dict(
        e.value.trailing_metadata()
    ).get("grpc-status-details-bin", b"")
    assert check(client, "document:memo", "view", "user:dan") == NO


def test_04_check_and_bulk_check(client):
    assert check(client, "document:plan", "view", "user:bob") == HAS
    assert check(client, "document:plan", "edit", "user:bob") == NO
    assert check(client, "document:plan", "edit", "user:ann") == HAS
    items = [
        CheckBulkPermissionsRequestItem(resource=obj("document", d), permission="view", subject=subj("user", u))
        for d, u in [("plan", "cat"), ("memo", "ann"), ("memo", "bob")]
    ]
    bulk = client.CheckBulkPermissions(CheckBulkPermissionsRequest(consistency=FULL, items=items))
    assert [p.item.permissionship for p in bulk.pairs] == [HAS, NO, HAS]


def test_05_lookup_resources_and_subjects(client):
    found = client.LookupResources(
        LookupResourcesRequest(
            consistency=FULL, resource_object_type="document", permission="view", subject=subj("user", "bob")
        )
    )
    assert sorted(r.resource_object_id for r in found) == ["memo", "plan"]
    subjects = client.LookupSubjects(
        LookupSubjectsRequest(
            consistency=FULL, resource=obj("document", "plan"), permission="view", subject_object_type="user"
        )
    )
    assert sorted(s.subject.subject_object_id for s in subjects) == ["ann", "bob", "cat"]


def test_06_expand(client):
    tree = client.ExpandPermissionTree(
        ExpandPermissionTreeRequest(consistency=FULL, resource=obj("document", "plan"), permission="view")
    ).tree_root
    assert tree.expanded_relation == "view"
    assert tree.intermediate.operation == tree.intermediate.OPERATION_UNION
    leaves = [c.leaf for c in tree.intermediate.children if c.HasField("leaf")]
    found = {(s.object.object_id, s.optional_relation) for leaf in leaves for s in leaf.subjects}
    assert ("eng", "member") in found and ("cat", "") in found


def test_07_read_with_pages(client):
    first = list(
        client.ReadRelationships(
            ReadRelationshipsRequest(
                consistency=FULL, relationship_filter=RelationshipFilter(resource_type="document"), optional_limit=2
            )
        )
    )
    assert len(first) == 2
    rest = list(
        client.ReadRelationships(
            ReadRelationshipsRequest(
                relationship_filter=RelationshipFilter(resource_type="document"),
                optional_limit=100,
                optional_cursor=first[-1].after_result_cursor,
            )
        )
    )
    ids = [(r.relationship.resource.object_id, r.relationship.subject.object.object_id) for r in first + rest]
    assert len(ids) == 4 and len(set(ids)) == 4


def test_08_watch_sees_a_change(client):
    head = client.WriteRelationships(WriteRelationshipsRequest(updates=[])).written_at
    stream = client.Watch(WatchRequest(optional_object_types=["document"], optional_start_cursor=head), timeout=10)
    client.WriteRelationships(
        WriteRelationshipsRequest(updates=[update(TOUCH, rel("document:watched", "viewer", "user:eve"))])
    )
    response = next(iter(stream))
    stream.cancel()
    assert [u.relationship.resource.object_id for u in response.updates] == ["watched"]
    assert response.updates[0].operation == RelationshipUpdate.Operation.OPERATION_TOUCH


def test_09_delete_by_filter(client):
    deleted = client.DeleteRelationships(
        DeleteRelationshipsRequest(
            relationship_filter=RelationshipFilter(
                resource_type="document", optional_subject_filter=SubjectFilter(subject_type="user", optional_subject_id="bob")
            )
        )
    )
    assert deleted.relationships_deleted_count == 1
    assert check(client, "document:memo", "view", "user:bob") == NO
    assert check(client, "document:plan", "view", "user:bob") == HAS  # still through team:eng


def test_10_bulk_import_and_export(client):
    def batches():
        yield ImportBulkRelationshipsRequest(
            relationships=[rel(f"document:bulk{i}", "viewer", "user:imp") for i in range(250)]
        )
        yield ImportBulkRelationshipsRequest(
            relationships=[rel(f"document:bulk{i}", "owner", "user:imp") for i in range(250)]
        )

    imported = client.ImportBulkRelationships(batches())
    assert imported.num_loaded == 500
    exported = []
    for page in client.ExportBulkRelationships(
        ExportBulkRelationshipsRequest(
            consistency=FULL,
            optional_limit=100,
            optional_relationship_filter=RelationshipFilter(
                resource_type="document", optional_resource_id_prefix="bulk"
            ),
        )
    ):
        assert len(page.relationships) <= 100
        exported.extend(page.relationships)
    assert len(exported) == 500
    # Importing the same again is all or nothing: it fails and loads nothing more.
    with pytest.raises(grpc.RpcError) as e:
        client.ImportBulkRelationships(iter([ImportBulkRelationshipsRequest(relationships=[
            rel("document:fresh", "viewer", "user:imp"), rel("document:bulk0", "viewer", "user:imp")])]))
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert check(client, "document:fresh", "view", "user:imp") == NO


def test_11_missing_or_wrong_token_is_refused(server):
    from authzed.api.v1 import permission_service_pb2_grpc  # noqa: PLC0415

    no_token = permission_service_pb2_grpc.PermissionsServiceStub(grpc.insecure_channel(server))
    wrong_token = Client(server, insecure_bearer_token_credentials("wrong-key"))
    for stub, code in [
        (wrong_token, grpc.StatusCode.UNAUTHENTICATED),
        (no_token, grpc.StatusCode.UNAUTHENTICATED),
    ]:
        with pytest.raises(grpc.RpcError) as e:
            stub.CheckPermission(
                CheckPermissionRequest(
                    consistency=FULL, resource=obj("document", "plan"), permission="view", subject=subj("user", "ann")
                )
            )
        assert e.value.code() == code


def test_12_health_is_open(server):
    # grpc.health.v1.Health/Check without a key; messages hand-encoded (field 1: service /
    # status, where SERVING is 1) to need no extra package.
    channel = grpc.insecure_channel(server)
    check_health = channel.unary_unary("/grpc.health.v1.Health/Check")
    service = b"authzed.api.v1.PermissionsService"
    reply = check_health(b"\x0a" + bytes([len(service)]) + service, timeout=5)
    assert reply == b"\x08\x01"
