"""Pure ASGI middleware (BaseHTTPMiddleware would cost a task per request)."""

import logging
import random
import re
import time
from collections.abc import Callable

from fastapi import status
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from project.web.logs import current_request_id
from project.web.problems import internal_error_response, problem_response

access_log = logging.getLogger("project.access")
logger = logging.getLogger("project")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNTRUSTED_HOST = problem_response(
    status.HTTP_400_BAD_REQUEST, "The Host header names no host this service answers for."
)


# What every response gets unless its handler set it (the docs pages set their own CSP).
DEFAULT_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
)


# Told of each request: its route template (None: no route), method, status and seconds.
Observer = Callable[[str | None, str, int, float], None]


def route_template(scope: Scope) -> str | None:
    """The route that served a request (`/api/v1/heroes/{id}`), a mounted app's under its mount."""
    path = getattr(scope.get("route"), "path", None)
    mount: str = scope.get("root_path", "").removeprefix(scope.get("app_root_path", ""))
    return None if path is None else mount + path


class RequestContextMiddleware:
    """Every request's way in and out: an id (the client's `X-Request-ID` or a new one, echoed
    back), the Host check, HEAD (RFC 9110 §9.1) served as the GET it mirrors without the body,
    its headers (`ETag`, `Content-Length`) kept, security headers, a log line and metrics, and
    anything unhandled as a problem+json 500, no traceback."""

    any_host = ("/health/", "/metrics")  # probes and scrapers ask by address, and get no URL
    dns = b"abcdefghijklmnopqrstuvwxyz0123456789.-_"  # no character that moves a URL's authority

    def __init__(self, app: ASGIApp, hosts: list[str], observe: Observer | None = None) -> None:
        self.app, self.observe, self.allow_any = app, observe, "*" in hosts  # observe: metrics
        self.names = frozenset(p.lower().encode() for p in hosts if not p.startswith("*"))
        self.domains = tuple(p[1:].lower().encode() for p in hosts if p.startswith("*."))

    def _trusted(self, scope: Scope) -> bool:
        """The Host check, for the patterns Settings checked (any case), by a set and a suffix,
        not a regex per request; a refusal never sends the client to `www.`."""
        if self.allow_any or scope["path"].startswith(self.any_host):
            return True
        given = next((v for k, v in scope["headers"] if k == b"host"), b"")
        name, colon, port = given.rpartition(b":")
        host = (name if colon and port.isdigit() else given).lower()
        return host in self.names or bool(
            host.endswith(self.domains) and not host.translate(None, self.dns)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        # Not a secret, only a label: random bits without a system call per request.
        request_id = given if _REQUEST_ID.match(given) else f"{random.getrandbits(128):032x}"
        started, sent, token = time.perf_counter(), None, current_request_id.set(request_id)
        head = scope["method"] == "HEAD"

        async def send_with_headers(message: Message) -> None:
            nonlocal sent
            if message["type"] == "http.response.start":
                sent = message["status"]
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers + [p for p in DEFAULT_HEADERS if p[0] not in present]
            elif head:
                message = {**message, "body": b""}
            await send(message)

        # HEAD runs as GET on a copy: the server, reading HEAD in its own scope, sends no body.
        inner = {**scope, "method": "GET"} if head else scope
        app = self.app if self._trusted(scope) else UNTRUSTED_HOST
        try:
            await app(inner, receive, send_with_headers)
        except Exception:
            logger.exception("unhandled error")
            if sent is not None:
                raise
            await internal_error_response()(scope, receive, send_with_headers)
        finally:
            seconds, route = time.perf_counter() - started, route_template(inner)
            method, client = scope["method"], (scope.get("client") or (None,))[0]
            if self.observe is not None:  # a 500 if the client left before any answer
                self.observe(route, method, sent or 500, seconds)
            fields = {"request_id": request_id, "method": method, "route": route, "status": sent}
            fields |= {"duration_ms": round(seconds * 1000, 2), "client": client}
            access_log.info("request", extra={"fields": fields})
            current_request_id.reset(token)


class BodySizeLimitMiddleware:
    """413 as soon as `Content-Length` or the streamed body passes the limit: never buffered."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.detail = f"The request body is over {max_bytes} bytes."

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = (int(v) for k, v in scope["headers"] if k == b"content-length" and v.isdigit())
        if any(length > self.max_bytes for length in declared):
            too_large = problem_response(status.HTTP_413_CONTENT_TOO_LARGE, self.detail)
            return await too_large(scope, receive, send)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))  # none in a disconnect
            if received > self.max_bytes:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, self.detail)
            return message

        await self.app(scope, limited_receive, send)


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight in problem+json like every other error, and
    none for the admin: its pages work with a cookie, which no other origin may ride."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and f"{scope['path']}/".startswith("/admin/"):
            return await self.app(scope, receive, send)
        await super().__call__(scope, receive, send)

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != status.HTTP_400_BAD_REQUEST:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        headers = {k: v for k, v in response.headers.items() if not k.startswith("content-")}
        detail = f"Cross-origin request refused; not allowed here: {refused}."
        return problem_response(status.HTTP_400_BAD_REQUEST, detail, headers)
