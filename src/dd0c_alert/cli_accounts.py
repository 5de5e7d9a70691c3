"""``dd0c-alert tenant|user|api-key …``: tenants, their users and API keys, for
headless set-up. Kept apart from cli.py so each stays small; heavy imports stay inside
the commands (fast ``--help``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from dd0c_alert.cli_audit import cli_audit

if TYPE_CHECKING:
    from dd0c_alert.config import Settings

tenant_app = typer.Typer(help="Tenants and their API keys.", no_args_is_help=True)
user_app = typer.Typer(help="Users of a tenant, for headless set-up.", no_args_is_help=True)
api_key_app = typer.Typer(help="A tenant's API keys.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _settings() -> Settings:
    from dd0c_alert.cli import load_settings

    return load_settings()


@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Argument(help="A name for people, e.g. acme.")],
    as_json: JsonFlag = False,
) -> None:
    """Create a tenant and its first API key (shown once)."""
    from dd0c_alert.cli import open_store

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
    from dd0c_alert.cli import open_store

    tenants = open_store(_settings()).list_tenants()
    if as_json:
        typer.echo(json.dumps([{"tenant_id": t.id, "name": t.name} for t in tenants]))
        return
    if not tenants:  # an empty output read as a command that did nothing
        typer.echo("no tenants: dd0c-alert tenant create NAME makes one")
    for tenant in tenants:
        typer.echo(f"{tenant.id}  {tenant.name}")


TenantOption = Annotated[str, typer.Option("--tenant", help="Tenant id.")]


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

    from dd0c_alert.cli import tenant_store
    from dd0c_alert.web.passwords import WeakPassword, check_strength, hash_password
    from dd0c_alert.web.permissions import ROLES

    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}")
    store = tenant_store(tenant)
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
    from dd0c_alert.cli import tenant_store
    from dd0c_alert.web.permissions import SCOPES

    if scope not in SCOPES:
        raise typer.BadParameter(f"scope must be one of {', '.join(SCOPES)}")
    store = tenant_store(tenant)
    key, record = store.accounts().create_api_key(tenant, name, scope)
    cli_audit(store, tenant, "api_key.create", "api_key", record.id, {"name": name, "scope": scope})
    if as_json:
        typer.echo(json.dumps({"id": record.id, "key": key, "scope": scope}))
    else:
        typer.echo(f"{record.id}  {scope}  {name}\n{key}\n(shown once: store it now)")


@api_key_app.command("list")
def api_key_list(tenant: TenantOption, as_json: JsonFlag = False) -> None:
    """The tenant's API keys (never the keys themselves)."""
    from dd0c_alert.cli import json_value, tenant_store

    keys = [key.public() for key in tenant_store(tenant).accounts().api_keys(tenant)]
    if as_json:
        typer.echo(json.dumps(keys, default=json_value))
        return
    for key in keys:
        used = (
            f"last used {json_value(key['last_used_at'])}" if key["last_used_at"] else "never used"
        )
        maker = key["created_by_email"] or key["created_by"] or "no person"
        typer.echo(f"{key['id']}  {key['scope']:<5}  {key['name']}  ({used}; made by {maker})")


@api_key_app.command("revoke")
def api_key_revoke(
    tenant: TenantOption, key_id: Annotated[str, typer.Argument(help="The key's id.")]
) -> None:
    """Revoke an API key: refused at once by new processes, within 10 s by running
    servers (they cache keys that long)."""
    from dd0c_alert.cli import tenant_store

    store = tenant_store(tenant)
    revoked = store.accounts().revoke_api_key(tenant, key_id)
    if revoked is None:
        raise typer.BadParameter(f"tenant {tenant} has no API key {key_id}")
    if revoked:  # revoking it again changes nothing, and is not audited again
        cli_audit(store, tenant, "api_key.revoke", "api_key", key_id)
    typer.echo(f"revoked {key_id} (running servers refuse it within 10 s)")
