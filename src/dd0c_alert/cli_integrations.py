"""``dd0c-alert integration …``: the webhook integrations of a tenant, from the command
line, with the same rules as the REST API (pipeline/integrations.py). Kept apart from
cli.py so each stays small; heavy imports stay inside the commands (fast ``--help``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dd0c_alert.cli_audit import cli_audit
from dd0c_alert.providers import PROVIDERS

if TYPE_CHECKING:
    from dd0c_alert.config import Settings
    from dd0c_alert.storage.ports import Integration
    from dd0c_alert.storage.sql import SqlStore

integration_app = typer.Typer(
    help="Webhook integrations: create, list, enable, disable, rotate, delete.",
    no_args_is_help=True,
)

TenantOption = Annotated[str, typer.Option("--tenant", help="Tenant id.")]
IntegrationId = Annotated[str, typer.Argument(help="The integration's id.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
#: Running servers cache integrations this long (pipeline/ingest.py), so a change made
#: here reaches webhook admission within it.
_CACHE_NOTE = "running servers apply it within 5 s"


def _settings() -> Settings:
    from dd0c_alert.cli import load_settings

    return load_settings()


def _store(settings: Settings, tenant: str) -> SqlStore:
    from dd0c_alert.app import open_store
    from dd0c_alert.cli import require_tenant

    store = open_store(settings)
    require_tenant(store, tenant)
    return store


def _warn_about_public_url(settings: Settings, *, listing: bool = False) -> None:
    """The URLs about to be printed may miss the server: say so, and (unless this is
    the listing) where to print them again once the setting is fixed."""
    from dd0c_alert.local_server import public_url_warning

    warning = public_url_warning(settings.public_url, settings.data_dir)
    if warning:
        again = "" if listing else "; `dd0c-alert integration list` prints them again"
        typer.echo(
            f"warning: {warning}. The webhook URLs below point at nothing until then{again}.",
            err=True,
        )


def _shown(integration: Integration, settings: Settings) -> dict[str, Any]:
    from dd0c_alert.pipeline.integrations import webhook_url

    until = integration.previous_secret_until
    return {
        "integration_id": integration.id,
        "provider": integration.provider,
        "name": integration.name,
        "enabled": integration.enabled,
        "webhook_url": webhook_url(settings.public_url, integration),
        "previous_secret_valid_until": (
            until.isoformat() if until is not None and until > datetime.now(UTC) else None
        ),
    }


@integration_app.command("create")
def integration_create(
    tenant: TenantOption,
    provider: Annotated[str, typer.Option(help=f"One of: {', '.join(sorted(PROVIDERS))}.")],
    secret: Annotated[
        str | None, typer.Option(help="Use this secret instead of a generated one.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="A label for people.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an integration; print its webhook URL, secret and a setup example."""
    from dd0c_alert.pipeline.integrations import new_secret, webhook_url
    from dd0c_alert.setup_snippets import snippet

    if provider not in PROVIDERS:
        raise typer.BadParameter(f"unknown provider; choose from {', '.join(sorted(PROVIDERS))}")
    settings = _settings()
    store = _store(settings, tenant)
    secret = secret or new_secret()
    integration = store.create_integration(tenant, provider, name or provider, secret)
    detail = {"provider": provider, "name": integration.name}
    cli_audit(store, tenant, "integration.create", "integration", integration.id, detail)
    url = webhook_url(settings.public_url, integration)
    _warn_about_public_url(settings)
    if as_json:
        shown = {"integration_id": integration.id, "webhook_url": url, "secret": secret}
        typer.echo(json.dumps(shown | {"setup": snippet(provider, url, secret)}))
        return
    typer.echo(f"integration {integration.id} ({provider})")
    typer.echo(f"webhook URL: {url}")
    typer.echo(f"secret (shown once): {secret}\n")
    typer.echo(snippet(provider, url, secret))


@integration_app.command("list")
def integration_list(tenant: TenantOption, as_json: JsonFlag = False) -> None:
    """The tenant's integrations with their webhook URLs (never their secrets)."""
    settings = _settings()
    found = _store(settings, tenant).product().list_integrations(tenant)
    shown = [_shown(i, settings) for i in found]
    _warn_about_public_url(settings, listing=True)
    if as_json:
        typer.echo(json.dumps(shown))
        return
    if not shown:
        typer.echo("no integrations: dd0c-alert integration create --tenant … --provider …")
    for item in shown:
        state = "enabled" if item["enabled"] else "disabled"
        grace = item["previous_secret_valid_until"]
        note = f"  (old secret accepted until {grace})" if grace else ""
        typer.echo(
            f"{item['integration_id']}  {item['provider']:<16} {state:<8} {item['name']}\n"
            f"    {item['webhook_url']}{note}"
        )


