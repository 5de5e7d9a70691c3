"""Slack: the one living Block Kit message per incident, its sender, request signing and
the app manifest."""

from .manifest import slack_manifest
from .render import (
    SlackMessage,
    render_fallback,
    render_incident,
    render_plain,
    render_thread_reply,
)
from .sender import ContentRefused, MessageGone, SlackReceipt, SlackSender
from .signature import verify_slack_signature

__all__ = [
    "ContentRefused",
    "MessageGone",
    "SlackMessage",
    "SlackReceipt",
    "SlackSender",
    "render_fallback",
    "render_incident",
    "render_plain",
    "render_thread_reply",
    "slack_manifest",
    "verify_slack_signature",
]
