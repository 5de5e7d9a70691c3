"""Changes to a tenant's integrations, shared by the REST API and the CLI so both make
secrets, rotate them and build webhook URLs the same way."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dd0c_alert.storage.ports import Integration
    from dd0c_alert.storage.product_sql import ProductStore


def new_secret() -> str:
    """256 bits, URL-safe: pasteable into any tool's header or URL field."""
    return secrets.token_urlsafe(32)


def webhook_url(base_url: str, integration: Integration) -> str:
    """The URL to hand to the monitoring tool. It names the integration, so it keeps
    working when the tenant adds a second integration of the same provider."""
    base = base_url.rstrip("/")
    return f"{base}/v1/wh/{integration.tenant_id}/{integration.provider}/{integration.id}"


def change_integration(
    product: ProductStore,
    tenant_id: str,
    integration_id: str,
    *,
    grace: timedelta,
    name: str | None = None,
    enabled: bool | None = None,
    rotate: bool = False,
    revoke_previous: bool = False,
) -> tuple[Integration, str | None] | None:
    """Rename, enable or disable, and/or rotate the secret. A rotated-out secret is
    still accepted for ``grace``, so the tool can be reconfigured without losing
    alerts meanwhile, unless ``revoke_previous`` (a leaked secret: refuse it now).
    Returns the integration and the new secret (when rotated), or None when the
    tenant has no such integration."""
    secret = new_secret() if rotate else None
    updated = product.update_integration(
        tenant_id,
        integration_id,
        name=name,
        enabled=enabled,
        new_secret=secret,
        grace=grace,
        revoke_previous=revoke_previous,
    )
    return None if updated is None else (updated, secret)
