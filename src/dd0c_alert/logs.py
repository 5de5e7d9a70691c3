"""Structured JSON logs (structlog) for the service and its libraries."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import structlog

from dd0c_alert.tracing import add_trace_id


def _json_line(event: dict[str, Any], **kwargs: Any) -> str:
    """orjson rather than the standard library's encoder: the worker logs one line per
    event, and encoding it was a tenth of a single-alert event's processing time."""
    return orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS, **kwargs).decode()


def configure(level: str = "info") -> None:
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    logging.basicConfig(stream=sys.stderr, level=numeric, format="%(message)s")
    # Alembic narrates every start ("setup plugin …", "Context impl …") at INFO.
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))
    # httpx and httpcore log each request's full URL (INFO, DEBUG): an outbound
    # webhook's URL often holds its token (Slack's /services/T…/B…/secret), and the
    # notifier logs deliveries itself, naming the destination by host only.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_trace_id,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_json_line),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


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
