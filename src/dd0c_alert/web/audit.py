"""The audit log's one-line helper for the web layer.

Recorded here rather than in the store methods: the web layer is where the actor
(the user or the key) and the client address are known, and where an endpoint's
intent has a name; the stores stay about data. The entry is written after the change
committed (its own short transaction), so a failed change leaves no entry; a crash
between the two could lose one entry, never invent one.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from dd0c_alert.storage.ports import Store

from .principal import Principal


async def audit(
    request: Request,
    principal: Principal,
    action: str,
    target_type: str,
    target_id: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record what ``principal`` (a user or a key) did, from which address."""
    store: Store = request.app.state.runtime.store
    client = request.client.host if request.client is not None else ""
    await run_in_threadpool(
        store.product().record_audit,
        principal.tenant_id,
        actor=principal.actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        detail=detail or {},
        client=client,
    )
