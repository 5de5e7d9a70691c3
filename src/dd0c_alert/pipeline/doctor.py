"""``dd0c-alert doctor``: what is wrong with this installation, and how to fix it.

Each check answers ``ok``, ``warn`` (works, but look) or ``fail`` (broken), with a
fix in words for anything not ok. Checks never change anything; each is bounded by a
short timeout, so a dead dependency makes the doctor slow by seconds, not hang.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import sqlalchemy as sa
from cryptography.fernet import InvalidToken

from dd0c_alert.config import Settings
from dd0c_alert.storage import schema as t
from dd0c_alert.storage.engine import make_engines, normalise_database_url, sqlite_path
from dd0c_alert.storage.files import write_refused
from dd0c_alert.storage.migrate import SchemaTooNew, schema_revisions
from dd0c_alert.storage.secrets import SecretBox, parse_keys
from dd0c_alert.storage.sqlite_queue import queue_file
from dd0c_alert.storage.tenancy import scope
from dd0c_alert.storage.unusable import (
    LostDatabase,
    LostKey,
    check_database_present,
    check_key_present,
    refused_write_fix,
    unusable_storage,
)

State = Literal["ok", "warn", "fail"]
TIMEOUT_SECONDS = 3.0
#: Tolerated difference between this machine's clock and the database's.
MAX_SKEW_SECONDS = 5.0
#: A queue whose oldest event waits longer than this is falling behind.
MAX_LAG_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    state: State
    detail: str
    fix: str = ""


def _postgres(settings: Settings) -> bool:
    url = normalise_database_url(settings.resolved_database_url)
    return sa.make_url(url).get_backend_name() == "postgresql"


def _reachable(url: str, default_port: int) -> str | None:
    """None when a TCP connection to the URL's host opens, else why not."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_SECONDS):
            return None
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or type(exc).__name__}"


def check_configuration(settings: Settings) -> list[Finding]:
    found = [Finding("configuration", "ok", f"data folder {settings.data_dir}")]
    if _postgres(settings) and not settings.secret_key:
        found.append(
            Finding(
                "secret key",
                "fail",
                "PostgreSQL mode without DD0C_SECRET_KEY: processes cannot share secrets",
                "set DD0C_SECRET_KEY (a Fernet key, the same in every process): "
                "python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'",
            )
        )
    if "127.0.0.1" in settings.public_url or "localhost" in settings.public_url:
        found.append(
            Finding(
                "public URL",
                "warn",
                f"DD0C_PUBLIC_URL is {settings.public_url}: webhook URLs handed out only work "
                "on this machine",
                "set DD0C_PUBLIC_URL to the address your monitoring tools reach",
            )
        )
    return found


def check_data_folder(settings: Settings) -> list[Finding]:
    """Whether the embedded data folder takes writes. A read-only one stopped the
    doctor at its first check with one line; the other checks now run, reading the
    database without writing (``_engine``)."""
    if _postgres(settings):
        return []
    refused = write_refused(settings.data_dir)
    if refused is None:
        return [Finding("data folder", "ok", "writable")]
    return [
        Finding(
            "data folder",
            "fail",
            f"cannot write {settings.data_dir}: {refused.strerror}",
            refused_write_fix(refused),
        )
    ]


def _engine(settings: Settings) -> sa.Engine:
    """The engine the checks read through. A SQLite database in a folder that refuses
    writes is opened read-only, creating nothing (the write engine creates the file
    and its write-ahead log, which failed there); without a write-ahead log to read,
    as ``immutable``, since SQLite cannot otherwise open it without its -shm file."""
    url = settings.resolved_database_url
    database = sqlite_path(url) if not _postgres(settings) else None
    if database is None or write_refused(database.parent) is None:
        return make_engines(url, settings.sqlite_synchronous)[0]
    wal = database.with_name(database.name + "-wal")
    immutable = "" if wal.exists() and wal.stat().st_size else "&immutable=1"
    return sa.create_engine(f"sqlite:///file:{database}?mode=ro{immutable}&uri=true")


def check_database(settings: Settings) -> list[Finding]:
    if sa.make_url(normalise_database_url(settings.resolved_database_url)).get_backend_name() == (
        "sqlite"
    ):
        database = sqlite_path(settings.resolved_database_url)
        try:  # connecting would create the lost file anew, empty
            check_database_present(database, queue_file(database), settings.data_dir)
        except LostDatabase as exc:
            return [Finding("database", "fail", exc.what, exc.fix)]
    engine = _engine(settings)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            found = [Finding("database", "ok", engine.dialect.name)]
            migrations = _migrations(conn)
            found += migrations
            if conn.dialect.name == "postgresql":
                found += _row_security(conn)
                found += _clock(conn)
            if migrations[0].state == "ok":  # the queue's tables exist
                found += _backlog(conn, settings)
        return found
    except sa.exc.SQLAlchemyError as exc:
        reason = str(exc.orig if hasattr(exc, "orig") and exc.orig else exc).splitlines()[0]
        # A damaged or unwritable SQLite file is no connection problem: say its own fix.
        fix = unusable_storage(exc) or (
            "check DATABASE_URL (host, port, user, password, database) and that the "
            "server is running and reachable from here"
        )
        return [Finding("database", "fail", f"cannot connect: {reason[:300]}", fix)]
    finally:
        engine.dispose()


