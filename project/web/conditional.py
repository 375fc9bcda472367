"""JSON responses and conditional requests (RFC 9110 §13): a read answers 304 when the
client's tag is current, a change 412 when it is not."""

from collections.abc import Mapping
from typing import Any

from fastapi import Request, Response, status
from pydantic_core import to_json

from project.errors import PreconditionFailed

# What a 200 with a tag says to caches (a private one may keep it, but asks each time) and
# what the 304 that answers its revalidation must repeat (RFC 9110 §15.4.5).
REVALIDATE = "private, no-cache"


def json_body(
    body: Any, status_code: int = status.HTTP_200_OK, headers: Mapping[str, str] | None = None
) -> Response:
    """`body` (dicts as the response models read) in JSON, serialised as they would be."""
    return Response(to_json(body), status_code, headers, media_type="application/json")


def created_response(
    request: Request, body: Any, etag: str | None, location: str | None = None
) -> Response:
    """A 201: the new resource, its tag, and where it is (by default, below the URL that
    created it, without the search of every route that `url_for` makes)."""
    path = f"{request.url.path.rstrip('/')}/{body['id']}"
    headers = {"Location": location or str(request.url.replace(path=path, query=""))}
    if etag is not None:
        headers["ETag"] = etag
    return json_body(body, status.HTTP_201_CREATED, headers)


def _header(request: Request, name: str) -> str | None:
    """A precondition header; sent on several lines, it is one list (RFC 9110 §5.3)."""
    lines = request.headers.getlist(name)
    return ", ".join(lines) if lines else None


def _names(header: str | None, etag: str, *, weak: bool) -> bool:
    """Whether a precondition header lists `*` or the current tag (a weak comparison
    ignores `W/`); False when there is no header."""
    if header is None:
        return False
    tags = [tag.strip() for tag in header.split(",") if tag.strip()]
    if weak:
        tags = [tag.removeprefix("W/") for tag in tags]
    return "*" in tags or etag in tags


def read_response(request: Request, body: Any, etag: str | None) -> Response:
    """A read's answer (RFC 9110 §13.2.2): 412 when `If-Match`, if sent, names neither `*`
    nor the current tag (strong comparison); a 304 when `If-None-Match` names it (weak
    comparison); else the body, with its tag."""
    if etag is None:
        return json_body(body)
    if_match = _header(request, "if-match")
    if if_match is not None and not _names(if_match, etag, weak=False):
        raise PreconditionFailed()
    headers = {"ETag": etag, "Cache-Control": REVALIDATE}
    if _names(_header(request, "if-none-match"), etag, weak=True):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return json_body(body, headers=headers)


def require_match(request: Request, etag: str) -> None:
    """412 unless a change's preconditions hold (RFC 9110 §13.2.2): `If-Match`, when sent,
    names `*` or the current tag (strong comparison), and `If-None-Match`, when sent, names
    neither (weak comparison; `If-None-Match: *` on a change of an existing row fails)."""
    if_match = _header(request, "if-match")
    if if_match is not None and not _names(if_match, etag, weak=False):
        raise PreconditionFailed()
    if _names(_header(request, "if-none-match"), etag, weak=True):
        raise PreconditionFailed("`If-None-Match` names the current version.")
