"""Shared fixtures: a real runtime in a temporary data folder, driven through the real
FastAPI app.

``DD0C_TEST_BACKEND`` picks the adapters the runtime-based tests run on: ``embedded``
(default: SQLite file, archive folder, worker thread) or ``production`` (a real
PostgreSQL with pgmq and a real Redis, started here on free ports). In the
production pass only the tests that use a runtime are collected: the pure core does
not change with the adapters.
"""

from __future__ import annotations

import itertools
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.migrate import grant_app_role, upgrade
from dd0c_alert.web.app import create_app
from servers import APP, OWNER, PostgresServer, RedisServer

FIXTURES = Path(__file__).parent / "fixtures" / "payloads"
BACKEND = os.environ.get("DD0C_TEST_BACKEND", "embedded")
assert BACKEND in ("embedded", "production"), BACKEND
_TEMPLATE = "dd0c_template"
_databases = itertools.count()
_FERNET_KEY = Fernet.generate_key().decode()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if BACKEND != "production":
        return
    keep = [item for item in items if "runtime" in getattr(item, "fixturenames", ())]
    dropped = [item for item in items if item not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session, with a migrated template database."""
    server = PostgresServer(tmp_path_factory.mktemp("pg"))
    server.start()
    try:
        server.create_database(_TEMPLATE)
        engine = sa.create_engine(server.url(_TEMPLATE, OWNER))
        upgrade(engine)
        grant_app_role(engine, APP)
        engine.dispose()
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_database(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, migrated database for one test; its name."""
    name = f"dd0c_test_{next(_databases)}"
    pg_server.create_database(name, template=_TEMPLATE)
    yield name
    pg_server.drop_database(name)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    base = Settings(data_dir=tmp_path / "data", worker_poll_seconds=0.02, secret_key="")
    if BACKEND == "embedded":
        return base
    server: PostgresServer = request.getfixturevalue("pg_server")
    database: str = request.getfixturevalue("pg_database")
    redis: RedisServer = request.getfixturevalue("redis_server")
    return base.model_copy(
        update={
            "database_url": server.url(database, APP),
            "redis_url": redis.url,
            "secret_key": _FERNET_KEY,
        }
    )


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
