"""The admin UI at /admin (sqladmin): users, teams, heroes and powers, for superusers only."""

import logging
from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI, Request, Response
from sqladmin import Admin
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from project.admin.guard import AdminAuth, admin_guard
from project.admin.resources import HeroAdmin, PowerAdmin, TeamAdmin, UserAdmin
from project.config import Settings
from project.errors import ProblemError

BASE_URL = "/admin"


def _not_a_refusal(record: logging.LogRecord) -> bool:
    """sqladmin logs every failed save; a refused one (the message the form shows) is left out."""
    return not isinstance(record.exc_info and record.exc_info[1], ValueError | ProblemError)


def install_admin(app: FastAPI, settings: Settings) -> None:
    class AppSessions(async_sessionmaker[AsyncSession]):
        """The app's read sessions, which sqladmin wants before the lifespan makes an engine."""

        def __call__(self, **local_kw: Any) -> AsyncSession:
            return cast(AsyncSession, app.state.database.sessions(**local_kw))

    async def error_page(request: Request, exc: Exception) -> Response:
        """sqladmin's page for an error, with the error's headers (`Allow`, `Retry-After`)."""
        if isinstance(exc, ProblemError):  # only signing in raises one: throttled, or too busy
            response: Response = await admin.templates.TemplateResponse(
                request, "sqladmin/login.html", {"error": exc.detail}, exc.status_code
            )
        else:
            response = await page(request, exc)
        response.headers.update(getattr(exc, "headers", None) or {})
        return response

    if not settings.admin_enabled:
        return
    logging.getLogger("sqladmin.application").addFilter(_not_a_refusal)  # once; idempotent
    admin = Admin(
        app,
        session_maker=AppSessions(class_=AsyncSession),
        base_url=BASE_URL,
        title="Heroes admin",
        favicon_url="data:,",  # no icon: saves every page a request for /favicon.ico
        # Templates here override sqladmin's; its default would be the working directory's.
        templates_dir=str(Path(__file__).resolve().parent / "templates"),
        middlewares=[Middleware(admin_guard)],
        authentication_backend=AdminAuth(app.state, settings, BASE_URL),
    )
    # No column holds a file: sqladmin's file routes would serve any path a row is named after.
    files, routes = ("file_download", "file_preview"), admin.admin.router.routes
    routes[:] = [route for route in routes if getattr(route, "name", "") not in files]
    page = admin.admin.exception_handlers[HTTPException]
    admin.admin.exception_handlers = dict.fromkeys((HTTPException, ProblemError), error_page)
    for view in (UserAdmin, TeamAdmin, HeroAdmin, PowerAdmin):
        # sqladmin wires a view through class attributes: a subclass per app keeps apps apart.
        admin.add_view(type(view.__name__, (view,), {"state": app.state}))
