"""Raw payload archive in a local folder (the embedded default).

The worker archives a batch's payloads as one segment file per tenant, not one file
per payload: creating a file costs far more than writing its bytes, and a segment
keeps every payload addressable as ``<segment key>#<offset>:<length>``.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

from .files import FILE_MODE, private_dir


def in_flight(path: Path) -> bool:
    """A write not yet renamed into place (see ``LocalArchive.put``): never read, and
    gone or renamed at any moment, so copies of a live archive leave it out."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


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
        private_dir(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
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

    def put_segment(self, key: str, payloads: list[bytes]) -> list[str]:
        """Write payloads as one file; return each one's reference."""
        self.put(key, b"".join(payloads))
        return segment_refs(key, payloads)

    def get(self, ref: str) -> bytes:
        key, _, span = ref.partition("#")
        if not span:
            return self._path(key).read_bytes()
        offset, _, length = span.partition(":")
        with open(self._path(key), "rb") as handle:
            handle.seek(int(offset))
            return handle.read(int(length))

    def purge_before(self, tenant_id: str, cutoff: datetime) -> int:
        """Remove the tenant's day folders older than ``cutoff``'s day; how many."""
        tenant = self._path(tenant_id)
        gone = 0
        for day in sorted(tenant.glob("[0-9][0-9][0-9][0-9]/[0-9][0-9]/[0-9][0-9]")):
            if archive_day(str(day.relative_to(tenant))) < cutoff.date():
                shutil.rmtree(day)
                gone += 1
        return gone

    def keys(self, tenant_id: str) -> list[str]:
        folder = self._path(tenant_id)
        if not folder.is_dir():
            return []
        return sorted(
            str(path.relative_to(self._root))
            for path in folder.rglob("*")
            if path.is_file() and not path.name.startswith(".")
        )


def segment_refs(key: str, payloads: list[bytes]) -> list[str]:
    """Each payload's reference in the segment ``key`` they are joined into:
    ``key#offset:length``, which ``get`` reads back."""
    refs: list[str] = []
    offset = 0
    for payload in payloads:
        refs.append(f"{key}#{offset}:{len(payload)}")
        offset += len(payload)
    return refs


def archive_day(path: str) -> date:
    """The day of a ``YYYY/MM/DD`` key part (see ``archive_key``)."""
    year, month, day = path.split("/")[:3]
    return date(int(year), int(month), int(day))


def archive_key(tenant_id: str, event_id: str, received_at: float) -> str:
    """Keys group payloads by tenant and day, so retention can drop whole folders."""
    day = datetime.fromtimestamp(received_at, UTC).strftime("%Y/%m/%d")
    return f"{tenant_id}/{day}/{event_id}.json"
