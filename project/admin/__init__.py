"""The admin UI at /admin (sqladmin): users, teams, heroes and powers. Only active superusers use
it, each sign-in a login session through the API's checks; and never from another site's pages,
told by headers only browsers set (Go's `CrossOriginProtection`)."""

import hashlib
import logging
import uuid
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response, status
from pydantic import ValidationError
from sqladmin import Admin
from sqladmin.authentication import AuthenticationBackend
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select, true
from starlette.datastructures import Headers, MutableHeaders, QueryParams, State
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from project.admin.resources import HeroAdmin, PowerAdmin, TeamAdmin, UserAdmin
from project.auth.credentials import LoginForm, check_credentials
from project.auth.sessions import end_session, live_session
from project.config import Settings
from project.errors import AuthenticationFailed, PermissionDenied, ProblemError
from project.models import AuthSession, User, utcnow
from project.web.problems import problem_response
from project.web.routing import client_address

BASE_URL = "/admin"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CROSS_SITE = "Cross-site requests to the admin are refused."
NO_PKS = "Name the rows to delete: `?pks=<id>,<id>`."
# Only sqladmin's own files load (Tabler and select2 set inline styles; no inline script runs).
# "same-origin" keeps `Origin` on the admin's own posts (see below), and list filters on delete.
ADMIN_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
ADMIN_HEADERS = {"Content-Security-Policy": ADMIN_CSP, "Referrer-Policy": "same-origin"}


def signed_in(request: Request) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The (user id, login session id) the admin cookie names, if it names any."""
    try:
        return uuid.UUID(request.session["user_id"]), uuid.UUID(request.session["sid"])
    except (KeyError, TypeError, ValueError):
        return None


class AdminAuth(AuthenticationBackend):
    def __init__(self, state: State, settings: Settings, path: str) -> None:
        # The cookie's key is derived from SECRET_KEY, so it is never the key that signs JWTs.
        secret = settings.secret_key.get_secret_value().encode()
        super().__init__(
            secret_key=hashlib.sha256(b"heroes-admin-session\x00" + secret).hexdigest(),
            session_cookie="admin_session",
            max_age=settings.admin_session_hours * 3600,
            path=path,
            same_site="strict",
            https_only=settings.environment == "production",  # HttpOnly always (Starlette's)
        )
        self.state, self.settings = state, settings

    async def login(self, request: Request) -> bool:
        """As `POST /api/v1/auth/login`; anyone but an active superuser fails alike."""
        data = await request.form()
        hasher, settings, client = self.state.hasher, self.settings, client_address(request)
        try:
            form = LoginForm.model_validate({k: data.get(k) for k in ("username", "password")})
            async with self.state.database.session(write=True) as session:
                user = await check_credentials(
                    session, hasher, settings, form.username, form.password, client, superuser=True
                )
                session.add(signed := AuthSession(user_id=user.id))
                await session.commit()
        except (ValidationError, AuthenticationFailed, PermissionDenied):  # 403: unverified
            return False
        request.session.clear()  # a new sign-in never inherits an older cookie's contents
        request.session.update({"user_id": str(user.id), "sid": str(signed.id)})
        return True

    async def authenticate(self, request: Request) -> bool:
        if (ids := signed_in(request)) is None:
            return False
        fresh = col(AuthSession.created_at) > utcnow() - self.settings.admin_session_lifetime
        stmt = select(col(AuthSession.id)).join(User, true()).where(live_session(ids[1], ids[0]))
        async with self.state.database.session() as session:
            live = await session.scalar(stmt.where(fresh, col(User.is_superuser).is_(True)))
        if live is None:
            request.session.clear()
        return live is not None

    async def logout(self, request: Request) -> bool:
        """End the login session itself, so a copy of the cookie stops working too."""
        ids = signed_in(request)
        request.session.clear()
        if ids is not None:
            async with self.state.database.session(write=True) as session:
                await end_session(session, ids[1])
                await session.commit()
        return False  # sqladmin then shows the login page


def is_cross_site(method: str, headers: Headers) -> bool:
    site, origin = headers.get("sec-fetch-site"), headers.get("origin")
    if site is not None:
        # "none": typed in, or a bookmark. A link from elsewhere may open an admin page, and
        # nothing more: no form posts, no reading pages through CORS from the API's origins.
        navigation = method in SAFE_METHODS and headers.get("sec-fetch-mode") == "navigate"
        return site not in ("same-origin", "none") and not navigation
    if method in SAFE_METHODS or origin is None:  # no `Origin`: no browser, no ambient cookie
        return False
    return urlsplit(origin).netloc != headers.get("host")  # "null" never matches


def admin_guard(app: ASGIApp) -> ASGIApp:
    """Refuses cross-site requests, and sets headers the service's own defaults then leave be."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(ADMIN_HEADERS)
            await send(message)

        if scope["type"] != "http":
            return await app(scope, receive, send)
        refused = is_cross_site(scope["method"], Headers(scope=scope))
        answer = problem_response(status.HTTP_403_FORBIDDEN, CROSS_SITE) if refused else app
        deleting = scope["method"] == "DELETE" and scope["path"].endswith("/delete")
        if not refused and deleting and "pks" not in QueryParams(scope["query_string"]):
            answer = problem_response(status.HTTP_400_BAD_REQUEST, NO_PKS)  # sqladmin: a 500
        await answer(scope, receive, send_with_headers)

    return guarded


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
