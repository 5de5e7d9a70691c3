"""Adding the dashboard to the application: its routes, its static files, and HTML
answers (a login redirect, an error page) instead of JSON for its pages."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from . import (
    admin_pages,
    auth_pages,
    config_pages,
    incident_edit,
    incident_pages,
    inhibition_pages,
    integration_pages,
    onboarding,
    pages,
    silence_preview,
)
from .guard import SignInFirst, login_redirect
from .render import HERE, error_page

STATIC = "/static/dashboard"


def install(app: FastAPI) -> None:
    app.mount(STATIC, StaticFiles(directory=HERE / "static"), name="dashboard-static")
    modules = (
        auth_pages,
        incident_edit,  # before incident_pages, whose /incidents/{id}/{action} is a catch-all
        incident_pages,
        onboarding,
        pages,
        silence_preview,
        config_pages,
        integration_pages,
        inhibition_pages,
        admin_pages,
    )
    for module in modules:
        app.include_router(module.router)

    @app.exception_handler(SignInFirst)
    async def _sign_in(request: Request, exc: SignInFirst) -> Response:
        return login_redirect(request)


def is_page(request: Request) -> bool:
    """A dashboard page, or a browser asking for a page that is not there (the REST
    API, health and docs keep their JSON errors)."""
    endpoint = request.scope.get("endpoint")
    if getattr(endpoint, "__module__", "").startswith(__package__ or "-"):
        return True
    api = request.url.path.startswith(("/v1/", "/healthz", "/readyz", "/metrics", "/openapi"))
    return not api and "text/html" in request.headers.get("accept", "")


__all__ = ["error_page", "install", "is_page"]
