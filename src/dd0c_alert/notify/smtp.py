"""Sending mail through the tenant's SMTP relay with aiosmtplib.

SMTP says itself whether to retry: a 4xx reply is temporary, a 5xx reply permanent.
Connection failures and timeouts are temporary. The password never appears in an
error, even if a server were to echo it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal

import aiosmtplib

from .base import DeliveryError, Reason, Receipt

TlsMode = Literal["none", "starttls", "tls"]
_AUTH_CODES = frozenset({530, 534, 535, 538})


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """Where and how to send (``DD0C_SMTP_*`` settings). ``tls``: ``none`` (plain),
    ``starttls`` (upgrade after connecting, usually port 587) or ``tls`` (implicit
    TLS, usually port 465)."""

    host: str
    port: int
    tls: TlsMode = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 10.0


def _reply_error(code: int, text: str) -> DeliveryError:
    if 400 <= code < 500:
        return DeliveryError("server", f"SMTP {code}: {text}", retry=True)
    reason: Reason = "auth" if code in _AUTH_CODES else "client"
    return DeliveryError(reason, f"SMTP {code}: {text}", retry=False)


class SmtpSender:
    NAME = "email"

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config

    def _redact(self, error: DeliveryError) -> DeliveryError:
        secret = self._config.password
        if not secret or secret not in error.message:
            return error
        message = error.message.replace(secret, "***")
        return DeliveryError(error.reason, message, retry=error.retry)

    async def send(self, message: EmailMessage) -> Receipt:
        """Deliver ``message`` to its ``To`` recipients; the receipt is its Message-ID."""
        try:
            await self._send(message)
        except DeliveryError as error:
            raise self._redact(error) from None
        return Receipt(ref=str(message.get("Message-ID", "")))

    async def _send(self, message: EmailMessage) -> None:
        config = self._config
        try:
            await aiosmtplib.send(
                message,
                hostname=config.host,
                port=config.port,
                username=config.username,
                password=config.password,
                use_tls=config.tls == "tls",
                start_tls=config.tls == "starttls",
                timeout=config.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [refused.code for refused in error.recipients]
            worst = max(codes, default=550)
            raise _reply_error(worst, "all recipients refused") from None
        except aiosmtplib.SMTPResponseException as error:
            raise _reply_error(error.code, error.message) from None
        except aiosmtplib.SMTPNotSupported as error:
            raise DeliveryError("client", f"SMTP: {error}", retry=False) from None
        except TimeoutError:
            raise DeliveryError(
                "timeout", f"SMTP: no answer in {config.timeout:g}s", retry=True
            ) from None
        except aiosmtplib.SMTPException as error:
            if "STARTTLS extension not supported" in str(error):
                # A setting to change, not an outage to wait out: retries cannot help.
                raise DeliveryError(
                    "client",
                    "SMTP: the server does not offer STARTTLS (DD0C_SMTP_TLS=starttls): use "
                    "tls for implicit TLS (port 465), or none where plain SMTP is acceptable",
                    retry=False,
                ) from None
            raise DeliveryError(
                "server", f"SMTP: connection failed ({type(error).__name__})", retry=True
            ) from None
        except OSError as error:
            raise DeliveryError(
                "server", f"SMTP: connection failed ({type(error).__name__})", retry=True
            ) from None
