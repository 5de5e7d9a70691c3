"""Who is calling an endpoint of the routers added with issue #9, in one place.

Each of those endpoints names its operation in its ``operation_id`` (e.g.
``integrations.create``); until the accounts work lands the caller is the tenant of
the API key (``auth.tenant_id``) and every action is recorded as done by ``"api"``.
Switching to ``permissions.require(<operation>)`` changes this module only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from .auth import TenantId

ACTOR = "api"


@dataclass(frozen=True, slots=True)
class Caller:
    tenant_id: str
    actor: str
    client: str


async def caller(request: Request, tenant: TenantId) -> Caller:
    client = request.client.host if request.client is not None else ""
    return Caller(tenant_id=tenant, actor=ACTOR, client=client)


CallerDep = Annotated[Caller, Depends(caller)]
