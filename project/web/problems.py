"""Problem details (RFC 9457): the one place that turns every error, the framework's own
included, into `application/problem+json`."""

import logging
from collections.abc import Mapping, Sequence
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
from starlette.exceptions import HTTPException

from project.errors import FieldError, ProblemError, ServiceUnavailable, integrity_problem
from project.text import NO_NUL, NOT_BLANK

logger = logging.getLogger("project.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"


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


# RFC 9110's names where Python's differ: a title stays the same from one occurrence (and
# Python version) to the next (RFC 9457 §3.1.4).
_TITLES = {
    status.HTTP_413_CONTENT_TOO_LARGE: "Content Too Large",
    status.HTTP_414_URI_TOO_LONG: "URI Too Long",
    status.HTTP_416_RANGE_NOT_SATISFIABLE: "Range Not Satisfiable",
    status.HTTP_422_UNPROCESSABLE_CONTENT: "Unprocessable Content",
}


def _title(status_code: int) -> str:
    return _TITLES.get(status_code) or HTTPStatus(status_code).phrase


def problem_response(
    status_code: int,
    detail: str,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[FieldError] | None = None,
) -> ProblemResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": _title(status_code)}
    body["status"] = status_code
    body["detail"] = detail
    if errors is not None:
        body["errors"] = [e.model_dump() for e in errors]
    return ProblemResponse(body, status_code=status_code, headers=dict(headers or {}))


def internal_error_response() -> ProblemResponse:
    detail = "An unexpected error occurred; it has been logged."
    return problem_response(status.HTTP_500_INTERNAL_SERVER_ERROR, detail)


# SQLSTATEs that mean "the database cannot serve now": connection (08), refused sign-in
# (28), no database (3D000), resources (53), operator intervention (57), serialization and
# deadlock (40001, 40P01), lock not available (55P03), idle transaction timed out (25P03).
_UNAVAILABLE_SQLSTATES = ("08", "28", "3D000", "53", "57", "40001", "40P01", "55P03", "25P03")
# What the drivers say without a SQLSTATE (aiosqlite says none).
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
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    message = str(exc.orig).lower()
    return (
        exc.connection_invalidated
        or sqlstate.startswith(_UNAVAILABLE_SQLSTATES)
        or any(marker in message for marker in _UNAVAILABLE_MESSAGES)
    )


def error_message(err: Mapping[str, Any]) -> str:
    """Pydantic's message, but for the text patterns (some 400 characters of regular
    expression): what they refuse, in words."""
    if err.get("type") == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") in (
        NO_NUL,
        NOT_BLANK,
    ):
        if "\x00" in str(err.get("input")):
            return "String should not contain a NUL character"
        return "String should have a visible character, not only blanks"
    return str(err.get("msg", "Invalid value"))


async def _problem_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(exc.status_code, exc.detail, exc.headers, exc.errors)


async def _http_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else _title(exc.status_code)
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
    # Never echo `input`: it may hold a password.
    errors = [
        FieldError(
            loc=[p if isinstance(p, int) else str(p) for p in err.get("loc", ())],
            msg=error_message(err),
            type=str(err.get("type", "value_error")),
        )
        for err in exc.errors()
    ]
    fields = ", ".join(".".join(map(str, e.loc)) for e in errors[:5])
    detail = f"The request is invalid: {fields}." if fields else "The request is invalid."
    return problem_response(status.HTTP_422_UNPROCESSABLE_CONTENT, detail, errors=errors)


async def _integrity_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, IntegrityError)
    return await _problem_error(request, integrity_problem(exc))


async def _database_error(request: Request, exc: Exception) -> ProblemResponse:
    if is_database_unavailable(exc):
        sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
        logger.warning("database unavailable: %s (%s)", type(exc).__name__, sqlstate or "-")
        return await _problem_error(request, ServiceUnavailable())
    logger.exception("database error", exc_info=exc)
    return internal_error_response()


async def _response_validation_error(request: Request, exc: Exception) -> ProblemResponse:
    logger.error("response failed validation: %s", exc)
    return internal_error_response()


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(ResponseValidationError, _response_validation_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    for exc_type in (DBAPIError, PoolTimeoutError, OSError, TimeoutError):
        app.add_exception_handler(exc_type, _database_error)
