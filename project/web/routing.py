"""What every resource's routes share: the router, its checks on requests (each refusal says
what to send instead), and JSON responses, conditional ones (RFC 9110 §13) included."""

from collections.abc import Callable, Coroutine, Mapping
from email.message import Message
from inspect import signature
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import APIRouter, Request, Response, params, status
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic_core import to_json
from starlette._utils import get_route_path, is_async_callable
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect
from starlette.routing import Match
from starlette.types import Scope

from project.database import release
from project.errors import PreconditionFailed, UnsupportedMediaType
from project.web.docs import problems

FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def client_address(request: Request) -> str:
    """The caller's address, as the server sees it (behind a proxy: see FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else "unknown"


def _invalid(loc: str, msg: str, type_: str = "json_invalid") -> RequestValidationError:
    return RequestValidationError([{"type": type_, "loc": (loc,), "msg": msg, "input": {}}])


async def _check_request(request: Request, form: bool | None) -> None:
    """The query, and the body the operation reads: a form, JSON, or none (None)."""
    headers, query = request.headers, request.scope["query_string"]
    if b"%" in query:  # the parser would put U+FFFD for escapes not UTF-8, and search for that
        try:
            unquote_to_bytes(query.replace(b"+", b" ")).decode()
        except UnicodeDecodeError:
            raise _invalid("query", "The query is not UTF-8.", "value_error") from None
    length = headers.get("content-length")
    empty = "transfer-encoding" not in headers if length is None else length.strip() in ("", "0")
    if form is None or empty:
        return
    codings = (c.strip().lower() for h in headers.getlist("content-encoding") for c in h.split(","))
    if refused := [coding for coding in codings if coding not in ("identity", "")]:
        raise UnsupportedMediaType(  # RFC 9110 §15.5.16: say which codings are accepted
            f"Bodies are not decoded from {refused[0]}: send this one uncompressed.",
            {"Accept-Encoding": "identity"},
        )
    if len(set(headers.getlist("content-type"))) > 1:
        raise UnsupportedMediaType("Send one Content-Type header, not several.")
    message = Message()  # parses the media type (always one slash) and its charset
    message["content-type"] = headers.get("content-type", "")
    media_type, charset = message.get_content_type(), message.get_content_charset()
    # RFC 9110 §15.5.16 and RFC 5789 §2.2: a 415 says which media types are accepted.
    types = sorted(FORM_TYPES) if form else ["application/json"]
    accepted = {"Accept": ", ".join(types)}
    if not form and request.method == "PATCH":
        accepted["Accept-Patch"] = "application/json"
    is_json = media_type.startswith("application/") and media_type.endswith(("/json", "+json"))
    if not (media_type in FORM_TYPES if form else is_json):
        raise UnsupportedMediaType(f"Send this body as {' or '.join(types)}.", accepted)
    if charset not in (None, "utf-8", "utf8"):  # RFC 8259 §8.1: JSON is UTF-8; forms too here
        raise UnsupportedMediaType(f"Bodies are read as UTF-8, not {charset}.", accepted)
    if form:
        return
    try:  # read here, and kept for the handler
        body = await request.body()
    except ClientDisconnect:  # the framework's answer then, were the client there to read it
        detail = "The body ended before it was complete."
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail) from None
    # UTF-16 and UTF-32, which the parser would read, put a zero byte in every ASCII character.
    if b"\x00" in body:
        raise _invalid("body", "The JSON is not UTF-8.")


class ProblemRoute(APIRoute):
    """Checks a request before the framework parses it (a body of the wrong type is a 415, not a
    422 about a missing dict), and hands the connection back once the response is built."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if kwargs.get("status_code") == status.HTTP_204_NO_CONTENT:
            kwargs["response_class"] = Response  # no body, so no Content-Type either
        super().__init__(path, endpoint, **kwargs)
        if self.body_field is not None:  # only a body it reads is refused for its type
            self.responses = {**problems(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE), **self.responses}

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler, field = _lean(self.dependant) or super().get_route_handler(), self.body_field
        form = None if field is None else isinstance(field.field_info, params.Form)

        async def route_handler(request: Request) -> Response:
            await _check_request(request, form)
            try:
                return await handler(request)
            except HTTPException as exc:  # the framework's bare 400 for a body it cannot parse
                cause, context = exc.__cause__, exc.__context__
                if exc.status_code != status.HTTP_400_BAD_REQUEST:
                    raise
                if isinstance(context, MultiPartException):
                    raise _invalid("body", f"The form cannot be parsed: {context.message}") from exc
                if isinstance(cause, UnicodeDecodeError):
                    raise _invalid("body", "The JSON is not UTF-8.") from exc
                if isinstance(cause, ValueError | RecursionError):  # or nested too deep
                    raise _invalid("body", "The JSON cannot be parsed.") from exc
                raise
            finally:
                await release(request)

        return route_handler


