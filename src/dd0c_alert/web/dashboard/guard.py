"""What every dashboard view starts with: the viewer (or a redirect to the login
page) and, for forms, the CSRF check and the permission of the operation."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool

from dd0c_alert.storage.ports import Store

from ..permissions import Principal, allowed
from .render import redirect
from .session import Form, accounts, checked_form, signed_in


class SignInFirst(Exception):
    """Nobody is signed in: the app answers with a redirect to the login page."""


async def viewer(request: Request) -> Principal:
    """The signed-in user, with their tenants loaded for the header's switcher;
    ``SignInFirst`` when there is none."""
    principal = await signed_in(request)
    if principal is None or principal.user_id is None:
        raise SignInFirst
    await load_tenants(request, principal.user_id)
    return principal


async def load_tenants(request: Request, user_id: str) -> None:
    """The user's teams, for the header (team name, switcher) of the page ``page``
    renders: a page re-rendered after a form needs them as much as one read by GET."""
    request.state.tenants = await run_in_threadpool(accounts(request).tenants_of, user_id)


async def acting(request: Request, operation: str) -> tuple[Principal, Form]:
    """A posted form that may perform ``operation``: CSRF checked (403), signed in
    (``SignInFirst``), allowed by the permission table (403); the user's teams loaded
    for the page the form may answer with."""
    form = await checked_form(request)
    principal = await signed_in(request)
    if principal is None:
        raise SignInFirst
    if not allowed(operation, principal):
        raise HTTPException(403, f"your role may not do this ({operation})")
    if principal.user_id is not None:
        await load_tenants(request, principal.user_id)
    return principal, form


def login_redirect(request: Request) -> Response:
    target = request.url.path if request.method == "GET" else "/incidents"
    return redirect(request, f"/login?next={quote(target)}")


def store_of(request: Request) -> Store:
    store: Store = request.app.state.runtime.store
    return store


def runtime_of(request: Request) -> Any:
    return request.app.state.runtime
