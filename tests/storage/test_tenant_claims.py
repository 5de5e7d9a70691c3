"""Several workers on one PostgreSQL: the worker transaction claims its tenants, so two
workers never correlate one tenant from the same stale view, while different tenants
proceed side by side."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from test_store_contract import T0, alert

from dd0c_alert.app import open_store
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.persist import persist
from dd0c_alert.storage.ports import AlertFilter, BatchOutcome, IncidentFilter
from dd0c_alert.storage.sql import SqlStore
from servers import APP, OWNER, PostgresServer

GUARD = 30.0  # seconds before a wait that should end counts as a hang


@pytest.fixture
def pg_store(pg_server: PostgresServer, pg_database: str, tmp_path: Path) -> Iterator[SqlStore]:
    settings = Settings(
        data_dir=tmp_path / "data",
        secret_key=Fernet.generate_key().decode(),
        database_url=pg_server.url(pg_database, APP),
    )
    yield open_store(settings, migrate_schema=False)


def wait_for_lock_waiters(server: PostgresServer, database: str, count: int) -> None:
    deadline = time.monotonic() + GUARD
    with server.connect(database, OWNER) as conn:
        while True:
            (waiting,) = conn.execute(  # type: ignore[misc]
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()
            if waiting == count:
                return
            assert time.monotonic() < deadline, "no transaction waits for the tenant claim"
            time.sleep(0.01)


def test_a_second_worker_waits_for_the_tenant_claim(
    pg_server: PostgresServer, pg_database: str, pg_store: SqlStore
) -> None:
    acme, globex = pg_store.create_tenant("acme").id, pg_store.create_tenant("globex").id
    entered = threading.Event()

    def second_worker() -> None:
        with pg_store.transaction([acme]):
            entered.set()

    thread = threading.Thread(target=second_worker)
    with pg_store.transaction([globex, acme]):
        thread.start()
        wait_for_lock_waiters(pg_server, pg_database, 1)
        assert not entered.is_set()
    thread.join(GUARD)
    assert entered.is_set()


def test_workers_of_different_tenants_do_not_wait(pg_store: SqlStore) -> None:
    acme, globex = pg_store.create_tenant("acme").id, pg_store.create_tenant("globex").id
    entered = threading.Event()

    def other_worker() -> None:
        with pg_store.transaction([globex]):
            entered.set()

    with pg_store.transaction([acme]):
        thread = threading.Thread(target=other_worker)
        thread.start()
        thread.join(GUARD)
        assert entered.is_set()


def test_concurrent_batches_of_one_tenant_fold_as_if_sequential(pg_store: SqlStore) -> None:
    """Without the claim, two workers would both see no firing alert and both insert
    one (a unique violation), or overwrite each other's repeat counts."""
    tenant = pg_store.create_tenant("acme").id
    batches, workers = 10, 3
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(batches):
                moment = T0 + timedelta(seconds=n * batches + i)
                persist(pg_store, BatchOutcome(alerts=[alert(tenant, started=moment)]))
        except BaseException as exc:  # reported below, with the thread's traceback
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GUARD)
    assert errors == []
    [stored] = pg_store.list_alerts(tenant, AlertFilter(), 10, None).items
    assert stored["repeat_count"] == batches * workers
    [incident] = pg_store.list_incidents(tenant, IncidentFilter(), 10, None).items
    assert incident["alert_count"] == 1
