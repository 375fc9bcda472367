"""What a request must be before the framework parses it; each refusal (415 or 422) says what
to send instead."""

from email.message import Message
from urllib.parse import unquote_to_bytes

from fastapi import status
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request

from project.errors import UnsupportedMediaType

FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def client_address(request: Request) -> str:
    """The caller's address, as the server sees it (behind a proxy: see FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else "unknown"


def _invalid(loc: str, msg: str, type_: str = "json_invalid") -> RequestValidationError:
    return RequestValidationError([{"type": type_, "loc": (loc,), "msg": msg, "input": {}}])


async def check_request(request: Request, body_kind: str | None) -> None:
    """The query, and the body the operation reads (`json`, `form` or None)."""
    query = request.scope["query_string"]
    if b"%" in query:  # the parser would put U+FFFD for escapes not UTF-8, and search for that
        try:
            unquote_to_bytes(query.replace(b"+", b" ")).decode()
        except UnicodeDecodeError:
            raise _invalid("query", "The query is not UTF-8.", "value_error") from None
    length = request.headers.get("content-length")
    if length is None:
        has_body = "transfer-encoding" in request.headers
    else:
        has_body = length.strip() not in ("", "0")
    if body_kind is None or not has_body:
        return
    # One coding listed, in any Content-Encoding header, makes the body unreadable as it is.
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
    message = Message()  # parses the media type and its charset
    message["content-type"] = request.headers.get("content-type", "")
    media_type, charset = message.get_content_type(), message.get_content_charset()
    # RFC 9110 §15.5.16 and RFC 5789 §2.2: a 415 says which media types are accepted.
    form = body_kind == "form"
    accepted = {"Accept": ", ".join(sorted(FORM_TYPES)) if form else "application/json"}
    if body_kind == "json" and request.method == "PATCH":
        accepted["Accept-Patch"] = "application/json"
    if form and media_type not in FORM_TYPES:
        raise UnsupportedMediaType(
            "Send this body as application/x-www-form-urlencoded or multipart/form-data.",
            accepted,
        )
    is_json = media_type.startswith("application/") and media_type.endswith("+json")
    if body_kind == "json" and not (is_json or media_type == "application/json"):
        raise UnsupportedMediaType("Send this body as application/json.", accepted)
    if charset not in (None, "utf-8", "utf8"):  # RFC 8259 §8.1: JSON is UTF-8; forms too here
        raise UnsupportedMediaType(f"Bodies are read as UTF-8, not {charset}.", accepted)
    if body_kind != "json":
        return
    try:  # read here, and kept for the handler
        body = await request.body()
    except ClientDisconnect:  # the framework's answer then, were the client there to read it
        raise StarletteHTTPException(
            status.HTTP_400_BAD_REQUEST, "The body ended before it was complete."
        ) from None
    # UTF-16 and UTF-32, which the JSON parser would detect and read, encode every ASCII
    # character with a zero byte, which UTF-8 JSON never holds (a NUL in a string is escaped).
    if b"\x00" in body:
        raise _invalid("body", "The JSON is not UTF-8.")


def as_malformed_body(exc: StarletteHTTPException) -> RequestValidationError | None:
    """A 422 for the bare 400 the framework answers a body it cannot parse with (JSON not UTF-8
    or nested too deep, a broken multipart form): to a client, a malformed body like any other."""
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
