"""Field types shared by the REST API's request models and query parameters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo
from pydantic_core import PydanticCustomError

from dd0c_alert.domain.times import InvalidTime, as_utc

#: The error type the API's validation handler answers as ``{"error": "invalid_time"}``.
INVALID_TIME = "invalid_time"


def _checked_time(value: datetime, info: ValidationInfo) -> datetime:
    try:
        return as_utc(value, info.field_name or "time")
    except InvalidTime as exc:
        raise PydanticCustomError(INVALID_TIME, "{detail}", {"detail": exc.detail}) from None


#: A user-given time: offset-less is UTC; outside 1970..9999 is refused with 422.
ApiTime = Annotated[datetime, AfterValidator(_checked_time)]
