"""Secrets never come back out (issue 13, item 4).

Integrations of every provider get distinctive secrets; webhooks of every provider are
sent through HTTP with their proofs plus credential headers of other names (and one
innocently named header quoting the secret), some Events v2 bodies quote the routing
key elsewhere (escaped, too), one body is claim-checked into the archive, two
dead-letter. Then every stored byte is searched for every secret: the data folder
(SQLite database and WAL, archive) and, in production mode, every row of every table
of the public and pgmq schemas (base64 message bodies decoded); also the answers of
``/raw``, the alert API and ``dd0c-alert dlq show``, and everything logged.
"""

from __future__ import annotations

import base64
import binascii
import getpass
import json
import os
import secrets as random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from conftest import BACKEND, _servers, cli_environment, drain
from dd0c_alert.app import build_runtime
from dd0c_alert.cli import app as cli_app
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.providers import PROVIDERS
from dd0c_alert.web.app import create_app
from webhook_helpers import (
    TestClient,
    api_items,
    auth_headers,
    basic_auth,
    dead_letters,
    new_tenant,
    replayed_headers,
    seed,
)

pytestmark = pytest.mark.both_modes

#: Credential headers of names no provider uses, each with a secret of its own.
EXTRA_HEADERS = (
    "X-Api-Key",
    "X-Auth-Token",
    "api-key",
    "X-Session-Id",
    "Cookie",
    "X-Slack-Signature",
    "Proxy-Authorization",
)


def _secret(label: str) -> str:
    return f"LEAK-{label}-{random.token_hex(12)}"


def _events_v2(secret: str, big: bool = False) -> bytes:
    """An Events v2 batch whose routing key also appears in a dedup key and, escaped,
    in a summary; ``big`` pads it past the claim-check threshold."""
    escaped = f"\\u{ord(secret[0]):04x}" + secret[1:]
    events = [
        {
            "routing_key": secret,
            "event_action": "trigger",
            "dedup_key": f"dk-{secret}",
            "payload": {"summary": "first", "source": "db-1", "severity": "critical"},
        },
        {
            "routing_key": secret,
            "event_action": "trigger",
            "dedup_key": "second",
            "payload": {
                "summary": "ESCAPED",
                "source": "db-2",
                "severity": "error",
                "custom_details": {"padding": "x" * (4000 if big else 1)},
            },
        },
    ]
    return json.dumps(events, indent=1).encode().replace(b"ESCAPED", f"key {escaped}".encode())


@pytest.fixture
def deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Runtime, TestClient, Path]]:
    data_dir = tmp_path / "data"
    overrides = cli_environment(monkeypatch, data_dir)
    settings = Settings(
        data_dir=data_dir,
        worker_poll_seconds=0.02,
        sqlite_synchronous="NORMAL",
        claim_check_bytes=2048,
        **({"secret_key": ""} | overrides),
    )
    runtime = build_runtime(settings)
    with TestClient(create_app(runtime)) as client:
        yield runtime, client, data_dir


