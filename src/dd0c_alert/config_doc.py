"""Write docs/configuration.md from the settings model, so the reference cannot drift
from what the code reads: ``python -m dd0c_alert.config_doc [--check] [PATH]``. A test
fails when the page is stale, and when a setting is not placed in a section below."""

from __future__ import annotations

import re
import sys
import typing
from pathlib import Path

from pydantic.fields import FieldInfo

from dd0c_alert.config import Settings, variables

PAGE = Path("docs") / "configuration.md"
#: Paths such as ``<data_dir>/secret.key`` are code, not HTML tags, in Markdown.
_CODE = re.compile(r"([\w:/.]*<[a-z_]+>[\w/.]*\w)")

#: Every setting, in the order a reader looks for it.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Where data lives",
        (
            "data_dir",
            "database_url",
            "migration_database_url",
            "redis_url",
            "archive_url",
            "s3_endpoint_url",
            "s3_region",
            "sqlite_synchronous",
            "retention_days",
        ),
    ),
    (
        "Secrets and accounts",
        (
            "secret_key",
            "jwt_secret",
            "signup_enabled",
            "secret_rotation_grace_seconds",
        ),
    ),
    ("Addresses", ("public_url", "trusted_proxies", "slack_api_url")),
    (
        "Webhook intake",
        (
            "max_body_bytes",
            "claim_check_bytes",
            "rate_limit_per_second",
            "monthly_quota",
            "idempotency_ttl_seconds",
        ),
    ),
    (
        "HTTP connections",
        (
            "max_connections",
            "http_keep_alive_seconds",
            "http_max_header_bytes",
            "http_header_timeout_seconds",
            "http_body_timeout_seconds",
        ),
    ),
    (
        "REST API limits",
        (
            "api_max_body_bytes",
            "max_topology_services",
            "max_topology_edges",
            "max_matchers_per_rule",
            "max_silences",
            "max_inhibitions",
            "max_never_suppress_services",
            "max_routes",
        ),
    ),
    (
        "Correlation workers",
        (
            "worker_batch_size",
            "worker_batch_bytes",
            "worker_max_attempts",
            "worker_lease_seconds",
            "worker_poll_seconds",
            "ready_queue_lag_seconds",
            "worker_batch_budget_seconds",
            "worker_event_budget_seconds",
            "worker_batch_target_seconds",
            "governance_mode",
        ),
    ),
    (
        "Notifications",
        (
            "notify_poll_seconds",
            "notify_coalesce_seconds",
            "notify_max_attempts",
            "notify_slack_per_second",
            "notify_escalation_check_seconds",
            "notify_lease_seconds",
            "digest_hour",
            "smtp_host",
            "smtp_port",
            "smtp_from",
            "smtp_username",
            "smtp_password",
            "smtp_tls",
        ),
    ),
    ("Scheduled jobs", ("suggest_interval_seconds",)),
    ("Observability", ("log_level", "metrics_per_tenant", "otel_enabled")),
)

HEADER = """# Configuration reference

<!-- Generated from src/dd0c_alert/config.py by `python -m dd0c_alert.config_doc`.
     Do not edit by hand: change the setting's description and run it again. -->

Every setting is an environment variable. The defaults run the embedded mode (one
process, SQLite, data under `./data`); [production.md](production.md) says which to set
for PostgreSQL, Redis and S3. A setting's variable is `DD0C_` and its name in capitals;
where another spelling is read too (the conventional `DATABASE_URL`, `REDIS_URL`,
`JWT_SECRET`, `GOVERNANCE_MODE`), both are listed. Values are read once, when a process
starts: a value of the wrong type or out of its bounds (numbers are also never `inf` or
`nan`) stops it there, with one line naming the variable and exit code 2.
"""

FOOTER = """
## Read from the environment besides these

| variable | meaning |
|---|---|
| `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, … | \
credentials of the S3 archive: the standard AWS chain (files and instance roles too); \
never logged |
| `AWS_REQUEST_CHECKSUM_CALCULATION` | \
`when_required` for older S3-compatible stores that reject request checksums |
| `PROMETHEUS_MULTIPROC_DIR` | \
an empty folder shared by the processes of one role, so `/metrics` adds their counters up |

The docker compose install reads more from `.env` (`DD0C_SITE_ADDRESS`, `DD0C_TLS`,
`DD0C_INGEST_UPSTREAMS`, ports and database passwords): `deploy/.env.example` and
[install.md](install.md).
"""


def _default(field: FieldInfo) -> str:
    value = field.default
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def _kind(field: FieldInfo) -> str:
    annotation = field.annotation
    if typing.get_origin(annotation) is typing.Literal:
        return " \\| ".join(f"`{choice}`" for choice in typing.get_args(annotation))
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if args else annotation
    return {str: "text", int: "integer", float: "number", bool: "`true` \\| `false`"}.get(
        base,  # type: ignore[arg-type]
        "path" if base is Path else str(base),
    )


def _bounds(field: FieldInfo) -> str:
    """The limits the settings model enforces at start-up, so the page says them too."""
    words = []
    for limit in field.metadata:
        for attribute, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            value = getattr(limit, attribute, None)
            if value is not None:
                words.append(f"{sign} {value}")
    return f" {', '.join(words)}" if words else ""


def render() -> str:
    """The page; raises when a setting is in no section or in one twice, or is
    undocumented, so a new setting cannot be left out of the reference."""
    fields = Settings.model_fields
    placed = [name for _, names in SECTIONS for name in names]
    missing = sorted(set(fields) - set(placed))
    unknown = sorted(set(placed) - set(fields))
    twice = sorted({name for name in placed if placed.count(name) > 1})
    if missing or unknown or twice:
        raise ValueError(
            f"config_doc.SECTIONS: not placed {missing}, not settings {unknown}, twice {twice}"
        )
    parts = [HEADER]
    for title, names in SECTIONS:
        parts.append(
            f"\n## {title}\n\n| variable | default | type | meaning |\n|---|---|---|---|\n"
        )
        for name in names:
            field = fields[name]
            if not field.description:
                raise ValueError(f"Settings.{name} has no description")
            spelled = " / ".join(f"`{v}`" for v in variables(name))
            meaning = _CODE.sub(r"`\1`", field.description.replace("|", "\\|"))
            parts.append(
                f"| {spelled} | {_default(field)} | {_kind(field)}{_bounds(field)} | {meaning} |\n"
            )
    parts.append(FOOTER)
    return "".join(parts)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    paths = [a for a in argv if a != "--check"]
    path = Path(paths[0]) if paths else PAGE
    text = render()
    if check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is stale: run python -m dd0c_alert.config_doc")  # noqa: T201
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
