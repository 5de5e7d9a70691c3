"""The notification outbox and its deliveries, in SQL (SQLite and PostgreSQL alike).

The worker writes an *intent* ("incident X was opened / grew / resolved") in the same
transaction as the decision behind it, so a committed decision is never without its
notification and a rolled-back one never has one. The notifier *plans* intents into
deliveries (one per destination the tenant's routes pick) and deletes them in one
transaction, then sends what is due.

A Slack channel gets one living message per incident: one ``deliveries`` row of kind
``message`` (a unique index says so), whose ``version_wanted`` grows with each change
while ``version_sent`` records what the message shows. However many changes arrive
while a send is under way, the next send shows the latest state once: that is the
coalescing. Its ``message_ref`` (``channel_id:ts``) and ``post_started_at`` are written
before and after the post, which is what keeps a post whose answer was lost from
being posted twice (see ``pipeline/notifier.py``).

One incident's events reach one destination in the order they happened: a
delivery's ``created_at`` is the time of the decision behind it (its intent's), and
a webhook event, a mail or a thread reply is not due while an earlier one of the
same incident to the same destination still waits (pending or retrying). Ids do not
order them: two ids minted in one millisecond sort at random. A webhook's ``updated``
events are paced as a living message is coalesced (``_paced_update``).

Every attempt is a ``delivery_attempts`` row; ``destination_health`` says which
destinations fail, are rate-limited, or were stopped by a permanent error. A first
page quiet hours held back is a ``held_pages`` row until it is sent or no longer
wanted (``storage/held_pages.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from dd0c_alert.domain.ids import new_id

from . import held_pages as held_sql
from . import schema as t
from .held_pages import HeldPage
from .notify_settings import SlackSettings, SqlNotifySettings
from .ports import Page
from .rows import decode_cursor, encode_cursor, iso
from .secrets import SecretBox
from .tenancy import scoped

PENDING, RETRYING, DELIVERED, FAILED = "pending", "retrying", "delivered", "failed"
#: Kinds of delivery: Slack's living message and its thread replies, a mail, a
#: webhook event.
MESSAGE, REPLY, MAIL, EVENT = "message", "reply", "mail", "event"
#: A tenant's daily digest mail (its ``incident_id`` is ``digest-<day>``) and a notice
#: that another destination stopped working.
DIGEST, NOTICE = "digest", "notice"
#: Kinds whose deliveries each tell one event, so their order matters; a living message
#: always shows the latest state and has no order to keep.
ORDERED = (EVENT, MAIL, REPLY)
#: Kinds that announce an incident at a destination: where its later events go too.
ANNOUNCING = (MESSAGE, MAIL, EVENT)
#: The key of an intent's ``detail`` holding the incident's state when it was written
#: (``status``, ``acknowledged_at``, ``resolved_at``, ``snoozed_until``, as the API
#: shows them), so an event sent later still tells the state of its moment.
STATE = "state"
#: The key of a released held page's ``opened`` intent (``settle_held``): it goes to
#: the destinations that never heard of the incident only; others got it on time.
RELEASED = "released"
_TENANTS_WITH_WORK = sa.text("SELECT * FROM dd0c_notify_tenants(:now)")


@dataclass(frozen=True, slots=True)
class Intent:
    seq: int
    tenant_id: str
    incident_id: str
    event: str
    detail: dict[str, Any]
    created_at: datetime
    #: W3C trace context of the decision that made the intent.
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class Planned:
    """One destination an intent reaches, as routing decided."""

    incident_id: str
    destination_type: str
    destination: str
    kind: str
    event: str
    route: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    traceparent: str | None = None
    #: When the event happened (its intent's time): orders one incident's events.
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Sent:
    """A destination an incident was announced at, and the route that chose it."""

    destination_type: str
    destination: str
    route: str | None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    tenant_id: str
    incident_id: str
    destination_type: str
    destination: str
    route: str | None
    kind: str
    event: str
    status: str
    attempts: int
    version_wanted: int
    version_sent: int
    message_ref: str | None
    post_started_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    detail: dict[str, Any]
    #: The trace the delivery span continues: its latest intent's.
    traceparent: str | None = None

    @property
    def lane(self) -> str:
        """Deliveries of one lane are sent one after another; lanes run side by side,
        so a slow Slack channel never delays mail, webhooks or another channel."""
        return f"{self.tenant_id}:{self.destination_type}:{self.destination}"


def write_intents(
    conn: sa.Connection,
    tenant_id: str,
    intents: Sequence[tuple[str, str, dict[str, Any]]],
    traces: Mapping[str, str] | None = None,
) -> None:
    """``(incident_id, event, detail)`` rows, in the caller's transaction; ``traces``:
    incident id -> traceparent of the decision behind its intents. A ``detail`` may
    hold the incident's state at this moment under ``STATE``."""
    traces = traces or {}
    if intents:
        now = datetime.now(UTC)
        conn.execute(
            t.notification_intents.insert(),
            [
                {
                    "tenant_id": tenant_id,
                    "incident_id": incident_id,
                    "event": event,
                    "detail": detail,
                    "created_at": now,
                    "traceparent": traces.get(incident_id),
                }
                for incident_id, event, detail in intents
            ],
        )


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        tenant_id=row.tenant_id,
        incident_id=row.incident_id,
        destination_type=row.destination_type,
        destination=row.destination,
        route=row.route,
        kind=row.kind,
        event=row.event,
        status=row.status,
        attempts=row.attempts,
        version_wanted=row.version_wanted,
        version_sent=row.version_sent,
        message_ref=row.message_ref,
        post_started_at=row.post_started_at,
        delivered_at=row.delivered_at,
        created_at=row.created_at,
        detail=dict(row.detail or {}),
        traceparent=row.traceparent,
    )


