"""``dd0c-alert slack|deliveries|routes …``: a tenant's notification settings and what
was sent, from the command line. Kept apart from cli.py so each stays small; heavy
imports stay inside the commands (fast ``--help``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dd0c_alert.cli_audit import cli_audit

if TYPE_CHECKING:
    from dd0c_alert.config import Settings
    from dd0c_alert.storage.sql import SqlStore

slack_app = typer.Typer(
    help="Slack: the app manifest and per-tenant settings.", no_args_is_help=True
)
deliveries_app = typer.Typer(
    help="Notification deliveries: what was sent, is retrying, or failed.", no_args_is_help=True
)
routes_app = typer.Typer(help="Notification routes.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _settings() -> Settings:
    from dd0c_alert.cli import load_settings

    return load_settings()


def _tenant_store(tenant: str) -> SqlStore:
    """The store, after checking the tenant exists."""
    from dd0c_alert.app import open_store
    from dd0c_alert.cli import require_tenant

    store = open_store(_settings())
    require_tenant(store, tenant)
    return store


@slack_app.command("configure")
def slack_configure(
    tenant: Annotated[str, typer.Option(help="Tenant id.")],
    bot_token: Annotated[
        str,
        typer.Option(
            help="The app's Bot User OAuth Token (xoxb-…); asked for (hidden) or read from "
            "DD0C_SLACK_BOT_TOKEN when not given, which keeps it out of the shell's "
            "history and the process list.",
            envvar="DD0C_SLACK_BOT_TOKEN",
            prompt="Bot User OAuth Token (xoxb-…)",
            hide_input=True,
            show_envvar=False,
        ),
    ],
    signing_secret: Annotated[
        str,
        typer.Option(
            help="The app's signing secret; asked for (hidden) or read from "
            "DD0C_SLACK_SIGNING_SECRET when not given.",
            envvar="DD0C_SLACK_SIGNING_SECRET",
            prompt="Signing secret",
            hide_input=True,
            show_envvar=False,
        ),
    ],
    channel: Annotated[str, typer.Option(help="Default channel: '#name' or a channel id.")],
    as_json: JsonFlag = False,
) -> None:
    """Store a tenant's Slack bot token and signing secret (encrypted) and default
    channel; the workspace is filled in when Slack can be reached (DD0C_SLACK_API_URL)."""
    import asyncio

    from dd0c_alert.pipeline.slack_actions import configure_slack, slack_view

    settings = _settings()
    store = _tenant_store(tenant)
    notify_settings = store.notify_settings()
    try:
        check = asyncio.run(
            configure_slack(
                notify_settings,
                tenant,
                bot_token=bot_token,
                signing_secret=signing_secret,
                default_channel=channel,
                slack_api_url=settings.slack_api_url,
            )
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    detail = {"default_channel": channel}  # never the token or the secret
    cli_audit(store, tenant, "slack.configure", "slack", tenant, detail)
    view = {**slack_view(notify_settings, tenant), "token_check": check}
    if as_json:
        typer.echo(json.dumps(view))
        return
    workspace = view["team_id"] or "unknown until Slack can be reached"
    typer.echo(f"Slack configured: default channel {view['default_channel']}")
    typer.echo(f"workspace: {workspace} (token check: {check})")


@slack_app.command("manifest")
def slack_manifest_command(
    public_url: Annotated[
        str | None,
        typer.Option(help="The URL Slack reaches this server at (default: DD0C_PUBLIC_URL)."),
    ] = None,
) -> None:
    """Print a Slack app manifest (JSON) to paste at api.slack.com/apps → Create New App
    → From a manifest: scopes, interactivity and the /dd0c command point at this server."""
    from dd0c_alert.notify.slack import slack_manifest

    typer.echo(json.dumps(slack_manifest(public_url or _settings().public_url), indent=2))


_DELIVERY_STATUSES = ("pending", "retrying", "delivered", "failed")


@deliveries_app.command("list")
def deliveries_list(
    tenant: Annotated[str, typer.Option(help="Tenant id.")],
    status: Annotated[
        str | None, typer.Option(help=f"Only this status: {', '.join(_DELIVERY_STATUSES)}.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Most deliveries listed.", min=1, max=500)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List a tenant's deliveries, newest first."""
    if status is not None and status not in _DELIVERY_STATUSES:
        raise typer.BadParameter(f"status must be one of {', '.join(_DELIVERY_STATUSES)}")
    items = _tenant_store(tenant).outbox().list_deliveries(tenant, limit, None, status=status).items
    if as_json:
        typer.echo(json.dumps(items))
        return
    if not items:
        typer.echo("no deliveries")
    for item in items:
        error = f"  {item['last_error']}" if item["last_error"] else ""
        typer.echo(
            f"{item['id']}  {item['status']:<9} {item['destination_type']:<7} "
            f"{item['destination']}  incident {item['incident_id']}  "
            f"attempts {item['attempts']}{error}"
        )


@deliveries_app.command("replay")
def deliveries_replay(
    delivery_id: Annotated[str, typer.Argument(help="An id from dd0c-alert deliveries list.")],
    tenant: Annotated[str, typer.Option(help="Tenant id.")],
    as_json: JsonFlag = False,
) -> None:
    """Send a failed delivery again (a running notifier picks it up) and resume its
    destination if a permanent error had stopped it."""
    store = _tenant_store(tenant)
    item = store.outbox().replay(tenant, delivery_id)
    if item is None:
        raise typer.BadParameter(f"no delivery {delivery_id!r} for this tenant")
    cli_audit(store, tenant, "delivery.replay", "delivery", delivery_id)
    if as_json:
        typer.echo(json.dumps(item))
        return
    typer.echo(f"delivery {item['id']}: {item['status']}")


@routes_app.command("list")
def routes_list(
    tenant: Annotated[str, typer.Option(help="Tenant id.")], as_json: JsonFlag = False
) -> None:
    """List a tenant's routes in evaluation order (webhook secrets are never shown)."""
    from dd0c_alert.pipeline.route_documents import shown

    routes = [shown(r) for r in _tenant_store(tenant).notify_settings().list_routes(tenant)]
    if as_json:
        typer.echo(json.dumps(routes))
        return
    if not routes:
        typer.echo("no routes: paging incidents go to the default Slack channel, if set")
    for n, route in enumerate(routes, 1):
        where = ", ".join(_destination_text(d) for d in route.get("destinations", []))
        matchers = route.get("matchers") or "{}"
        more = " (continue)" if route.get("continue") else ""
        typer.echo(f"{n}. {route['name']} {matchers} -> {where or 'nobody'}{more}  [{route['id']}]")


def _destination_text(destination: dict[str, Any]) -> str:
    kind = destination.get("type")
    if kind == "slack":
        return f"slack {destination.get('channel')}"
    if kind == "email":
        return f"email {', '.join(destination.get('to') or [])}"
    return f"{kind} {destination.get('url', '')}"
