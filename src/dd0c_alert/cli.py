"""``dd0c-alert``: run the service and administer it."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dd0c_alert.cli_audit import cli_audit
from dd0c_alert.cli_integrations import integration_app
from dd0c_alert.cli_notify import deliveries_app, routes_app, slack_app
from dd0c_alert.domain.times import InvalidTime, parse_time
from dd0c_alert.pipeline.limits import LimitExceeded, check_proposal, check_topology
from dd0c_alert.roles import ROLES

if TYPE_CHECKING:
    import socket

    from dd0c_alert.config import Settings
    from dd0c_alert.pipeline.limits import ApiLimits
    from dd0c_alert.pipeline.runtime import Runtime
    from dd0c_alert.storage.sql import SqlStore
    from dd0c_alert.supervisor import BackgroundProcess


# The CLI starts fast (`--help` in well under a second): configuration, storage and
# the web stack are imported by the commands that use them, through these helpers.


def load_settings() -> Settings:
    """The settings of every command. A bad value ends the command with one line per
    problem naming its environment variable and exit code 2 (a usage error), not
    pydantic's traceback naming the field."""
    from dd0c_alert.config import InvalidSettings, load

    try:
        return load()
    except InvalidSettings as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2) from None


_settings = load_settings


def open_store(settings: Settings) -> SqlStore:
    from dd0c_alert.app import open_store as opened

    return opened(settings)


def build_runtime(
    settings: Settings,
    *,
    roles: frozenset[str] = ROLES,
    wake_consumer: Callable[[], None] | None = None,
    migrate_schema: bool = True,
) -> Runtime:
    from dd0c_alert.app import build_runtime as built

    return built(settings, roles=roles, wake_consumer=wake_consumer, migrate_schema=migrate_schema)


def run_migrations(settings: Settings) -> None:
    from dd0c_alert.app import migrate

    migrate(settings)


def api_limits(settings: Settings) -> ApiLimits:
    from dd0c_alert.app import api_limits as limits

    return limits(settings)


def _is_postgres(settings: Settings) -> bool:
    from dd0c_alert.app import is_postgres

    return is_postgres(settings)


def require_tenant(store: SqlStore, tenant: str) -> None:
    """Refuse an unknown ``--tenant``, naming the id when the operator gave a tenant's
    name: every command takes the id, and "no tenant 'acme'" for the tenant just
    created as acme read as if it had been lost."""
    if store.get_tenant(tenant) is not None:
        return
    named = [t.id for t in store.list_tenants() if t.name == tenant]
    if named:
        raise typer.BadParameter(
            f"{tenant!r} is the name of tenant {' and '.join(named)}: --tenant takes the id",
            param_hint="'--tenant'",
        )
    raise typer.BadParameter(
        f"no tenant {tenant!r} (dd0c-alert tenant list shows them)", param_hint="'--tenant'"
    )


app = typer.Typer(
    help="dd0c/alert: every alert in, nothing lost, one clear incident out.", no_args_is_help=True
)
tenant_app = typer.Typer(help="Tenants and their API keys.", no_args_is_help=True)
dlq_app = typer.Typer(
    help="Dead letters: accepted events that could not be processed.", no_args_is_help=True
)
app.add_typer(tenant_app, name="tenant")
app.add_typer(integration_app, name="integration")
app.add_typer(slack_app, name="slack")
app.add_typer(deliveries_app, name="deliveries")
app.add_typer(routes_app, name="routes")
app.add_typer(dlq_app, name="dlq")
topology_app = typer.Typer(
    help="Declared service dependencies: which services each service depends on.",
    no_args_is_help=True,
)
app.add_typer(topology_app, name="topology")
user_app = typer.Typer(help="Users of a tenant, for headless set-up.", no_args_is_help=True)
app.add_typer(user_app, name="user")
api_key_app = typer.Typer(help="A tenant's API keys.", no_args_is_help=True)
app.add_typer(api_key_app, name="api-key")
secrets_app = typer.Typer(
    help="Secrets stored encrypted with DD0C_SECRET_KEY (else the data folder's secret.key).",
    no_args_is_help=True,
)
app.add_typer(secrets_app, name="secrets")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _json_value(value: object) -> str:
    """Times as the REST API writes them (ISO 8601, ``T``, with their offset): ``str``
    wrote ``2026-12-07 09:50:58+00:00``, which not every ISO parser takes."""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


