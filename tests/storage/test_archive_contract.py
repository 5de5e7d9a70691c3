"""The archive contract, run against the local folder and against S3 over real HTTP
(moto's server on a free port): what the worker, the claim check and the raw-payload
API rely on must hold for both."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from dd0c_alert.storage.archive import LocalArchive
from dd0c_alert.storage.ports import Archive
from dd0c_alert.storage.s3_archive import ArchiveUnavailable, S3Archive
from servers import free_port

BUCKET = "dd0c-archive"
_prefixes = itertools.count()


def _start_moto() -> tuple[ThreadedMotoServer, str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def _s3_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server with the test bucket; dummy credentials from the environment,
    and no shared config file that could point boto3 at a real account."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        env.delenv("AWS_PROFILE", raising=False)
        env.setenv("AWS_CONFIG_FILE", "/nonexistent")
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        server, endpoint = _start_moto()
        try:
            _s3_client(endpoint).create_bucket(Bucket=BUCKET)
            yield endpoint
        finally:
            server.stop()


def _fast_s3(bucket: str, prefix: str, endpoint: str) -> S3Archive:
    """No retries, so a failure shows at once. The read timeout is generous: the moto
    server shares the machine with the rest of the suite, and a 2 s timeout turned its
    slow answer (NoSuchBucket) into a read timeout under load."""
    return S3Archive(
        bucket, prefix, endpoint_url=endpoint, connect_timeout=1, read_timeout=30, attempts=1
    )


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Archive, Callable[[], set[str]]]:
    """An empty archive and a way to list what it wrote where (relative to the bucket
    or to the folder the archive was given)."""
    if request.param == "local":
        root = tmp_path / "archive"
        return LocalArchive(root), lambda: {
            str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()
        }
    endpoint = request.getfixturevalue("s3_endpoint")
    prefix = f"tests/{next(_prefixes)}"

    def stored() -> set[str]:
        listing = _s3_client(endpoint).list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")
        return {item["Key"].replace(prefix, "archive", 1) for item in listing.get("Contents", [])}

    return _fast_s3(BUCKET, prefix, endpoint), stored


@pytest.fixture
def archive(store: tuple[Archive, Callable[[], set[str]]]) -> Archive:
    return store[0]


NOT_UTF8 = bytes(range(256)) + b"\xff\xfe\x00\x80"


def test_put_get_byte_for_byte(archive: Archive) -> None:
    archive.put("t1/2026/01/02/a.json", b'{"a": 1}')
    archive.put("t1/2026/01/02/b.bin", NOT_UTF8, durable=True)
    assert archive.get("t1/2026/01/02/a.json") == b'{"a": 1}'
    assert archive.get("t1/2026/01/02/b.bin") == NOT_UTF8


def test_put_overwrites(archive: Archive) -> None:
    archive.put("k.json", b"first")
    archive.put("k.json", b"second")
    assert archive.get("k.json") == b"second"


def test_segment_refs_read_back_each_payload(archive: Archive) -> None:
    payloads = [f'{{"n": {n}}}'.encode() * (n % 7 + 1) for n in range(200)]
    payloads[3] = b""
    payloads[50] = NOT_UTF8
    payloads.append(b"")  # an empty payload at the very end of the segment
    refs = archive.put_segment("t1/2026/01/02/s1.seg", payloads)
    assert len(refs) == len(payloads)
    assert [archive.get(ref) for ref in refs] == payloads
    # Whole-object get of a segment is the payloads concatenated.
    assert archive.get("t1/2026/01/02/s1.seg") == b"".join(payloads)


def test_refs_from_two_segments_stay_apart(archive: Archive) -> None:
    first = archive.put_segment("t1/s1.seg", [b"alpha", b"beta"])
    second = archive.put_segment("t2/s2.seg", [b"gamma", b"delta", b"epsilon"])
    assert first[1] != second[1]
    assert [archive.get(ref) for ref in second + first] == [
        b"gamma",
        b"delta",
        b"epsilon",
        b"alpha",
        b"beta",
    ]


def test_segment_of_only_empty_payloads(archive: Archive) -> None:
    refs = archive.put_segment("t1/empty.seg", [b"", b""])
    assert [archive.get(ref) for ref in refs] == [b"", b""]


@pytest.mark.parametrize("ref", ["t1/missing.json", "t1/missing.seg#0:5", "t1/missing.seg#0:0"])
def test_missing_key_is_file_not_found(archive: Archive, ref: str) -> None:
    """The raw-payload API answers 404 "no longer retained" on FileNotFoundError."""
    with pytest.raises(FileNotFoundError):
        archive.get(ref)


def test_purge_drops_the_tenants_days_before_the_cutoff(archive: Archive) -> None:
    for key in ("t1/2026/01/01/a.json", "t1/2026/01/02/b.json", "t1/2026/01/03/c.json"):
        archive.put(key, b"x")
    archive.put_segment("t1/2026/01/01/d.seg", [b"d"])
    archive.put("t2/2026/01/01/e.json", b"x")
    assert archive.purge_before("t1", datetime(2026, 1, 3, 12, tzinfo=UTC)) >= 2
    for gone in ("t1/2026/01/01/a.json", "t1/2026/01/01/d.seg#0:1", "t1/2026/01/02/b.json"):
        with pytest.raises(FileNotFoundError):
            archive.get(gone)
    assert archive.get("t1/2026/01/03/c.json") == b"x"  # the cutoff's own day stays
    assert archive.get("t2/2026/01/01/e.json") == b"x"  # another tenant's stays
    assert archive.purge_before("t1", datetime(2026, 1, 3, tzinfo=UTC)) == 0


def test_objects_land_under_the_configured_root(
    store: tuple[Archive, Callable[[], set[str]]],
) -> None:
    archive, stored = store
    archive.put("t1/2026/01/02/a.json", b"a")
    archive.put_segment("t1/2026/01/02/b.seg", [b"b", b"c"])
    assert stored() == {"archive/t1/2026/01/02/a.json", "archive/t1/2026/01/02/b.seg"}


def test_s3_url_with_and_without_prefix(s3_endpoint: str) -> None:
    prefixed = S3Archive.from_url(f"s3://{BUCKET}/deep/pre/fix/", endpoint_url=s3_endpoint)
    bare = S3Archive.from_url(f"s3://{BUCKET}", endpoint_url=s3_endpoint)
    prefixed.put("x.json", b"prefixed")
    bare.put("x.json", b"bare")
    client = _s3_client(s3_endpoint)
    assert client.get_object(Bucket=BUCKET, Key="deep/pre/fix/x.json")["Body"].read() == b"prefixed"
    assert client.get_object(Bucket=BUCKET, Key="x.json")["Body"].read() == b"bare"


@pytest.mark.parametrize("url", ["", "s3://", "https://bucket/x", "/var/archive"])
def test_s3_url_must_name_a_bucket(url: str) -> None:
    with pytest.raises(ValueError, match="s3://bucket"):
        S3Archive.from_url(url)


def test_s3_missing_bucket_raises_clearly(s3_endpoint: str) -> None:
    archive = _fast_s3("no-such-bucket", "", s3_endpoint)
    with pytest.raises(ArchiveUnavailable, match="NoSuchBucket"):
        archive.put("a.json", b"a", durable=True)
    with pytest.raises(ArchiveUnavailable, match="NoSuchBucket"):
        archive.get("a.json")


def test_s3_stopped_server_raises_instead_of_hanging(s3_endpoint: str) -> None:
    server, endpoint = _start_moto()
    _s3_client(endpoint).create_bucket(Bucket=BUCKET)
    archive = _fast_s3(BUCKET, "", endpoint)
    archive.put("up.json", b"while up")
    server.stop()
    with pytest.raises(ArchiveUnavailable, match="Could not connect"):
        archive.put("down.json", b"while down", durable=True)
    with pytest.raises(ArchiveUnavailable):
        archive.put_segment("down.seg", [b"a"])
    with pytest.raises(ArchiveUnavailable):
        archive.get("up.json")


def test_s3_silent_server_times_out(s3_endpoint: str) -> None:
    """A store that accepts connections but never answers fails the call after the
    read timeout instead of holding a worker or a webhook request forever."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        archive = S3Archive(
            BUCKET, endpoint_url=endpoint, connect_timeout=1, read_timeout=0.3, attempts=1
        )
        with pytest.raises(ArchiveUnavailable, match="timeout"):
            archive.put("a.json", b"a", durable=True)
