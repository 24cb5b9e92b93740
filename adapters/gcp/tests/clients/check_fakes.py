"""Google's own Python clients against this crate's fakes (tests/vendor_clients.rs).

The clients build the requests and parse the fakes' answers with the REST transport
(`transport="rest"`), so a path, field, enum, int64 encoding, long-running operation
or error body the real service would not send fails here. Usage:

    python check_fakes.py secret_manager <endpoint> <secret>   # passphrase on stdin
    python check_fakes.py cloud_run <endpoint> <healthy service> <failing service>

Prints one line per check; exits non-zero (with a traceback) at the first that fails.
The passphrase is read from stdin and never printed.
"""

import sys

from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def ok(what: str) -> None:
    print(f"ok {what}", flush=True)


def expect_error(kind, call, status: str):
    """`call` raises `kind`, and the body it parsed carries the canonical `status`."""
    try:
        call()
    except kind as e:
        body = e.response.json() if getattr(e, "response", None) is not None else None
        if body is not None:
            assert body["error"]["status"] == status, body
            assert body["error"]["code"] == e.code, (body, e.code)
        return e
    raise AssertionError(f"expected {kind.__name__} ({status})")


def secret_manager(endpoint: str, secret: str) -> None:
    from google.cloud import secretmanager

    data = sys.stdin.buffer.read()
    c = secretmanager.SecretManagerServiceClient(
        credentials=AnonymousCredentials(),
        transport="rest",
        client_options={"api_endpoint": endpoint},
    )
    s = c.get_secret(name=secret)
    assert s.version_aliases["current"] == 1, s.version_aliases
    assert s.etag.startswith('"'), s.etag
    ok("get_secret: aliases and a quoted etag")

    v = c.add_secret_version(
        parent=secret, payload={"data": data, "data_crc32c": crc32c(data)}
    )
    assert v.name.endswith("/versions/2"), v.name
    assert v.state == secretmanager.SecretVersion.State.ENABLED, v.state
    assert v.client_specified_payload_checksum
    ok("add_secret_version with its CRC32C")

    a = c.access_secret_version(name=v.name)
    assert a.payload.data == data, "the payload read back differs"
    assert a.payload.data_crc32c == crc32c(data)
    a = c.access_secret_version(name=f"{secret}/versions/current")
    assert a.name.endswith("/versions/1"), a.name
    a = c.access_secret_version(name=f"{secret}/versions/latest")
    assert a.name.endswith("/versions/2"), a.name
    ok("access_secret_version by number, alias and latest")

    stale = s.etag
    moved = c.update_secret(
        secret={"name": secret, "version_aliases": {"current": 2, "previous": 1}, "etag": stale},
        update_mask={"paths": ["version_aliases"]},
    )
    assert dict(moved.version_aliases) == {"current": 2, "previous": 1}, moved.version_aliases
    assert moved.etag != stale
    ok("update_secret of the alias map under its etag")

    # https://cloud.google.com/secret-manager/docs/etags: a stale etag is 400
    # FAILED_PRECONDITION. Over REST the client picks the exception by the HTTP
    # status (BadRequest), the canonical status stays in the body.
    e = expect_error(
        exceptions.BadRequest,
        lambda: c.update_secret(
            secret={"name": secret, "version_aliases": {"current": 1}, "etag": stale},
            update_mask={"paths": ["version_aliases"]},
        ),
        "FAILED_PRECONDITION",
    )
    assert "etag" in e.message, e.message
    assert dict(c.get_secret(name=secret).version_aliases)["current"] == 2
    ok("update_secret with a stale etag: 400 FAILED_PRECONDITION, nothing changed")

    expect_error(
        exceptions.BadRequest,
        lambda: c.update_secret(
            secret={"name": secret, "version_aliases": {"Latest": 1}},
            update_mask={"paths": ["version_aliases"]},
        ),
        "INVALID_ARGUMENT",
    )
    ok("update_secret with the reserved alias Latest: 400 INVALID_ARGUMENT")

    d = c.disable_secret_version(name=f"{secret}/versions/1")
    assert d.state == secretmanager.SecretVersion.State.DISABLED, d.state
    expect_error(
        exceptions.BadRequest,
        lambda: c.access_secret_version(name=f"{secret}/versions/1"),
        "FAILED_PRECONDITION",
    )
    ok("access_secret_version of a disabled version: 400 FAILED_PRECONDITION")

    expect_error(
        exceptions.NotFound,
        lambda: c.access_secret_version(name=f"{secret}/versions/9"),
        "NOT_FOUND",
    )
    expect_error(
        exceptions.NotFound,
        lambda: c.get_secret(name=secret.rsplit("/", 1)[0] + "/nope"),
        "NOT_FOUND",
    )
    ok("a missing version and a missing secret: 404 NOT_FOUND")


