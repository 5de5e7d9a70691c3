"""Raw payload archive in an S3-compatible object store (AWS S3, MinIO, ...).

Same contract as :class:`~dd0c_alert.storage.archive.LocalArchive`: one object per
segment, payloads addressed as ``<segment key>#<offset>:<length>`` and read back with an
HTTP Range GET, so a batch costs one PUT however many payloads it holds. Refs are
relative to the archive's prefix, so moving the prefix does not rewrite stored refs.

Durability: S3 answers a PUT with 200 only once the object is stored (redundantly, on
AWS); MinIO answers once its write quorum has the object. So ``put(durable=True)`` needs
nothing more than a successful PUT. How many copies that means on MinIO depends on how
that MinIO is deployed.

Credentials come from boto3's standard chain (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, shared config files, instance roles); this module never
sees or logs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from .archive import archive_day, segment_refs

_MISSING_KEY = frozenset({"NoSuchKey", "404", "NotFound"})


class ArchiveUnavailable(OSError):
    """The object store could not be reached or refused the request (no bucket, no
    credentials, no connection). The worker retries a batch whose archive write fails."""


class S3Archive:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        attempts: int = 3,
    ) -> None:
        if not bucket:
            raise ValueError("S3 archive needs a bucket name")
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        config = Config(
            region_name=region,
            # MinIO and most S3-compatible stores serve buckets by path, not by DNS name.
            s3={"addressing_style": "path"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # A dead store must fail the call, not hang it: the worker retries the batch
            # and a webhook's claim-check write answers an error instead of timing out.
            retries={"total_max_attempts": attempts, "mode": "standard"},
            # Ingest writes claim-checked bodies from a thread pool; botocore's default
            # of 10 pooled connections would open and drop connections under load.
            max_pool_connections=32,
        )
        self._client: Any = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url or None, config=config
        )

    @classmethod
    def from_url(
        cls, url: str, *, endpoint_url: str | None = None, region: str = "us-east-1"
    ) -> S3Archive:
        """``s3://bucket`` or ``s3://bucket/some/prefix``."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"archive URL must look like s3://bucket/optional/prefix, got {url!r}")
        return cls(parts.netloc, parts.path, endpoint_url=endpoint_url, region=region)

    def _key(self, key: str) -> str:
        return f"{self._prefix}/{key}" if self._prefix else key

    @contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        """Turn botocore's errors into FileNotFoundError (the API answers 404 for a
        payload past retention, as with the local folder) or ArchiveUnavailable."""
        where = f"s3://{self._bucket}/{self._key(key)}"
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in _MISSING_KEY:
                raise FileNotFoundError(f"archive object {where} not found") from None
            message = error.get("Message") or exc
            raise ArchiveUnavailable(f"archive {action} {where} failed: {code}: {message}") from exc
        except BotoCoreError as exc:
            raise ArchiveUnavailable(f"archive {action} {where} failed: {exc}") from exc

    def put(self, key: str, data: bytes, *, durable: bool = False) -> None:
        """One PUT; a 200 is already durable, so ``durable`` changes nothing here."""
        with self._errors("put", key):
            self._client.put_object(Bucket=self._bucket, Key=self._key(key), Body=data)

    def put_segment(self, key: str, payloads: list[bytes]) -> list[str]:
        """Write payloads as one object; return each one's reference."""
        self.put(key, b"".join(payloads))
        return segment_refs(key, payloads)

    def purge_before(self, tenant_id: str, cutoff: datetime) -> int:
        """Delete the tenant's objects of days before ``cutoff``'s day; how many."""
        prefix = self._key(f"{tenant_id}/")
        old: list[dict[str, str]] = []
        with self._errors("list", f"{tenant_id}/"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    day = archive_day(item["Key"].removeprefix(prefix))
                    if day < cutoff.date():
                        old.append({"Key": item["Key"]})
        for start in range(0, len(old), 1000):  # the most one DeleteObjects takes
            with self._errors("delete", f"{tenant_id}/"):
                self._client.delete_objects(
                    Bucket=self._bucket, Delete={"Objects": old[start : start + 1000]}
                )
        return len(old)

    def keys(self, tenant_id: str) -> list[str]:
        prefix = self._key(f"{tenant_id}/")
        found: list[str] = []
        with self._errors("list", tenant_id):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=prefix
            )
            for page in pages:
                found += [obj["Key"] for obj in page.get("Contents", [])]
        strip = len(self._key(""))
        return sorted(key[strip:] for key in found)

    def get(self, ref: str) -> bytes:
        key, _, span = ref.partition("#")
        request: dict[str, str] = {"Bucket": self._bucket, "Key": self._key(key)}
        with self._errors("get", key):
            if span:
                offset, _, length = span.partition(":")
                start, size = int(offset), int(length)
                if size == 0:
                    # No Range can ask for zero bytes; still fail for a missing segment.
                    self._client.head_object(**request)
                    return b""
                request["Range"] = f"bytes={start}-{start + size - 1}"
            body: bytes = self._client.get_object(**request)["Body"].read()
            return body
