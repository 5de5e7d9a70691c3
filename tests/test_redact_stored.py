"""``dd0c-alert redact-stored`` takes credentials out of dead letters and archive files
that versions before admission-time redaction stored, keeping archive refs valid."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from conftest import BACKEND, cli_environment, tenant_connection
from dd0c_alert.app import build_runtime
from dd0c_alert.cli import app as cli_app
from dd0c_alert.config import Settings
from dd0c_alert.storage import schema as t
from dd0c_alert.storage.archive import archive_key

pytestmark = pytest.mark.both_modes

SECRET = "legacy-routing-key-0123456789abcdef"
API_KEY = "legacy-api-key-value-987654"


def test_redact_stored_rewrites_dead_letters_and_archive_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    overrides = cli_environment(monkeypatch, data_dir)
    settings = Settings(data_dir=data_dir, **({"secret_key": ""} | overrides))
    runtime = build_runtime(settings, roles=frozenset())
    tenant = runtime.store.create_tenant("legacy")
    integration = runtime.store.create_integration(tenant.id, "pagerduty-events", "pd", SECRET)
    event = {"routing_key": SECRET, "event_action": "trigger", "dedup_key": f"k-{SECRET}"}
    body = json.dumps([event, {"routing_key": "old-key"}]).encode()
    other = b'{"title": "nothing secret", "n": 1}'
    # As an older version stored them: in clear.
    key = archive_key(tenant.id, "legacy.seg", time.time())
    refs = runtime.archive.put_segment(key, [other, body, other])
    claim = archive_key(tenant.id, "claim.json", time.time())
    runtime.archive.put(claim, body)
    with tenant_connection(settings, tenant.id) as conn:
        conn.execute(
            sa.insert(t.dead_letters).values(
                id="01LEGACYDEADLETTER000000000",
                event_id="01LEGACYEVENT0000000000000",
                tenant_id=tenant.id,
                integration_id=integration.id,
                provider="pagerduty-events",
                received_at=time.time(),
                headers=json.dumps({"x-api-key": API_KEY, "x-trace": "kept"}),
                body=body,
                error="PayloadError: legacy",
                attempts=1,
                failed_at=datetime.now(UTC),
            )
        )
    runtime.stop()
    runner = CliRunner()

    dry = runner.invoke(cli_app, ["redact-stored", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would redact: 1 dead letter(s), 2 of 2 archive file(s)" in dry.output
    assert SECRET.encode() in runtime.archive.get(claim)  # nothing written

    done = runner.invoke(cli_app, ["redact-stored", "--tenant", tenant.id])
    assert done.exit_code == 0, done.output
    assert "redacted: 1 dead letter(s), 2 of 2 archive file(s)" in done.output

    # Every reference still reads its own payload, now valid JSON without the keys.
    assert runtime.archive.get(refs[0]) == other
    assert runtime.archive.get(refs[2]) == other
    for kept in (runtime.archive.get(refs[1]), runtime.archive.get(claim)):
        assert len(kept) == len(body)
        document = orjson.loads(kept)
        assert document[0]["routing_key"] == "[redacted]"
        assert document[0]["dedup_key"] == "k-[redacted]"
        assert document[1]["routing_key"] == "*******"  # shorter than the marker
    dead = runtime.store.get_dead_letter("01LEGACYDEADLETTER000000000")
    assert dead is not None and dead.event.body is not None
    assert orjson.loads(dead.event.body)[0]["routing_key"] == "[redacted]"
    assert dead.event.headers == {
        "x-trace": "kept",
        "x-dd0c-redacted": "body:routing_key, body:dedup_key, header:x-api-key",
    }
    shown = runner.invoke(cli_app, ["dlq", "show", "01LEGACYDEADLETTER000000000"]).output
    assert SECRET not in shown and API_KEY not in shown
    again = runner.invoke(cli_app, ["redact-stored"])
    assert "redacted: 0 dead letter(s), 0 of 2 archive file(s)" in again.output
    if BACKEND == "embedded":  # vacuumed: not in free pages or the WAL either
        for path in data_dir.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert SECRET.encode() not in data, path
                assert API_KEY.encode() not in data, path
