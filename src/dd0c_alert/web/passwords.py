"""Passwords: argon2id hashes (argon2-cffi's defaults, RFC 9106's second
recommendation), a minimum length and a refusal of common passwords.

The common list ships with the package (``data/common_passwords.txt``), offline.

Each hash or check takes 64 MiB and a few hundred milliseconds of CPU, and callers
nobody has authenticated can ask for one (sign-up, login). Forty sign-ups at once
took ``serve`` from 175 MB to 1.67 GB: on a small machine, enough to kill the process
that admits webhooks. At most ``AT_ONCE`` run at a time; the rest wait their turn.
"""

from __future__ import annotations

import threading
from functools import cache
from importlib.resources import files

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 10
MAX_LENGTH = 1024  # argon2 takes any length; a cap keeps one request's work bounded

_hasher = PasswordHasher()
#: Hashes and checks running at once, per process: 128 MiB at most.
AT_ONCE = 2
_turns = threading.BoundedSemaphore(AT_ONCE)
#: Verified against when the account does not exist, so an unknown email costs as
#: much time as a wrong password.
_DUMMY = _hasher.hash("dd0c-dummy-password-for-timing")


class WeakPassword(ValueError):
    """The reason a password is refused, in words."""


@cache
def common_passwords() -> frozenset[str]:
    text = files("dd0c_alert.web").joinpath("data/common_passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line and not line.startswith("#")
    )


def check_strength(password: str, email: str = "") -> None:
    """Raise ``WeakPassword`` unless the password may be used."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_LENGTH} characters")
    lowered = password.lower()
    if lowered in common_passwords() or len(set(password)) < 3:
        raise WeakPassword("this password is too common")
    if email and lowered == email.strip().lower():
        raise WeakPassword("the password may not be the email address")


def hash_password(password: str) -> str:
    with _turns:
        return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Constant work whether or not there is a stored hash."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        with _turns:
            return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
