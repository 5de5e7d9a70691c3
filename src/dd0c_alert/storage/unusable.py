"""Storage that cannot be used, said in one line for the operator.

A damaged SQLite file or a data folder that cannot be written is a condition to fix
(restore a backup, free the disk, mount the folder writable), not a bug to report:
every command printed 80-440 lines of traceback for it, ending in SQLite's own words.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import sqlalchemy as sa
from cryptography.fernet import InvalidToken

from dd0c_alert.storage import schema as t
from dd0c_alert.storage.migrate import SchemaTooNew

#: SQLite's names for a file that is not (or no longer) a whole database.
_DAMAGED = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})
#: SQLite's names for a database it cannot write or open for writing.
_UNWRITABLE = frozenset({"SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_FULL"})
#: File-system errors that mean the folder or its disk refuses the write.
_REFUSED = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT})


#: Files of a data folder in use (besides the database): the queue and the keys.
_IN_USE = ("secret.key", "jwt.key")


class LostDatabase(Exception):
    """The SQLite database is missing or empty in a folder that was in use."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(f"{what}: {fix}")
        self.what = what
        self.fix = fix


def check_database_present(database: Path, queue: Path, data_dir: Path) -> None:
    """Raise LostDatabase when ``database`` is missing or zero bytes although the
    folder was in use (its queue file or generated keys are there).

    SQLite creates a missing file and the schema is then migrated onto it, so a
    database lost to a bad copy, a volume mounted without it or a truncation started
    as a new empty one: every tenant, incident and integration gone without a word,
    and secrets encrypted under the old key unreadable. A new folder still starts."""
    if _has_tables(database):
        return
    evidence = [p.name for p in (queue, *(data_dir / n for n in _IN_USE)) if _has_data(p)]
    if not evidence:
        return
    state = "is missing"
    if database.exists():
        state = "is empty (0 bytes)" if not _has_data(database) else "holds no tables"
    raise LostDatabase(
        f"the database {database} {state}, but {data_dir} was in use (it holds "
        f"{', '.join(evidence)})",
        "refusing to start a new, empty one; restore the folder from a backup "
        "(`dd0c-alert restore BACKUP --force`, docs/operations.md), or, to start afresh "
        "on purpose, move those files aside",
    )


class LostKey(Exception):
    """The generated secret key is gone while the database holds what it encrypted."""


def check_key_present(key_file: Path, engine: sa.Engine) -> None:
    """Raise LostKey when ``key_file`` is missing but the database holds secrets
    encrypted with it (integrations, Slack settings, routes' webhook secrets).

    A missing key file is made anew on first use, which suits a new folder; in a folder
    in use the new key cannot read a single stored secret, and every webhook of every
    integration was refused from then on, while ``doctor`` found nothing wrong."""
    if key_file.exists():
        return
    names = set(sa.inspect(engine).get_table_names())
    with engine.connect() as conn:
        held = [
            table.name
            for table in (t.integrations, t.slack_settings)
            if table.name in names
            and conn.execute(sa.select(1).select_from(table).limit(1)).first()
        ]
        if t.routes.name in names:
            hooks = sa.cast(t.routes.c.definition, sa.Text).contains("secret_encrypted")
            if conn.execute(sa.select(1).where(hooks).limit(1)).first():
                held.append(t.routes.name)
    if held:
        raise LostKey(
            f"{key_file} is missing, but the database holds secrets encrypted with it "
            f"({', '.join(held)}): put back the secret.key of a backup of this folder, or "
            "set DD0C_SECRET_KEY to it (docs/operations.md#backups); a new key could not "
            "read them"
        )


def _has_tables(database: Path) -> bool:
    """Whether the file (with its write-ahead log) holds a schema. A database deleted
    under a running server is made anew by its next connection: a 4 KiB file without
    a table, which was taken for an installation in use. Unreadable counts as holding
    tables: the damaged-file check says what is wrong with it."""
    if not _has_data(database):
        # Until its first checkpoint a new database can live in its WAL alone.
        return _has_data(database.with_name(database.name + "-wal"))
    try:
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    except sqlite3.Error:
        return True
    try:
        return bool(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
    except sqlite3.Error:
        return True
    finally:
        conn.close()


def _has_data(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def refused_write_fix(exc: OSError) -> str:
    """What to do about a folder that refuses a write: a full disk was told to fix the
    folder's permissions."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (
            "free space on its disk (or raise the user's quota): until then webhooks are "
            "answered 503 and nothing new is stored"
        )
    if exc.errno == errno.EROFS:
        return "mount the folder read-write"
    return "give the service's user write access to the data folder (DD0C_DATA_DIR)"


def unusable_storage(exc: BaseException) -> str | None:
    """What the operator must fix, or None when ``exc`` is not about the storage."""
    if isinstance(exc, (LostDatabase, LostKey, SchemaTooNew)):
        return str(exc)
    if isinstance(exc, InvalidToken):
        # A wrong DD0C_SECRET_KEY, or a secret.key from another folder. Fernet's error
        # carries no words, so its traceback said nothing.
        return (
            "secrets stored in the database (integrations, Slack, webhook routes) cannot "
            "be decrypted with this key (DD0C_SECRET_KEY, else DD0C_DATA_DIR/secret.key): "
            "use the key they were stored with, e.g. the secret.key of your backup "
            "(docs/operations.md#backups)"
        )
    cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    if isinstance(cause, sqlite3.Error):
        name = getattr(cause, "sqlite_errorname", "")
        if name in _DAMAGED:
            return (
                f"the SQLite database in DD0C_DATA_DIR (dd0c.db or dd0c-queue.db) is "
                f"damaged ({cause}): restore the folder from a backup (`dd0c-alert restore`, "
                "docs/operations.md) or move the damaged file aside; nothing was changed"
            )
        if name in _UNWRITABLE:
            return (
                f"the SQLite database in DD0C_DATA_DIR cannot be written ({cause}): the "
                "folder must be writable by this user, on a disk with free space"
            )
        return None
    if isinstance(cause, OSError) and cause.errno in _REFUSED and cause.filename:
        return (
            f"cannot write {cause.filename}: {cause.strerror}; DD0C_DATA_DIR must be a "
            "writable folder, on a disk with free space"
        )
    return None
