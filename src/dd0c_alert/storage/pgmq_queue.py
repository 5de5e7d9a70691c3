"""The production ingest queue: pgmq in the same PostgreSQL as the store.

Producers work like the embedded queue: one writer thread per process takes every
pending webhook and commits it in one transaction (idempotency claims, monthly usage
and ``pgmq.send_batch`` together), and each handler is answered after that commit.
Several ingest processes may write at once, so idempotency rests on the primary key
of ``idempotency_keys``, not on a read-then-write: of two concurrent deliveries of
one key, exactly one claims it.

Consumers read as ``pgmq.read`` does (lock the visible messages with ``SKIP LOCKED``,
push their visibility timeout out, count the read) but take them in turns across
tenants (``fair_claim``), which ``pgmq.read``'s plain FIFO cannot; a message is hidden
for its visibility timeout;
what a worker acknowledges, retries or dead-letters is settled inside the worker's
own transaction, so a rolled-back batch simply reappears when the timeout ends.
"""

from __future__ import annotations

import base64
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from .fair_claim import TenantTurns, fair_ids
from .group_commit import GroupCommitWriter
from .ports import BatchOutcome, ClaimBudget, EnqueueOutcome, LeaseLost, QueueDepth, RawEvent
from .rows import month_of
from .tenancy import scope, scoped

#: W3C trace context, copied into pgmq's message headers for tools that trace the queue.
_TRACE_HEADERS = ("traceparent", "tracestate")

_CLAIM_KEYS = sa.text(
    "INSERT INTO idempotency_keys (tenant_id, key, event_id, expires_at)"
    " SELECT :tenant_id, k.key, k.event_id, :expires_at"
    " FROM unnest(CAST(:keys AS text[]), CAST(:event_ids AS text[])) AS k(key, event_id)"
    " ON CONFLICT (tenant_id, key) DO UPDATE"
    " SET event_id = excluded.event_id, expires_at = excluded.expires_at"
    " WHERE idempotency_keys.expires_at < :now"
    " RETURNING idempotency_keys.key"
)
_ORIGINALS = sa.text(
    "SELECT key, event_id FROM idempotency_keys WHERE tenant_id = :tenant_id AND key = ANY(:keys)"
)
_COUNT_USAGE = sa.text(
    "INSERT INTO usage (tenant_id, month, events)"
    " SELECT :tenant_id, u.month, u.events"
    " FROM unnest(CAST(:months AS text[]), CAST(:counts AS integer[])) AS u(month, events)"
    " ON CONFLICT (tenant_id, month) DO UPDATE SET events = usage.events + excluded.events"
)
#: The group's messages and trace headers go as two JSON arrays, unpacked in order:
#: as ``jsonb[]`` parameters psycopg escaped every double quote of every message in
#: Python, ~50 µs of the writer thread's CPU per single-alert webhook.
_SEND = sa.text(
    "SELECT count(*) FROM pgmq.send_batch(:queue,"
    " ARRAY(SELECT m FROM jsonb_array_elements(CAST(:messages AS jsonb))"
    " WITH ORDINALITY AS e(m, n) ORDER BY n),"
    " ARRAY(SELECT NULLIF(h, 'null') FROM jsonb_array_elements(CAST(:headers AS jsonb))"
    " WITH ORDINALITY AS e(h, n) ORDER BY n))"
)
#: The tenants with queued messages, one probe of ``ix_dd0c_ingest_tenant`` each.
_TENANTS = (
    "WITH RECURSIVE t(tenant_id) AS (SELECT min(message->>'tenant_id') FROM {table}"
    " UNION ALL SELECT (SELECT min(message->>'tenant_id') FROM {table}"
    " WHERE message->>'tenant_id' > t.tenant_id) FROM t WHERE t.tenant_id IS NOT NULL)"
    " SELECT tenant_id FROM t WHERE tenant_id IS NOT NULL"
)
#: Up to ``share`` visible messages of each tenant after its cursor, locked as
#: ``pgmq.read`` locks them (a message another consumer is reading is skipped).
_OF_TENANTS = (
    "SELECT c.tenant_id, m.msg_id FROM unnest(CAST(:tenants AS text[]), CAST(:after AS bigint[]))"
    " AS c(tenant_id, after) CROSS JOIN LATERAL (SELECT msg_id FROM {table}"
    " WHERE message->>'tenant_id' = c.tenant_id AND msg_id > c.after"
    " AND vt <= clock_timestamp() ORDER BY msg_id LIMIT :share FOR UPDATE SKIP LOCKED) AS m"
    " ORDER BY c.tenant_id, m.msg_id"
)
_LEASE = (
    "UPDATE {table} SET vt = clock_timestamp() + make_interval(secs => :vt),"
    " read_ct = read_ct + 1 WHERE msg_id = ANY(CAST(:ids AS bigint[]))"
    " RETURNING msg_id, read_ct, message::text"
)
#: The bytes of body each message brings into memory: what its base64 text decodes
#: to, or for a claim-checked one (no body in the message) the largest admission takes.
_SIZES = (
    "SELECT msg_id, coalesce(octet_length(message->>'body') * 3 / 4, :unread) FROM {table}"
    " WHERE msg_id = ANY(CAST(:ids AS bigint[]))"
)
_DELETE = sa.text("SELECT count(*) FROM pgmq.delete(:queue, CAST(:ids AS bigint[]))")
_ARCHIVE = sa.text("SELECT count(*) FROM pgmq.archive(:queue, CAST(:ids AS bigint[]))")
_RETRY = sa.text(
    "SELECT count(*)"
    " FROM unnest(CAST(:ids AS bigint[]), CAST(:delays AS float8[])) AS r(id, delay),"
    " LATERAL pgmq.set_vt(:queue, r.id, clock_timestamp() + make_interval(secs => r.delay))"
)
#: Locks the batch's messages if, and only if, none was read again since this worker
#: read it (same read count): the fence that keeps two consumers from both committing.
_HELD = (
    "SELECT count(*) FROM (SELECT q.msg_id FROM {table} q"
    " JOIN unnest(CAST(:ids AS bigint[]), CAST(:counts AS integer[])) AS m(id, read_ct)"
    " ON q.msg_id = m.id AND q.read_ct = m.read_ct FOR UPDATE OF q) AS held"
)
#: Gives a read back: a retry that was not the event's fault (``Retry.counted``).
_UNCOUNT = "UPDATE {table} SET read_ct = read_ct - 1 WHERE msg_id = ANY(CAST(:ids AS bigint[]))"
_METRICS = sa.text("SELECT queue_length, oldest_msg_age_sec FROM pgmq.metrics(:queue)")


