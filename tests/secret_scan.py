"""Log-wide secret scan: no secret the tests create may reach a log (SECURITY.md).

A pytest plugin (``pytest_plugins`` in conftest). It wraps the functions that mint or
receive secrets, so every secret of the session is registered as it is made:

- API keys, refresh, invitation and reset tokens (their minting store methods);
- everything stored encrypted: integration secrets (PagerDuty routing keys among
  them), Slack bot tokens and signing secrets, outbound webhook secrets
  (``SecretBox.encrypt``), and the Fernet key itself;
- passwords (argon2's ``PasswordHasher.hash``), access JWTs (``jwt.encode``) and the
  key that signs them, SMTP passwords (``SmtpSender``);
- whatever a test sends or is answered over HTTP (``httpx``, which TestClient is):
  credential headers (bearer tokens, webhook signatures, basic auth) and credential
  members of JSON and form bodies, so secrets a server subprocess minted count too.

After each phase of each test, the output pytest captured for it (stdout and stderr,
which the runtime's structlog lines go to, and stdlib log records) is searched for
every secret registered so far; at teardown so are the ``*.log`` files under the
test's ``tmp_path``, where server subprocesses write. A hit fails that test, naming the
kind of secret, where it was seen and the line with the secret masked.

After its teardown, the values a test registered that are written in this project's
own source are forgotten. Hypothesis mixes the string constants of every local module
into what it draws, so a fuzzed "password" or ``token`` can be the worker's log event
name ``event_processed``; kept, it would fail every later test whose logs use the word.
A test's own literal secrets are still searched for in that test's output.

The search costs one pass over the text whatever the number of secrets: secrets are
indexed by their first ``MIN_LENGTH`` characters, and each window of the text is looked
up once.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import argon2
import httpx
import jwt
import orjson
import pytest

from dd0c_alert.notify.smtp import SmtpSender
from dd0c_alert.pipeline.auth_config import AuthConfig
from dd0c_alert.storage.accounts import AccountStore
from dd0c_alert.storage.notify_settings import SqlNotifySettings
from dd0c_alert.storage.secrets import SecretBox
from dd0c_alert.storage.sql import SqlStore

#: Shorter values (a test's "pw") would match ordinary text.
MIN_LENGTH = 8
#: Bodies larger than this are not searched for credentials (payload fixtures).
MAX_BODY = 64 * 1024
MAX_DEPTH = 16
#: Members of JSON and form bodies whose string values are secrets.
SECRET_MEMBERS = frozenset(
    {
        "password",
        "new_password",
        "current_password",
        "secret",
        "new_secret",
        "token",
        "access_token",
        "refresh_token",
        "bot_token",
        "signing_secret",
        "routing_key",
        "api_key",
        "smtp_password",
    }
)
_CREDENTIAL_HEADER = re.compile(
    r"token|secret|key|signature|auth|password|passwd|cookie|session|credential", re.I
)
_NOT_CREDENTIAL_HEADERS = frozenset({"idempotency-key"})
_PARTS = re.compile(r"[\s,;=]+")


@dataclass(frozen=True, slots=True)
class Leak:
    kind: str
    secret: str
    where: str
    line: str

    def describe(self) -> str:
        masked = f"{self.secret[:4]}…({len(self.secret)} chars)"
        shown = self.line.replace(self.secret, "[SECRET]").strip()[:300]
        return f"{self.kind} {masked} in {self.where}: {shown}"


class SecretRegistry:
    """Every secret of the session, and a search of text for any of them."""

    def __init__(self) -> None:
        self._kinds: dict[str, str] = {}
        self._by_prefix: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._kinds)

    def add(self, value: object, kind: str) -> None:
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if not isinstance(value, str):
            return
        value = value.strip()
        if len(value) < MIN_LENGTH:
            return
        with self._lock:
            if value in self._kinds:
                return
            self._kinds[value] = kind
            self._by_prefix.setdefault(value[:MIN_LENGTH], []).append(value)

    def add_all(self, values: Iterable[object], kind: str) -> None:
        for value in values:
            self.add(value, kind)

    def registered(self) -> set[str]:
        with self._lock:
            return set(self._kinds)

    def discard(self, values: Iterable[str]) -> None:
        """Forget values that are not secrets after all (a fuzzer's inputs taken from
        ordinary text); each would fail every later log line that contains it."""
        with self._lock:
            for value in values:
                if self._kinds.pop(value, None) is not None:
                    self._by_prefix[value[:MIN_LENGTH]].remove(value)

    def leaks(self, text: str, where: str) -> list[Leak]:
        """Each secret found in ``text``, once, with the line it is on."""
        if len(text) < MIN_LENGTH:
            return []
        with self._lock:
            prefixes = dict(self._by_prefix)
        if not prefixes:
            return []
        windows = {text[i : i + MIN_LENGTH] for i in range(len(text) - MIN_LENGTH + 1)}
        found: list[Leak] = []
        for prefix in windows & prefixes.keys():
            for secret in prefixes[prefix]:
                at = text.find(secret)
                if at < 0:
                    continue
                start = text.rfind("\n", 0, at) + 1
                end = text.find("\n", at)
                line = text[start : end if end >= 0 else len(text)]
                found.append(Leak(self._kinds[secret], secret, where, line))
        return found


REGISTRY = SecretRegistry()


# --- registering secrets where they are made ----------------------------------------------


def _strings(value: object) -> Iterator[object]:
    """The strings a minting function returned: itself, a tuple's members, a ``token``."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _strings(item)
    else:
        for name in ("token", "key", "secret"):
            member = getattr(value, name, None)
            if isinstance(member, str):
                yield member


