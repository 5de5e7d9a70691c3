"""The log-wide secret scan (tests/secret_scan.py) catches a real leak: unit tests of its
search, and a pytest sub-session whose tests log secrets on purpose."""

from __future__ import annotations

from pathlib import Path

import pytest

from secret_scan import SecretRegistry, _credentials_in_body, _credentials_in_headers

TESTS = Path(__file__).parent


def test_the_search_finds_every_registered_secret_wherever_it_sits_in_a_line() -> None:
    registry = SecretRegistry()
    registry.add("dd0c_Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5", "API key")
    registry.add("xoxb-e2e-token-0123456789", "Slack bot token")
    registry.add(b"fernet-key-bytes-0123456789=", "Fernet key")
    registry.add("pw", "password")  # too short to search for: ordinary text would match
    assert len(registry) == 3
    text = (
        '{"event": "login", "user": "a@example.com"}\n'
        '{"event": "slack_call", "auth": "Bearer xoxb-e2e-token-0123456789", "ok": true}\n'
        "key=dd0c_Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5;fernet-key-bytes-0123456789=\n"
    )
    found = {leak.kind: leak for leak in registry.leaks(text, "Captured stderr call")}
    assert set(found) == {"API key", "Slack bot token", "Fernet key"}
    described = found["Slack bot token"].describe()
    assert "xoxb-e2e-token-0123456789" not in described  # the report masks it
    assert "slack_call" in described and "Captured stderr call" in described
    assert registry.leaks("nothing to see here, pw", "x") == []


def test_credentials_sent_over_http_are_registered() -> None:
    headers = [
        ("Authorization", "Bearer tok-0123456789abcdef"),
        ("X-DD0C-Signature", "v1=" + "ab" * 32),
        ("Idempotency-Key", "delivery-0123456789"),
        ("Content-Type", "application/json"),
        ("Authorization", "Basic dXNlcjpodW50ZXIyLXBhc3N3b3Jk"),
    ]
    found = set(map(str, _credentials_in_headers(headers)))
    assert {"tok-0123456789abcdef", "ab" * 32, "hunter2-password"} <= found
    assert "delivery-0123456789" not in found and "application/json" not in found
    body = (
        b'{"email": "a@b.c", "password": "correct horse", "items": [{"routing_key": "R0123456"}]}'
    )
    assert set(_credentials_in_body("application/json", body)) == {"correct horse", "R0123456"}
    deep = b'{"a": ' * 1000 + b'"x"' + b"}" * 1000  # no recursion limit to hit
    assert list(_credentials_in_body("application/json", deep)) == []
    form = b"email=a%40b.c&password=correct+horse+battery"
    assert list(_credentials_in_body("application/x-www-form-urlencoded", form)) == [
        "correct horse battery"
    ]


LEAKY = """
import logging
import secrets

import structlog

from dd0c_alert.storage.secrets import SecretBox
from cryptography.fernet import Fernet

BOX = SecretBox(Fernet.generate_key())


def test_logs_an_integration_secret():
    secret = secrets.token_urlsafe(32)
    BOX.encrypt(secret)
    logging.getLogger("dd0c").warning("verifying with %s", secret)


def test_prints_a_slack_token_through_structlog():
    BOX.encrypt("xoxb-leaky-token-0123456789")
    structlog.get_logger().info("slack_call", token="xoxb-leaky-token-0123456789")


def test_a_server_log_file(tmp_path):
    secret = secrets.token_urlsafe(32)
    BOX.encrypt(secret)
    (tmp_path / "serve.log").write_text(f"starting\\nrouting_key={secret}\\n")


def test_keeps_its_secrets():
    BOX.encrypt(secrets.token_urlsafe(32))
    logging.getLogger("dd0c").warning("verified")
    print("nothing secret here")


CARRIED = secrets.token_urlsafe(32)


def test_a_word_of_the_source_is_a_secret_in_its_own_test():
    BOX.encrypt("event_processed")  # as Hypothesis may draw it: the worker's log event
    BOX.encrypt(CARRIED)
    print("worker: event_processed")


def test_a_later_test_may_log_that_word():
    print("worker: event_processed")


def test_a_later_test_may_not_log_another_tests_secret():
    print(f"carried over: {CARRIED}")
"""


def test_a_sub_session_that_logs_secrets_fails_naming_each_leak(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_leaky=LEAKY)
    # A subprocess: the secrets it logs are registered there, not in this session.
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    result = pytester.runpytest_subprocess(
        "-p", "secret_scan", "-p", "no:cacheprovider", "-q", f"--rootdir={pytester.path}"
    )
    # The log file is found at teardown: that test passes, then errors.
    result.assert_outcomes(passed=3, failed=4, errors=1)
    assert "test_a_later_test_may_log_that_word" not in result.stdout.str()
    output = result.stdout.str()
    assert "secret stored encrypted" in output
    assert "in Captured log call: " in output  # the stdlib record
    assert "in Captured stdout call: " in output  # the structlog line
    assert "serve.log: routing_key=[SECRET]" in output
    # Neither the report nor the captured output it shows repeats a leaked secret.
    assert "xoxb-leaky-token-0123456789" not in output
    assert "token=[SECRET]" in output
