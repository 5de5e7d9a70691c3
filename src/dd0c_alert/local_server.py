"""Where the embedded server of this data folder listens. ``make run PORT=9000`` serves
on a port the default ``DD0C_PUBLIC_URL`` does not name; admin commands read this note
to warn before handing out webhook URLs that point at nothing, and ``demo`` to post to
the running server without being told its port."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from dd0c_alert.storage.files import FILE_MODE, private_dir

NOTE = "listening.json"
#: Locked (flock) by the server of the data folder for as long as it runs, and by
#: ``restore`` while it replaces the files: the kernel drops the lock when its process
#: ends, however it ends, so a crashed server's leftovers never block a restart.
LOCK = "serve.lock"
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"}  # noqa: S104


class FolderInUse(Exception):
    """Another process serves (or restores) this data folder."""

    def __init__(self, data_dir: Path) -> None:
        try:
            note = json.loads((data_dir / NOTE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            note = {}
        holder = note if isinstance(note, dict) else {}
        where = f" on {holder['url']}" if isinstance(holder.get("url"), str) else ""
        pid = f" (pid {holder['pid']})" if isinstance(holder.get("pid"), int) else ""
        super().__init__(f"a dd0c-alert server of {data_dir} is running{where}{pid}")


@contextlib.contextmanager
def exclusive(data_dir: Path) -> Iterator[None]:
    """Hold the data folder's lock, or raise FolderInUse. A second server on the same
    folder released the first one's queue leases at start and took over its note; a
    restore under a running server left it writing to deleted files. A folder where
    no lock file can be made (read-only) is not locked: it must not stop the server."""
    try:
        private_dir(data_dir)
        fd = os.open(data_dir / LOCK, os.O_RDWR | os.O_CREAT, FILE_MODE)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderInUse(data_dir) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def served(folder: Path) -> bool:
    """Whether a server holds ``folder``'s lock now; creates nothing there, so a backup
    folder asked about stays as it was."""
    try:
        fd = os.open(folder / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@contextlib.contextmanager
def recorded(data_dir: Path, host: str, port: int) -> Iterator[None]:
    """Hold the folder's lock (FolderInUse if a server runs) and leave the note while
    the server runs. A server killed (SIGKILL, a crash) leaves its note behind:
    ``listening_url`` ignores a note whose process is gone."""
    with exclusive(data_dir), _noted(data_dir, host, port):
        yield


@contextlib.contextmanager
def _noted(data_dir: Path, host: str, port: int) -> Iterator[None]:
    note = data_dir / NOTE
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    if ":" in shown_host:
        shown_host = f"[{shown_host}]"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        note.write_text(
            json.dumps({"url": f"http://{shown_host}:{port}", "host": host, "pid": os.getpid()}),
            encoding="utf-8",
        )
    except OSError:  # a read-only data folder must not stop the server
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if json.loads(note.read_text(encoding="utf-8")).get("pid") == os.getpid():
                note.unlink()


def listening_url(data_dir: Path) -> str | None:
    """The URL the live embedded server of ``data_dir`` answers on, if one runs."""
    try:
        note = json.loads((data_dir / NOTE).read_text(encoding="utf-8"))
        os.kill(int(note["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    url = note.get("url")
    return url if isinstance(url, str) else None


def _port(url: str) -> int | None:
    parts = urlsplit(url)
    try:
        return parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None


def public_url_warning(public_url: str, data_dir: Path) -> str | None:
    """Why the webhook URLs built from ``public_url`` would miss the local server, or
    None. Only a public URL naming this machine directly is compared: behind a proxy
    or load balancer the ports differ on purpose."""
    served = listening_url(data_dir)
    if served is None:
        return None
    host = (urlsplit(public_url).hostname or "").lower()
    served_host = (urlsplit(served).hostname or "").lower()
    if host not in _LOOPBACK and host != served_host:
        return None
    if _port(public_url) == _port(served):
        return None
    return (
        f"DD0C_PUBLIC_URL is {public_url} but the server of this data folder listens on "
        f"{served}: set DD0C_PUBLIC_URL={served} (or the address your tools reach it at)"
    )
