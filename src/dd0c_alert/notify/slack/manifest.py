"""The Slack app manifest printed by ``dd0c-alert slack manifest``.

Pasting it at https://api.slack.com/apps ("Create New App" → "From a manifest") gives
an app with exactly the scopes dd0c/alert uses and its interaction and slash-command
URLs pointing at this server, so setup is one paste instead of a dozen clicks.
"""

from __future__ import annotations

from typing import Any

#: ``channels:read``/``groups:read`` let the sender turn ``#name`` into a channel id, which
#: ``conversations.history`` needs when it looks for a post whose answer was lost.
BOT_SCOPES = (
    "chat:write",
    "chat:write.public",
    "channels:history",
    "groups:history",
    "channels:read",
    "groups:read",
    "commands",
)


def slack_manifest(public_url: str, app_name: str = "dd0c/alert") -> dict[str, Any]:
    """The manifest for a server reachable at ``public_url`` (e.g. ``https://alerts.example.com``)."""
    base = public_url.rstrip("/")
    return {
        "display_information": {
            "name": app_name,
            "description": "One explained, living message per incident.",
        },
        "features": {
            "bot_user": {"display_name": app_name, "always_online": True},
            "slash_commands": [
                {
                    "command": "/dd0c",
                    "url": f"{base}/v1/slack/commands",
                    "description": "List and act on open incidents",
                    "usage_hint": "list | status | ack ID | resolve ID",
                    "should_escape": False,
                }
            ],
        },
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES)}},
        "settings": {
            "interactivity": {
                "is_enabled": True,
                "request_url": f"{base}/v1/slack/interactions",
            },
            "org_deploy_enabled": False,
            "socket_mode_enabled": False,
            "token_rotation_enabled": False,
        },
    }
