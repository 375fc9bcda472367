"""ETags and conditional requests (RFC 9110 §13).

A tag is the row's `version`, plus a digest of the versions of what the representation
embeds (a hero's team and powers, a team's hero count), so it changes whenever the body a
client would receive changes: a strong validator."""

import hashlib

from fastapi import Request, Response, status

from project.errors import PreconditionFailed


def make_etag(version: int, *embedded: object) -> str:
    if not embedded:
        return f'"{version}"'
    digest = hashlib.sha256(repr(embedded).encode()).hexdigest()[:12]
    return f'"{version}-{digest}"'


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def not_modified(request: Request, etag: str) -> Response | None:
    """A 304 when `If-None-Match` names the current tag (weak comparison), else None."""
    header = request.headers.get("if-none-match")
    if header is None:
        return None
    tags = _tags(header)
    if "*" in tags or etag in (t.removeprefix("W/") for t in tags):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
    return None


def require_match(request: Request, etag: str) -> None:
    """412 unless `If-Match` is absent, `*`, or names the current tag (strong comparison)."""
    header = request.headers.get("if-match")
    if header is None:
        return
    tags = _tags(header)
    if "*" not in tags and etag not in tags:
        raise PreconditionFailed()
