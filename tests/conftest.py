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
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
from cryptography.fernet import Fernet

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from dd0c_alert import logs
from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.engine import normalise_database_url
from dd0c_alert.storage.migrate import grant_app_role, upgrade
from dd0c_alert.storage.tenancy import scope
from dd0c_alert.web.app import create_app
from servers import APP, OWNER, PostgresServer, RedisServer

#: secret_scan fails any test whose logs hold a secret the tests created; pytester
#: runs the sub-sessions that prove it catches one.
pytest_plugins = ("secret_scan", "pytester")

# The runtime's log lines go to stderr, as in production (logs.configure): the process's
# own, so a worker thread's line never lands in the output of a CLI command a test
# parses (CliRunner swaps sys.stdout and sys.stderr, not the file descriptors pytest
# captures).
_PROCESS_STDERR = structlog.PrintLoggerFactory(sys.__stderr__)
structlog.configure(logger_factory=_PROCESS_STDERR)
_configure_logs = logs.configure


def _configure_logs_in_tests(level: str = "info") -> None:
    """``logs.configure`` as a server command run in-process calls it, kept from
    binding the logs (structlog's and the root logger's JSON handler) to the
    ``sys.stderr`` of that moment (one test's capture) and from caching each logger on
    first use: every later test's lines went to a stream no fixture reads (``capfd``
    saw nothing)."""
    _configure_logs(level, sys.__stderr__)
    structlog.configure(logger_factory=_PROCESS_STDERR, cache_logger_on_first_use=False)


logs.configure = _configure_logs_in_tests

FIXTURES = Path(__file__).parent / "fixtures" / "payloads"
BACKEND = os.environ.get("DD0C_TEST_BACKEND", "embedded")
assert BACKEND in ("embedded", "production"), BACKEND
_TEMPLATE = "dd0c_template"
_databases = itertools.count()
_FERNET_KEY = Fernet.generate_key().decode()
_JWT_SECRET = "test-jwt-secret-" + "x" * 32


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_modes: an end-to-end test that runs on both adapter sets"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In the production pass keep only the end-to-end tests: those on the ``runtime``
    fixture and those marked ``both_modes`` (they build runtimes of their own)."""
    if BACKEND != "production":
        return
    keep = [
        item
        for item in items
        if "runtime" in getattr(item, "fixturenames", ())
        or item.get_closest_marker("both_modes") is not None
    ]
    dropped = [item for item in items if item not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


class _Servers:
    """PostgreSQL (with a migrated template database) and Redis, started on first use
    and stopped when the session ends."""

    def __init__(self) -> None:
        self.pg: PostgresServer | None = None
        self.redis: RedisServer | None = None

    def postgres(self) -> PostgresServer:
        if self.pg is None:
            server = PostgresServer(Path(tempfile.mkdtemp(prefix="dd0c-pg-")))
            server.start()
            self.pg = server
            server.create_database(_TEMPLATE)
            engine = sa.create_engine(server.url(_TEMPLATE, OWNER))
            upgrade(engine)
            grant_app_role(engine, APP)
            engine.dispose()
        return self.pg

    def redis_server(self) -> RedisServer:
        if self.redis is None:
            server = RedisServer(Path(tempfile.mkdtemp(prefix="dd0c-redis-")))
            server.start()
            self.redis = server
        return self.redis

    def stop(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        if self.pg is not None:
            self.pg.stop()


_servers = _Servers()


def pytest_sessionfinish(session: pytest.Session) -> None:
    _servers.stop()


def new_database() -> str:
    """A fresh database cloned from the migrated template; its name."""
    name = f"dd0c_test_{next(_databases)}"
    _servers.postgres().create_database(name, template=_TEMPLATE)
    return name


def backend_overrides() -> dict[str, Any]:
    """Settings that put a runtime on the adapters of ``DD0C_TEST_BACKEND``: nothing
    for the embedded mode; a fresh PostgreSQL database, Redis and a shared Fernet key
    for the production mode."""
    if BACKEND == "embedded":
        return {}
    database = new_database()
    return {
        "database_url": _servers.postgres().url(database, APP),
        "redis_url": _servers.redis_server().url,
        "secret_key": _FERNET_KEY,
        "jwt_secret": _JWT_SECRET,
    }


@contextmanager
def unwritable_folder(folder: Path) -> Iterator[None]:
    """``folder`` and the files directly in it refuse writes while inside, as on a
    read-only mount but without one: modes 0500/0400 for a user, the immutable
    attribute for root (whom modes do not stop); skipped where neither can be had."""
    paths = [folder, *(p for p in folder.iterdir() if p.is_file())]
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode & 0o777 for p in paths}
        for path in paths:
            path.chmod(0o500 if path.is_dir() else 0o400)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    # Not SQLite's shared-memory file: mapped immutable it crashes the process
    # (SIGBUS), where on a read-only mount SQLite keeps that index in its own memory.
    paths = [p for p in paths if not p.name.endswith("-shm")]
    made = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True, check=False)
    if made.returncode != 0:
        subprocess.run(["chattr", "-i", *map(str, paths)], capture_output=True, check=False)
        pytest.skip(f"chattr +i is refused here: {made.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


def embedded_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the CLI (whose settings read the environment) at a fresh embedded data
    folder only: nothing of a database, key or public URL the machine may have set."""
    for name in (
        "DATABASE_URL",
        "DD0C_DATABASE_URL",
        "DD0C_SECRET_KEY",
        "DD0C_PUBLIC_URL",
        "GOVERNANCE_MODE",
    ):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "data"
    monkeypatch.setenv("DD0C_DATA_DIR", str(folder))
    return folder


