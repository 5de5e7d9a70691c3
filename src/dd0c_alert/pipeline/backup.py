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

import contextlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dd0c_alert.local_server import LOCK, NOTE, FolderInUse, served
from dd0c_alert.storage.archive import in_flight
from dd0c_alert.storage.files import private_dir
from dd0c_alert.storage.sqlite_queue import queue_file

DATABASE = "dd0c.db"
QUEUE = queue_file(Path(DATABASE)).name
ARCHIVE = "archive"
#: The folder a restore copies into (inside the data folder, removed when it ends).
WORK_PREFIX = ".restore-"


class NotRestorable(ValueError):
    """A source that ``restore`` must not read: the data folder itself, or a live one."""


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
    """Put a backup in place of the data folder's database, queue, archive and keys.
    The service must be stopped. An existing installation is replaced only with
    ``force``. The databases are read through SQLite, not copied as files: a source
    with a write-ahead log (a stopped or crashed server's folder) keeps its latest
    commits there, which a copy of ``dd0c.db`` alone lost.

    The backup is first copied whole into a folder inside the data folder (the same
    file system, so renames can swap it in) and synced to disk; only then are the
    pieces swapped in by renames, and the old ones removed last. The old installation
    was deleted first: a full disk or a Ctrl-C part-way left neither the old
    installation nor the new one. Any failure before the swap completes raises
    RestoreFailed with the data folder as it was."""
    if not (source / DATABASE).exists():
        raise FileNotFoundError(f"{source} holds no {DATABASE}: not a dd0c-alert backup")
    _check_source(source, data_dir)
    present = [data_dir / name for name in (DATABASE, QUEUE, ARCHIVE) if (data_dir / name).exists()]
    if present and not force:
        raise FileExistsError(
            f"{data_dir} already holds an installation: stop the service and pass --force "
            "to replace it"
        )
    _check_no_interrupted_restore(data_dir)
    private_dir(data_dir)
    step = _Step(data_dir)
    with step("making a folder for the copy"):
        work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=data_dir))
    swapped = False
    try:
        staged = work / "new"
        copied = _stage(source, staged, step)
        with step("putting the copy in place"):
            _swap(staged, work / "old", data_dir)
        swapped = True
    except KeyboardInterrupt:
        raise _unchanged(step.current, "interrupted", data_dir) from None
    finally:
        if swapped or not _holds_anything(work / "old"):  # else the old pieces are there
            shutil.rmtree(work, ignore_errors=True)
    return copied


class RestoreFailed(Exception):
    """A restore that stopped part-way (a full disk, a permission, Ctrl-C)."""


def _unchanged(step: str, reason: str, data_dir: Path) -> RestoreFailed:
    return RestoreFailed(
        f"restore failed while {step}: {reason}; nothing was changed: {data_dir} still "
        "holds the installation it held before (a restore needs room for the whole "
        "backup beside it)"
    )


class _Step:
    """What the restore is doing now, for the message when it fails: a full disk said
    ``cannot write <a file of the backup>``, as if the backup were at fault."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.current = "starting"

    @contextlib.contextmanager
    def __call__(self, what: str) -> Iterator[None]:
        self.current = what
        try:
            yield
        except (OSError, sqlite3.Error) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise _unchanged(what, reason, self.data_dir) from exc


def _holds_anything(folder: Path) -> bool:
    return folder.exists() and any(folder.iterdir())


def _check_no_interrupted_restore(data_dir: Path) -> None:
    """A restore killed (SIGKILL, power loss) while swapping leaves its folder with the
    old pieces under ``old``: refuse to go on until the operator has looked."""
    if not data_dir.exists():
        return
    left = next(data_dir.glob(f"{WORK_PREFIX}*"), None)
    if left is not None:
        raise NotRestorable(
            f"{left} was left by a restore that did not finish: what its old/ folder "
            f"holds are pieces of the installation from before it (move them back into "
            f"{data_dir} where missing), new/ an unfinished copy; remove the folder, then "
            "restore again; nothing was changed"
        )


def _stage(source: Path, staged: Path, step: _Step) -> Copied:
    """Copy the backup's pieces into ``staged`` with their modes (0600 files, 0700
    folders) and sync them to disk, so the swap puts only whole files in place."""
    private_dir(staged)
    for name in (QUEUE, DATABASE):
        if (source / name).exists():  # a backup from before the queue had its own file
            with step(f"copying {name}"):
                _copy_database(source / name, staged / name)
    files = 0
    if (source / ARCHIVE).exists():
        with step(f"copying {ARCHIVE}/"):
            files = _copy_tree(source / ARCHIVE, staged / ARCHIVE)
    with step("copying the keys"):
        for key in _keys(source):
            shutil.copy2(key, staged / key.name)
            (staged / key.name).chmod(0o600)
    with step("syncing the copy to disk"):
        _sync_tree(staged)
    return Copied((staged / DATABASE).stat().st_size, files)


def _swap(staged: Path, old: Path, data_dir: Path) -> None:
    """Move the installation's pieces into ``old`` and the staged ones into their
    place, by renames; on any failure (or Ctrl-C) undo them in reverse. The old
    databases' write-ahead logs go with them: a log left beside the new file would be
    replayed into it."""
    old.mkdir(mode=0o700)
    replaced = [f"{name}{end}" for name in (DATABASE, QUEUE) for end in ("", "-wal", "-shm")]
    replaced += [ARCHIVE, *(p.name for p in staged.iterdir())]
    done: list[tuple[Path, Path]] = []
    try:
        for name in dict.fromkeys(replaced):
            if (data_dir / name).exists() or (data_dir / name).is_symlink():
                _move(data_dir / name, old / name, done)
        for piece in sorted(staged.iterdir()):
            _move(piece, data_dir / piece.name, done)
        _fsync(data_dir)
    except BaseException:
        _undo(done, old)
        raise


def _undo(done: list[tuple[Path, Path]], old: Path) -> None:
    """Rename back what ``_swap`` moved. Should that fail too, say where the old
    installation's pieces are instead of claiming nothing changed."""
    try:
        for origin, moved in reversed(done):
            moved.rename(origin)
    except OSError as exc:
        raise RestoreFailed(
            f"restore failed while putting the copy in place and could not undo it "
            f"({exc.strerror}): the installation from before is in {old}; move its files "
            f"back into {old.parent.parent}"
        ) from exc


def _move(origin: Path, target: Path, done: list[tuple[Path, Path]]) -> None:
    origin.rename(target)
    done.append((origin, target))


def _sync_tree(folder: Path) -> None:
    """fsync every file and folder under ``folder`` (and itself)."""
    for path in folder.rglob("*"):
        _fsync(path)
    _fsync(folder)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_source(source: Path, data_dir: Path) -> None:
    """Refuse, before anything is deleted, a source that is the data folder itself (its
    files were deleted, then copied from nowhere: the installation was gone) or the
    folder of a running server (the arguments swapped: a live folder is backed up with
    ``backup``, and ``--force`` then replaced the backup)."""
    if data_dir.exists() and source.samefile(data_dir):
        raise NotRestorable(
            f"{source} is DD0C_DATA_DIR itself: restore takes a folder made by "
            "`dd0c-alert backup`; nothing was changed"
        )
    if served(source):
        raise NotRestorable(
            f"{FolderInUse(source)}: {source} is a live data folder, not a backup (are the "
            "folders swapped?); back it up with `dd0c-alert backup` and restore that; "
            "nothing was changed"
        )


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
