"""Problem details (RFC 9457): the exception types domain code raises, and the one place
that turns every error, the framework's own included, into `application/problem+json`."""

import logging
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from project.text import NO_NUL, NOT_BLANK

logger = logging.getLogger("project.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = 5


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


def _without_default(schema: JsonDict) -> None:
    schema.pop("default", None)


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    # Every member but `errors` (only on 422) is always sent, `type` too.
    model_config = ConfigDict(json_schema_extra={"required": ["type", "title", "status", "detail"]})

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    # Absent, never null, on every other status: typed so, a client checks for it.
    errors: SkipJsonSchema[None] | list[FieldError] = Field(
        default=None,
        description="What is wrong with each part of the request; only on 422.",
        json_schema_extra=_without_default,
    )


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


# RFC 9110's names for statuses Python named otherwise before 3.13: a problem's title stays
# the same from one occurrence (and Python version) to the next (RFC 9457 §3.1.4).
_TITLES = {
    status.HTTP_413_CONTENT_TOO_LARGE: "Content Too Large",
    status.HTTP_414_URI_TOO_LONG: "URI Too Long",
    status.HTTP_416_RANGE_NOT_SATISFIABLE: "Range Not Satisfiable",
    status.HTTP_422_UNPROCESSABLE_CONTENT: "Unprocessable Content",
}


def title(status_code: int) -> str:
    return _TITLES.get(status_code) or HTTPStatus(status_code).phrase


def problem_response(
    status_code: int,
    detail: str,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[FieldError] | None = None,
) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title(status_code),
        "status": status_code,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = [e.model_dump() for e in errors]
    return ProblemResponse(body, status_code=status_code, headers=dict(headers or {}))


class ProblemError(Exception):
    """Base of the domain errors; each maps to exactly one status code."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "The request cannot be processed."

    def __init__(self, detail: str | None = None, headers: Mapping[str, str] | None = None):
        self.detail = detail or self.default_detail
        self.headers = dict(headers or {})
        super().__init__(self.detail)


class BadRequest(ProblemError):
    status_code = status.HTTP_400_BAD_REQUEST


class AuthenticationFailed(ProblemError):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_detail = "Not authenticated, or the token is invalid or expired."

    def __init__(self, detail: str | None = None):
        super().__init__(detail, {"WWW-Authenticate": "Bearer"})


class PermissionDenied(ProblemError):
    status_code = status.HTTP_403_FORBIDDEN
    default_detail = "Only a superuser may do this."


class NotFound(ProblemError):
    status_code = status.HTTP_404_NOT_FOUND

    def __init__(self, resource: str):
        super().__init__(f"No {resource} with that id.")


class Conflict(ProblemError):
    status_code = status.HTTP_409_CONFLICT


class PreconditionFailed(ProblemError):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The resource has changed since you read it: fetch it again and retry."


class UnsupportedMediaType(ProblemError):
    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE


class TooManyRequests(ProblemError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS

    def __init__(self, detail: str, retry_after: int):
        super().__init__(detail, {"Retry-After": str(max(1, retry_after))})


class ServiceUnavailable(ProblemError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The service is temporarily unavailable; retry shortly."

    def __init__(self, detail: str | None = None, retry_after: int = RETRY_AFTER_SECONDS):
        super().__init__(detail, {"Retry-After": str(retry_after)})


class InvalidField(ProblemError):
    """A well-formed request whose field names something that cannot be used (422)."""

    status_code = status.HTTP_422_UNPROCESSABLE_CONTENT

    def __init__(self, loc: Sequence[str | int], msg: str, type_: str = "value_error"):
        self.errors = [FieldError(loc=list(loc), msg=msg, type=type_)]
        super().__init__(f"{'.'.join(map(str, loc))}: {msg}")


FOREIGN_KEY_VIOLATION = "23503"
# SQLSTATE classes and codes that mean "the database cannot serve now", not "bad request":
# connection failures (08), refused sign-in (28: a wrong password in DATABASE_URL), a
# missing database (3D000), resources (53), operator intervention (57), serialization and
# deadlock (40001, 40P01), a lock not available (55P03), an idle transaction timed out.
_UNAVAILABLE_SQLSTATES = ("08", "28", "3D000", "53", "57", "40001", "40P01", "55P03", "25P03")


# What the drivers say without a SQLSTATE (aiosqlite says none): SQLite's file cannot be
# opened (a directory that is missing or not writable), its disk is full or failing, a lock.
_UNAVAILABLE_MESSAGES = (
    "database is locked",
    "unable to open database file",
    "disk i/o error",
    "database or disk is full",
    "connection",
    "closed",
    "timeout",
    "cancel",
)


def is_database_unavailable(exc: BaseException) -> bool:
    """True for errors a retry later can fix: no connection, pool exhausted, timeout, lock."""
    if isinstance(exc, PoolTimeoutError | TimeoutError | OSError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        if sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            return True
        message = str(exc.orig).lower()
        return any(marker in message for marker in _UNAVAILABLE_MESSAGES)
    return False


def error_message(err: Mapping[str, Any]) -> str:
    """Pydantic's message, except for the text patterns, whose message would spell out a
    regular expression of some 400 characters: what they refuse, in words."""
    if err.get("type") == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") in (
        NO_NUL,
        NOT_BLANK,
    ):
        value = err.get("input")
        if isinstance(value, str) and "\x00" in value:
            return "String should not contain a NUL character"
        return "String should have a visible character, not only blanks"
    return str(err.get("msg", "Invalid value"))


def _validation_errors(exc: RequestValidationError) -> list[FieldError]:
    # Never echo `input`: it may hold a password.
    return [
        FieldError(
            loc=[p if isinstance(p, int) else str(p) for p in err.get("loc", ())],
            msg=error_message(err),
            type=str(err.get("type", "value_error")),
        )
        for err in exc.errors()
    ]


async def _problem_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(exc.status_code, exc.detail, exc.headers, getattr(exc, "errors", None))


async def _http_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else title(exc.status_code)
    if exc.status_code == status.HTTP_404_NOT_FOUND and detail == "Not Found":
        detail = f"No route matches {request.url.path}."
    headers = dict(exc.headers or {})
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        detail = f"{request.method} is not allowed here; see the Allow header."
        # The router only knows the methods of the first route that matched the path.
        methods = {
            method
            for path_regex, route_methods in getattr(request.app.state, "route_methods", ())
            if path_regex.match(request.url.path)
            for method in route_methods
        }
        if "GET" in methods:
            methods.add("HEAD")  # see `HeadMiddleware`
        if methods:
            headers["Allow"] = ", ".join(sorted(methods))
    return problem_response(exc.status_code, detail, headers)


async def _request_validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    fields = ", ".join(".".join(map(str, e.loc)) for e in errors[:5])
    return problem_response(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        f"The request is invalid: {fields}." if fields else "The request is invalid.",
        errors=errors,
    )


CONFLICT = "The request conflicts with the current state of the data."
ACCOUNT_GONE = "Your account no longer exists."
# What a broken foreign key means to the caller, by its name (the naming convention's
# `fk_<table>_<column>_<referred table>`): a row the request refers to was deleted while the
# request ran. Every owned table's `owner_id` names the caller, whatever the table.
_GONE_MEANWHILE: dict[str, Callable[[], ProblemError]] = {
    "fk_auth_sessions_user_id_users": lambda: AuthenticationFailed(ACCOUNT_GONE),
    "fk_heroes_team_id_teams": lambda: InvalidField(
        ["body", "team_id"], "The team was just deleted."
    ),
    "fk_hero_powers_power_id_powers": lambda: InvalidField(
        ["body", "power_ids"], "A power was just deleted."
    ),
    "fk_hero_powers_hero_id_heroes": lambda: NotFound("hero"),
}
_OWNER_GONE = "_owner_id_users"


def integrity_problem(exc: IntegrityError, conflict: str = CONFLICT) -> ProblemError:
    """What a write the database refused means: a unique clash is a 409 saying `conflict`;
    a row the request refers to that was deleted meanwhile (a foreign key: a race the
    request's own checks cannot close, on PostgreSQL) is what its absence would have been
    had the request come a moment later."""
    # The driver's own error, and (asyncpg through SQLAlchemy's adapter) the one it wraps.
    errors = (exc.orig, getattr(exc.orig, "__cause__", None))
    if FOREIGN_KEY_VIOLATION not in (getattr(error, "sqlstate", None) for error in errors):
        return Conflict(conflict)
    names = (str(getattr(error, "constraint_name", None) or "") for error in errors)
    name = next((name for name in names if name), "")
    if name in _GONE_MEANWHILE:
        return _GONE_MEANWHILE[name]()
    if name.endswith(_OWNER_GONE):
        return AuthenticationFailed(ACCOUNT_GONE)
    return Conflict(CONFLICT)


async def _integrity_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, IntegrityError)
    return await _problem_error(request, integrity_problem(exc))


async def _database_error(request: Request, exc: Exception) -> ProblemResponse:
    if is_database_unavailable(exc):
        sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
        logger.warning(
            "database unavailable: %s%s", type(exc).__name__, f" ({sqlstate})" if sqlstate else ""
        )
        return problem_response(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            ServiceUnavailable.default_detail,
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    logger.exception("database error", exc_info=exc)
    return internal_error_response()


def internal_error_response() -> ProblemResponse:
    return problem_response(
        status.HTTP_500_INTERNAL_SERVER_ERROR, "An unexpected error occurred; it has been logged."
    )


async def _response_validation_error(request: Request, exc: Exception) -> ProblemResponse:
    logger.error("response failed validation: %s", exc)
    return internal_error_response()


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(ResponseValidationError, _response_validation_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    for exc_type in (DBAPIError, PoolTimeoutError, OSError, TimeoutError):
        app.add_exception_handler(exc_type, _database_error)
