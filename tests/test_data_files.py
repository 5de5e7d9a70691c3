"""Files in the data folder are created 0600 and folders 0700, whatever the umask
(issue 13, item 7): the secret key, the SQLite database and its WAL, raw payloads."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from conftest import BACKEND, drain
from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.web.app import create_app
from test_smoke_custom import sign


@pytest.fixture
def open_umask() -> Iterator[None]:
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


@pytest.mark.both_modes
def test_data_folder_files_are_private(settings: Settings, open_umask: None) -> None:
    runtime = build_runtime(settings)
    tenant = runtime.store.create_tenant("acme")
    runtime.store.create_integration(tenant.id, "custom", "custom", "s3cret")
    with TestClient(create_app(runtime)) as client:
        for n in range(3):
            body = json.dumps({"title": f"t{n}", "service": "s"}).encode()
            response = client.post(
                f"/v1/wh/{tenant.id}/custom", content=body, headers=sign("s3cret", body)
            )
            assert response.status_code == 202, response.text
        drain(runtime)
        found = {"dir": 0, "file": 0}
        for root, dirs, files in os.walk(settings.data_dir):
            for name in dirs:
                mode = stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode)
                assert mode == 0o700, (os.path.join(root, name), oct(mode))
                found["dir"] += 1
            for name in files:
                mode = stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode)
                assert mode == 0o600, (os.path.join(root, name), oct(mode))
                found["file"] += 1
    assert stat.S_IMODE(os.stat(settings.data_dir).st_mode) == 0o700
    names = {name for _, _, files in os.walk(settings.data_dir) for name in files}
    if BACKEND == "embedded":
        assert {"secret.key", "dd0c.db", "dd0c-queue.db"} <= names, names
    assert any(name.endswith(".seg.json") for name in names), names  # raw payload segments
    assert found["dir"] >= 4 and found["file"] >= 1
