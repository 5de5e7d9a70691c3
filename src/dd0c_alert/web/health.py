"""Liveness and readiness, for orchestrators and load balancers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from dd0c_alert.pipeline import metrics
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.ports import QueueDepth, SchemaBehind, Store

from .responses import json_response
from .routing import JsonRoute

router = APIRouter(tags=["operations"], route_class=JsonRoute)


@router.get("/healthz", summary="The process is up")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get(
    "/readyz",
    summary="The database answers, the queue is readable and moving, the worker runs",
    description="200 `ready`; 200 `degraded` while Redis is down (rate limits and circuit "
    "breakers fall back to process memory) or while the queue's oldest event is older than "
    "`DD0C_READY_QUEUE_LAG_SECONDS` (webhooks are still admitted, but nothing processes them "
    "in time), or while the queue refuses to commit webhooks (a full disk; each is answered 503 "
    "meanwhile); 503 `not_ready` when the database, the worker or the scheduled jobs fail "
    "(under `serve`: `background`, its child process that runs them), or when the secret key "
    "cannot decrypt the stored secrets (`secret_key`: every webhook is answered 503).",
    responses={503: {"description": "`not_ready`, with the failing `checks`."}},
)
async def readyz(request: Request) -> Response:
    runtime = request.app.state.runtime
    # Degrading checks say "degraded: ..." and leave the answer 200: the process can
    # still take webhooks, and a load balancer that dropped it would lose them.
    checks = await _database_checks(request.app.state, runtime)
    not_queued = runtime.ingest.not_queued()
    if not_queued is not None and checks.get("queue", "").startswith("ok"):
        # Degraded, not failing: a replica the load balancer dropped would get no
        # delivery to show that the cause has passed, and every replica shares it.
        checks["queue"] = f"degraded: webhooks are not being queued ({not_queued})"
    if runtime.worker is not None:
        checks["worker"] = "ok" if runtime.worker.is_alive() else "stopped"
    if runtime.notifier is not None:
        checks["notifier"] = "ok" if runtime.notifier.is_alive() else "stopped"
    if runtime.background_alive is not None:
        checks["background"] = "ok" if runtime.background_alive() else "restarting"
    if runtime.scheduler is not None:
        checks["scheduler"] = "ok" if runtime.scheduler.is_alive() else "stopped"
    if runtime.redis is not None:
        await run_in_threadpool(runtime.redis.probe)
        error = runtime.redis.last_error
        checks["redis"] = f"degraded: {_redis_failure(error)}" if error is not None else "ok"
    if not all(value.startswith(("ok", "degraded")) for value in checks.values()):
        return json_response({"status": "not_ready", "checks": checks}, 503)
    degraded = any(value.startswith("degraded") for value in checks.values())
    return json_response({"status": "degraded" if degraded else "ready", "checks": checks})


#: How long /readyz waits for the database before saying it does not answer.
READY_DATABASE_TIMEOUT_SECONDS = 5.0


async def _database_checks(state: Any, runtime: Runtime) -> dict[str, str]:
    """The database's and the queue's checks, within ``READY_DATABASE_TIMEOUT_SECONDS``.
    A server that hangs (its host's kernel still acknowledging) held /readyz for as
    long as the prober waited, each probe a thread. One probe is in flight at a time:
    while it hangs, later requests wait on it (bounded) instead of starting another,
    so probes every few seconds cannot use up the thread pool the webhooks need."""
    # One per event loop: a server may run several, and a future belongs to one.
    probes: dict[asyncio.AbstractEventLoop, asyncio.Future[dict[str, str]]] | None
    probes = getattr(state, "database_probes", None)
    if probes is None:
        probes = state.database_probes = {}
    loop = asyncio.get_running_loop()
    probe = probes.get(loop)
    if probe is None or probe.done():
        for gone in [other for other in probes if other.is_closed()]:
            del probes[gone]
        secret_key = getattr(state, "secret_key_probe", None)
        if secret_key is None:
            secret_key = state.secret_key_probe = SecretKeyProbe()
        probe = probes[loop] = asyncio.ensure_future(
            run_in_threadpool(_database_check, runtime, secret_key)
        )
    timeout = READY_DATABASE_TIMEOUT_SECONDS
    try:
        return dict(await asyncio.wait_for(asyncio.shield(probe), timeout))
    except TimeoutError:
        return {"database": f"failing: no answer within {timeout:g} s"}


def _database_check(runtime: Runtime, secret_key: SecretKeyProbe) -> dict[str, str]:
    try:
        runtime.store.ping()
        depth = runtime.queue.depth()
        reads = secret_key.reads(runtime.store)
    except SchemaBehind as exc:  # says which migration and what to run
        return {"database": f"failing: {exc}"}
    except Exception as exc:
        return {"database": f"failing: {_database_failure(exc)}"}
    checks = {"database": "ok", "queue": _queue_check(depth, runtime.ready_queue_lag_seconds)}
    if reads is not None:
        checks["secret_key"] = "ok" if reads else KEY_CANNOT_DECRYPT
    return checks


#: How long /readyz trusts its last decryption of a stored secret.
SECRET_KEY_CHECK_SECONDS = 5.0
#: /readyz's words for a key that cannot read the stored secrets (never the key).
KEY_CANNOT_DECRYPT = (
    "failing: the secret key cannot decrypt the stored secrets, so every webhook is "
    "answered 503: start with the key they were stored with (docs/operations.md#backups)"
)


class SecretKeyProbe:
    """Whether the key reads the stored secrets, decrypting one at most every
    ``SECRET_KEY_CHECK_SECONDS``. A restore onto another folder's key, or a wrong
    DD0C_SECRET_KEY, left a server that refused every webhook 503 reading ready, so
    its load balancer kept sending it traffic and nothing told the operator."""

    def __init__(
        self, every: float = SECRET_KEY_CHECK_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._every = every
        self._clock = clock
        self._checked: tuple[float, bool | None] | None = None

    def reads(self, store: Store) -> bool | None:
        """None when no secret is stored (nothing to read, nothing refused)."""
        now = self._clock()
        if self._checked is not None and now - self._checked[0] < self._every:
            return self._checked[1]
        verdict = store.secret_key_reads()
        self._checked = (now, verdict)
        return verdict


#: What libpq and SQLite say when a database cannot be used, and how /readyz words it.
#: The error's own text is not shown: the endpoint needs no login, and PostgreSQL's
#: messages name the host, port and user.
_DATABASE_FAILURES = (
    ("connection refused", "connection refused"),
    ("timeout expired", "no answer within connect_timeout"),
    ("shutting down", "the database is shutting down"),
    ("starting up", "the database is starting up"),
    ("recovery mode", "the database is starting up"),
    ("server closed the connection", "the server closed the connection"),
    ("password authentication failed", "authentication refused"),
    ("no pg_hba.conf entry", "authentication refused"),
    ("too many clients", "no free connection slots"),
    ("remaining connection slots", "no free connection slots"),
    ("does not exist", "the database or role does not exist"),
    ("name or service not known", "host name not found"),
    ("could not translate host name", "host name not found"),
    ("disk is full", "disk full"),
    ("unable to open database file", "cannot open the database file"),
)


def _database_failure(exc: Exception) -> str:
    """The error's kind, with the cause in a fixed phrase when it is a known one, so
    an operator reads "OperationalError (connection refused)" rather than the kind
    alone, which was the same for a stopped server, a wrong password and a full pool."""
    text = str(exc).lower()
    for needle, phrase in _DATABASE_FAILURES:
        if needle in text:
            return f"{type(exc).__name__} ({phrase})"
    return type(exc).__name__


#: What redis-py says when Redis cannot be used, and how /readyz words it. Its text
#: ("Error 111 connecting to redis.internal:6379. Connection refused.") names the host
#: and port; it stays in the log line ``redis_degraded``.
_REDIS_FAILURES = (
    ("connection refused", "connection refused"),
    ("timeout", "no answer in time"),
    ("timed out", "no answer in time"),
    ("name or service not known", "host name not found"),
    ("name resolution", "host name not found"),
    ("nodename nor servname", "host name not found"),
    ("invalid username-password", "authentication refused"),
    ("wrongpass", "authentication refused"),
    ("authentication required", "authentication refused"),
    ("noauth", "authentication refused"),
    ("loading", "Redis is loading its data"),
    ("max number of clients", "no free connection slots"),
    ("closed by server", "the server closed the connection"),
    ("connection reset", "the server closed the connection"),
)


def _redis_failure(error: str) -> str:
    """``RedisLink.last_error`` ("<kind>: <text>") as its kind, with the cause in a
    fixed phrase when it is a known one, as for the database."""
    kind, _, text = error.partition(": ")
    for needle, phrase in _REDIS_FAILURES:
        if needle in text.lower():
            return f"{kind} ({phrase})"
    return kind


def _queue_check(depth: QueueDepth, lag_limit: float) -> str:
    """A worker can be alive and make no progress (stopped by a signal, wedged on a
    lock, or too few for the load): only the age of the oldest waiting event shows it."""
    figures = f"{depth.messages} waiting, oldest {depth.oldest_age_seconds:.1f} s"
    if depth.oldest_age_seconds > lag_limit:
        return f"degraded: lagging ({figures}; over {lag_limit:g} s)"
    return f"ok ({figures})"


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus exposition of this process (see ``pipeline/metrics.py``)."""
    runtime = request.app.state.runtime
    collector = getattr(request.app.state, "metrics", None)
    if collector is None:
        collector = request.app.state.metrics = metrics.RuntimeCollector(lambda: _gauges(runtime))
    body, content_type = await run_in_threadpool(metrics.scrape, collector)
    return Response(body, media_type=content_type)


def _gauges(runtime: Runtime) -> dict[str, float]:
    depth = runtime.queue.depth()
    values = {
        "dd0c_up": 1.0,
        "dd0c_queue_messages": float(depth.messages),
        "dd0c_queue_oldest_age_seconds": depth.oldest_age_seconds,
        "dd0c_db_connections_in_use": float(runtime.store.connections_in_use()),
    }
    if runtime.redis is not None:
        values["dd0c_redis_healthy"] = 1.0 if runtime.redis.healthy else 0.0
    return values
