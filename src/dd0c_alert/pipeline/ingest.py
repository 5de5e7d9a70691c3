"""Admission of one webhook delivery: who sent it, may they, and is it new.

The order of checks is the cheapest refusal first, and nothing is written unless
every check passed. A delivery is answered 202 only after its raw event is committed
to the queue (design §2, durability rule).
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
import structlog
from cryptography.fernet import InvalidToken

from dd0c_alert import tracing
from dd0c_alert.domain.ids import new_id
from dd0c_alert.domain.lru import LRUCache
from dd0c_alert.domain.plans import plan_named, quota
from dd0c_alert.providers import PROVIDERS
from dd0c_alert.providers.base import AuthError, Provider
from dd0c_alert.providers.parse import json_document
from dd0c_alert.providers.redact import redact
from dd0c_alert.storage.archive import archive_key
from dd0c_alert.storage.memory_state import TokenBuckets
from dd0c_alert.storage.ports import (
    Archive,
    EnqueueOutcome,
    IngestQueue,
    Integration,
    RateLimiter,
    RawEvent,
    Store,
    Tenant,
)
from dd0c_alert.storage.product_sql import StatRow

log = structlog.get_logger(__name__)
T = TypeVar("T")

_TENANT_TTL = 5.0
#: Entries of the per-process tenant and integration caches. Tenant ids come from
#: unauthenticated URLs, so the cache is bounded: random ids evict each other (LRU).
CACHE_ENTRIES = 10_000
#: Bodies larger than this are redacted in a worker thread: a full scan costs about
#: 0.35 ms per KiB, which must not stall the event loop for every other request.
_INLINE_REDACT_BYTES = 64 * 1024
#: How long after the queue last refused a delivery /readyz still says so.
NOT_QUEUED_WINDOW_SECONDS = 60.0


class Rejected(Exception):
    """A delivery refused with an HTTP status and a machine-readable reason."""

    def __init__(
        self, status: int, reason: str, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int = 1024 * 1024
    claim_check_bytes: int = 256 * 1024
    rate_limit_per_second: float = 20_000
    monthly_quota: int = 0
    #: Time for a whole webhook body to arrive.
    body_timeout_seconds: float = 30.0
    #: How long a tenant's count of this month's alerts is trusted before re-reading.
    quota_refresh_seconds: float = 1.0
    #: How often delivery counts per integration are written (``integration_stats``).
    stats_flush_seconds: float = 2.0


class IngestService:
    def __init__(
        self,
        store: Store,
        queue: IngestQueue,
        archive: Archive,
        limits: Limits,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._archive = archive
        self.limits = limits
        self._tenants: LRUCache[str, Tenant | None] = LRUCache(CACHE_ENTRIES, _TENANT_TTL)
        self._integrations: LRUCache[tuple[str, str], list[Integration]] = LRUCache(
            CACHE_ENTRIES, _TENANT_TTL
        )
        #: Shared by every ingest process when backed by Redis; this process's alone by default.
        self._rate_limiter = rate_limiter if rate_limiter is not None else TokenBuckets()
        #: tenant -> (alerts processed this month, when read)
        self._monthly: LRUCache[str, tuple[int, float]] = LRUCache(CACHE_ENTRIES, 3600.0)
        #: (tenant, integration, hour since the epoch, outcome) -> [count, last time]:
        #: flushed in bulk, made datetimes only then (two per request cost 2 %).
        self._stats: dict[tuple[str, str, int, str], list[Any]] = {}
        self._stats_flushed = time.monotonic()
        self._stats_lock = threading.Lock()
        #: The queue's last refusal to commit a delivery, while none committed since:
        #: (monotonic time, why), for /readyz (``not_queued``).
        self._not_queued: tuple[float, str] | None = None
        #: (tenant, provider) whose stored secrets this key could not read, for a
        #: moment: each refused retry must not cost a database read (``_candidates``).
        self._unreadable: LRUCache[tuple[str, str], bool] = LRUCache(CACHE_ENTRIES, _TENANT_TTL)
        #: (event loop, what) -> the read of it in flight (``_read_once``).
        self._reads: dict[tuple[asyncio.AbstractEventLoop, Hashable], asyncio.Future[Any]] = {}

    async def receive(
        self,
        tenant_id: str,
        provider_name: str,
        integration_id: str | None,
        headers: Mapping[str, str],
        body: bytes,
    ) -> EnqueueOutcome:
        """Admit and enqueue one delivery; raise Rejected with the reason otherwise.

        ``headers`` must have lower-case names.
        """
        provider = PROVIDERS.get(provider_name)
        if provider is None:
            raise Rejected(404, "unknown_provider", f"no provider named {provider_name!r}")
        # Size and syntax before the tenant: an unknown tenant must be answered exactly
        # like a known one without this integration, or its ids could be probed.
        if len(body) > self.limits.max_body_bytes:
            raise Rejected(
                413, "body_too_large", f"body exceeds {self.limits.max_body_bytes} bytes"
            )
        try:
            json_document(body)
        except orjson.JSONDecodeError as exc:
            raise _unreadable(body, headers, exc) from None
        if not _TENANT_ID.fullmatch(tenant_id):  # says nothing of which tenants exist
            raise Rejected(
                401,
                "unknown_integration",
                f"no {provider_name} integration here: {tenant_id[:40]!r} is not a tenant "
                "id (26 characters, as `dd0c-alert tenant list` prints); the URL takes "
                "the id, not the tenant's name",
            )
        tenant = await self._tenant(tenant_id)
        if tenant is None:
            raise _no_integration(provider_name)
        integration = await self._authenticate(
            tenant_id, provider_name, integration_id, headers, body
        )
        now = time.time()
        try:
            await self._admit(tenant, now)
        except Rejected as exc:
            self._count(tenant_id, integration.id, exc.reason, now)
            raise
        # Authenticated: from here on only the redacted copy exists (SECURITY.md).
        secrets = integration.secrets_at(datetime.fromtimestamp(now, UTC))
        if len(body) > _INLINE_REDACT_BYTES:  # a full scan of a big body: off the loop
            stored = await asyncio.to_thread(redact, provider_name, headers, body, secrets)
        else:
            stored = redact(provider_name, headers, body, secrets)
        body = stored.body
        if tracing.enabled():  # the worker continues the webhook span from the message
            tracing.inject(stored.headers)
        event_id = new_id()
        event = RawEvent(
            event_id=event_id,
            tenant_id=tenant_id,
            integration_id=integration.id,
            provider=provider_name,
            received_at=now,
            headers=stored.headers,
            body=body,
            idempotency_key=_delivery_id(
                provider_name, integration.id, provider.DELIVERY_ID_HEADERS, headers
            ),
        )
        if len(body) > self.limits.claim_check_bytes:
            # Claim check: the queue row points at the archived body, fsynced first.
            event.body_ref = archive_key(tenant_id, f"{event_id}.json", now)
            event.body = None
            await asyncio.to_thread(self._archive.put, event.body_ref, body, durable=True)
        try:
            outcome = await self._queue.put(event)
        except Exception as exc:
            self._not_queued = (time.monotonic(), _why_not_queued(exc))
            raise
        self._not_queued = None
        self._count(
            tenant_id, integration.id, "duplicate" if outcome.duplicate else "accepted", now
        )
        if time.monotonic() - self._stats_flushed >= self.limits.stats_flush_seconds:
            self._stats_flushed = time.monotonic()
            asyncio.get_running_loop().run_in_executor(None, self.flush_stats)
        return outcome

    def not_queued(self, within: float = NOT_QUEUED_WINDOW_SECONDS) -> str | None:
        """Why deliveries are not being queued: the last commit failed (a full disk, a
        database away) less than ``within`` seconds ago and none succeeded since. Each
        such webhook is answered 503 while the database itself may still answer a read,
        so /readyz said ready. Bounded in time: with no delivery since, nothing says the
        cause lasts."""
        failed = self._not_queued
        if failed is None or time.monotonic() - failed[0] > within:
            return None
        return failed[1]

    def _count(self, tenant_id: str, integration_id: str, outcome: str, now: float) -> None:
        key = (tenant_id, integration_id, int(now // 3600), outcome)
        with self._stats_lock:
            entry = self._stats.setdefault(key, [0, now])
            entry[0] += 1
            entry[1] = now

    def flush_stats(self) -> None:
        """Write the delivery counts gathered since the last flush (one upsert per
        tenant); counts are statistics: a failed write is dropped, never retried."""
        with self._stats_lock:
            stats, self._stats = self._stats, {}
        if not stats:
            return
        rows = [
            StatRow(
                tenant,
                integration,
                datetime.fromtimestamp(hour * 3600, UTC),
                outcome,
                count,
                datetime.fromtimestamp(last, UTC),
            )
            for (tenant, integration, hour, outcome), (count, last) in stats.items()
        ]
        try:
            self._store.product().record_integration_stats(rows)
        except Exception:
            log.exception("integration_stats_failed", rows=len(rows))

    def forget_integrations(self, tenant_id: str, provider_name: str) -> None:
        """Drop the cached integrations (after a change through the API)."""
        self._integrations.put((tenant_id, provider_name), [])
        self._unreadable.put((tenant_id, provider_name), False)

    async def _tenant(self, tenant_id: str) -> Tenant | None:
        if len(tenant_id) > 64:
            return None
        hit, tenant = self._tenants.get(tenant_id)
        if not hit:
            tenant = await self._read_once(
                ("tenant", tenant_id), lambda: self._store.get_tenant(tenant_id)
            )
            self._tenants.put(tenant_id, tenant)
        return tenant

    async def _read_once(self, what: Hashable, read: Callable[[], T]) -> T:
        """``read()`` on a worker thread, once for all the requests that need ``what``
        while it runs. When a cached entry expires under load, every connection's next
        request misses at once: they now share one read instead of queueing one each
        for the few executor threads, and a burst of bad signatures (each asks for the
        integrations afresh) costs one read, not one per request."""
        key = (asyncio.get_running_loop(), what)
        pending = self._reads.get(key)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(read))
            self._reads[key] = pending
            pending.add_done_callback(lambda _: self._reads.pop(key, None))
        # Shielded: a request that goes away must not cancel the others' read.
        result: T = await asyncio.shield(pending)
        return result

    async def _authenticate(
        self,
        tenant_id: str,
        provider_name: str,
        integration_id: str | None,
        headers: Mapping[str, str],
        body: bytes,
    ) -> Integration:
        now = time.time()
        failure: AuthError | None = None
        provider = PROVIDERS[provider_name]
        moment = datetime.fromtimestamp(now, UTC)
        candidates: list[Integration] = []
        # A cached secret may be stale (rotated through the API): on a mismatch the
        # integrations are read afresh once before refusing.
        for fresh in (False, True):
            found = await self._candidates(tenant_id, provider_name, integration_id, fresh)
            candidates = [i for i in found if i.enabled]  # disabled: as if unknown
            if not candidates:
                raise _no_integration(provider_name)
            for integration in candidates:
                for secret in integration.secrets_at(moment):  # during a rotation: either
                    try:
                        provider.verify(headers, body, secret, now)
                    except AuthError as exc:
                        failure = exc
                    else:
                        return integration
        assert failure is not None
        failure = _rotated_out(candidates, provider, headers, body, now) or failure
        if len(candidates) == 1:
            self._count(tenant_id, candidates[0].id, failure.reason, now)
        raise Rejected(401, failure.reason, failure.detail, {"WWW-Authenticate": "Bearer"})

    async def _candidates(
        self, tenant_id: str, provider_name: str, integration_id: str | None, fresh: bool = False
    ) -> list[Integration]:
        """The tenant's integrations of this provider, cached briefly; a miss is always
        re-read so an integration created a moment ago works at once."""
        key = (tenant_id, provider_name)
        _, cached = self._integrations.get(key)
        found: list[Integration] = [] if fresh else cached or []
        if integration_id is not None:
            found = [i for i in found if i.id == integration_id]
        if not found:
            if self._unreadable.get(key)[1]:
                raise _secret_unreadable()
            try:
                read = await self._read_once(
                    ("integrations", *key),
                    lambda: self._store.integrations_for(tenant_id, provider_name),
                )
            except InvalidToken:
                self._unreadable.put(key, True)
                raise _secret_unreadable() from None
            self._integrations.put(key, read)
            found = [i for i in read if integration_id is None or i.id == integration_id]
        return found

    async def _admit(self, tenant: Tenant, now: float) -> None:
        plan = plan_named(tenant.plan)
        rate = tenant.rate_limit_per_second
        if rate is None:
            rate = plan.rate_limit_per_second
        rate = self.limits.rate_limit_per_second if rate is None else rate
        if rate > 0:
            wait = self._rate_limiter.take(tenant.id, rate)
            if wait > 0:
                raise Rejected(
                    429, "rate_limited", f"over {rate:g} requests/s", {"Retry-After": _ceil(wait)}
                )
        limit = quota(plan, tenant.monthly_quota, self.limits.monthly_quota)
        if limit > 0:
            # Alerts the worker processed this month (``domain.plans``), re-read at most
            # every ``quota_refresh_seconds``: a delivery is admitted while the count is
            # under the quota, and once admitted it is processed in full.
            hit, cached = self._monthly.get(tenant.id)
            month_start = _month_start(now)
            if not hit or cached is None or now - cached[1] >= self.limits.quota_refresh_seconds:
                used = await self._read_once(
                    ("month", tenant.id), lambda: self._store.alerts_this_month(tenant.id)
                )
                cached = (used, now)
                self._monthly.put(tenant.id, cached)
            if cached[1] >= month_start and cached[0] >= limit:
                raise Rejected(
                    429,
                    "quota_exceeded",
                    f"monthly quota of {limit} alerts used",
                    {"Retry-After": _ceil(_seconds_to_next_month(now))},
                )


#: What tenant ids look like (``domain.ids.new_id``: ULIDs).
_TENANT_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


_GZIP_MAGIC = b"\x1f\x8b"


def _unreadable(body: bytes, headers: Mapping[str, str], exc: Exception) -> Rejected:
    """Why the body does not parse, in the sender's terms: a compressed body or one
    in another encoding read as "str is not valid UTF-8: surrogates not allowed"."""
    encoding = headers.get("content-encoding", "").strip().lower()
    if (encoding and encoding != "identity") or body.startswith(_GZIP_MAGIC):
        return Rejected(
            415,
            "unsupported_media_type",
            f"the body is compressed ({encoding or 'gzip'}): send it as plain JSON",
        )
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        return Rejected(
            400,
            "invalid_json",
            f"body is not UTF-8 text (byte {error.start} is not): JSON must be sent as UTF-8",
        )
    return Rejected(400, "invalid_json", f"body is not valid JSON: {exc}")


def _rotated_out(
    candidates: list[Integration],
    provider: Provider,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
) -> AuthError | None:
    """``secret_rotated`` when the request is signed with a secret whose overlap after
    a rotation has ended: the sender is told to take the new secret, not left to guess
    at a generic mismatch. Only a valid proof with that secret gets this answer, so it
    tells nothing to whoever does not hold it."""
    moment = datetime.fromtimestamp(now, UTC)
    for integration in candidates:
        old, until = integration.previous_secret, integration.previous_secret_until
        if not old or until is None or moment < until:
            continue
        try:
            provider.verify(headers, body, old, now)
        except AuthError:
            continue
        return AuthError(
            "secret_rotated",
            f"this secret was rotated out: it was accepted until {until.isoformat()}; "
            "use the integration's new secret",
        )
    return None


#: The reason code of a delivery refused because the server's key cannot read the
#: integration's stored secret (``docs/operations.md``).
KEY_MISMATCH = "secret_key_mismatch"


def _secret_unreadable() -> Rejected:
    """503 for a delivery whose integration secret this server's key cannot decrypt (a
    restore onto another key, a wrong DD0C_SECRET_KEY). It was answered like a full
    queue, which sent the operator to the wrong place; the sender cannot fix it, so it
    is told to send again later, and nothing was stored."""
    return Rejected(
        503,
        KEY_MISMATCH,
        "the server's secret key cannot read this integration's secret: its operator must "
        "restore the key the secrets were stored with (docs/operations.md); nothing was "
        "stored, send it again later",
        {"Retry-After": "5"},
    )


def _no_integration(provider_name: str) -> Rejected:
    """The answer for an unknown tenant and for a tenant without this integration alike."""
    return Rejected(401, "unknown_integration", f"no {provider_name} integration here")


def _delivery_id(
    provider: str, integration_id: str, names: tuple[str, ...], headers: Mapping[str, str]
) -> str | None:
    """The delivery's id, scoped to its integration: two senders of one tenant that
    both number their deliveries 1, 2, 3 (a custom sender's ``Idempotency-Key``) must
    not answer each other's deliveries as duplicates, which would drop them."""
    for name in (*names, "idempotency-key"):
        value = headers.get(name)
        if value:
            return f"{provider}:{integration_id}:{value[:150]}"
    return None


def _ceil(seconds: float) -> str:
    return str(max(1, int(seconds + 0.999)))


def _month_start(now: float) -> float:
    current = datetime.fromtimestamp(now, UTC)
    return datetime(current.year, current.month, 1, tzinfo=UTC).timestamp()


def _seconds_to_next_month(now: float) -> float:
    current = datetime.fromtimestamp(now, UTC)
    year, month = (
        (current.year + 1, 1) if current.month == 12 else (current.year, current.month + 1)
    )
    return datetime(year, month, 1, tzinfo=UTC).timestamp() - now


def _why_not_queued(exc: BaseException) -> str:
    """The cause in words safe for an unauthenticated /readyz: SQLite's and the
    system's own messages ("database or disk is full", "No space left on device"); for
    anything else only the error's kind (a PostgreSQL error names the host and user)."""
    cause = getattr(exc, "orig", None) or exc
    if isinstance(cause, sqlite3.Error):
        return f"{type(cause).__name__}: {cause}"[:200]
    if isinstance(cause, OSError) and cause.errno is not None:
        return f"{type(cause).__name__}: {os.strerror(cause.errno)}"
    return type(cause).__name__
