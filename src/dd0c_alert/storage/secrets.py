"""Integration secrets encrypted at rest (Fernet: AES-128-CBC + HMAC-SHA256).

The key comes from configuration or, in embedded mode, from a file created on first
use with owner-only permissions beside the database.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet

from .files import private_dir


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_config(cls, key: str, key_file: Path) -> SecretBox:
        if key:
            return cls(key.encode())
        if not key_file.exists():
            private_dir(key_file.parent)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
        return cls(key_file.read_bytes().strip())

    def encrypt(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()
