"""Files of the data folder are the operator's alone: folders 0700, files 0600
(the SQLite database and its WAL, the secret key, raw payloads in the archive),
whatever the process umask."""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents, each 0700. Existing folders are left
    as the operator made them."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(folder, DIR_MODE)


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists, so that a library that
    opens it next (SQLite, which gives its WAL the same mode) keeps that mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.close(fd)


#: The file a write probe makes and removes at once.
_PROBE = ".write-probe"


def write_refused(folder: Path) -> OSError | None:
    """Why ``folder`` (created if missing) refuses a new file, or None when it takes
    one. Asked before anything else is written, so a read-only mount or a folder of
    another owner is named at once, not after a server announced it listens."""
    probe = folder / _PROBE
    try:
        private_dir(folder)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
            probe.unlink(missing_ok=True)  # a write cut short by a full disk left it
    except OSError as exc:
        return exc
    return None