def cloud_run(endpoint: str, healthy: str, failing: str) -> None:
    from google.cloud import run_v2

    c = run_v2.ServicesClient(
        credentials=AnonymousCredentials(),
        transport="rest",
        client_options={"api_endpoint": endpoint},
    )
    svc = c.get_service(name=healthy)
    assert svc.generation == 1 and svc.observed_generation == 1
    assert svc.terminal_condition.state == run_v2.Condition.State.CONDITION_SUCCEEDED
    assert svc.latest_ready_revision == svc.latest_created_revision
    ok("get_service: generation, Ready condition, revisions")

    svc.template.annotations["vsync-orchestrate/run-id"] = "py-client"
    op = c.update_service(service=svc)
    first = op.metadata
    assert first is not None and first.generation == 2, first
    done = op.result(timeout=30)
    assert done.generation == 2 and done.observed_generation == 2, done
    assert not done.reconciling
    assert done.terminal_condition.state == run_v2.Condition.State.CONDITION_SUCCEEDED
    assert done.latest_ready_revision == done.latest_created_revision
    assert done.template.annotations["vsync-orchestrate/run-id"] == "py-client"
    ok("update_service(...).result(): the operation polled to the Ready service")

    # Another writer's update in between: the old etag no longer matches (AIP-154).
    svc.template.annotations["vsync-orchestrate/run-id"] = "py-client-stale"
    expect_error(exceptions.Conflict, lambda: c.update_service(service=svc), "ABORTED")
    ok("update_service with a stale etag: 409 ABORTED")

    bad = c.get_service(name=failing)
    bad.template.annotations["vsync-orchestrate/run-id"] = "py-client"
    op = c.update_service(service=bad)
    try:
        op.result(timeout=30)
        raise AssertionError("a revision that fails to start finished the operation")
    except exceptions.FailedPrecondition as e:
        assert "failed to start" in e.message, e.message
    ok("update_service(...).result() of a failing revision: FAILED_PRECONDITION")

    after = c.get_service(name=failing)
    assert after.generation == 2, after.generation
    assert not after.reconciling
    # Service.reconciling: "If reconciliation failed, traffic_statuses,
    # observed_generation, and latest_ready_revision will have the state of the last
    # serving revision".
    assert after.observed_generation == 1, after.observed_generation
    assert after.latest_ready_revision.endswith("-00001-aaa"), after.latest_ready_revision
    assert after.latest_created_revision != after.latest_ready_revision
    cond = after.terminal_condition
    assert cond.state == run_v2.Condition.State.CONDITION_FAILED, cond
    assert cond.revision_reason or cond.reason, cond
    ok("the failed rollout read back: not reconciling, observed 1, Ready failed")

    expect_error(
        exceptions.NotFound,
        lambda: c.get_service(name=healthy.rsplit("/", 1)[0] + "/nope"),
        "NOT_FOUND",
    )
    ok("a missing service: 404 NOT_FOUND")


if __name__ == "__main__":
    what, *args = sys.argv[1:]
    {"secret_manager": secret_manager, "cloud_run": cloud_run}[what](*args)