def _migrations(conn: sa.Connection) -> list[Finding]:
    current, head, known = schema_revisions(conn)
    if current == head:
        return [Finding("migrations", "ok", f"at {head}")]
    if not known:
        too_new = SchemaTooNew(str(current), head)
        return [Finding("migrations", "fail", too_new.what, too_new.fix)]
    return [
        Finding(
            "migrations",
            "fail",
            f"the schema is at {current or 'nothing'}, this version needs {head}",
            "run: dd0c-alert migrate (on PostgreSQL with DD0C_MIGRATION_DATABASE_URL set to "
            "the owner role)",
        )
    ]


def _row_security(conn: sa.Connection) -> list[Finding]:
    """The application role must be subject to row-level security: neither a
    superuser, nor BYPASSRLS, nor the owner of the tenant tables (RLS is not forced,
    so an owner sees every tenant)."""
    role = conn.execute(
        sa.text("SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
    ).one()
    owned = conn.execute(
        sa.text(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind = 'r'"
            " AND pg_get_userbyid(c.relowner) = current_user"
        )
    ).scalar_one()
    if role.rolsuper or role.rolbypassrls or owned:
        why = (
            "is a superuser"
            if role.rolsuper
            else "has BYPASSRLS"
            if role.rolbypassrls
            else f"owns {owned} tables"
        )
        return [
            Finding(
                "row-level security",
                "fail",
                f"the application connects as {role.rolname}, which {why}: one tenant's "
                "queries could see another's rows",
                "connect DATABASE_URL as the application role (deploy/postgres-init.sql "
                "creates dd0c_app) and run migrations as the owner "
                "(DD0C_MIGRATION_DATABASE_URL)",
            )
        ]
    return [Finding("row-level security", "ok", f"{role.rolname} cannot bypass it")]


def _clock(conn: sa.Connection) -> list[Finding]:
    database = conn.execute(sa.text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one()
    skew = abs(float(database) - time.time())
    if skew > MAX_SKEW_SECONDS:
        return [
            Finding(
                "clock",
                "warn",
                f"this machine's clock is {skew:.1f} s off the database's",
                "run NTP (chrony, systemd-timesyncd) on both: leases, replay windows and "
                "signed timestamps depend on it",
            )
        ]
    return [Finding("clock", "ok", f"{skew:.2f} s off the database")]


def _backlog(conn: sa.Connection, settings: Settings) -> list[Finding]:
    if conn.dialect.name == "postgresql":
        waiting, age = conn.execute(
            sa.text("SELECT queue_length, oldest_msg_age_sec FROM pgmq.metrics('dd0c_ingest')")
        ).one()
    else:
        queue = queue_file(sqlite_path(settings.resolved_database_url))
        waiting, oldest = 0, None
        if queue.exists():  # the queue's own file, made by the first serve or ingest
            with contextlib.closing(sqlite3.connect(f"file:{queue}?mode=ro", uri=True)) as db:
                waiting, oldest = db.execute(
                    "SELECT count(*), min(received_at) FROM ingest_queue"
                ).fetchone()
        age = time.time() - oldest if oldest else 0
    found = []
    if age and float(age) > MAX_LAG_SECONDS:
        found.append(
            Finding(
                "queue",
                "warn",
                f"{waiting} events waiting, the oldest for {float(age):.0f} s",
                "start more correlate processes, or check their logs for failing batches",
            )
        )
    else:
        found.append(Finding("queue", "ok", f"{waiting} waiting"))
    dead = _scalar_or_none(conn, "SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL")
    if dead:
        found.append(
            Finding(
                "dead letters",
                "warn",
                f"{dead} accepted events could not be processed",
                "dd0c-alert dlq list shows why; dd0c-alert dlq replay ID sends one again",
            )
        )
    return found


def _scalar_or_none(conn: sa.Connection, query: str) -> int | None:
    """A count the application role may not be allowed to see across tenants (row-level
    security hides other tenants' rows: then it counts none, which is no finding)."""
    try:
        with conn.begin_nested():
            return int(conn.execute(sa.text(query)).scalar_one())
    except sa.exc.SQLAlchemyError:
        return None


_KEY_FIX = (
    "use the key the secrets were stored with: put the secret.key of the backup in "
    "DD0C_DATA_DIR, or set DD0C_SECRET_KEY to it (docs/operations.md#backups)"
)
#: PostgreSQL mode reads no secret.key: every process takes DD0C_SECRET_KEY.
_POSTGRES_KEY_FIX = (
    "set DD0C_SECRET_KEY, in every process, to the key the secrets were stored with "
    "(docs/operations.md#backups)"
)


def check_secret_key(settings: Settings) -> list[Finding]:
    """Whether the secret key reads the secrets stored with it. A restore without the
    backup's secret.key (or a DD0C_SECRET_KEY from elsewhere) made every webhook answer
    503 while every check here said ok. Nothing is created: a missing key file stays
    missing. On PostgreSQL one tenant's secret is read in its scope, as /readyz does."""
    if _postgres(settings) and not settings.secret_key:
        return []  # check_configuration fails it
    key_file = settings.data_dir / "secret.key"
    if not _postgres(settings) and not sqlite_path(settings.resolved_database_url).exists():
        return []  # a new installation: nothing is stored yet
    engine = _engine(settings)
    try:
        if not settings.secret_key:
            check_key_present(key_file, engine)
            if not key_file.exists():
                return []
        token = _a_stored_secret(engine)
    except LostKey as exc:
        return [Finding("secret key", "fail", str(exc).split(": put back")[0], _KEY_FIX)]
    except sa.exc.SQLAlchemyError:
        return []  # check_database says why
    finally:
        engine.dispose()
    if token is None:
        return []
    try:
        SecretBox(*parse_keys(settings.secret_key or key_file.read_text())).decrypt(token)
    except (InvalidToken, ValueError):
        where = "DD0C_SECRET_KEY" if settings.secret_key else str(key_file)
        return [
            Finding(
                "secret key",
                "fail",
                f"{where} cannot decrypt the stored secrets: every webhook is answered 503",
                _POSTGRES_KEY_FIX if _postgres(settings) else _KEY_FIX,
            )
        ]
    return [Finding("secret key", "ok", "decrypts the stored secrets")]


def _a_stored_secret(engine: sa.Engine) -> str | None:
    """One integration secret, as stored (encrypted), or None when there is none.
    On PostgreSQL row-level security hides every tenant's rows from the application
    role, so the tenant holding one is named by the migration 0020 function /readyz
    uses, and the secret read in its scope; a plain read found none, and a key from
    elsewhere passed."""
    if t.integrations.name not in sa.inspect(engine).get_table_names():
        return None
    query = sa.select(t.integrations.c.secret_encrypted).order_by(t.integrations.c.id).limit(1)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            found = conn.execute(sa.select(sa.func.dd0c_a_tenant_with_integration())).scalar()
            if not isinstance(found, str):
                return None
            scope(conn, found)
            query = query.where(t.integrations.c.tenant_id == found)
        token = conn.execute(query).scalar()
    return token if isinstance(token, str) else None


def check_redis(settings: Settings) -> list[Finding]:
    if not settings.redis_url:
        return []
    import redis  # noqa: PLC0415  (only installations with Redis pay for the import)

    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
    )
    try:
        client.ping()
        return [Finding("redis", "ok", "answers")]
    except redis.RedisError as exc:
        return [
            Finding(
                "redis",
                "fail",
                f"cannot reach REDIS_URL: {exc}",
                "start Redis or fix REDIS_URL; meanwhile rate limits and circuit breakers "
                "fall back to each process's memory (readiness says degraded)",
            )
        ]
    finally:
        client.close()


def check_archive(settings: Settings) -> list[Finding]:
    if settings.archive_url:
        reason = _reachable(settings.s3_endpoint_url or "https://s3.amazonaws.com", 443)
        if reason:
            return [
                Finding(
                    "archive",
                    "fail",
                    f"S3 endpoint unreachable ({reason})",
                    "check DD0C_S3_ENDPOINT_URL and the network",
                )
            ]
        return [Finding("archive", "ok", settings.archive_url)]
    folder = Path(settings.archive_dir)
    probe = folder / ".doctor-probe"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            probe.write_bytes(b"ok")
        finally:
            probe.unlink(missing_ok=True)  # a write cut short by a full disk left it
        return [Finding("archive", "ok", str(folder))]
    except OSError as exc:
        return [
            Finding(
                "archive", "fail", f"cannot write {folder}: {exc.strerror}", refused_write_fix(exc)
            )
        ]


def check_notifiers(settings: Settings) -> list[Finding]:
    found = []
    if settings.smtp_host:
        reason = _reachable(f"smtp://{settings.smtp_host}:{settings.smtp_port}", 25)
        found.append(
            Finding(
                "smtp",
                "warn" if reason else "ok",
                reason or f"{settings.smtp_host}:{settings.smtp_port} accepts connections",
                "check DD0C_SMTP_HOST/DD0C_SMTP_PORT and the firewall" if reason else "",
            )
        )
    reason = _reachable(settings.slack_api_url, 443)
    found.append(
        Finding(
            "slack",
            "warn" if reason else "ok",
            reason or f"{settings.slack_api_url} reachable",
            "Slack notifications need outbound HTTPS to DD0C_SLACK_API_URL" if reason else "",
        )
    )
    return found


CHECKS: tuple[Callable[[Settings], list[Finding]], ...] = (
    check_configuration,
    check_data_folder,
    check_database,
    check_secret_key,
    check_redis,
    check_archive,
    check_notifiers,
)


def diagnose(settings: Settings) -> list[Finding]:
    found: list[Finding] = []
    for check in CHECKS:
        found += check(settings)
    return found
