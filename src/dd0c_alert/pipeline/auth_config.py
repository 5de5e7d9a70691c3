"""What the REST API's accounts need from configuration: the session signing key and
lifetimes, sign-up, where links in mails point, and the login throttle's limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from dd0c_alert.notify.smtp import SmtpConfig


@dataclass(frozen=True)
class AuthConfig:
    jwt_secret: str = field(repr=False)
    signup_enabled: bool = True
    public_url: str = "http://127.0.0.1:8080"
    issuer: str = "dd0c-alert"
    audience: str = "dd0c-alert-api"
    access_ttl: timedelta = timedelta(minutes=15)
    refresh_ttl: timedelta = timedelta(days=30)
    reset_ttl: timedelta = timedelta(hours=1)
    invitation_ttl: timedelta = timedelta(days=7)
    smtp: SmtpConfig | None = None
    mail_from: str = "dd0c-alert@localhost"
    #: Failed logins tolerated per account / per client address within the window.
    failures_per_account: int = 10
    failures_per_address: int = 50
    throttle_window: timedelta = timedelta(minutes=15)
    #: Passwords set by callers not signed in (sign-up, accepting an invitation) per
    #: client address within the window.
    new_passwords_per_address: int = 20
