"""A server started with a key that cannot read the stored secrets (a restore onto a
folder with another secret.key, a wrong DD0C_SECRET_KEY): /readyz is not ready and
each webhook is refused 503 with that cause, not one that blames the queue (both
modes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from conftest import cli_environment
from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.logs import Throttle
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.web import webhooks
from dd0c_alert.web.app import create_app
from dd0c_alert.web.health import KEY_CANNOT_DECRYPT, SecretKeyProbe

SECRET = "mismatch-integration-secret"
ALERT = b'{"alerts": [{"status": "firing", "labels": {"alertname": "DiskFull"}}]}'


class Installation:
    """One database and two keys: the one its secrets were stored with, and another."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self.stored_with = Fernet.generate_key().decode()
        self.other = Fernet.generate_key().decode()

    def runtime(self, key: str) -> Runtime:
        self._monkeypatch.setenv("DD0C_SECRET_KEY", key)
        return build_runtime(Settings())


@pytest.fixture
def installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Installation]:
    cli_environment(monkeypatch, tmp_path / "data")
    yield Installation(monkeypatch)


def _with_integration(installation: Installation) -> tuple[str, str]:
    """A tenant with an alertmanager integration stored under the first key."""
    first = installation.runtime(installation.stored_with)
    tenant = first.store.create_tenant("acme").id
    integration = first.store.create_integration(tenant, "alertmanager", "am", SECRET).id
    first.store.close()
    return tenant, integration


@pytest.mark.both_modes
def test_a_webhook_is_refused_naming_the_key_and_nothing_is_stored(
    installation: Installation, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """It was answered 503 ``unavailable`` "could not be committed to the queue", and
    the log said only ``InvalidToken: ``, once per request."""
    monkeypatch.setattr(webhooks, "_UNREADABLE_LINES", Throttle(60.0))
    tenant, integration = _with_integration(installation)
    runtime = installation.runtime(installation.other)
    url = f"/v1/wh/{tenant}/alertmanager/{integration}"
    with TestClient(create_app(runtime)) as client:
        for _ in range(3):
            answer = client.post(url, content=ALERT, headers={"Authorization": f"Bearer {SECRET}"})
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"] == "secret_key_mismatch"
            detail = answer.json()["detail"]
            assert "secret key cannot read this integration's secret" in detail, detail
            assert "docs/operations.md" in detail
            assert "queue" not in detail
            assert answer.headers["Retry-After"] == "5"
        assert runtime.queue.depth().messages == 0  # never accepted, nothing to lose
    logged = capfd.readouterr().err
    assert logged.count("webhook_secret_unreadable") == 1, logged  # once a minute
    assert "cannot decrypt this integration's stored secret" in logged
    assert "InvalidToken" not in logged


@pytest.mark.both_modes
def test_a_new_secret_given_through_the_api_is_accepted_at_once(
    installation: Installation,
) -> None:
    """The refusal is remembered for a moment (retries cost no database read), but a
    rotation through the API, which re-encrypts with this key, ends it at once."""
    tenant, integration = _with_integration(installation)
    runtime = installation.runtime(installation.other)
    key = runtime.store.create_api_key(tenant, "ops")
    url = f"/v1/wh/{tenant}/alertmanager/{integration}"
    with TestClient(create_app(runtime)) as client:
        refused = client.post(url, content=ALERT, headers={"Authorization": f"Bearer {SECRET}"})
        assert refused.status_code == 503, refused.text
        rotated = client.patch(
            f"/v1/integrations/{integration}",
            json={"rotate_secret": True},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["secret"]
        answer = client.post(url, content=ALERT, headers={"Authorization": f"Bearer {new}"})
        assert answer.status_code == 202, answer.text


@pytest.mark.both_modes
def test_readyz_is_not_ready_while_the_key_cannot_read_the_secrets(
    installation: Installation,
) -> None:
    empty = installation.runtime(installation.other)
    with TestClient(create_app(empty)) as client:
        ready = client.get("/readyz")  # nothing stored yet: nothing to read
        assert ready.status_code == 200, ready.text
        assert "secret_key" not in ready.json()["checks"]
    _with_integration(installation)
    for key, status, check in (
        (installation.other, 503, KEY_CANNOT_DECRYPT),
        (f"{installation.other},{installation.stored_with}", 200, "ok"),  # during a change
        (installation.stored_with, 200, "ok"),
    ):
        with TestClient(create_app(installation.runtime(key))) as client:
            ready = client.get("/readyz")
            assert ready.status_code == status, ready.text
            assert ready.json()["checks"]["secret_key"] == check
    assert installation.other not in KEY_CANNOT_DECRYPT


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.both_modes
def test_the_probe_decrypts_at_most_every_few_seconds(installation: Installation) -> None:
    """/readyz is probed every few seconds by every load balancer: between two real
    checks the verdict is reused (the integration deleted meanwhile shows only after)."""
    tenant, integration = _with_integration(installation)
    runtime = installation.runtime(installation.other)
    clock = Clock()
    probe = SecretKeyProbe(5.0, clock)
    assert probe.reads(runtime.store) is False
    runtime.store.product().delete_integration(tenant, integration)
    clock.now += 4.9
    assert probe.reads(runtime.store) is False  # cached
    clock.now += 0.2
    assert probe.reads(runtime.store) is None  # read again: nothing stored now
