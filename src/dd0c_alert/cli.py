"""``dd0c-alert``: run the service and administer it."""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dd0c_alert.cli_accounts import api_key_app, tenant_app, user_app
from dd0c_alert.cli_audit import cli_audit
from dd0c_alert.cli_integrations import integration_app
from dd0c_alert.cli_notify import deliveries_app, routes_app, slack_app
from dd0c_alert.cli_serve import server_app
from dd0c_alert.domain.times import InvalidTime, parse_time
from dd0c_alert.pipeline.limits import LimitExceeded, check_proposal, check_topology
from dd0c_alert.roles import ROLES

if TYPE_CHECKING:
    from dd0c_alert.config import Settings
    from dd0c_alert.pipeline.limits import ApiLimits
    from dd0c_alert.pipeline.runtime import Runtime
    from dd0c_alert.storage.sql import SqlStore


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


def tenant_store(tenant: str) -> SqlStore:
    """The store, after checking the tenant exists."""
    store = open_store(load_settings())
    require_tenant(store, tenant)
    return store


app = typer.Typer(
    help="dd0c/alert: every alert in, nothing lost, one clear incident out.", no_args_is_help=True
)
app.registered_commands.extend(server_app.registered_commands)  # first in --help
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
app.add_typer(user_app, name="user")
app.add_typer(api_key_app, name="api-key")
secrets_app = typer.Typer(
    help="Secrets stored encrypted with DD0C_SECRET_KEY (else the data folder's secret.key).",
    no_args_is_help=True,
)
app.add_typer(secrets_app, name="secrets")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def json_value(value: object) -> str:
    """Times as the REST API writes them (ISO 8601, ``T``, with their offset): ``str``
    wrote ``2026-12-07 09:50:58+00:00``, which not every ISO parser takes."""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


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
    from dd0c_alert.pipeline.backup import NotRestorable, RestoreFailed
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
    except (FileExistsError, FileNotFoundError, NotRestorable) as exc:
        raise typer.BadParameter(str(exc)) from None
    except RestoreFailed as exc:  # a full disk, a permission, Ctrl-C: no usage error
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
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
        typer.echo(json.dumps(items, default=json_value))
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
