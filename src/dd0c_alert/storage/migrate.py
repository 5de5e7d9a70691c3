"""Schema migrations (Alembic). Migrations are additive only: there is no downgrade."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: sa.Engine) -> None:
    """Bring the database to the newest schema; safe to run on every start."""
    with engine.connect() as connection:
        command.upgrade(alembic_config(connection), "head")
        connection.commit()


def grant_app_role(engine: sa.Engine, role: str) -> None:
    """Let the application role use what the migrations created (PostgreSQL only).

    The role is given data rights only: it owns nothing, so it can neither alter
    tables nor turn row-level security off. Run after every upgrade so tables added
    by later migrations are covered too.
    """
    if engine.dialect.name != "postgresql":
        return
    quoted = engine.dialect.identifier_preparer.quote(role)
    with engine.begin() as conn:
        for schema in conn.execute(
            sa.text("SELECT nspname FROM pg_namespace WHERE nspname IN ('public', 'pgmq')")
        ).scalars():
            conn.execute(sa.text(f"GRANT USAGE ON SCHEMA {schema} TO {quoted}"))
            conn.execute(
                sa.text(
                    f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema}"
                    f" TO {quoted}"
                )
            )
            conn.execute(
                sa.text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {quoted}")
            )
            conn.execute(sa.text(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO {quoted}"))
