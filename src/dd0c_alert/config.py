"""The one configuration object. Environment variables use the ``DD0C_`` prefix, plus
the conventional ``DATABASE_URL``; the defaults run the embedded mode with data under
``./data``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DD0C_", extra="ignore")

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
    slack_api_url: str = Field(
        default="https://slack.com/api/",
        description="The Slack Web API base URL (a local stand-in in tests).",
    )
    secret_key: str = Field(
        default="",
        description="Fernet key for secrets at rest; empty means <data_dir>/secret.key.",
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
        default=1024 * 1024, description="Webhook body cap (413 body_too_large above)."
    )
    claim_check_bytes: int = Field(
        default=256 * 1024,
        description="Larger webhook bodies go to the archive; the queue keeps a pointer.",
    )
    rate_limit_per_second: float = Field(
        default=20_000, description="Per-tenant default webhook rate; 0 disables."
    )
    monthly_quota: int = Field(default=0, description="Per-tenant default events/month; 0 = none.")
    idempotency_ttl_seconds: int = Field(
        default=24 * 3600,
        description="How long delivery ids (Idempotency-Key, X-GitHub-Delivery, …) are "
        "remembered: a repeat within it answers 200 duplicate.",
    )
    secret_rotation_grace_seconds: float = Field(
        default=24 * 3600,
        ge=0,
        description="After an integration's secret is rotated, the old one is still "
        "accepted for this long, so the tool can be reconfigured without losing alerts.",
    )

    api_max_body_bytes: int = Field(
        default=1024 * 1024, description="REST API request body cap (413 above)."
    )
    max_topology_services: int = Field(
        default=2_000, description="Services in a tenant's topology (422 limit_exceeded)."
    )
    max_topology_edges: int = Field(
        default=10_000, description="Dependencies in a tenant's topology (422 limit_exceeded)."
    )
    max_matchers_per_rule: int = Field(
        default=32, description="Matchers in a silence or one side of an inhibition rule."
    )
    max_silences: int = Field(default=1_000, description="Silences per tenant.")
    max_inhibitions: int = Field(default=200, description="Inhibition rules per tenant.")
    max_never_suppress_services: int = Field(
        default=500, description="Length of a tenant's never-suppress service list."
    )
    max_routes: int = Field(default=100, description="Notification routes per tenant.")

    max_connections: int = Field(
        default=2048, description="Concurrent HTTP connections per process (503 beyond)."
    )
    http_keep_alive_seconds: int = Field(
        default=5, description="An idle keep-alive connection is closed after this."
    )
    http_max_header_bytes: int = Field(
        default=64 * 1024, description="Cap on a request's headers (h11: incomplete event size)."
    )
    http_header_timeout_seconds: float = Field(
        default=10.0, description="A request whose headers take longer to arrive is closed."
    )
    http_body_timeout_seconds: float = Field(
        default=30.0,
        description="A request body must arrive whole within this (408 and closed).",
    )

    worker_batch_size: int = Field(default=500, description="Most events per worker batch.")
    worker_max_attempts: int = Field(
        default=5,
        description="Tries of an event failing transiently before it is dead-lettered; an "
        "event claimed this often without finishing is dead-lettered as processing_abandoned.",
    )
    worker_lease_seconds: float = Field(
        default=60.0,
        description="A claimed batch stays invisible to other workers this long; a worker "
        "that dies leaves it to another after this.",
    )
    worker_poll_seconds: float = Field(
        default=0.5, description="How often an idle worker looks at the queue."
    )
    worker_batch_budget_seconds: float = Field(
        default=10.0,
        description="A worker transaction that takes longer is rolled back and its events "
        "are stored one by one, each under the event budget.",
    )
    worker_event_budget_seconds: float = Field(
        default=5.0,
        description="An event whose processing takes longer is set aside to the dead-letter "
        "store as processing_timeout.",
    )
    worker_batch_target_seconds: float = Field(
        default=0.5,
        description="Batches shrink while they take longer than this and grow back when "
        "cheaper: the bound on how long one tenant's work delays another's.",
    )

    smtp_host: str = Field(default="", description="SMTP server for mail; empty: no mail.")
    smtp_port: int = Field(default=587, description="SMTP port.")
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
        default=0.25, description="How often an idle notifier looks for due deliveries."
    )
    notify_coalesce_seconds: float = Field(
        default=3.0,
        description="An incident's Slack message is updated at most this often; the latest "
        "state always goes out.",
    )
    notify_max_attempts: int = Field(
        default=8, description="Tries of a delivery before it fails (replayable)."
    )
    notify_slack_per_second: float = Field(
        default=1.0, description="Slack calls per second per channel (bursts of 3)."
    )
    notify_escalation_check_seconds: float = Field(
        default=10.0, description="How often unacknowledged incidents are checked for escalation."
    )
    digest_hour: int = Field(
        default=8,
        ge=-1,
        le=23,
        description="UTC hour after which each tenant's daily digest mail goes out; -1: none.",
    )
    notify_lease_seconds: float = Field(
        default=300.0,
        description="A notifier that dies mid-send leaves its deliveries to another after this.",
    )

    retention_days: int = Field(
        default=30,
        description="Alerts, decisions, deploys, dead letters and raw payloads older than "
        "this are purged by the scheduled jobs; 0 keeps everything.",
    )
    suggest_interval_seconds: float = Field(
        default=600, description="How often the suggestion job runs (embedded mode); 0 disables."
    )

    governance_mode: Literal["audit", "strict"] = Field(
        default="audit",
        validation_alias=AliasChoices("GOVERNANCE_MODE", "DD0C_GOVERNANCE_MODE"),
        description="audit: rules only log 'would suppress'; strict: approved rules suppress.",
    )

    log_level: str = Field(
        default="info", description="debug, info, warning or error: JSON lines on stderr."
    )
    otel_enabled: bool | None = Field(
        default=None,
        description="Export OpenTelemetry traces (needs the otel extra). Unset: on when "
        "OTEL_TRACES_EXPORTER or OTEL_EXPORTER_OTLP_ENDPOINT is set; OTEL_SDK_DISABLED=true "
        "turns it off.",
    )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'dd0c.db'}"

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive"
