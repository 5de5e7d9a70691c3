"""A role of a new version started on a database that was not migrated yet (a
Kubernetes rollout starts the new pods beside the migration job; a bare-metal upgrade
restarted in the wrong order) is not ready, and /readyz says which migration is
missing and what to run; once ``migrate`` has run it is ready, without a restart.
SQLite (a data folder restored from an older backup) and PostgreSQL."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from cryptography.fernet import Fernet

from dd0c_alert.app import build_runtime, migrate
from dd0c_alert.config import Settings
from dd0c_alert.storage.engine import normalise_database_url
from dd0c_alert.storage.migrate import alembic_config, grant_app_role
from dd0c_alert.web.app import create_app
from servers import APP, OWNER, PostgresServer

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

OLD = "0008"  # a release's schema before analytics, search and the processed-event inbox


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """A role's settings on a database at ``OLD`` (on PostgreSQL without the owner's
    URL: a role that has it migrates on start)."""
    if request.param == "sqlite":
        data = tmp_path / "data"
        data.mkdir()
        url = f"sqlite:///{data / 'dd0c.db'}"
        settings = Settings(data_dir=data, database_url=url, secret_key="")
        owner = url
    else:
        pg: PostgresServer = request.getfixturevalue("pg_server")
        pg.drop_database("dd0c_old_schema")
        pg.create_database("dd0c_old_schema")
        owner = pg.url("dd0c_old_schema", OWNER)
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=pg.url("dd0c_old_schema", APP),
            secret_key=Fernet.generate_key().decode(),
            jwt_secret=Fernet.generate_key().decode(),
        )
    engine = sa.create_engine(normalise_database_url(owner))
    with engine.connect() as conn:
        command.upgrade(alembic_config(conn), OLD)
        conn.commit()
    grant_app_role(engine, APP)
    engine.dispose()
    yield settings
    if request.param == "postgresql":
        request.getfixturevalue("pg_server").drop_database("dd0c_old_schema")


def test_a_role_on_an_unmigrated_schema_is_not_ready_until_migrate(old_database: Settings) -> None:
    runtime = build_runtime(old_database, roles=frozenset({"ingest"}), migrate_schema=False)
    with TestClient(create_app(runtime)) as client:
        answer = client.get("/readyz")
        assert answer.status_code == 503, answer.text
        database = answer.json()["checks"]["database"]
        assert f"schema at {OLD}, this version needs" in database
        assert "run dd0c-alert migrate" in database
        owner = old_database.database_url.replace(f"//{APP}@", f"//{OWNER}@")
        migrate(old_database.model_copy(update={"migration_database_url": owner}))
        answer = client.get("/readyz")
        assert answer.status_code == 200, answer.text
        assert answer.json()["checks"]["database"] == "ok"
