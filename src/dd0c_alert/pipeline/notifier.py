"""The notifier: turns the outbox into Slack messages, mails and webhook events.

Each pass plans the outbox's intents into deliveries (the tenant's routes decide
where), then leases what is due and hands each delivery to its *lane*: one per
destination (a Slack channel, a mail recipient list, a webhook URL). Lanes run side
by side as asyncio tasks, so a Slack that is slow, rate-limited or down delays
nothing but its own channel. A Slack lane is paced to about one call per second with
short bursts, as Slack asks; a 429 pauses the lane for its ``Retry-After``.

Failures are retried with exponential backoff and jitter (or ``Retry-After``) up to
``max_attempts``, then the delivery is failed and can be replayed. Permanent errors
(a revoked token, an archived channel, a webhook's 4xx) fail at once and stop the
destination, which the API shows, until a replay. A circuit breaker per destination
keeps a dead endpoint from being called on every pass.

Exactly one Slack message per incident and channel, even when a post's answer is
lost or the notifier dies mid-post: ``post_started_at`` is committed before the post
and the message's ``channel:ts`` right after it. A delivery found with the first and
without the second may have posted, so it first looks for its message by the
incident id in the message metadata (``conversations.history``) and adopts it; only
when there is none does it post again.

An incident's later events (updates, resolves, merges, escalations' replies) go where
it was announced first, its living message, mail thread and webhook, besides any
route its current labels match: an incident merged away has no alerts left, and
re-routing it by its empty labels would announce its end where it never began. Each
event says the incident's state as it was when the event happened (a snapshot in
its intent), not as it is when the event is sent.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import structlog
from opentelemetry.trace import SpanKind, StatusCode

from dd0c_alert import tracing
from dd0c_alert.correlation.rules import zone_named
from dd0c_alert.logs import Throttle
from dd0c_alert.notify.base import DeliveryError
from dd0c_alert.notify.email import render_digest_email, render_incident_email
from dd0c_alert.notify.model import DigestView, IncidentView, NoisyAlert, NotificationEvent
from dd0c_alert.notify.routing import (
    EmailDestination,
    Route,
    WebhookDestination,
    every_destination,
    parse_route,
)
from dd0c_alert.notify.slack import (
    ContentRefused,
    MessageGone,
    SlackMessage,
    SlackSender,
    render_incident,
    render_plain,
    render_thread_reply,
)
from dd0c_alert.notify.smtp import SmtpSender
from dd0c_alert.notify.webhook import render_event
from dd0c_alert.storage.memory_state import MemoryCircuitBreaker
from dd0c_alert.storage.outbox import (
    DIGEST,
    MESSAGE,
    NOTICE,
    REPLY,
    STATE,
    Delivery,
    Planned,
    SqlOutbox,
)
from dd0c_alert.storage.ports import CircuitBreaker, IncidentFilter, Store

from . import metrics
from .background import Background
from .incident_view import as_of, incident_view
from .planning import (
    held_back,
    matching,
    not_yet_told,
    page_still_wanted,
    plan_one,
    quiet_for,
    reach,
    remember,
    sent_key,
    snoozed,
)
from .senders import NotifyConfig, Senders

log = structlog.get_logger(__name__)
#: A pass that fails because the database is away fails again at every poll (four
#: times a second by default): one line a minute, with how many were held back, as
#: the worker does; a traceback per poll filled the log for as long as the outage.
_FAILURE_LINES = Throttle(60.0)

MAX_BACKOFF_SECONDS = 600.0


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Lane:
    """One destination's queue, worked through by one task, best first.

    Ordered ``(priority, arrival)``: a first page before replies, mails and events,
    and those before updates of messages already posted. A paced lane (a Slack
    channel: about one call per second, short bursts) keeps one call of its bucket
    in reserve for pages, so the page of a new incident never waits behind the
    updates of older ones in a busy channel.
    """

    key: str
    rate: float
    burst: int
    heap: list[tuple[int, int, Delivery]] = field(default_factory=list)
    order: int = 0
    tokens: float = 0.0
    refilled: float = field(default_factory=time.monotonic)
    paused_until: datetime | None = None
    task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def put(self, delivery: Delivery) -> None:
        self.order += 1
        heapq.heappush(self.heap, (_priority(delivery), self.order, delivery))

    async def next(self) -> Delivery:
        """The best delivery, once the bucket allows a call for it."""
        while self.rate > 0:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.refilled) * self.rate)
            self.refilled = now
            needed = 1.0 if self.heap[0][0] == 0 else 2.0  # one kept for a page
            if self.tokens >= needed:
                self.tokens -= 1
                break
            await asyncio.sleep(min(0.05, (needed - self.tokens) / self.rate))
        return heapq.heappop(self.heap)[2]


class Notifier(Background):
    THREAD_NAME = "notifier"
    #: Open incidents read per query by the escalation check, which pages through all
    #: of them.
    OPEN_PAGE = 200

    def __init__(
        self,
        store: Store,
        outbox: SqlOutbox,
        config: NotifyConfig,
        *,
        breakers: CircuitBreaker | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        super().__init__()
        self._store = store
        self._outbox = outbox
        self._config = config
        self._senders = Senders(outbox, config)
        self._breakers = breakers or MemoryCircuitBreaker()
        self._clock = clock
        self._lanes: dict[str, _Lane] = {}
        #: Deliveries leased by this process and not finished yet.
        self._in_flight: set[str] = set()
        self._health: dict[tuple[str, str, str], str] = {}
        self._escalation_due = 0.0
        self.sent = 0
        self.last_error: str | None = None

    # --- lifecycle --------------------------------------------------------------------

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        while not self.stopping:
            try:
                await self.run_once()
            except Exception as exc:  # the database failed: log and try again
                self.last_error = repr(exc)
                held = _FAILURE_LINES.allow(type(exc).__name__)
                if held is not None:
                    log.exception("notifier_pass_failed", repeated=held)
            await asyncio.to_thread(self.pause, self._config.poll_seconds)
        await self.drain(timeout=5)
        for lane in self._lanes.values():
            if lane.task is not None:
                lane.task.cancel()

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queued delivery of this process was attempted."""
        deadline = time.monotonic() + timeout
        while self._in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    # --- one pass ---------------------------------------------------------------------

    async def run_once(self) -> int:
        """Plan what the outbox holds, queue what is due; the number queued."""
        now = self._clock()
        queued = 0
        # Database work runs in a thread, so the lanes keep sending meanwhile: planning a
        # storm's intents must not hold back the page of a new incident.
        for tenant_id in await asyncio.to_thread(self._outbox.tenants_with_work, now):
            await asyncio.to_thread(self.plan, tenant_id, now)
            lease = timedelta(seconds=self._config.lease_seconds)
            due = await asyncio.to_thread(self._outbox.lease_due, tenant_id, now, 500, lease)
            for delivery in due:
                if delivery.id not in self._in_flight:
                    self._queue(delivery)
                    queued += 1
        if time.monotonic() >= self._escalation_due:
            self._escalation_due = time.monotonic() + self._config.escalation_check_seconds
            self.release_quiet(now)
            self.escalate(now)
            self.digests(now)
        return queued

    def _queue(self, delivery: Delivery) -> None:
        lane = self._lanes.get(delivery.lane)
        if lane is None:
            slack = delivery.destination_type == "slack"
            lane = self._lanes[delivery.lane] = _Lane(
                delivery.lane,
                self._config.slack_per_second if slack else 0.0,
                self._config.slack_burst,
            )
        if lane.task is None or lane.task.done():
            lane.task = asyncio.get_running_loop().create_task(self._work(lane))
        self._in_flight.add(delivery.id)
        lane.put(delivery)

    async def _work(self, lane: _Lane) -> None:
        while lane.heap:
            paused = lane.paused_until
            if paused is not None and paused > self._clock():
                delivery = heapq.heappop(lane.heap)[2]
            else:
                paused, delivery = None, await lane.next()
            try:
                if paused is not None:
                    self._outbox.release(delivery, paused)
                    continue
                await self._deliver(delivery, lane)
            except Exception:
                log.exception("delivery_crashed", delivery_id=delivery.id)
            finally:
                self._in_flight.discard(delivery.id)

    # --- planning ---------------------------------------------------------------------

    def plan(self, tenant_id: str, now: datetime) -> None:
        intents = self._outbox.intents(tenant_id, 500)
        if not intents:
            return
        routes = self._routes(tenant_id)
        slack = self._outbox.slack(tenant_id)
        default_channel = slack.default_channel if slack else None
        if not routes and default_channel is None:
            # Nowhere to send anything: settle the intents without reading incidents
            # (in a storm, one incident's detail can cover hundreds of thousands of
            # alerts, and this thread shares the worker's interpreter).
            self._outbox.plan(tenant_id, intents, [], now)
            return
        details: dict[str, dict[str, Any] | None] = {}
        announced = self._outbox.announced(tenant_id, [i.incident_id for i in intents])
        planned: list[Planned] = []
        held: list[tuple[str, str]] = []
        for intent in intents:
            if intent.incident_id not in details:
                details[intent.incident_id] = self._store.notification_detail(
                    tenant_id, intent.incident_id
                )
            detail = details[intent.incident_id]
            if detail is None:
                continue
            sent = announced.setdefault(intent.incident_id, [])
            made = [
                replace(item, traceparent=intent.traceparent, at=intent.created_at)
                for item in plan_one(
                    intent.incident_id,
                    intent.event,
                    intent.detail,
                    detail,
                    routes,
                    default_channel,
                    now,
                    sent,
                )
            ]
            if held_back(intent.event, made, detail, routes, now):
                held.append((intent.incident_id, intent.event))
            remember(sent, made)
            planned += made
        pace = timedelta(seconds=self._config.coalesce_seconds)
        self._outbox.plan(tenant_id, intents, planned, now, pace=pace, held=held)

    def _routes(self, tenant_id: str) -> list[Route]:
        routes = []
        for stored in self._outbox.routes_for_sending(tenant_id):
            try:
                routes.append(parse_route(stored))
            except ValueError as exc:  # saved by an older version: skip it, say so
                log.warning("route_unreadable", tenant_id=tenant_id, error=str(exc)[:200])
        return routes

    # --- quiet hours ------------------------------------------------------------------

    def release_quiet(self, now: datetime) -> None:
        """Pages a route's quiet hours held back, sent once nothing holds them: as in
        Alertmanager, where a muted alert still firing is notified at the first flush
        after the mute ends. Planning recorded each held page (``held_pages``), so the
        release does not depend on the routes of now: quiet hours removed, a route
        deleted, renamed or re-matched while a page waited, it still goes wherever the
        incident reaches now (the default channel, when no route takes it any more).
        A tenant without held pages costs one primary-key read."""
        for tenant in self._store.list_tenants():
            held = self._outbox.held_pages(tenant.id)
            if held:
                self._release(
                    tenant.id, [page.incident_id for page in held if not page.pending], now
                )

    def _release(self, tenant_id: str, waiting: list[str], now: datetime) -> None:
        """An incident still open, paged and unacknowledged that now reaches a
        destination it was never announced at gets its ``opened`` intent again, for
        those destinations only (``RELEASED``); one snoozed waits for the snooze to
        end. A row goes when its incident was resolved, acknowledged, merged or purged
        meanwhile, or when nothing holds it any more and nobody is left to tell (a
        later event told them, or no route takes it now), so the table keeps open,
        waiting incidents only and needs no retention. Those with an intent pending
        (``waiting`` leaves them out) wait for it to be planned: it may announce
        them, or hold them again."""
        routes = self._routes(tenant_id)
        slack = self._outbox.slack(tenant_id)
        default_channel = slack.default_channel if slack else None
        announced = self._outbox.announced(tenant_id, waiting)
        released: list[str] = []
        gone: list[str] = []
        for incident_id in waiting:
            detail = self._store.notification_detail(tenant_id, incident_id)
            if detail is None or not page_still_wanted(detail):
                gone.append(incident_id)
                continue
            sent = announced.get(incident_id, [])
            untold = not_yet_told(reach(detail, routes, default_channel, now, sent), sent)
            if untold and not snoozed(detail, now):
                released.append(incident_id)
            elif not untold and not quiet_for(detail, routes, now, {sent_key(x) for x in sent}):
                gone.append(incident_id)
        if released or gone:
            raised = self._outbox.settle_held(tenant_id, released, gone)
            log.info(
                "held_pages_settled", tenant_id=tenant_id, released=len(raised), dropped=len(gone)
            )

    # --- escalation -------------------------------------------------------------------

    def _open_incidents(self, tenant_id: str) -> Iterator[dict[str, Any]]:
        """Every open incident of the tenant, newest first, a page at a time: the
        newest page alone left the oldest of a storm (those waiting longest) never
        escalated."""
        cursor: str | None = None
        while True:
            page = self._store.list_incidents(
                tenant_id, IncidentFilter(status="open"), self.OPEN_PAGE, cursor
            )
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def escalate(self, now: datetime) -> None:
        """Open, paged, unacknowledged incidents past a matching route's escalation
        time get one ``escalated`` intent (a second destination, a thread reply). A
        snoozed one waits for its snooze to end: snooze promises no reminders until
        then, and, as PagerDuty's, its escalation resumes when it runs out."""
        for tenant in self._store.list_tenants():
            routes = [r for r in self._routes(tenant.id) if r.escalation is not None]
            if not routes:
                continue
            done = self._outbox.escalated(tenant.id)
            found = []
            for item in self._open_incidents(tenant.id):
                if item["id"] in done or not item.get("paged") or snoozed(item, now):
                    continue
                opened = datetime.fromisoformat(item["opened_at"].replace("Z", "+00:00"))
                detail = self._store.notification_detail(tenant.id, item["id"])
                if detail is None:
                    continue
                for candidate in matching(routes, detail, now):
                    after = candidate.escalation.after_seconds if candidate.escalation else 0
                    if now - opened >= timedelta(seconds=after):
                        found.append((item["id"], "escalated", {"route": candidate.name}))
                        break
            self._outbox.add_intents(tenant.id, found)

    # --- daily digest -----------------------------------------------------------------

    def digests(self, now: datetime) -> None:
        """Once a day, after ``digest_hour`` on the tenant's clock (its ``time_zone``,
        UTC unless set), a digest of its day before to every mail address the tenant's
        routes name: the people who get its incident mails.

        The digest due is the latest whose hour has passed, so one the notifier was
        down for goes out late rather than never: down from before 08:00 until after
        midnight, the day's digest was skipped (the next pass asked for the next
        day's). Only that one: a week down sends one digest, not seven. A tenant
        created after a day ended gets none for it (a new install's first pass before
        the hour would send one of the day before it existed)."""
        hour = self._config.digest_hour
        if hour is None:
            return
        for tenant in self._store.list_tenants():
            zone = self._zone(tenant.id)
            day = (now.astimezone(zone) - timedelta(hours=hour)).date() - timedelta(days=1)
            key = f"digest-{day.isoformat()}"
            if tenant.created_at >= _day_span(day, zone)[1]:
                continue
            addresses = sorted(
                {address for r in self._routes(tenant.id) for address in _mail_addresses(r)}
            )
            if not addresses or self._outbox.has_delivery(tenant.id, key):
                continue
            planned = Planned(key, "email", ",".join(addresses), DIGEST, "digest")
            self._outbox.plan(tenant.id, [], [planned], now)

    def _zone(self, tenant_id: str) -> tzinfo:
        """The tenant's clock; UTC when this machine's zone database lacks its zone
        (one older than the one it was set with)."""
        try:
            return zone_named(self._store.tenant_settings(tenant_id).time_zone)
        except ValueError:
            return UTC

    # --- sending ----------------------------------------------------------------------

    async def _deliver(self, delivery: Delivery, lane: _Lane) -> None:
        """One attempt, in a span continuing the trace of the decision behind it (when
        tracing is on); its log lines carry that trace id either way."""
        bound = {"tenant_id": delivery.tenant_id, "incident_id": delivery.incident_id}
        trace_id = tracing.trace_id_of(delivery.traceparent)
        if trace_id is not None:  # else the delivery span's own, when tracing is on
            bound["trace_id"] = trace_id
        with structlog.contextvars.bound_contextvars(**bound):
            if not tracing.enabled():
                await self._attempt(delivery, lane)
                return
            parent = tracing.extract({tracing.TRACEPARENT: delivery.traceparent or ""})
            with tracing.tracer().start_as_current_span(
                f"dd0c.notify.{delivery.destination_type}",
                context=parent,
                kind=SpanKind.CLIENT,
                attributes={
                    "dd0c.tenant_id": delivery.tenant_id,
                    "dd0c.incident_id": delivery.incident_id,
                    "dd0c.delivery_id": delivery.id,
                    "dd0c.delivery.kind": delivery.kind,
                    "dd0c.delivery.event": delivery.event,
                    "dd0c.delivery.attempt": delivery.attempts + 1,
                },
            ) as span:
                outcome = await self._attempt(delivery, lane)
                span.set_attribute("dd0c.delivery.outcome", outcome)
                if outcome not in ("delivered", "deferred"):
                    span.set_status(StatusCode.ERROR, outcome)

    async def _attempt(self, delivery: Delivery, lane: _Lane) -> str:
        """Send once; the outcome: ``delivered``, ``deferred`` (released for later),
        ``stopped`` or the failure's reason."""
        now = self._clock()
        key = (delivery.tenant_id, delivery.destination_type, delivery.destination)
        if (key[1], key[2]) in self._outbox.stopped(delivery.tenant_id):
            error = "destination stopped after a permanent error: replay once it is fixed"
            self._outbox.finish(delivery, ok=False, latency_ms=0, error=error, at=now)
            return "stopped"
        circuit = f"notify:{delivery.lane}"
        wait = self._breakers.acquire(circuit)
        if wait > 0:
            self._outbox.release(delivery, now + timedelta(seconds=wait))
            return "deferred"
        started = time.perf_counter()
        try:
            ref = await self._send(delivery)
        except _NotYet as wait_for:
            self._outbox.release(delivery, now + timedelta(seconds=wait_for.seconds))
            return "deferred"
        except DeliveryError as error:
            metrics.DELIVERIES.labels(delivery.destination_type, error.reason).inc()
            self._failed(delivery, lane, error, (time.perf_counter() - started) * 1000)
            if error.retry and error.reason != "rate_limited":
                self._breakers.record_failure(circuit)
            return error.reason
        except Exception as exc:  # a bug: retried like a server error, never dropped
            log.exception("delivery_failed_unexpectedly", delivery_id=delivery.id)
            bug = DeliveryError("server", f"internal error: {type(exc).__name__}", retry=True)
            self._failed(delivery, lane, bug, (time.perf_counter() - started) * 1000)
            return "internal_error"
        self._breakers.record_success(circuit)
        metrics.DELIVERIES.labels(delivery.destination_type, "delivered").inc()
        metrics.DELIVERY_SECONDS.labels(delivery.destination_type).observe(
            time.perf_counter() - started
        )
        done = self._clock()
        self._outbox.finish(
            delivery,
            ok=True,
            latency_ms=(time.perf_counter() - started) * 1000,
            error=None,
            at=done,
            message_ref=ref,
            version_sent=delivery.version_wanted if delivery.kind == MESSAGE else None,
            coalesce_until=done + timedelta(seconds=self._config.coalesce_seconds),
        )
        self.sent += 1
        self._set_health(key, "ok", None)
        log.info(
            "delivery_sent",
            delivery_id=delivery.id,
            destination_type=delivery.destination_type,
            kind=delivery.kind,
            incident_event=delivery.event,
            attempt=delivery.attempts + 1,
        )
        return "delivered"

    def _failed(self, delivery: Delivery, lane: _Lane, error: DeliveryError, ms: float) -> None:
        now = self._clock()
        key = (delivery.tenant_id, delivery.destination_type, delivery.destination)
        attempt = delivery.attempts + 1
        not_posted = error.reason != "unknown_outcome"
        log.warning(
            "delivery_failed",
            delivery_id=delivery.id,
            destination_type=delivery.destination_type,
            reason=error.reason,
            attempt=attempt,
            error=error.message[:300],
        )
        # A 429 asks to slow down, it is no failure: it never uses up the tries, or a
        # channel rate-limited through a storm would freeze its messages for good.
        paced = error.reason == "rate_limited"
        if error.retry and (paced or attempt < self._config.max_attempts):
            wait = error.retry_after
            if wait is None:
                wait = min(MAX_BACKOFF_SECONDS, 2.0**attempt) * random.uniform(0.5, 1.0)
            retry_at = now + timedelta(seconds=wait)
            if paced:
                lane.paused_until = retry_at
            self._outbox.finish(
                delivery,
                ok=False,
                latency_ms=ms,
                error=error.message,
                at=now,
                retry_at=retry_at,
                not_posted=not_posted,
                counted=not paced,
            )
            state = "rate_limited" if paced else "failing"
            self._set_health(key, state, error.message)
            return
        self._outbox.finish(
            delivery, ok=False, latency_ms=ms, error=error.message, at=now, not_posted=not_posted
        )
        if isinstance(error, ContentRefused):
            return  # this one message was refused: the destination keeps working
        self._set_health(key, "stopped" if error.permanent else "failing", error.message)
        if error.permanent and delivery.kind != NOTICE:
            self._tell_others(delivery, error.message, now)

    def _tell_others(self, failed: Delivery, error: str, now: datetime) -> None:
        """A destination that stopped for good is said so through the tenant's other
        destinations (its default Slack channel, the addresses of its routes), so the
        people who would have been paged learn that they were not."""
        text = (
            f"dd0c/alert stopped notifying {failed.destination_type} "
            f"{_shown(failed)} after a permanent error ({error[:200]}). "
            f"Fix it, then replay the failed deliveries (GET /v1/deliveries?status=failed)."
        )
        others: list[tuple[str, str]] = []
        slack = self._outbox.slack(failed.tenant_id)
        if slack is not None:
            others.append(("slack", slack.default_channel))
        for candidate in self._routes(failed.tenant_id):
            others += [("email", address) for address in _mail_addresses(candidate)]
        stopped = self._outbox.stopped(failed.tenant_id)
        planned = [
            Planned(
                failed.incident_id,
                kind,
                target,
                NOTICE,
                "destination_stopped",
                detail={"text": text},
            )
            for kind, target in dict.fromkeys(others)
            if (kind, target) != (failed.destination_type, failed.destination)
            and (kind, target) not in stopped
        ]
        if planned:
            self._outbox.plan(failed.tenant_id, [], planned, now)

    def _set_health(self, key: tuple[str, str, str], state: str, error: str | None) -> None:
        if self._health.get(key) != state:
            self._health[key] = state
            self._outbox.set_health(*key, state, error)

    async def _send(self, delivery: Delivery) -> str | None:
        if delivery.kind == DIGEST:
            return await self._digest(delivery)
        if delivery.kind == NOTICE:
            return await self._notice(delivery)
        detail = await asyncio.to_thread(
            self._store.notification_detail, delivery.tenant_id, delivery.incident_id
        )
        if detail is None:  # purged by retention meanwhile: nothing left to tell
            return None
        if delivery.kind != MESSAGE:  # one event: the state of its moment
            detail = as_of(detail, delivery.detail.get(STATE))
        url = f"{self._config.public_url.rstrip('/')}/incidents/{delivery.incident_id}"
        view = incident_view(detail, delivery.tenant_id, url)
        event: Any = delivery.event
        if delivery.destination_type == "slack":
            return await self._slack(delivery, view, event)
        if delivery.destination_type == "email":
            return await self._mail(delivery, view, event)
        return await self._webhook(delivery, view, event)

    def _slack_sender(self, tenant_id: str) -> SlackSender:
        return self._senders.slack(tenant_id)

    async def _slack(self, delivery: Delivery, view: IncidentView, event: Any) -> str | None:
        sender = self._slack_sender(delivery.tenant_id)
        channel = delivery.destination
        if delivery.kind == REPLY:
            ref = self._outbox.message_ref(delivery.tenant_id, delivery.incident_id, channel)
            if ref is None:
                raise _NotYet(2.0)  # the thread's first message is not posted yet
            channel_id, _, ts = ref.partition(":")
            text = render_thread_reply(view, event, str(delivery.detail.get("note", "")))
            await sender.reply(channel_id, ts, text)
            return None
        ref = await self._living_ref(sender, delivery, view.id)
        if ref is None and delivery.message_ref is None and event == "updated":
            # Grown before its first post (a storm): nobody has seen it yet, and the
            # post's text is the phone's notification, which must not say "updated".
            event = "opened"
        try:
            return await self._show(sender, delivery, ref, render_incident(view, event))
        except ContentRefused as refused:
            # Slack refused what the alerts made of the message: announce the incident
            # all the same, plainly. Refused again, only this delivery fails (below).
            log.warning("slack_message_refused", delivery_id=delivery.id, error=refused.message)
            return await self._show(sender, delivery, ref, render_plain(view, event))

    async def _living_ref(
        self, sender: SlackSender, delivery: Delivery, incident_id: str
    ) -> str | None:
        """The ``channel:ts`` of the incident's message here: the one recorded, or one
        a post whose answer was lost may have left (found by its metadata)."""
        ref = delivery.message_ref
        if ref is None and delivery.post_started_at is not None:
            since = delivery.post_started_at - timedelta(minutes=5)
            try:
                found = await sender.find_existing(delivery.destination, incident_id, since)
            except DeliveryError as error:
                if "channel_not_found" not in error.message:
                    raise
                found = None  # no such channel yet: nothing can have been posted there
            if found is not None:
                ref = f"{found[0]}:{found[1]}"
                log.info("slack_message_adopted", delivery_id=delivery.id, ref=ref)
        return ref

    async def _show(
        self, sender: SlackSender, delivery: Delivery, ref: str | None, message: SlackMessage
    ) -> str:
        """Update the living message at ``ref``, or post it (again, if it was deleted)."""
        if ref is not None:
            channel_id, _, ts = ref.partition(":")
            try:
                await sender.update(channel_id, ts, message.blocks, message.text)
                return ref
            except MessageGone:
                # Deleted in Slack: the incident still needs its message (and the channel
                # must not be stopped for it), so a new one is posted and followed.
                log.warning("slack_message_gone", delivery_id=delivery.id, ref=ref)
                await asyncio.to_thread(self._outbox.forget_message, delivery)
        self._outbox.post_started(delivery, self._clock())
        receipt = await sender.post(
            delivery.destination,
            message.blocks,
            message.text,
            delivery.incident_id,
            delivery.tenant_id,
        )
        return receipt.ref

    async def _mail(
        self, delivery: Delivery, view: IncidentView, event: NotificationEvent
    ) -> str | None:
        smtp = self._smtp()
        mail = render_incident_email(
            view,
            event,
            sender=self._config.mail_from,
            to=delivery.destination.split(","),
            domain=self._mail_domain(),
            at=self._clock(),
            event_id=delivery.id,
        )
        receipt = await smtp.send(mail)
        return receipt.ref

    async def _webhook(
        self, delivery: Delivery, view: IncidentView, event: NotificationEvent
    ) -> str | None:
        secret = self._webhook_secret(delivery)
        body = render_event(view, event, event_id=delivery.id, at=delivery.created_at)
        receipt = await self._senders.webhook().send(
            delivery.destination, body, webhook_id=delivery.id, secret=secret
        )
        return receipt.ref

    async def _digest(self, delivery: Delivery) -> str | None:
        day = date.fromisoformat(delivery.incident_id.removeprefix("digest-"))
        counts = self._store.digest(
            delivery.tenant_id, *_day_span(day, self._zone(delivery.tenant_id))
        )
        tenant = self._store.get_tenant(delivery.tenant_id)
        view = DigestView(
            tenant_name=tenant.name if tenant else delivery.tenant_id,
            day=day,
            incidents=counts["incidents"],
            pages=counts["pages"],
            alerts=counts["alerts"],
            top_noisy=tuple(NoisyAlert(t, f, n) for t, f, n in counts["top_noisy"]),
            open_suggestions=counts["open_suggestions"],
            url=f"{self._config.public_url.rstrip('/')}/analytics",
        )
        mail = render_digest_email(
            view,
            sender=self._config.mail_from,
            to=delivery.destination.split(","),
            domain=self._mail_domain(),
            at=self._clock(),
        )
        return (await self._smtp().send(mail)).ref

    async def _notice(self, delivery: Delivery) -> str | None:
        text = str(delivery.detail.get("text", ""))
        if delivery.destination_type == "slack":
            sender = self._slack_sender(delivery.tenant_id)
            block = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
            receipt = await sender.post(
                delivery.destination, [block], text, f"notice-{delivery.id}", delivery.tenant_id
            )
            return receipt.ref
        mail = EmailMessage()
        mail["Subject"] = "dd0c/alert: a notification destination stopped"
        mail["From"] = self._config.mail_from
        mail["To"] = delivery.destination
        mail["Message-ID"] = make_msgid("notice", self._mail_domain())
        mail.set_content(text)
        return (await self._smtp().send(mail)).ref

    def _smtp(self) -> SmtpSender:
        return self._senders.smtp()

    def _mail_domain(self) -> str:
        return self._senders.mail_domain()

    def _webhook_secret(self, delivery: Delivery) -> str:
        """The secret of the route's webhook, read at send time: secrets are never
        copied into deliveries."""
        for candidate in self._routes(delivery.tenant_id):
            for destination in every_destination(candidate):
                if isinstance(destination, WebhookDestination) and (
                    destination.url == delivery.destination
                ):
                    return destination.secret
        raise DeliveryError("client", "the route of this webhook was removed", retry=False)


def _mail_addresses(candidate: Route) -> list[str]:
    return [
        a for d in every_destination(candidate) if isinstance(d, EmailDestination) for a in d.to
    ]


def _shown(delivery: Delivery) -> str:
    """A destination as a notice may show it: a webhook URL can hold a token."""
    if delivery.destination_type == "webhook":
        return delivery.destination.split("//", 1)[-1].split("/", 1)[0]
    return delivery.destination


def _priority(delivery: Delivery) -> int:
    if delivery.kind == MESSAGE:
        return 0 if delivery.message_ref is None else 2
    return 1


class _NotYet(Exception):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


def _day_span(day: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """A calendar day on a clock, as UTC bounds ``[start, end)``: 23 or 25 hours long
    on the days its daylight saving time starts or ends."""
    midnight = datetime.min.time()
    start = datetime.combine(day, midnight, zone)
    end = datetime.combine(day + timedelta(days=1), midnight, zone)
    return start.astimezone(UTC), end.astimezone(UTC)
