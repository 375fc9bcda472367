"""The router every resource uses: content types checked, errors documented as problems."""

from collections.abc import Callable, Coroutine
from email.message import Message
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import APIRouter, params, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from project.database import release_session
from project.errors import PROBLEM_MEDIA_TYPE, UnsupportedMediaType

API_PREFIX = "/api/v1"
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

_DESCRIPTIONS = {
    status.HTTP_400_BAD_REQUEST: "The request cannot be carried out as sent.",
    status.HTTP_401_UNAUTHORIZED: "Not signed in: a token missing, invalid, expired or revoked.",
    status.HTTP_403_FORBIDDEN: "Authenticated, but not allowed to do this.",
    status.HTTP_404_NOT_FOUND: "No such resource, or it belongs to someone else.",
    status.HTTP_409_CONFLICT: (
        "Conflicts with the current data: a name or email already taken (on users, also the"
        " last active superuser)."
    ),
    status.HTTP_412_PRECONDITION_FAILED: (
        "`If-Match` does not name the current version (or `If-None-Match` does)."
    ),
    status.HTTP_413_CONTENT_TOO_LARGE: "The request body is over the size limit.",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "The body is not of the media type expected.",
    status.HTTP_422_UNPROCESSABLE_CONTENT: "Invalid input; `errors` lists each problem.",
    status.HTTP_429_TOO_MANY_REQUESTS: "Too many attempts; see `Retry-After`.",
    status.HTTP_503_SERVICE_UNAVAILABLE: "Temporarily unavailable; see `Retry-After`.",
}


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}
_HEADERS: dict[int, dict[str, Any]] = {
    status.HTTP_401_UNAUTHORIZED: {
        "WWW-Authenticate": {
            "description": "`Bearer`: send an access token.",
            "schema": {"type": "string"},
        }
    },
    status.HTTP_429_TOO_MANY_REQUESTS: _RETRY_AFTER,
    status.HTTP_503_SERVICE_UNAVAILABLE: _RETRY_AFTER,
}


