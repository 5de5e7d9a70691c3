"""The production roles while PostgreSQL is away, as real processes behind a real TCP
link the test breaks (tests/stand_ins/db_link.py): they answer within a bound and say
why, log a lasting failure once rather than at every poll, and recover by themselves
once the database answers again. Only the production mode has a database across a
network; the embedded mode's SQLite file has no link to break."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from conftest import new_database
from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.storage.engine import postgres_connect_args
from servers import APP, CLI, PostgresServer, free_port
from stand_ins.db_link import DatabaseLink

SECRET = "outage-webhook-secret"
BODY = json.dumps(
    {
        "version": "4",
        "status": "firing",
        "receiver": "dd0c",
        "groupLabels": {},
        "commonLabels": {"alertname": "Outage", "service": "db"},
        "commonAnnotations": {},
        "externalURL": "http://am",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Outage", "service": "db", "severity": "critical"},
                "annotations": {},
                "startsAt": "2026-12-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": "outage",
            }
        ],
    }
).encode()


@pytest.fixture
def database(pg_server: PostgresServer) -> Iterator[str]:
    name = new_database()
    yield name
    pg_server.drop_database(name)


@pytest.fixture
def link(pg_server: PostgresServer) -> Iterator[DatabaseLink]:
    with DatabaseLink(pg_server.port) as relay:
        yield relay


@pytest.fixture
def environment(database: str, link: DatabaseLink, tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DD0C_", "AWS_"))}
    return {
        **base,
        "DATABASE_URL": f"postgresql://{APP}@127.0.0.1:{link.port}/{database}",
        "DD0C_SECRET_KEY": Fernet.generate_key().decode(),
        "DD0C_JWT_SECRET": Fernet.generate_key().decode(),
        "DD0C_DATA_DIR": str(tmp_path / "data"),
        "DD0C_LOG_LEVEL": "info",
    }


class Role:
    def __init__(self, role: str, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [str(CLI), role, "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def get(
        self, path: str, headers: dict[str, str] | None = None, timeout: float = 30
    ) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", headers=headers, timeout=timeout)

    def lines(self, event: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{") and json.loads(line).get("event") == event:
                found.append(json.loads(line))
        return found

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def ready(role: Role) -> bool:
    assert role.process.poll() is None, role.log.read_text()[-3000:]
    try:
        return role.get("/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def start(environment: dict[str, str], tmp_path: Path) -> Iterator[Callable[[str], Role]]:
    started: list[Role] = []

    def run(role: str) -> Role:
        started.append(Role(role, environment, tmp_path / f"{role}.log"))
        wait_until(lambda: ready(started[-1]), 60, f"{role} /readyz")
        return started[-1]

    yield run
    for role in started:
        role.stop()


@pytest.mark.timeout(120)
def test_notify_logs_a_database_outage_once_and_recovers(
    start: Callable[[str], Role], link: DatabaseLink
) -> None:
    notify = start("notify")
    link.down()
    time.sleep(3)  # some twelve polls at the default 0.25 s
    answer = notify.get("/readyz")
    assert answer.status_code == 503
    database = answer.json()["checks"]["database"]
    assert database == "failing: OperationalError (the server closed the connection)"
    assert len(notify.lines("notifier_pass_failed")) == 1, notify.log.read_text()[-3000:]
    link.up()
    wait_until(lambda: ready(notify), 30, "notify ready again without a restart")


@pytest.mark.timeout(120)
def test_the_api_answers_503_while_the_database_is_away_and_recovers(
    pg_server: PostgresServer,
    database: str,
    environment: dict[str, str],
    start: Callable[[str], Role],
    link: DatabaseLink,
) -> None:
    """Every REST API request was answered 500 ``internal_error`` while PostgreSQL was
    down, each with a traceback in the log, though webhooks were told 503 and to try
    again: the database's state, not the request, and it passes."""
    runtime = build_runtime(
        Settings(
            database_url=pg_server.dsn(database, APP),
            secret_key=environment["DD0C_SECRET_KEY"],
            jwt_secret=environment["DD0C_JWT_SECRET"],
            data_dir=Path(environment["DD0C_DATA_DIR"]) / "admin",
        ),
        roles=frozenset(),
    )
    key = runtime.store.create_api_key(runtime.store.create_tenant("acme").id, "ops")
    runtime.store.close()
    api = start("api")
    auth = {"Authorization": f"Bearer {key}"}
    assert api.get("/v1/incidents", auth).status_code == 200
    link.down()
    for path in ("/v1/incidents", "/v1/alerts", "/v1/routes"):
        answer = api.get(path, auth)
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == "unavailable" and answer.headers["Retry-After"] == "5"
    logged = api.log.read_text()
    assert "Exception in ASGI application" not in logged, logged[-3000:]
    assert len(api.lines("database_unavailable")) == 1, logged[-3000:]
    link.up()
    wait_until(lambda: api.get("/v1/incidents", auth).status_code == 200, 30, "the API back")


