"""Incident and digest mails: both parts, threading headers, escaping, and delivery to
a real SMTP server (aiosmtpd) with and without AUTH."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from email.message import EmailMessage

import pytest
from notify_samples import assert_snapshot, incident, resolved

from dd0c_alert.notify.base import DeliveryError
from dd0c_alert.notify.email import render_digest_email, render_incident_email
from dd0c_alert.notify.model import DigestView, NoisyAlert
from dd0c_alert.notify.smtp import SmtpConfig, SmtpSender
from stand_ins.smtp import SmtpStandIn

AT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
KW = {
    "sender": "alerts@example.com",
    "to": ["oncall@example.com", "sre@example.com"],
    "domain": "alerts.example.com",
    "at": AT,
}


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_opened_mail_has_both_parts_and_the_stable_id() -> None:
    message = render_incident_email(incident(), "opened", **KW)
    assert message["Message-ID"] == "<incident-inc_01HZX@alerts.example.com>"
    assert message["In-Reply-To"] is None
    assert message["Subject"] == "[CRITICAL] Checkout latency high (opened)"
    assert message["To"] == "oncall@example.com, sre@example.com"
    text, html = _parts(message)
    for fact in (
        "checkout, payments, db",
        "12 alerts, 35 duplicates folded",
        "db v2.4.1",
        "by alice",
        "30/100",
        "deploy attached (+25)",
        "DB connections saturated x20",
        "https://alerts.example.com/incidents/inc_01HZX",
    ):
        assert fact in text, fact
    assert "Checkout p99 &gt; 2s &amp; rising" in html
    assert "&lt;flag:pool_v2&gt;" in html and "<flag:pool_v2>" in text
    assert '<a href="https://prom.example.com/alerts?fp=abc">' in html
    assert_snapshot("email_opened", {"subject": message["Subject"], "text": text, "html": html})


def test_later_mails_thread_under_the_first() -> None:
    message = render_incident_email(resolved(), "resolved", event_id="evt 9", **KW)
    first = "<incident-inc_01HZX@alerts.example.com>"
    assert message["In-Reply-To"] == first and message["References"] == first
    assert message["Message-ID"] == "<incident-inc_01HZX.evt_9@alerts.example.com>"
    text, _ = _parts(message)
    assert "Resolved by bob after 42m 5s" in text
    random_id = render_incident_email(incident(), "escalated", **KW)["Message-ID"]
    assert random_id != first and random_id.endswith("@alerts.example.com>")


def test_hostile_payload_cannot_inject_headers_or_markup() -> None:
    view = incident(
        title="Down\r\nBcc: victim@example.com <script>x</script>", url="javascript:alert(1)"
    )
    message = render_incident_email(view, "opened", **KW)
    assert message["Bcc"] is None and "\n" not in message["Subject"]
    _, html = _parts(message)
    assert "<script>" not in html and "javascript:" not in html


def test_a_long_title_keeps_the_event_in_the_subject() -> None:
    """Opened and resolved mails of a long-titled incident differ in the inbox."""
    view = incident(title="Checkout " + "x" * 500)
    subjects = [render_incident_email(view, e, **KW)["Subject"] for e in ("opened", "resolved")]
    assert subjects[0].endswith("… (opened)") and subjects[1].endswith("… (resolved)")
    assert all(len(s) <= 200 and s.startswith("[CRITICAL] Checkout xxx") for s in subjects)


def test_digest() -> None:
    digest = DigestView(
        tenant_name="Acme <Prod>",
        day=date(2026, 11, 26),
        incidents=14,
        pages=9,
        alerts=1_204,
        open_suggestions=3,
        top_noisy=(
            NoisyAlert("Disk 80% on <ci>", "fp1", 212),
            NoisyAlert("Cert expiring", "fp2", 40),
        ),
        url="https://alerts.example.com/suggestions",
    )
    message = render_digest_email(digest, **KW)
    text, html = _parts(message)
    assert message["Subject"] == "dd0c/alert daily digest for Acme <Prod>: 2026-11-26"
    assert "Pages sent:        9" in text and "212x Disk 80% on <ci> (fp1)" in text
    assert "Acme &lt;Prod&gt;" in html and "212x Disk 80% on &lt;ci&gt;" in html
    assert_snapshot("email_digest", {"subject": message["Subject"], "text": text, "html": html})


def test_delivery_to_a_real_smtp_server_with_auth() -> None:
    with SmtpStandIn(username="mailer", password="pw-123") as smtp:
        sender = SmtpSender(
            SmtpConfig(
                smtp.host, smtp.port, tls="none", username="mailer", password="pw-123", timeout=5
            )
        )
        receipt = asyncio.run(sender.send(render_incident_email(incident(), "opened", **KW)))
        [received] = smtp.messages
        assert smtp.logins == ["mailer"]
        assert smtp.envelopes == [("alerts@example.com", ["oncall@example.com", "sre@example.com"])]
    assert receipt.ref == "<incident-inc_01HZX@alerts.example.com>"
    assert received["Message-ID"] == receipt.ref
    text, html = _parts(received)
    assert "Checkout latency high" in text and "<html>" in html


def test_temporary_refusal_retries_then_delivers() -> None:
    with SmtpStandIn() as smtp:
        smtp.script("451 4.3.0 Try again later")
        sender = SmtpSender(SmtpConfig(smtp.host, smtp.port, tls="none", timeout=5))
        message = render_incident_email(incident(), "opened", **KW)
        with pytest.raises(DeliveryError) as caught:
            asyncio.run(sender.send(message))
        assert (caught.value.reason, caught.value.retry) == ("server", True)
        asyncio.run(sender.send(message))
        assert len(smtp.messages) == 1


def test_permanent_refusal_and_bad_password() -> None:
    with SmtpStandIn(username="mailer", password="right-pw") as smtp:
        smtp.script("554 5.7.1 Rejected")
        good = SmtpSender(
            SmtpConfig(
                smtp.host, smtp.port, tls="none", username="mailer", password="right-pw", timeout=5
            )
        )
        with pytest.raises(DeliveryError) as caught:
            asyncio.run(good.send(render_incident_email(incident(), "opened", **KW)))
        assert (caught.value.reason, caught.value.permanent) == ("client", True)
        secret = "wrong-pw-s3cr3t"
        bad = SmtpSender(
            SmtpConfig(
                smtp.host, smtp.port, tls="none", username="mailer", password=secret, timeout=5
            )
        )
        with pytest.raises(DeliveryError) as caught:
            asyncio.run(bad.send(render_incident_email(incident(), "opened", **KW)))
    assert (caught.value.reason, caught.value.permanent) == ("auth", True)
    assert secret not in str(caught.value)
    assert secret not in repr(SmtpConfig("h", 25, password=secret))


def test_a_server_without_starttls_is_a_setting_to_change_not_an_outage() -> None:
    """Retried as "connection failed (SMTPException)" until the mail was given up."""
    with SmtpStandIn() as smtp:  # plain SMTP: no STARTTLS offered
        sender = SmtpSender(SmtpConfig(smtp.host, smtp.port, tls="starttls", timeout=5))
        with pytest.raises(DeliveryError) as caught:
            asyncio.run(sender.send(render_incident_email(incident(), "opened", **KW)))
    assert (caught.value.reason, caught.value.permanent) == ("client", True)
    assert "does not offer STARTTLS (DD0C_SMTP_TLS=starttls)" in str(caught.value)


def test_unreachable_server_retries() -> None:
    with SmtpStandIn() as smtp:
        port = smtp.port
    sender = SmtpSender(SmtpConfig("127.0.0.1", port, tls="none", timeout=2))
    with pytest.raises(DeliveryError) as caught:
        asyncio.run(sender.send(render_incident_email(incident(), "opened", **KW)))
    assert caught.value.retry
