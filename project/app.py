"""Builds the FastAPI app: lifespan, middleware, error handlers, routers."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError

from project.accounts import ensure_superuser
from project.admin import install_admin
from project.config import Settings, get_settings
from project.database import Database, migrate
from project.docs import install_docs
from project.errors import FieldError, Problem, install_error_handlers
from project.logs import configure_logging, flush_logs
from project.metrics import install_metrics
from project.middleware import (
    BodySizeLimitMiddleware,
    HeadMiddleware,
    ProblemCORSMiddleware,
    RequestContextMiddleware,
)
from project.paging import Pager
from project.routers import auth, health, heroes, powers, teams, users
from project.routing import document_preconditions, tidy_operations
from project.schema import Revisions
from project.security import PasswordHasher, TokenCodec

DESCRIPTION = """
A REST backend for teams, heroes and powers, with JWT accounts.

* **Sign in** with *Authorize* (email and password); every `/api/v1` call but register,
  login, refresh and logout needs the access token.
* **Errors** are RFC 9457 problem details (`application/problem+json`).
* **Lists** are keyset-paged: pass `next_cursor` back as `cursor` for the next page.
* **Concurrency**: `GET` returns an `ETag`; send it back in `If-Match` on `PATCH` or `DELETE`
  and a concurrent change answers 412 instead of being overwritten.
"""


logger = logging.getLogger("project.app")
STARTUP_CHECK_SECONDS = 3.0

ROUTERS = (heroes, teams, powers, users, auth, health)
# The order of the sections in /docs, whatever the order of the routes.
TAGS = [
    {"name": "auth", "description": "Register, sign in, refresh and sign out."},
    {"name": "users", "description": "Your account; everyone's, for superusers."},
    {"name": "teams", "description": "Teams you own."},
    {"name": "heroes", "description": "Heroes you own, with their team and powers embedded."},
    {"name": "powers", "description": "Powers you own."},
    {"name": "health", "description": "Liveness and readiness, for load balancers."},
]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if settings.migrate_at_startup:
        await migrate(settings.database_url)
    database = Database(settings)
    app.state.database = database
    app.state.hasher = hasher = PasswordHasher(settings)
    app.state.tokens = TokenCodec(settings)
    app.state.revisions = revisions = await asyncio.to_thread(Revisions.load)
    try:
        await _check_schema(database, revisions)
        if settings.first_superuser_email and settings.first_superuser_password:
            password = settings.first_superuser_password.get_secret_value()
            await _first_superuser(database, hasher, settings.first_superuser_email, password)
        yield
    finally:
        await database.dispose()
        flush_logs()


async def _check_schema(database: Database, revisions: Revisions) -> None:
    """Say at startup, not at the first failing request, that the database needs migrating
    (readiness says so too, until it is). A database that does not answer yet is no reason
    not to start: readiness reports it, and the service recovers when it answers."""
    try:
        async with asyncio.timeout(STARTUP_CHECK_SECONDS), database.engine.connect() as connection:
            problem = await revisions.problem(connection)
    except Exception as exc:
        logger.warning("the database does not answer at startup: %r", exc)
        return
    if problem is not None:
        logger.error("%s", problem)


async def _first_superuser(
    database: Database, hasher: PasswordHasher, email: str, password: str
) -> None:
    """FIRST_SUPERUSER_EMAIL's account, made if missing. A database that is down or not
    migrated yet does not stop the service from starting: the next start makes it, or
    `python -m project create-superuser` does."""
    try:
        async with database.session(write=True) as session:
            await ensure_superuser(session, hasher, email, password)
    except (DBAPIError, OSError, TimeoutError) as exc:
        logger.error("the first superuser could not be made now: %r", exc)


def _operation_id(route: APIRoute) -> str:
    """Operation ids are the handler names (`create_hero`): stable, and a client
    generator turns them into good method names."""
    return route.name


def _openapi_with_problem(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (Problem, FieldError):
            components[model.__name__] = model.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            components[model.__name__].pop("$defs", None)
        for obsolete in ("HTTPValidationError", "ValidationError"):
            components.pop(obsolete, None)
        document_preconditions(schema)
        tidy_operations(schema)
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    app = FastAPI(
        title="Heroes API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # see project/docs.py
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        generate_unique_id_function=_operation_id,
        swagger_ui_parameters={"persistAuthorization": True},
        openapi_tags=TAGS,
    )
    app.state.settings = settings
    app.state.pager = Pager(settings.secret_key.get_secret_value())
    app.openapi = lambda: _openapi_with_problem(app)  # type: ignore[method-assign]
    install_error_handlers(app)

    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            ProblemCORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-Match",
                "If-None-Match",
                "X-Request-ID",
            ],
            # What a script may read of a cross-origin response besides the safelisted ones.
            expose_headers=[
                "Allow",
                "ETag",
                "Location",
                "Retry-After",
                "WWW-Authenticate",
                "X-Request-ID",
            ],
        )
    app.add_middleware(HeadMiddleware)
    app.add_middleware(RequestContextMiddleware)

    # Routes are matched in order: the busiest first.
    for module in ROUTERS:
        app.include_router(module.router)
    app.state.route_methods = [
        (route.path_regex, route.methods)
        for module in ROUTERS
        for route in module.router.routes
        if isinstance(route, APIRoute)
    ]
    install_docs(app)
    install_metrics(app, settings)
    install_admin(app, settings)
    return app


app = create_app()