def tenant_with_integration(pg_server: PostgresServer, database: str, env: dict[str, str]) -> str:
    """The tenant and its Alertmanager integration, written straight to the database."""
    runtime = build_runtime(
        Settings(
            database_url=pg_server.dsn(database, APP),
            secret_key=env["DD0C_SECRET_KEY"],
            jwt_secret=env["DD0C_JWT_SECRET"],
            data_dir=Path(env["DD0C_DATA_DIR"]) / "admin",
        ),
        roles=frozenset(),
    )
    tenant = runtime.store.create_tenant("acme")
    runtime.store.create_integration(tenant.id, "alertmanager", "am", SECRET)
    return tenant.id


@pytest.mark.timeout(180)
def test_a_database_that_stops_answering_gets_503_in_bounded_time_not_a_hang(
    pg_server: PostgresServer,
    database: str,
    environment: dict[str, str],
    start: Callable[[str], Role],
    link: DatabaseLink,
) -> None:
    """A dead host behind a proxy, or a partition, accepts the connection and never
    answers: libpq waits for ever unless told otherwise, and so did every webhook and
    every health check."""
    tenant_id = tenant_with_integration(pg_server, database, environment)
    ingest = start("ingest")
    url = f"http://127.0.0.1:{ingest.port}/v1/wh/{tenant_id}/alertmanager"
    headers = {"Authorization": f"Bearer {SECRET}"}
    assert httpx.post(url, content=BODY, headers=headers, timeout=30).status_code == 202
    link.silent()
    for path in ("webhook", "/readyz"):
        began = time.monotonic()
        if path == "webhook":
            answer = httpx.post(url, content=BODY, headers=headers, timeout=60)
        else:
            answer = ingest.get(path, timeout=60)
        assert answer.status_code == 503, answer.text
        assert time.monotonic() - began < 20, f"{path} took {time.monotonic() - began:.0f} s"
    database = answer.json()["checks"]["database"]  # the last: /readyz's
    assert database in (  # whichever bound comes first: libpq's or /readyz's own
        "failing: OperationalError (no answer within connect_timeout)",
        "failing: no answer within 5 s",
    )
    link.up()
    wait_until(lambda: ready(ingest), 30, "ingest ready again without a restart")
    assert httpx.post(url, content=BODY, headers=headers, timeout=30).status_code == 202


def test_timeouts_written_in_the_url_win() -> None:
    url = "postgresql+psycopg://app@db:5432/dd0c?connect_timeout=20&keepalives=0"
    args = postgres_connect_args(url)
    assert "connect_timeout" not in args
    assert "keepalives" not in args
    assert args["tcp_user_timeout"] == 30_000


@pytest.mark.timeout(120)
def test_readyz_answers_in_bounded_time_while_the_database_hangs(
    start: Callable[[str], Role], link: DatabaseLink
) -> None:
    """A server that hangs keeps its connections open and acknowledged: no network
    timeout fires, and /readyz waited as long as the prober did."""
    ingest = start("ingest")
    link.freeze()
    for _ in range(2):  # a later probe waits on the one in flight, no longer
        began = time.monotonic()
        answer = ingest.get("/readyz", timeout=60)
        assert time.monotonic() - began < 10, f"/readyz took {time.monotonic() - began:.0f} s"
        assert answer.status_code == 503, answer.text
        assert answer.json()["checks"]["database"] == "failing: no answer within 5 s"
    link.up()
    wait_until(lambda: ready(ingest), 30, "ingest ready again without a restart")