PortOption = Annotated[int, typer.Option(help="Port to listen on.")]


HostOption = Annotated[str, typer.Option(help="Interface to listen on.")]


def _serve_http(
    roles: frozenset[str], host: str, port: int, background: BackgroundProcess | None = None
) -> None:
    """uvicorn for ``roles``; with ``background``, the child process that runs the
    other roles starts once this process has migrated the schema, and stops after
    uvicorn's last request and commit. An embedded server holds its data folder
    (``local_server.exclusive``) from before it touches the queue until it exits."""
    from dd0c_alert.local_server import FolderInUse, recorded
    from dd0c_alert.logs import configure
    from dd0c_alert.tracing import setup as setup_tracing
    from dd0c_alert.web.app import create_app

    settings = _settings()
    configure(settings.log_level)
    setup_tracing(settings.otel_enabled, roles)
    with contextlib.ExitStack() as held:
        # Local admin commands and `demo` read where an embedded server listens.
        if "ingest" in roles and not _is_postgres(settings):
            try:
                held.enter_context(recorded(settings.data_dir, host, port))
            except FolderInUse as exc:
                typer.echo(f"error: {exc}: stop it first, or use another DD0C_DATA_DIR", err=True)
                raise typer.Exit(2) from None
        listener = held.enter_context(_listen(host, port))
        where = f"http://{host}:{port}"
        typer.echo(
            f"dd0c-alert {', '.join(sorted(roles))} listening on {where}"
            + (f"; API docs at {where}/docs" if "api" in roles else ""),
            err=True,
        )
        runtime = build_runtime(
            settings, roles=roles, wake_consumer=background.wake if background else None
        )
        if "ingest" in roles:
            from dd0c_alert.local_server import public_url_warning

            warning = public_url_warning(settings.public_url, settings.data_dir)
            if warning:
                typer.echo(
                    f"warning: {warning}, or the webhook URLs `dd0c-alert integration` "
                    "prints point at nothing",
                    err=True,
                )
        if background is not None:
            runtime.background_alive = background.alive
            background.start()
        try:
            _run_uvicorn(create_app(runtime), settings, listener)
        finally:
            if background is not None:
                background.stop()


