"""One module per source. ``PROVIDERS`` maps the URL name to its module."""

from __future__ import annotations

from . import custom
from .base import Provider

PROVIDERS: dict[str, Provider] = {
    "custom": custom,
}
