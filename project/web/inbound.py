"""What a request must be before the framework parses it: a query that is UTF-8, a body
of the media type, coding and charset the operation reads, JSON in UTF-8. Each refusal is a
problem (415 or 422) that says what to send instead."""

from email.message import Message
from urllib.parse import unquote_to_bytes

from fastapi import status
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request

from project.errors import UnsupportedMediaType


def client_address(request: Request) -> str:
    """The caller's address, as the server sees it (behind a proxy: see FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else "unknown"


FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


async def check_request(request: Request, body_kind: str | None) -> None:
    """The query, and a body the operation reads (`json`, `form` or None): its headers, and
    a JSON body's encoding (read here, and kept for the handler to read again)."""
    if b"%" in request.scope["query_string"]:
        _check_query(request.scope["query_string"])
    if body_kind is None or not _has_body(request):
        return
    _check_body(request, body_kind)
    if body_kind == "json":
        _check_utf8(await _read_body(request))


def _invalid(loc: str, msg: str, type_: str = "json_invalid") -> RequestValidationError:
    """A 422 about the request as a whole (`body` or `query`), like the framework's own."""
    return RequestValidationError([{"type": type_, "loc": (loc,), "msg": msg, "input": {}}])


async def _read_body(request: Request) -> bytes:
    """The whole body. A client that hangs up while sending it gets (were it still there to
    read it) the 400 the framework gives then, not a 500 for an error of the server's."""
    try:
        return await request.body()
    except ClientDisconnect:
        raise StarletteHTTPException(
            status.HTTP_400_BAD_REQUEST, "The body ended before it was complete."
        ) from None


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
    # RFC 9110 §15.5.16 and RFC 5789 §2.2: a 415 says which media types are accepted.
    accepted = {"Accept": ", ".join(sorted(FORM_TYPES)) if kind == "form" else "application/json"}
    if kind == "json" and request.method == "PATCH":
        accepted["Accept-Patch"] = "application/json"
    if kind == "form" and media_type not in FORM_TYPES:
        raise UnsupportedMediaType(
            "Send this body as application/x-www-form-urlencoded or multipart/form-data.",
            accepted,
        )
    if kind == "json" and not _is_json(media_type):
        raise UnsupportedMediaType("Send this body as application/json.", accepted)
    if charset not in (None, "utf-8", "utf8"):  # RFC 8259 §8.1: JSON is UTF-8; forms too here
        raise UnsupportedMediaType(f"Bodies are read as UTF-8, not {charset}.", accepted)


def _check_query(query: bytes) -> None:
    """422 for a query string whose escapes are not UTF-8 (`?q=%FF`): the parser would put
    U+FFFD in their place, and search for that."""
    try:
        unquote_to_bytes(query.replace(b"+", b" ")).decode()
    except UnicodeDecodeError:
        raise _invalid("query", "The query is not UTF-8.", "value_error") from None


def _check_utf8(body: bytes) -> None:
    """422 for a body in UTF-16 or UTF-32, which the JSON parser would otherwise detect and
    read (RFC 8259 §8.1: JSON between systems is UTF-8). Those encode every ASCII character
    with a zero byte, which UTF-8 JSON never holds (a NUL in a string must be escaped)."""
    if b"\x00" in body:
        raise _invalid("body", "The JSON is not UTF-8.")


def as_malformed_body(exc: StarletteHTTPException) -> RequestValidationError | None:
    """The framework answers a body it cannot parse for reasons other than a JSON syntax
    error (JSON not UTF-8, nested too deep, a number too long to convert; a multipart form
    without its boundary, or cut short) with a bare 400. To a client these are malformed
    bodies like any other: a 422, as for a syntax error."""
    if exc.status_code != status.HTTP_400_BAD_REQUEST:
        return None
    if isinstance(exc.__context__, MultiPartException):
        return _invalid("body", f"The form cannot be parsed: {exc.__context__.message}")
    if isinstance(exc.__cause__, ValueError | RecursionError):
        reason = (
            "is not UTF-8" if isinstance(exc.__cause__, UnicodeDecodeError) else "cannot be parsed"
        )
        return _invalid("body", f"The JSON {reason}.")
    return None
