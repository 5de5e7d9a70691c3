"""Where the embedded server of this data folder listens. ``make run PORT=9000`` serves
on a port the default ``DD0C_PUBLIC_URL`` does not name; admin commands read this note
to warn before handing out webhook URLs that point at nothing, and ``demo`` to post to
the running server without being told its port."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

NOTE = "listening.json"
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"}  # noqa: S104


@contextlib.contextmanager
def recorded(data_dir: Path, host: str, port: int) -> Iterator[None]:
    """Leave the note while the server runs. Uvicorn re-raises SIGTERM once it has shut
    down, so a stopped server usually leaves its note behind: ``listening_url`` ignores
    a note whose process is gone."""
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