def _listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound and listening before the banner says so (uvicorn
    bound it only after the banner, which then claimed a port that was taken).
    Connections made while the schema is migrated wait in the backlog."""
    import socket

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    return sock


#: uvicorn's default.
_BACKLOG = 2048


#: Allocations between young collections (Python's default is 700). A worker batch or
#: a burst of webhooks keeps tens of thousands of objects alive for milliseconds; at
#: 700, each of them was walked by several young collections and promoted, so the
#: older generations filled with garbage and were collected again and again. At
#: 10,000 the worker's collector time in ``bench/worker.py`` storm fell from 0.33 to
#: 0.16 s per 30,000 alerts (50,000 measured slower again: a bigger young generation
#: is walked while it no longer fits the caches).
_GC_YOUNG_THRESHOLD = 10_000


def freeze_heap() -> None:
    """Move what start-up made (modules, the app, the runtime) out of the collector's
    sight, and collect the young generation less often. A full collection walked all
    of it: pauses of 390 ms mid-storm in ``serve``, every webhook and the worker's lock
    held waiting, and 30 ms after freezing."""
    import gc

    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, older, oldest)


class _Terminated(Exception):
    """SIGTERM, as uvicorn re-raises it once its own graceful shutdown is done."""


def _raise_terminated(signum: int, frame: object) -> None:
    """Uvicorn re-raises a captured SIGTERM after its shutdown, for the handler that was
    there before it. At the default action that ended the process on the spot, before
    the caller's clean-up: serve's child then died of end-of-file in mid-batch instead
    of being stopped in order, and the metrics folder and the folder's note stayed
    behind. Raised instead, it returns control to the caller like Ctrl-C does."""
    raise _Terminated


def _run_uvicorn(asgi: Any, settings: Settings, listener: socket.socket) -> None:
    import signal

    import uvicorn

    from dd0c_alert.web.http_server import protocol as http_protocol

    freeze_heap()
    config = uvicorn.Config(
        asgi,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http=http_protocol(
            settings.http_header_timeout_seconds,
            settings.http_max_header_bytes,
            getattr(asgi, "deliveries", None),
        ),
        timeout_graceful_shutdown=10,
        timeout_keep_alive=settings.http_keep_alive_seconds,
        limit_concurrency=settings.max_connections,
        h11_max_incomplete_event_size=settings.http_max_header_bytes,
        backlog=_BACKLOG,
        proxy_headers=True,
        forwarded_allow_ips=settings.trusted_proxies,
    )
    server = uvicorn.Server(config)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with contextlib.suppress(KeyboardInterrupt, _Terminated):
            server.run(sockets=[listener])
    finally:
        # A second SIGTERM while the caller stops the rest ends the process at once.
        signal.signal(signal.SIGTERM, previous)
    if not server.started:
        raise typer.Exit(3)  # uvicorn's exit code for a failed start-up


def _run_until_signalled(roles: frozenset[str]) -> None:
    """Run roles that serve no HTTP until SIGTERM or SIGINT, then stop cleanly."""
    import signal
    import threading

    from dd0c_alert.logs import configure
    from dd0c_alert.tracing import setup as setup_tracing

    settings = _settings()
    configure(settings.log_level)
    setup_tracing(settings.otel_enabled, roles)
    runtime = build_runtime(settings, roles=roles)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    freeze_heap()
    runtime.start()
    try:
        stop.wait()
    finally:
        runtime.stop()


@app.command()
def serve(host: HostOption = "127.0.0.1", port: PortOption = 8080) -> None:
    """Run every role: webhooks and the API here, the worker, notifier and scheduled
    jobs in a child process this one supervises."""
    import shutil

    from dd0c_alert.supervisor import BACKGROUND_ROLES, BackgroundProcess, share_metrics_directory

    metrics_dir = share_metrics_directory()
    try:
        _serve_http(ROLES - BACKGROUND_ROLES, host, port, BackgroundProcess())
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


@app.command("serve-background", hidden=True)
def serve_background(wake_fd: Annotated[int, typer.Option()]) -> None:
    """The child process of ``serve`` (worker, notifier, scheduled jobs)."""
    import signal
    import threading

    from dd0c_alert.logs import configure
    from dd0c_alert.supervisor import BACKGROUND_ROLES, ParentLink
    from dd0c_alert.tracing import setup as setup_tracing

    parent = ParentLink(wake_fd)
    # Ctrl-C in a terminal reaches the whole process group; the parent then stops
    # this process in order (SIGTERM), after its own last commit.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    settings = _settings()
    configure(settings.log_level)
    setup_tracing(settings.otel_enabled, BACKGROUND_ROLES)
    # The parent migrated the database before starting this process.
    runtime = build_runtime(settings, roles=BACKGROUND_ROLES, migrate_schema=False)
    runtime.cron_pass_process = True
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if runtime.worker is not None:
        parent.forward_to(runtime.worker.wake)
    freeze_heap()
    runtime.start()
    try:
        stop.wait()
    finally:
        runtime.stop()


@app.command("cron-pass", hidden=True)
def cron_pass(parent_fd: Annotated[int, typer.Option()]) -> None:
    """One pass of the scheduled jobs, then exit (``serve``'s child runs each this way)."""
    from dd0c_alert.logs import configure
    from dd0c_alert.pipeline.cron import Scheduler
    from dd0c_alert.supervisor import ParentLink

    ParentLink(parent_fd)  # exits at once if the process that started this one dies

    settings = _settings()
    configure(settings.log_level)
    runtime = build_runtime(settings, roles=frozenset({"cron"}), migrate_schema=False)
    try:
        Scheduler(runtime.store, 0, runtime.archive, runtime.retention, runtime.queue).run_once()
    finally:
        runtime.stop()


@app.command()
def ingest(host: HostOption = "127.0.0.1", port: PortOption = 8080) -> None:
    """Receive webhooks and queue them (run several behind a load balancer)."""
    _serve_http(frozenset({"ingest"}), host, port)


@app.command()
def api(host: HostOption = "127.0.0.1", port: PortOption = 8081) -> None:
    """Serve the REST API."""
    _serve_http(frozenset({"api"}), host, port)


HealthPort = Annotated[
    int | None,
    typer.Option(
        "--port",
        help="Serve /healthz, /readyz and /metrics on this port (for orchestrators and "
        "Prometheus); none: no HTTP.",
    ),
]


def _run_role(role: str, host: str, port: int | None) -> None:
    if port is None:
        _run_until_signalled(frozenset({role}))
    else:
        _serve_http(frozenset({role}), host, port)


@app.command()
def correlate(host: HostOption = "127.0.0.1", port: HealthPort = None) -> None:
    """Consume the queue: normalise, correlate and store (run several to scale out)."""
    _run_role("correlate", host, port)


@app.command()
def notify(host: HostOption = "127.0.0.1", port: HealthPort = None) -> None:
    """Deliver the notification outbox: Slack, email, webhooks (several may run)."""
    _run_role("notify", host, port)


@app.command()
def cron(host: HostOption = "127.0.0.1", port: HealthPort = None) -> None:
    """Run the scheduled jobs (retention, suggestions, idempotency-key purge); run only one
    process of it."""
    _run_role("cron", host, port)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (serve does this too on SQLite). On
    PostgreSQL, runs as DD0C_MIGRATION_DATABASE_URL's owner role and grants the
    DATABASE_URL role its data rights."""
    run_migrations(_settings())
    typer.echo("database is up to date")


@secrets_app.command("re-encrypt")
def secrets_reencrypt() -> None:
    """Encrypt every stored secret (integrations, Slack, webhook routes) again with the
    secret key's first key.

    To change the key: put the new key in front of the old one on every process
    (DD0C_SECRET_KEY=new,old, or new and old on their own lines in secret.key) and
    restart them, run this, then drop the old key. Safe while serving, and to run again.
    """
    store = open_store(_settings())
    count = store.reencrypt_secrets()
    typer.echo(f"{count} secret{'' if count == 1 else 's'} encrypted with the first key")


@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Argument(help="A name for people, e.g. acme.")],
    as_json: JsonFlag = False,
) -> None:
    """Create a tenant and its first API key (shown once)."""
    if not name.strip():
        raise typer.BadParameter("a tenant needs a name", param_hint="'NAME'")
    store = open_store(_settings())
    tenant = store.create_tenant(name)
    key = store.create_api_key(tenant.id, "default")
    cli_audit(store, tenant.id, "tenant.create", "tenant", tenant.id, {"name": tenant.name})
    if as_json:
        typer.echo(json.dumps({"tenant_id": tenant.id, "api_key": key}))
        return
    typer.echo(f"tenant {tenant.name}: {tenant.id}")
    typer.echo(f"API key (shown once, store it now): {key}")


@tenant_app.command("list")
def tenant_list(as_json: JsonFlag = False) -> None:
    """List tenants: the id each --tenant option takes, and the name."""
    tenants = open_store(_settings()).list_tenants()
    if as_json:
        typer.echo(json.dumps([{"tenant_id": t.id, "name": t.name} for t in tenants]))
        return
    if not tenants:  # an empty output read as a command that did nothing
        typer.echo("no tenants: dd0c-alert tenant create NAME makes one")
    for tenant in tenants:
        typer.echo(f"{tenant.id}  {tenant.name}")


@dlq_app.command("list")
def dlq_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    limit: Annotated[int, typer.Option(help="Most dead letters listed.", min=1)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List dead letters, newest first; says so when there are none (an empty
    output read as a command that did nothing)."""
    rows = open_store(_settings()).list_dead_letters(tenant, limit)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        typer.echo("no dead letters" + (f" of tenant {tenant}" if tenant else ""))
    for row in rows:
        state = f"replayed {row['replayed_at']}" if row["replayed_at"] else "dead"
        error = row["error"].splitlines()[0][:100]
        typer.echo(f"{row['id']}  {row['provider']:<16} {row['failed_at']}  {state}  {error}")


@dlq_app.command("show")
def dlq_show(
    dead_letter_id: Annotated[str, typer.Argument(help="An id from dd0c-alert dlq list.")],
) -> None:
    """Show one dead letter: error, headers and body."""
    dead = open_store(_settings()).get_dead_letter(dead_letter_id)
    if dead is None:
        raise typer.BadParameter(f"no dead letter {dead_letter_id!r}")
    event = dead.event
    typer.echo(f"event {event.event_id}  tenant {event.tenant_id}  provider {event.provider}")
    typer.echo(
        f"attempts {event.attempts}\nerror: {dead.error}\nheaders: {json.dumps(event.headers)}"
    )
    if event.body is not None:
        typer.echo(f"body: {event.body.decode('utf-8', 'replace')}")
    else:
        typer.echo(f"body archived at {event.body_ref}")


@dlq_app.command("replay")
def dlq_replay(
    dead_letter_ids: Annotated[list[str], typer.Argument(help="Ids from dd0c-alert dlq list.")],
) -> None:
    """Put dead letters back on the queue (a running service processes them)."""
    from dd0c_alert.pipeline.dead_letters import replay_dead_letter

    settings = _settings()
    runtime = build_runtime(settings, roles=frozenset())
    for dead_letter_id in dead_letter_ids:
        dead = runtime.store.get_dead_letter(dead_letter_id)
        event_id = replay_dead_letter(runtime.store, runtime.queue, dead_letter_id)
        if dead is None or event_id is None:
            raise typer.BadParameter(f"no dead letter {dead_letter_id!r}")
        tenant = dead.event.tenant_id
        cli_audit(runtime.store, tenant, "dead_letter.replay", "dead_letter", dead_letter_id)
        typer.echo(f"requeued {event_id}")


@app.command("redact-stored")
def redact_stored_command(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would change; write nothing.")
    ] = False,
) -> None:
    """Redact credentials from dead letters and archive files stored by older versions."""
    from dd0c_alert.pipeline.redact_stored import redact_stored
    from dd0c_alert.storage.engine import make_engines

    settings = _settings()
    store = open_store(settings)
    tenants = [tenant] if tenant else [t.id for t in store.list_tenants()]
    engine, _ = make_engines(settings.resolved_database_url, settings.sqlite_synchronous)
    archive = build_runtime(settings, roles=frozenset()).archive
    report = redact_stored(store, engine, archive, tenants, dry_run=dry_run)
    verb = "would redact" if dry_run else "redacted"
    typer.echo(
        f"{verb}: {report.dead_letters} dead letter(s), {report.archive_files} of "
        f"{report.files_scanned} archive file(s), {len(tenants)} tenant(s)"
    )


