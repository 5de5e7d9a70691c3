"""Raw payload archive in a local folder (the embedded default)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path


class LocalArchive:
    def __init__(self, root: Path) -> None:
        self._root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self._root / key).resolve()
        if not path.is_relative_to(self._root):
            raise ValueError(f"archive key escapes the archive: {key!r}")
        return path

    def put(self, key: str, data: bytes, *, durable: bool = False) -> None:
        """Write atomically; ``durable`` also fsyncs, for bodies whose only copy this is."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        if durable:
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).exists()


def archive_key(tenant_id: str, event_id: str, received_at: float) -> str:
    """Keys group payloads by tenant and day, so retention can drop whole folders."""
    day = datetime.fromtimestamp(received_at, UTC).strftime("%Y/%m/%d")
    return f"{tenant_id}/{day}/{event_id}.json"
