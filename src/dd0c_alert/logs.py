"""Structured JSON logs (structlog) for the service and its libraries."""

from __future__ import annotations

import logging
import sys
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
