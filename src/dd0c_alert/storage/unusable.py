"""Storage that cannot be used, said in one line for the operator.

A damaged SQLite file or a data folder that cannot be written is a condition to fix
(restore a backup, free the disk, mount the folder writable), not a bug to report:
every command printed 80-440 lines of traceback for it, ending in SQLite's own words.
"""

from __future__ import annotations

import errno
import sqlite3

import sqlalchemy as sa

#: SQLite's names for a file that is not (or no longer) a whole database.
_DAMAGED = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})
#: SQLite's names for a database it cannot write or open for writing.
_UNWRITABLE = frozenset({"SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_FULL"})
#: File-system errors that mean the folder or its disk refuses the write.
_REFUSED = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT})


def unusable_storage(exc: BaseException) -> str | None:
    """What the operator must fix, or None when ``exc`` is not about the storage."""
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