def _lean(route: Dependant) -> Callable[[Request], Coroutine[Any, Any, Response]] | None:
    """For a route that returns a `Response` and takes path parameters, the request and `async`
    dependencies of the request alone, nothing else (a read: `id`, `rows`), a handler that
    solves them itself: FastAPI's general solver costs as much again as the route's own Python."""
    call, subs, path = route.call, route.dependencies, route.path_params
    own = route.request_param_name
    on_request = (
        sub.request_param_name
        and is_async_callable(sub.call)
        and len(signature(sub.call).parameters) == 1
        for sub in subs
    )
    if call is None or call.__annotations__.get("return") is not Response or not all(on_request):
        return None
    if len(signature(call).parameters) != len(path) + len(subs) + bool(own):
        return None  # a dependency without a parameter (a router's), or another parameter

    async def handle(request: Request) -> Response:
        solved = [(str(sub.name), await sub.call(request)) for sub in subs]  # type: ignore[misc]
        values, errors = request_params_to_args(path, request.path_params)
        if errors:  # after the dependencies, in FastAPI's order: a 401 comes first
            raise RequestValidationError(errors)
        response: Response = await call(**values, **dict(solved), **({own: request} if own else {}))
        return response

    return handle


class PrefixRouter(APIRouter):
    """Skips its routes for a path outside its prefix, rather than trying each one."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if not get_route_path(scope).startswith(self.prefix):
            return Match.NONE, {}
        return super().matches(scope)


def api_router(prefix: str, tags: list[str], *codes: int) -> APIRouter:
    """A router whose operations document 413, 422, 503 and `codes` as problems."""
    always = (status.HTTP_413_CONTENT_TOO_LARGE, status.HTTP_422_UNPROCESSABLE_CONTENT)
    errors = problems(*always, status.HTTP_503_SERVICE_UNAVAILABLE, *codes)
    return PrefixRouter(
        prefix="/api/v1" + prefix, tags=list(tags), route_class=ProblemRoute, responses=errors
    )


def json_body(
    body: Any, status_code: int = status.HTTP_200_OK, headers: Mapping[str, str] | None = None
) -> Response:
    """`body` (dicts as the response models read) in JSON, serialised as they would be."""
    return Response(to_json(body), status_code, headers, media_type="application/json")


def created_response(
    request: Request, body: Any, etag: str | None, location: str | None = None
) -> Response:
    """A 201, by default located below the URL that created it (`url_for` searches every route)."""
    path = f"{request.url.path.rstrip('/')}/{body['id']}"
    headers = {"Location": location or str(request.url.replace(path=path, query=""))}
    if etag is not None:
        headers["ETag"] = etag
    return json_body(body, status.HTTP_201_CREATED, headers)


def _names(request: Request, header: str, etag: str) -> bool:
    """Whether a header, on however many lines, lists `*` or `etag` (weakly for If-None-Match)."""
    tags = [tag.strip() for line in request.headers.getlist(header) for tag in line.split(",")]
    tags = [tag.removeprefix("W/") if header == "if-none-match" else tag for tag in tags if tag]
    return "*" in tags or etag in tags


def read_response(request: Request, body: Any, etag: str | None) -> Response:
    """412 when a sent `If-Match` names neither `*` nor the tag, 304 when `If-None-Match` does."""
    if etag is None:
        return json_body(body)
    if "if-match" in request.headers and not _names(request, "if-match", etag):
        raise PreconditionFailed()
    # A private cache may keep it but asks each time; a 304 repeats that (RFC 9110 §15.4.5).
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if _names(request, "if-none-match", etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return json_body(body, headers=headers)


def require_match(request: Request, etag: str) -> None:
    """412 when a sent `If-Match` names neither `*` nor the tag, or `If-None-Match` either."""
    if "if-match" in request.headers and not _names(request, "if-match", etag):
        raise PreconditionFailed()
    if _names(request, "if-none-match", etag):
        raise PreconditionFailed("`If-None-Match` names the current version.")
