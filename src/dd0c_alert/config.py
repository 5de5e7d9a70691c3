"""The one configuration object. Environment variables use the ``DD0C_`` prefix, plus
the conventional ``DATABASE_URL``; the defaults run the embedded mode with data under
``./data``."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dd0c_alert.storage.secrets import parse_keys

LogLevel = Literal["debug", "info", "warning", "error"]


class Settings(BaseSettings):
    # No setting means anything infinite or NaN: a NaN timeout answered every /healthz 500.
    model_config = SettingsConfigDict(env_prefix="DD0C_", extra="ignore", allow_inf_nan=False)

    data_dir: Path = Field(
        default=Path("data"),
        description=(
            "Local files: the SQLite database and, beside it, the ingest queue's file"
            " (dd0c-queue.db), the archive folder, generated keys."
        ),
    )
    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("DATABASE_URL", "DD0C_DATABASE_URL"),
        description="Empty means sqlite:///<data_dir>/dd0c.db.",
    )
    migration_database_url: str = Field(
        default="",
        validation_alias=AliasChoices("migration_database_url", "DD0C_MIGRATION_DATABASE_URL"),
        description="PostgreSQL: the owner role that runs migrations; empty = DATABASE_URL.",
    )
    redis_url: str = Field(
        default="",
        validation_alias=AliasChoices("REDIS_URL", "DD0C_REDIS_URL"),
        description="Empty keeps rate limits and circuit breakers in process memory.",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8080",
        description="Base URL printed in webhook URLs handed to monitoring tools.",
    )
    trusted_proxies: str = Field(
        default="127.0.0.1",
        description="Addresses and networks (comma-separated, e.g. 10.0.0.0/8; * for any) "
        "whose X-Forwarded-For and X-Forwarded-Proto are believed: the TLS proxy's. Behind "
        "a proxy not listed, every client has the proxy's address, so one address's login "
        "throttle locks everyone out and the audit log names the proxy.",
    )
    slack_api_url: str = Field(
        default="https://slack.com/api/",
        description="The Slack Web API base URL (a local stand-in in tests).",
    )
    secret_key: str = Field(
        default="",
        description="Fernet key for secrets at rest; empty means <data_dir>/secret.key. "
        "Several, comma-separated: the first encrypts, all decrypt (to change keys).",
    )
    jwt_secret: str = Field(
        default="",
        repr=False,
        validation_alias=AliasChoices("JWT_SECRET", "DD0C_JWT_SECRET"),
        description="HS256 key signing session tokens; empty means <data_dir>/jwt.key "
        "(embedded mode only: required with PostgreSQL).",
    )
    signup_enabled: bool | None = Field(
        default=None,
        description="Self-service sign-up (POST /v1/auth/signup); unset: on in embedded "
        "mode, off with PostgreSQL.",
    )
    archive_url: str = Field(
        default="",
        description="Where raw payloads are kept: empty means the folder <data_dir>/archive; "
        "s3://bucket/optional/prefix means an S3-compatible store.",
    )
    s3_endpoint_url: str = Field(
        default="", description="The S3-compatible store (e.g. MinIO); empty means AWS S3."
    )
    s3_region: str = Field(default="us-east-1", description="Region of the S3 archive.")
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL",
        description="FULL survives power loss; NORMAL survives process crashes only.",
    )

    max_body_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Webhook body cap (413 body_too_large above)."
    )
    claim_check_bytes: int = Field(
        default=256 * 1024,
        ge=0,
        description="Larger webhook bodies go to the archive; the queue keeps a pointer.",
    )
    rate_limit_per_second: float = Field(
        default=20_000, ge=0, description="Per-tenant default webhook rate; 0 disables."
    )
    monthly_quota: int = Field(
        default=0, ge=0, description="Per-tenant default events/month; 0 = none."
    )
    idempotency_ttl_seconds: int = Field(
        default=24 * 3600,
        ge=0,
        description="How long delivery ids (Idempotency-Key, X-GitHub-Delivery, …) are "
        "remembered: a repeat within it answers 200 duplicate.",
    )
    secret_rotation_grace_seconds: float = Field(
        default=24 * 3600,
        ge=0,
        description="After an integration's secret is rotated, the old one is still "
        "accepted for this long, so the tool can be reconfigured without losing alerts; "
        "then refused with 401 secret_rotated. Rotating again before then is refused "
        "(409 rotation_in_progress): only one old secret is kept; for a leaked secret, "
        "revoke_previous_secret (API) or rotate --no-grace (CLI) ends the grace at once. "
        "Below 5 s, other "
        "running processes may accept it until their 5 s cache of integrations expires.",
    )

    api_max_body_bytes: int = Field(
        default=1024 * 1024, gt=0, description="REST API request body cap (413 above)."
    )
    max_topology_services: int = Field(
        default=2_000, gt=0, description="Services in a tenant's topology (422 limit_exceeded)."
    )
    max_topology_edges: int = Field(
        default=10_000,
        gt=0,
        description="Dependencies in a tenant's topology (422 limit_exceeded).",
    )
    max_matchers_per_rule: int = Field(
        default=32,
        gt=0,
        description="Matchers in a silence, a route or one side of an inhibition rule.",
    )
    max_silences: int = Field(default=1_000, gt=0, description="Silences per tenant.")
    max_inhibitions: int = Field(default=200, gt=0, description="Inhibition rules per tenant.")
    max_never_suppress_services: int = Field(
        default=500, gt=0, description="Length of a tenant's never-suppress service list."
    )
    max_routes: int = Field(default=100, gt=0, description="Notification routes per tenant.")

    max_connections: int = Field(
        default=2048, gt=0, description="Concurrent HTTP connections per process (503 beyond)."
    )
    http_keep_alive_seconds: int = Field(
        default=5, gt=0, description="An idle keep-alive connection is closed after this."
    )
    http_max_header_bytes: int = Field(
        default=64 * 1024,
        gt=0,
        description="Cap on a request's headers (h11: incomplete event size).",
    )
    http_header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="A request whose headers take longer to arrive is closed."
    )
    http_body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A request body must arrive whole within this (408 and closed).",
    )

    worker_batch_size: int = Field(default=2000, gt=0, description="Most events per worker batch.")
    worker_batch_bytes: int = Field(
        default=16 * 1024 * 1024,
        gt=0,
        description="Most bytes of webhook body per worker batch (at least one event): a "
        "batch holds its events' bodies in memory. A claim-checked body counts as "
        "max_body_bytes.",
    )
    worker_max_attempts: int = Field(
        default=5,
        gt=0,
        description="Tries of an event failing transiently before it is dead-lettered; an "
        "event claimed this often without finishing is dead-lettered as processing_abandoned.",
    )
    worker_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A claimed batch stays invisible to other workers this long; a worker "
        "that dies leaves it to another after this.",
    )
    worker_poll_seconds: float = Field(
        default=0.5, gt=0, description="How often an idle worker looks at the queue."
    )
    ready_queue_lag_seconds: float = Field(
        default=60.0,
        gt=0,
        description="`/readyz` answers degraded (still 200: webhooks are still admitted) while "
        "the oldest unprocessed event is older than this: workers stopped, frozen or too few.",
    )
    worker_batch_budget_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A worker transaction that takes longer is rolled back and its events "
        "are stored one by one, each under the event budget.",
    )
    worker_event_budget_seconds: float = Field(
        default=5.0,
        gt=0,
        description="An event whose processing takes longer is set aside to the dead-letter "
        "store as processing_timeout.",
    )
    worker_batch_target_seconds: float = Field(
        default=0.5,
        gt=0,
        description="Batches shrink while they take longer than this and grow back when "
        "cheaper, and a batch past it hands its unstarted events back after a transaction: "
        "the bound on how long one tenant's work delays another's.",
    )

    smtp_host: str = Field(default="", description="SMTP server for mail; empty: no mail.")
    smtp_port: int = Field(default=587, gt=0, le=65535, description="SMTP port.")
    smtp_from: str = Field(default="dd0c-alert@localhost", description="Sender of mails.")
    smtp_username: str = Field(default="", description="SMTP login; empty: none.")
    smtp_password: str = Field(default="", repr=False, description="SMTP password.")
    smtp_tls: Literal["none", "starttls", "tls"] = Field(
        default="starttls", description="none, starttls (port 587) or tls (port 465)."
    )
    metrics_per_tenant: bool = Field(
        default=False,
        description="Add a webhook counter per tenant to /metrics (one series per tenant).",
    )
    notify_poll_seconds: float = Field(
        default=0.25, gt=0, description="How often an idle notifier looks for due deliveries."
    )
    notify_coalesce_seconds: float = Field(
        default=3.0,
        ge=0,
        description="An incident's Slack message is updated, and each webhook sent its "
        "incident.updated, at most this often; the latest state always goes out.",
    )
    notify_max_attempts: int = Field(
        default=8,
        gt=0,
        description="Tries of a delivery before it fails (replayable); a 429 uses up none.",
    )
    notify_slack_per_second: float = Field(
        default=1.0, gt=0, description="Slack calls per second per channel (bursts of 3)."
    )
    notify_escalation_check_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How often unacknowledged incidents are checked for escalation "
        "and for pages held back by quiet hours that are over (0: at every pass of the "
        "notifier).",
    )
    digest_hour: int = Field(
        default=8,
        ge=-1,
        le=23,
        description="Hour after which each tenant's daily digest mail goes out, on the "
        "tenant's clock (its time_zone setting, UTC unless set); -1: none.",
    )
    notify_lease_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A notifier that dies mid-send leaves its deliveries to another after this.",
    )

    retention_days: int = Field(
        default=30,
        ge=0,
        description="Alerts, incidents, decisions, deploys, dead letters, notification "
        "deliveries, the audit log and raw payloads older than this are purged by the "
        "scheduled jobs (every kind: docs/operations.md, Retention and disk use); "
        "0 keeps everything.",
    )
    suggest_interval_seconds: float = Field(
        default=600,
        ge=0,
        description="How often the suggestion job runs (embedded mode); 0 disables.",
    )

    governance_mode: Literal["audit", "strict"] = Field(
        default="audit",
        validation_alias=AliasChoices("GOVERNANCE_MODE", "DD0C_GOVERNANCE_MODE"),
        description="audit: rules only log 'would suppress'; strict: approved rules suppress.",
    )

    log_level: LogLevel = Field(
        default="info", description="The least severe log lines written (JSON lines on stderr)."
    )
    otel_enabled: bool | None = Field(
        default=None,
        description="Export OpenTelemetry traces (needs the otel extra). Unset: on when "
        "OTEL_TRACES_EXPORTER or OTEL_EXPORTER_OTLP_ENDPOINT is set; OTEL_SDK_DISABLED=true "
        "turns it off.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_case_level(cls, value: object) -> object:
        """``DD0C_LOG_LEVEL=INFO`` worked before the names were checked; keep it working."""
        return value.lower() if isinstance(value, str) else value

    @field_validator("data_dir")
    @classmethod
    def _a_folder(cls, value: Path) -> Path:
        """Refused here, or every command fails later with a NotADirectoryError."""
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} is a file, not a folder")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: str) -> str:
        """uvicorn takes a malformed entry for a literal host name and trusts nobody
        by it, silently; refused here instead."""
        for entry in (e.strip() for e in value.split(",")):
            if entry and entry != "*":
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(f"{entry!r} is not an address or a network") from None
        return value

    @field_validator("secret_key")
    @classmethod
    def _a_fernet_key(cls, value: str) -> str:
        """Checked here, or the first command that opens the store fails deep in Fernet."""
        if value:
            try:
                parse_keys(value)
            except ValueError:
                raise ValueError(
                    "not a Fernet key (32 url-safe base64-encoded bytes; make one with "
                    "Fernet.generate_key())"
                ) from None
        return value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'dd0c.db'}"

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive"


def variables(name: str) -> list[str]:
    """The environment variables a setting is read from, the documented spelling first."""
    alias = Settings.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        names = [str(c) for c in alias.choices if isinstance(c, str) and c.isupper()]
        return names or [f"DD0C_{name.upper()}"]
    return [f"DD0C_{name.upper()}"]


class InvalidSettings(ValueError):
    """The environment holds settings the service cannot run with; ``problems`` has one
    line for each, naming the variable, so the operator knows what to change."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _field_of(location: str) -> str | None:
    """The setting a validation error is about: pydantic names a setting read through
    an alias (``GOVERNANCE_MODE``) by that alias, the others by the field's name."""
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else []
        if location == name or location in choices:
            return name
    return None


def _problem(error: Mapping[str, Any]) -> str:
    """One line: the variable (the spelling actually set, when several are read) and
    what is wrong. The value is left out: it may be a password or a key."""
    location = str(error["loc"][0]) if error["loc"] else ""
    name = _field_of(location)
    if name is None:
        variable = location
    else:
        spellings = variables(name)
        variable = next((v for v in spellings if v in os.environ), spellings[0])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{variable}: {message[:1].lower()}{message[1:]}"


def load() -> Settings:
    """The settings from the environment; raises InvalidSettings rather than pydantic's
    ValidationError, whose report names fields instead of variables."""
    try:
        return Settings()
    except ValidationError as exc:
        raise InvalidSettings([_problem(error) for error in exc.errors()]) from None