class PgmqIngestQueue:
    def __init__(
        self,
        engine: sa.Engine,
        *,
        queue_name: str = "dd0c_ingest",
        idempotency_ttl: float = 24 * 3600,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._queue = queue_name
        self._table = f"pgmq.{engine.dialect.identifier_preparer.quote('q_' + queue_name.lower())}"
        self._ttl = idempotency_ttl
        self._on_commit = on_commit
        self._writer = GroupCommitWriter(self._write, on_commit=on_commit)
        #: event id -> (msg id, lease end on the monotonic clock, read count) of what
        #: this process read, in read order. An entry outlives its settle, because a worker whose
        #: transaction rolled back settles the same events again; it goes once its
        #: lease has ended, when the message may be anyone's.
        self._leased: dict[str, tuple[int, float, int]] = {}
        self._held = sa.text(_HELD.format(table=self._table))
        self._uncount = sa.text(_UNCOUNT.format(table=self._table))
        self._tenants = sa.text(_TENANTS.format(table=self._table))
        self._of_tenants = sa.text(_OF_TENANTS.format(table=self._table))
        self._lease = sa.text(_LEASE.format(table=self._table))
        self._sizes = sa.text(_SIZES.format(table=self._table))
        self._turns = TenantTurns()
        self._leased_lock = threading.Lock()

    # --- producer side ----------------------------------------------------------------

    def start(self) -> None:
        self._writer.start()

    def close(self) -> None:
        self._writer.close()
        self._engine.dispose()

    @property
    def batches(self) -> int:
        return self._writer.batches

    async def put(self, event: RawEvent) -> EnqueueOutcome:
        return await self._writer.put(event)

    def _write(self, events: list[RawEvent]) -> list[EnqueueOutcome]:
        """One transaction for the whole group. Tenants, and keys within a tenant, are
        written in sorted order, so concurrent writers take row locks in one order and
        cannot deadlock."""
        now = time.time()
        by_tenant: dict[str, list[int]] = defaultdict(list)
        for index, event in enumerate(events):
            by_tenant[event.tenant_id].append(index)
        outcomes: dict[int, EnqueueOutcome] = {}
        with self._engine.begin() as conn:
            for tenant_id in sorted(by_tenant):
                scope(conn, tenant_id)
                group = [events[index] for index in by_tenant[tenant_id]]
                originals = self._claim_keys(conn, tenant_id, group, now)
                usage: dict[str, int] = defaultdict(int)
                for index, event in zip(by_tenant[tenant_id], group, strict=True):
                    original = originals.get(event.idempotency_key or "", event.event_id)
                    if original != event.event_id:
                        outcomes[index] = EnqueueOutcome(original, duplicate=True)
                        continue
                    outcomes[index] = EnqueueOutcome(event.event_id)
                    usage[month_of(event.received_at)] += 1
                if usage:
                    conn.execute(
                        _COUNT_USAGE,
                        {
                            "tenant_id": tenant_id,
                            "months": list(usage),
                            "counts": list(usage.values()),
                        },
                    )
            accepted = [events[i] for i in sorted(outcomes) if not outcomes[i].duplicate]
            if accepted:
                conn.execute(_SEND, _send_params(self._queue, accepted))
        return [outcomes[index] for index in range(len(events))]

    def _claim_keys(
        self, conn: sa.Connection, tenant_id: str, events: list[RawEvent], now: float
    ) -> dict[str, str]:
        """Claim the tenant's delivery ids; return, per key, the event that owns it (the
        first of this group, or an earlier delivery whose key has not expired)."""
        first: dict[str, str] = {}
        for event in events:
            if event.idempotency_key:
                first.setdefault(event.idempotency_key, event.event_id)
        if not first:
            return {}
        keys = sorted(first)
        claimed = set(
            conn.execute(
                _CLAIM_KEYS,
                {
                    "tenant_id": tenant_id,
                    "keys": keys,
                    "event_ids": [first[key] for key in keys],
                    "expires_at": now + self._ttl,
                    "now": now,
                },
            ).scalars()
        )
        taken = [key for key in keys if key not in claimed]
        if taken:
            rows = conn.execute(_ORIGINALS, {"tenant_id": tenant_id, "keys": taken})
            first.update({key: event_id for key, event_id in rows})
        return first

    # --- consumer side ----------------------------------------------------------------

    def claim(
        self, limit: int, lease_seconds: float, budget: ClaimBudget | None = None
    ) -> list[RawEvent]:
        """``pgmq.read`` takes whole seconds: a lease is rounded up, never down."""
        vt = max(1, math.ceil(lease_seconds))
        with self._engine.begin() as conn:

            def fetch(pairs: Sequence[tuple[str, int]], share: int) -> dict[str, list[int]]:
                found: dict[str, list[int]] = {}
                params = {
                    "tenants": [t for t, _ in pairs],
                    "after": [a for _, a in pairs],
                    "share": share,
                }
                for tenant_id, msg_id in conn.execute(self._of_tenants, params):
                    found.setdefault(tenant_id, []).append(msg_id)
                return found

            def sizes(ids: Sequence[int]) -> dict[int, int]:
                unread = budget.unread_body_bytes if budget else 0
                return dict(conn.execute(self._sizes, {"ids": list(ids), "unread": unread}).all())

            tenants = list(conn.execute(self._tenants).scalars())
            ids = fair_ids(
                tenants,
                limit,
                fetch,
                self._turns,
                sizes if budget else None,
                budget.max_bytes if budget else 0,
            )
            order = {msg_id: turn for turn, msg_id in enumerate(ids)}
            rows = sorted(
                conn.execute(self._lease, {"vt": vt, "ids": ids}).all(),
                key=lambda row: order[row[0]],
            )
        events = [_event(orjson.loads(message), attempts) for _, attempts, message in rows]
        now = time.monotonic()
        with self._leased_lock:
            while self._leased:
                oldest = next(iter(self._leased))
                if self._leased[oldest][1] > now:
                    break
                del self._leased[oldest]
            for (msg_id, read_ct, _), event in zip(rows, events, strict=True):
                self._leased.pop(event.event_id, None)  # keep read order: re-insert at the end
                self._leased[event.event_id] = (msg_id, now + vt, read_ct)
        return events

    def settle(self, conn: sa.Connection, outcome: BatchOutcome) -> None:
        """The store's ``QueueSettle``: runs in the worker's transaction, so the messages
        are acknowledged exactly when what was made of them is committed.

        A worker slower than its visibility timeout may find its messages read again
        by another consumer. The messages are locked only if none was (same read
        count); otherwise LeaseLost rolls the whole batch back, and the consumer that
        holds them now is the one whose work commits. Without this fence both would
        commit, and every alert of the batch would count twice.
        """
        retrying = {retry.event_id: retry.delay_seconds for retry in outcome.retries}
        event_ids = outcome.acked + [d.event.event_id for d in outcome.dead] + list(retrying)
        with self._leased_lock:
            held = {e: self._leased[e] for e in event_ids if e in self._leased}
        if len(held) < len(event_ids):
            raise LeaseLost(f"{len(event_ids) - len(held)} event(s) were not read here")
        if not held:
            return
        ids = [msg_id for msg_id, _, _ in held.values()]
        counts = [read_ct for _, _, read_ct in held.values()]
        locked = conn.execute(self._held, {"ids": ids, "counts": counts}).scalar_one()
        if locked < len(ids):
            raise LeaseLost(f"{len(ids) - locked} of {len(ids)} message(s) were read again")
        done = [held[e][0] for e in outcome.acked]
        if done:
            conn.execute(_DELETE, {"queue": self._queue, "ids": done})
        dead = [held[d.event.event_id][0] for d in outcome.dead]
        if dead:  # the dead_letters row is the store's; pgmq's archive keeps the message
            conn.execute(_ARCHIVE, {"queue": self._queue, "ids": dead})
        if retrying:
            retry_ids = [held[e][0] for e in retrying]
            conn.execute(
                _RETRY,
                {"queue": self._queue, "ids": retry_ids, "delays": list(retrying.values())},
            )
            uncounted = [held[r.event_id][0] for r in outcome.retries if not r.counted]
            if uncounted:
                conn.execute(self._uncount, {"ids": uncounted})

    def requeue(self, event: RawEvent) -> None:
        # A scan of the queue table, which has no index on event ids (ingestion would pay
        # for one on every message); replay is a rare admin action.
        present = sa.text(
            f"SELECT EXISTS (SELECT 1 FROM {self._table} WHERE message->>'event_id' = :id)"  # noqa: S608
        )
        with self._engine.begin() as conn:
            if conn.execute(present, {"id": event.event_id}).scalar():
                return
            conn.execute(_SEND, _send_params(self._queue, [event]))
        if self._on_commit is not None:
            self._on_commit()

    def acknowledge(self, outcome: BatchOutcome) -> None:
        """Nothing to do: ``settle`` acknowledged the messages in the worker's
        transaction, which has committed."""

    def events_this_month(self, tenant_id: str) -> int:
        """Webhook deliveries admitted this month."""
        query = sa.text("SELECT events FROM usage WHERE tenant_id = :tenant AND month = :month")
        with scoped(self._engine, tenant_id) as conn:
            found = conn.execute(query, {"tenant": tenant_id, "month": month_of(time.time())})
            return int(found.scalar() or 0)

    def purge_expired(self, now: float) -> int:
        """Delete expired idempotency keys, across tenants (a migration 0004 function,
        since row-level security hides other tenants' keys); return how many went."""
        with self._engine.begin() as conn:
            query = sa.select(sa.func.dd0c_purge_idempotency_keys(now))
            return int(conn.execute(query).scalar_one())

    def release_leases(self) -> None:
        """Nothing to do: several consumers share this queue, and the leases a crashed
        one held are not this process's to cut short; they end with their visibility
        timeout, after which the messages are read again."""

    def depth(self) -> QueueDepth:
        with self._engine.connect() as conn:
            length, oldest = conn.execute(_METRICS, {"queue": self._queue}).one()
        return QueueDepth(int(length), float(oldest or 0))


def _send_params(queue: str, events: list[RawEvent]) -> dict[str, str]:
    return {
        "queue": queue,
        "messages": "[" + ",".join(_message(event) for event in events) + "]",
        "headers": orjson.dumps([_trace_headers(event) for event in events]).decode(),
    }


def _message(event: RawEvent) -> str:
    return orjson.dumps(
        {
            "event_id": event.event_id,
            "tenant_id": event.tenant_id,
            "integration_id": event.integration_id,
            "provider": event.provider,
            "received_at": event.received_at,
            "headers": event.headers,
            "body": None if event.body is None else base64.b64encode(event.body).decode(),
            "body_ref": event.body_ref,
            "idempotency_key": event.idempotency_key,
        }
    ).decode()


def _trace_headers(event: RawEvent) -> dict[str, str] | None:
    trace = {name: event.headers[name] for name in _TRACE_HEADERS if name in event.headers}
    return trace or None


def _event(message: dict[str, Any], attempts: int) -> RawEvent:
    body = message["body"]
    return RawEvent(
        event_id=message["event_id"],
        tenant_id=message["tenant_id"],
        integration_id=message["integration_id"],
        provider=message["provider"],
        received_at=message["received_at"],
        headers=message["headers"],
        body=None if body is None else base64.b64decode(body),
        body_ref=message["body_ref"],
        idempotency_key=message["idempotency_key"],
        attempts=attempts,
    )
