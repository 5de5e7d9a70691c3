"""Secrets encrypted at rest (Fernet: AES-128-CBC + HMAC-SHA256): integration, Slack
and outbound-webhook secrets.

The key comes from configuration or, in embedded mode, from a file created on first
use with owner-only permissions beside the database. Either may hold several keys
(comma- or line-separated): the first encrypts, every one decrypts, so a new key can
be put in front of the old one, the stored secrets re-encrypted with it
(``dd0c-alert secrets re-encrypt``), and the old one dropped.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet

from .files import private_dir

_SEPARATORS = re.compile(r"[,\s]+")


def parse_keys(text: str) -> list[bytes]:
    """The keys of a ``DD0C_SECRET_KEY`` value or a key file, first the current one;
    ``ValueError`` for one that is not a Fernet key."""
    keys = [k.encode() for k in _SEPARATORS.split(text.strip()) if k]
    for key in keys:
        Fernet(key)  # raises ValueError
    return keys


class SecretBox:
    def __init__(self, *keys: bytes) -> None:
        if not keys:
            raise ValueError("no secret key")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    @classmethod
    def from_config(cls, key: str, key_file: Path) -> SecretBox:
        if key:
            return cls(*parse_keys(key))
        if not key_file.exists():
            private_dir(key_file.parent)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
        return cls(*parse_keys(key_file.read_text()))

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()

    def reencrypt(self, token: str) -> str:
        """``token`` encrypted with the first key (whichever key it was made with)."""
        return self._fernet.rotate(token.encode()).decode()