def cli_environment(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> dict[str, Any]:
    """Point the CLI (which reads the environment) and a runtime at one database of the
    current backend; return the settings overrides for the runtime."""
    for name in (
        "DATABASE_URL",
        "DD0C_DATABASE_URL",
        "DD0C_SECRET_KEY",
        "REDIS_URL",
        "DD0C_JWT_SECRET",
        "JWT_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DD0C_DATA_DIR", str(data_dir))
    overrides = backend_overrides()
    if overrides:
        monkeypatch.setenv("DATABASE_URL", overrides["database_url"])
        monkeypatch.setenv("REDIS_URL", overrides["redis_url"])
        monkeypatch.setenv("DD0C_SECRET_KEY", overrides["secret_key"])
        monkeypatch.setenv("DD0C_JWT_SECRET", overrides["jwt_secret"])
    return overrides


@pytest.fixture(autouse=True)
def _logs_as_found() -> Iterator[None]:
    """A test that configures the logs (a level, its processors, the root logger's
    JSON handler) leaves them as it found them for the next test."""
    saved = structlog.get_config()
    root = logging.getLogger()
    level = root.level
    mine = [h for h in root.handlers if isinstance(h, logs.JsonLines)]
    yield
    structlog.configure(**saved)
    # Only the JSON handler: pytest's own come and go with each phase of the test.
    for handler in root.handlers[:]:
        if isinstance(handler, logs.JsonLines) and handler not in mine:
            root.removeHandler(handler)
    for handler in mine:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _empty_redis() -> None:
    """Each test starts with Redis empty, as it starts with a fresh database. Counters
    kept by client address (the login throttle, sign-ups) would otherwise add up over
    the whole run: every test client has the same address."""
    if _servers.redis is not None:
        _servers.redis.flush()


@pytest.fixture(scope="session")
def pg_server() -> PostgresServer:
    """One PostgreSQL cluster for the session, with a migrated template database."""
    return _servers.postgres()


@pytest.fixture
def pg_database(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, migrated database for one test; its name."""
    name = new_database()
    yield name
    pg_server.drop_database(name)


@pytest.fixture(scope="session")
def redis_server() -> RedisServer:
    return _servers.redis_server()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    base = Settings(data_dir=tmp_path / "data", worker_poll_seconds=0.02, secret_key="")
    return base.model_copy(update=backend_overrides())


def clock_at_test_start(now: Callable[[], datetime]) -> Any:
    """An autouse fixture for a module whose helpers read a module-level ``NOW``: it
    is set to ``now()`` as each test starts, not when the module was collected. The
    server's day boundaries (rollups, retention, "this week") are its clock's, and a
    suite that crossed midnight in between compared them with yesterday's."""

    @pytest.fixture(autouse=True)
    def fixture(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(request.module, "NOW", now())

    return fixture


@contextmanager
def tenant_connection(settings: Settings, tenant_id: str) -> Iterator[sa.Connection]:
    """Hand-written SQL on the runtime's database, as the application, scoped to one
    tenant (row-level security shows nothing else on PostgreSQL)."""
    engine = sa.create_engine(normalise_database_url(settings.resolved_database_url))
    try:
        with engine.begin() as conn:
            scope(conn, tenant_id)
            yield conn
    finally:
        engine.dispose()


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
