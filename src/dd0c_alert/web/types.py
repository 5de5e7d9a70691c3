"""Field types shared by the REST API's request models and query parameters."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, ValidationInfo
from pydantic_core import PydanticCustomError

from dd0c_alert.domain.times import InvalidTime, as_utc

#: The error type the API's validation handler answers as ``{"error": "invalid_time"}``.
INVALID_TIME = "invalid_time"


#: A date and time, then a space where an offset's ``+`` was: ``2026-12-05T11:48:15 02:00``.
_PLUS_DECODED = re.compile(
    r"(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}(?::?\d{2})?)"
)


def _plus_restored(value: Any) -> Any:
    """A query string decodes an unencoded ``+`` as a space, so
    ``?since=2026-12-05T11:48:15+02:00`` (what people type, and what curl sends)
    arrives as ``...T11:48:15 02:00``: that space can only have been the offset's
    sign, so it is read as one instead of refusing the time."""
    if isinstance(value, str):
        found = _PLUS_DECODED.fullmatch(value)
        if found is not None:
            return f"{found.group(1)}+{found.group(2)}"
    return value


def _checked_time(value: datetime, info: ValidationInfo) -> datetime:
    try:
        return as_utc(value, info.field_name or "time")
    except InvalidTime as exc:
        raise PydanticCustomError(INVALID_TIME, "{detail}", {"detail": exc.detail}) from None


#: A user-given time: offset-less is UTC; outside 1970..9999 is refused with 422; a
#: ``+`` offset that the query string decoded to a space is read as ``+``.
ApiTime = Annotated[datetime, BeforeValidator(_plus_restored), AfterValidator(_checked_time)]