def problems(*codes: int, say: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for error statuses, all in the problem+json schema, with
    the headers they carry; `say` words one for this operation."""
    return {
        code: {
            "description": (say or {}).get(code, _DESCRIPTIONS[code]),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            **({"headers": _HEADERS[code]} if code in _HEADERS else {}),
        }
        for code in codes
    }


_ETAG = {
    "ETag": {"description": "The version to send back in `If-Match`.", "schema": {"type": "string"}}
}


def created(name: str) -> dict[int | str, dict[str, Any]]:
    """The 201 of a create: its headers, and OpenAPI links to what can be done next."""
    by_id = {"id": "$response.body#/id"}
    return {
        status.HTTP_201_CREATED: {
            "description": f"The new {name}.",
            "headers": {
                **_ETAG,
                "Location": {"description": f"The new {name}'s URL.", "schema": {"type": "string"}},
            },
            "links": {
                f"{verb}_{name}": {"operationId": f"{verb}_{name}", "parameters": by_id}
                for verb in ("read", "update", "delete")
            },
        }
    }


def fetched(name: str) -> dict[int | str, dict[str, Any]]:
    """The 200 of a read, with its ETag, and the 304 that `If-None-Match` can give."""
    return {
        status.HTTP_200_OK: {"description": f"The {name}.", "headers": _ETAG},
        status.HTTP_304_NOT_MODIFIED: {"description": "Unchanged since the `If-None-Match` tag."},
        **problems(status.HTTP_404_NOT_FOUND),
    }


def changed(name: str, *codes: int) -> dict[int | str, dict[str, Any]]:
    """The 200 of a change, with the new ETag, and what a change may answer besides."""
    return {
        status.HTTP_200_OK: {"description": f"The {name}, changed.", "headers": _ETAG},
        **problems(status.HTTP_404_NOT_FOUND, status.HTTP_412_PRECONDITION_FAILED, *codes),
    }


_PRECONDITIONS = {
    "304": [
        (
            "If-None-Match",
            "ETags the client holds (or `*`): when one is current, the answer is 304, no body.",
        )
    ],
    "412": [
        (
            "If-Match",
            "The ETag the client read (or `*`): when it is no longer current, the answer is "
            "412 and nothing changes.",
        ),
        (
            "If-None-Match",
            "ETags (or `*`) the change is not for: when one is current, the answer is 412 and "
            "nothing changes.",
        ),
    ],
}


def document_preconditions(openapi: dict[str, Any]) -> None:
    """Add the conditional request headers to every operation that answers them: the ones
    that document a 304 (reads) take `If-None-Match`, the ones that document a 412 (changes)
    `If-Match` and `If-None-Match`."""
    for path in openapi.get("paths", {}).values():
        for operation in path.values():
            for code, headers in _PRECONDITIONS.items():
                if code not in operation.get("responses", {}):
                    continue
                for header, description in headers:
                    operation.setdefault("parameters", []).append(
                        {
                            "name": header,
                            "in": "header",
                            "required": False,
                            "description": description,
                            "schema": {"type": "string"},
                        }
                    )


def _media_type(request: Request) -> tuple[str | None, str | None]:
    """The body's media type and its charset parameter, lower-cased."""
    header = request.headers.get("content-type")
    if header is None:
        return None, None
    message = Message()
    message["content-type"] = header
    return message.get_content_type(), message.get_content_charset()


def _is_json(media_type: str | None) -> bool:
    return media_type is not None and (
        media_type == "application/json"
        or (media_type.startswith("application/") and media_type.endswith("+json"))
    )


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


class ProblemRoute(APIRoute):
    """Checks a body's media type before parsing it (415, instead of the framework's 422
    about a missing dict), and hands the database connection back as soon as the response
    is built rather than after it has been sent."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if kwargs.get("status_code") == status.HTTP_204_NO_CONTENT:
            kwargs["response_class"] = Response  # no body, so no Content-Type either
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        body_kind = None
        if self.body_field is not None:
            body_kind = "form" if isinstance(self.body_field.field_info, params.Form) else "json"

        async def route_handler(request: Request) -> Response:
            if b"%" in request.scope["query_string"]:
                _check_query(request.scope["query_string"])
            if body_kind is not None and _has_body(request):
                _check_body(request, body_kind)
                if body_kind == "json":
                    _check_utf8(await request.body())  # kept: the handler reads it again
            try:
                return await handler(request)
            except StarletteHTTPException as exc:
                if (malformed := _as_malformed_json(exc)) is None:
                    raise
                raise malformed from exc
            finally:
                await release_session(request)

        return route_handler


def _check_body(request: Request, kind: str) -> None:
    # Every coding listed, in every Content-Encoding header: one gzip among them is enough
    # to make the body unreadable as it is.
    codings = [
        coding.strip().lower()
        for header in request.headers.getlist("content-encoding")
        for coding in header.split(",")
    ]
    if refused := [coding for coding in codings if coding not in ("identity", "")]:
        raise UnsupportedMediaType(  # RFC 9110 §15.5.16: say which codings are accepted
            f"Bodies are not decoded from {refused[0]}: send this one uncompressed.",
            {"Accept-Encoding": "identity"},
        )
    if len(set(request.headers.getlist("content-type"))) > 1:
        raise UnsupportedMediaType("Send one Content-Type header, not several.")
    media_type, charset = _media_type(request)
    if kind == "form":
        if media_type not in FORM_TYPES:
            raise UnsupportedMediaType("Send this body as application/x-www-form-urlencoded.")
        return
    if not _is_json(media_type):
        raise UnsupportedMediaType("Send this body as application/json.")
    if charset not in (None, "utf-8", "utf8"):  # RFC 8259 §8.1: JSON is UTF-8
        raise UnsupportedMediaType(f"JSON is read as UTF-8, not {charset}.")


def _check_query(query: bytes) -> None:
    """422 for a query string whose escapes are not UTF-8 (`?q=%FF`): the parser would put
    U+FFFD in their place, and search for that."""
    try:
        unquote_to_bytes(query.replace(b"+", b" ")).decode()
    except UnicodeDecodeError:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query",),
                    "msg": "The query is not UTF-8.",
                    "input": {},
                }
            ]
        ) from None


def _check_utf8(body: bytes) -> None:
    """422 for a body in UTF-16 or UTF-32, which the JSON parser would otherwise detect and
    read (RFC 8259 §8.1: JSON between systems is UTF-8). Those encode every ASCII character
    with a zero byte, which UTF-8 JSON never holds (a NUL in a string must be escaped)."""
    if b"\x00" in body:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body",),
                    "msg": "The JSON is not UTF-8.",
                    "input": {},
                }
            ]
        )


def _as_malformed_json(exc: StarletteHTTPException) -> RequestValidationError | None:
    """The framework answers a body it cannot parse for reasons other than a syntax error
    (not UTF-8, nested too deep, a number too long to convert) with a bare 400. To a client
    these are malformed JSON like any other: a 422, as for a syntax error."""
    if exc.status_code == status.HTTP_400_BAD_REQUEST and isinstance(
        exc.__cause__, ValueError | RecursionError
    ):
        reason = (
            "is not UTF-8" if isinstance(exc.__cause__, UnicodeDecodeError) else "cannot be parsed"
        )
        return RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": f"The JSON {reason}.", "input": {}}]
        )
    return None


def api_router(prefix: str, tags: list[str], *codes: int) -> APIRouter:
    """A router whose operations all document 413, 415, 422, 503 and `codes` as problems."""
    common = (
        status.HTTP_413_CONTENT_TOO_LARGE,
        status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        status.HTTP_503_SERVICE_UNAVAILABLE,
    )
    return APIRouter(
        prefix=API_PREFIX + prefix,
        tags=list(tags),
        route_class=ProblemRoute,
        responses=problems(*common, *codes),
    )
