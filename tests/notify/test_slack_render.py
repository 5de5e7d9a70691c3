"""Block Kit rendering: snapshots, buttons per state, escaping and Slack's limits."""

from __future__ import annotations

from typing import Any

import pytest
from notify_samples import acknowledged, assert_snapshot, incident, resolved

from dd0c_alert.notify.model import AlertView, DeployView
from dd0c_alert.notify.slack.render import render_incident, render_thread_reply
from dd0c_alert.notify.slack.text import clip_mrkdwn, fit_lines

ALL_ACTIONS = [
    "ack",
    "resolve",
    "snooze_1h",
    "snooze_4h",
    "snooze_24h",
    "noise",
    "useful",
    "mute_similar",
]


def _actions(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def _texts(value: Any) -> list[tuple[str, str]]:
    """Every (block type or element kind, text) pair, for limit checks."""
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "text" and isinstance(item, str):
                found.append((value.get("type", ""), item))
            else:
                found.extend(_texts(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_texts(item))
    return found


@pytest.mark.parametrize(
    ("name", "view", "event"),
    [
        ("slack_opened", incident(), "opened"),
        ("slack_acknowledged", acknowledged(), "acknowledged"),
        ("slack_resolved", resolved(), "resolved"),
        (
            "slack_flapping_snoozed",
            incident(flapping=True, status="snoozed", snoozed_until=incident().opened_at),
            "snoozed",
        ),
        (
            "slack_minimal",
            incident(
                services=(),
                probable_root=None,
                noise_score=0,
                noise_reasons=(),
                deploys=(),
                top_alerts=(),
                url="",
            ),
            "opened",
        ),
    ],
)
def test_block_kit_snapshots(name: str, view: Any, event: Any) -> None:
    message = render_incident(view, event)
    assert_snapshot(name, {"text": message.text, "blocks": message.blocks})


def test_open_incident_has_every_button_with_the_incident_id() -> None:
    buttons = _actions(render_incident(incident(), "opened").blocks)
    assert [b["action_id"] for b in buttons] == ALL_ACTIONS
    assert {b["value"] for b in buttons} == {"inc_01HZX"}


def test_acknowledged_shows_who_and_drops_the_ack_button() -> None:
    message = render_incident(acknowledged(), "acknowledged")
    assert [b["action_id"] for b in _actions(message.blocks)] == ALL_ACTIONS[1:]
    assert "Acknowledged by bob" in str(message.blocks)


def test_resolved_shows_duration_and_no_buttons() -> None:
    message = render_incident(resolved(), "resolved")
    assert _actions(message.blocks) == []
    assert "Resolved by bob after 42m 5s" in str(message.blocks)
    assert message.blocks[0]["text"]["text"].startswith(":white_check_mark: Resolved:")


def test_user_text_cannot_mention_or_link() -> None:
    message = render_incident(
        incident(
            title="<!channel> DB down",
            top_alerts=(
                AlertView(
                    "<!here> hi",
                    incident().severity,
                    "db",
                    "firing",
                    1,
                    "custom",
                    "javascript:alert(1)",
                    incident().opened_at,
                ),
            ),
        ),
        "opened",
    )
    rendered = str(message.blocks) + message.text
    assert "<!here>" not in rendered and "&lt;!here&gt;" in rendered
    assert "javascript:" not in rendered
    assert "&lt;!channel&gt;" in message.text


def test_every_text_fits_slack_limits() -> None:
    huge = "x" * 10_000 + " & <b>"
    deploy = DeployView(
        "svc" * 50,
        "v" * 500,
        "a" * 500,
        huge,
        "https://e.com/" + "p" * 3000,
        "prod",
        incident().opened_at,
    )
    alert = AlertView(
        huge,
        incident().severity,
        "s" * 300,
        "firing",
        3,
        "custom",
        "https://e.com/a",
        incident().opened_at,
    )
    view = incident(
        title=huge,
        services=tuple(f"svc{i}" * 40 for i in range(200)),
        probable_root=huge,
        noise_reasons=(huge,) * 40,
        deploys=(deploy,) * 20,
        top_alerts=(alert,) * 20,
        id="i" * 3000,
    )
    message = render_incident(view, "opened")
    assert len(message.blocks) <= 50
    assert len(message.text) <= 3000
    limits = {"header": 150, "section": 3000, "mrkdwn": 3000, "plain_text": 75}
    header = message.blocks[0]["text"]["text"]
    assert len(header) <= 150 and header.endswith("…")
    for block in message.blocks:
        if block["type"] == "section":
            assert len(block.get("text", {}).get("text", "")) <= 3000
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
            assert len(block.get("fields", [])) <= 10
        if block["type"] == "context":
            assert all(len(e["text"]) <= 2000 for e in block["elements"])
        for element in block.get("elements", []):
            if element.get("type") == "button":
                assert len(element["text"]["text"]) <= 75
                assert len(element["value"]) <= 2000
    assert all(
        len(text) <= limits.get(kind, 3000)
        for kind, text in _texts(message.blocks)
        if kind != "plain_text"
    )


def test_clip_never_splits_an_entity() -> None:
    out = clip_mrkdwn("&" * 100, 20)
    assert len(out) <= 20 and out.endswith("…")
    assert out[:-1].replace("&amp;", "") == ""


def test_fit_lines_cuts_between_items() -> None:
    text = fit_lines("*H*", [f"line {i} " + "y" * 50 for i in range(100)], 500)
    assert len(text) <= 500
    assert text.splitlines()[-1].startswith("…and ")


@pytest.mark.parametrize("event", ["escalated", "merged", "resolved", "reopened"])
def test_thread_replies(event: Any) -> None:
    view = resolved() if event == "resolved" else incident()
    text = render_thread_reply(view, event, detail="now also sent to <#sre>")
    assert_snapshot(f"slack_reply_{event}", text)
    assert "&lt;#sre&gt;" in text
