"""An SMTP stand-in: aiosmtpd on a free loopback port, collecting what it receives.

::

    with SmtpStandIn(username="mailer", password="pw") as smtp:
        smtp.script("451 4.3.0 Try again later")   # next DATA refused, then accepted
        ...  # send to smtp.host / smtp.port
        [message] = smtp.messages                  # email.message.EmailMessage

Without ``username`` no AUTH is offered or required. Scripted answers apply to DATA,
one per message, in order.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import deque
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SmtpStandIn:
    def __init__(self, *, username: str | None = None, password: str | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[str] = []
        self._lock = threading.Lock()
        self._answers: deque[str] = deque()
        self._open = threading.Event()  # cleared by hold(): DATA waits for release()
        self._open.set()
        self._username = username
        self._password = password
        auth: dict[str, Any] = {}
        if username is not None:
            auth = {
                "authenticator": self._authenticate,
                "auth_required": True,
                "auth_require_tls": False,
            }
        self._controller = Controller(self, hostname=self.host, port=self.port, **auth)

    def __enter__(self) -> SmtpStandIn:
        self._controller.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._controller.stop()

    def script(self, *answers: str) -> None:
        with self._lock:
            self._answers.extend(answers)

    def hold(self) -> None:
        """Answer no DATA (the server looks hung) until ``release()``, at most 30 s."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def _authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self._username
            and data.password.decode() == self._password
        )
        if ok:
            with self._lock:
                self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        await asyncio.to_thread(self._open.wait, 30)
        with self._lock:
            if self._answers:
                return self._answers.popleft()
            raw = envelope.original_content or envelope.content or b""
            message = message_from_bytes(bytes(raw), policy=policy.default)
            assert isinstance(message, EmailMessage)
            self.messages.append(message)
            self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 Message accepted"
