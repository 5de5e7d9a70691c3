"""An integration's secret rotated from the command line while a sender keeps posting
to a running ``serve`` (another process, with its own cache of integrations): the new
secret is accepted at once, the old one until the overlap ends, and from then on it is
refused with ``secret_rotated`` rather than a mismatch that reads like a wrong
secret. Embedded and production alike; the server logs at DEBUG (the secret scan
reads its log file)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from cli_serve import cli_json, serving
from test_smoke_custom import sign

pytestmark = pytest.mark.both_modes
#: At least the servers' 5 s cache of integrations, so the overlap ends exactly.
GRACE = 6
BODY = b'{"title": "Disk full", "service": "db"}'


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A running ``serve`` on the CLI's database; its base URL. The grace is the
    CLI's: it rotates, and stores when the old secret stops."""
    monkeypatch.setenv("DD0C_SECRET_ROTATION_GRACE_SECONDS", str(GRACE))
    with serving(tmp_path, monkeypatch) as url:
        yield url


def _post(url: str, secret: str) -> str:
    response = httpx.post(url, content=BODY, headers=sign(secret, BODY), timeout=10)
    return "accepted" if response.status_code == 202 else str(response.json()["error"])


def _old_secret_answer(url: str, old: str, until: float) -> str:
    """A post with the old secret during the overlap: accepted when the answer came
    before the overlap's end, refused as rotated when the post left after it, and
    either when the end fell while it was under way (a loaded machine can take longer
    than any margin over one request)."""
    sent = time.time()
    answer = _post(url, old)
    answered = time.time()
    if answered < until:
        assert answer == "accepted", (answer, until - answered)
    elif sent > until:
        assert answer == "secret_rotated", (answer, sent - until)
    else:
        assert answer in ("accepted", "secret_rotated"), answer
    return answer


def test_the_overlap_holds_exactly_across_processes(server: str) -> None:
    tenant = cli_json("tenant", "create", "acme")["tenant_id"]
    made = cli_json("integration", "create", "--tenant", tenant, "--provider", "custom")
    integration, old = made["integration_id"], made["secret"]
    url = f"{server}/v1/wh/{tenant}/custom/{integration}"
    assert _post(url, old) == "accepted"  # the server now caches the old secret alone

    rotated = cli_json("integration", "rotate", "--tenant", tenant, integration)
    new, until = rotated["secret"], datetime.fromisoformat(rotated["previous_secret_valid_until"])
    assert _post(url, new) == "accepted"  # at once, though the cache knew only the old one
    answers = []
    while time.time() < until.timestamp():  # into the overlap's last fraction of a second
        answers.append(_old_secret_answer(url, old, until.timestamp()))
        time.sleep(0.2)
    assert "accepted" in answers  # the overlap was seen, not only its end
    time.sleep(max(0.0, until.timestamp() - time.time()) + 0.05)
    assert _post(url, old) == "secret_rotated"
    refused = httpx.post(url, content=BODY, headers=sign(old, BODY), timeout=10).json()
    assert "rotated" in refused["detail"] and until.isoformat() in refused["detail"]
    assert _post(url, new) == "accepted"
    assert _post(url, "not-the-secret-at-all") == "signature_mismatch"
