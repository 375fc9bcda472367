"""Problem details (RFC 9457): every error, the framework's own included, as problem+json."""

import logging
import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException

from project.errors import FieldError, ProblemError, ServiceUnavailable, integrity_problem
from project.text import BIDI, NO_NUL, NOT_BLANK

logger = logging.getLogger("project.errors")
PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    # Every member but `errors` (only on 422, else absent, never null) is sent, `type` too.
    model_config = ConfigDict(json_schema_extra={"required": ["type", "title", "status", "detail"]})

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldError] = Field(
        default_factory=list,
        description="What is wrong with each part of the request; only on 422.",
    )


# RFC 9110's names where Python's differ: a title never changes (RFC 9457 §3.1.4).
_TITLES = {code.value: code.phrase for code in HTTPStatus} | {
    status.HTTP_413_CONTENT_TOO_LARGE: "Content Too Large",
    status.HTTP_414_URI_TOO_LONG: "URI Too Long",
    status.HTTP_416_RANGE_NOT_SATISFIABLE: "Range Not Satisfiable",
    status.HTTP_422_UNPROCESSABLE_CONTENT: "Unprocessable Content",
}


def problem_response(
    status_code: int,
    detail: str,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[FieldError] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": _TITLES[status_code]}
    body |= {"status": status_code, "detail": detail}
    if errors is not None:
        body["errors"] = [e.model_dump() for e in errors]
    return JSONResponse(body, status_code, dict(headers or {}), PROBLEM_MEDIA_TYPE)


def internal_error_response() -> JSONResponse:
    detail = "An unexpected error occurred; it has been logged."
    return problem_response(status.HTTP_500_INTERNAL_SERVER_ERROR, detail)


# SQLSTATEs for "cannot serve now": connection, sign-in refused, no database, resources, operator
# intervention, serialization, deadlock, lock not available, idle transaction timed out.
_UNAVAILABLE_SQLSTATES = ("08", "28", "3D000", "53", "57", "40001", "40P01", "55P03", "25P03")
# What the drivers say without a SQLSTATE (aiosqlite says none).
_UNAVAILABLE_MESSAGES = re.compile(
    "database is locked|unable to open database file|disk i/o error|database or disk is full"
    "|connection|closed|timeout|cancel"
)


def error_message(err: Mapping[str, Any]) -> str:
    """Pydantic's message, but for the text patterns: what they refuse, in words."""
    pattern = err.get("ctx", {}).get("pattern")
    if err.get("type") != "string_pattern_mismatch" or pattern not in (NO_NUL, NOT_BLANK):
        return str(err.get("msg", "Invalid value"))
    if "\x00" in str(err.get("input")):
        return "String should not contain a NUL character"
    if BIDI.search(str(err.get("input"))):
        return (
            "String should not contain bidirectional controls (U+202A to U+202E, U+2066 to U+2069)"
        )
    return "String should have a visible character, not only blanks"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc.status_code, exc.detail, exc.headers, exc.errors)

    @app.exception_handler(IntegrityError)
    async def integrity_error(request: Request, exc: IntegrityError) -> JSONResponse:
        return await problem(request, integrity_problem(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES[exc.status_code]
        if exc.status_code == status.HTTP_404_NOT_FOUND and detail == "Not Found":
            detail = f"No route matches {request.url.path}."
        headers = dict(exc.headers or {})
        if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
            detail = f"{request.method} is not allowed here; see the Allow header."
            # The router only knows the methods of the first route that matched the path.
            path, routes = request.url.path, getattr(request.app.state, "route_methods", ())
            methods = {m for regex, verbs in routes if regex.match(path) for m in verbs}
            if methods:  # and HEAD wherever GET is: see `RequestContextMiddleware`
                allowed = methods | {"HEAD"} if "GET" in methods else methods
                headers["Allow"] = ", ".join(sorted(allowed))
        return problem_response(exc.status_code, detail, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Never echo `input`: it may hold a password.
        errors = [
            FieldError(loc=list(err["loc"]), msg=error_message(err), type=err["type"])
            for err in exc.errors()
        ]
        fields = ", ".join(".".join(map(str, e.loc)) for e in errors[:5])
        detail = f"The request is invalid: {fields}." if fields else "The request is invalid."
        return problem_response(status.HTTP_422_UNPROCESSABLE_CONTENT, detail, errors=errors)

    @app.exception_handler(ResponseValidationError)
    async def invalid_response(request: Request, exc: ResponseValidationError) -> JSONResponse:
        logger.error("response failed validation: %s", exc)
        return internal_error_response()

    async def database_error(request: Request, exc: Exception) -> JSONResponse:
        """A 503 for what a retry later can fix: no connection, pool exhausted, timeout, lock."""
        sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
        if not isinstance(exc, DBAPIError) or (
            exc.connection_invalidated
            or (sqlstate or "").startswith(_UNAVAILABLE_SQLSTATES)
            or _UNAVAILABLE_MESSAGES.search(str(exc.orig).lower())
        ):
            logger.warning("database unavailable: %s (%s)", type(exc).__name__, sqlstate or "-")
            return await problem(request, ServiceUnavailable())
        logger.exception("database error", exc_info=exc)
        return internal_error_response()

    for exc_type in (DBAPIError, PoolTimeoutError, OSError, TimeoutError):
        app.add_exception_handler(exc_type, database_error)