def _read_document(path: Path) -> Any:
    """JSON, or YAML (``.yaml``/``.yml``) when PyYAML is installed."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() not in (".yaml", ".yml"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"{path} is not valid JSON: {exc}") from None
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        raise typer.BadParameter("reading YAML needs PyYAML installed; or use JSON") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise typer.BadParameter(f"{path} is not valid YAML: {exc}") from None


def _print_topology(dependencies: dict[str, list[str]], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"dependencies": dependencies}))
        return
    if not dependencies:
        typer.echo("no dependencies declared")
    for service, upstreams in dependencies.items():
        typer.echo(f"{service} -> {', '.join(upstreams)}")


@topology_app.command("import")
def topology_import(
    file: Annotated[
        Path,
        typer.Argument(
            # \[: rich markup took "[services it depends on]" for a style tag and dropped it.
            help="JSON or YAML: {service: \\[services it depends on]}, optionally under "
            "a top-level 'dependencies' key (the shape of PUT /v1/topology).",
            exists=True,
            dir_okay=False,
        ),
    ],
    tenant: Annotated[str, typer.Option(help="Tenant id.")],
    as_json: JsonFlag = False,
) -> None:
    """Replace a tenant's declared service dependencies with those in FILE."""
    from pydantic import ValidationError

    from dd0c_alert.web.config_api import Topology, topology_of

    store = open_store(_settings())
    require_tenant(store, tenant)
    document = _read_document(file)
    wrapped = isinstance(document, dict) and list(document) == ["dependencies"]
    try:
        topology = Topology.model_validate(document if wrapped else {"dependencies": document})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise typer.BadParameter(f"{file}: {problems}") from None
    try:
        check_topology(topology.dependencies, api_limits(_settings()))
    except LimitExceeded as exc:
        raise typer.BadParameter(f"{file}: {exc}") from None
    store.set_dependencies(tenant, topology.dependencies)
    services = {"services": len(topology.dependencies)}
    cli_audit(store, tenant, "topology.replace", "topology", tenant, services)
    _, rules = store.tenant_config(tenant)
    _print_topology(topology_of(rules), as_json)