def delivery_dict(row: Any) -> dict[str, Any]:
    """A delivery as the API shows it. Webhook URLs may carry a token: only their
    scheme and host are shown."""
    return {
        "id": row.id,
        "incident_id": row.incident_id,
        "destination_type": row.destination_type,
        "destination": shown_destination(row.destination_type, row.destination),
        "route": row.route,
        "kind": row.kind,
        "event": row.event,
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "created_at": iso(row.created_at),
        "delivered_at": iso(row.delivered_at),
        "next_attempt_at": iso(row.next_attempt_at) if row.status == RETRYING else None,
        "message_ref": row.message_ref,
    }


def shown_destination(destination_type: str, destination: str) -> str:
    """A destination as the API shows it: a webhook by scheme and host only (its path
    or user part may carry a token)."""
    if destination_type != "webhook":
        return destination
    scheme, _, rest = destination.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].rpartition('@')[2]}/…"


class SqlOutbox:
    """Intents, deliveries, attempts and destination health; it reads the routes and
    Slack settings the notifier plans and posts with from ``SqlNotifySettings``."""

    def __init__(self, engine: sa.Engine, box: SecretBox) -> None:
        self._engine = engine
        self._settings = SqlNotifySettings(engine, box)

    # --- planning ---------------------------------------------------------------------

    def tenants_with_work(self, now: datetime) -> list[str]:
        """Tenants with intents to plan or deliveries due; on PostgreSQL through a
        security-definer function, the one read that crosses tenants."""
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                return list(conn.execute(_TENANTS_WITH_WORK, {"now": now}).scalars())
            d, n = t.deliveries, t.notification_intents
            due = sa.select(d.c.tenant_id).where(
                d.c.status.in_((PENDING, RETRYING)),
                d.c.next_attempt_at <= now,
                sa.or_(d.c.leased_until.is_(None), d.c.leased_until <= now),
            )
            return list(conn.execute(sa.union(sa.select(n.c.tenant_id), due)).scalars())

    def intents(self, tenant_id: str, limit: int) -> list[Intent]:
        n = t.notification_intents
        with scoped(self._engine, tenant_id) as conn:
            rows = conn.execute(
                sa.select(n).where(n.c.tenant_id == tenant_id).order_by(n.c.seq).limit(limit)
            ).all()
        return [
            Intent(
                r.seq,
                r.tenant_id,
                r.incident_id,
                r.event,
                dict(r.detail),
                r.created_at,
                r.traceparent,
            )
            for r in rows
        ]

    def plan(
        self,
        tenant_id: str,
        done: Sequence[Intent],
        planned: Sequence[Planned],
        now: datetime,
        *,
        pace: timedelta = timedelta(0),
        held: Sequence[tuple[str, str]] = (),
    ) -> bool:
        """Store the deliveries planned from ``done`` and delete those intents, in one
        transaction; ``False`` (and nothing stored) when another notifier planned any
        of them first. ``pace``: an incident's ``updated`` events reach one webhook at
        most this often (``_paced_update``), as its Slack message is updated.
        ``held``: ``(incident_id, event)`` pages quiet hours held back, recorded in
        the same transaction, so an intent is never gone without its held page."""
        n, d = t.notification_intents, t.deliveries
        with scoped(self._engine, tenant_id) as conn:
            seqs = [intent.seq for intent in done]
            deleted = conn.execute(
                n.delete().where(n.c.tenant_id == tenant_id, n.c.seq.in_(seqs))
            ).rowcount
            if deleted != len(seqs):
                conn.rollback()
                return False
            held_sql.hold(conn, tenant_id, held, now)
            for item in planned:
                if item.kind == MESSAGE:
                    self._touch_message(conn, tenant_id, item, now)
                elif item.event == "updated":
                    self._paced_update(conn, tenant_id, item, now, pace)
                else:
                    # A later event tells a newer state than an update still unsent:
                    # that update is dropped, not sent after (or holding back) this one.
                    conn.execute(d.delete().where(_unsent_updates(d, tenant_id, item)))
                    conn.execute(d.insert().values(**_new_row(tenant_id, item, now)))
        return True

    def _touch_message(
        self, conn: sa.Connection, tenant_id: str, item: Planned, now: datetime
    ) -> None:
        d = t.deliveries
        mine = (
            (d.c.tenant_id == tenant_id)
            & (d.c.incident_id == item.incident_id)
            & (d.c.destination_type == item.destination_type)
            & (d.c.destination == item.destination)
            & (d.c.kind == MESSAGE)
        )
        # A message that ran out of tries (Slack down for a while) gets them again with
        # the incident's next change, unless its channel was stopped: it must not say
        # "open" for good after the incident resolved. Stopped, replay resumes it.
        revived = (d.c.status == FAILED) & ~_stopped(d)
        values: dict[str, Any] = {
            "version_wanted": d.c.version_wanted + 1,
            "event": item.event,
            "updated_at": now,
            "status": sa.case(
                (d.c.status == DELIVERED, PENDING), (revived, PENDING), else_=d.c.status
            ),
            "attempts": sa.case((revived, 0), else_=d.c.attempts),
            "next_attempt_at": sa.case((revived, now), else_=d.c.next_attempt_at),
        }
        if item.traceparent is not None:  # the next update continues the latest decision
            values["traceparent"] = item.traceparent
        changed = conn.execute(d.update().where(mine).values(values)).rowcount
        if not changed:
            conn.execute(d.insert().values(**_new_row(tenant_id, item, now)))

    def _paced_update(
        self, conn: sa.Connection, tenant_id: str, item: Planned, now: datetime, pace: timedelta
    ) -> None:
        """An ``updated`` event, paced like a living message: an update not sent yet
        (never leased, so no receiver can have its id) takes this newer state and
        time; otherwise a new one is due ``pace`` after the incident's last event to
        this destination. In a storm a receiver gets one update per interval, the
        latest state last, each under an id of its own."""
        d = t.deliveries
        unsent = conn.execute(
            sa.select(d.c.id)
            .where(_unsent_updates(d, tenant_id, item))
            .order_by(d.c.created_at.desc(), d.c.id.desc())
        ).scalars()
        newest, *older = [*unsent] or [None]
        if newest is not None:
            conn.execute(d.delete().where(d.c.id.in_(older), _unsent_updates(d, tenant_id, item)))
            values: dict[str, Any] = {"detail": item.detail, "created_at": item.at or now}
            if item.traceparent is not None:
                values["traceparent"] = item.traceparent
            folded = conn.execute(
                d.update()
                .where(d.c.id == newest, _unsent_updates(d, tenant_id, item))
                .values(updated_at=now, **values)
            ).rowcount
            if folded:
                return
        last = conn.execute(
            sa.select(sa.func.max(sa.func.coalesce(d.c.delivered_at, d.c.next_attempt_at))).where(
                _same_stream(d, tenant_id, item), d.c.status != FAILED
            )
        ).scalar()
        row = _new_row(tenant_id, item, now)
        if last is not None and last + pace > now:
            row["next_attempt_at"] = last + pace
        conn.execute(d.insert().values(**row))

    # --- sending ----------------------------------------------------------------------

    def lease_due(
        self, tenant_id: str, now: datetime, limit: int, lease: timedelta
    ) -> list[Delivery]:
        """Due deliveries, hidden from other notifiers for ``lease``: a notifier that
        dies mid-send leaves them to be taken again when the lease ends."""
        d = t.deliveries
        with scoped(self._engine, tenant_id) as conn:
            query = (
                sa.select(d.c.id)
                .where(
                    d.c.tenant_id == tenant_id,
                    d.c.status.in_((PENDING, RETRYING)),
                    d.c.next_attempt_at <= now,
                    sa.or_(d.c.leased_until.is_(None), d.c.leased_until <= now),
                    sa.or_(d.c.kind.not_in(ORDERED), ~_waits_for_earlier(d)),
                )
                .order_by(d.c.next_attempt_at, d.c.created_at, d.c.id)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = list(conn.execute(query).scalars())
            if not ids:
                return []
            conn.execute(d.update().where(d.c.id.in_(ids)).values(leased_until=now + lease))
            rows = conn.execute(
                sa.select(d).where(d.c.tenant_id == tenant_id, d.c.id.in_(ids))
            ).all()
        return sorted((_delivery(r) for r in rows), key=lambda x: (x.created_at, x.id))

    def post_started(self, delivery: Delivery, at: datetime) -> None:
        """Written (and committed) before a post that creates a message: after a lost
        answer or a crash, its presence says "look for the message before posting"."""
        d = t.deliveries
        with scoped(self._engine, delivery.tenant_id) as conn:
            conn.execute(
                d.update()
                .where(d.c.id == delivery.id, d.c.post_started_at.is_(None))
                .values(post_started_at=at)
            )

    def forget_message(self, delivery: Delivery) -> None:
        """The living message was deleted in Slack: drop its reference (thread replies
        wait for the new one) and any earlier post mark, before posting it anew."""
        d = t.deliveries
        with scoped(self._engine, delivery.tenant_id) as conn:
            conn.execute(
                d.update()
                .where(d.c.id == delivery.id)
                .values(message_ref=None, post_started_at=None)
            )

    def finish(
        self,
        delivery: Delivery,
        *,
        ok: bool,
        latency_ms: float,
        error: str | None,
        at: datetime,
        retry_at: datetime | None = None,
        message_ref: str | None = None,
        version_sent: int | None = None,
        coalesce_until: datetime | None = None,
        not_posted: bool = False,
        counted: bool = True,
    ) -> None:
        """Record one attempt and its outcome. ``retry_at``: a failure to retry then;
        a failure without it is final. A living message sent at ``version_sent`` stays
        pending while newer versions wait, due at ``coalesce_until``. ``not_posted``:
        the failure says for certain that no message was created (a 429, a refusal),
        so the next attempt need not look for one. ``counted=False``: the attempt is
        recorded but does not use up a try (a rate limit: the next one has its number)."""
        d, attempts = t.deliveries, t.delivery_attempts
        values: dict[str, Any] = {
            "attempts": d.c.attempts + 1 if counted else d.c.attempts,
            "updated_at": at,
            "leased_until": None,
            "last_error": error,
        }
        if message_ref is not None:
            values["message_ref"] = message_ref
        if not_posted:
            values["post_started_at"] = None
        if ok:
            values["delivered_at"] = at
            if version_sent is not None:
                values["version_sent"] = version_sent
                behind = d.c.version_wanted > version_sent
                values["status"] = sa.case((behind, PENDING), else_=DELIVERED)
                values["next_attempt_at"] = coalesce_until or at
            else:
                values["status"] = DELIVERED
        elif retry_at is not None:
            values |= {"status": RETRYING, "next_attempt_at": retry_at}
        else:
            values["status"] = FAILED
        with scoped(self._engine, delivery.tenant_id) as conn:
            conn.execute(d.update().where(d.c.id == delivery.id).values(values))
            conn.execute(
                attempts.insert().values(
                    id=new_id(),
                    tenant_id=delivery.tenant_id,
                    delivery_id=delivery.id,
                    attempt=delivery.attempts + 1,
                    ok=ok,
                    latency_ms=latency_ms,
                    error=error,
                    at=at,
                )
            )

    def release_leases(self) -> None:
        """Hand back every leased delivery: for the sole notifier of an embedded
        install, at its start, when any lease can only be a dead process's."""
        d = t.deliveries
        with self._engine.begin() as conn:
            conn.execute(d.update().where(d.c.leased_until.is_not(None)).values(leased_until=None))

    def release(self, delivery: Delivery, until: datetime) -> None:
        """Hand a leased delivery back without an attempt, due again at ``until`` (its
        lane is paused, or it waits for its thread's first message)."""
        d = t.deliveries
        with scoped(self._engine, delivery.tenant_id) as conn:
            conn.execute(
                d.update()
                .where(d.c.id == delivery.id)
                .values(leased_until=None, next_attempt_at=until)
            )

    def message_ref(self, tenant_id: str, incident_id: str, channel: str) -> str | None:
        """``channel_id:ts`` of the incident's living Slack message in ``channel``."""
        d = t.deliveries
        with scoped(self._engine, tenant_id) as conn:
            return conn.execute(
                sa.select(d.c.message_ref).where(
                    d.c.tenant_id == tenant_id,
                    d.c.incident_id == incident_id,
                    d.c.destination_type == "slack",
                    d.c.destination == channel,
                    d.c.kind == MESSAGE,
                )
            ).scalar()

    def announced(self, tenant_id: str, incident_ids: Sequence[str]) -> dict[str, list[Sent]]:
        """Where each incident was announced (its living messages, mails, webhook
        events), first first: the destinations its later events belong to. One row per
        destination, however many events it was told."""
        d = t.deliveries
        found: dict[str, list[Sent]] = {}
        if not incident_ids:
            return found
        first = sa.func.min(d.c.created_at)
        with scoped(self._engine, tenant_id) as conn:
            rows = conn.execute(
                sa.select(
                    d.c.incident_id, d.c.destination_type, d.c.destination, sa.func.max(d.c.route)
                )
                .where(
                    d.c.tenant_id == tenant_id,
                    d.c.incident_id.in_(sorted(set(incident_ids))),
                    d.c.kind.in_(ANNOUNCING),
                )
                .group_by(d.c.incident_id, d.c.destination_type, d.c.destination)
                .order_by(first, d.c.destination_type, d.c.destination)
            ).all()
        for incident_id, destination_type, destination, route in rows:
            found.setdefault(incident_id, []).append(Sent(destination_type, destination, route))
        return found

    def add_intents(
        self, tenant_id: str, intents: Sequence[tuple[str, str, dict[str, Any]]]
    ) -> None:
        """Intents the notifier itself decides on (escalations)."""
        with scoped(self._engine, tenant_id) as conn:
            write_intents(conn, tenant_id, intents)

    def held_pages(self, tenant_id: str) -> list[HeldPage]:
        """Pages quiet hours held back, oldest first (``storage/held_pages.py``)."""
        with scoped(self._engine, tenant_id) as conn:
            return held_sql.waiting(conn, tenant_id)

    def settle_held(
        self, tenant_id: str, released: Sequence[str], gone: Sequence[str]
    ) -> list[str]:
        """In one transaction: the ``released`` incidents' held pages become ``opened``
        intents again, and the rows of those and of the ``gone`` ones (no page due any
        more) are deleted. A page another notifier released first is not raised twice.
        The incidents released by this call."""
        with scoped(self._engine, tenant_id) as conn:
            taken = held_sql.take(conn, tenant_id, released)
            mine = [incident_id for incident_id in released if incident_id in taken]
            again = [(incident_id, "opened", {RELEASED: True}) for incident_id in mine]
            write_intents(conn, tenant_id, again)
            held_sql.take(conn, tenant_id, gone)
        return mine

    def has_delivery(self, tenant_id: str, incident_id: str) -> bool:
        d = t.deliveries
        with scoped(self._engine, tenant_id) as conn:
            found = conn.execute(
                sa.select(d.c.id).where(d.c.tenant_id == tenant_id, d.c.incident_id == incident_id)
            ).first()
        return found is not None

    def escalated(self, tenant_id: str) -> set[str]:
        """Incidents already escalated (or about to be): each escalates once."""
        d, n = t.deliveries, t.notification_intents
        with scoped(self._engine, tenant_id) as conn:
            query = sa.union(
                sa.select(d.c.incident_id).where(
                    d.c.tenant_id == tenant_id, d.c.event == "escalated"
                ),
                sa.select(n.c.incident_id).where(
                    n.c.tenant_id == tenant_id, n.c.event == "escalated"
                ),
            )
            return set(conn.execute(query).scalars())

    def set_health(
        self, tenant_id: str, destination_type: str, destination: str, state: str, error: str | None
    ) -> None:
        h = t.destination_health
        mine = (
            (h.c.tenant_id == tenant_id)
            & (h.c.destination_type == destination_type)
            & (h.c.destination == destination)
        )
        now = datetime.now(UTC)
        with scoped(self._engine, tenant_id) as conn:
            changed = conn.execute(
                h.update().where(mine).values(state=state, last_error=error, updated_at=now)
            ).rowcount
            if not changed:
                conn.execute(
                    h.insert().values(
                        tenant_id=tenant_id,
                        destination_type=destination_type,
                        destination=destination,
                        state=state,
                        last_error=error,
                        updated_at=now,
                    )
                )

    def health(self, tenant_id: str) -> list[dict[str, Any]]:
        h = t.destination_health
        with scoped(self._engine, tenant_id) as conn:
            rows = conn.execute(
                sa.select(h).where(h.c.tenant_id == tenant_id).order_by(h.c.destination)
            ).all()
        return [
            {
                "destination_type": r.destination_type,
                "destination": shown_destination(r.destination_type, r.destination),
                "state": r.state,
                "last_error": r.last_error,
                "updated_at": iso(r.updated_at),
            }
            for r in rows
        ]

    def stopped(self, tenant_id: str) -> set[tuple[str, str]]:
        """Destinations a permanent error stopped: nothing more is sent to them until
        the tenant fixes them and replays."""
        h = t.destination_health
        with scoped(self._engine, tenant_id) as conn:
            rows = conn.execute(
                sa.select(h.c.destination_type, h.c.destination).where(
                    h.c.tenant_id == tenant_id, h.c.state == "stopped"
                )
            ).all()
        return {(r.destination_type, r.destination) for r in rows}

    # --- reading and replaying --------------------------------------------------------

    def list_deliveries(
        self,
        tenant_id: str,
        limit: int,
        cursor: str | None,
        *,
        status: str | None = None,
        incident_id: str | None = None,
        destination_type: str | None = None,
    ) -> Page:
        d = t.deliveries
        query = sa.select(d).where(d.c.tenant_id == tenant_id)
        if status:
            query = query.where(d.c.status == status)
        if incident_id:
            query = query.where(d.c.incident_id == incident_id)
        if destination_type:
            query = query.where(d.c.destination_type == destination_type)
        if cursor:
            query = query.where(d.c.id < decode_cursor(cursor))
        with scoped(self._engine, tenant_id) as conn:
            rows = conn.execute(query.order_by(d.c.id.desc()).limit(limit + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(
            items=[delivery_dict(r) for r in rows],
            next_cursor=encode_cursor(rows[-1].id) if more and rows else None,
        )

    def incident_deliveries(self, tenant_id: str, incident_id: str) -> list[dict[str, Any]]:
        """Deliveries of one incident, oldest first, each with its attempts."""
        d, a = t.deliveries, t.delivery_attempts
        with scoped(self._engine, tenant_id) as conn:
            rows = conn.execute(
                sa.select(d)
                .where(d.c.tenant_id == tenant_id, d.c.incident_id == incident_id)
                .order_by(d.c.id)
            ).all()
            tried = conn.execute(
                sa.select(a)
                .where(a.c.tenant_id == tenant_id, a.c.delivery_id.in_([r.id for r in rows]))
                .order_by(a.c.at, a.c.attempt)
            ).all()
        by_delivery: dict[str, list[dict[str, Any]]] = {}
        for x in tried:
            by_delivery.setdefault(x.delivery_id, []).append(
                {
                    "attempt": x.attempt,
                    "ok": x.ok,
                    "latency_ms": round(x.latency_ms, 1),
                    "error": x.error,
                    "at": iso(x.at),
                }
            )
        return [{**delivery_dict(r), "tries": by_delivery.get(r.id, [])} for r in rows]

    def replay(self, tenant_id: str, delivery_id: str) -> dict[str, Any] | None:
        """Send a failed delivery again (and un-stop its destination); ``None`` when the
        tenant has no such delivery."""
        d, h = t.deliveries, t.destination_health
        now = datetime.now(UTC)
        with scoped(self._engine, tenant_id) as conn:
            row = conn.execute(
                sa.select(d).where(d.c.tenant_id == tenant_id, d.c.id == delivery_id)
            ).first()
            if row is None:
                return None
            if row.status == FAILED:
                conn.execute(
                    d.update()
                    .where(d.c.id == delivery_id)
                    .values(status=PENDING, next_attempt_at=now, leased_until=None, updated_at=now)
                )
                conn.execute(
                    h.delete().where(
                        h.c.tenant_id == tenant_id,
                        h.c.destination_type == row.destination_type,
                        h.c.destination == row.destination,
                        h.c.state == "stopped",
                    )
                )
            row = conn.execute(sa.select(d).where(d.c.id == delivery_id)).one()
        return delivery_dict(row)

    # --- what the notifier plans and sends with -----------------------------------

    def routes_for_sending(self, tenant_id: str) -> list[dict[str, Any]]:
        """The tenant's routes with their webhook secrets decrypted, for planning."""
        return self._settings.routes_for_sending(tenant_id)

    def slack(self, tenant_id: str) -> SlackSettings | None:
        """The tenant's Slack settings, decrypted, for posting."""
        return self._settings.slack(tenant_id)


def _stopped(d: sa.Table) -> sa.Exists:
    """The delivery's destination was stopped by a permanent error."""
    h = t.destination_health
    return sa.exists().where(
        h.c.tenant_id == d.c.tenant_id,
        h.c.destination_type == d.c.destination_type,
        h.c.destination == d.c.destination,
        h.c.state == "stopped",
    )


def _same_stream(d: sa.Table, tenant_id: str, item: Planned) -> sa.ColumnElement[bool]:
    """The deliveries telling events of ``item``'s incident to ``item``'s destination."""
    return sa.and_(
        d.c.tenant_id == tenant_id,
        d.c.incident_id == item.incident_id,
        d.c.destination_type == item.destination_type,
        d.c.destination == item.destination,
        d.c.kind == item.kind,
    )


def _unsent_updates(d: sa.Table, tenant_id: str, item: Planned) -> sa.ColumnElement[bool]:
    """``updated`` events of the same stream that no receiver can have seen: never
    tried and not leased (a lease may be a send under way, or one that crashed after
    the receiver took it), so a newer state may replace them under their id."""
    return sa.and_(
        _same_stream(d, tenant_id, item),
        d.c.event == "updated",
        d.c.status == PENDING,
        d.c.attempts == 0,
        d.c.leased_until.is_(None),
    )


def _waits_for_earlier(d: sa.Table) -> sa.Exists:
    """An earlier delivery of the same incident, destination and kind still waits: this
    one must not overtake it (a retried ``resolved`` before the ``reopened`` after it,
    whichever notifier holds which)."""
    earlier = d.alias("earlier")
    return sa.exists().where(
        earlier.c.tenant_id == d.c.tenant_id,
        earlier.c.incident_id == d.c.incident_id,
        earlier.c.destination_type == d.c.destination_type,
        earlier.c.destination == d.c.destination,
        earlier.c.kind == d.c.kind,
        earlier.c.status.in_((PENDING, RETRYING)),
        sa.or_(
            earlier.c.created_at < d.c.created_at,
            sa.and_(earlier.c.created_at == d.c.created_at, earlier.c.id < d.c.id),
        ),
    )


def _new_row(tenant_id: str, item: Planned, now: datetime) -> dict[str, Any]:
    return {
        "id": new_id(),
        "tenant_id": tenant_id,
        "incident_id": item.incident_id,
        "destination_type": item.destination_type,
        "destination": item.destination,
        "route": item.route,
        "kind": item.kind,
        "event": item.event,
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": item.at or now,
        "updated_at": now,
        "version_wanted": 1,
        "version_sent": 0,
        "detail": item.detail,
        "traceparent": item.traceparent,
    }
