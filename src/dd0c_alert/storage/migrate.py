"""Schema migrations (Alembic). Migrations are additive only: there is no downgrade."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


class SchemaTooNew(Exception):
    """The database was migrated by a newer dd0c-alert than this one."""

    def __init__(self, current: str, head: str) -> None:
        self.what = (
            f"the database's schema is at {current}, newer than this dd0c-alert knows "
            f"(up to {head}): a newer version has used it"
        )
        self.fix = (
            "run that version again (upgrade dd0c-alert), or restore a backup taken with "
            "this one; migrations have no downgrade"
        )
        super().__init__(f"{self.what}: {self.fix}")


def schema_revisions(connection: sa.Connection) -> tuple[str | None, str, bool]:
    """The database's revision, this version's head, and whether this version knows
    the database's revision (False: a newer version migrated it)."""
    current = MigrationContext.configure(connection).get_current_revision()
    head, known = _revisions()
    return current, head, current is None or current in known


@cache
def _revisions() -> tuple[str, frozenset[str]]:
    """This version's head and every revision it knows (read once: the scripts are
    files of this installation, parsed on first use)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    assert head is not None
    return head, frozenset(rev.revision for rev in script.walk_revisions())


def schema_behind(conn: sa.Connection) -> str | None:
    """Why this version cannot run on the database's schema, or None when it can: the
    schema lacks a migration this version needs (``migrate`` has not run yet). A
    schema at a revision this version does not know was migrated by a newer release,
    whose migrations only add: this version runs on it (a rolling upgrade's old
    processes, or a rollback)."""
    current = MigrationContext.configure(conn).get_current_revision()
    head, known = _revisions()
    if current == head or (current is not None and current not in known):
        return None
    if current is None and conn.dialect.name == "sqlite":
        # serve migrates SQLite before it serves: no schema at all means the file was
        # deleted or replaced under it, and `migrate` would make a new, empty one.
        return (
            "the SQLite database holds no schema: dd0c.db was deleted or replaced under "
            "the running server; stop it and restore the folder from a backup "
            "(dd0c-alert restore BACKUP --force)"
        )
    return f"schema at {current or 'nothing'}, this version needs {head}: run dd0c-alert migrate"


def upgrade(engine: sa.Engine) -> None:
    """Bring the database to the newest schema; safe to run on every start. A schema
    from a newer version raises SchemaTooNew: Alembic's own error for it ("Can't
    locate revision") ended every command, ``serve`` included, in a traceback."""
    with engine.connect() as connection:  # its own: Alembic wants no transaction begun
        current, head, known = schema_revisions(connection)
    if not known:
        raise SchemaTooNew(str(current), head)
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