def _register_result(owner: Any, name: str, kind: str) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def minting(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        REGISTRY.add_all(_strings(result), kind)
        return result

    setattr(owner, name, minting)


def _register_argument(owner: Any, name: str, kind: str, position: int, keyword: str) -> None:
    """Register argument ``position`` (counting ``self``) or ``keyword`` of a callable."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def receiving(*args: Any, **kwargs: Any) -> Any:
        REGISTRY.add(kwargs[keyword] if keyword in kwargs else args[position], kind)
        return original(*args, **kwargs)

    setattr(owner, name, receiving)


def _register_slack(owner: Any) -> None:
    original = owner.put_slack

    @functools.wraps(original)
    def put_slack(self: Any, tenant_id: str, **kwargs: Any) -> Any:
        REGISTRY.add(kwargs.get("bot_token"), "Slack bot token")
        REGISTRY.add(kwargs.get("signing_secret"), "Slack signing secret")
        return original(self, tenant_id, **kwargs)

    owner.put_slack = put_slack


def _register_smtp(owner: Any) -> None:
    original = owner.__init__

    @functools.wraps(original)
    def init(self: Any, config: Any, *args: Any, **kwargs: Any) -> None:
        REGISTRY.add(getattr(config, "password", None), "SMTP password")
        original(self, config, *args, **kwargs)

    owner.__init__ = init


def _register_auth_config(owner: Any) -> None:
    original = owner.__init__

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        REGISTRY.add(self.jwt_secret, "JWT signing key")

    owner.__init__ = init


def _credentials_in_headers(headers: Iterable[tuple[str, str]]) -> Iterator[str]:
    for name, value in headers:
        lower = name.lower()
        if lower in _NOT_CREDENTIAL_HEADERS or not _CREDENTIAL_HEADER.search(lower):
            continue
        yield value
        parts = [part for part in _PARTS.split(value) if part]
        yield from parts
        if parts and parts[0].lower() == "basic" and len(parts) > 1:
            try:
                decoded = base64.b64decode(parts[1]).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                continue
            yield decoded
            yield decoded.partition(":")[2]


def _members(document: object) -> Iterator[object]:
    """String values of secret-named members, down to ``MAX_DEPTH`` levels (a test's
    deliberately deep documents go deeper than any secret sits)."""
    pending: list[tuple[object, int]] = [(document, 0)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            continue
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and key.lower() in SECRET_MEMBERS:
                    yield value
                if key == "key" and isinstance(value, str) and value.startswith("dd0c_"):
                    yield value  # an API key as the API hands it out
                pending.append((value, depth + 1))
        elif isinstance(node, list):
            pending.extend((item, depth + 1) for item in node)


def _credentials_in_body(content_type: str, body: bytes) -> Iterator[object]:
    if not body or len(body) > MAX_BODY:
        return
    if "json" in content_type:
        try:
            yield from _members(orjson.loads(body))
        except orjson.JSONDecodeError:
            return
    elif "x-www-form-urlencoded" in content_type:
        for key, value in parse_qsl(body.decode("latin-1")):
            if key.lower() in SECRET_MEMBERS:
                yield value


def _observe_exchange(request: Any, response: Any) -> None:
    REGISTRY.add_all(_credentials_in_headers(request.headers.items()), "credential sent")
    try:
        sent = request.content
    except Exception:  # a streamed body: not ours to read
        sent = b""
    REGISTRY.add_all(
        _credentials_in_body(request.headers.get("content-type", ""), sent), "credential sent"
    )
    if response is not None:
        answered = getattr(response, "_content", None)
        if isinstance(answered, bytes):
            kind = "credential answered"
            REGISTRY.add_all(
                _credentials_in_body(response.headers.get("content-type", ""), answered), kind
            )


def _register_http() -> None:
    sync_send = httpx.Client.send
    async_send = httpx.AsyncClient.send

    @functools.wraps(sync_send)
    def send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = sync_send(self, request, **kwargs)
        _observe_exchange(request, response)
        return response

    @functools.wraps(async_send)
    async def asend(
        self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any
    ) -> httpx.Response:
        response = await async_send(self, request, **kwargs)
        _observe_exchange(request, response)
        return response

    httpx.Client.send = send  # type: ignore[method-assign]
    httpx.AsyncClient.send = asend  # type: ignore[method-assign]


_installed: list[bool] = []


def install() -> None:
    """Wrap the minting functions (once per process)."""
    if _installed:
        return
    _installed.append(True)
    _register_result(SqlStore, "create_api_key", "API key")
    _register_result(AccountStore, "create_api_key", "API key")
    _register_result(AccountStore, "issue_refresh", "refresh token")
    _register_result(AccountStore, "rotate_refresh", "refresh token")
    _register_result(AccountStore, "create_invitation", "invitation token")
    _register_result(AccountStore, "create_reset", "password reset token")
    _register_argument(SecretBox, "encrypt", "secret stored encrypted", 1, "secret")
    _register_argument(SecretBox, "__init__", "Fernet key", 1, "key")
    _register_argument(argon2.PasswordHasher, "hash", "password", 1, "password")
    _register_result(jwt, "encode", "JWT")
    _register_slack(SqlNotifySettings)
    _register_smtp(SmtpSender)
    _register_auth_config(AuthConfig)
    _register_http()


# --- the scan ---------------------------------------------------------------------------


def _log_files(item: pytest.Item) -> Iterator[Path]:
    funcargs = getattr(item, "funcargs", {})
    tmp_path = funcargs.get("tmp_path")
    if isinstance(tmp_path, Path) and tmp_path.is_dir():
        yield from (p for p in tmp_path.rglob("*.log") if p.is_file())


def leaks_of(item: pytest.Item, report: pytest.TestReport) -> list[Leak]:
    found: list[Leak] = []
    for title, text in report.sections:
        if title.endswith(f" {report.when}"):
            found += REGISTRY.leaks(text, title)
    if report.when == "teardown":
        for path in _log_files(item):
            text = path.read_text(errors="replace")
            found += REGISTRY.leaks(text, str(path))
    return found


def pytest_configure(config: pytest.Config) -> None:
    install()


_BEFORE = pytest.StashKey[set[str]]()
#: Where Hypothesis finds the string constants it draws from: this package and tests.
_SOURCES = (Path(__file__).parent, Path(__file__).parent.parent / "src")


@functools.cache
def _source_text() -> str:
    return "".join(path.read_text() for root in _SOURCES for path in root.rglob("*.py"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_BEFORE] = REGISTRY.registered()


def _forget_source_words(item: pytest.Item) -> None:
    """Forget what the test registered that the project's source spells out (see the
    module's docstring)."""
    known = item.stash.get(_BEFORE, None)
    if known is not None:
        text = _source_text()
        REGISTRY.discard(v for v in REGISTRY.registered() - known if v in text)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    found = leaks_of(item, report)
    if report.when == "teardown":
        _forget_source_words(item)
    if found:
        # The captured output is shown with the failure: not the secrets in it.
        secrets = {leak.secret for leak in found}
        masked = []
        for title, text in report.sections:
            shown = text
            for secret in secrets:
                shown = shown.replace(secret, "[SECRET]")
            masked.append((title, shown))
        report.sections = masked
        lines = "\n".join(f"  {leak.describe()}" for leak in found)
        message = f"secret leaked into the logs ({len(found)}):\n{lines}"
        if report.failed:
            message = f"{report.longreprtext}\n\n{message}"
        report.outcome = "failed"
        report.longrepr = message