@topology_app.command("show")
def topology_show(
    tenant: Annotated[str, typer.Option(help="Tenant id.")], as_json: JsonFlag = False
) -> None:
    """Print a tenant's declared service dependencies."""
    from dd0c_alert.web.config_api import topology_of

    store = open_store(_settings())
    require_tenant(store, tenant)
    _, rules = store.tenant_config(tenant)
    _print_topology(topology_of(rules), as_json)


TenantOption = Annotated[str, typer.Option("--tenant", help="Tenant id.")]


def _tenant_store(tenant: str) -> SqlStore:
    store = open_store(_settings())
    require_tenant(store, tenant)
    return store


@user_app.command("create")
def user_create(
    tenant: TenantOption,
    email: Annotated[str, typer.Option(help="The user's email address.")],
    role: Annotated[str, typer.Option(help="owner, admin, member or viewer.")] = "owner",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Add a user to a tenant (created if new). Without a password the user sets one
    through a reset link (POST /v1/auth/reset-request)."""
    import sys

    from dd0c_alert.web.passwords import WeakPassword, check_strength, hash_password
    from dd0c_alert.web.permissions import ROLES

    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}")
    store = _tenant_store(tenant)
    accounts = store.accounts()
    password_hash = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        try:
            check_strength(password, email)
        except WeakPassword as exc:
            raise typer.BadParameter(str(exc)) from None
        password_hash = hash_password(password)
    user = accounts.user_by_email(email) or accounts.create_user(email, password_hash)
    if password_hash is not None and user.password_hash is None:
        accounts.set_password(user.id, password_hash)
    accounts.add_member(tenant, user.id, role)
    detail = {"email": user.email, "role": role, "password_set": password_hash is not None}
    cli_audit(store, tenant, "user.add", "user", user.id, detail)
    result = {"user_id": user.id, "email": user.email, "tenant_id": tenant, "role": role}
    typer.echo(json.dumps(result) if as_json else f"{email} is {role} of {tenant} ({user.id})")


@api_key_app.command("create")
def api_key_create(
    tenant: TenantOption,
    name: Annotated[str, typer.Option(help="What the key is for.")],
    scope: Annotated[str, typer.Option(help="read, write or admin.")] = "read",
    as_json: JsonFlag = False,
) -> None:
    """Create an API key; it is shown once, only its hash is kept."""
    from dd0c_alert.web.permissions import SCOPES

    if scope not in SCOPES:
        raise typer.BadParameter(f"scope must be one of {', '.join(SCOPES)}")
    store = _tenant_store(tenant)
    key, record = store.accounts().create_api_key(tenant, name, scope)
    cli_audit(store, tenant, "api_key.create", "api_key", record.id, {"name": name, "scope": scope})
    if as_json:
        typer.echo(json.dumps({"id": record.id, "key": key, "scope": scope}))
    else:
        typer.echo(f"{record.id}  {scope}  {name}\n{key}\n(shown once: store it now)")


@api_key_app.command("list")
def api_key_list(tenant: TenantOption, as_json: JsonFlag = False) -> None:
    """The tenant's API keys (never the keys themselves)."""
    keys = [key.public() for key in _tenant_store(tenant).accounts().api_keys(tenant)]
    if as_json:
        typer.echo(json.dumps(keys, default=_json_value))
        return
    for key in keys:
        used = (
            f"last used {_json_value(key['last_used_at'])}" if key["last_used_at"] else "never used"
        )
        typer.echo(f"{key['id']}  {key['scope']:<5}  {key['name']}  ({used})")


@api_key_app.command("revoke")
def api_key_revoke(
    tenant: TenantOption, key_id: Annotated[str, typer.Argument(help="The key's id.")]
) -> None:
    """Revoke an API key: refused at once by new processes, within 10 s by running
    servers (they cache keys that long)."""
    store = _tenant_store(tenant)
    revoked = store.accounts().revoke_api_key(tenant, key_id)
    if revoked is None:
        raise typer.BadParameter(f"tenant {tenant} has no API key {key_id}")
    if revoked:  # revoking it again changes nothing, and is not audited again
        cli_audit(store, tenant, "api_key.revoke", "api_key", key_id)
    typer.echo(f"revoked {key_id} (running servers refuse it within 10 s)")


@app.command()
def doctor(as_json: JsonFlag = False) -> None:
    """Check configuration, database, migrations, row-level security, Redis, the
    archive, the clock, the queue and the notifiers; say how to fix what fails."""
    from dataclasses import asdict

    from dd0c_alert.pipeline.doctor import diagnose

    findings = diagnose(_settings())
    if as_json:
        typer.echo(json.dumps([asdict(f) for f in findings], indent=2))
    else:
        for finding in findings:
            line = f"{finding.state:<4}  {finding.check}: {finding.detail}"
            typer.echo(line + (f"\n      fix: {finding.fix}" if finding.fix else ""))
    if any(f.state == "fail" for f in findings):
        raise typer.Exit(1)


@app.command()
def backup(target: Annotated[Path, typer.Argument(help="A new, empty folder.")]) -> None:
    """Back up an embedded installation (database, archive, keys) while it serves."""
    from dd0c_alert.pipeline.backup import backup as take_backup
    from dd0c_alert.storage.engine import sqlite_path

    settings = _settings()
    if _is_postgres(settings):
        raise typer.BadParameter("PostgreSQL: use pg_dump (see docs/production.md)")
    database = sqlite_path(settings.resolved_database_url)
    try:
        copied = take_backup(database, settings.archive_dir, settings.data_dir, target)
    except FileExistsError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(
        f"backed up {copied.database_bytes} bytes of database and "
        f"{copied.archive_files} archive files into {target}"
    )


@app.command()
def restore(
    source: Annotated[Path, typer.Argument(help="A folder made by dd0c-alert backup.")],
    force: Annotated[bool, typer.Option(help="Replace an existing installation.")] = False,
) -> None:
    """Restore an embedded installation from a backup (stop the service first)."""
    from dd0c_alert.local_server import FolderInUse, exclusive
    from dd0c_alert.pipeline.backup import restore as put_back

    settings = _settings()
    if _is_postgres(settings):
        raise typer.BadParameter("PostgreSQL: use pg_restore (see docs/production.md)")
    try:
        # Held throughout: a running server would go on writing to the deleted files,
        # and one starting meanwhile would read a half-restored folder.
        with exclusive(settings.data_dir):
            copied = put_back(source, settings.data_dir, force=force)
    except FolderInUse as exc:
        raise typer.BadParameter(f"{exc}: stop it before restoring") from None
    except (FileExistsError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"restored {copied.archive_files} archive files into {settings.data_dir}")


@app.command()
def suggest(
    tenant: Annotated[str, typer.Option(help="Tenant id.")],
    as_json: JsonFlag = False,
) -> None:
    """Compute a tenant's suggestions from its history now; print the open ones."""
    from dd0c_alert.pipeline.suggest import run_suggestions

    store = open_store(_settings())
    require_tenant(store, tenant)
    run_suggestions(store, tenant)
    items = store.list_suggestions(tenant, "open", None, 500, None).items
    if as_json:
        typer.echo(json.dumps(items, default=_json_value))
        return
    if not items:
        typer.echo("no open suggestions: the history supports none")
    for item in items:
        typer.echo(f"{item['id']}  {item['kind']:<12} {item['title']}")


def _moment(text: str, option: str) -> datetime:
    try:
        return parse_time(text, option)
    except InvalidTime as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def replay(
    tenant: Annotated[str, typer.Option(help="Tenant id.")],
    since: Annotated[str, typer.Option(help="Replay alerts that started from this ISO time...")],
    until: Annotated[str | None, typer.Option(help="...until this one (default: now).")] = None,
    rules: Annotated[
        Path | None,
        typer.Option(
            help='Proposed configuration (JSON): {"settings": {...}, "dependencies": {...}, '
            '"silences": [...], "inhibitions": [...]}; default: the current one.',
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """What if: re-run stored alerts through a proposed configuration and compare with
    what actually happened. Nothing is changed."""
    from dd0c_alert.pipeline.replay import Proposal, parse_proposal
    from dd0c_alert.pipeline.replay import replay as run_replay

    store = open_store(_settings())
    require_tenant(store, tenant)
    try:
        proposal = Proposal() if rules is None else parse_proposal(_read_document(rules))
        check_proposal(proposal, api_limits(_settings()))
        report = run_replay(
            store,
            tenant,
            _moment(since, "--since"),
            None if until is None else _moment(until, "--until"),
            proposal,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(report))
        return
    _print_replay(report)


def _print_replay(report: dict[str, Any]) -> None:
    changed = ", ".join(report["configuration"]["changed"]) or "nothing (current configuration)"
    typer.echo(f"replayed {report['alerts']} alerts, {report['since']} .. {report['until']}")
    typer.echo(f"proposal changes: {changed}\n")
    actual, proposed = report["actual"], report["proposed"]
    typer.echo(f"{'':<26}{'actual':>8}{'proposed':>10}")
    for label, key in (
        ("incidents", "incidents"),
        ("pages", "pages"),
        ("alerts suppressed", "alerts_suppressed"),
        ("alerts would-suppress", "alerts_would_suppress"),
    ):
        typer.echo(f"{label:<26}{actual[key]:>8}{proposed[key]:>10}")
    critical = report["critical_alerts_affected"]
    typer.echo(f"\ncritical alerts affected: {len(critical)}")
    for item in critical:
        was, would = item["actual"], item["proposed"]
        typer.echo(
            f"  {item['alert_id']}  {item['title']} ({item['service']}): "
            f"paged {was['paged']} -> {would['paged']}, "
            f"suppressed by {was['suppressed_by']} -> {would['suppressed_by']}"
        )
    grouping = report["grouping"]
    typer.echo(
        f"grouping: {grouping['unchanged']} unchanged, {grouping['merged']} merged, "
        f"{grouping['split']} split"
    )
    for diff in grouping["differences"]:
        if diff["change"] == "merged":
            what = f"{', '.join(diff['actual'])} -> {diff['proposed']}"
        else:
            what = f"{diff['actual']} -> {', '.join(diff['proposed'])}"
        typer.echo(f"  {diff['change']}: {what} ({diff['alerts']} alerts)")
    for note in report["notes"]:
        typer.echo(f"note: {note}")


@app.command()
def demo(
    url: Annotated[
        str | None,
        typer.Option(
            help="Base URL of a running server (default: the embedded server of this data "
            "folder, else DD0C_PUBLIC_URL)."
        ),
    ] = None,
    tenant: Annotated[
        str | None,
        typer.Option(help="Post into this tenant (yours); default: a new tenant 'demo'."),
    ] = None,
    count: Annotated[int, typer.Option(help="How many alerts to send.", min=1, max=5000)] = 60,
) -> None:
    """Post a realistic burst of alerts (a deploy, a slow database, the services above
    it) to a running server, into your tenant or a new one; say where to look."""
    from dd0c_alert.demo import Unreachable, run_demo
    from dd0c_alert.local_server import listening_url

    settings = _settings()
    base = url or listening_url(settings.data_dir) or settings.public_url
    try:
        lines = run_demo(settings, base, count, tenant)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    except Unreachable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for line in lines:
        typer.echo(line)


def flow_summaries(typer_app: typer.Typer) -> None:
    """Give each command the first paragraph of its docstring, on one line, as the
    summary that command lists show. Typer's rich help flows a docstring's lines in the
    command's own ``--help`` but keeps its hard line breaks in the lists, so
    ``dd0c-alert --help`` broke descriptions mid-sentence at the source's line ends."""
    for command in typer_app.registered_commands:
        if command.short_help is None and command.callback is not None:
            summary = (inspect.getdoc(command.callback) or "").split("\n\n")[0]
            command.short_help = " ".join(summary.split())
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            flow_summaries(group.typer_instance)


flow_summaries(app)


def main() -> None:
    """The console script. Storage that cannot be used (a damaged SQLite file, a data
    folder that refuses writes) ends any command with one line saying what to fix and
    exit code 1, instead of a traceback ending in SQLite's own words."""
    try:
        app()
    except Exception as exc:
        from dd0c_alert.storage.unusable import unusable_storage  # not for `--help`

        problem = unusable_storage(exc)
        if problem is None:
            raise
        typer.echo(f"error: {problem}", err=True)
        raise SystemExit(1) from None