def test_no_secret_is_stored_or_shown(
    deployment: tuple[Runtime, TestClient, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    runtime, client, data_dir = deployment
    tenant = new_tenant(runtime)
    leaks: list[str] = []

    def send(provider: str, body: bytes, secret: str, recorded: dict[str, str]) -> Any:
        extra = {name: _secret(name) for name in EXTRA_HEADERS}
        extra["X-Note"] = f"forwarded for {secret}"  # an innocent name quoting the secret
        leaks.extend(extra.values())
        headers = {
            "Content-Type": "application/json",
            **replayed_headers(recorded),
            **extra,
            **auth_headers(provider, body, secret, recorded),
        }
        return client.post(f"/v1/wh/{tenant.id}/{provider}", content=body, headers=headers)

    accepted: list[str] = []
    for provider in sorted(PROVIDERS):
        secret = _secret(provider)
        leaks.append(secret)
        tenant.integration(provider, secret)
        if provider == "pagerduty-events":
            bodies = [_events_v2(secret), _events_v2(secret, big=True)]
            bodies.append(json.dumps({"routing_key": secret, "hello": "world"}).encode())
        else:
            bodies = [seed(provider).body]
        if provider == "custom":
            bodies.append(b'{"no": "title"}')  # dead-letters
        for body in bodies:
            response = send(provider, body, secret, seed(provider).recorded)
            assert response.status_code == 202, (provider, response.text)
            accepted.append(response.json()["event_id"])
    argocd = _secret("argocd-basic")
    second = tenant.integration("argocd", argocd)
    basic = basic_auth(argocd)
    leaks += [argocd, basic["Authorization"].split()[1]]
    response = client.post(
        f"/v1/wh/{tenant.id}/argocd/{second}",
        content=seed("argocd").body,
        headers={**basic, "Content-Type": "application/json"},
    )
    assert response.status_code == 202, response.text
    drain(runtime)

    # What the service shows: the API, /raw, dlq show.
    shown: list[str] = []
    alerts = api_items(client, tenant, "/v1/alerts")
    assert alerts
    shown.append(json.dumps(alerts))
    shown.append(json.dumps(api_items(client, tenant, "/v1/deploys")))
    raws = [client.get(f"/v1/alerts/{a['id']}/raw", headers=tenant.auth) for a in alerts]
    assert all(raw.status_code == 200 for raw in raws)
    shown += [raw.content.decode() for raw in raws]
    titles = {a["title"] for a in alerts}
    assert "key [redacted]" in titles  # the escaped copy in a summary was found too
    assert any(b'"routing_key": "[redacted]"' in raw.content for raw in raws)
    dead = dead_letters(runtime, tenant.id)
    assert len(dead) == 2
    runner = CliRunner()
    for row in dead:
        result = runner.invoke(cli_app, ["dlq", "show", row["id"]])
        assert result.exit_code == 0, result.output
        assert "x-dd0c-redacted" in result.output  # the note of what was taken out
        shown.append(result.output)
    for text in shown:
        for leak in leaks:
            assert leak not in text

    # What the service stored.
    runtime.stop()
    places = _stored_bytes(data_dir) | _database_rows()
    assert len(places) > 5
    for place, data in places.items():
        for leak in leaks:
            assert leak.encode() not in data, f"{leak} in {place}"

    # What it logged.
    out, err = capfd.readouterr()
    for leak in leaks:
        assert leak not in out + err


def _stored_bytes(data_dir: Path) -> dict[str, bytes]:
    """Every file of the data folder: database, WAL, archive segments, claim checks."""
    found = {str(p): p.read_bytes() for p in data_dir.rglob("*") if p.is_file()}
    assert any("archive" in name for name in found)
    return found


def _database_rows() -> dict[str, bytes]:
    """Production mode: every row of every table, read as the superuser (no RLS),
    with base64 strings (pgmq message bodies) decoded too."""
    if BACKEND == "embedded":
        return {}
    database = os.environ["DATABASE_URL"].rsplit("/", 1)[-1].split("?")[0]  # cli_environment
    pg = _servers.postgres()
    found: dict[str, bytes] = {}
    with pg.connect(database, user=_superuser(pg, database)) as conn:
        tables = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname IN ('public', 'pgmq')"
        ).fetchall()
        assert any(schema == "pgmq" for schema, _ in tables)
        for schema, table in tables:
            rows = conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
            found[f"{schema}.{table}"] = b"\n".join(_flatten(row) for row in rows)
    return found


def _superuser(pg: Any, database: str) -> str:
    for user in ("postgres", getpass.getuser()):
        try:
            with pg.connect(database, user=user) as conn:
                row = conn.execute(
                    "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                ).fetchone()
        except psycopg.Error:
            continue
        if row and row[0]:
            return user
    raise AssertionError("no superuser to read every row with")


def _flatten(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        text = value.encode()
        if len(value) >= 16 and len(value) % 4 == 0:
            try:
                return text + b"\n" + base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                pass
        return text
    if isinstance(value, dict):
        return b"\n".join(_flatten(k) + b"=" + _flatten(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return b"\n".join(_flatten(v) for v in value)
    return str(value).encode()
