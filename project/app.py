"""Builds the FastAPI app: lifespan, middleware, error handlers, routers."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import import_module
from pkgutil import iter_modules

from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError

from project import api
from project.admin import install_admin
from project.auth.credentials import PasswordHasher
from project.auth.sessions import TokenCodec
from project.config import Settings, get_settings
from project.data.paging import Pager
from project.database import Database, Revisions, migrate
from project.mail import Letters
from project.mail.outbox import Outbox
from project.services import users
from project.web import middleware
from project.web.docs import install_docs, openapi, operation_id
from project.web.logs import configure_logging, flush_logs
from project.web.metrics import install_metrics
from project.web.problems import install_error_handlers

DESCRIPTION = """
A REST backend for teams, heroes and powers, with JWT accounts.

* **Sign in** with *Authorize* (email and password); every `/api/v1` call but register,
  login, refresh, logout, password reset and email verification needs the access token.
* **Emails** (reset and verification links) point at `FRONTEND_URL`; see each operation.
* **Errors** are RFC 9457 problem details (`application/problem+json`).
* **Lists** are keyset-paged: pass `next_cursor` back as `cursor` for the next page.
* **Concurrency**: `GET` returns an `ETag`; send it back in `If-Match` on `PATCH` or `DELETE`
  and a concurrent change answers 412 instead of being overwritten.
"""

logger = logging.getLogger("project.app")
CORS_HEADERS = ["Authorization", "Content-Type", "If-Match", "If-None-Match", "X-Request-ID"]
# What a script may read of a cross-origin response besides the safelisted ones.
CORS_EXPOSED = ["Allow", "ETag", "Location", "Retry-After", "WWW-Authenticate", "X-Request-ID"]
STARTUP_CHECK_SECONDS = 3.0


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Opens the database and says what it lacks (a migration; the first superuser, made here).
    A database that does not answer yet is no reason not to start: readiness reports it."""
    settings: Settings = app.state.settings
    if settings.migrate_at_startup:
        await migrate(settings.database_url)
    app.state.database = database = Database(settings)
    app.state.hasher = hasher = PasswordHasher(settings)
    app.state.tokens = TokenCodec(settings)
    app.state.revisions = revisions = await asyncio.to_thread(Revisions.load)
    app.state.letters = Letters(settings)
    # The sender's own connection: it never takes one that a request is waiting for.
    mail = Database(settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0}))
    app.state.outbox = outbox = Outbox(mail, settings)
    if not settings.smtp_host and settings.environment == "production":
        logger.warning("no SMTP_HOST: emails (reset links too) are written to the log, not sent")
    sender = asyncio.create_task(outbox.run()) if settings.mail_sender else None
    try:
        try:
            async with asyncio.timeout(STARTUP_CHECK_SECONDS), database.engine.connect() as conn:
                if problem := await revisions.problem(conn):
                    logger.error("%s", problem)
        except Exception as exc:
            logger.warning("the database does not answer at startup: %r", exc)
        email, password = settings.first_superuser_email, settings.first_superuser_password
        if email and password:
            try:  # if not now, at the next start (or `python -m project create-superuser`)
                async with database.driver() as db:
                    await users.ensure_superuser(db, hasher, email, password.get_secret_value())
            except (DBAPIError, OSError, TimeoutError) as exc:
                logger.error("the first superuser could not be made now: %r", exc)
        yield
    finally:
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        await mail.engine.dispose()
        await database.engine.dispose()
        flush_logs()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    # Every module of `project.api` with a `router` is served, its docstring its section of /docs:
    # the resources' routes first (routes are matched in order), then sign-in's and health's.
    modules = [import_module(f"project.api.{m.name}") for m in iter_modules(api.__path__)]
    last = ("project.api.auth", "project.api.health")
    routers = sorted((m for m in modules if hasattr(m, "router")), key=lambda m: m.__name__ in last)
    app = FastAPI(
        title="Heroes API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # see project/web/docs.py
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        generate_unique_id_function=operation_id,
        swagger_ui_parameters={"persistAuthorization": True},
        openapi_tags=[
            {"name": tag, "description": (module.__doc__ or "").strip()}
            for module in sorted(routers, key=lambda m: m.router.tags != ["auth"])
            for tag in module.router.tags
        ],
    )
    app.state.settings = settings
    app.state.pager = Pager(settings.secret_key.get_secret_value())
    app.openapi = lambda: openapi(app)  # type: ignore[method-assign]
    install_error_handlers(app)

    app.add_middleware(middleware.BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            middleware.ProblemCORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSED,
        )
    observe = install_metrics(app, settings)
    app.add_middleware(middleware.RequestContextMiddleware, settings.allowed_hosts, observe)

    for module in routers:
        app.include_router(module.router)
    routes = (r for module in routers for r in module.router.routes if isinstance(r, APIRoute))
    app.state.route_methods = [(route.path_regex, route.methods) for route in routes]
    install_docs(app)
    install_admin(app, settings)
    return app


app = create_app()
