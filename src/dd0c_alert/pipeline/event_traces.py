"""The spans of one worker batch, while tracing is on (``dd0c_alert.tracing``).

A batch holds events of many webhooks, so it cannot belong to any one of their traces.
The batch gets a span of its own, *linked* to the context each event's webhook left in
its queue message (a trace viewer lists the deliveries a batch handled), and each event
gets a *child* span continued from that context, linked back to the batch. Links alone
would leave every webhook's trace ending at the queue; the child span is what makes one
trace run from the webhook through its decision, and its ``traceparent`` is the one the
outbox keeps for the notifier's delivery span.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, StatusCode

from dd0c_alert import tracing
from dd0c_alert.storage.ports import RawEvent


class BatchTrace:
    """The batch span and one span per event, ended together by :meth:`end`."""

    def __init__(self, events: Sequence[RawEvent]) -> None:
        tracer = tracing.tracer()
        parents = {e.event_id: tracing.extract(e.headers) for e in events}
        links = []
        for context in parents.values():
            if context is not None:
                links.append(Link(trace.get_current_span(context).get_span_context()))
        self.batch = tracer.start_span(
            "dd0c.worker.batch",
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={"dd0c.batch.events": len(events)},
        )
        back = [Link(self.batch.get_span_context())]
        self._spans = {
            e.event_id: tracer.start_span(
                "dd0c.worker.event",
                context=parents[e.event_id],
                kind=SpanKind.CONSUMER,
                links=back,
                attributes={
                    "dd0c.tenant_id": e.tenant_id,
                    "dd0c.event_id": e.event_id,
                    "dd0c.provider": e.provider,
                    "dd0c.attempt": e.attempts,
                },
            )
            for e in events
        }

    def traceparents(self) -> dict[str, str]:
        """Each event's span as a ``traceparent``: what the outbox keeps."""
        found = {}
        for event_id, span in self._spans.items():
            traceparent = tracing.traceparent_of(span)
            if traceparent is not None:
                found[event_id] = traceparent
        return found

    @contextmanager
    def batch_current(self) -> Iterator[None]:
        with trace.use_span(self.batch, end_on_exit=False):
            yield

    @contextmanager
    def current(self, event_id: str) -> Iterator[None]:
        """The event's span is current: log lines written meanwhile carry its trace."""
        span = self._spans.get(event_id)
        if span is None:
            yield
            return
        with trace.use_span(span, end_on_exit=False, record_exception=False):
            yield

    def decided(self, event_id: str, incident_ids: Sequence[str], outcomes: Sequence[str]) -> None:
        span = self._spans.get(event_id)
        if span is not None:
            span.set_attribute("dd0c.incident_ids", list(incident_ids))
            span.set_attribute("dd0c.outcomes", list(outcomes))

    def failed(self, event_id: str, error: str) -> None:
        span = self._spans.get(event_id)
        if span is not None:
            span.set_status(StatusCode.ERROR, error)

    def end(self) -> None:
        for span in self._spans.values():
            span.end()
        self.batch.end()
