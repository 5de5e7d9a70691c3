"""Slack's text rules: mrkdwn escaping, safe links, and truncation to block limits.

Alert titles come from whatever tool sent the alert, so every piece of text is
escaped: a title such as ``<!channel>`` must not ping a whole channel at 3 a.m.
"""

from __future__ import annotations

from collections.abc import Sequence

from dd0c_alert.domain.urls import web_url

#: Block Kit limits (Slack reference: header 150, section text 3000, section field
#: 2000, button text 75, context elements 10, 50 blocks per message).
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
CONTEXT_LIMIT = 2000
BUTTON_TEXT_LIMIT = 75
BUTTON_VALUE_LIMIT = 2000
MAX_BLOCKS = 50
#: The notification fallback ``text``; Slack accepts more but truncates after ~4000.
FALLBACK_LIMIT = 3000
ELLIPSIS = "…"


def escape(text: str) -> str:
    """Slack's three control characters, so user text cannot form links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in an ellipsis when cut (plain text)."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def clip_mrkdwn(raw: str, limit: int) -> str:
    """``raw`` escaped and cut so the escaped result fits ``limit``; the cut happens on
    the raw text, so no ``&amp;`` entity is ever split."""
    out = escape(raw)
    if len(out) <= limit:
        return out
    cut = raw
    while len(escape(cut)) + 1 > limit:
        cut = cut[: len(cut) - (len(escape(cut)) + 1 - limit)]
    return escape(cut) + ELLIPSIS


def link(url: str | None, label: str, limit: int = 500) -> str:
    """``<url|label>`` for http(s) URLs; only the escaped label otherwise (a URL from a
    payload may be anything, and Slack would render other schemes as links too)."""
    text = clip_mrkdwn(label, limit)
    url = web_url(url)
    if not url:
        return text
    safe = url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    return f"<{safe}|{text}>" if len(safe) < 2000 else text


def fit_lines(heading: str, lines: Sequence[str], limit: int = SECTION_LIMIT) -> str:
    """``heading`` plus as many whole ``lines`` as fit in ``limit``, then a line saying
    how many were left out, so a long list is cut between items, never inside a link."""
    out = heading
    for index, line in enumerate(lines):
        more = f"\n…and {len(lines) - index} more"
        if len(out) + 1 + len(line) + (len(more) if index < len(lines) - 1 else 0) > limit:
            return out + more if len(out) + len(more) <= limit else clip(out, limit)
        out += "\n" + line
    return out
