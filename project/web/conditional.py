"""JSON responses and conditional requests (RFC 9110 §13)."""

from collections.abc import Mapping
from typing import Any

from fastapi import Request, Response, status
from pydantic_core import to_json

from project.errors import PreconditionFailed

# What a 200 with a tag tells caches (a private one may keep it, but asks each time), and what
# the 304 that answers its revalidation must repeat (RFC 9110 §15.4.5).
REVALIDATE = "private, no-cache"


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
    """Whether a precondition header, on however many lines (RFC 9110 §5.3), lists `*` or
    `etag`: `If-None-Match` compares weakly (ignoring `W/`), `If-Match` strongly."""
    tags = [tag.strip() for line in request.headers.getlist(header) for tag in line.split(",")]
    tags = [tag.removeprefix("W/") if header == "if-none-match" else tag for tag in tags if tag]
    return "*" in tags or etag in tags


def _check_if_match(request: Request, etag: str) -> None:
    if "if-match" in request.headers and not _names(request, "if-match", etag):
        raise PreconditionFailed()


def read_response(request: Request, body: Any, etag: str | None) -> Response:
    """412 when a sent `If-Match` names neither `*` nor the tag, 304 when `If-None-Match` does."""
    if etag is None:
        return json_body(body)
    _check_if_match(request, etag)
    headers = {"ETag": etag, "Cache-Control": REVALIDATE}
    if _names(request, "if-none-match", etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return json_body(body, headers=headers)


def require_match(request: Request, etag: str) -> None:
    """412 when a sent `If-Match` names neither `*` nor the tag, or `If-None-Match` either."""
    _check_if_match(request, etag)
    if _names(request, "if-none-match", etag):
        raise PreconditionFailed("`If-None-Match` names the current version.")
