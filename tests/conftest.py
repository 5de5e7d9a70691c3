"""Shared fixtures: a real embedded runtime (SQLite file, archive folder, worker thread)
in a temporary data folder, driven through the real FastAPI app."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.web.app import create_app

FIXTURES = Path(__file__).parent / "fixtures" / "payloads"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", worker_poll_seconds=0.02, secret_key="")


@pytest.fixture
def runtime(settings: Settings) -> Runtime:
    return build_runtime(settings)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as test_client:
        yield test_client


@dataclass
class TenantHandle:
    id: str
    api_key: str
    runtime: Runtime

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def integration(self, provider: str, secret: str = "test-secret") -> str:
        return self.runtime.store.create_integration(self.id, provider, provider, secret).id


@pytest.fixture
def tenant(runtime: Runtime) -> TenantHandle:
    created = runtime.store.create_tenant("acme")
    return TenantHandle(created.id, runtime.store.create_api_key(created.id, "test"), runtime)


def drain(runtime: Runtime, timeout: float = 10.0) -> None:
    """Wait until every queued event is processed or dead-lettered."""
    deadline = time.monotonic() + timeout
    while runtime.queue.depth().messages:
        if time.monotonic() > deadline:
            raise AssertionError(f"queue not drained: {runtime.queue.depth()}")
        time.sleep(0.01)
