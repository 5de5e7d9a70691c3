"""How a tenant's senders are built: the one construction the notifier and the test
notification share.

A test notification must go exactly the way a page would (the tenant's bot token, the
server's SMTP settings, the route's webhook secret, the same timeouts), or a green test
proves nothing about the next page; so both ask this object for their senders.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr

from dd0c_alert.notify.base import DeliveryError
from dd0c_alert.notify.slack import SlackSender
from dd0c_alert.notify.smtp import SmtpConfig, SmtpSender
from dd0c_alert.notify.webhook import WebhookSender
from dd0c_alert.storage.outbox import SqlOutbox

#: Said when a Slack destination is used before the tenant set Slack up.
SLACK_NOT_CONFIGURED = "Slack is not configured for this tenant"
#: Said when a mail is due and the server has no SMTP settings.
SMTP_NOT_CONFIGURED = "no SMTP server is configured (DD0C_SMTP_HOST)"


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    public_url: str = "http://127.0.0.1:8080"
    slack_api_url: str = "https://slack.com/api/"
    smtp: SmtpConfig | None = None
    mail_from: str = "dd0c-alert@localhost"
    poll_seconds: float = 0.25
    #: A living message is updated at most this often; the latest state always goes.
    coalesce_seconds: float = 3.0
    max_attempts: int = 8
    slack_per_second: float = 1.0
    slack_burst: int = 3
    escalation_check_seconds: float = 10.0
    #: Hour after which each tenant's daily digest goes out, on the tenant's clock
    #: (its ``time_zone``); None: no digest.
    digest_hour: int | None = 8
    timeout_seconds: float = 5.0
    lease_seconds: float = 300.0


class Senders:
    """The senders of one configuration; each raises ``DeliveryError`` (permanent) when
    what it needs is not set up, worded as the deliveries API shows it."""

    def __init__(self, outbox: SqlOutbox, config: NotifyConfig) -> None:
        self._outbox = outbox
        self._config = config

    def slack(self, tenant_id: str) -> SlackSender:
        """The tenant's bot; its token is read at send time (it may have been rotated)."""
        settings = self._outbox.slack(tenant_id)
        if settings is None:
            raise DeliveryError("auth", SLACK_NOT_CONFIGURED, retry=False)
        return SlackSender(
            settings.bot_token,
            base_url=self._config.slack_api_url,
            timeout=self._config.timeout_seconds,
        )

    def smtp(self) -> SmtpSender:
        if self._config.smtp is None:
            raise DeliveryError("client", SMTP_NOT_CONFIGURED, retry=False)
        return SmtpSender(self._config.smtp)

    def webhook(self) -> WebhookSender:
        return WebhookSender(timeout=self._config.timeout_seconds)

    @property
    def mail_from(self) -> str:
        return self._config.mail_from

    def mail_domain(self) -> str:
        """The domain of Message-IDs: the sender address's, so threads stay together."""
        return parseaddr(self._config.mail_from)[1].rpartition("@")[2] or "dd0c.local"
