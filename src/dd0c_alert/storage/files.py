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
