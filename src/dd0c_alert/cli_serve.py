"""``dd0c-alert serve|ingest|api|correlate|notify|cron``: the commands that run the
service, and how they run it (uvicorn on a listening socket, the signals that stop a
role, the collector settings of a long-running process). Kept apart from cli.py, the
admin commands, so each stays small; heavy imports stay inside the commands (fast
``--help``)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dd0c_alert.roles import ROLES

if TYPE_CHECKING:
    import socket
    import threading
    from pathlib import Path

    from dd0c_alert.config import Settings
    from dd0c_alert.pipeline.runtime import Runtime
    from dd0c_alert.supervisor import BackgroundProcess

#: The server commands; cli.py lists them first in ``dd0c-alert --help``.
server_app = typer.Typer()


def _settings() -> Settings:
    from dd0c_alert.cli import load_settings

    return load_settings()


PortOption = Annotated[int, typer.Option(help="Port to listen on.")]


HostOption = Annotated[str, typer.Option(help="Interface to listen on.")]


def _serve_http(
    roles: frozenset[str], host: str, port: int, background: BackgroundProcess | None = None
) -> None:
    """uvicorn for ``roles``; with ``background``, the child process that runs the
    other roles starts once this process has migrated the schema, and stops after
    uvicorn's last request and commit. An embedded server holds its data folder
    (``local_server.exclusive``) from before it touches the queue until it exits."""
    from dd0c_alert.app import is_postgres
    from dd0c_alert.cli import build_runtime
    from dd0c_alert.local_server import FolderInUse, recorded
    from dd0c_alert.logs import configure
    from dd0c_alert.tracing import setup as setup_tracing
    from dd0c_alert.web.app import create_app

    settings = _settings()
    _require_shared_keys(settings)
    configure(settings.log_level)
    setup_tracing(settings.otel_enabled, roles)
    if not is_postgres(settings):
        _require_writable(settings.data_dir)
    with contextlib.ExitStack() as held:
        # Local admin commands and `demo` read where an embedded server listens.
        if "ingest" in roles and not is_postgres(settings):
            try:
                held.enter_context(recorded(settings.data_dir, host, port))
            except FolderInUse as exc:
                typer.echo(f"error: {exc}: stop it first, or use another DD0C_DATA_DIR", err=True)
                raise typer.Exit(2) from None
        listener = held.enter_context(_listen(host, port))
        _announce(roles, f"http://{host}:{port}")
        runtime = build_runtime(
            settings, roles=roles, wake_consumer=background.wake if background else None
        )
        if "ingest" in roles:
            _warn_public_url(settings)
        if background is not None:
            runtime.background_alive = background.alive
            background.start()
        try:
            _run_uvicorn(create_app(runtime), settings, listener)
        finally:
            if background is not None:
                background.stop()


def _announce(roles: frozenset[str], where: str) -> None:
    """The banner, a log line like every other line on stderr (a log shipper reads
    JSON lines only)."""
    import structlog

    docs = {"api_docs": f"{where}/docs"} if "api" in roles else {}
    structlog.get_logger(__name__).info("listening", roles=sorted(roles), url=where, **docs)


def _warn_public_url(settings: Settings) -> None:
    """Log when ``DD0C_PUBLIC_URL`` points at another server than this one."""
    import structlog

    from dd0c_alert.local_server import public_url_warning

    warning = public_url_warning(settings.public_url, settings.data_dir)
    if warning:
        structlog.get_logger(__name__).warning(
            "public_url_mismatch",
            detail=f"{warning}, or the webhook URLs `dd0c-alert integration` prints "
            "point at nothing",
        )


def _require_shared_keys(settings: Settings) -> None:
    """End with one ``error:`` line, before the port is bound and ``listening`` is
    logged, when a key every process must share is not set (PostgreSQL)."""
    from dd0c_alert.app import missing_shared_key

    missing = missing_shared_key(settings)
    if missing is not None:
        typer.echo(f"error: {missing}", err=True)
        raise typer.Exit(1)


def _require_writable(data_dir: Path) -> None:
    """End with one line naming the folder and the fix when the embedded data folder
    refuses writes. The server bound its port and announced it listened, then failed
    on its first write (the database) and exited 1."""
    from dd0c_alert.storage.files import write_refused
    from dd0c_alert.storage.unusable import refused_write_fix

    refused = write_refused(data_dir)
    if refused is not None:
        typer.echo(
            f"error: cannot write DD0C_DATA_DIR {data_dir}: {refused.strerror}; "
            f"{refused_write_fix(refused)}",
            err=True,
        )
        raise typer.Exit(1)


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

    from dd0c_alert import logs
    from dd0c_alert.web.http_server import protocol as http_protocol

    freeze_heap()
    config = uvicorn.Config(
        asgi,
        # Not uvicorn's handlers and plain-text formatters: its records reach the root
        # logger's JSON lines (logs.configure). Its access log stays off.
        log_config=None,
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
    logs.throttle_server_log()  # after Config: it configures uvicorn's loggers
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

    from dd0c_alert.cli import build_runtime
    from dd0c_alert.logs import configure
    from dd0c_alert.tracing import setup as setup_tracing

    settings = _settings()
    _require_shared_keys(settings)
    configure(settings.log_level)
    setup_tracing(settings.otel_enabled, roles)
    runtime = build_runtime(settings, roles=roles)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    _run_until(runtime, stop)


@server_app.command()
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


@server_app.command("serve-background", hidden=True)
def serve_background(wake_fd: Annotated[int, typer.Option()]) -> None:
    """The child process of ``serve`` (worker, notifier, scheduled jobs)."""
    import signal
    import threading

    from dd0c_alert.cli import build_runtime
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
    _run_until(runtime, stop)


def _run_until(runtime: Runtime, stop: threading.Event) -> None:
    """Start ``runtime``'s background roles, with start-up's objects out of the
    collector's sight, and stop them once ``stop`` is set."""
    freeze_heap()
    runtime.start()
    try:
        stop.wait()
    finally:
        runtime.stop()


@server_app.command("cron-pass", hidden=True)
def cron_pass(parent_fd: Annotated[int, typer.Option()]) -> None:
    """One pass of the scheduled jobs, then exit (``serve``'s child runs each this way)."""
    from dd0c_alert.cli import build_runtime
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


@server_app.command()
def ingest(host: HostOption = "127.0.0.1", port: PortOption = 8080) -> None:
    """Receive webhooks and queue them (run several behind a load balancer)."""
    _serve_http(frozenset({"ingest"}), host, port)


@server_app.command()
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


@server_app.command()
def correlate(host: HostOption = "127.0.0.1", port: HealthPort = None) -> None:
    """Consume the queue: normalise, correlate and store (run several to scale out)."""
    _run_role("correlate", host, port)


@server_app.command()
def notify(host: HostOption = "127.0.0.1", port: HealthPort = None) -> None:
    """Deliver the notification outbox: Slack, email, webhooks (several may run)."""
    _run_role("notify", host, port)


@server_app.command()
def cron(host: HostOption = "127.0.0.1", port: HealthPort = None) -> None:
    """Run the scheduled jobs (retention, suggestions, idempotency-key purge); run only one
    process of it."""
    _run_role("cron", host, port)