def _change(tenant: str, integration_id: str, **change: Any) -> tuple[Integration, str | None]:
    """Apply ``change`` and audit it as ``PATCH /v1/integrations/{id}`` does, with the
    body's field names (``enabled``, ``rotate_secret``)."""
    from datetime import timedelta

    from dd0c_alert.pipeline.integrations import change_integration
    from dd0c_alert.storage.ports import RotationInProgress

    settings = _settings()
    store = _store(settings, tenant)
    try:
        changed = change_integration(
            store.product(),
            tenant,
            integration_id,
            grace=timedelta(seconds=settings.secret_rotation_grace_seconds),
            **change,
        )
    except RotationInProgress as exc:
        typer.echo(f"error: not rotated: {exc}", err=True)
        raise typer.Exit(1) from None
    if changed is None:
        raise typer.BadParameter(f"tenant {tenant} has no integration {integration_id!r}")
    names = {"rotate": "rotate_secret", "revoke_previous": "revoke_previous_secret"}
    detail = {names.get(k, k): v for k, v in change.items()}
    cli_audit(store, tenant, "integration.update", "integration", integration_id, detail)
    return changed


@integration_app.command("enable")
def integration_enable(tenant: TenantOption, integration_id: IntegrationId) -> None:
    """Accept the integration's webhooks again."""
    _change(tenant, integration_id, enabled=True)
    typer.echo(f"enabled {integration_id} ({_CACHE_NOTE})")


@integration_app.command("disable")
def integration_disable(tenant: TenantOption, integration_id: IntegrationId) -> None:
    """Refuse the integration's webhooks (401 unknown_integration) until enabled again;
    its secret and history are kept."""
    _change(tenant, integration_id, enabled=False)
    typer.echo(f"disabled {integration_id} ({_CACHE_NOTE})")


@integration_app.command("rotate")
def integration_rotate(
    tenant: TenantOption,
    integration_id: IntegrationId,
    as_json: JsonFlag = False,
    no_grace: Annotated[
        bool,
        typer.Option(
            "--no-grace",
            help="The secret leaked: refuse the old one (and any earlier) at once.",
        ),
    ] = False,
) -> None:
    """Give the integration a new secret (shown once); the old one is still accepted
    for DD0C_SECRET_ROTATION_GRACE_SECONDS (default 24 h) while the tool is updated,
    unless --no-grace."""
    from dd0c_alert.setup_snippets import snippet

    settings = _settings()
    change: dict[str, Any] = {"rotate": True} | ({"revoke_previous": True} if no_grace else {})
    integration, secret = _change(tenant, integration_id, **change)
    assert secret is not None
    shown = _shown(integration, settings)
    _warn_about_public_url(settings)
    if as_json:
        setup = snippet(integration.provider, shown["webhook_url"], secret)
        typer.echo(json.dumps(shown | {"secret": secret, "setup": setup}))
        return
    typer.echo(f"new secret (shown once): {secret}")
    if no_grace:
        typer.echo(f"the old one is refused from now on ({_CACHE_NOTE})\n")
    else:
        until = shown["previous_secret_valid_until"] or "now"
        typer.echo(f"the old one is accepted until {until}\n")
    typer.echo(snippet(integration.provider, shown["webhook_url"], secret))


@integration_app.command("delete")
def integration_delete(
    tenant: TenantOption,
    integration_id: IntegrationId,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete the integration: its webhooks are refused from now on (alerts already
    received stay). To stop it for a while, disable it instead."""
    settings = _settings()
    store = _store(settings, tenant)
    product = store.product()
    integration = product.get_integration(tenant, integration_id)
    if integration is None:
        raise typer.BadParameter(f"tenant {tenant} has no integration {integration_id!r}")
    if not yes:
        typer.confirm(
            f"delete {integration.provider} integration {integration.name!r} "
            f"({integration_id})? Its webhooks will be refused",
            abort=True,
        )
    if product.delete_integration(tenant, integration_id):
        detail = {"provider": integration.provider, "name": integration.name}
        cli_audit(store, tenant, "integration.delete", "integration", integration_id, detail)
    typer.echo(f"deleted {integration_id} ({_CACHE_NOTE})")
