"""Which URLs from a payload may become links: absolute http(s) ones only.

Senders control every URL they post, and a ``javascript:`` or ``data:`` link on the
dashboard, in a mail or in Slack would run or show whatever they chose. Providers drop
other links when they normalise, and every renderer checks again, since rows stored by
older versions may hold anything.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def web_url(url: str | None) -> str:
    """``url`` if it is an absolute http or https URL with a host, else ""."""
    if not url:
        return ""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return ""
    return url.strip() if parts.scheme in ("http", "https") and parts.netloc else ""
