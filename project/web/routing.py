"""The router every resource uses: requests checked, errors documented as problems."""

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response, params, status
from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from project.database import release
from project.web.inbound import as_malformed_body, check_request
from project.web.openapi import problems

API_PREFIX = "/api/v1"


class ProblemRoute(APIRoute):
    """Checks a request before the framework parses it (a body of the wrong media type is a
    415, not a 422 about a missing dict), makes the framework's bare 400s for unreadable bodies
    422s, and hands the database connection back once the response is built, not sent."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if kwargs.get("status_code") == status.HTTP_204_NO_CONTENT:
            kwargs["response_class"] = Response  # no body, so no Content-Type either
        super().__init__(path, endpoint, **kwargs)
        if self.body_field is not None:  # only a body it reads is refused for its type
            self.responses = {**problems(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE), **self.responses}

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        kind = None
        if self.body_field is not None:
            kind = "form" if isinstance(self.body_field.field_info, params.Form) else "json"

        async def route_handler(request: Request) -> Response:
            await check_request(request, kind)
            try:
                return await handler(request)
            except StarletteHTTPException as exc:
                if (malformed := as_malformed_body(exc)) is None:
                    raise
                raise malformed from exc
            finally:
                await release(request)

        return route_handler


class PrefixRouter(APIRouter):
    """Skips its routes for a path outside its prefix, rather than trying each one."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if not get_route_path(scope).startswith(self.prefix):
            return Match.NONE, {}
        return super().matches(scope)


def api_router(prefix: str, tags: list[str], *codes: int) -> APIRouter:
    """A router whose operations document 413, 422, 503 and `codes` as problems."""
    return PrefixRouter(
        prefix=API_PREFIX + prefix,
        tags=list(tags),
        route_class=ProblemRoute,
        responses=problems(
            status.HTTP_413_CONTENT_TOO_LARGE,
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            status.HTTP_503_SERVICE_UNAVAILABLE,
            *codes,
        ),
    )
