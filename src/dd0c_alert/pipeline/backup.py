"""Backup and restore of an embedded installation (SQLite and the archive folder).

A backup is consistent while the service runs: the ingest queue's file and then the
database are copied with SQLite's online backup API (each a snapshot of one moment,
taken while writers go on), and the archive folder after them. An event processed
between the two snapshots is in both copies; the database copy's inbox
(``processed_events``, whose rows stay a minute after the queue lets go) makes the
restored worker drop it instead of storing it twice. The worker writes an event's
raw payload to the archive before the transaction that stores its alerts, so every
payload the database copy refers to was already on disk when the folder copy began.
The keys in the data folder go along (the secret key, without which the integration
secrets in the copy cannot be read, and the session signing key).

PostgreSQL installations back up with ``pg_dump`` and their object store's own
tools (docs/production.md).
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from dd0c_alert.local_server import LOCK, NOTE
from dd0c_alert.storage.archive import in_flight
from dd0c_alert.storage.files import private_dir
from dd0c_alert.storage.sqlite_queue import queue_file

DATABASE = "dd0c.db"
QUEUE = queue_file(Path(DATABASE)).name
ARCHIVE = "archive"


@dataclass(frozen=True, slots=True)
class Copied:
    database_bytes: int
    archive_files: int


#: Files that describe the running server, not the installation: a restored
#: listening.json named a server of the backup's time in place of the live one.
_OF_THE_PROCESS = frozenset({NOTE, LOCK})


def _keys(folder: Path) -> list[Path]:
    """The data folder's own files besides the database (keys)."""
    if not folder.exists():
        return []
    return [
        p
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith((DATABASE, QUEUE))
        and p.name not in _OF_THE_PROCESS
    ]


def backup(database: Path, archive: Path, data_dir: Path, target: Path) -> Copied:
    """Copy a live installation into ``target`` (created; must be empty)."""
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} is not empty: back up into a new folder")
    private_dir(target)
    queue = queue_file(database)
    if queue.exists():
        _copy_database(queue, target / QUEUE)
    _copy_database(database, target / DATABASE)
    files = _copy_tree(archive, target / ARCHIVE) if archive.exists() else 0
    for key in _keys(data_dir):
        shutil.copy2(key, target / key.name)
        (target / key.name).chmod(0o600)
    return Copied((target / DATABASE).stat().st_size, files)


def _copy_database(database: Path, target: Path) -> None:
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        with copy:
            source.backup(copy, pages=4096)
    finally:
        source.close()
        copy.close()
    target.chmod(0o600)


def restore(source: Path, data_dir: Path, *, force: bool = False) -> Copied:
    """Put a backup in place of the data folder's database, archive and key. The
    service must be stopped. An existing installation is replaced only with
    ``force``."""
    if not (source / DATABASE).exists():
        raise FileNotFoundError(f"{source} holds no {DATABASE}: not a dd0c-alert backup")
    present = [data_dir / name for name in (DATABASE, QUEUE, ARCHIVE) if (data_dir / name).exists()]
    if present and not force:
        raise FileExistsError(
            f"{data_dir} already holds an installation: stop the service and pass --force "
            "to replace it"
        )
    private_dir(data_dir)
    for path in present:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    for name in (DATABASE, QUEUE):
        for stale in ("-wal", "-shm"):
            (data_dir / f"{name}{stale}").unlink(missing_ok=True)
        if (source / name).exists():  # a backup from before the queue had its own file
            shutil.copy2(source / name, data_dir / name)
            (data_dir / name).chmod(0o600)
    files = 0
    if (source / ARCHIVE).exists():
        files = _copy_tree(source / ARCHIVE, data_dir / ARCHIVE)
    for key in _keys(source):
        shutil.copy2(key, data_dir / key.name)
        (data_dir / key.name).chmod(0o600)
    return Copied((data_dir / DATABASE).stat().st_size, files)


def _copy_tree(source: Path, target: Path) -> int:
    """Files are copied as found; one removed meanwhile (retention) is skipped, and so
    are writes still in flight."""
    copied = 0
    for path in sorted(source.rglob("*")):
        if in_flight(path):
            continue
        relative = target / path.relative_to(source)
        if path.is_dir():
            private_dir(relative)
            continue
        private_dir(relative.parent)
        try:
            shutil.copy2(path, relative)
        except FileNotFoundError:
            continue
        relative.chmod(0o600)
        copied += 1
    return copied
