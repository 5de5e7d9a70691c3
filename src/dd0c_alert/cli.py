"""``dd0c-alert``: run the service and administer it."""

from __future__ import annotations

import json
import secrets
from typing import Annotated

import typer

from dd0c_alert.app import build_runtime, open_store
from dd0c_alert.config import Settings
from dd0c_alert.providers import PROVIDERS

app = typer.Typer(
    help="dd0c/alert: every alert in, nothing lost, one clear incident out.", no_args_is_help=True
)
tenant_app = typer.Typer(help="Tenants and their API keys.", no_args_is_help=True)
integration_app = typer.Typer(help="Webhook integrations.", no_args_is_help=True)
dlq_app = typer.Typer(
    help="Dead letters: accepted events that could not be processed.", no_args_is_help=True
)
app.add_typer(tenant_app, name="tenant")
app.add_typer(integration_app, name="integration")
app.add_typer(dlq_app, name="dlq")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
) -> None:
    """Run every role in one process: webhooks, worker, API (embedded mode)."""
    import uvicorn

    from dd0c_alert.logs import configure
    from dd0c_alert.web.app import create_app

    settings = Settings()
    configure(settings.log_level)
    runtime = build_runtime(settings)
    uvicorn.run(
        create_app(runtime),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=10,
    )


@app.command()
def migrate() -> None:
    """Bring the database schema up to date (serve does this too)."""
    open_store(Settings())
    typer.echo("database is up to date")


@tenant_app.command("create")
def tenant_create(name: str, as_json: JsonFlag = False) -> None:
    """Create a tenant and its first API key (shown once)."""
    store = open_store(Settings())
    tenant = store.create_tenant(name)
    key = store.create_api_key(tenant.id, "default")
    if as_json:
        typer.echo(json.dumps({"tenant_id": tenant.id, "api_key": key}))
        return
    typer.echo(f"tenant {tenant.name}: {tenant.id}")
    typer.echo(f"API key (shown once, store it now): {key}")


@tenant_app.command("list")
def tenant_list(as_json: JsonFlag = False) -> None:
    """List tenants."""
    tenants = open_store(Settings()).list_tenants()
    if as_json:
        typer.echo(json.dumps([{"tenant_id": t.id, "name": t.name} for t in tenants]))
        return
    for tenant in tenants:
        typer.echo(f"{tenant.id}  {tenant.name}")


@integration_app.command("create")
def integration_create(
    tenant: Annotated[str, typer.Option(help="Tenant id.")],
    provider: Annotated[str, typer.Option(help=f"One of: {', '.join(sorted(PROVIDERS))}.")],
    secret: Annotated[
        str | None, typer.Option(help="Use this secret instead of a generated one.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A label for people.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an integration; print its webhook URL, secret and a setup example."""
    from dd0c_alert.setup_snippets import snippet

    if provider not in PROVIDERS:
        raise typer.BadParameter(f"unknown provider; choose from {', '.join(sorted(PROVIDERS))}")
    settings = Settings()
    store = open_store(settings)
    if store.get_tenant(tenant) is None:
        raise typer.BadParameter(f"no tenant {tenant!r}")
    secret = secret or secrets.token_urlsafe(32)
    integration = store.create_integration(tenant, provider, name or provider, secret)
    url = f"{settings.public_url.rstrip('/')}/v1/wh/{tenant}/{provider}/{integration.id}"
    if as_json:
        typer.echo(
            json.dumps({"integration_id": integration.id, "webhook_url": url, "secret": secret})
        )
        return
    typer.echo(f"integration {integration.id} ({provider})")
    typer.echo(f"webhook URL: {url}")
    typer.echo(f"secret (shown once): {secret}\n")
    typer.echo(snippet(provider, url, secret))


@dlq_app.command("list")
def dlq_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    limit: int = 50,
    as_json: JsonFlag = False,
) -> None:
    """List dead letters, newest first."""
    rows = open_store(Settings()).list_dead_letters(tenant, limit)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        state = f"replayed {row['replayed_at']}" if row["replayed_at"] else "dead"
        error = row["error"].splitlines()[0][:100]
        typer.echo(f"{row['id']}  {row['provider']:<16} {row['failed_at']}  {state}  {error}")


@dlq_app.command("show")
def dlq_show(dead_letter_id: str) -> None:
    """Show one dead letter: error, headers and body."""
    dead = open_store(Settings()).get_dead_letter(dead_letter_id)
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
def dlq_replay(dead_letter_ids: list[str]) -> None:
    """Put dead letters back on the queue (a running service processes them)."""
    settings = Settings()
    runtime = build_runtime(settings, with_worker=False)
    for dead_letter_id in dead_letter_ids:
        dead = runtime.store.get_dead_letter(dead_letter_id)
        if dead is None:
            raise typer.BadParameter(f"no dead letter {dead_letter_id!r}")
        dead.event.attempts = 0
        runtime.queue.requeue(dead.event)
        runtime.store.mark_replayed(dead_letter_id)
        typer.echo(f"requeued {dead.event.event_id}")


@app.command()
def demo(
    url: Annotated[
        str, typer.Option(help="Base URL of a running server.")
    ] = "http://127.0.0.1:8080",
    count: Annotated[int, typer.Option(help="How many alerts to send.")] = 60,
) -> None:
    """Create a demo tenant and post a realistic burst of alerts to a running server."""
    from dd0c_alert.demo import run_demo

    run_demo(Settings(), url, count)


def main() -> None:
    app()
