"""The admin UI at /admin (sqladmin): users, teams, heroes and powers, for superusers only.

auth.py decides who gets in, guard.py refuses cross-site requests and sets the admin's
browser policy, users.py and resources.py are the views, forms.py what their forms share.
"""

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqladmin import Admin
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from project.admin.auth import AdminAuth
from project.admin.base import AppView
from project.admin.guard import AdminGuard
from project.admin.resources import HeroAdmin, PowerAdmin, TeamAdmin
from project.admin.users import UserAdmin
from project.config import Settings
from project.database import Database
from project.errors import ProblemError

BASE_URL = "/admin"
VIEWS: tuple[type[AppView], ...] = (UserAdmin, TeamAdmin, HeroAdmin, PowerAdmin)
# sqladmin looks here before its own templates; a relative default would mean "the current
# directory", whatever that happens to be.
TEMPLATES = Path(__file__).resolve().parent / "templates"


def _not_a_refusal(record: logging.LogRecord) -> bool:
    """sqladmin logs every exception from a save, with its traceback. A refused save (the
    views raise ValueError or a ProblemError with the message the form shows) is the user's
    mistake, not the service's: it is left out."""
    error = record.exc_info[1] if record.exc_info else None
    return not isinstance(error, ValueError | ProblemError)


class AppSessions(async_sessionmaker[AsyncSession]):
    """sqladmin wants a session factory when the app is built, but the engine only exists
    once the lifespan has started: this one asks the running app for a session each time.
    sqladmin only reads through it; the views write through the app's write sessions."""

    def __init__(self, app: FastAPI) -> None:
        super().__init__(class_=AsyncSession)
        self._app = app

    def __call__(self, **local_kw: Any) -> AsyncSession:
        database: Database = self._app.state.database
        return database.sessions(**local_kw)


# sqladmin serves a column's value as the path of a file to download or preview. No column
# here holds a file, and any user can name a hero `heroes.db` or `.env`: these routes go.
FILE_ROUTES = frozenset({"file_download", "file_preview"})


class HeroesAdmin(Admin):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        routes = self.admin.router.routes
        routes[:] = [route for route in routes if getattr(route, "name", None) not in FILE_ROUTES]
        page = self.admin.exception_handlers.get(HTTPException)
        if page is None:  # sqladmin no longer renders errors itself: nothing to amend
            return

        async def page_with_headers(request: Request, exc: Exception) -> Response:
            # sqladmin's error page drops the error's headers: a 405 must still say `Allow`.
            response: Response = await page(request, exc)
            response.headers.update(getattr(exc, "headers", None) or {})
            return response

        self.admin.exception_handlers = {HTTPException: page_with_headers}

    async def login(self, request: Request) -> Response:
        try:
            return await super().login(request)
        except ProblemError as exc:  # throttled (429), or too busy to check a password (503)
            response = await self.templates.TemplateResponse(
                request, "sqladmin/login.html", {"error": exc.detail}, exc.status_code
            )
            response.headers.update(exc.headers)
            return response


def install_admin(app: FastAPI, settings: Settings) -> None:
    """Mount the admin at /admin, unless `ADMIN_ENABLED=false`."""
    if not settings.admin_enabled:
        return
    logging.getLogger("sqladmin.application").addFilter(_not_a_refusal)  # once; idempotent
    admin = HeroesAdmin(
        app,
        session_maker=AppSessions(app),
        base_url=BASE_URL,
        title="Heroes admin",
        favicon_url="data:,",  # no icon: saves every page a request for /favicon.ico
        templates_dir=str(TEMPLATES),
        middlewares=[Middleware(AdminGuard)],
        authentication_backend=AdminAuth(app, settings, BASE_URL),
    )
    for view in VIEWS:
        # sqladmin wires each view through class attributes: a subclass per app keeps two
        # apps in one process (as the tests make) from sharing a database or templates.
        admin.add_view(type(view.__name__, (view,), {"service": app}))
