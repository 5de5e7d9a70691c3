"""Structured JSON logs (structlog) for the service and its libraries."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

import orjson
import structlog

from dd0c_alert.tracing import add_trace_id


def _json_line(event: dict[str, Any], **kwargs: Any) -> str:
    """orjson rather than the standard library's encoder: the worker logs one line per
    event, and encoding it was a tenth of a single-alert event's processing time."""
    return orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS, **kwargs).decode()


def configure(level: str = "info", stream: TextIO | None = None) -> None:
    """Write structlog's lines and every standard ``logging`` record (uvicorn's,
    alembic's, httpx's) as JSON lines to ``stream`` (stderr)."""
    out = stream or sys.stderr
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    _log_records_as_json(out, numeric)
    # Alembic narrates every start ("setup plugin …", "Context impl …") at INFO.
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))
    # httpx and httpcore log each request's full URL (INFO, DEBUG): an outbound
    # webhook's URL often holds its token (Slack's /services/T…/B…/secret), and the
    # notifier logs deliveries itself, naming the destination by host only.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[
            *_CONTEXT,
            structlog.processors.add_log_level,
            _TIMESTAMP,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_json_line),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )


_CONTEXT = (structlog.contextvars.merge_contextvars, add_trace_id)
_TIMESTAMP = structlog.processors.TimeStamper(fmt="iso", utc=True)


class JsonLines(logging.StreamHandler[TextIO]):
    """The root logger's handler: a record as a JSON line shaped like structlog's
    (``event``, ``level``, ``timestamp``, plus ``logger``, and ``exception`` with its
    traceback). ``logging.basicConfig``'s ``%(message)s`` wrote bare text, which a log
    shipper reading JSON lines cannot parse."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                foreign_pre_chain=[
                    *_CONTEXT,
                    structlog.stdlib.add_logger_name,
                    structlog.stdlib.add_log_level,
                    _TIMESTAMP,
                ],
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    structlog.processors.JSONRenderer(serializer=_json_line),
                ],
            )
        )


def _log_records_as_json(stream: TextIO, level: int) -> None:
    """One :class:`JsonLines` handler on the root logger, replacing the one an earlier
    call put there (other handlers, such as a test runner's, stay)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, JsonLines)]:
        root.removeHandler(handler)
    root.addHandler(JsonLines(stream))
    root.setLevel(level)


class Throttle:
    """At most one line per key every ``every`` seconds, for errors that repeat while a
    condition lasts (a full disk, a database away): the worker retries twice a second
    and a sender may post thousands of times, and a line (with its traceback) per try
    would flood the log, and fill the very disk that is full. ``allow`` says whether
    to log now and how many lines it held back since the last one."""

    def __init__(self, every: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, int]] = {}  # key -> (last logged, held since)

    def allow(self, key: str) -> int | None:
        """None: hold this line back. Otherwise log it, with the count of lines held
        back since the last (``repeated``)."""
        now = self._clock()
        with self._lock:
            last, held = self._state.get(key, (None, 0))
            if last is not None and now - last < self._every:
                self._state[key] = (last, held + 1)
                return None
            if len(self._state) > 1_000:  # keys are error kinds, but never unbounded
                self._state.clear()
            self._state[key] = (now, 0)
            return held


#: uvicorn's logger, whose warnings any client can cause once per request.
SERVER_LOGGER = "uvicorn.error"


class RepeatFilter(logging.Filter):
    """A ``logging`` filter giving each kind of warning or error one line a minute
    (:class:`Throttle`), the first one of a run saying how many it held back. uvicorn
    writes ``Invalid HTTP request received.``, ``Unsupported upgrade request.`` and
    ``Exceeded concurrency limit.`` once per request: anyone who sends garbage (or a
    flood at the connection cap) wrote a line per request. A kind is the message's
    template and the exception's type, so each different bug still shows up."""

    def __init__(self, throttle: Throttle | None = None) -> None:
        super().__init__()
        self._throttle = throttle or Throttle(60.0)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        error = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        held = self._throttle.allow(f"{str(record.msg)[:200]}|{error}")
        if held is None:
            return False
        if held:
            record.msg = f"{record.msg} ({held} more held back in the last minute)"
        return True


def throttle_server_log() -> None:
    """Put a :class:`RepeatFilter` on uvicorn's logger (once); after ``uvicorn.Config``,
    which configures that logger."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, RepeatFilter) for f in logger.filters):
        logger.addFilter(RepeatFilter())
