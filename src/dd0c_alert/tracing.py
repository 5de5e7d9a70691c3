"""OpenTelemetry traces: one trace from a webhook through its decision to the Slack call.

Only the OpenTelemetry API is a dependency; the SDK and the OTLP exporter come with the
``otel`` extra (``pip install 'dd0c-alert[otel]'``). Tracing is off unless
``DD0C_OTEL_ENABLED=true`` or the standard ``OTEL_TRACES_EXPORTER`` /
``OTEL_EXPORTER_OTLP_ENDPOINT`` variables ask for it (``OTEL_SDK_DISABLED=true`` wins);
the SDK then reads every other ``OTEL_*`` variable itself (endpoint, headers, sampler,
batch sizes, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``).

While tracing is off, :func:`enabled` is false and the hot paths skip every span call:
a webhook then costs one module-global read more than before. A sender's own
``traceparent`` header is still kept with the event, so the ids it carries reach the
per-event log line either way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import structlog
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = structlog.get_logger(__name__)

INSTRUMENTATION = "dd0c_alert"
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_PROPAGATOR = TraceContextTextMapPropagator()
#: version-trace id-parent id-flags, then a later version's fields (W3C Trace Context).
_TRACEPARENT_RE = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
#: Longer is not a header any tracer sends: no need to scan it.
_TRACEPARENT_MAX = 512
_tracer: trace.Tracer | None = None


def enabled() -> bool:
    """Whether spans are recorded (an SDK provider is in use)."""
    return _tracer is not None


def tracer() -> trace.Tracer:
    """The tracer of dd0c's own spans; only while :func:`enabled`."""
    if _tracer is None:
        raise RuntimeError("tracing is off")
    return _tracer


def use(provider: TracerProvider | None) -> None:
    """Record dd0c's spans with ``provider`` (None: stop). Kept apart from the global
    provider, which can be set once per process: tests switch tracing on and off."""
    global _tracer  # noqa: PLW0603 - one switch read on every webhook
    _tracer = provider.get_tracer(INSTRUMENTATION) if provider is not None else None


def wanted(setting: bool | None, environ: Mapping[str, str] = os.environ) -> bool:
    """``DD0C_OTEL_ENABLED`` when given; otherwise the standard OpenTelemetry variables
    decide."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if setting is not None:
        return setting
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def setup(setting: bool | None, roles: frozenset[str]) -> bool:
    """Install the SDK's tracer provider with its exporter when tracing is wanted;
    whether it now is. Without the ``otel`` extra it says what to install."""
    if not wanted(setting):
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )
    except ImportError:
        log.warning(
            "tracing_unavailable",
            fix="install the SDK and exporter: pip install 'dd0c-alert[otel]'",
        )
        return False
    kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    exporter: SpanExporter
    if kind == "console":
        exporter = ConsoleSpanExporter()
    else:
        if kind not in ("otlp", "none"):
            log.warning("tracing_exporter_unknown", exporter=kind, using="otlp")
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning("tracing_unavailable", fix="pip install 'dd0c-alert[otel]'")
            return False
        exporter = OTLPSpanExporter()
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override these (Resource.create).
    resource = Resource.create(
        {"service.name": "dd0c-alert", "dd0c.roles": ",".join(sorted(roles))}
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    use(provider)
    log.info("tracing_on", exporter=kind)
    return True


def extract(carrier: Mapping[str, str]) -> Context | None:
    """The remote parent a ``traceparent`` in ``carrier`` names; None if it names none."""
    if TRACEPARENT not in carrier:
        return None
    context = _PROPAGATOR.extract(carrier)
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def span_context(traceparent: str | None) -> trace.SpanContext | None:
    """The span a stored ``traceparent`` names, for a link; None if it names none."""
    if not traceparent:
        return None
    context = extract({TRACEPARENT: traceparent})
    return None if context is None else trace.get_current_span(context).get_span_context()


def inject(headers: MutableMapping[str, str]) -> None:
    """Put the current span's context in ``headers``, replacing a sender's: the queue
    message then names the webhook span, which the worker continues."""
    headers.pop(TRACESTATE, None)
    _PROPAGATOR.inject(headers)


def traceparent_of(span: trace.Span) -> str | None:
    """The W3C ``traceparent`` naming ``span``; None for an invalid span."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def sender_traceparent(value: str | None) -> str | None:
    """A sender's ``traceparent`` header as dd0c keeps it: the W3C version-00 form of
    the span it names, or None when it names none (malformed, not lower-case hex,
    version ``ff``, zero ids, a version 00 with more fields). It is anyone's input:
    kept as sent, its "trace id" reached the log lines unchecked (escapes, any text)
    and its kilobytes the deliveries' 64-character ``traceparent`` column, which
    PostgreSQL refused, failing the batch. A later version's extra fields are dropped,
    as the specification asks of a version-00 reader."""
    if not value or len(value) > _TRACEPARENT_MAX:
        return None
    match = _TRACEPARENT_RE.fullmatch(value)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == "0" * 32:
        return None
    if span_id == "0" * 16:
        return None
    return f"00-{trace_id}-{span_id}-{flags}"


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id in a ``traceparent`` (``00-<trace id>-<span id>-<flags>``); None
    unless it is a valid one (see :func:`sender_traceparent`)."""
    checked = sender_traceparent(traceparent)
    return None if checked is None else checked[3:35]


def add_trace_id(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the current span's trace and span ids on every log line
    written while a span is current (the work of one webhook, event or delivery)."""
    if event.get("trace_id") is None:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            event["trace_id"] = f"{context.trace_id:032x}"
            event["span_id"] = f"{context.span_id:016x}"
    return event
