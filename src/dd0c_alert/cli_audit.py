"""The audit entries of changes made from the command line.

The REST API and the dashboard write one audit entry per change (web/audit.py); the
CLI changes the same things (integrations, API keys, users, topology, Slack settings,
deliveries, dead letters) straight in the store, so without this a change made from a
shell on the server left no trace in the tenant's audit log. The entries use the
API's action names and details, so a filter on ``action`` finds both; the actor is
``cli:<operating-system user>`` and the client ``cli``, which no HTTP client can be.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dd0c_alert.storage.ports import Store

#: The audit log's ``client`` for commands: not an address, so never mistaken for one.
CLI_CLIENT = "cli"


def cli_actor() -> str:
    """Who ran the command, as far as the operating system knows."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container user)
        user = "unknown"
    return f"cli:{user}"


def cli_audit(
    store: Store,
    tenant_id: str,
    action: str,
    target_type: str,
    target_id: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record a change a command made, after it committed (as the API does)."""
    store.product().record_audit(
        tenant_id,
        actor=cli_actor(),
        action=action,
        target_type=target_type,
        target_id=target_id,
        detail=detail or {},
        client=CLI_CLIENT,
    )
