"""The shared HTTP status classifier and Retry-After parsing, as a table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dd0c_alert.notify.base import DeliveryError, classify_http, parse_retry_after


@pytest.mark.parametrize(
    ("status", "headers", "reason", "retry", "retry_after"),
    [
        (200, {}, None, None, None),
        (202, {}, None, None, None),
        (204, {}, None, None, None),
        (301, {}, "client", False, None),
        (400, {}, "client", False, None),
        (401, {}, "auth", False, None),
        (403, {}, "auth", False, None),
        (404, {}, "client", False, None),
        (408, {}, "timeout", True, None),
        (410, {}, "client", False, None),
        (413, {}, "client", False, None),
        (429, {}, "rate_limited", True, None),
        (429, {"Retry-After": "12"}, "rate_limited", True, 12.0),
        (429, {"retry-after": "1.5"}, "rate_limited", True, 1.5),
        (429, {"Retry-After": "soon"}, "rate_limited", True, None),
        (500, {}, "server", True, None),
        (502, {"Retry-After": "3"}, "server", True, 3.0),
        (503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, "server", True, 0.0),
        (504, {}, "server", True, None),
    ],
)
def test_classify_http(
    status: int,
    headers: dict[str, str],
    reason: str | None,
    retry: bool | None,
    retry_after: float | None,
) -> None:
    error = classify_http(status, headers, b"body")
    if reason is None:
        assert error is None
        return
    assert isinstance(error, DeliveryError)
    assert (error.reason, error.retry, error.permanent, error.retry_after) == (
        reason,
        retry,
        not retry,
        retry_after,
    )
    assert f"HTTP {status}" in str(error)


def test_retry_after_as_http_date() -> None:
    now = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 30.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after(None) is None
    # capped: a 429 uses up no try, so an absurd wait would hold the lane for ever
    assert parse_retry_after("1e20") == parse_retry_after("inf") == 600.0
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now) == 600.0
    assert parse_retry_after("nan") is None


def test_body_is_cut_short_in_messages() -> None:
    error = classify_http(500, {}, b"x" * 10_000)
    assert error is not None and len(str(error)) < 300
